//! [`Clock`]: where "now" comes from, so that expiry, revocation and rate-limit
//! windows can be tested by moving time instead of sleeping.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};

/// Where "now" comes from: the system clock, or a manual one that tests
/// advance to cross expiry boundaries without sleeping.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the system time and moves only by [`Clock::advance`]
    /// beyond it.
    pub fn manual() -> Self {
        Self { offset_ms: Some(Arc::default()) }
    }

    /// Moves a manual clock forward; a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(offset) = &self.offset_ms {
            offset.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.as_ref().map_or(0, |o| o.load(Ordering::SeqCst));
        Utc::now() + chrono::Duration::milliseconds(offset)
    }

    /// Now, in Unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}
