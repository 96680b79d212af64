//! Writes the store could not make when they happened (a full disk, a failing device): kept in
//! order and made once it can write again, so that nothing is missing from the event log. Until
//! then the controller says so everywhere and does not acknowledge the agents' messages.

use std::collections::{BTreeMap, VecDeque};

use crate::store::{StoreError, Write};

/// Writes kept while the store cannot write. Past this many the newest are dropped, and their
/// hosts are read again from their agents once it can (what changed in between is then lost,
/// and the log says so).
pub(super) const MAX_PENDING: usize = 100_000;

/// A write, or nothing to write, and the agent message it acknowledges once made.
pub(super) struct Pending {
    pub(super) write: Option<Write>,
    /// (connection, seq)
    pub(super) ack: Option<(u64, u64)>,
}

#[derive(Default)]
pub(super) struct Writes {
    /// Waiting, oldest first; nothing is written past the first of them.
    pub(super) pending: VecDeque<Pending>,
    /// Since when the store cannot write, and the last error.
    pub(super) failing: Option<(i64, String)>,
    /// Hosts whose writes were dropped (queue full), with when the first was.
    pub(super) lost: BTreeMap<String, i64>,
    /// In the outage under way: writes made late, and writes dropped.
    pub(super) delayed: u64,
    pub(super) dropped: u64,
    /// Since start, for `/metrics`.
    pub(super) failures_total: u64,
    pub(super) dropped_total: u64,
}

impl Writes {
    pub(super) fn failed(&mut self, now_ms: i64, e: &StoreError) {
        self.failures_total += 1;
        let error = e.to_string();
        match &mut self.failing {
            Some((_, last)) => *last = error,
            None => {
                tracing::error!(error = %error, "the store cannot write: changes are kept in memory, in order, and agents are not acknowledged until they are stored");
                self.failing = Some((now_ms, error));
            }
        }
    }

    pub(super) fn keep(&mut self, pending: Pending) {
        if pending.write.is_some() {
            self.delayed += 1;
        }
        self.pending.push_back(pending);
    }

    pub(super) fn lose(&mut self, host_id: &str, now_ms: i64) {
        self.dropped += 1;
        self.dropped_total += 1;
        if !host_id.is_empty() {
            self.lost.entry(host_id.to_owned()).or_insert(now_ms);
        }
    }

    /// What `plumb hosts` and `plumb drift` say while the store cannot write.
    pub(super) fn warning(&self) -> Option<String> {
        let (since, error) = self.failing.as_ref()?;
        let since = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis((*since).max(0) as u64),
        );
        let mut w = format!(
            "the store cannot write since {since} ({error}): {} change(s) wait to be recorded; drift shown here may not be in the history yet",
            self.pending.iter().filter(|p| p.write.is_some()).count()
        );
        if self.dropped > 0 {
            w.push_str(&format!(
                "; {} change(s) could not be kept, and {} host(s) will be read again once the store writes",
                self.dropped,
                self.lost.len()
            ));
        }
        Some(w)
    }
}
