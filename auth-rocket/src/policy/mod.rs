//! Route policies: the [`Condition`]s that `#[requires(...)]` compiles into a
//! [`Policy`](crate::Policy), the listing of every mounted route with its
//! policy ([`route_table`]), and the check [`AuthFairing`](crate::AuthFairing)
//! runs at ignite: outside development it refuses to launch while a route has neither
//! a policy nor `#[public]`.
//!
//! ```
//! # use rocket::get;
//! use auth_macros::{public, requires}; // re-exported by auth-platform
//! use auth_rocket::policy::{Condition, route_table};
//!
//! #[requires(role = "admin", tenant)]
//! #[get("/tenant/<tenant_id>/reports")]
//! fn reports(tenant_id: &str) -> &'static str { "…" }
//!
//! #[requires(role = "admin", any_tenant)] // an admin of any tenant, on purpose
//! #[get("/tenant/<tenant_id>/status")]
//! fn status(tenant_id: &str) -> &'static str { "…" }
//!
//! #[public]
//! #[get("/health")]
//! fn health() -> &'static str { "ok" }
//!
//! #[get("/forgotten")]
//! fn forgotten() -> &'static str { "open by mistake" }
//!
//! let rocket = rocket::build().mount("/api", rocket::routes![reports, status, health, forgotten]);
//! let table = route_table(&rocket);
//! let reports = table.iter().find(|route| route.path == "/api/tenant/<tenant_id>/reports").unwrap();
//! assert_eq!(reports.policy, Some(r#"role = "admin", tenant"#));
//! assert!(reports.requires("tenant") && reports.conditions.contains(&Condition::Role("admin")));
//! let status = table.iter().find(|route| route.path == "/api/tenant/<tenant_id>/status").unwrap();
//! assert!(status.requires("any_tenant") && !status.requires("tenant"));
//! assert!(table.iter().any(|route| route.path == "/api/health" && route.public));
//! assert!(table.iter().any(|route| route.path == "/api/forgotten" && route.policy.is_none()));
//! ```
//!
//! # How mounted routes are matched to their policy
//!
//! `#[requires]` and `#[public]` register the handler's name, module, method
//! and path (`inventory`); a mounted route is matched by its name (Rocket
//! names a route after its handler), method and path under its mount point.
//! The platform's own routes ([`routes()`](crate::routes)) are marked and
//! matched the same way. Two handlers of the same name, method and path in
//! different modules cannot be told apart: if their markings differ, the
//! route is listed as unmarked (rename one). Routes without a handler of
//! yours (a `FileServer`) are made public with [`public`].

mod condition;
mod roles;
mod table;

pub use condition::{Condition, evaluate};
pub use roles::{DeclaredRoles, PlatformPermissions};
pub use table::{RoutePolicy, public, route_table, unmarked_routes};
pub(crate) use table::{check_marks, check_roles};

/// The path segment `tenant` compares with the token's tenant, unless named.
pub const DEFAULT_TENANT_SEGMENT: &str = "tenant_id";

/// What the code `#[requires]` and `#[derive(Roles)]` generate refers to.
#[doc(hidden)]
pub mod __private {
    pub use super::{DeclaredRoles, table::Marking, table::Registration};
    pub use auth_core::{
        AuthError,
        tenancy::{DefaultRoles, RoleSet, Roles},
    };
    pub use inventory;
    pub use rocket::Request;

    /// Whether `list` holds `item` (usable in a constant).
    pub const fn contains(list: &[&str], item: &str) -> bool {
        let mut i = 0;
        while i < list.len() {
            if bytes_eq(list[i].as_bytes(), item.as_bytes()) {
                return true;
            }
            i += 1;
        }
        false
    }

    const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The length of [`message`]'s text.
    pub const fn message_len(before: &str, list: &[&str], separator: &str, after: &str) -> usize {
        let mut len = before.len() + after.len();
        let mut i = 0;
        while i < list.len() {
            len += list[i].len() + 2 + if i > 0 { separator.len() } else { 0 };
            i += 1;
        }
        len
    }

    /// `before`, each item of `list` quoted and separated, `after`: the text of
    /// a compile-time error, built in a constant.
    pub const fn message<const N: usize>(before: &str, list: &[&str], separator: &str, after: &str) -> [u8; N] {
        let mut out = [0u8; N];
        let mut at = copy(&mut out, 0, before.as_bytes());
        let mut i = 0;
        while i < list.len() {
            if i > 0 {
                at = copy(&mut out, at, separator.as_bytes());
            }
            at = copy(&mut out, at, b"\"");
            at = copy(&mut out, at, list[i].as_bytes());
            at = copy(&mut out, at, b"\"");
            i += 1;
        }
        copy(&mut out, at, after.as_bytes());
        out
    }

    const fn copy<const N: usize>(out: &mut [u8; N], mut at: usize, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            out[at] = bytes[i];
            at += 1;
            i += 1;
        }
        at
    }

    /// The text of [`message`] (always UTF-8: it joins whole strings).
    pub const fn text(bytes: &[u8]) -> &str {
        match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => "(not UTF-8)",
        }
    }
}

#[cfg(test)]
mod tests {
    use auth_core::tenancy::{DefaultRoles, RoleSet, Roles};

    use super::*;

    #[test]
    fn default_roles_are_declared_as_the_role_set_has_them() {
        let set = RoleSet::of::<DefaultRoles>();
        assert_eq!(set.names().collect::<Vec<_>>(), DefaultRoles::NAMES);
        let granted: Vec<&str> = DefaultRoles::ALL.iter().flat_map(|role| role.grants().iter().copied()).collect();
        assert_eq!(granted, DefaultRoles::PERMISSIONS);
    }

    #[test]
    fn conditions_are_written_as_requires_takes_them() {
        let any = Condition::Any(&[Condition::Staff, Condition::Role("admin")]);
        assert_eq!(any.to_string(), r#"any(staff, role = "admin")"#);
        assert_eq!(Condition::Tenant("tenant_id").to_string(), "tenant");
        assert_eq!(Condition::Tenant("org").to_string(), r#"tenant = "org""#);
        assert_eq!(Condition::Permission("a.b").to_string(), r#"permission = "a.b""#);
        assert_eq!(Condition::AnyTenant.to_string(), "any_tenant");
        assert_eq!(Condition::Mfa.to_string(), "mfa");
        for (secs, text) in [(600, r#""10m""#), (90, r#""90s""#), (7200, r#""2h""#), (5400, r#""90m""#)] {
            assert_eq!(Condition::RecentAuth(secs).to_string(), format!("recent_auth = {text}"));
        }
    }

    #[test]
    fn messages_are_built_in_constants() {
        const BEFORE: &str = "roles: ";
        const LIST: &[&str] = &["owner", "admin"];
        const LEN: usize = __private::message_len(BEFORE, LIST, " > ", ".");
        const TEXT: [u8; LEN] = __private::message::<LEN>(BEFORE, LIST, " > ", ".");
        assert_eq!(__private::text(&TEXT), r#"roles: "owner" > "admin"."#);
        assert!(__private::contains(LIST, "admin") && !__private::contains(LIST, "admi"));
    }

    #[test]
    fn every_platform_route_is_marked() {
        for route in crate::routes() {
            let (listed, _) = table::describe(&route);
            assert!(
                listed.policy.is_some(),
                "platform route {} {} has neither #[requires] nor #[public]",
                route.method,
                route.uri
            );
        }
    }
}
