//! [`JsonBody`]: the JSON data guard of the contract. Bodies over
//! `http.max_body_bytes` are 413, malformed JSON is 400, and well-formed JSON
//! of the wrong shape is 422 with `fields` naming the offending path.

use auth_core::{Auth, AuthError, FieldErrors};
use rocket::{
    Data, Request,
    data::{self, FromData, ToByteUnit},
    http::Status,
    outcome::Outcome,
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, stash};

/// A request body deserialised from JSON.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Deserialises `bytes`, keeping the path of the first mismatch. Every body
/// of the contract is a JSON object: serde would read a struct from an array too.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => ApiError::Auth(FieldErrors::single("body", "must be a JSON object")),
            Err(_) => ApiError::Auth(AuthError::MalformedRequest),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.classify() == serde_json::error::Category::Data {
            let mut fields = FieldErrors::new();
            // serde reports a missing field at the parent path, in its message.
            let message = inner.to_string();
            let field = match message.strip_prefix("missing field `") {
                Some(rest) => rest.split('`').next().unwrap_or("body").to_owned(),
                None if path == "." => "body".to_owned(),
                None => path,
            };
            let message = message.split(" at line ").next().unwrap_or("invalid value").to_owned();
            fields.add(&field, message);
            ApiError::Auth(AuthError::Validation(fields))
        } else {
            ApiError::Auth(AuthError::MalformedRequest)
        }
    })
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for JsonBody<T> {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let limit = request.rocket().state::<Auth>().map_or(16 * 1024, |auth| auth.config().http.max_body_bytes);
        let result = match data.open(limit.bytes()).into_bytes().await {
            Ok(bytes) if !bytes.is_complete() => Err(ApiError::Auth(AuthError::PayloadTooLarge)),
            Ok(bytes) => parse(&bytes.into_inner()),
            Err(_) => Err(ApiError::Auth(AuthError::MalformedRequest)),
        };
        match result {
            Ok(value) => Outcome::Success(JsonBody(value)),
            Err(error) => {
                let status: Status = error.status();
                stash(request, error);
                Outcome::Error((status, ApiError::Status(status)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct AllOptional {
        #[serde(default)]
        #[allow(dead_code)]
        email: Option<String>,
    }

    fn body_error(result: Result<AllOptional, ApiError>) -> Option<Vec<String>> {
        match result {
            Err(ApiError::Auth(AuthError::Validation(fields))) => fields.get("body").map(<[String]>::to_vec),
            other => panic!("not a 422: {other:?}"),
        }
    }

    #[test]
    fn a_body_is_a_json_object() {
        assert!(parse::<AllOptional>(b" \n{}").is_ok());
        // serde reads a struct from an array; the contract does not.
        let not_an_object = Some(vec!["must be a JSON object".to_owned()]);
        assert_eq!(body_error(parse(b"[]")), not_an_object);
        assert_eq!(body_error(parse(b" [\"ada@example.com\"]")), not_an_object);
        assert_eq!(body_error(parse(b"null")), not_an_object);
        assert!(matches!(parse::<AllOptional>(b"[1,"), Err(ApiError::Auth(AuthError::MalformedRequest))));
        assert!(matches!(parse::<AllOptional>(b""), Err(ApiError::Auth(AuthError::MalformedRequest))));
    }
}
