//! `#[requires(...)]`, `#[public]` and `#[derive(Roles)]`: a Rocket route's
//! authorization policy as an attribute, checked when the app compiles and run
//! as a request guard before the handler.
//!
//! A host app reaches them through the facade (`auth_platform::{requires,
//! public, Roles}`); the code they generate refers to `auth-rocket`, under the
//! name the host depends on it (`auth_rocket`, or `auth_platform::rocket`
//! through the facade, found with `proc-macro-crate`).
//!
//! ```
//! use auth_macros::{public, requires};
//! use auth_rocket::TenantScope;
//! use rocket::{get, post, routes, serde::json::Json};
//!
//! #[requires(role = "admin", tenant)] // above the route attribute
//! #[get("/tenant/<tenant_id>/reports")]
//! fn reports(tenant_id: &str, scope: TenantScope) -> String {
//!     format!("{tenant_id}: reports for an {}", scope.role)
//! }
//!
//! #[requires(any(staff, role = "owner"), verified)]
//! #[post("/imports", data = "<rows>")]
//! fn import(rows: Json<Vec<String>>) -> String {
//!     format!("{} rows", rows.len()) // never reached by a caller the policy refuses
//! }
//!
//! #[public]
//! #[get("/health")]
//! fn health() -> &'static str {
//!     "ok"
//! }
//!
//! let rocket = rocket::build().mount("/api", routes![reports, import, health]);
//! ```
//!
//! # Grammar
//!
//! ```text
//! #[requires(item, item, ...)]        every condition must hold; at least one
//! item      := condition | roles = TypePath
//! condition := authenticated            any valid access token
//!            | role = "name"            the token is scoped to a tenant where the caller's
//!                                       role is `name` or higher
//!            | permission = "name"      the token is scoped to a tenant where the caller's role
//!                                       holds `name` (granted to it or to a role below it)
//!            | tenant                   the path segment <tenant_id> is the token's tenant
//!            | tenant = "segment"       the same for the path segment <segment>
//!            | any_tenant               on purpose: the role or permission is checked in whichever
//!                                       tenant the token is scoped to, not the path's
//!            | verified                 the account's email address is verified
//!            | staff                    platform staff
//!            | superuser                platform superuser
//!            | mfa                      the session proved more than one factor: the token's amr
//!                                       holds `mfa`, `otp`, `hwk` or `swk`
//!            | recent_auth = "10m"      the token's auth_time is at most this old: a whole number
//!                                       and s, m or h, from 1s to 24h
//!            | any(condition, ...)      at least one of these holds (not nested, not empty)
//! #[public]                           the route is open on purpose
//! ```
//!
//! `role` and `permission` without `tenant` accept a token scoped to any
//! tenant; with `tenant`, it must be the path's (a route with a tenant
//! parameter must say which, see [Tenant paths](#tenant-paths)). Every policy
//! requires a valid token: without one the answer is 401 with
//! `WWW-Authenticate: Bearer`; a valid token that does not satisfy the policy
//! gets 403 (`not_a_member` for a token scoped to another tenant, to none, or
//! a malformed segment;
//! `insufficient_role`, with `WWW-Authenticate: Bearer error="insufficient_scope"`,
//! for a role too low or without the permission; `email_not_verified`;
//! `forbidden` for `staff`, `superuser`, and an `any` whose alternatives
//! failed for different reasons; and for step-up, below, `mfa_required` or
//! `reauthentication_required`). Tenant conditions are checked first, so a
//! token for another tenant learns nothing about what its role would allow,
//! and the step-up conditions last, so nobody is asked to step up for a
//! route that would refuse them anyway.
//!
//! ## Step-up
//!
//! `mfa` and `recent_auth` read how and when the user signed in, from the
//! token's `amr` (RFC 8176) and `auth_time` claims, which every refresh and
//! tenant token of a session repeats unchanged: a refresh never makes a
//! sign-in recent or adds a factor. No database is read. A refusal is 403
//! with the RFC 9470 challenge, so that a client knows to step up (sign in
//! again, or prove a second factor) and retry:
//!
//! ```text
//! #[requires(mfa)]                 403 mfa_required
//!                                  WWW-Authenticate: Bearer error="insufficient_user_authentication"
//! #[requires(recent_auth = "10m")] 403 reauthentication_required
//!                                  WWW-Authenticate: Bearer error="insufficient_user_authentication", max_age="600"
//! ```
//!
//! `recent_auth` compares `auth_time` with the engine's clock, without
//! leeway. Inside `any(...)` both work as alternatives; an `any` of only
//! refused step-ups answers `reauthentication_required` (a fresh sign-in
//! satisfies it), beside another kind of refusal it is `forbidden`.
//!
//! ```
//! # use auth_macros::requires;
//! # use rocket::delete;
//! /// A second factor, proved (or signed in with) in the last five minutes.
//! #[requires(mfa, recent_auth = "5m")]
//! #[delete("/me/passkeys/<id>")]
//! fn delete_passkey(id: &str) -> &str {
//!     id
//! }
//! ```
//!
//! ## Tenant paths
//!
//! A route whose path or query has a tenant parameter must say in which
//! tenant its `role` and `permission` (inside `any(...)` too) are checked:
//! `tenant` (or `tenant = "segment"`), outside `any(...)`, for the path's;
//! or `any_tenant` for whichever tenant the token is scoped to, when that is
//! what the route means. Without either it does not compile, because an
//! admin of tenant B would pass on `/tenant/<tenant_id A>/…` for want of one
//! word. A parameter is a tenant's when a word of its name (split on `_`) is
//! `tenant`, `org`, `organization` or `organisation`: `<tenant_id>`,
//! `<tenant>`, `<org_id>`, `<organization_id>`, `<parent_org>`; not
//! `<orgs>`, `<team_id>`, `<id>`. A top-level `tenant` counts whichever
//! segment it names (the role is then checked in that segment's tenant); a
//! `tenant` inside `any(...)` does not (its alternatives pass without it).
//!
//! ```
//! # use auth_macros::requires;
//! # use rocket::get;
//! /// The role of whichever tenant the token is scoped to: a B-scoped admin
//! /// passes on A's path; the handler must not treat <tenant_id> as checked.
//! #[requires(role = "admin", any_tenant)]
//! #[get("/tenant/<tenant_id>/status")]
//! fn status(tenant_id: &str) -> &str {
//!     tenant_id
//! }
//! ```
//!
//! `any_tenant` conflicts with `tenant`, is no alternative inside `any(...)`,
//! needs a `role` or `permission` to qualify, and checks nothing at run time:
//! it is a declaration, listed by `auth_rocket::policy::route_table` so that a
//! host's tests can find such routes (`route.requires("any_tenant")`). A
//! route that wants "this tenant's admin, or staff" cannot be one policy yet:
//! `any(staff, role = "admin"), tenant` asks staff to be scoped to the tenant too.
//!
//! ## Roles
//!
//! `role` and `permission` names are checked at compile time against a role
//! set: the default owner > admin > member (admins are granted
//! `members.manage`), or the app's own, named with `roles = Type`:
//!
//! ```
//! use auth_macros::{Roles, requires};
//!
//! /// Highest first. Written in tokens in snake_case unless renamed.
//! #[derive(Debug, Clone, Copy, PartialEq, Eq, Roles)]
//! enum Newsroom {
//!     #[grants("articles.publish", "members.manage")]
//!     Editor,
//!     #[role(rename = "author")]
//!     #[grants("articles.write")]
//!     Writer,
//!     #[grants("articles.read")] // and so editors and authors may read too
//!     Reader,
//! }
//!
//! #[requires(permission = "articles.read", tenant, roles = Newsroom)]
//! #[rocket::get("/tenant/<tenant_id>/articles")]
//! fn articles(tenant_id: &str) -> &str {
//!     tenant_id
//! }
//!
//! // The platform must run with the same roles (checked at ignite):
//! let fairing = auth_rocket::AuthFairing::with_roles::<Newsroom>();
//! ```
//!
//! `#[derive(Roles)]` implements `auth_core::tenancy::Roles` and
//! `auth_rocket::policy::DeclaredRoles` (the names and permissions as
//! constants, for the compile-time checks). It takes a fieldless,
//! non-generic enum with at least one variant; derive `Clone, Copy,
//! PartialEq, Eq` beside it. A role set is named per attribute rather than
//! once per crate because a proc-macro sees only its own item: `roles =`
//! is what tells it which enum to check against. Routes that name no role
//! or permission need no `roles =`.
//!
//! # Expansion
//!
//! ```text
//! #[requires(role = "admin", tenant)]
//! #[get("/tenant/<tenant_id>/reports")]
//! fn reports(tenant_id: &str) -> String { ... }
//! ```
//!
//! becomes, in outline (`auth_rocket` as the host names it):
//!
//! ```text
//! #[doc(hidden)]
//! struct __AuthPolicy_reports; // same visibility as the handler
//!
//! impl __AuthPolicy_reports {
//!     pub const CONDITIONS: &'static [auth_rocket::policy::Condition] =
//!         &[Condition::Role("admin"), Condition::Tenant("tenant_id")];
//! }
//!
//! impl auth_rocket::Policy for __AuthPolicy_reports {
//!     const DESCRIPTION: &'static str = r#"role = "admin", tenant"#;
//!     fn check(user: &AuthUser, request: &Request<'_>, roles: &RoleSet) -> Result<(), AuthError> {
//!         auth_rocket::policy::evaluate(Self::CONDITIONS, user, request, roles)
//!     }
//! }
//!
//! // One per role or permission name: fails to compile, on the name, if the
//! // role set does not declare it (see the messages below).
//! const _: () = { /* DefaultRoles::NAMES contains "admin", else panic!(...) */ };
//!
//! // For the route listing (`auth_rocket::policy::route_table`).
//! inventory::submit! { Registration { handler: "reports", method: "GET",
//!     path: "/tenant/<tenant_id>/reports", marking: Marking::Requires { .. }, .. } }
//!
//! #[get("/tenant/<tenant_id>/reports")]
//! fn reports(__auth_policy: auth_rocket::Authorized<__AuthPolicy_reports>, tenant_id: &str) -> String { ... }
//! ```
//!
//! The guard is the first parameter: Rocket runs request guards left to
//! right, then path and query parameters, and the data guard last, so an
//! unauthorised caller gets 401/403 and never a 400/422 from parsing the body
//! or a segment. The token is verified once per request and cached, so the
//! handler may still take `AuthUser` or `TenantScope` to read who is asking.
//! The `DESCRIPTION` is normalised: conditions in the order `role`,
//! `permission`, `tenant`, `any_tenant`, `verified`, `staff`, `superuser`,
//! `mfa`, `recent_auth`, `any` (inside `any(...)` too), `tenant = "tenant_id"`
//! written `tenant`, a `recent_auth` window in its largest exact unit
//! (`"600s"` written `"10m"`), and `authenticated` dropped beside other
//! conditions (every policy requires a token). `#[public]` only registers the route. Set `AUTH_MACROS_DEBUG=1`
//! while building to print each expansion on stderr.
//!
//! # Mistakes, at compile time
//!
//! Each is reported on the offending token, every mistake of one attribute in
//! the same compile; the handler is still emitted (without the guard), so
//! nothing else fails because of it. Each has a UI test in `tests/ui/fail/`.
//!
//! ```text
//! error[E0080]: evaluation panicked: unknown role "admni": the default roles are "owner" > "admin" > "member" (highest first); for roles of your own, #[derive(Roles)] on an enum and add roles = YourEnum
//!  --> src/main.rs:4:19
//!   |
//! 4 | #[requires(role = "admni", tenant)]
//!   |                   ^^^^^^^ evaluation of `_` failed here
//!
//! error[E0080]: evaluation panicked: unknown role "admin": the roles of Newsroom are "editor" > "writer" > "reader" (highest first)
//! error[E0080]: evaluation panicked: unknown permission "invoices.raed": the roles of Billing grant "invoices.write", "invoices.read"
//!
//! error: `tenant` compares the path segment <tenant_id> with the token's tenant, but this path has no <tenant_id>: add it to the path, or name the segment with tenant = "..."
//!  --> src/main.rs:5:7
//!   |
//! 5 | #[get("/reports/<id>")]
//!   |       ^^^^^^^^^^^^^^^
//!
//! error: `tenant = "org_id"` names the path segment <org_id>, but this path has none
//!
//! error: `role = "admin"` is checked in whichever tenant the token is scoped to, not in this route's <tenant_id>: a token scoped to another tenant passes here
//!        help: add `tenant`, so that <tenant_id> must be the token's tenant; or, if any tenant will do on purpose, add `any_tenant`
//!  --> src/main.rs:4:19
//!   |
//! 4 | #[requires(role = "admin")]
//!   |                   ^^^^^^^
//!
//! error: `permission = "members.manage"` is checked in whichever tenant …: help: add `tenant = "org_id"`, …
//! error: `role = "admin"` is checked in whichever tenant …: help: add `tenant` beside any(...), …
//! error: `role = "admin"` is checked in whichever tenant …: help: <tenant_id> is a query parameter, which `tenant` cannot compare: move it into the path and add `tenant`; …
//! error: conflicting conditions: `tenant` and `any_tenant`; `tenant` checks the role in the path's tenant, `any_tenant` in whichever tenant the token is scoped to: keep the one you mean
//! error: `any_tenant` is no alternative: it says in which tenant the route's role is checked, so put it outside any(...)
//! error: `any_tenant` says that the route's role or permission is checked in whichever tenant the token is scoped to, but this route checks none: remove it, or add the role = "..." it qualifies
//! error: unknown condition `admin`; #[requires] understands authenticated, role = "...", permission = "...", tenant, tenant = "segment", any_tenant, verified, staff, superuser, mfa, recent_auth = "10m", any(...), and roles = YourRoles
//! error: unknown condition `authenticate`; did you mean `authenticated`? #[requires] understands …
//! error: `staff` is repeated; once is enough
//! error: conflicting conditions: `role = "admin"` and `role = "owner"`; a route requires one minimum role (higher roles pass too): keep the one you mean
//! error: conflicting conditions: `tenant = "a"` and `tenant = "b"`; a token is scoped to one tenant, so two tenant segments cannot both be its tenant
//! error: any() needs at least one alternative, e.g. any(staff, role = "admin")
//! error: any(...) inside any(...) is one any(...): list the alternatives in the outer one
//! error: #[requires] needs at least one condition: #[requires(authenticated)] for any valid token; #[public] marks a route that is open on purpose
//! error: `role` takes a string: role = "admin"
//! error: `staff` takes no value: write just `staff`
//! error: `recent_auth` takes a whole number and a unit, s, m or h: recent_auth = "30s", "10m" or "1h", not "1.5h"
//! error: `recent_auth = "0m"` admits no token: the window must be at least 1s
//! error: `recent_auth = "25h"` is longer than 24h: a sign-in older than a day is no recent one; to admit any session, leave `recent_auth` out
//! error: `recent_auth` takes a duration in a string: recent_auth = "10m"
//! error: conflicting conditions: `recent_auth = "10m"` and `recent_auth = "5m"`; a route has one window for the sign-in's age (the shorter one is what both would require): keep the one you mean
//!
//! error: #[requires] needs a Rocket route attribute (#[get], #[post], …) below it, and none follows it here
//!        place #[requires] above #[get]: attributes expand top-down, and a route attribute above #[requires] has already been expanded by Rocket without it
//!  --> src/main.rs:5:1
//!   |
//! 5 | #[requires(staff)]
//!   | ^^^^^^^^^^^^^^^^^^
//!
//! error: #[requires] goes on a Rocket route handler, a function with #[get], #[post], … below #[requires]
//! error: #[requires] is given twice: merge the conditions into one #[requires(...)]
//! error: a route is either #[public] or #[requires(...)], not both
//!
//! error[E0277]: `std::string::String` is not a role set that #[requires] can check
//!  --> src/main.rs:4:36
//!   |
//! 4 | #[requires(role = "admin", roles = String)]
//!   |                                    ^^^^^^ not declared with #[derive(Roles)]
//!
//! error: #[derive(Roles)] declares roles with an enum: one fieldless variant per role, highest first, e.g. enum AppRoles { Owner, Editor, Viewer }
//! error: role `Admin` has fields; a role is only a name: remove them
//! error: `Owner` and `CoOwner` are both written "owner" in tokens
//! ```
//!
//! A `#[requires]` below `#[get]` cannot be told from one on a function that
//! is no route (Rocket re-emits the function unchanged, and a proc-macro sees
//! only its own item), so both get the same message, which says what to do in
//! either case.
//!
//! # At ignite
//!
//! `auth_rocket::AuthFairing` checks the mounted routes once they are all
//! mounted: in the release profile it refuses to launch while a route has
//! neither `#[requires]` nor `#[public]`, naming each (unless the host calls
//! `AuthFairing::allow_unmarked_routes()`; debug only logs them), and in every
//! profile it refuses routes whose `role`/`permission` names a role set other
//! than the one the platform runs with. `auth_rocket::policy::route_table`
//! lists every mounted route with its policy, for docs and a host's tests.

mod condition;
mod errors;
mod paths;
mod requires;
mod roles;
mod route;

use proc_macro::TokenStream;

/// Guards a Rocket route with a policy: place it above the route attribute.
///
/// ```
/// # use auth_macros::requires;
/// #[requires(role = "member", tenant)]
/// #[rocket::get("/tenant/<tenant_id>/data")]
/// fn data(tenant_id: &str) -> &str {
///     tenant_id
/// }
/// ```
///
/// See the [crate documentation](crate) for the grammar, the expansion and
/// the compile-time errors.
#[proc_macro_attribute]
pub fn requires(args: TokenStream, item: TokenStream) -> TokenStream {
    debug("requires", requires::requires(args.into(), item.into())).into()
}

/// Marks a Rocket route as open on purpose: place it above the route attribute.
///
/// The route is listed as `public` by `auth_rocket::policy::route_table`, and
/// the release check lets it through. It adds no guard.
#[proc_macro_attribute]
pub fn public(args: TokenStream, item: TokenStream) -> TokenStream {
    debug("public", requires::public(args.into(), item.into())).into()
}

/// Declares an app's ordered tenant roles (highest first), their names in
/// tokens (`#[role(rename = "...")]`, snake_case by default) and the
/// permissions each grants (`#[grants("...", ...)]`, inherited by every role
/// above it). See [Roles](crate#roles).
#[proc_macro_derive(Roles, attributes(role, grants))]
pub fn derive_roles(input: TokenStream) -> TokenStream {
    debug("derive(Roles)", roles::derive(input.into())).into()
}

/// With `AUTH_MACROS_DEBUG` set, prints what a macro generated.
fn debug(name: &str, tokens: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    if std::env::var_os("AUTH_MACROS_DEBUG").is_some() {
        eprintln!("#[{name}] expands to:\n{tokens}\n");
    }
    tokens
}
