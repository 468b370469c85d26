//! Failed sign-ins spread over accounts or over addresses (see
//! `crate::detection`): counted with the rate limiter's windows, so every
//! instance sharing a Redis limiter shares the counts.

use serde_json::json;

use super::Auth;
use crate::{
    audit::{AuditEvent, ClientInfo},
    error::Result,
    identity::Email,
    ratelimit::{Decision, Quota},
};

impl Auth {
    /// Counts a failed sign-in of `email` from `address` (an address bucket)
    /// towards the credential-stuffing and account-under-attack rules; each
    /// reports once per window.
    pub(super) async fn watch_failures(&self, account: &Email, address: &str, client: &ClientInfo) -> Result<()> {
        let limits = &self.inner.config.rate_limits;
        let window = limits.stuffing_window_secs;
        let email = account.as_str();
        if self.first_in_window(&format!("stuffing:pair:{address}:{email}"), window).await?
            && self
                .reached(&format!("stuffing:accounts:{address}"), limits.stuffing_accounts_per_address, window)
                .await?
        {
            let now = self.inner.clock.now_ms();
            self.inner.suspects.flag(address, now + super::secs_to_ms(window), now);
            if self.first_in_window(&format!("stuffing:reported:{address}"), window).await? {
                let detail = json!({ "address": address, "accounts": limits.stuffing_accounts_per_address });
                self.audit(AuditEvent::CredentialStuffingSuspected, None, client, detail).await;
            }
        }
        if self.first_in_window(&format!("attack:pair:{email}:{address}"), window).await?
            && self.reached(&format!("attack:addresses:{email}"), limits.attack_addresses_per_account, window).await?
            && self.first_in_window(&format!("attack:reported:{email}"), window).await?
        {
            let user_id = self.inner.store.user_by_email(account).await?.map(|(user, _)| user.id);
            let detail = json!({ "email": email, "addresses": limits.attack_addresses_per_account });
            self.audit(AuditEvent::AccountUnderAttack, user_id, client, detail).await;
        }
        Ok(())
    }

    /// Whether `key` is counted for the first time in this window.
    async fn first_in_window(&self, key: &str, window_secs: u64) -> Result<bool> {
        Ok(self.inner.limiter.hit(key, Quota::new(1, window_secs)).await?.is_allowed())
    }

    /// Counts one under `key`; whether the window's count has reached `threshold`.
    async fn reached(&self, key: &str, threshold: u32, window_secs: u64) -> Result<bool> {
        let decision = self.inner.limiter.hit(key, Quota::new(threshold.saturating_sub(1), window_secs)).await?;
        Ok(matches!(decision, Decision::Limited { .. }))
    }
}
