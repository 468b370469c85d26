//! The OpenAPI 3 document of the routes, generated from the handlers'
//! `#[utoipa::path]` annotations and served at `<mount>/openapi.json` with
//! every path under the mount point the host chose.
//!
//! The annotations say what is particular to a route; [`SharedAnswers`] adds
//! what every route of a kind answers (a JSON body: 400, 413, 422; a bearer
//! token: 401; every route: 503), and [`PasswordPolicy`] and [`RoleNames`]
//! write the deployment's password lengths and tenant roles into the schemas,
//! so the served document is exact for the running configuration.

use auth_core::{Auth, config::PasswordSettings, tenancy::RoleSet};
use auth_macros::public;
use rocket::{Route, State, get, serde::json::Json};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        AllOfBuilder, ContentBuilder, HeaderBuilder, ObjectBuilder, OneOfBuilder, Ref, RefOr, ResponseBuilder, Schema,
        Type,
        path::Operation,
        schema::AnyOfBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::routes::{account, activity, admin, keys, mfa, oauth, passkeys, sessions, tenants, webhooks};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The error answers a route has because of its kind, added where its
/// annotation does not describe them itself, and the headers of every JSON
/// error answer: `WWW-Authenticate` on 401 (RFC 6750), `Retry-After` on 429
/// and 503. (utoipa 6 cannot mark a response header required, so the
/// document lists them without `required`.)
struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                add_shared_answers(operation);
            }
        }
    }
}

fn add_shared_answers(operation: &mut Operation) {
    let mut shared = Vec::new();
    // The keys are served from memory; every other route reads or writes a store.
    if !operation.tags.iter().flatten().any(|tag| tag == "keys") {
        shared.push(("503", "A backing store is unavailable or overloaded (unavailable)"));
    }
    if operation.request_body.is_some() {
        shared.extend([
            ("400", "The body is not JSON (malformed_request)"),
            ("413", "The body is over `http.max_body_bytes` (payload_too_large)"),
            ("422", "Well-formed JSON that fails validation; `fields` names each offending field (validation_error)"),
        ]);
    }
    if operation.security.is_some() {
        shared.push(("401", "Missing, invalid, expired or revoked access token"));
    }
    let answers = &mut operation.responses.responses;
    for (status, description) in shared {
        answers.entry(status.to_owned()).or_insert_with(|| error_answer(description));
    }
    for (status, answer) in answers.iter_mut() {
        let RefOr::T(answer) = answer else { continue };
        if !answer.content.contains_key("application/json") {
            continue; // the HTML pages of emailed links say it in words
        }
        let header = match status.as_str() {
            "401" => {
                ("WWW-Authenticate", r#"The challenge: `Bearer`, or `Bearer error="invalid_token"`"#, "^Bearer( |$)")
            }
            "429" | "503" => ("Retry-After", "Seconds to wait before trying again", "^[1-9][0-9]*$"),
            // A step-up refusal (RFC 9470): the routes that can answer one say so.
            "403" if answer.description.contains("insufficient_user_authentication") => (
                "WWW-Authenticate",
                "What the sign-in lacks: a second factor, or a recent sign-in (`max_age`)",
                "^Bearer error=\"insufficient_user_authentication\"",
            ),
            _ => continue,
        };
        let (name, description, pattern) = header;
        let schema = ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern));
        let header = HeaderBuilder::new().schema(Some(schema)).description(Some(description)).build();
        answer.headers.entry(name.to_owned()).or_insert(RefOr::T(header));
    }
}

/// A failure with the contract's error body.
fn error_answer(description: &str) -> RefOr<utoipa::openapi::Response> {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", body).build())
}

/// The password fields that the policy checks (`password.min_length` and
/// `max_length`, in characters); other password fields take any string.
const POLICY_PASSWORDS: [(&str, &str); 3] = [
    ("RegisterRequest", "password"),
    ("PasswordChangeRequest", "new_password"),
    ("ResetConfirmRequest", "new_password"),
];

struct PasswordPolicy<'a>(&'a PasswordSettings);

impl Modify for PasswordPolicy<'_> {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        for (schema, field) in POLICY_PASSWORDS {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else { continue };
            if let Some(RefOr::T(Schema::Object(password))) = object.properties.get_mut(field) {
                password.min_length = Some(self.0.min_length);
                password.max_length = Some(self.0.max_length);
            }
        }
    }
}

/// The fields that name a tenant role: one of the deployment's roles.
const ROLE_FIELDS: [(&str, &str); 2] = [("InvitationRequest", "role"), ("RoleRequest", "role")];

struct RoleNames<'a>(&'a RoleSet);

impl Modify for RoleNames<'_> {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        for (schema, field) in ROLE_FIELDS {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else { continue };
            if let Some(RefOr::T(Schema::Object(role))) = object.properties.get_mut(field) {
                role.enum_values = Some(self.0.names().map(serde_json::Value::from).collect());
            }
        }
    }
}

/// Bodies whose fields are each optional but not all at once, which a derive
/// cannot say: exactly one (`oneOf`) or at least one (`anyOf`) of the named
/// fields must be present and not null.
const ALTERNATIVE_FIELDS: [Alternatives; 2] = [
    Alternatives {
        schema: "MfaLoginRequest",
        exactly_one: true,
        fields: &[("code", Type::String), ("recovery_code", Type::String), ("credential", Type::Object)],
    },
    Alternatives {
        schema: "RefreshRequest",
        exactly_one: false,
        fields: &[("refresh", Type::String), ("session", Type::String)],
    },
];

struct Alternatives {
    schema: &'static str,
    exactly_one: bool,
    fields: &'static [(&'static str, Type)],
}

struct AlternativeFields;

impl Modify for AlternativeFields {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        for Alternatives { schema: name, exactly_one, fields } in ALTERNATIVE_FIELDS {
            let Some(schema) = components.schemas.remove(name) else { continue };
            let present = fields.iter().map(|(field, kind)| {
                let value = ObjectBuilder::new().schema_type(kind.clone());
                ObjectBuilder::new().required(*field).property(*field, value)
            });
            let choice: Schema = if exactly_one {
                present.fold(OneOfBuilder::new(), |one, p| one.item(p)).into()
            } else {
                present.fold(AnyOfBuilder::new(), |any, p| any.item(p)).into()
            };
            components.schemas.insert(name.to_owned(), AllOfBuilder::new().item(schema).item(choice).into());
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "auth-platform", description = "Authentication and authorization endpoints."),
    paths(
        account::register,
        account::verify_email,
        account::verify_email_link,
        account::resend_verification,
        sessions::login,
        mfa::login_mfa,
        sessions::refresh,
        sessions::logout,
        sessions::logout_all,
        sessions::sessions,
        sessions::revoke_session,
        account::me,
        account::export,
        account::request_email_change,
        account::confirm_email_change,
        account::delete_account,
        account::update_profile,
        account::change_password,
        account::request_password_reset,
        account::confirm_password_reset,
        tenants::create_tenant,
        tenants::tenants,
        tenants::members,
        tenants::invite,
        tenants::invitations,
        tenants::revoke_invitation,
        tenants::accept_invitation,
        tenants::change_member_role,
        tenants::remove_member,
        tenants::tenant_token,
        tenants::tenant_settings,
        mfa::enroll_totp,
        mfa::confirm_totp,
        mfa::disable_totp,
        mfa::regenerate_recovery_codes,
        passkeys::passkey_register_start,
        passkeys::passkey_register_finish,
        passkeys::passkeys,
        passkeys::delete_passkey,
        passkeys::passkey_login_start,
        passkeys::passkey_login_finish,
        passkeys::login_mfa_webauthn_start,
        keys::jwks,
        oauth::oauth_authorize,
        oauth::oauth_callback,
        oauth::oauth_link,
        oauth::oauth_exchange,
        activity::me_activity,
        admin::admin_find_users,
        admin::admin_user,
        admin::admin_deactivate,
        admin::admin_activate,
        admin::admin_logout_all,
        admin::admin_set_staff,
        admin::admin_audit,
        webhooks::admin_subscribe_webhook,
        webhooks::admin_webhooks,
        webhooks::admin_unsubscribe_webhook,
        webhooks::admin_webhook_deliveries,
    ),
    modifiers(&BearerAuth, &SharedAnswers, &AlternativeFields)
)]
struct ApiDoc;

/// The document for a deployment with `password` settings and tenant `roles`,
/// with every path prefixed by `base` (the mount point).
pub fn document(base: &str, password: &PasswordSettings, roles: &RoleSet) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    PasswordPolicy(password).modify(&mut doc);
    RoleNames(roles).modify(&mut doc);
    let base = base.trim_end_matches('/');
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths.into_iter().map(|(path, item)| (format!("{base}{path}"), item)).collect();
    doc
}

#[public]
#[get("/openapi.json")]
pub fn openapi_json(auth: &State<Auth>, route: &Route) -> Json<utoipa::openapi::OpenApi> {
    Json(document(route.uri.base(), &auth.config().password, auth.roles()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn served(password: &PasswordSettings) -> Value {
        serde_json::to_value(document("/api/auth", password, &RoleSet::default())).expect("the document serializes")
    }

    /// Every (method, path, operation) of the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths");
        let mut all = Vec::new();
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("a path item") {
                all.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
        all
    }

    fn is_error_body(answer: &Value) -> bool {
        answer["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"
    }

    #[test]
    fn every_route_says_the_answers_its_kind_shares() {
        let doc = served(&PasswordSettings::default());
        for (method, path, operation) in operations(&doc) {
            let answers = &operation["responses"];
            let mut shared = Vec::new();
            if !operation["requestBody"].is_null() {
                shared.extend(["400", "413", "422"]);
            }
            if !operation["security"].is_null() {
                shared.push("401");
            }
            if !path.ends_with("/jwks.json") {
                shared.push("503");
            }
            for status in shared {
                // The page behind an emailed link answers HTML, its errors too.
                let html = answers[status]["content"]["text/html"].is_object();
                assert!(is_error_body(&answers[status]) || html, "{method} {path}: no {status} with ErrorBody");
            }
            for (status, answer) in answers.as_object().expect("responses") {
                assert!(answer["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}");
                let header = match status.as_str() {
                    "401" => "WWW-Authenticate",
                    "429" | "503" => "Retry-After",
                    _ => continue,
                };
                if is_error_body(answer) {
                    assert!(answer["headers"][header].is_object(), "{method} {path} {status}: no {header}");
                }
            }
        }
    }

    #[test]
    fn password_lengths_are_the_deployments() {
        let settings = PasswordSettings { min_length: 12, max_length: 80, ..PasswordSettings::default() };
        let doc = served(&settings);
        for (schema, field) in POLICY_PASSWORDS {
            let password = &doc["components"]["schemas"][schema]["properties"][field];
            assert_eq!(
                (password["minLength"].as_u64(), password["maxLength"].as_u64()),
                (Some(12), Some(80)),
                "{schema}"
            );
        }
        // A sign-in takes any password: the policy applies to new ones only.
        assert!(doc["components"]["schemas"]["LoginRequest"]["properties"]["password"]["minLength"].is_null());
    }

    #[test]
    fn bodies_of_alternative_fields_say_which_are_needed() {
        let doc = served(&PasswordSettings::default());
        let schema = &doc["components"]["schemas"]["MfaLoginRequest"];
        assert_eq!(schema["allOf"][0]["required"], json!(["mfa_token"]));
        let present = |field: &str, kind: &str| json!({ "type": "object", "required": [field], "properties": { field: { "type": kind } } });
        let factors = [present("code", "string"), present("recovery_code", "string"), present("credential", "object")];
        assert_eq!(schema["allOf"][1]["oneOf"], json!(factors));
        let refresh = &doc["components"]["schemas"]["RefreshRequest"];
        assert_eq!(refresh["allOf"][1]["anyOf"], json!([present("refresh", "string"), present("session", "string")]));
    }

    #[test]
    fn role_fields_name_the_deployments_roles() {
        let doc = served(&PasswordSettings::default());
        for (schema, field) in ROLE_FIELDS {
            let role = &doc["components"]["schemas"][schema]["properties"][field];
            assert_eq!(role["enum"], json!(["owner", "admin", "member"]), "{schema}");
        }
    }

    #[test]
    fn the_operators_routes_say_who_may_use_them() {
        let doc = served(&PasswordSettings::default());
        let admin: Vec<_> = operations(&doc).into_iter().filter(|(_, path, _)| path.contains("/admin/")).collect();
        assert_eq!(admin.len(), 11, "{admin:?}");
        for (method, path, operation) in admin {
            assert!(is_error_body(&operation["responses"]["403"]), "{method} {path}: no 403");
            assert!(!operation["security"].is_null(), "{method} {path}: no bearer token");
        }
    }

    #[test]
    fn paths_are_under_the_mount_point() {
        let doc = served(&PasswordSettings::default());
        assert!(operations(&doc).iter().all(|(_, path, _)| path.starts_with("/api/auth/")));
    }
}
