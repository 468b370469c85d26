//! The operators' webhook subscriptions (see `crate::webhooks`): subscribe,
//! list, unsubscribe, and each endpoint's deliveries. Changes are audited
//! with their actor; without `mfa.encryption_key` there are no webhooks (404).

use serde_json::json;
use uuid::Uuid;

use super::{Operator, Webhooks};
use crate::{
    audit::{AuditEvent, ClientInfo},
    contract::{WebhookCreated, WebhookDeliveryView, WebhookEndpointView, WebhookRequest},
    error::{AuthError, FieldErrors, Result},
    secret::Secret,
    store::{StoredDelivery, StoredEndpoint, time},
    webhooks::WebhookSender,
};

/// The deliveries listed per endpoint, the newest.
const DELIVERIES_LISTED: i64 = 100;
/// Endpoints per deployment: a webhook is an operator's integration, not a user's.
const MAX_ENDPOINTS: usize = 50;

impl Webhooks<'_> {
    fn sender(&self) -> Result<&WebhookSender> {
        self.inner.webhooks.as_deref().ok_or(AuthError::NotFound)
    }

    /// Webhooks are a superuser's, read from the store rather than from the
    /// token that reached the route: a subscription outlives any token, so a
    /// stale or forged `superuser` claim must not make one
    /// ([`AuthError::Forbidden`], audited as a denial).
    async fn check_superuser(&self, by: Operator, client: &ClientInfo) -> Result<()> {
        let Operator::Staff(actor) = by else { return Ok(()) };
        let user = self.inner.store.user(actor).await?;
        if !user.is_some_and(|user| user.is_active && user.is_superuser) {
            self.record_denied(Some(actor), client, "webhooks", json!({}));
            return Err(AuthError::Forbidden);
        }
        Ok(())
    }

    /// Subscribes `request.url` to `request.events`: the endpoint and its secret, shown once.
    #[tracing::instrument(name = "auth.webhooks.subscribe", skip_all)]
    pub async fn subscribe(
        &self,
        by: Operator,
        request: &WebhookRequest,
        client: &ClientInfo,
    ) -> Result<WebhookCreated> {
        let sender = self.sender()?;
        self.check_superuser(by, client).await?;
        let mut problems = FieldErrors::new();
        if request.url.len() > 2048 {
            problems.add("url", "at most 2048 characters");
        } else if let Some(reason) = sender.refuses(&request.url) {
            problems.add("url", reason);
        }
        if request.events.is_empty() || request.events.len() > 64 {
            problems.add("events", "name 1 to 64 event types");
        }
        for event in &request.events {
            if event != "*" && AuditEvent::from_name(event).is_none() {
                problems.add("events", format!("{event:?} is no event type"));
            }
        }
        problems.into_result()?;
        if self.inner.store.endpoints().await?.len() >= MAX_ENDPOINTS {
            return Err(FieldErrors::single("url", format!("at most {MAX_ENDPOINTS} endpoints")));
        }
        let mut events = request.events.clone();
        events.sort();
        events.dedup();
        let (endpoint, secret) = sender.new_endpoint(&request.url, &events, self.inner.clock.now_ms());
        self.inner.store.insert_endpoint(&endpoint).await?;
        sender.reload(&self.inner.store).await?;
        let detail = json!({ "actor": by.audit_value(), "endpoint": endpoint.id, "events": events });
        self.audit(AuditEvent::WebhookSubscribed, None, client, detail).await;
        Ok(WebhookCreated { endpoint: view(&endpoint), secret: Secret::new(secret) })
    }

    pub async fn endpoints(&self) -> Result<Vec<WebhookEndpointView>> {
        self.sender()?;
        Ok(self.inner.store.endpoints().await?.iter().map(view).collect())
    }

    /// Removes endpoint `id` and its deliveries (pending ones are not sent).
    #[tracing::instrument(name = "auth.webhooks.unsubscribe", skip_all)]
    pub async fn unsubscribe(&self, by: Operator, id: Uuid, client: &ClientInfo) -> Result<()> {
        let sender = self.sender()?;
        self.check_superuser(by, client).await?;
        if !self.inner.store.delete_endpoint(id).await? {
            return Err(AuthError::NotFound);
        }
        sender.reload(&self.inner.store).await?;
        let detail = json!({ "actor": by.audit_value(), "endpoint": id });
        self.audit(AuditEvent::WebhookUnsubscribed, None, client, detail).await;
        Ok(())
    }

    /// The newest deliveries to endpoint `id`, newest first.
    pub async fn deliveries(&self, id: Uuid) -> Result<Vec<WebhookDeliveryView>> {
        self.sender()?;
        if !self.inner.store.endpoints().await?.iter().any(|e| e.id == id) {
            return Err(AuthError::NotFound);
        }
        Ok(self.inner.store.deliveries(id, DELIVERIES_LISTED).await?.iter().map(delivery_view).collect())
    }
}

fn view(endpoint: &StoredEndpoint) -> WebhookEndpointView {
    WebhookEndpointView {
        id: endpoint.id,
        url: endpoint.url.clone(),
        events: endpoint.events.split(',').map(str::to_owned).collect(),
        created_at: time(endpoint.created_at),
    }
}

fn delivery_view(delivery: &StoredDelivery) -> WebhookDeliveryView {
    WebhookDeliveryView {
        id: delivery.id,
        event: delivery.event.clone(),
        state: delivery.state.clone(),
        attempts: delivery.attempts,
        created_at: time(delivery.created_at),
        next_attempt_at: (delivery.state == "pending").then(|| time(delivery.next_attempt_at)),
        last_status: delivery.last_status,
        last_error: delivery.last_error.clone(),
        delivered_at: delivery.delivered_at.map(time),
    }
}
