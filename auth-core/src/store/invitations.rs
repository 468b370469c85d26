//! Invitations to join a tenant.

use uuid::Uuid;

use super::{Inserted, Store, Transaction, inserted, millis, statement, time};
use crate::{error::Result, identity::Email, tenancy::Invitation, tokens::OpaqueToken};

/// The columns of an [`Invitation`], in the order of `InvitationRow`.
macro_rules! columns {
    () => {
        "id, tenant_id, email, role, invited_by, expires_at"
    };
}

type InvitationRow = (Uuid, Uuid, String, String, Option<Uuid>, i64);

fn invitation((id, tenant_id, email, role, invited_by, expires_at): InvitationRow) -> Invitation {
    Invitation { id, tenant_id, email, role, invited_by, expires_at: time(expires_at) }
}

impl Transaction {
    /// Closes the open invitation of `email` to `tenant_id` if it has expired,
    /// so that a new one can be written (one open invitation per address).
    pub(crate) async fn close_expired_invitation(&mut self, tenant_id: Uuid, email: &Email, now: i64) -> Result<()> {
        statement(
            "UPDATE invitations SET revoked_at = $1 WHERE tenant_id = $2 AND email = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= $1",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(email.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    /// [`Inserted::Duplicate`] while an open invitation of the address exists.
    pub(crate) async fn insert_invitation(
        &mut self,
        invitation: &Invitation,
        token: &OpaqueToken,
        now: i64,
    ) -> Result<Inserted> {
        let insert = statement(
            "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(invitation.id)
        .bind(invitation.tenant_id)
        .bind(invitation.email.as_str())
        .bind(invitation.role.as_str())
        .bind(token.hash())
        .bind(invitation.invited_by)
        .bind(now)
        .bind(millis(invitation.expires_at))
        .execute(self)
        .await;
        inserted(insert)
    }

    /// Whether the account of `email` is a member of `tenant_id`.
    pub(crate) async fn is_member_by_email(&mut self, tenant_id: Uuid, email: &Email) -> Result<bool> {
        let (count,): (i64,) = statement(
            "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 AND u.email = $2",
        )
        .bind(tenant_id)
        .bind(email.as_str())
        .fetch_one(self)
        .await?;
        Ok(count > 0)
    }

    /// An open, unexpired invitation of `tenant_id` by id.
    pub(crate) async fn open_invitation(&mut self, tenant_id: Uuid, id: Uuid, now: i64) -> Result<Option<Invitation>> {
        let row: Option<InvitationRow> = statement(concat!(
            "SELECT ",
            columns!(),
            " FROM invitations WHERE id = $1 AND tenant_id = $2 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3"
        ))
        .bind(id)
        .bind(tenant_id)
        .bind(now)
        .fetch_optional(self)
        .await?;
        Ok(row.map(invitation))
    }

    pub(crate) async fn revoke_invitation(&mut self, id: Uuid, now: i64) -> Result<()> {
        statement("UPDATE invitations SET revoked_at = $1 WHERE id = $2").bind(now).bind(id).execute(self).await?;
        Ok(())
    }

    /// Marks the open, unexpired invitation of `token` accepted and returns it.
    /// Being one conditional `UPDATE` (which takes the row lock first), two
    /// concurrent accepts cannot both succeed.
    pub(crate) async fn consume_invitation(&mut self, token: &OpaqueToken, now: i64) -> Result<Option<Invitation>> {
        let row: Option<InvitationRow> = statement(concat!(
            "UPDATE invitations SET accepted_at = $1 WHERE token_hash = $2 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING ",
            columns!()
        ))
        .bind(now)
        .bind(token.hash())
        .fetch_optional(self)
        .await?;
        Ok(row.map(invitation))
    }
}

impl Store {
    /// The open, unexpired invitation of `token`, without consuming it.
    pub async fn invitation_by_token(&self, token: &OpaqueToken, now: i64) -> Result<Option<Invitation>> {
        let row: Option<InvitationRow> = statement(concat!(
            "SELECT ",
            columns!(),
            " FROM invitations WHERE token_hash = $1 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2"
        ))
        .bind(token.hash())
        .bind(now)
        .fetch_optional(self)
        .await?;
        Ok(row.map(invitation))
    }

    /// The open, unexpired invitations of a tenant, newest first.
    pub async fn open_invitations(&self, tenant_id: Uuid, now: i64) -> Result<Vec<Invitation>> {
        let rows: Vec<InvitationRow> = statement(concat!(
            "SELECT ",
            columns!(),
            " FROM invitations WHERE tenant_id = $1 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id"
        ))
        .bind(tenant_id)
        .bind(now)
        .fetch_all(self)
        .await?;
        Ok(rows.into_iter().map(invitation).collect())
    }
}
