//! Role sets known at compile time, for `role = ...` and `permission = ...`.

use auth_core::tenancy::{DefaultRoles, MANAGE_MEMBERS, RoleSet, Roles};

/// A role set whose names and permissions are known at compile time, so
/// `#[requires(role = "...")]` and `permission = "..."` are checked when the
/// app compiles. `#[derive(Roles)]` implements it; [`DefaultRoles`] has it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a role set that #[requires] can check",
    label = "not declared with #[derive(Roles)]",
    note = "declare the roles with #[derive(Roles)] on a fieldless enum, highest first; \
            without `roles = ...`, #[requires] uses the default owner > admin > member"
)]
pub trait DeclaredRoles: Roles {
    /// Every role's name as [`Roles::name`] writes it, highest first.
    const NAMES: &'static [&'static str];
    /// Every permission some role grants, in declaration order, each once.
    const PERMISSIONS: &'static [&'static str];

    /// Whether a route checked against this set must run with exactly this
    /// set (the fairing refuses to launch otherwise). True for every role set;
    /// false only for [`PlatformPermissions`].
    const BOUND: bool = true;

    /// The set as data, for the fairing's check that routes and platform agree.
    fn role_set() -> RoleSet {
        RoleSet::of::<Self>()
    }
}

impl DeclaredRoles for DefaultRoles {
    const NAMES: &'static [&'static str] = &["owner", "admin", "member"];
    const PERMISSIONS: &'static [&'static str] = &[MANAGE_MEMBERS];
}

/// The permissions the platform itself defines ([`MANAGE_MEMBERS`]), checked
/// against whichever role set the platform runs with, not a fixed one: the
/// platform's member routes say `#[requires(permission = "members.manage",
/// tenant, roles = PlatformPermissions)]`, and a host app running its own
/// roles decides which of them grant it. It declares no roles, so a
/// `role = ...` condition against it does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformPermissions {}

impl Roles for PlatformPermissions {
    const ALL: &'static [Self] = &[];

    fn name(self) -> &'static str {
        match self {}
    }

    fn grants(self) -> &'static [&'static str] {
        match self {}
    }
}

// Not a role set a host should be pointed to when it names a wrong type.
#[diagnostic::do_not_recommend]
impl DeclaredRoles for PlatformPermissions {
    const NAMES: &'static [&'static str] = &[];
    const PERMISSIONS: &'static [&'static str] = &[MANAGE_MEMBERS];
    const BOUND: bool = false;
}
