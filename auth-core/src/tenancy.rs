//! Tenants, memberships and ordered roles.
//!
//! Roles are ordered, highest first: a higher role includes everything a lower
//! one may do, and the permissions a role grants are inherited by every role
//! above it. A host app declares its own set by implementing [`Roles`] (the
//! macro crate derives it); [`DefaultRoles`] is owner > admin > member.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{AuthError, FieldErrors};

/// The permission needed to invite, remove and re-role members of a tenant.
pub const MANAGE_MEMBERS: &str = "members.manage";

/// How long an invitation can be accepted: 7 days, as the contract says.
pub const INVITATION_TTL_SECS: i64 = 7 * 24 * 3600;

/// An application's ordered set of tenant roles.
pub trait Roles: Copy + Eq + 'static {
    /// Every role, highest first. The first is the tenant creator's role.
    const ALL: &'static [Self];
    /// The role as written in tokens and the database.
    fn name(self) -> &'static str;
    /// Permissions this role grants; roles above it inherit them.
    fn grants(self) -> &'static [&'static str] {
        &[]
    }
}

/// owner > admin > member. Admins (and so owners) manage members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRoles {
    Owner,
    Admin,
    Member,
}

impl Roles for DefaultRoles {
    const ALL: &'static [Self] = &[Self::Owner, Self::Admin, Self::Member];

    fn name(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    fn grants(self) -> &'static [&'static str] {
        match self {
            Self::Admin => &[MANAGE_MEMBERS],
            Self::Owner | Self::Member => &[],
        }
    }
}

/// A [`Roles`] set turned into data, so services need no type parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet {
    /// Highest first, each with every permission it holds (its own and inherited).
    roles: Vec<(&'static str, Vec<&'static str>)>,
}

impl RoleSet {
    pub fn of<R: Roles>() -> Self {
        let mut roles: Vec<(&'static str, Vec<&'static str>)> = Vec::with_capacity(R::ALL.len());
        // Walk from the lowest role up so each role starts with what is below it.
        let mut inherited: Vec<&'static str> = Vec::new();
        for role in R::ALL.iter().rev() {
            inherited.extend(role.grants().iter().copied().filter(|p| !inherited.contains(p)).collect::<Vec<_>>());
            roles.push((role.name(), inherited.clone()));
        }
        roles.reverse();
        Self { roles }
    }

    /// 0 is the highest role; `None` for a name outside the set.
    pub fn rank(&self, role: &str) -> Option<usize> {
        self.roles.iter().position(|(name, _)| *name == role)
    }

    pub fn contains(&self, role: &str) -> bool {
        self.rank(role).is_some()
    }

    /// The role of a tenant's creator, which a tenant never runs out of.
    pub fn highest(&self) -> &'static str {
        self.roles[0].0
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.roles.iter().map(|(name, _)| *name)
    }

    /// Whether `role` is `required` or above it. Unknown names never qualify.
    pub fn at_least(&self, role: &str, required: &str) -> bool {
        matches!((self.rank(role), self.rank(required)), (Some(have), Some(need)) if have <= need)
    }

    /// Whether `role` holds `permission`, directly or inherited.
    pub fn has_permission(&self, role: &str, permission: &str) -> bool {
        self.roles.iter().any(|(name, permissions)| *name == role && permissions.contains(&permission))
    }
}

impl Default for RoleSet {
    fn default() -> Self {
        Self::of::<DefaultRoles>()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A tenant as one of its members sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TenantMembership {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub role: String,
}

/// A member as the tenant sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
}

/// An open invitation to join a tenant: accepted by the account whose
/// verified email is `email`, with `role`, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub email: String,
    pub role: String,
    /// The member who invited; `null` for an operator (or a deleted account).
    pub invited_by: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

/// Trims and checks a tenant name (1 to 255 printable characters).
pub fn validate_tenant_name(name: &str) -> Result<String, FieldErrors> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        let mut errors = FieldErrors::new();
        errors.add("name", "use 1 to 255 printable characters");
        Err(errors)
    } else {
        Ok(name.to_owned())
    }
}

/// The membership rules, for a change made by a member holding `actor_role`
/// to a member currently holding `target_role` (`None`: not yet a member), who
/// is to hold `new_role` (`None`: removed), while the tenant has `owners`
/// members of the highest role:
///
/// - the actor needs [`MANAGE_MEMBERS`];
/// - the new role must exist, and nobody grants a role above their own;
/// - nobody changes or removes a member who ranks above them;
/// - the last member of the highest role cannot be removed or demoted.
pub fn check_membership_change(
    roles: &RoleSet,
    actor_role: &str,
    target_role: Option<&str>,
    new_role: Option<&str>,
    owners: i64,
) -> Result<(), AuthError> {
    if !roles.has_permission(actor_role, MANAGE_MEMBERS) {
        return Err(AuthError::InsufficientRole);
    }
    if let Some(new_role) = new_role {
        if !roles.contains(new_role) {
            let known: Vec<_> = roles.names().collect();
            return Err(FieldErrors::single("role", format!("unknown role; use one of: {}", known.join(", "))));
        }
        if !roles.at_least(actor_role, new_role) {
            return Err(AuthError::InsufficientRole);
        }
    }
    if let Some(target_role) = target_role {
        if !roles.at_least(actor_role, target_role) {
            return Err(AuthError::InsufficientRole);
        }
        let loses_top_role = target_role == roles.highest() && new_role != Some(roles.highest());
        if loses_top_role && owners <= 1 {
            return Err(AuthError::LastOwner);
        }
    }
    Ok(())
}

/// The rule for a member leaving a tenant: anyone may, except its last
/// member of the highest role.
pub fn check_leaving(roles: &RoleSet, role: &str, owners: i64) -> Result<(), AuthError> {
    if role == roles.highest() && owners <= 1 { Err(AuthError::LastOwner) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Newsroom {
        Editor,
        Writer,
        Reader,
    }

    impl Roles for Newsroom {
        const ALL: &'static [Self] = &[Self::Editor, Self::Writer, Self::Reader];
        fn name(self) -> &'static str {
            match self {
                Self::Editor => "editor",
                Self::Writer => "writer",
                Self::Reader => "reader",
            }
        }
        fn grants(self) -> &'static [&'static str] {
            match self {
                Self::Editor => &["articles.publish", MANAGE_MEMBERS],
                Self::Writer => &["articles.write"],
                Self::Reader => &["articles.read"],
            }
        }
    }

    #[test]
    fn default_roles_are_ordered() {
        let roles = RoleSet::default();
        assert_eq!(roles.names().collect::<Vec<_>>(), ["owner", "admin", "member"]);
        assert_eq!(roles.highest(), "owner");
        assert!(roles.at_least("owner", "admin"));
        assert!(roles.at_least("admin", "admin"));
        assert!(!roles.at_least("member", "admin"));
        assert!(!roles.at_least("root", "member"));
        assert!(!roles.at_least("owner", "root"));
    }

    #[test]
    fn higher_roles_inherit_permissions() {
        let roles = RoleSet::default();
        assert!(roles.has_permission("owner", MANAGE_MEMBERS));
        assert!(roles.has_permission("admin", MANAGE_MEMBERS));
        assert!(!roles.has_permission("member", MANAGE_MEMBERS));

        let news = RoleSet::of::<Newsroom>();
        assert!(news.has_permission("editor", "articles.read"));
        assert!(news.has_permission("writer", "articles.read"));
        assert!(!news.has_permission("writer", "articles.publish"));
        assert!(!news.has_permission("reader", "articles.write"));
        assert!(!news.has_permission("nobody", "articles.read"));
    }

    #[test]
    fn membership_rules() {
        let roles = RoleSet::default();
        let check = |actor, target, new, owners| check_membership_change(&roles, actor, target, new, owners);
        assert!(check("admin", None, Some("member"), 1).is_ok());
        assert!(check("admin", None, Some("admin"), 1).is_ok());
        assert!(matches!(check("admin", None, Some("owner"), 1), Err(AuthError::InsufficientRole)));
        assert!(matches!(check("member", None, Some("member"), 1), Err(AuthError::InsufficientRole)));
        assert!(matches!(check("admin", Some("owner"), None, 2), Err(AuthError::InsufficientRole)));
        assert!(matches!(check("owner", None, Some("root"), 1), Err(AuthError::Validation(_))));
        assert!(matches!(check("owner", Some("owner"), None, 1), Err(AuthError::LastOwner)));
        assert!(matches!(check("owner", Some("owner"), Some("admin"), 1), Err(AuthError::LastOwner)));
        assert!(check("owner", Some("owner"), Some("admin"), 2).is_ok());
        assert!(check("owner", Some("owner"), Some("owner"), 1).is_ok());
        assert!(check("admin", Some("member"), None, 1).is_ok());
    }

    #[test]
    fn anyone_leaves_but_the_last_owner() {
        let roles = RoleSet::default();
        assert!(check_leaving(&roles, "member", 1).is_ok());
        assert!(check_leaving(&roles, "admin", 1).is_ok());
        assert!(check_leaving(&roles, "owner", 2).is_ok());
        assert!(matches!(check_leaving(&roles, "owner", 1), Err(AuthError::LastOwner)));
    }

    #[test]
    fn tenant_names_are_validated() {
        assert_eq!(validate_tenant_name("  Acme ").unwrap(), "Acme");
        assert!(validate_tenant_name(" ").unwrap_err().get("name").is_some());
        assert!(validate_tenant_name(&"x".repeat(256)).is_err());
    }
}
