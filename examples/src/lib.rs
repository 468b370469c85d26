//! The demo host app: the platform mounted at `/api/auth` plus the contract's
//! demo routes, each guarded by `#[requires(...)]` (a request guard the macro
//! adds, run before the handler and before any body is parsed).

use auth_platform::rocket::{AuthFairing, AuthUser, TenantScope};
use auth_platform::{public, requires};
use rocket::{
    Build, Request, Response, Rocket, get,
    http::{ContentType, Header},
    response::{self, Responder},
    routes,
    serde::json::Json,
};
use serde_json::{Value, json};
use uuid::Uuid;

/// Any valid access token.
#[requires(authenticated)]
#[get("/protected")]
fn protected(user: AuthUser) -> Json<Value> {
    Json(json!({ "user_id": user.id() }))
}

/// A token scoped to the path's tenant with at least `member`.
#[requires(role = "member", tenant)]
#[get("/tenant/<tenant_id>/data")]
fn tenant_data(tenant_id: Uuid, scope: TenantScope) -> Json<Value> {
    Json(json!({ "tenant_id": tenant_id, "role": scope.role, "data": ["report-1", "report-2"] }))
}

/// A token scoped to the path's tenant with at least `admin`.
#[requires(role = "admin", tenant)]
#[get("/tenant/<tenant_id>/admin")]
fn tenant_admin(tenant_id: Uuid, user: AuthUser) -> Json<Value> {
    Json(json!({ "tenant_id": tenant_id, "admin": true, "user_id": user.id() }))
}

/// Platform staff.
#[requires(staff)]
#[get("/staff")]
fn staff(user: AuthUser) -> Json<Value> {
    Json(json!({ "staff": true, "user_id": user.id() }))
}

/// The demo's page: signs in with the hosted pages, then calls `/api/protected`
/// from script with the browser session's cookies (`static/demo.js`).
#[public]
#[get("/")]
fn index() -> Page {
    Page(ContentType::HTML, include_str!("../static/index.html"))
}

#[public]
#[get("/demo.js")]
fn demo_script() -> Page {
    Page(ContentType::JavaScript, include_str!("../static/demo.js"))
}

/// A file of the demo's page, with a policy that runs this site's scripts only.
struct Page(ContentType, &'static str);

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        Response::build_from((self.0, self.1).respond_to(request)?)
            .header(Header::new("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"))
            .ok()
    }
}

/// The demo app on `figment` (tests pass their own; `main` uses Rocket's default).
pub fn rocket(figment: rocket::figment::Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(AuthFairing::mounted_at("/api/auth"))
        .mount("/", routes![index, demo_script])
        .mount("/api", routes![protected, tenant_data, tenant_admin, staff])
        // An API-only app: the contract's error bodies everywhere, not only under /api/auth.
        .register("/", auth_platform::rocket::catchers())
}
