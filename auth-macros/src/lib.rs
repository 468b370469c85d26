//! `#[requires(...)]`, `#[public]` and `#[derive(Roles)]` for the auth platform.
//!
//! Not implemented yet: this crate is reserved in the workspace layout and
//! exports nothing until its issue lands.
