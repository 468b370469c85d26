//! The HTTP client openidconnect talks to providers through: reqwest 0.13
//! (rustls on aws-lc-rs, the platform's one crypto provider) behind a small
//! function that openidconnect accepts as its async client.
//!
//! - Redirects are never followed: a discovery document, token endpoint or
//!   JWKS that answers 3xx is an error, not a hop to wherever it points (SSRF).
//! - Every request has a connect and a total timeout, and a response body is
//!   read up to a bound.
//! - Only `https://` URLs, or `http://` on a loopback host (tests), are
//!   fetched. The URLs come from the configured issuer and its discovery
//!   document, never from a token: openidconnect takes keys from the JWKS
//!   only and never dereferences a `jku`, `x5u` or `jwk` header.
//! - No proxy is read from the environment (reqwest's `system-proxy` is off).

use std::{pin::Pin, time::Duration};

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse, url::Url};

use super::settings::is_loopback;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents, JWKS and token responses are a few KiB.
const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// Why a request to a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("refused to fetch {0}: only https, or http on a loopback host")]
    RefusedUrl(String),
    #[error("could not build the request: {0}")]
    Request(#[source] reqwest::Error),
    #[error("the provider could not be reached or did not answer in time: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("the provider's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("could not read the provider's answer: {0}")]
    Response(#[source] openidconnect::http::Error),
}

/// A reqwest client configured for talking to identity providers.
#[derive(Debug, Clone)]
pub(crate) struct ProviderHttp {
    client: reqwest::Client,
}

impl ProviderHttp {
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("auth-platform/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    /// Sends one request for openidconnect; see the module documentation.
    pub(crate) async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let url =
            Url::parse(&request.uri().to_string()).map_err(|_| HttpError::RefusedUrl(request.uri().to_string()))?;
        if !(url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url))) {
            return Err(HttpError::RefusedUrl(url.to_string()));
        }
        let request = reqwest::Request::try_from(request).map_err(HttpError::Request)?;
        let mut response = self.client.execute(request).await.map_err(HttpError::Transport)?;
        let mut builder = openidconnect::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(HttpError::Transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(HttpError::Response)
    }
}

/// openidconnect's async client: a boxed `Send` future, so that handlers
/// awaiting a sign-in stay `Send` (a closure's future trips the compiler's
/// higher-ranked `Send` inference).
impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
