//! An app's own roles: #[derive(Roles)] with renames and grants, and
//! `roles = ...` in #[requires].

use auth_macros::{Roles, requires};
use auth_rocket::policy::DeclaredRoles;
use rocket::{get, routes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Roles)]
pub enum Newsroom {
    #[grants("articles.publish", "members.manage")]
    EditorInChief,
    #[role(rename = "writer")]
    #[grants("articles.write")]
    StaffWriter,
    #[grants("articles.read")]
    Reader,
}

mod app {
    pub use super::Newsroom as Roles;
}

#[requires(role = "writer", tenant, roles = Newsroom)]
#[get("/tenant/<tenant_id>/drafts")]
fn drafts(tenant_id: &str) -> &str {
    tenant_id
}

#[requires(permission = "articles.read", roles = app::Roles)]
#[get("/articles")]
fn articles() {}

#[requires(any(role = "editor_in_chief", permission = "articles.publish"), roles = crate::Newsroom)]
#[get("/publish")]
fn publish() {}

fn main() {
    use auth_core::tenancy::Roles as _;
    let names: Vec<&str> = Newsroom::ALL.iter().map(|role| role.name()).collect();
    assert_eq!(names, ["editor_in_chief", "writer", "reader"]);
    assert_eq!(Newsroom::NAMES, ["editor_in_chief", "writer", "reader"]);
    assert_eq!(Newsroom::PERMISSIONS, ["articles.publish", "members.manage", "articles.write", "articles.read"]);
    let _ = routes![drafts, articles, publish];
}
