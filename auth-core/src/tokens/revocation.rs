//! Which login sessions are revoked, held in memory so that verifying an access
//! token needs no database query.
//!
//! Every access token carries `sid`, its session (refresh family). Logout,
//! logout-all, password change or reset and deactivation revoke families in
//! the store; the instance that did it adds them here at once, and every
//! instance polls the store every `tokens.revocation_poll_secs` for families
//! revoked since its last poll. So an access token of a revoked session is
//! refused immediately on the revoking instance and within one poll interval
//! (default 2 s, plus the query's time) on every other. Entries are kept only
//! as long as a token minted before the revocation can still be unexpired.
//!
//! **Where a poll starts.** A revocation is stamped with the revoking
//! instance's clock before its transaction commits, so a row can appear after
//! a poll with a time before that poll: it waited for a connection or for
//! SQLite's write lock (5 s each at most), PostgreSQL committed it after a
//! later one, or the instances' clocks disagree (up to `tokens.leeway_secs`).
//! A sequence number has the same hole (PostgreSQL hands them out in statement
//! order, not commit order). So each poll reads from the previous poll's start
//! less [`COMMIT_MARGIN_MS`] and the clock skew: re-reading that overlap costs
//! one lookup per row; missing a row would leave a revoked session usable here.
//!
//! **Readers never wait.** Verification reads a lock-free hash set (papaya);
//! writers (local revocations and the poll) change it in place and queue only
//! on a mutex of their own. An immutable snapshot swapped in (arc-swap) would
//! copy the whole list on every change: the per-poll cost this design removes.
//!
//! **Bounded memory.** At most `max_entries` sessions are held. Past that the
//! oldest revocations are dropped and every token issued up to them (plus the
//! clock skew) is refused instead: a token of a dropped session was minted
//! before its revocation, so it stays refused, and clients holding other old
//! tokens refresh once. Fail closed, and logged as an error.

use std::{
    collections::BTreeSet,
    fmt,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicI64, Ordering},
    },
};

use uuid::Uuid;

/// Longer than a revoking write can take between reading the clock and
/// committing: it waits at most 5 s for a connection and 5 s for SQLite's lock.
pub const COMMIT_MARGIN_MS: i64 = 15_000;

pub struct RevocationList {
    /// The revoked sessions; what every verification reads.
    revoked: papaya::HashSet<Uuid>,
    /// Tokens issued at or before this (Unix ms) are refused: the cap dropped
    /// revocations up to it. `i64::MIN` until the cap is reached.
    issued_floor_ms: AtomicI64,
    writer: Mutex<Writer>,
    max_entries: usize,
    clock_skew_ms: i64,
}

/// What only writers touch.
#[derive(Default)]
struct Writer {
    /// The entries of `revoked` by when they were revoked, oldest first: what
    /// expiry and the cap drop.
    by_time: BTreeSet<(i64, Uuid)>,
    /// When the last successful poll started (Unix ms).
    polled_at: Option<i64>,
}

impl RevocationList {
    /// A list of at most `max_entries` sessions, on instances whose clocks
    /// disagree by at most `clock_skew_ms`.
    pub fn new(max_entries: usize, clock_skew_ms: i64) -> Self {
        Self {
            revoked: papaya::HashSet::new(),
            issued_floor_ms: AtomicI64::new(i64::MIN),
            writer: Mutex::default(),
            max_entries,
            clock_skew_ms,
        }
    }

    /// Whether a token of `session_id` issued at `issued_at` (its `iat`, Unix
    /// seconds) is refused.
    pub fn is_revoked(&self, session_id: Uuid, issued_at: i64) -> bool {
        // The set first: the cap raises the floor before it removes an entry.
        self.revoked.pin().contains(&session_id)
            || issued_at.saturating_mul(1000) <= self.issued_floor_ms.load(Ordering::SeqCst)
    }

    /// Adds sessions revoked by this instance at `revoked_at`.
    pub fn revoke(&self, session_ids: impl IntoIterator<Item = Uuid>, revoked_at: i64) {
        let mut writer = self.writer();
        self.insert(&mut writer, session_ids.into_iter().map(|id| (id, revoked_at)));
    }

    /// Where the next poll of the store starts: the last poll's start less
    /// what may have committed late since, and never before `forget_before`.
    pub fn poll_since(&self, forget_before: i64) -> i64 {
        let overlap = COMMIT_MARGIN_MS + self.clock_skew_ms;
        self.writer().polled_at.map_or(forget_before, |at| (at - overlap).max(forget_before))
    }

    /// Merges the rows of a poll that started at `polled_at` and forgets
    /// entries revoked before `forget_before`, whose access tokens have all
    /// expired. Costs O(rows + expired), whatever the list's length.
    pub fn merge_poll(&self, from_store: &[(Uuid, i64)], polled_at: i64, forget_before: i64) {
        let mut writer = self.writer();
        let revoked = self.revoked.pin();
        while let Some(&(at, id)) = writer.by_time.first()
            && at < forget_before
        {
            writer.by_time.pop_first();
            revoked.remove(&id);
        }
        self.insert(&mut writer, from_store.iter().copied().filter(|(_, at)| *at >= forget_before));
        writer.polled_at = Some(polled_at);
    }

    fn insert(&self, writer: &mut Writer, entries: impl Iterator<Item = (Uuid, i64)>) {
        let revoked = self.revoked.pin();
        let mut dropped = 0usize;
        for (id, at) in entries {
            // Already refused by the floor: its tokens were issued before `at` plus the skew.
            if at.saturating_add(self.clock_skew_ms) <= self.issued_floor_ms.load(Ordering::SeqCst) {
                continue;
            }
            if revoked.insert(id) {
                writer.by_time.insert((at, id));
            }
            // Within the loop, so that even a huge first load never holds more.
            if writer.by_time.len() > self.max_entries
                && let Some((at, id)) = writer.by_time.pop_first()
            {
                // Before the entry goes, so that no reader finds neither.
                self.issued_floor_ms.fetch_max(at.saturating_add(self.clock_skew_ms), Ordering::SeqCst);
                revoked.remove(&id);
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::error!(
                dropped,
                max_entries = self.max_entries,
                refused_issued_until_ms = self.issued_floor_ms.load(Ordering::SeqCst),
                "the revocation list is full: the oldest revocations were dropped and every access token \
                 issued before them is refused; raise tokens.revocation_max_entries"
            );
        }
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    // Public to the suites (feature `testing`), where a `len` wants its `is_empty`.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList").field("len", &self.len()).field("max_entries", &self.max_entries).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Barrier, mpsc},
        thread,
        time::Duration,
    };

    use super::*;

    const SKEW: i64 = 30_000;
    /// An `iat` (seconds) long after every revocation time used below.
    const RECENT: i64 = 1_000_000;

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn revoked_sessions_are_remembered_until_their_tokens_expire() {
        let list = RevocationList::new(100, SKEW);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        list.revoke([a], 1_000);
        list.merge_poll(&[(b, 5_000)], 6_000, 0);
        assert!(list.is_revoked(a, RECENT) && list.is_revoked(b, RECENT) && !list.is_revoked(c, RECENT));
        list.merge_poll(&[], 7_000, 2_000);
        assert!(!list.is_revoked(a, RECENT), "entries older than the window are forgotten");
        assert!(list.is_revoked(b, RECENT));
        assert_eq!(list.len(), 1);
        list.merge_poll(&[(c, 1_500)], 8_000, 2_000);
        assert!(!list.is_revoked(c, RECENT), "a row already outside the window is not kept");
    }

    #[test]
    fn polls_start_where_the_last_one_did_less_the_overlap() {
        let list = RevocationList::new(100, SKEW);
        let overlap = COMMIT_MARGIN_MS + SKEW;
        assert_eq!(list.poll_since(10_000), 10_000, "the first poll reads the whole window");
        list.merge_poll(&[], 500_000, 10_000);
        assert_eq!(list.poll_since(20_000), 500_000 - overlap, "later ones only the rows revoked since");
        assert_eq!(list.poll_since(490_000), 490_000, "never before the window");

        // Re-reading the overlap changes nothing; a late row within it is added.
        let (old, late) = (Uuid::new_v4(), Uuid::new_v4());
        list.merge_poll(&[(old, 499_000)], 501_000, 20_000);
        list.merge_poll(&[(old, 499_000), (late, 500_000 - overlap)], 502_000, 20_000);
        assert_eq!(list.len(), 2);
        assert!(list.is_revoked(late, RECENT));
    }

    #[test]
    fn past_the_cap_the_oldest_are_dropped_and_tokens_issued_before_them_refused() {
        let list = RevocationList::new(3, SKEW);
        let sessions = ids(5);
        for (i, id) in sessions.iter().enumerate() {
            list.revoke([*id], 100_000 * (i as i64 + 1));
        }
        assert_eq!(list.len(), 3, "memory stays bounded");
        // The two oldest (revoked at 100 s and 200 s) were dropped: their
        // tokens, issued before the revocation, are still refused.
        for dropped in &sessions[..2] {
            assert!(list.is_revoked(*dropped, 200), "a token issued at the revocation");
            assert!(list.is_revoked(*dropped, 200 + SKEW / 1000), "or within the clock skew after it");
        }
        assert!(!list.is_revoked(Uuid::new_v4(), 200 + SKEW / 1000 + 1), "a later token of a live session passes");
        assert!(list.is_revoked(Uuid::new_v4(), 100), "an older one of a live session must refresh");
        assert!(sessions[2..].iter().all(|id| list.is_revoked(*id, RECENT)), "the newest are kept");

        // A poll re-reading a dropped row does not bring it back: the floor covers it.
        list.merge_poll(&[(sessions[0], 100_000)], 600_000, 0);
        assert_eq!(list.len(), 3);
        assert!(sessions[2..].iter().all(|id| list.is_revoked(*id, RECENT)));
    }

    /// A verifier must never wait for a writer: with the writer's lock held
    /// (as during a merge), lookups on another thread still answer.
    #[test]
    fn verifiers_do_not_wait_for_a_writer() {
        let list = Arc::new(RevocationList::new(100, SKEW));
        let revoked = Uuid::new_v4();
        list.revoke([revoked], 1_000);
        let writing = list.writer();
        let (answer, answered) = mpsc::channel();
        let reader = Arc::clone(&list);
        thread::spawn(move || answer.send((reader.is_revoked(revoked, RECENT), reader.len())).unwrap());
        // Not a timing threshold: a reader that waited on the writer would never answer.
        let got = answered.recv_timeout(Duration::from_secs(60)).expect("a verifier waited for the writer");
        assert_eq!(got, (true, 1));
        drop(writing);
    }

    #[test]
    fn concurrent_reads_see_every_revocation_while_polls_merge() {
        let list = Arc::new(RevocationList::new(1_000_000, SKEW));
        let (kept, never) = (Uuid::new_v4(), Uuid::new_v4());
        list.revoke([kept], 1_000_000);
        let start = Arc::new(Barrier::new(3));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (list, start) = (Arc::clone(&list), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..20_000 {
                        assert!(list.is_revoked(kept, RECENT) && !list.is_revoked(never, RECENT));
                    }
                })
            })
            .collect();
        start.wait();
        for poll in 0..200i64 {
            let rows: Vec<_> = ids(100).into_iter().map(|id| (id, 1_000_000 + poll)).collect();
            list.merge_poll(&rows, 2_000_000 + poll, 0);
        }
        for reader in readers {
            reader.join().expect("a reader saw a wrong answer");
        }
        assert_eq!(list.len(), 1 + 200 * 100);
    }
}
