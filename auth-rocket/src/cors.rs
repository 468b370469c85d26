//! CORS for exactly the configured origins. An origin that is not listed gets
//! no CORS headers at all, and nothing is ever reflected from the request
//! except an origin that matched the list. Credentials are never allowed:
//! browser sessions ([`crate::browser`]) serve the site's own pages, and a
//! cross-origin page has no business sending their cookies.

use rocket::{
    Request, Response,
    fairing::{Fairing, Info, Kind},
    http::{Header, Method, Status},
};

pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    pub fn new(origins: &[String]) -> Self {
        Self { origins: origins.to_vec() }
    }
}

#[rocket::async_trait]
impl Fairing for Cors {
    fn info(&self) -> Info {
        Info { name: "auth platform CORS", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let Some(origin) = request.headers().get_one("Origin") else { return };
        if !self.origins.iter().any(|allowed| allowed == origin) {
            return;
        }
        response.set_header(Header::new("Access-Control-Allow-Origin", origin.to_owned()));
        response.adjoin_header(Header::new("Vary", "Origin"));
        if request.method() == Method::Options {
            response.set_header(Header::new("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE"));
            response.set_header(Header::new("Access-Control-Allow-Headers", "Authorization, Content-Type"));
            response.set_header(Header::new("Access-Control-Max-Age", "600"));
            if response.status() == Status::NotFound {
                // A preflight has no route of its own.
                response.set_status(Status::NoContent);
                response.set_sized_body(0, std::io::Cursor::new(""));
            }
        }
    }
}
