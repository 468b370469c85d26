//! The checks of the kit, one module per part of the contract; each is a
//! method of [`Conformance`](super::Conformance).

mod account;
mod documents;
mod http;
mod mfa;
mod operators;
mod passkeys;
mod sessions;
mod tenants;
