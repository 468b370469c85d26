//! Denied requests (403s of authenticated callers), coalesced before they
//! reach the audit trail: a caller hammering a route they may not use must not
//! turn each request into a task and a row.
//!
//! The first denial of a caller for a reason opens a window and is written;
//! repeats within the window are only counted, and one summary row with the
//! count is written when the window closes. Windows are tracked for at most
//! [`MAX_CALLERS`] callers at once; denials past that are counted together.
//! Writes go through a bounded queue to one writer task: when it is full a
//! denial is counted as dropped (and logged), never waited for. So a flood of
//! denials costs at most two rows per caller and window, plus one overflow
//! summary per window, and never more than [`QUEUE`] pending writes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{AuditEvent, AuditLog, ClientInfo};
use crate::clock::Clock;

/// How long repeats of one caller's denial for one reason are only counted.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The most callers whose windows are tracked at once.
pub const MAX_CALLERS: usize = 10_000;
/// The most denial writes waiting for the writer.
pub const QUEUE: usize = 1024;

/// One row to write: a denial, or the summary of a window's repeats.
#[derive(Debug, Clone, PartialEq)]
struct Write {
    user: Option<Uuid>,
    client: ClientInfo,
    reason: String,
    /// What the denied request was (its path, the tenant asked for, …).
    detail: Value,
    /// Denials of the window that were counted, not written (summaries only).
    repeated: Option<u64>,
}

#[derive(Debug)]
struct Window {
    opened_at: i64,
    repeated: u64,
    client: ClientInfo,
    detail: Value,
}

/// The open windows; pure bookkeeping, no I/O.
#[derive(Debug, Default)]
struct Windows {
    open: HashMap<(Option<Uuid>, String), Window>,
    /// Denials of callers beyond [`MAX_CALLERS`] in the current window.
    overflow: u64,
    overflow_since: i64,
}

impl Windows {
    /// The write this denial needs now, if any.
    fn admit(
        &mut self,
        user: Option<Uuid>,
        client: &ClientInfo,
        reason: &str,
        detail: Value,
        now: i64,
    ) -> Option<Write> {
        if let Some(window) = self.open.get_mut(&(user, reason.to_owned())) {
            window.repeated += 1;
            return None;
        }
        if self.open.len() >= MAX_CALLERS {
            if self.overflow == 0 {
                self.overflow_since = now;
            }
            self.overflow += 1;
            return None;
        }
        let window = Window { opened_at: now, repeated: 0, client: client.clone(), detail: detail.clone() };
        self.open.insert((user, reason.to_owned()), window);
        Some(Write { user, client: client.clone(), reason: reason.to_owned(), detail, repeated: None })
    }

    /// Closes the windows opened at least [`WINDOW`] before `now`: the
    /// summaries of those that counted repeats, and of the overflow.
    fn close_expired(&mut self, now: i64) -> Vec<Write> {
        let window_ms = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
        let mut summaries = Vec::new();
        self.open.retain(|(user, reason), window| {
            if now - window.opened_at < window_ms {
                return true;
            }
            if window.repeated > 0 {
                summaries.push(Write {
                    user: *user,
                    client: window.client.clone(),
                    reason: reason.clone(),
                    detail: window.detail.clone(),
                    repeated: Some(window.repeated),
                });
            }
            false
        });
        if self.overflow > 0 && now - self.overflow_since >= window_ms {
            summaries.push(Write {
                user: None,
                client: ClientInfo::default(),
                reason: "denials_of_untracked_callers".into(),
                detail: json!({}),
                repeated: Some(std::mem::take(&mut self.overflow)),
            });
        }
        summaries
    }
}

/// The coalescing front of the audit trail for denials. Cheap to call from a
/// request guard: no I/O, no await, no task per denial.
#[derive(Debug, Clone)]
pub(crate) struct Denials {
    windows: Arc<Mutex<Windows>>,
    queue: mpsc::Sender<Write>,
    clock: Clock,
}

impl Denials {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub(crate) fn start(log: AuditLog, clock: Clock) -> Self {
        let (queue, mut pending) = mpsc::channel::<Write>(QUEUE);
        let windows = Arc::new(Mutex::new(Windows::default()));
        let denials = Self { windows: windows.clone(), queue: queue.clone(), clock: clock.clone() };
        let (windows, queue) = (Arc::downgrade(&windows), queue.downgrade());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WINDOW / 4);
            loop {
                tokio::select! {
                    write = pending.recv() => match write {
                        Some(write) => write.record(&log, &clock).await,
                        None => return,
                    },
                    _ = tick.tick() => {
                        let (Some(windows), Some(queue)) = (windows.upgrade(), queue.upgrade()) else { return };
                        let summaries = windows.lock().unwrap_or_else(PoisonError::into_inner).close_expired(clock.now_ms());
                        summaries.into_iter().for_each(|summary| enqueue(&queue, summary));
                    }
                }
            }
        });
        denials
    }

    /// Counts a denial and queues what must be written.
    pub(crate) fn record(&self, user: Option<Uuid>, client: &ClientInfo, reason: &str, detail: Value) {
        let now = self.clock.now_ms();
        let write =
            self.windows.lock().unwrap_or_else(PoisonError::into_inner).admit(user, client, reason, detail, now);
        if let Some(write) = write {
            enqueue(&self.queue, write);
        }
    }
}

fn enqueue(queue: &mpsc::Sender<Write>, write: Write) {
    if let Err(mpsc::error::TrySendError::Full(write)) = queue.try_send(write) {
        tracing::warn!(target: "auth::audit", event = "access_denied", reason = write.reason, user = ?write.user,
            "audit queue full: a denial was not stored");
    }
}

impl Write {
    async fn record(self, log: &AuditLog, clock: &Clock) {
        let mut detail = self.detail;
        if !detail.is_object() {
            detail = json!({});
        }
        detail["reason"] = json!(self.reason);
        if let Some(repeated) = self.repeated {
            detail["repeated"] = json!(repeated);
            detail["window_secs"] = json!(WINDOW.as_secs());
        }
        log.record(AuditEvent::AccessDenied, self.user, &self.client, detail, clock.now()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    #[test]
    fn repeats_within_a_window_are_counted_and_summarised_once() {
        let mut windows = Windows::default();
        let (user, client) = (Some(Uuid::new_v4()), ClientInfo::default());
        assert!(windows.admit(user, &client, "staff", json!({}), 0).is_some(), "the first denial is written");
        for _ in 0..9_999 {
            assert!(windows.admit(user, &client, "staff", json!({}), 10).is_none());
        }
        assert!(windows.admit(user, &client, "tenant", json!({}), 10).is_some(), "another reason has its own window");
        assert!(windows.close_expired(MINUTE - 1).is_empty(), "windows stay open for a minute");
        let summaries = windows.close_expired(MINUTE);
        assert_eq!(summaries.len(), 1, "one summary; the window without repeats needs none");
        assert_eq!((summaries[0].repeated, summaries[0].reason.as_str()), (Some(9_999), "staff"));
        assert!(windows.admit(user, &client, "staff", json!({}), MINUTE).is_some(), "a new window opens");
    }

    #[test]
    fn callers_past_the_cap_are_counted_together() {
        let mut windows = Windows::default();
        let client = ClientInfo::default();
        let written = (0..MAX_CALLERS + 500)
            .filter(|_| windows.admit(Some(Uuid::new_v4()), &client, "r", json!({}), 0).is_some())
            .count();
        assert_eq!(written, MAX_CALLERS, "writes stay bounded however many callers there are");
        let summaries = windows.close_expired(MINUTE);
        let overflow: Vec<_> = summaries.iter().filter(|s| s.user.is_none()).collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(overflow[0].repeated, Some(500));
        assert!(windows.open.is_empty());
    }
}
