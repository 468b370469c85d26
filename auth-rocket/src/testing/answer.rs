//! [`Answer`]: one HTTP answer and the assertions the checks make about it.

use std::fmt;

use rocket::http::Method;
use serde_json::Value;

use super::LEAKS;

/// One HTTP answer, with what the checks look at.
#[derive(Debug, Clone)]
pub struct Answer {
    pub method: Method,
    pub uri: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub cache_control: Option<String>,
    /// `Allow`, on a 405.
    pub allow: Option<String>,
    pub text: String,
    /// The body as JSON; `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Answer {
    /// Reads a local client's response (for tests that send their own requests).
    pub async fn read(method: Method, uri: String, response: rocket::local::asynchronous::LocalResponse<'_>) -> Self {
        let status = response.status().code;
        let header = |name: &str| response.headers().get_one(name).map(str::to_owned);
        let (www_authenticate, retry_after) = (header("WWW-Authenticate"), header("Retry-After"));
        let (cache_control, allow) = (header("Cache-Control"), header("Allow"));
        let content_type = response.content_type().map(|ct| ct.to_string());
        let text = response.into_string().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { method, uri, status, content_type, www_authenticate, retry_after, cache_control, allow, text, json }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.text.clone();
        if text.len() > 600 {
            let mut end = 600;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        write!(f, "{} {} answered {}", self.method, self.uri, self.status)?;
        if let Some(challenge) = &self.www_authenticate {
            write!(f, " (WWW-Authenticate: {challenge})")?;
        }
        write!(f, ": {text}")
    }
}

impl Answer {
    /// `error.code` of an error body.
    pub fn code(&self) -> Option<&str> {
        self.json.pointer("/error/code").and_then(Value::as_str)
    }

    /// The names in `error.fields`.
    pub fn fields(&self) -> Vec<String> {
        self.json
            .pointer("/error/fields")
            .and_then(Value::as_object)
            .map_or_else(Vec::new, |f| f.keys().cloned().collect())
    }

    pub fn is_html(&self) -> bool {
        self.content_type.as_deref().is_some_and(|ct| ct.starts_with("text/html"))
    }

    /// Panics unless the status is `status`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "expected status {status}: {self}");
        self
    }

    /// Panics unless this is an error answer with `status` and `error.code == code`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        self.assert_error_body();
        assert_eq!(self.code(), Some(code), "expected error code {code:?}: {self}");
        self
    }

    /// Panics unless this is a 422 whose `error.fields` names `field`.
    #[track_caller]
    pub fn expect_invalid(&self, field: &str) -> &Self {
        self.expect(422);
        self.assert_error_body();
        assert!(self.fields().iter().any(|f| f == field), "expected `fields` to name {field:?}: {self}");
        self
    }

    /// Panics unless the body is the contract's error body:
    /// `{"error": {"code", "message", "fields"?}}` as JSON, `fields` only on a
    /// 422, no other member, nothing that looks like internals, and no 500.
    #[track_caller]
    pub fn assert_error_body(&self) {
        assert!(self.status >= 400, "expected an error answer: {self}");
        assert_ne!(self.status, 500, "a client's request must never cause a 500: {self}");
        let json_type = self.content_type.as_deref().is_some_and(|ct| ct.starts_with("application/json"));
        assert!(json_type, "an error body must be JSON (Content-Type {:?}): {self}", self.content_type);
        let top = self.json.as_object().unwrap_or_else(|| panic!("an error body must be a JSON object: {self}"));
        assert!(top.len() == 1 && top.contains_key("error"), "an error body has exactly one member, `error`: {self}");
        let error = top["error"].as_object().unwrap_or_else(|| panic!("`error` must be an object: {self}"));
        let code = error.get("code").and_then(Value::as_str).unwrap_or_default();
        assert!(!code.is_empty(), "`error.code` must be a non-empty string: {self}");
        assert!(error.get("message").is_some_and(Value::is_string), "`error.message` must be a string: {self}");
        for key in error.keys() {
            // The second step of a login travels in its `403 mfa_required`.
            let second_step = code == "mfa_required" && ["mfa_token", "methods"].contains(&key.as_str());
            assert!(
                ["code", "message", "fields"].contains(&key.as_str()) || second_step,
                "unexpected member error.{key}: {self}"
            );
        }
        if let Some(fields) = error.get("fields") {
            assert_eq!(self.status, 422, "`fields` belongs to validation errors (422) only: {self}");
            let fields = fields.as_object().unwrap_or_else(|| panic!("`error.fields` must be an object: {self}"));
            assert!(!fields.is_empty(), "`error.fields` must not be empty: {self}");
            for (name, messages) in fields {
                let ok = messages.as_array().is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string));
                assert!(ok, "error.fields.{name} must be a non-empty list of strings: {self}");
            }
        }
        let lower = self.text.to_lowercase();
        for leak in LEAKS {
            assert!(!lower.contains(leak), "the error body looks like it reveals internals ({leak:?}): {self}");
        }
    }

    /// Whether the JSON body has a member at `pointer`.
    pub fn has(&self, pointer: &str) -> bool {
        self.json.pointer(pointer).is_some()
    }

    /// A member of the JSON body, or a panic naming it.
    #[track_caller]
    pub fn get(&self, pointer: &str) -> &Value {
        self.json.pointer(pointer).unwrap_or_else(|| panic!("no {pointer} in the body: {self}"))
    }

    /// A string member of the JSON body, or a panic naming it.
    #[track_caller]
    pub fn str(&self, pointer: &str) -> &str {
        self.get(pointer).as_str().unwrap_or_else(|| panic!("{pointer} must be a string: {self}"))
    }
}

/// Panics unless `answer` carries an RFC 6750 challenge: `Bearer` alone for a
/// missing token (`error == None`), `Bearer error="<error>"` otherwise.
#[track_caller]
pub fn assert_bearer_challenge(answer: &Answer, error: Option<&str>) {
    let challenge = answer.www_authenticate.as_deref().unwrap_or_else(|| panic!("no WWW-Authenticate: {answer}"));
    assert!(challenge.starts_with("Bearer"), "the challenge is a Bearer one: {answer}");
    match error {
        None => assert!(!challenge.contains("error="), "a missing token carries no error code: {answer}"),
        Some(error) => {
            let expected = format!("error=\"{error}\"");
            assert!(challenge.contains(&expected), "expected {expected} in WWW-Authenticate: {answer}");
        }
    }
}
