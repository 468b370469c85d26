//! The platform's metrics, recorded through the `metrics` facade: nothing is
//! kept until the host (or auth-rocket's `GET /metrics`) installs a recorder.
//! Names follow Prometheus' conventions; labels never hold a user, an address
//! or a secret.

/// Every audit event, by `event` (`login_succeeded`, `login_failed`,
/// `refreshed`, `refresh_reuse_detected`, `rate_limited`, `new_device_sign_in`, …):
/// sign-ins by outcome, refreshes, reuse detections and limited requests are
/// its series.
pub const EVENTS: &str = "auth_events_total";
/// Password hashing jobs waiting for a thread of the pool.
pub const HASHING_QUEUE_DEPTH: &str = "auth_hashing_queue_depth";
/// How long a hashing job waited for a thread, in seconds.
pub const HASHING_WAIT: &str = "auth_hashing_wait_seconds";
/// Revoked sessions held by this instance's revocation list.
pub const REVOCATION_LIST_SIZE: &str = "auth_revocation_list_size";
/// Access tokens in this instance's verified-token cache.
pub const VERIFIED_CACHE_SIZE: &str = "auth_verified_token_cache_size";
/// When this instance last read the revoked sessions (Unix seconds): the poll
/// lag is `time() - auth_revocation_last_poll_timestamp_seconds`.
pub const REVOCATION_LAST_POLL: &str = "auth_revocation_last_poll_timestamp_seconds";
/// Emails handed to the transport, by `outcome` (`sent`, `failed`).
pub const MAIL: &str = "auth_mail_total";
/// Webhook delivery attempts, by `outcome` (`delivered`, `failed`: not yet, or for good).
pub const WEBHOOKS: &str = "auth_webhook_attempts_total";
/// Access tokens refused, by `reason` (`bad signature`, `unknown kid`,
/// `expired`, `revoked`, …: a fixed set of phrases): forged tokens, a key
/// rotated too early, clients that do not refresh.
pub const REJECTED_TOKENS: &str = "auth_access_tokens_rejected_total";

/// Describes every metric to the installed recorder (units and help texts).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(EVENTS, "Audit events, by event");
    describe_gauge!(HASHING_QUEUE_DEPTH, "Password hashing jobs waiting for a thread");
    describe_histogram!(HASHING_WAIT, Unit::Seconds, "Wait of a password hashing job for a thread");
    describe_gauge!(REVOCATION_LIST_SIZE, "Revoked sessions in this instance's revocation list");
    describe_gauge!(VERIFIED_CACHE_SIZE, "Access tokens in this instance's verified-token cache");
    describe_gauge!(REVOCATION_LAST_POLL, Unit::Seconds, "Unix time of this instance's last revocation poll");
    describe_counter!(MAIL, "Emails handed to the mail transport, by outcome");
    describe_counter!(WEBHOOKS, "Webhook delivery attempts, by outcome");
    describe_counter!(REJECTED_TOKENS, "Access tokens refused, by reason");
}
