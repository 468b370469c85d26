//! # auth-platform
//!
//! The facade a host application depends on. It re-exports the platform's
//! crates so that one dependency brings all of them:
//!
//! - [`core`]: identity, passwords, tokens, tenants, recovery, mail, audit and
//!   storage (`auth-core`), usable without any web framework;
//! - [`rocket`]: the fairing, routes, guards and catchers that mount the HTTP
//!   contract into a Rocket app (`auth-rocket`).
//!
//! The `#[requires]` macros (`auth-macros`) are re-exported here when they land.

pub use auth_core as core;
pub use auth_core::{Auth, AuthConfig, AuthError};
pub use auth_rocket as rocket;
