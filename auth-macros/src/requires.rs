//! `#[requires(...)]` and `#[public]`: checks, then the expansion.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{FnArg, ItemFn, LitStr, Path, parse_quote_spanned};

use crate::{
    condition::{self, Condition, Requires},
    errors::{Errors, with_fallback},
    paths,
    route::{self, Handler, RouteAttribute},
};

pub fn requires(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut requires = condition::parse(args, &mut errors);
    let handler = match route::handler(item, "requires", &mut errors) {
        Ok(handler) => handler,
        Err(item) => return with_fallback(&errors.finish().err().unwrap_or_else(unreachable_error), item),
    };
    if requires.conditions.is_empty() && requires.roles.is_none() && errors.is_empty() {
        errors.at(
            Span::call_site(),
            "#[requires] needs at least one condition: #[requires(authenticated)] for any valid token; \
             #[public] marks a route that is open on purpose",
        );
    } else if requires.conditions.is_empty() && requires.roles.is_some() {
        errors.at(Span::call_site(), "#[requires] needs at least one condition besides `roles = ...`");
    }
    check_markers(&handler.function, "requires", &mut errors);
    check_list(&requires.conditions, true, &mut errors);
    check_any_tenant(&requires.conditions, &mut errors);
    if let Some(route) = &handler.route {
        check_segments(&requires.conditions, route, &mut errors);
        check_tenant_scope(&requires.conditions, route, &mut errors);
    }
    finish(errors, handler, |function, route| {
        condition::normalise(&mut requires.conditions);
        expand(requires, function, route)
    })
}

pub fn public(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    if !args.is_empty() {
        errors.spanned(&args, "#[public] takes no arguments");
    }
    let handler = match route::handler(item, "public", &mut errors) {
        Ok(handler) => handler,
        Err(item) => return with_fallback(&errors.finish().err().unwrap_or_else(unreachable_error), item),
    };
    check_markers(&handler.function, "public", &mut errors);
    finish(errors, handler, |function, route| {
        let registration = registration(&paths::auth_rocket(), &function, route, quote!(Public));
        quote!(#registration #function)
    })
}

/// The expansion, or the errors followed by the handler as written (its route
/// attribute still on it), so that nothing else fails because of them.
fn finish(
    errors: Errors,
    handler: Handler,
    expand: impl FnOnce(ItemFn, &RouteAttribute) -> TokenStream,
) -> TokenStream {
    match (errors.finish(), handler.route) {
        (Ok(()), Some(route)) => expand(handler.function, &route),
        // A missing route attribute is an error, so this arm is not taken.
        (Ok(()), None) => handler.function.into_token_stream(),
        (Err(error), _) => with_fallback(&error, handler.function),
    }
}

fn unreachable_error() -> syn::Error {
    syn::Error::new(Span::call_site(), "the item could not be read")
}

/// One marker per route: a second `#[requires]`, or `#[public]` beside it.
fn check_markers(function: &ItemFn, this: &str, errors: &mut Errors) {
    for attr in &function.attrs {
        if route::is_attribute(attr, "requires") {
            let message = if this == "requires" {
                "#[requires] is given twice: merge the conditions into one #[requires(...)]"
            } else {
                "a route is either #[public] or #[requires(...)], not both"
            };
            errors.spanned(attr, message);
        } else if route::is_attribute(attr, "public") {
            let message = if this == "public" {
                "#[public] is given twice"
            } else {
                "a route is either #[public] or #[requires(...)], not both"
            };
            errors.spanned(attr, message);
        }
    }
}

/// Repeated and conflicting conditions of one list (all must hold at the top
/// level; one of them inside `any(...)`).
fn check_list(conditions: &[Condition], top: bool, errors: &mut Errors) {
    for (i, condition) in conditions.iter().enumerate() {
        let earlier = &conditions[..i];
        let text = condition.describe();
        if earlier.iter().any(|e| e.describe() == text) {
            errors.at(condition.span(), format!("`{text}` is repeated; once is enough"));
            continue;
        }
        if top {
            let same_kind = earlier.iter().find(|e| e.keyword() == condition.keyword());
            match (condition, same_kind) {
                (Condition::Role(_), Some(first)) => errors.at(
                    condition.span(),
                    format!(
                        "conflicting conditions: `{}` and `{text}`; a route requires one minimum role \
                         (higher roles pass too): keep the one you mean",
                        first.describe()
                    ),
                ),
                (Condition::Tenant(..), Some(first)) => errors.at(
                    condition.span(),
                    format!(
                        "conflicting conditions: `{}` and `{text}`; a token is scoped to one tenant, \
                         so two tenant segments cannot both be its tenant",
                        first.describe()
                    ),
                ),
                (Condition::RecentAuth(..), Some(first)) => errors.at(
                    condition.span(),
                    format!(
                        "conflicting conditions: `{}` and `{text}`; a route has one window for the sign-in's \
                         age (the shorter one is what both would require): keep the one you mean",
                        first.describe()
                    ),
                ),
                _ => {}
            }
            let scope = |c: &Condition| matches!(c, Condition::Tenant(..) | Condition::AnyTenant(_));
            if let Some(first) =
                earlier.iter().find(|e| scope(e) && scope(condition) && e.keyword() != condition.keyword())
            {
                errors.at(
                    condition.span(),
                    format!(
                        "conflicting conditions: `{}` and `{text}`; `tenant` checks the role in the path's tenant, \
                         `any_tenant` in whichever tenant the token is scoped to: keep the one you mean",
                        first.describe()
                    ),
                );
            }
        }
        if let Condition::Any(_, alternatives) = condition {
            check_list(alternatives, false, errors);
        }
    }
}

/// Every `tenant` compares a segment the route's path has.
fn check_segments(conditions: &[Condition], route: &RouteAttribute, errors: &mut Errors) {
    let (Some(path), Some(segments)) = (&route.path, route.path_segments()) else { return };
    let mut reported = Vec::new();
    for condition in conditions {
        if let Condition::Any(_, alternatives) = condition {
            check_segments(alternatives, route, errors);
        }
        let Some(segment) = condition.segment() else { continue };
        if segments.iter().any(|s| *s == format!("<{segment}>")) || reported.contains(&segment) {
            continue;
        }
        let message = match condition {
            Condition::Tenant(_, None) => format!(
                "`tenant` compares the path segment <{segment}> with the token's tenant, but this path has no \
                 <{segment}>: add it to the path, or name the segment with tenant = \"...\""
            ),
            _ => format!("`{}` names the path segment <{segment}>, but this path has none", condition.describe()),
        };
        errors.spanned(path, message);
        reported.push(segment);
    }
}

/// The route's `role` and `permission` conditions, inside `any(...)` too, as written.
fn roles_and_permissions(conditions: &[Condition]) -> impl Iterator<Item = &Condition> {
    let flat = conditions.iter().flat_map(|condition| match condition {
        Condition::Any(_, alternatives) => alternatives.as_slice(),
        other => std::slice::from_ref(other),
    });
    flat.filter(|condition| is_role_or_permission(condition))
}

fn is_role_or_permission(condition: &Condition) -> bool {
    matches!(condition, Condition::Role(_) | Condition::Permission(_))
}

/// `any_tenant` qualifies a role or permission; alone it would say nothing.
fn check_any_tenant(conditions: &[Condition], errors: &mut Errors) {
    let Some(any_tenant) = conditions.iter().find(|c| matches!(c, Condition::AnyTenant(_))) else { return };
    if roles_and_permissions(conditions).next().is_none() {
        errors.at(
            any_tenant.span(),
            "`any_tenant` says that the route's role or permission is checked in whichever tenant the token is \
             scoped to, but this route checks none: remove it, or add the role = \"...\" it qualifies",
        );
    }
}

/// On a route with a tenant parameter, every role and permission is checked
/// in the path's tenant (`tenant` at the top level), or the route says that
/// any tenant will do (`any_tenant`): otherwise an admin of one tenant passes
/// on another tenant's path. A `tenant` inside `any(...)` does not count: its
/// alternatives pass without it.
fn check_tenant_scope(conditions: &[Condition], route: &RouteAttribute, errors: &mut Errors) {
    if conditions.iter().any(|c| matches!(c, Condition::Tenant(..) | Condition::AnyTenant(_))) {
        return;
    }
    let parameters = route.parameters();
    let Some(parameter) = parameters.iter().find(|p| p.names_a_tenant()) else { return };
    let (role, beside) = match conditions.iter().find(|c| is_role_or_permission(c)) {
        Some(role) => (role, ""),
        None => match roles_and_permissions(conditions).next() {
            Some(role) => (role, " beside any(...)"),
            None => return,
        },
    };
    let name = &parameter.name;
    let tenant =
        if name == condition::DEFAULT_TENANT_SEGMENT { "tenant".to_owned() } else { format!("tenant = {name:?}") };
    let fix = if parameter.in_path {
        format!("add `{tenant}`{beside}, so that <{name}> must be the token's tenant")
    } else {
        format!(
            "<{name}> is a query parameter, which `tenant` cannot compare: move it into the path and add `{tenant}`{beside}"
        )
    };
    errors.at(
        role.span(),
        format!(
            "`{}` is checked in whichever tenant the token is scoped to, not in this route's <{name}>: \
             a token scoped to another tenant passes here\n\
             help: {fix}; or, if any tenant will do on purpose, add `any_tenant`",
            role.describe()
        ),
    );
}

fn expand(requires: Requires, mut function: ItemFn, route: &RouteAttribute) -> TokenStream {
    let rocket = paths::auth_rocket();
    let private = quote!(#rocket::policy::__private);
    let vis = &function.vis;
    let policy = format_ident!("__AuthPolicy_{}", function.sig.ident);
    let listed: Vec<&Condition> = top_level(&requires.conditions);
    let description = listed.iter().map(|c| c.describe()).collect::<Vec<_>>().join(", ");
    let conditions = listed.iter().map(|c| condition_tokens(&rocket, c));
    let roles = match &requires.roles {
        Some(path) => {
            RoleSet { tokens: quote!(#path), name: format!("the roles of {}", path_text(path)), default: false }
        }
        None => RoleSet { tokens: quote!(#private::DefaultRoles), name: "the default roles".into(), default: true },
    };
    let checks = literal_checks(&requires.conditions, &private, &roles);
    let uses_roles = requires.roles.is_some() || !checks.is_empty();
    let roles_type = requires.roles.as_ref().map_or_else(|| "DefaultRoles".to_owned(), path_text);
    let role_set_type = &roles.tokens;
    // A set that is not `BOUND` (the platform's own permissions) runs with whichever set the platform has.
    let role_set = if uses_roles {
        quote! {
            if <#role_set_type as #private::DeclaredRoles>::BOUND {
                ::core::option::Option::Some(<#role_set_type as #private::DeclaredRoles>::role_set)
            } else {
                ::core::option::Option::None
            }
        }
    } else {
        quote!(::core::option::Option::None)
    };
    let marking = quote! {
        Requires {
            description: <#policy as #rocket::Policy>::DESCRIPTION,
            conditions: #policy::CONDITIONS,
            roles: #role_set,
            roles_type: #roles_type,
        }
    };
    let registration = registration(&rocket, &function, route, marking);

    // The guard comes first: Rocket runs request guards left to right, and the data guard last.
    let span = Span::call_site();
    let guard: FnArg = parse_quote_spanned!(span=> __auth_policy: #rocket::Authorized<#policy>);
    function.sig.inputs.insert(0, guard);

    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #policy;

        impl #policy {
            #[doc(hidden)]
            pub const CONDITIONS: &'static [#rocket::policy::Condition] = &[#(#conditions),*];
        }

        impl #rocket::Policy for #policy {
            const DESCRIPTION: &'static str = #description;

            fn check(
                user: &#rocket::AuthUser,
                request: &#private::Request<'_>,
                roles: &#private::RoleSet,
            ) -> ::core::result::Result<(), #private::AuthError> {
                #rocket::policy::evaluate(Self::CONDITIONS, user, request, roles)
            }
        }

        #(#checks)*

        #registration

        #function
    }
}

/// The normalised top level: `authenticated` is implied by every other condition.
fn top_level(conditions: &[Condition]) -> Vec<&Condition> {
    let others = conditions.iter().any(|c| !matches!(c, Condition::Authenticated(_)));
    conditions.iter().filter(|c| !(others && matches!(c, Condition::Authenticated(_)))).collect()
}

fn condition_tokens(rocket: &TokenStream, condition: &Condition) -> TokenStream {
    let path = quote!(#rocket::policy::Condition);
    match condition {
        Condition::Authenticated(_) => quote!(#path::Authenticated),
        Condition::Role(lit) => quote!(#path::Role(#lit)),
        Condition::Permission(lit) => quote!(#path::Permission(#lit)),
        Condition::Tenant(..) => {
            let segment = condition.segment().unwrap_or_default();
            quote!(#path::Tenant(#segment))
        }
        Condition::AnyTenant(_) => quote!(#path::AnyTenant),
        Condition::Verified(_) => quote!(#path::Verified),
        Condition::Staff(_) => quote!(#path::Staff),
        Condition::Superuser(_) => quote!(#path::Superuser),
        Condition::Mfa(_) => quote!(#path::Mfa),
        Condition::RecentAuth(_, secs) => quote!(#path::RecentAuth(#secs)),
        Condition::Any(_, alternatives) => {
            let alternatives = alternatives.iter().map(|a| condition_tokens(rocket, a));
            quote!(#path::Any(&[#(#alternatives),*]))
        }
    }
}

/// The role set `role` and `permission` names are checked against.
struct RoleSet {
    /// The type.
    tokens: TokenStream,
    /// For messages: "the default roles", "the roles of Newsroom".
    name: String,
    default: bool,
}

/// A constant per role and permission name that fails to compile, on the
/// name's literal, when the role set does not declare it; its message lists
/// what the set declares.
fn literal_checks(conditions: &[Condition], private: &TokenStream, roles: &RoleSet) -> Vec<TokenStream> {
    let (tokens, name) = (&roles.tokens, &roles.name);
    let mut checks = Vec::new();
    for condition in conditions {
        match condition {
            Condition::Role(lit) => checks.push(literal_check(
                lit,
                private,
                quote!(<#tokens as #private::DeclaredRoles>::NAMES),
                [format!("unknown role {:?}: {name} are ", lit.value()), " > ".into(), role_hint(roles).into()],
                None,
            )),
            Condition::Permission(lit) => checks.push(literal_check(
                lit,
                private,
                quote!(<#tokens as #private::DeclaredRoles>::PERMISSIONS),
                [format!("unknown permission {:?}: {name} grant ", lit.value()), ", ".into(), String::new()],
                Some(format!(
                    "unknown permission {:?}: {name} grant none; a role grants permissions with #[grants(\"...\")]",
                    lit.value()
                )),
            )),
            Condition::Any(_, alternatives) => checks.extend(literal_checks(alternatives, private, roles)),
            _ => {}
        }
    }
    checks
}

fn role_hint(roles: &RoleSet) -> &'static str {
    if roles.default {
        " (highest first); for roles of your own, #[derive(Roles)] on an enum and add roles = YourEnum"
    } else {
        " (highest first)"
    }
}

fn literal_check(
    lit: &LitStr,
    private: &TokenStream,
    declared: TokenStream,
    [before, separator, after]: [String; 3],
    when_none: Option<String>,
) -> TokenStream {
    let when_none = when_none.unwrap_or_else(|| before.clone());
    // Spanned on the literal: the compiler reports the failed constant there.
    quote_spanned! {lit.span()=>
        const _: () = {
            const DECLARED: &[&str] = #declared;
            if !#private::contains(DECLARED, #lit) {
                const LEN: usize = #private::message_len(#before, DECLARED, #separator, #after);
                const TEXT: [u8; LEN] = #private::message::<LEN>(#before, DECLARED, #separator, #after);
                if DECLARED.is_empty() {
                    ::core::panic!("{}", #when_none);
                }
                ::core::panic!("{}", #private::text(&TEXT));
            }
        };
    }
}

/// What the route listing needs: the handler's name, method and path.
fn registration(rocket: &TokenStream, function: &ItemFn, route: &RouteAttribute, marking: TokenStream) -> TokenStream {
    let handler = function.sig.ident.to_string();
    let method = &route.method;
    let path = route.path.clone().unwrap_or_else(|| LitStr::new("", Span::call_site()));
    quote! {
        #rocket::policy::__private::inventory::submit! {
            #rocket::policy::__private::Registration {
                handler: #handler,
                module: ::core::module_path!(),
                method: #method,
                path: #path,
                marking: #rocket::policy::__private::Marking::#marking,
            }
        }
    }
}

/// `crate::roles::Newsroom` as written.
fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let leading = if path.leading_colon.is_some() { "::" } else { "" };
    format!("{leading}{}", segments.join("::"))
}
