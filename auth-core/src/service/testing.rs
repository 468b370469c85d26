//! Internals for the platform's own suites and benchmarks (feature
//! `testing`): what a test inspects or a benchmark times below the
//! operations. Never enable it in an app.

use super::{Auth, RotateOutcome};
use crate::{
    ClientInfo, Result,
    store::{Family, Store},
    tokens::{AccessClaims, AuthMethod, OpaqueToken},
};

/// The storage behind `auth`.
pub fn store(auth: &Auth) -> &Store {
    &auth.inner.store
}

/// One refresh rotation's transaction alone (with its audit event), without
/// minting (the floor `refresh` is measured against).
pub async fn rotate_refresh(
    auth: &Auth,
    presented: &OpaqueToken,
    now: i64,
    idle_ms: i64,
    grace_ms: i64,
) -> Result<RotateOutcome> {
    auth.sessions().rotate_refresh(presented, now, idle_ms, grace_ms, &ClientInfo::default()).await
}

/// Records a second factor in the caller's session, as the factors of
/// issue #12 will once they have verified one.
pub async fn record_second_factor(auth: &Auth, caller: &AccessClaims, factor: AuthMethod) -> Result<Family> {
    auth.sessions().record_second_factor(caller, factor).await
}
