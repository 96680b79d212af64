//! One host as the fleet keeps it: who it is, its connection, what is declared for it, what
//! was observed, and its open drift.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::ToAgent;
use super::observations::Observations;
use crate::drift::Observation;
use crate::evidence::Who;
use crate::key::Key;
use crate::manifest::DesiredState;
use crate::model::{Coverage, DriftRecord, HostInfo, HostStatus, HostView};

pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) out: mpsc::Sender<ToAgent>,
    pub(super) last_heard: Instant,
    /// Its agent's heartbeats, counted by the stream's task (`pulse.rs`)...
    pub(super) heartbeats: Arc<super::Heartbeats>,
    /// ...and how many of them the last tick had seen.
    pub(super) counted: u64,
    /// When this stream connected.
    pub(super) since_ms: i64,
    /// When it is to be asked to go (the maximum connection age, jittered), if ever.
    pub(super) retire_at: Option<Instant>,
    /// When it was asked to go: it is closed after the grace period.
    pub(super) asked_to_go: Option<Instant>,
}

pub(super) struct Host {
    pub(super) info: HostInfo,
    pub(super) last_seen_ms: i64,
    /// The last-seen time the store has (written at most every `SEEN_WRITE_EVERY_MS`).
    pub(super) seen_stored_ms: i64,
    pub(super) conn: Option<Conn>,
    pub(super) desired: Arc<DesiredState>,
    /// The generation of the last plan sent; state for another generation is ignored.
    pub(super) generation: u64,
    /// What its agent last reported, and which of it the store does not have yet (written at
    /// the next evaluation of the key, or ahead of a large snapshot's last part).
    pub(super) observed: Observations,
    /// Whether a snapshot for the current plan has been evaluated.
    pub(super) evaluated: bool,
    /// Open drift, by the declared key whose evaluation produced it.
    pub(super) drift: BTreeMap<Key, Vec<DriftRecord>>,
    /// Who made the change each observed key shows, as its agent said, until the key is
    /// evaluated (the evidence of what that evaluation opens, changes or resolves).
    pub(super) who: HashMap<Key, Who>,
    /// The agent's last report of its coverage, for this connection.
    pub(super) coverage: Option<Coverage>,
    /// The controller holding its stream, where that is another one on a shared store (what
    /// this one knows of the host is then what the store says).
    pub(super) remote: Option<String>,
    /// Since when its stream, retired for its age, has not connected again: offline if it
    /// stays away for three heartbeats (`retire.rs`).
    pub(super) moving_since: Option<Instant>,
    /// The paths a baseline's globs matched that its snapshot for the current plan has
    /// reported so far: once it is whole, a match held from before and not among them is
    /// gone from the host.
    pub(super) globbed: HashSet<Key>,
}

impl Host {
    /// A host as first known: offline, nothing observed, no drift.
    pub(super) fn new(info: HostInfo, desired: Arc<DesiredState>, last_seen_ms: i64) -> Self {
        Self {
            info,
            last_seen_ms,
            seen_stored_ms: last_seen_ms,
            conn: None,
            generation: 0,
            observed: Observations::new(desired.key_list()),
            desired,
            evaluated: false,
            drift: BTreeMap::new(),
            who: HashMap::new(),
            coverage: None,
            remote: None,
            moving_since: None,
            globbed: HashSet::new(),
        }
    }

    /// Declared for otherwise: its observations kept in the new state's order.
    pub(super) fn set_desired(&mut self, desired: Arc<DesiredState>) {
        self.observed.rebase(desired.key_list());
        self.desired = desired;
    }

    /// What it observed, as read back from the store (so stored), in place of what it held.
    pub(super) fn observed_anew(&mut self, observed: impl IntoIterator<Item = (Key, Observation)>) {
        self.observed = Observations::new(self.desired.key_list());
        self.observed.extend(observed);
    }

    /// Whether its agent streams to a controller, this one or another.
    pub(super) fn online(&self) -> bool {
        self.conn.is_some() || self.remote.is_some()
    }

    /// Every declared key (its desired state's list, shared rather than copied), then the
    /// paths a baseline's globs matched here and those with drift that are no longer declared
    /// (their drift is resolved when they are evaluated).
    pub(super) fn keys_to_evaluate(&self) -> (Arc<[Key]>, Vec<Key>) {
        let mut more: Vec<Key> = self
            .observed
            .keys()
            .filter(|k| {
                !self.desired.baselines.contains_key(k) && self.desired.compared(k).is_some()
            })
            .cloned()
            .collect();
        more.extend(self.drift.keys().filter(|k| !self.declares(k)).cloned());
        (self.desired.key_list(), more)
    }

    /// Gives back the room of what an evaluation drains (the unstored marks, who changed
    /// what) once it is empty: a snapshot fills them with every path, and a host would
    /// otherwise hold that room, unused, for as long as it is known (3 KiB a host of 100
    /// paths).
    pub(super) fn release_drained(&mut self) {
        self.observed.release_stored();
        if self.who.is_empty() {
            self.who.shrink_to_fit();
        }
    }

    /// Whether `key` is declared for it (or compared with its peers). A key with a slot in
    /// its observations is (they are slotted for its desired state's keys): only one without
    /// is looked up in the desired state.
    pub(super) fn declares(&self, key: &Key) -> bool {
        debug_assert!(self.observed.slotted_for(&self.desired.key_list()));
        self.observed.has_slot(key) || self.desired.contains_key(key)
    }

    /// Drops the observations of keys no longer declared (only keys without a slot can be).
    pub(super) fn forget_undeclared(&mut self) {
        debug_assert!(self.observed.slotted_for(&self.desired.key_list()));
        self.observed
            .retain_others(|k| self.desired.contains_key(k));
    }

    pub(super) fn status(&self) -> HostStatus {
        if !self.online() {
            HostStatus::Offline
        } else if !self.evaluated {
            HostStatus::Unknown
        } else if self.drift.values().any(|d| !d.is_empty()) {
            HostStatus::Drifted
        } else if self.coverage.as_ref().is_some_and(Coverage::degraded) {
            HostStatus::Degraded
        } else {
            HostStatus::InSync
        }
    }

    pub(super) fn view(&self) -> HostView {
        let mut drift: Vec<DriftRecord> = self.drift.values().flatten().cloned().collect();
        drift.sort_by(|a, b| (&a.resource, &a.attribute).cmp(&(&b.resource, &b.attribute)));
        HostView {
            info: self.info.clone(),
            status: self.status(),
            last_seen_ms: self.last_seen_ms,
            drift,
            manifests: self.desired.manifests.clone(),
            coverage: self.coverage.clone(),
            acks: Vec::new(),
            controller: self.remote.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_evaluation_drained_gives_its_room_back_and_what_is_left_keeps_it() {
        let mut host = Host::new(HostInfo::default(), Default::default(), 0);
        for i in 0..100 {
            host.who.insert(
                Key::file(&format!("/etc/f{i}")),
                Who::Unknown("test".into()),
            );
        }
        host.who.retain(|k, _| k == &Key::file("/etc/f7"));
        host.release_drained();
        assert!(host.who.capacity() > 0, "one still waits to be evaluated");
        assert!(host.who.contains_key(&Key::file("/etc/f7")));
        host.who.clear();
        host.release_drained();
        assert_eq!(host.who.capacity(), 0, "emptied: its room is given back");
    }
}
