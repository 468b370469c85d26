//! # auth-core
//!
//! The identity and token engine of the auth platform, with no web framework in
//! it: users and profiles, argon2id passwords, tenants and ordered roles, JWT
//! access tokens, rotating refresh tokens with reuse detection, revocation,
//! email verification and password reset, rate limits and login back-off
//! (in process or in Redis), sign-in with OpenID Connect providers, mail,
//! audit, and storage on SQLite or PostgreSQL.
//!
//! Start with [`AuthConfig`] and [`Auth`]; web layers (such as `auth-rocket`)
//! translate HTTP to the calls of [`Auth`] and [`AuthError`] back to HTTP.

pub mod audit;
mod clock;
pub mod config;
pub mod contract;
pub mod detection;
pub mod error;
pub mod forwarded;
pub mod identity;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod oauth;
pub mod password;
pub mod ratelimit;
pub mod recovery;
mod sealed;
mod secret;
mod service;
#[cfg(feature = "testing")]
pub mod store;
#[cfg(not(feature = "testing"))]
mod store;
pub mod tenancy;
pub mod tokens;
pub mod webhooks;

pub use audit::ClientInfo;
pub use clock::Clock;
pub use config::{AuthConfig, ConfigError, LaunchCheck, SigningAlgorithm};
pub use error::{AuthError, FieldErrors, Result};
pub use secret::Secret;
pub use service::Operator;
#[cfg(feature = "testing")]
pub use service::testing;
pub use service::{
    Account, Accounts, Auth, AuthBuilder, BuildError, Mfa, OAuth, Operators, RotateOutcome, SecondFactor, Sessions,
    TenantView, Tenants, TokenPair, Webhooks,
};
pub use store::{AuditRecord, IdentityLink, Session};
