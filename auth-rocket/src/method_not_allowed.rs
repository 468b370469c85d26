//! `405 Method Not Allowed` with `Allow` (RFC 9110 §15.5.6) for a path of the
//! platform asked with a method it does not take. Rocket answers 404 when no
//! route matches; this fairing turns that answer into the contract's 405 when
//! the path is one of the platform's.

use std::io::Cursor;

use rocket::{
    Request, Response,
    fairing::{Fairing, Info, Kind},
    http::{ContentType, Header, Method, Status},
};

use crate::{
    error::ApiError,
    mounted::{PathPattern, methods_by_path},
};

pub(crate) struct MethodNotAllowed(Vec<(PathPattern, String)>);

impl MethodNotAllowed {
    /// For the platform's routes as mounted in `rocket`.
    pub(crate) fn of<P: rocket::Phase>(rocket: &rocket::Rocket<P>) -> Self {
        let platform: Vec<rocket::Route> = crate::routes().into_iter().chain(crate::well_known()).collect();
        let paths = methods_by_path(crate::mounted::mounts_of(rocket, &platform));
        Self(paths.into_iter().map(|(pattern, methods)| (pattern, allow(&methods))).collect())
    }
}

/// The `Allow` value: the methods served, with `HEAD` wherever `GET` is (Rocket answers it).
fn allow(methods: &[Method]) -> String {
    let order = [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete];
    let allowed = |m: &Method| methods.contains(m) || (*m == Method::Head && methods.contains(&Method::Get));
    order.iter().filter(|m| allowed(m)).map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

#[rocket::async_trait]
impl Fairing for MethodNotAllowed {
    fn info(&self) -> Info {
        Info { name: "auth platform 405", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        // A route that answered 404 itself (an unknown provider, say) is found; a preflight is CORS's.
        if response.status() != Status::NotFound || request.route().is_some() || request.method() == Method::Options {
            return;
        }
        let Some((_, allow)) = self.0.iter().find(|(pattern, _)| pattern.matches(request)) else { return };
        let body = serde_json::to_string(&ApiError::Status(Status::MethodNotAllowed).body()).unwrap_or_default();
        response.set_status(Status::MethodNotAllowed);
        response.set_header(ContentType::JSON);
        response.set_header(Header::new("Allow", allow.clone()));
        response.set_sized_body(body.len(), Cursor::new(body));
    }
}
