//! # auth-platform
//!
//! The facade a host application depends on. It re-exports the platform's
//! crates so that one dependency brings all of them:
//!
//! - [`core`]: identity, passwords, tokens, tenants, recovery, mail, audit and
//!   storage (`auth-core`), usable without any web framework;
//! - [`rocket`]: the fairing, routes, guards and catchers that mount the HTTP
//!   contract into a Rocket app (`auth-rocket`);
//! - [`requires`], [`public`] and [`Roles`] (`auth-macros`): a route's policy
//!   as an attribute, checked at compile time and run as a request guard;
//!   see [`rocket::policy`] for the listing of every route with its policy.
//!
//! ```
//! use auth_platform::requires;
//!
//! #[requires(role = "admin", tenant)] // above the route attribute
//! #[rocket::get("/tenant/<tenant_id>/reports")]
//! fn reports(tenant_id: &str) -> String {
//!     format!("reports of {tenant_id}")
//! }
//! # let _ = rocket::routes![reports];
//! ```

pub use auth_core as core;
pub use auth_core::{Auth, AuthConfig, AuthError};
pub use auth_macros::{Roles, public, requires};
pub use auth_rocket as rocket;
