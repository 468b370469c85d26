//! `GET /metrics`: the platform's metrics ([`auth_core::metrics`]) in the
//! Prometheus text format, for a scraper that sends `metrics.token` as a
//! bearer token. The fairing mounts it at `/` only when `metrics.enabled`.

use std::sync::OnceLock;

use auth_core::{Auth, AuthError, Secret};
use auth_macros::public;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rocket::{
    Request, get,
    http::ContentType,
    outcome::Outcome,
    request::{self, FromRequest},
};

use crate::routes::ApiResult;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use; `None` when the
/// host has installed a recorder of its own, which then exports these metrics.
pub(crate) fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    auth_core::metrics::describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("a metrics recorder is installed already: GET /metrics stays off, it exports them");
                    None
                }
            }
        })
        .as_ref()
}

/// A request that carries `metrics.token` as its bearer token.
pub(crate) struct Scraper;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Scraper {
    type Error = crate::ApiError;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let expected = request.rocket().state::<Auth>().and_then(|auth| auth.config().metrics.token.clone());
        let presented = request.headers().get_one("Authorization").and_then(|v| v.strip_prefix("Bearer "));
        match (expected, presented) {
            (Some(expected), Some(presented)) if Secret::new(presented.trim()) == expected => Outcome::Success(Scraper),
            (_, None) => crate::guards::reject(request, AuthError::MissingToken.into()),
            _ => crate::guards::reject(request, AuthError::InvalidToken.into()),
        }
    }
}

#[public]
#[get("/metrics")]
pub(crate) fn prometheus_metrics(_scraper: Scraper) -> ApiResult<(ContentType, String)> {
    let recorder = recorder().ok_or(AuthError::NotFound)?;
    recorder.run_upkeep();
    Ok((ContentType::new("text", "plain").with_params(("version", "0.0.4")), recorder.render()))
}
