//! The path under which the host crate reaches `auth-rocket`.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

/// `::auth_rocket` when the host depends on `auth-rocket` (under any name),
/// else `::auth_platform::rocket` through the facade, else `::auth_rocket`
/// (and the compiler says that crate is missing).
pub fn auth_rocket() -> TokenStream {
    let renamed = |name: &str| Ident::new(name, Span::call_site());
    match crate_name("auth-rocket") {
        Ok(FoundCrate::Name(name)) => {
            let name = renamed(&name);
            return quote!(::#name);
        }
        // auth-rocket's own doctests: an external crate named auth_rocket.
        Ok(FoundCrate::Itself) => return quote!(::auth_rocket),
        Err(_) => {}
    }
    match crate_name("auth-platform") {
        Ok(FoundCrate::Name(name)) => {
            let name = renamed(&name);
            quote!(::#name::rocket)
        }
        Ok(FoundCrate::Itself) => quote!(::auth_platform::rocket),
        Err(_) => quote!(::auth_rocket),
    }
}
