//! Tenants and memberships.

use uuid::Uuid;

use super::{Store, in_transaction, is_unique_violation, on_pool};
use crate::{
    error::{AuthError, Result},
    identity::Email,
    tenancy::{Member, RoleSet, Tenant, TenantMembership, check_membership_change},
};

/// A change to a tenant's members, made by another member (the actor).
#[derive(Debug, Clone, Copy)]
pub enum MembershipChange<'a> {
    Add { email: &'a Email, role: &'a str },
    Remove { user_id: Uuid },
    SetRole { user_id: Uuid, role: &'a str },
}

impl Store {
    /// Creates a tenant with `owner` as its first member, in one transaction.
    pub async fn create_tenant(&self, tenant: &Tenant, owner: Uuid, role: &str) -> Result<()> {
        let now = super::millis(tenant.created_at);
        in_transaction!(self, tx => {
            sqlx::query("INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(tenant.id)
                .bind(&tenant.name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(owner)
                .bind(tenant.id)
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    /// Every tenant `user_id` belongs to, by name.
    pub async fn tenants_of(&self, user_id: Uuid) -> Result<Vec<TenantMembership>> {
        let rows: Vec<(Uuid, String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT t.id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
                 WHERE m.user_id = $1 ORDER BY t.name, t.id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(tenant_id, tenant_name, role)| TenantMembership { tenant_id, tenant_name, role })
            .collect())
    }

    /// The role of `user_id` in `tenant_id`, if a member.
    pub async fn role_in(&self, user_id: Uuid, tenant_id: Uuid) -> Result<Option<String>> {
        let row: Option<(String,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT role FROM memberships WHERE user_id = $1 AND tenant_id = $2")
                .bind(user_id)
                .bind(tenant_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(role,)| role))
    }

    pub async fn members(&self, tenant_id: Uuid) -> Result<Vec<Member>> {
        let rows: Vec<(Uuid, String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT u.id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.tenant_id = $1 ORDER BY u.email",
            )
            .bind(tenant_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(user_id, email, role)| Member { user_id, email, role }).collect())
    }

    /// Applies `change` on behalf of `actor` under the membership rules
    /// ([`check_membership_change`]), reading the actor's role from the store,
    /// not from a token. The tenant row is locked first, so concurrent changes
    /// of one tenant are serialised and cannot both remove "the other" last owner.
    /// Returns the member as changed (`None` after a removal).
    pub async fn change_membership(
        &self,
        tenant_id: Uuid,
        actor: Uuid,
        change: MembershipChange<'_>,
        roles: &RoleSet,
        now: i64,
    ) -> Result<Option<Member>> {
        in_transaction!(self, tx => {
            let locked = sqlx::query("UPDATE tenants SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if locked == 0 {
                return Err(AuthError::NotAMember);
            }
            let role_of = |user_id: Uuid| {
                sqlx::query_as::<_, (String,)>("SELECT role FROM memberships WHERE user_id = $1 AND tenant_id = $2")
                    .bind(user_id)
                    .bind(tenant_id)
            };
            let Some((actor_role,)) = role_of(actor).fetch_optional(&mut *tx).await? else {
                return Err(AuthError::NotAMember);
            };
            let (target, new_role) = match change {
                MembershipChange::Add { email, role } => {
                    let user: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
                        .bind(email.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let (user_id,) = user.ok_or(AuthError::NotFound)?;
                    (user_id, Some(role))
                }
                MembershipChange::Remove { user_id } => (user_id, None),
                MembershipChange::SetRole { user_id, role } => (user_id, Some(role)),
            };
            let current = role_of(target).fetch_optional(&mut *tx).await?.map(|(role,)| role);
            let owners: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = $2")
                .bind(tenant_id)
                .bind(roles.highest())
                .fetch_one(&mut *tx)
                .await?;
            let adding = matches!(change, MembershipChange::Add { .. });
            match (&current, adding) {
                (Some(_), true) => return Err(AuthError::AlreadyMember),
                (None, false) => return Err(AuthError::NotFound),
                _ => {}
            }
            check_membership_change(roles, &actor_role, current.as_deref(), new_role, owners.0)?;

            match change {
                MembershipChange::Add { role, .. } => {
                    let inserted = sqlx::query(
                        "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(target)
                    .bind(tenant_id)
                    .bind(role)
                    .bind(now)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Err(error) if is_unique_violation(&error) => return Err(AuthError::AlreadyMember),
                        other => other?,
                    };
                }
                MembershipChange::SetRole { role, .. } => {
                    sqlx::query("UPDATE memberships SET role = $1 WHERE user_id = $2 AND tenant_id = $3")
                        .bind(role)
                        .bind(target)
                        .bind(tenant_id)
                        .execute(&mut *tx)
                        .await?;
                }
                MembershipChange::Remove { .. } => {
                    sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND tenant_id = $2")
                        .bind(target)
                        .bind(tenant_id)
                        .execute(&mut *tx)
                        .await?;
                    return Ok(None);
                }
            }
            let (email,): (String,) = sqlx::query_as("SELECT email FROM users WHERE id = $1")
                .bind(target)
                .fetch_one(&mut *tx)
                .await?;
            Ok(Some(Member { user_id: target, email, role: new_role.unwrap_or_default().to_owned() }))
        })
    }
}

impl Store {
    /// Adds `user_id` to a tenant with `role`, with no acting member: for
    /// operators' tools. The role must be checked by the caller.
    pub async fn insert_membership(&self, tenant_id: Uuid, user_id: Uuid, role: &str, now: i64) -> Result<()> {
        let inserted = on_pool!(self, pool => {
            sqlx::query("INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(user_id)
                .bind(tenant_id)
                .bind(role)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match inserted {
            Err(error) if is_unique_violation(&error) => Err(AuthError::AlreadyMember),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Err(AuthError::NotFound),
            other => Ok(other?),
        }
    }
}
