//! The Rocket integration of the auth platform: fairing, routes, request
//! guards and catchers.
//!
//! Not implemented yet: this crate is reserved in the workspace layout and
//! exports nothing until its issue lands. Everything below HTTP is ready in
//! `auth-core`.
