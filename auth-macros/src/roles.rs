//! `#[derive(Roles)]`: an app's ordered roles, their names in tokens, and the
//! permissions each grants.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Token, punctuated::Punctuated};

use crate::{
    errors::{Errors, with_fallback},
    paths,
};

/// One role as declared.
struct Role {
    variant: Ident,
    name: String,
    grants: Vec<String>,
}

pub fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    let Data::Enum(data) = &input.data else {
        let ident = &input.ident;
        let keyword = match &input.data {
            Data::Struct(s) => {
                let keyword = s.struct_token;
                quote!(#keyword #ident)
            }
            Data::Union(u) => {
                let keyword = u.union_token;
                quote!(#keyword #ident)
            }
            Data::Enum(_) => quote!(#ident),
        };
        errors.spanned(
            keyword,
            "#[derive(Roles)] declares roles with an enum: one fieldless variant per role, highest first, e.g. \
             enum AppRoles { Owner, Editor, Viewer }",
        );
        return errors.finish().err().map(|e| e.to_compile_error()).unwrap_or_default();
    };
    if !input.generics.params.is_empty() {
        errors.spanned(&input.generics, "#[derive(Roles)] takes an enum without generic parameters");
    }
    if data.variants.is_empty() {
        errors.spanned(&input.ident, "declare at least one role; the first is the role of a tenant's creator");
    }
    let mut roles: Vec<Role> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            errors.spanned(
                &variant.fields,
                format!("role `{}` has fields; a role is only a name: remove them", variant.ident),
            );
        }
        let (rename, grants) = role_attributes(&variant.attrs, &mut errors);
        let name = match &rename {
            Some(lit) => lit.value(),
            None => snake_case(&variant.ident.to_string()),
        };
        if let Some(first) = roles.iter().find(|r| r.name == name) {
            let at = rename.as_ref().map_or_else(|| variant.ident.span(), LitStr::span);
            errors.at(at, format!("`{}` and `{}` are both written {name:?} in tokens", first.variant, variant.ident));
        }
        roles.push(Role { variant: variant.ident.clone(), name, grants });
    }
    let rocket = paths::auth_rocket();
    match errors.finish() {
        Ok(()) => expand(&rocket, &input.ident, &roles),
        // The impls still exist (empty), so uses of the type report nothing more.
        Err(error) => with_fallback(&error, expand(&rocket, &input.ident, &[])),
    }
}

/// `#[role(rename = "...")]` and `#[grants("...", ...)]` of one variant.
fn role_attributes(attrs: &[Attribute], errors: &mut Errors) -> (Option<LitStr>, Vec<String>) {
    let mut rename: Option<LitStr> = None;
    let mut grants: Vec<String> = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("role") {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if let Some(message) = invalid_name(&lit.value(), "a role's name") {
                        return Err(syn::Error::new(lit.span(), message));
                    }
                    if rename.replace(lit).is_some() {
                        return Err(meta.error("`rename` is given twice"));
                    }
                    Ok(())
                } else {
                    Err(meta.error("unknown role attribute; write #[role(rename = \"name_in_tokens\")]"))
                }
            });
            errors.ok(parsed);
        } else if attr.path().is_ident("grants") {
            let Some(list) = errors.ok(attr.parse_args_with(Punctuated::<LitStr, Token![,]>::parse_terminated)) else {
                continue;
            };
            if list.is_empty() {
                errors.spanned(attr, "#[grants] lists permissions: #[grants(\"invoices.read\")]");
            }
            for lit in list {
                let permission = lit.value();
                if let Some(message) = invalid_name(&permission, "a permission") {
                    errors.spanned(&lit, message);
                } else if grants.contains(&permission) {
                    errors.spanned(&lit, format!("{permission:?} is granted twice"));
                } else {
                    grants.push(permission);
                }
            }
        }
    }
    (rename, grants)
}

fn invalid_name(name: &str, what: &str) -> Option<String> {
    if name.is_empty() {
        Some(format!("{what} cannot be empty"))
    } else if name.chars().any(|c| c.is_whitespace() || c == '"' || c.is_control()) {
        Some(format!("{what} is written in tokens: no spaces or quotes"))
    } else {
        None
    }
}

fn expand(rocket: &TokenStream, ident: &Ident, roles: &[Role]) -> TokenStream {
    let private = quote!(#rocket::policy::__private);
    let variants: Vec<&Ident> = roles.iter().map(|r| &r.variant).collect();
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    let grants = roles.iter().map(|r| {
        let grants = &r.grants;
        quote!(&[#(#grants),*])
    });
    let mut permissions: Vec<&str> = Vec::new();
    for permission in roles.iter().flat_map(|r| &r.grants) {
        if !permissions.contains(&permission.as_str()) {
            permissions.push(permission);
        }
    }
    // A match on no variants would not compile for an empty enum; its fallback
    // impl is never called.
    let (name_body, grants_body) = if roles.is_empty() {
        (quote!(""), quote!(&[]))
    } else {
        (quote!(match self { #(Self::#variants => #names,)* }), quote!(match self { #(Self::#variants => #grants,)* }))
    };
    quote! {
        impl #private::Roles for #ident {
            const ALL: &'static [Self] = &[#(Self::#variants),*];

            fn name(self) -> &'static str {
                #name_body
            }

            fn grants(self) -> &'static [&'static str] {
                #grants_body
            }
        }

        impl #private::DeclaredRoles for #ident {
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const PERMISSIONS: &'static [&'static str] = &[#(#permissions),*];
        }
    }
}

/// `SuperAdmin` → `super_admin`, `HRManager` → `hr_manager`.
fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let previous = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if previous.is_lowercase() || previous.is_ascii_digit() || (previous.is_uppercase() && next_is_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn variants_are_written_in_snake_case() {
        assert_eq!(snake_case("Owner"), "owner");
        assert_eq!(snake_case("SuperAdmin"), "super_admin");
        assert_eq!(snake_case("HRManager"), "hr_manager");
        assert_eq!(snake_case("Level2Reader"), "level2_reader");
    }
}
