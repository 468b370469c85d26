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
//! `#[requires]` and `#[public]` register the handler's name, method and path
//! (`inventory`); a mounted route is matched by its name (Rocket names a route
//! after its handler), method and path under its mount point. Two handlers of
//! the same name, method and path in different modules cannot be told apart:
//! if their markings differ, the route is listed as unmarked (rename one).
//! The platform's own routes ([`routes()`](crate::routes), [`well_known()`](crate::well_known))
//! are named `auth_rocket::<handler>` and listed from a table here; routes
//! without a handler of yours (a `FileServer`) are made public with [`public`].

use std::fmt;

use auth_core::{
    AuthError,
    tenancy::{DefaultRoles, MANAGE_MEMBERS, RoleSet, Roles},
};
use rocket::{Phase, Request, Rocket, Route, http::Method, http::uri::Origin};
use uuid::Uuid;

use crate::guards::{AuthUser, path_segment};

/// The path segment `tenant` compares with the token's tenant, unless named.
pub const DEFAULT_TENANT_SEGMENT: &str = "tenant_id";

/// Route names of the platform's own routes start with this.
pub(crate) const PLATFORM_PREFIX: &str = "auth_rocket::";

/// Route names of routes made public with [`public`] start with this.
const PUBLIC_PREFIX: &str = "public: ";

/// One condition of a policy; a policy requires all of its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// A valid access token (what every policy requires anyway).
    Authenticated,
    /// The token is scoped to a tenant where the caller has this role or a higher one.
    Role(&'static str),
    /// The token is scoped to a tenant where the caller's role holds this
    /// permission (granted to it, or to a role below it).
    Permission(&'static str),
    /// The path segment `<name>` is the id of the tenant the token is scoped to.
    Tenant(&'static str),
    /// Said on purpose: the route's `Role`/`Permission` is checked in whichever
    /// tenant the token is scoped to, and its path's tenant segment is not
    /// compared with it (`#[requires]` refuses a role on a tenant path with
    /// neither this nor [`Tenant`](Self::Tenant)). A declaration, not a check:
    /// it always holds, and is never an alternative inside [`Any`](Self::Any).
    AnyTenant,
    /// The account's email address is verified.
    Verified,
    /// Platform staff.
    Staff,
    /// Platform superuser.
    Superuser,
    /// At least one of these holds.
    Any(&'static [Condition]),
}

impl Condition {
    /// The condition's keyword: `role`, `tenant`, `any`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Role(_) => "role",
            Self::Permission(_) => "permission",
            Self::Tenant(_) => "tenant",
            Self::AnyTenant => "any_tenant",
            Self::Verified => "verified",
            Self::Staff => "staff",
            Self::Superuser => "superuser",
            Self::Any(_) => "any",
        }
    }

    /// `Ok` when the condition holds for `user` on `request`; otherwise the
    /// 403 to answer: [`AuthError::NotAMember`] for a token not scoped to the
    /// tenant (or to none), [`AuthError::InsufficientRole`] for a role too low
    /// or without the permission, [`AuthError::EmailNotVerified`], and
    /// [`AuthError::Forbidden`] for `staff`, `superuser`, and an `any` whose
    /// alternatives failed for different reasons.
    pub fn check(&self, user: &AuthUser, request: &Request<'_>, roles: &RoleSet) -> Result<(), AuthError> {
        let holds = |ok: bool, error: AuthError| if ok { Ok(()) } else { Err(error) };
        match *self {
            Self::Authenticated => Ok(()),
            Self::Role(required) => match user.tenant() {
                Some((_, role)) => holds(roles.at_least(role, required), AuthError::InsufficientRole),
                None => Err(AuthError::NotAMember),
            },
            Self::Permission(permission) => match user.tenant() {
                Some((_, role)) => holds(roles.has_permission(role, permission), AuthError::InsufficientRole),
                None => Err(AuthError::NotAMember),
            },
            Self::Tenant(segment) => {
                // A malformed segment is not the token's tenant: 403, never a 500.
                let in_path = path_segment(request, segment).and_then(|s| s.parse::<Uuid>().ok());
                match (user.tenant(), in_path) {
                    (Some((tenant_id, _)), Some(path_id)) if tenant_id == path_id => Ok(()),
                    _ => Err(AuthError::NotAMember),
                }
            }
            Self::AnyTenant => Ok(()),
            Self::Verified => holds(user.email_verified(), AuthError::EmailNotVerified),
            Self::Staff => holds(user.is_staff(), AuthError::Forbidden),
            Self::Superuser => holds(user.is_superuser(), AuthError::Forbidden),
            Self::Any(alternatives) => {
                let mut refusal: Option<AuthError> = None;
                // A declaration that always holds must not make the alternatives pass.
                for alternative in alternatives.iter().filter(|a| **a != Self::AnyTenant) {
                    match alternative.check(user, request, roles) {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            refusal = match refusal {
                                None => Some(error),
                                Some(first) if first.code() == error.code() => Some(first),
                                Some(_) => Some(AuthError::Forbidden),
                            }
                        }
                    }
                }
                Err(refusal.unwrap_or(AuthError::Forbidden))
            }
        }
    }
}

/// As `#[requires]` writes it: `role = "admin"`, `tenant`, `tenant = "org_id"`, `any(staff, superuser)`.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role(name) | Self::Permission(name) => write!(f, "{} = {name:?}", self.kind()),
            Self::Tenant(segment) if *segment == DEFAULT_TENANT_SEGMENT => f.write_str("tenant"),
            Self::Tenant(segment) => write!(f, "tenant = {segment:?}"),
            Self::Any(alternatives) => write!(f, "any({})", Listed(alternatives)),
            _ => f.write_str(self.kind()),
        }
    }
}

/// Conditions separated by `, `.
struct Listed<'a>(&'a [Condition]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, condition) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{condition}")?;
        }
        Ok(())
    }
}

/// Checks every condition; tenant conditions first, so a token scoped to
/// another tenant learns nothing about what its role would allow here.
pub fn evaluate(
    conditions: &[Condition],
    user: &AuthUser,
    request: &Request<'_>,
    roles: &RoleSet,
) -> Result<(), AuthError> {
    let is_tenant = |c: &&Condition| matches!(c, Condition::Tenant(_));
    let tenants = conditions.iter().filter(is_tenant);
    let others = conditions.iter().filter(|c| !is_tenant(c));
    tenants.chain(others).try_for_each(|condition| condition.check(user, request, roles))
}

/// A role set whose names and permissions are known at compile time, so
/// `#[requires(role = "...")]` and `permission = "..."` are checked when the
/// app compiles. `#[derive(Roles)]` implements it; [`DefaultRoles`] has it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a role set that #[requires] can check",
    label = "not declared with #[derive(Roles)]",
    note = "declare the roles with #[derive(Roles)] on a fieldless enum, highest first; \
            without `roles = ...`, #[requires] uses the default owner > admin > member"
)]
pub trait DeclaredRoles: Roles {
    /// Every role's name as [`Roles::name`] writes it, highest first.
    const NAMES: &'static [&'static str];
    /// Every permission some role grants, in declaration order, each once.
    const PERMISSIONS: &'static [&'static str];

    /// The set as data, for the fairing's check that routes and platform agree.
    fn role_set() -> RoleSet {
        RoleSet::of::<Self>()
    }
}

impl DeclaredRoles for DefaultRoles {
    const NAMES: &'static [&'static str] = &["owner", "admin", "member"];
    const PERMISSIONS: &'static [&'static str] = &[MANAGE_MEMBERS];
}

/// A mounted route and what guards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    pub method: Method,
    /// The full path as mounted, e.g. `/api/tenant/<tenant_id>/data`.
    pub path: String,
    /// The route's name: its handler's (`auth_rocket::<handler>` for the platform's own).
    pub name: Option<String>,
    /// The conditions as `#[requires]` lists them (normalised), `"public"`, or
    /// `None` when the route is unmarked.
    pub policy: Option<&'static str>,
    /// Marked `#[public]`: deliberately open.
    pub public: bool,
    /// The conditions one by one (empty for public and unmarked routes).
    pub conditions: &'static [Condition],
}

impl RoutePolicy {
    /// Whether a condition of this kind (`"tenant"`, `"any_tenant"`, `"role"`,
    /// `"staff"`, …) is required at the top level, outside `any(...)`.
    /// `"authenticated"` holds for every route with a policy, since every
    /// policy requires a token. A route that `requires("any_tenant")` lets a
    /// token scoped to any tenant through whatever its path's tenant segment says.
    pub fn requires(&self, kind: &str) -> bool {
        if kind == "authenticated" {
            return self.policy.is_some() && !self.public;
        }
        self.conditions.iter().any(|condition| condition.kind() == kind)
    }
}

/// `GET /api/staff: staff`, `GET /health: public`, `GET /x: UNMARKED`.
impl fmt::Display for RoutePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.method, self.path, self.policy.unwrap_or("UNMARKED"))
    }
}

/// Every mounted route with its policy, in mount order. For docs, and for a
/// host app's tests of its authorization table:
///
/// ```
/// # let rocket = rocket::build();
/// use auth_rocket::policy::route_table;
///
/// for route in route_table(&rocket).iter().filter(|r| r.path.starts_with("/api/tenant/")) {
///     assert!(route.requires("tenant"), "{route} is not tenant-scoped");
/// }
/// ```
pub fn route_table<P: Phase>(rocket: &Rocket<P>) -> Vec<RoutePolicy> {
    rocket.routes().map(|route| describe(route).0).collect()
}

/// Makes routes without a handler of yours public (a `FileServer`, say): they
/// are listed as `public` and pass the production check. Mount what it returns.
pub fn public(routes: impl Into<Vec<Route>>) -> Vec<Route> {
    let mut routes = routes.into();
    for route in &mut routes {
        let name = route.name.as_deref().map_or_else(|| route.uri.to_string(), str::to_owned);
        route.name = Some(format!("{PUBLIC_PREFIX}{name}").into());
    }
    routes
}

/// How a route is marked, as the registry or the platform's table says.
#[derive(Clone, Copy)]
enum Found {
    Marked(Marking),
    Unmarked,
    /// Handlers in different modules with the same name, method and path, marked differently.
    Ambiguous,
}

fn describe(route: &Route) -> (RoutePolicy, Found) {
    let found = lookup(route);
    let (policy, public, conditions) = match found {
        Found::Marked(Marking::Public) => (Some("public"), true, &[][..]),
        Found::Marked(Marking::Requires { description, conditions, .. }) => (Some(description), false, conditions),
        Found::Unmarked | Found::Ambiguous => (None, false, &[][..]),
    };
    let name = route.name.as_ref().map(|name| name.to_string());
    (RoutePolicy { method: route.method, path: route.uri.as_str().to_owned(), name, policy, public, conditions }, found)
}

fn lookup(route: &Route) -> Found {
    let Some(name) = route.name.as_deref() else { return Found::Unmarked };
    if name.starts_with(PUBLIC_PREFIX) {
        return Found::Marked(Marking::Public);
    }
    if let Some(handler) = name.strip_prefix(PLATFORM_PREFIX) {
        return PLATFORM.iter().find(|(h, _)| *h == handler).map_or(Found::Unmarked, |(_, m)| Found::Marked(*m));
    }
    let is_this = |r: &&Registration| {
        r.handler == name
            && r.method == route.method.as_str()
            && mounted(route.uri.base(), r.path).as_deref() == Some(route.uri.as_str())
    };
    let mut found = Found::Unmarked;
    for registration in inventory::iter::<Registration>().filter(is_this) {
        found = match found {
            Found::Unmarked => Found::Marked(registration.marking),
            Found::Marked(marking) if marking.same_as(&registration.marking) => found,
            Found::Marked(_) | Found::Ambiguous => Found::Ambiguous,
        };
    }
    found
}

/// `path` mounted at `base`, normalised as Rocket does.
fn mounted(base: &str, path: &str) -> Option<String> {
    let unmounted = Origin::parse_route(path).ok()?.into_normalized();
    let joined = format!("{base}/{unmounted}");
    Some(Origin::parse_route(&joined).ok()?.into_normalized().to_string())
}

/// The mounted routes that have neither a policy nor `#[public]` (what the
/// production check refuses), for a host app's own test:
/// `assert!(unmarked_routes(&rocket).is_empty())`.
pub fn unmarked_routes<P: Phase>(rocket: &Rocket<P>) -> Vec<RoutePolicy> {
    route_table(rocket).into_iter().filter(|route| route.policy.is_none()).collect()
}

/// The fairing's check at ignite, once every route is mounted: with
/// `required` (production, unless allowed) no route may be unmarked; otherwise
/// unmarked routes are logged as a warning.
pub(crate) fn check_marks<P: Phase>(rocket: &Rocket<P>, required: bool) -> Result<(), String> {
    let unmarked: Vec<String> = rocket
        .routes()
        .filter_map(|route| match describe(route) {
            (policy, Found::Unmarked) => Some(format!("{} {} (handler `{}`)", policy.method, policy.path, name(route))),
            (policy, Found::Ambiguous) => Some(format!(
                "{} {} (several handlers named `{}` serve it, marked differently: rename one)",
                policy.method,
                policy.path,
                name(route)
            )),
            (_, Found::Marked(_)) => None,
        })
        .collect();
    if unmarked.is_empty() {
        return Ok(());
    }
    let list = unmarked.join(", ");
    if !required {
        tracing::warn!(routes = %list, "routes without #[requires(...)] or #[public]; production refuses to launch");
        return Ok(());
    }
    Err(format!(
        "refusing to launch in production: {} route(s) have neither #[requires(...)] nor #[public]: {list}; \
         mark each (or, deliberately, AuthFairing::allow_unmarked_routes())",
        unmarked.len()
    ))
}

/// A route whose policy checks `role`/`permission` against a role set must
/// run with that set: `role = "admin"` checked against owner > admin > member
/// means nothing on a platform configured with other roles. In every profile.
pub(crate) fn check_roles<P: Phase>(rocket: &Rocket<P>, roles: &RoleSet) -> Result<(), String> {
    let mismatched: Vec<String> = rocket
        .routes()
        .filter_map(|route| match describe(route) {
            (policy, Found::Marked(Marking::Requires { roles: Some(declared), roles_type, .. }))
                if declared() != *roles =>
            {
                Some(format!("{} {} (roles of `{roles_type}`)", policy.method, policy.path))
            }
            _ => None,
        })
        .collect();
    if mismatched.is_empty() {
        return Ok(());
    }
    let names = roles.names().collect::<Vec<_>>().join(" > ");
    Err(format!(
        "{} route(s) check roles the platform does not run with ({names}): {}; \
         give their #[requires] `roles = T` with the T of AuthFairing::with_roles::<T>()",
        mismatched.len(),
        mismatched.join(", ")
    ))
}

fn name(route: &Route) -> &str {
    route.name.as_deref().unwrap_or("?")
}

/// How a handler is marked.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Marking {
    Public,
    Requires {
        description: &'static str,
        conditions: &'static [Condition],
        /// The role set a `role`/`permission` condition was checked against.
        roles: Option<fn() -> RoleSet>,
        roles_type: &'static str,
    },
}

impl Marking {
    fn same_as(&self, other: &Marking) -> bool {
        match (self, other) {
            (Self::Public, Self::Public) => true,
            (Self::Requires { description: a, .. }, Self::Requires { description: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// What `#[requires]` and `#[public]` register for the route listing.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registration {
    /// The handler's name, which Rocket gives its route.
    pub handler: &'static str,
    pub module: &'static str,
    /// Upper case, as `Method::as_str` writes it.
    pub method: &'static str,
    /// As written in the route attribute (unmounted).
    pub path: &'static str,
    pub marking: Marking,
}

inventory::collect!(Registration);

/// The platform's own routes, by handler. The handlers check these themselves
/// (`AuthUser` and `TenantScope` guards, the tenant and permission in the body).
const PLATFORM: &[(&str, Marking)] = {
    const AUTHENTICATED: Marking = requires("authenticated", &[Condition::Authenticated]);
    const TENANT: Marking = requires("tenant", &[Condition::Tenant(DEFAULT_TENANT_SEGMENT)]);
    const MANAGES_MEMBERS: Marking = requires(
        r#"permission = "members.manage", tenant"#,
        &[Condition::Permission(MANAGE_MEMBERS), Condition::Tenant(DEFAULT_TENANT_SEGMENT)],
    );
    const PUBLIC: Marking = Marking::Public;
    &[
        ("register", PUBLIC),
        ("verify_email", PUBLIC),
        ("verify_email_link", PUBLIC),
        ("resend_verification", PUBLIC),
        ("login", PUBLIC),
        ("oauth_authorize", PUBLIC),
        ("oauth_callback", PUBLIC),
        ("oauth_exchange", PUBLIC),
        ("oauth_link", AUTHENTICATED),
        ("refresh", PUBLIC),
        ("logout", AUTHENTICATED),
        ("logout_all", AUTHENTICATED),
        ("sessions", AUTHENTICATED),
        ("revoke_session", AUTHENTICATED),
        ("me", AUTHENTICATED),
        ("update_profile", AUTHENTICATED),
        ("change_password", AUTHENTICATED),
        ("request_password_reset", PUBLIC),
        ("confirm_password_reset", PUBLIC),
        ("create_tenant", AUTHENTICATED),
        ("tenants", AUTHENTICATED),
        ("members", TENANT),
        ("add_member", MANAGES_MEMBERS),
        ("remove_member", MANAGES_MEMBERS),
        ("tenant_token", AUTHENTICATED),
        ("jwks", PUBLIC),
        ("oauth_authorize", PUBLIC),
        ("oauth_callback", PUBLIC),
        ("openapi_json", PUBLIC),
        ("well_known_jwks", PUBLIC),
    ]
};

const fn requires(description: &'static str, conditions: &'static [Condition]) -> Marking {
    Marking::Requires { description, conditions, roles: None, roles_type: "" }
}

/// Names the platform's routes `auth_rocket::<handler>`, for the listing.
pub(crate) fn platform(mut routes: Vec<Route>) -> Vec<Route> {
    for route in &mut routes {
        if let Some(name) = &route.name {
            route.name = Some(format!("{PLATFORM_PREFIX}{name}").into());
        }
    }
    routes
}

/// What the code `#[requires]` and `#[derive(Roles)]` generate refers to.
#[doc(hidden)]
pub mod __private {
    pub use super::{DeclaredRoles, Marking, Registration};
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
    fn every_platform_route_is_in_the_table() {
        for route in crate::routes().iter().chain(&crate::well_known()) {
            let name = route.name.as_deref().unwrap_or_default();
            assert!(
                name.strip_prefix(PLATFORM_PREFIX).is_some_and(|handler| PLATFORM.iter().any(|(h, _)| *h == handler)),
                "platform route {name} ({} {}) has no entry in policy::PLATFORM",
                route.method,
                route.uri
            );
        }
    }

    #[test]
    fn platform_descriptions_match_their_conditions() {
        for (handler, marking) in PLATFORM {
            if let Marking::Requires { description, conditions, .. } = marking {
                let mut listed: Vec<String> = conditions.iter().map(ToString::to_string).collect();
                listed.sort();
                let mut described: Vec<&str> = description.split(", ").collect();
                described.sort();
                assert_eq!(listed, described, "{handler}");
            }
        }
    }

    #[test]
    fn mounted_paths_are_normalised_as_rocket_does() {
        assert_eq!(mounted("/api", "/tenant/<tenant_id>/data").as_deref(), Some("/api/tenant/<tenant_id>/data"));
        assert_eq!(mounted("/", "/").as_deref(), Some("/"));
        assert_eq!(mounted("/", "/verify-email?<token>").as_deref(), Some("/verify-email?<token>"));
    }
}
