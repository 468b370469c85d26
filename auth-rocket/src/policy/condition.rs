//! The conditions of a policy and how they are checked against a request.

use std::fmt;

use auth_core::{Auth, AuthError, tenancy::RoleSet};
use rocket::Request;
use uuid::Uuid;

use super::DEFAULT_TENANT_SEGMENT;
use crate::guards::{AuthUser, path_segment};

/// One condition of a policy; a policy requires all of its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// A valid access token (what every policy requires anyway).
    Authenticated,
    /// The token is scoped to a tenant where the caller has this role or a higher one.
    Role(&'static str),
    /// The token is scoped to a tenant where the caller's role holds this
    /// permission (granted to it, or to a role below it).
    Permission(&'static str),
    /// The path segment `<name>` is the id of the tenant the token is scoped to.
    Tenant(&'static str),
    /// Said on purpose: the route's `Role`/`Permission` is checked in whichever
    /// tenant the token is scoped to, and its path's tenant segment is not
    /// compared with it (`#[requires]` refuses a role on a tenant path with
    /// neither this nor [`Tenant`](Self::Tenant)). A declaration, not a check:
    /// it always holds, and is never an alternative inside [`Any`](Self::Any).
    AnyTenant,
    /// The account's email address is verified.
    Verified,
    /// Platform staff.
    Staff,
    /// Platform superuser.
    Superuser,
    /// At least one of these holds.
    Any(&'static [Condition]),
    /// The token's session has proved more than one factor: its `amr` holds
    /// `mfa`, `otp`, `hwk` or `swk`.
    Mfa,
    /// The token's `auth_time` is at most this many seconds before now (by
    /// the engine's clock): the user signed in, or proved a second factor, recently.
    RecentAuth(u64),
}

impl Condition {
    /// The condition's keyword: `role`, `tenant`, `any`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Role(_) => "role",
            Self::Permission(_) => "permission",
            Self::Tenant(_) => "tenant",
            Self::AnyTenant => "any_tenant",
            Self::Verified => "verified",
            Self::Staff => "staff",
            Self::Superuser => "superuser",
            Self::Any(_) => "any",
            Self::Mfa => "mfa",
            Self::RecentAuth(_) => "recent_auth",
        }
    }

    /// `Ok` when the condition holds for `user` on `request`; otherwise the
    /// 403 to answer: [`AuthError::NotAMember`] for a token not scoped to the
    /// tenant (or to none), [`AuthError::InsufficientRole`] for a role too low
    /// or without the permission, [`AuthError::EmailNotVerified`],
    /// [`AuthError::Forbidden`] for `staff`, `superuser`, and an `any` whose
    /// alternatives failed for different reasons, and for a step-up (RFC 9470)
    /// [`AuthError::MfaRequired`] or [`AuthError::ReauthenticationRequired`]
    /// (also what an `any` of only step-ups answers: a fresh sign-in).
    pub fn check(&self, user: &AuthUser, request: &Request<'_>, roles: &RoleSet) -> Result<(), AuthError> {
        let holds = |ok: bool, error: AuthError| if ok { Ok(()) } else { Err(error) };
        match *self {
            Self::Authenticated => Ok(()),
            Self::Role(required) => match user.tenant() {
                Some((_, role)) => holds(roles.at_least(role, required), AuthError::InsufficientRole),
                None => Err(AuthError::NotAMember),
            },
            Self::Permission(permission) => match user.tenant() {
                Some((_, role)) => holds(roles.has_permission(role, permission), AuthError::InsufficientRole),
                None => Err(AuthError::NotAMember),
            },
            Self::Tenant(segment) => {
                // A malformed segment is not the token's tenant: 403, never a 500.
                let in_path = path_segment(request, segment).and_then(|s| s.parse::<Uuid>().ok());
                match (user.tenant(), in_path) {
                    (Some((tenant_id, _)), Some(path_id)) if tenant_id == path_id => Ok(()),
                    _ => Err(AuthError::NotAMember),
                }
            }
            Self::AnyTenant => Ok(()),
            Self::Verified => holds(user.email_verified(), AuthError::EmailNotVerified),
            Self::Staff => holds(user.is_staff(), AuthError::Forbidden),
            Self::Superuser => holds(user.is_superuser(), AuthError::Forbidden),
            Self::Any(alternatives) => {
                let mut refusal: Option<AuthError> = None;
                // A declaration that always holds must not make the alternatives pass.
                for alternative in alternatives.iter().filter(|a| **a != Self::AnyTenant) {
                    match alternative.check(user, request, roles) {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            refusal = Some(match refusal {
                                None => error,
                                Some(first) => either(first, error),
                            })
                        }
                    }
                }
                Err(refusal.unwrap_or(AuthError::Forbidden))
            }
            Self::Mfa => holds(user.is_multi_factor(), AuthError::MfaRequired),
            Self::RecentAuth(max_age_secs) => {
                // The engine's clock, which dates the tokens (and which tests move).
                let now = request.rocket().state::<Auth>().map(|auth| auth.now().timestamp());
                let max_age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
                let fresh = now.is_some_and(|now| now.saturating_sub(user.auth_time()) <= max_age);
                holds(fresh, AuthError::ReauthenticationRequired { max_age_secs })
            }
        }
    }
}

/// The refusal of an `any(...)` whose alternatives were refused with `first`
/// and `then`: the same reason stays; two step-ups ask for a fresh sign-in,
/// which a second factor in the session gives too; different reasons are
/// [`AuthError::Forbidden`].
fn either(first: AuthError, then: AuthError) -> AuthError {
    use AuthError::{MfaRequired, ReauthenticationRequired};
    match (first, then) {
        (first, then) if first.code() == then.code() => first,
        (fresh @ ReauthenticationRequired { .. }, MfaRequired)
        | (MfaRequired, fresh @ ReauthenticationRequired { .. }) => fresh,
        _ => AuthError::Forbidden,
    }
}

/// `recent_auth`'s window as `#[requires]` writes it: in the largest unit that is exact (`90s`, `10m`, `2h`).
fn duration(secs: u64) -> String {
    match secs {
        0 => "0s".to_owned(),
        _ if secs.is_multiple_of(3600) => format!("{}h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// As `#[requires]` writes it: `role = "admin"`, `tenant`, `tenant = "org_id"`, `any(staff, superuser)`.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role(name) | Self::Permission(name) => write!(f, "{} = {name:?}", self.kind()),
            Self::Tenant(segment) if *segment == DEFAULT_TENANT_SEGMENT => f.write_str("tenant"),
            Self::Tenant(segment) => write!(f, "tenant = {segment:?}"),
            Self::Any(alternatives) => write!(f, "any({})", Listed(alternatives)),
            Self::RecentAuth(secs) => write!(f, "recent_auth = {:?}", duration(*secs)),
            _ => f.write_str(self.kind()),
        }
    }
}

/// Conditions separated by `, `.
struct Listed<'a>(&'a [Condition]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, condition) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{condition}")?;
        }
        Ok(())
    }
}

/// Checks every condition; tenant conditions first, so a token scoped to
/// another tenant learns nothing about what its role would allow here.
pub fn evaluate(
    conditions: &[Condition],
    user: &AuthUser,
    request: &Request<'_>,
    roles: &RoleSet,
) -> Result<(), AuthError> {
    let is_tenant = |c: &&Condition| matches!(c, Condition::Tenant(_));
    let tenants = conditions.iter().filter(is_tenant);
    let others = conditions.iter().filter(|c| !is_tenant(c));
    tenants.chain(others).try_for_each(|condition| condition.check(user, request, roles))
}
