//! The route table: every mounted route with the policy its handler was
//! marked with, and the fairing's checks of it at ignite.

use std::fmt;

use auth_core::tenancy::RoleSet;
use rocket::{Phase, Rocket, Route, http::Method, http::uri::Origin};

use super::Condition;

/// Route names of routes made public with [`public`] start with this: they
/// have no handler of the host's that a marker could be put on.
const PUBLIC_PREFIX: &str = "public: ";

/// A mounted route and what guards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    pub method: Method,
    /// The full path as mounted, e.g. `/api/tenant/<tenant_id>/data`.
    pub path: String,
    /// The route's name: its handler's.
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
pub(super) enum Found {
    Marked(Marking),
    Unmarked,
    /// Handlers in different modules with the same name, method and path, marked differently.
    Ambiguous,
}

pub(super) fn describe(route: &Route) -> (RoutePolicy, Found) {
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
