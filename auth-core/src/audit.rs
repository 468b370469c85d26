//! The audit trail: every security event goes to the `audit_events` table and
//! to `tracing` (target `auth::audit`), with the user, IP and user agent when
//! known. Details hold ids and reasons, never a password, token or key.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{AuditRecord, Store};

mod denials;

pub(crate) use denials::Denials;

/// User agents are client-controlled: keep a bounded prefix.
const MAX_USER_AGENT_CHARS: usize = 256;

/// What is known about the client making a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent =
            user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT_CHARS).collect());
        Self { ip, user_agent }
    }
}

/// The security events the platform records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    Registered,
    SuperuserCreated,
    LoginSucceeded,
    LoginFailed,
    Refreshed,
    RefreshReuseDetected,
    LoggedOut,
    LoggedOutEverywhere,
    SessionRevoked,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    EmailVerified,
    VerificationSent,
    AccessDenied,
    UserDeactivated,
    UserActivated,
    TenantCreated,
    MemberRemoved,
    MemberLeft,
    MemberRoleChanged,
    /// A rate limit or login back-off refused a request (recorded once per
    /// window or lock, not for every refused request).
    RateLimited,
    /// A sign-in with an identity provider was refused (bad state, code or
    /// id_token, unverified email, …); the detail names the reason.
    OAuthFailed,
    /// An identity at a provider (issuer, subject) was linked to an existing account.
    IdentityLinked,
    /// An invitation to join a tenant was mailed.
    InvitationSent,
    InvitationRevoked,
    /// An invitation was accepted: its addressee became a member.
    InvitationAccepted,
    /// A link to confirm a new email address was mailed (or, when the address
    /// has an account, a notice saying so).
    EmailChangeRequested,
    EmailChanged,
    /// The account was deleted; its events stay, without email or IP.
    AccountDeleted,
    /// A superuser (or the CLI) made the user staff.
    StaffGranted,
    /// A superuser (or the CLI) took the user's staff flag; their sessions end.
    StaffRevoked,
    /// A TOTP enrolment began (a secret was issued; not a factor until confirmed).
    TotpEnrollmentStarted,
    /// A second factor was turned on (detail: `method`); other sessions end.
    MfaEnabled,
    /// A second factor was turned off (detail: `method`); other sessions end.
    MfaDisabled,
    RecoveryCodesRegenerated,
    /// A recovery code stood in for a second factor (the user is mailed).
    RecoveryCodeUsed,
    /// A correct password of an account with a second factor: the login awaits it.
    SecondFactorRequested,
    /// A wrong or replayed second factor (counts as a failed login).
    SecondFactorFailed,
    /// A tenant's owner changed whether its members need a second factor.
    TenantMfaRequirementChanged,
    /// A passkey was registered (detail: `passkey`); other sessions end.
    PasskeyAdded,
    /// A passkey was removed (detail: `passkey`); other sessions end.
    PasskeyRemoved,
    /// A passkey's signature counter went back: a cloned authenticator; refused.
    PasskeyCloneSuspected,
    /// A sign-in from a device (browser family and network) the account has
    /// not used in 90 days (detail: `session`, `device`); the user is mailed.
    NewDeviceSignIn,
    /// Failed sign-ins for many different accounts from one client address
    /// (detail: `address`, `accounts`); that address's login quota drops.
    CredentialStuffingSuspected,
    /// Failed sign-ins for one account from many client addresses (detail:
    /// `email`, `addresses`).
    AccountUnderAttack,
    /// An operator subscribed a webhook endpoint (detail: `actor`, `endpoint`, `events`).
    WebhookSubscribed,
    /// An operator removed a webhook endpoint (detail: `actor`, `endpoint`).
    WebhookUnsubscribed,
    /// A session was given a chain of tokens scoped to a tenant
    /// (`POST /token/tenant`; detail: `tenant_id`, `session`).
    TenantTokenIssued,
}

impl AuditEvent {
    /// Every event (webhook subscriptions name them); `as_str` is exhaustive,
    /// and a test checks that this list has each of its names once.
    pub const ALL: &[AuditEvent] = &[
        Self::Registered,
        Self::SuperuserCreated,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::Refreshed,
        Self::RefreshReuseDetected,
        Self::LoggedOut,
        Self::LoggedOutEverywhere,
        Self::SessionRevoked,
        Self::PasswordChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::EmailVerified,
        Self::VerificationSent,
        Self::AccessDenied,
        Self::UserDeactivated,
        Self::UserActivated,
        Self::TenantCreated,
        Self::MemberRemoved,
        Self::MemberLeft,
        Self::MemberRoleChanged,
        Self::RateLimited,
        Self::OAuthFailed,
        Self::IdentityLinked,
        Self::InvitationSent,
        Self::InvitationRevoked,
        Self::InvitationAccepted,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::AccountDeleted,
        Self::StaffGranted,
        Self::StaffRevoked,
        Self::TotpEnrollmentStarted,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
        Self::SecondFactorRequested,
        Self::SecondFactorFailed,
        Self::TenantMfaRequirementChanged,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::PasskeyCloneSuspected,
        Self::NewDeviceSignIn,
        Self::CredentialStuffingSuspected,
        Self::AccountUnderAttack,
        Self::WebhookSubscribed,
        Self::WebhookUnsubscribed,
        Self::TenantTokenIssued,
    ];

    /// The event of a name, as [`AuditEvent::as_str`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|event| event.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::SuperuserCreated => "superuser_created",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::Refreshed => "refreshed",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::LoggedOut => "logged_out",
            Self::LoggedOutEverywhere => "logged_out_everywhere",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::EmailVerified => "email_verified",
            Self::VerificationSent => "verification_sent",
            Self::AccessDenied => "access_denied",
            Self::UserDeactivated => "user_deactivated",
            Self::UserActivated => "user_activated",
            Self::TenantCreated => "tenant_created",
            Self::MemberRemoved => "member_removed",
            Self::MemberLeft => "member_left",
            Self::MemberRoleChanged => "member_role_changed",
            Self::RateLimited => "rate_limited",
            Self::OAuthFailed => "oauth_failed",
            Self::IdentityLinked => "identity_linked",
            Self::InvitationSent => "invitation_sent",
            Self::InvitationRevoked => "invitation_revoked",
            Self::InvitationAccepted => "invitation_accepted",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::AccountDeleted => "account_deleted",
            Self::StaffGranted => "staff_granted",
            Self::StaffRevoked => "staff_revoked",
            Self::TotpEnrollmentStarted => "totp_enrollment_started",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::SecondFactorRequested => "second_factor_requested",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::TenantMfaRequirementChanged => "tenant_mfa_requirement_changed",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeyCloneSuspected => "passkey_clone_suspected",
            Self::NewDeviceSignIn => "new_device_sign_in",
            Self::CredentialStuffingSuspected => "credential_stuffing_suspected",
            Self::AccountUnderAttack => "account_under_attack",
            Self::WebhookSubscribed => "webhook_subscribed",
            Self::WebhookUnsubscribed => "webhook_unsubscribed",
            Self::TenantTokenIssued => "tenant_token_issued",
        }
    }

    /// Events an operator should notice: logged at `warn`.
    fn is_alarming(self) -> bool {
        matches!(
            self,
            Self::LoginFailed
                | Self::RefreshReuseDetected
                | Self::AccessDenied
                | Self::RateLimited
                | Self::OAuthFailed
                | Self::SecondFactorFailed
                | Self::PasskeyCloneSuspected
        )
    }
}

/// The security events of an account, the ones its owner is shown
/// (`GET /me/activity`): how it was signed in to or refused, its sessions
/// ending, its password, email and factors changing, and what the operators
/// did to it. Left out: refreshes (a session living, not a sign-in), mails
/// sent, denials of single requests, tenant and membership changes (the
/// tenants show those), and events of no one account (rate limits, refused
/// provider sign-ins). A new event that an account's owner should see about
/// their account belongs here.
pub const SECURITY_EVENTS: &[AuditEvent] = &[
    AuditEvent::Registered,
    AuditEvent::LoginSucceeded,
    AuditEvent::NewDeviceSignIn,
    AuditEvent::AccountUnderAttack,
    AuditEvent::LoginFailed,
    AuditEvent::RefreshReuseDetected,
    AuditEvent::LoggedOut,
    AuditEvent::LoggedOutEverywhere,
    AuditEvent::SessionRevoked,
    AuditEvent::PasswordChanged,
    AuditEvent::PasswordResetRequested,
    AuditEvent::PasswordReset,
    AuditEvent::EmailVerified,
    AuditEvent::EmailChangeRequested,
    AuditEvent::EmailChanged,
    AuditEvent::IdentityLinked,
    AuditEvent::UserDeactivated,
    AuditEvent::UserActivated,
    AuditEvent::StaffGranted,
    AuditEvent::StaffRevoked,
    AuditEvent::MfaEnabled,
    AuditEvent::MfaDisabled,
    AuditEvent::RecoveryCodesRegenerated,
    AuditEvent::RecoveryCodeUsed,
    AuditEvent::SecondFactorFailed,
    AuditEvent::PasskeyAdded,
    AuditEvent::PasskeyRemoved,
    AuditEvent::PasskeyCloneSuspected,
];

/// Writes audit events. Recording never fails the operation it describes: a
/// store error is logged at `error` and the event still reaches `tracing`.
#[derive(Clone)]
pub struct AuditLog {
    store: Store,
    /// `None` without `mfa.encryption_key`: no webhooks.
    webhooks: Option<std::sync::Arc<crate::webhooks::WebhookSender>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("webhooks", &self.webhooks.is_some()).finish_non_exhaustive()
    }
}

impl AuditLog {
    pub(crate) fn new(store: Store, webhooks: Option<std::sync::Arc<crate::webhooks::WebhookSender>>) -> Self {
        Self { store, webhooks }
    }

    pub async fn record(
        &self,
        event: AuditEvent,
        user_id: Option<Uuid>,
        client: &ClientInfo,
        detail: serde_json::Value,
        at: DateTime<Utc>,
    ) {
        let record = self.announce(event, user_id, client, detail, at);
        let (endpoints, payload) = self.outbox(&record);
        let stored = if endpoints.is_empty() {
            self.store.insert_audit(&record).await
        } else {
            // The event and its webhook messages, in one transaction (the outbox).
            async {
                let mut tx = self.store.begin().await?;
                tx.insert_audit_with_deliveries(&record, &endpoints, &payload).await?;
                tx.commit().await
            }
            .await
        };
        if let Err(error) = stored {
            tracing::error!(target: "auth::audit", event = record.event, %error, "audit event not stored");
        }
    }

    /// Writes the event (and its webhook messages) in the caller's
    /// transaction: it commits with the change it describes, or neither does.
    /// Here a store error fails the operation.
    pub(crate) async fn record_in(
        &self,
        tx: &mut crate::store::Transaction,
        event: AuditEvent,
        user_id: Option<Uuid>,
        client: &ClientInfo,
        detail: serde_json::Value,
        at: DateTime<Utc>,
    ) -> crate::Result<()> {
        let record = self.announce(event, user_id, client, detail, at);
        let (endpoints, payload) = self.outbox(&record);
        tx.insert_audit_with_deliveries(&record, &endpoints, &payload).await
    }

    /// The record of an event, counted and logged.
    fn announce(
        &self,
        event: AuditEvent,
        user_id: Option<Uuid>,
        client: &ClientInfo,
        detail: serde_json::Value,
        at: DateTime<Utc>,
    ) -> AuditRecord {
        let record = AuditRecord {
            id: Uuid::now_v7(),
            at,
            event: event.as_str().to_owned(),
            user_id,
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            detail,
        };
        metrics::counter!(crate::metrics::EVENTS, "event" => event.as_str()).increment(1);
        let user = user_id.map(|id| id.to_string());
        if event.is_alarming() {
            tracing::warn!(target: "auth::audit", event = record.event, user, ip = record.ip, detail = %record.detail);
        } else {
            tracing::info!(target: "auth::audit", event = record.event, user, ip = record.ip, detail = %record.detail);
        }
        record
    }

    /// The webhook endpoints subscribed to the event and the message they get
    /// (empty when none is).
    fn outbox(&self, record: &AuditRecord) -> (Vec<Uuid>, String) {
        let endpoints = self.webhooks.as_ref().map(|w| w.subscribed(&record.event)).unwrap_or_default();
        if endpoints.is_empty() {
            return (endpoints, String::new());
        }
        let payload = serde_json::json!({
            "type": record.event,
            "timestamp": record.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": { "id": record.id, "user_id": record.user_id, "detail": record.detail },
        });
        (endpoints, payload.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_listed_once() {
        let names: std::collections::BTreeSet<_> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names.len(), AuditEvent::ALL.len());
        assert_eq!(AuditEvent::from_name("session_revoked"), Some(AuditEvent::SessionRevoked));
    }

    #[test]
    fn user_agents_are_bounded_and_stripped_of_control_characters() {
        let info = ClientInfo::new(None, Some(&format!("agent\r\n{}", "x".repeat(1000))));
        let ua = info.user_agent.unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(!ua.contains('\r') && !ua.contains('\n'));
    }
}
