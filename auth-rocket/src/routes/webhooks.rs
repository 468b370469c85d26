//! The operators' webhook subscriptions (superusers: an endpoint receives
//! every account's events). See [`auth_core::webhooks`] for the format, the
//! signature and the retries.

use auth_core::{
    Auth, Operator,
    contract::{ErrorBody, WebhookCreated, WebhookDeliveryView, WebhookEndpointView, WebhookRequest},
};
use auth_macros::requires;
use rocket::{State, delete, get, http::Status, post, serde::json::Json};

use super::{ApiResult, NoStore, id_in_path};
use crate::{
    guards::{AuthUser, RemoteClient},
    json::JsonBody,
};

#[utoipa::path(tag = "operators", security(("bearer" = [])), request_body = WebhookRequest, responses((status = 201, description = "Subscribed: the endpoint and its signing secret, shown this once", body = WebhookCreated), (status = 403, description = "The caller is not a superuser (forbidden)", body = ErrorBody), (status = 404, description = "Webhooks are off: no mfa.encryption_key", body = ErrorBody), (status = 422, description = "Not an https URL, a non-public address, or an unknown event type", body = ErrorBody)))]
#[requires(superuser)]
#[post("/admin/webhooks", data = "<body>")]
pub async fn admin_subscribe_webhook(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    body: JsonBody<WebhookRequest>,
) -> ApiResult<NoStore<WebhookCreated>> {
    let created = auth.webhooks().subscribe(Operator::Staff(user.id()), &body.into_inner(), &client.0).await?;
    Ok(NoStore(Status::Created, created))
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), responses((status = 200, description = "The subscribed endpoints", body = [WebhookEndpointView]), (status = 403, description = "The caller is not a superuser (forbidden)", body = ErrorBody), (status = 404, description = "Webhooks are off", body = ErrorBody)))]
#[requires(superuser)]
#[get("/admin/webhooks")]
pub async fn admin_webhooks(auth: &State<Auth>) -> ApiResult<Json<Vec<WebhookEndpointView>>> {
    Ok(Json(auth.webhooks().endpoints().await?))
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Endpoint id")), responses((status = 204, description = "Unsubscribed; its pending deliveries are dropped"), (status = 403, description = "The caller is not a superuser (forbidden)", body = ErrorBody), (status = 404, description = "No such endpoint, or webhooks are off", body = ErrorBody)))]
#[requires(superuser)]
#[delete("/admin/webhooks/<id>")]
pub async fn admin_unsubscribe_webhook(
    auth: &State<Auth>,
    user: AuthUser,
    client: RemoteClient,
    id: &str,
) -> ApiResult<Status> {
    auth.webhooks().unsubscribe(Operator::Staff(user.id()), id_in_path(id)?, &client.0).await?;
    Ok(Status::NoContent)
}

#[utoipa::path(tag = "operators", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Endpoint id")), responses((status = 200, description = "The endpoint's newest 100 deliveries and their state", body = [WebhookDeliveryView]), (status = 403, description = "The caller is not a superuser (forbidden)", body = ErrorBody), (status = 404, description = "No such endpoint, or webhooks are off", body = ErrorBody)))]
#[requires(superuser)]
#[get("/admin/webhooks/<id>/deliveries")]
pub async fn admin_webhook_deliveries(auth: &State<Auth>, id: &str) -> ApiResult<Json<Vec<WebhookDeliveryView>>> {
    Ok(Json(auth.webhooks().deliveries(id_in_path(id)?).await?))
}
