//! The handler `#[requires]` and `#[public]` stand on, and its Rocket route
//! attribute (which must still be there: attributes expand top-down).

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Expr, ExprLit, Item, ItemFn, Lit, LitStr, Token, punctuated::Punctuated};

use crate::errors::Errors;

/// Rocket's route attributes, by the last segment of their path.
const ROUTE_ATTRIBUTES: &[&str] = &["get", "put", "post", "delete", "head", "patch", "options", "route"];

/// The words that make a path or query parameter a tenant's: `<tenant_id>`,
/// `<tenant>`, `<org_id>`, `<organization_id>`, `<parent_org>`, …
const TENANT_WORDS: &[&str] = &["tenant", "org", "organization", "organisation"];

/// A dynamic parameter of the route: `<name>` or `<name..>`.
pub struct Parameter {
    pub name: String,
    /// In the path (`tenant` can compare it), not the query.
    pub in_path: bool,
}

impl Parameter {
    /// Whether the parameter names a tenant: one of the words of its name
    /// (split on `_`) is a [`TENANT_WORDS`] word.
    pub fn names_a_tenant(&self) -> bool {
        self.name.to_lowercase().split('_').any(|word| TENANT_WORDS.contains(&word))
    }
}

/// What the route attribute says.
pub struct RouteAttribute {
    /// Upper case, as Rocket's `Method::as_str` writes it.
    pub method: String,
    /// The path literal, when it could be read (Rocket reports a malformed one).
    pub path: Option<LitStr>,
}

impl RouteAttribute {
    /// The path without its query, e.g. `/tenant/<tenant_id>/data`.
    pub fn path_segments(&self) -> Option<Vec<String>> {
        let path = self.path.as_ref()?.value();
        let path = path.split('?').next().unwrap_or_default().to_owned();
        Some(path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    /// The dynamic parameters of the path, then of the query.
    pub fn parameters(&self) -> Vec<Parameter> {
        let Some(uri) = &self.path else { return Vec::new() };
        let uri = uri.value();
        let (path, query) = uri.split_once('?').unwrap_or((&uri, ""));
        let names = |part: &str, separator: char| -> Vec<String> {
            part.split(separator)
                .filter_map(|s| s.strip_prefix('<')?.strip_suffix('>'))
                .map(|name| name.trim_end_matches("..").to_owned())
                .collect()
        };
        let path = names(path, '/').into_iter().map(|name| Parameter { name, in_path: true });
        let query = names(query, '&').into_iter().map(|name| Parameter { name, in_path: false });
        path.chain(query).collect()
    }
}

/// The handler: `item` parsed as a function, with its route attribute.
pub struct Handler {
    pub function: ItemFn,
    pub route: Option<RouteAttribute>,
}

/// Parses the item under the attribute `name` (`requires`, `public`).
/// A non-function is an error with the item given back unchanged.
pub fn handler(item: TokenStream, name: &str, errors: &mut Errors) -> Result<Handler, TokenStream> {
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            errors.spanned(
                item_keyword(&other).unwrap_or_else(|| item.clone()),
                format!("#[{name}] goes on a Rocket route handler, a function with #[get], #[post], … below #[{name}]"),
            );
            return Err(item);
        }
        Err(error) => {
            errors.push(error);
            return Err(item);
        }
    };
    let route = function.attrs.iter().find(|attr| is_route_attribute(attr)).map(route_attribute);
    if route.is_none() {
        errors.at(
            Span::call_site(),
            format!(
                "#[{name}] needs a Rocket route attribute (#[get], #[post], …) below it, and none follows it here\n\
                 place #[{name}] above #[get]: attributes expand top-down, and a route attribute above #[{name}] \
                 has already been expanded by Rocket without it"
            ),
        );
    }
    Ok(Handler { function, route })
}

/// The `struct`/`enum`/… keyword and name of a non-function item, to point at.
fn item_keyword(item: &Item) -> Option<TokenStream> {
    use quote::quote;
    Some(match item {
        Item::Struct(s) => {
            let (keyword, ident) = (&s.struct_token, &s.ident);
            quote!(#keyword #ident)
        }
        Item::Enum(e) => {
            let (keyword, ident) = (&e.enum_token, &e.ident);
            quote!(#keyword #ident)
        }
        Item::Impl(i) => {
            let keyword = &i.impl_token;
            quote!(#keyword)
        }
        Item::Mod(m) => {
            let (keyword, ident) = (&m.mod_token, &m.ident);
            quote!(#keyword #ident)
        }
        _ => return None,
    })
}

/// `#[get(..)]`, `#[rocket::post(..)]`, `#[route(GET, uri = ..)]`, …
pub fn is_route_attribute(attr: &Attribute) -> bool {
    let path = attr.path();
    let from_rocket = path.segments.len() == 1 || (path.segments.len() == 2 && path.segments[0].ident == "rocket");
    from_rocket && path.segments.last().is_some_and(|s| ROUTE_ATTRIBUTES.iter().any(|name| s.ident == name))
}

/// Whether `attr` is `#[name]` or `#[some::path::name]`.
pub fn is_attribute(attr: &Attribute, name: &str) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == name)
}

fn route_attribute(attr: &Attribute) -> RouteAttribute {
    let name = attr.path().segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
    let args = attr.parse_args_with(Punctuated::<Expr, Token![,]>::parse_terminated).unwrap_or_default();
    let method = if name == "route" {
        // #[route(GET, uri = "/path")]
        match args.first() {
            Some(Expr::Path(method)) => method.path.get_ident().map(|m| m.to_string().to_uppercase()),
            _ => None,
        }
        .unwrap_or_default()
    } else {
        name.to_uppercase()
    };
    let path = args.iter().find_map(|arg| match arg {
        Expr::Lit(ExprLit { lit: Lit::Str(path), .. }) => Some(path.clone()),
        Expr::Assign(assign) => match (&*assign.left, &*assign.right) {
            (Expr::Path(key), Expr::Lit(ExprLit { lit: Lit::Str(path), .. })) if key.path.is_ident("uri") => {
                Some(path.clone())
            }
            _ => None,
        },
        _ => None,
    });
    RouteAttribute { method, path }
}
