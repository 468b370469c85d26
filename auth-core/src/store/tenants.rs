//! Tenants and memberships.

use uuid::Uuid;

use super::{Inserted, Store, Transaction, inserted, millis, sql::Statement, statement};
use crate::{
    error::Result,
    tenancy::{Member, Tenant, TenantMembership},
};

impl Transaction {
    pub(crate) async fn insert_tenant(&mut self, tenant: &Tenant) -> Result<()> {
        statement("INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
            .bind(tenant.id)
            .bind(tenant.name.as_str())
            .bind(millis(tenant.created_at))
            .execute(self)
            .await?;
        Ok(())
    }

    /// Stamps the tenant's `updated_at`, which takes its row lock: concurrent
    /// changes of one tenant's members are serialised. False if there is no such tenant.
    pub(crate) async fn lock_tenant(&mut self, tenant_id: Uuid, now: i64) -> Result<bool> {
        let locked = statement("UPDATE tenants SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(tenant_id)
            .execute(self)
            .await?;
        Ok(locked == 1)
    }

    /// The role of `user_id` in `tenant_id`, if a member.
    pub(crate) async fn role_in(&mut self, user_id: Uuid, tenant_id: Uuid) -> Result<Option<String>> {
        let row: Option<(String,)> = role_in(user_id, tenant_id).fetch_optional(self).await?;
        Ok(row.map(|(role,)| role))
    }

    /// How many members of `tenant_id` have `role`.
    pub(crate) async fn count_role(&mut self, tenant_id: Uuid, role: &str) -> Result<i64> {
        let (count,): (i64,) = statement("SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = $2")
            .bind(tenant_id)
            .bind(role)
            .fetch_one(self)
            .await?;
        Ok(count)
    }

    /// The tenants `user_id` belongs to, by id (the order locks are taken in).
    pub(crate) async fn tenant_ids_of(&mut self, user_id: Uuid) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = statement("SELECT tenant_id FROM memberships WHERE user_id = $1 ORDER BY tenant_id")
            .bind(user_id)
            .fetch_all(self)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub(crate) async fn count_members(&mut self, tenant_id: Uuid) -> Result<i64> {
        let (count,): (i64,) =
            statement("SELECT COUNT(*) FROM memberships WHERE tenant_id = $1").bind(tenant_id).fetch_one(self).await?;
        Ok(count)
    }

    /// Deletes a tenant with its memberships and invitations.
    pub(crate) async fn delete_tenant(&mut self, tenant_id: Uuid) -> Result<()> {
        statement("DELETE FROM tenants WHERE id = $1").bind(tenant_id).execute(self).await?;
        Ok(())
    }

    pub(crate) async fn tenant_name(&mut self, tenant_id: Uuid) -> Result<String> {
        let (name,): (String,) =
            statement("SELECT name FROM tenants WHERE id = $1").bind(tenant_id).fetch_one(self).await?;
        Ok(name)
    }

    pub(crate) async fn email_of(&mut self, user_id: Uuid) -> Result<String> {
        let (email,): (String,) =
            statement("SELECT email FROM users WHERE id = $1").bind(user_id).fetch_one(self).await?;
        Ok(email)
    }

    /// [`Inserted::Duplicate`] when `user_id` is a member already.
    pub(crate) async fn insert_membership(
        &mut self,
        tenant_id: Uuid,
        user_id: Uuid,
        role: &str,
        now: i64,
    ) -> Result<Inserted> {
        inserted(insert_membership(tenant_id, user_id, role, now).execute(self).await)
    }

    pub(crate) async fn set_role(&mut self, tenant_id: Uuid, user_id: Uuid, role: &str) -> Result<()> {
        statement("UPDATE memberships SET role = $1 WHERE user_id = $2 AND tenant_id = $3")
            .bind(role)
            .bind(user_id)
            .bind(tenant_id)
            .execute(self)
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_membership(&mut self, tenant_id: Uuid, user_id: Uuid) -> Result<()> {
        statement("DELETE FROM memberships WHERE user_id = $1 AND tenant_id = $2")
            .bind(user_id)
            .bind(tenant_id)
            .execute(self)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Every tenant `user_id` belongs to, by name.
    pub async fn tenants_of(&self, user_id: Uuid) -> Result<Vec<TenantMembership>> {
        let rows: Vec<(Uuid, String, String)> = statement(
            "SELECT t.id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $1 ORDER BY t.name, t.id",
        )
        .bind(user_id)
        .fetch_all(self)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(tenant_id, tenant_name, role)| TenantMembership { tenant_id, tenant_name, role })
            .collect())
    }

    /// The role of `user_id` in `tenant_id`, if a member.
    pub async fn role_in(&self, user_id: Uuid, tenant_id: Uuid) -> Result<Option<String>> {
        let row: Option<(String,)> = role_in(user_id, tenant_id).fetch_optional(self).await?;
        Ok(row.map(|(role,)| role))
    }

    pub async fn members(&self, tenant_id: Uuid) -> Result<Vec<Member>> {
        let rows: Vec<(Uuid, String, String)> = statement(
            "SELECT u.id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 ORDER BY u.email",
        )
        .bind(tenant_id)
        .fetch_all(self)
        .await?;
        Ok(rows.into_iter().map(|(user_id, email, role)| Member { user_id, email, role }).collect())
    }
}

fn role_in(user_id: Uuid, tenant_id: Uuid) -> Statement<'static> {
    statement("SELECT role FROM memberships WHERE user_id = $1 AND tenant_id = $2").bind(user_id).bind(tenant_id)
}

fn insert_membership(tenant_id: Uuid, user_id: Uuid, role: &str, now: i64) -> Statement<'_> {
    statement("INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user_id)
        .bind(tenant_id)
        .bind(role)
        .bind(now)
}
