//! Several controllers on one store: what the store's tail hears (`store::Heard`) applied to
//! this fleet. Each controller is authoritative for the hosts whose streams it holds; for the
//! others it keeps what the store says, read again whenever their rows change, so that every
//! query answers for the whole fleet. Followers hear every entry from the tail, in the log's
//! order, whichever controller appended it.

use std::collections::BTreeMap;

use super::Fleet;
use super::host::Host;
use crate::key::Key;
use crate::model::{DriftRecord, EventKind};
use crate::store::{Heard, Holder, StoredHost};

impl Fleet {
    pub(super) fn hear(&mut self, heard: Heard) {
        match heard {
            Heard::Logged(events) => {
                let (mut acks_moved, mut windows_moved) = (false, false);
                for (event, mine) in events {
                    acks_moved |= !mine
                        && matches!(
                            event.kind,
                            EventKind::Acknowledged | EventKind::AckRevoked | EventKind::AckExpired
                        );
                    windows_moved |= !mine && Fleet::window_entry(event.kind);
                    self.count_trend(&event);
                    let _ = self.events.send(event);
                }
                if acks_moved {
                    self.reload_acks();
                }
                if windows_moved {
                    self.reload_windows();
                }
            }
            Heard::Changed(hosts) => {
                for id in hosts {
                    self.mirror(&id);
                }
            }
            Heard::Singleton(now) => {
                if now != self.singleton {
                    tracing::info!(
                        singleton = now,
                        "{}",
                        if now {
                            "this controller expires acknowledgements and marks the hosts of stopped controllers offline"
                        } else {
                            "another controller does the singleton work now"
                        }
                    );
                }
                self.singleton = now;
            }
            Heard::Lost(error) => {
                // Said as a failed write would say it; the tick tries the store again, and
                // the first write that works ends the outage (with its entry in the log).
                let e = crate::store::StoreError::Backend(error.into());
                self.writes.failed(self.now(), &e);
                self.store_ok
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                self.step_aside();
            }
            Heard::ContentAsked(asks) => self.asked(asks),
            Heard::ContentAnswered(answers) => self.answered(answers),
            Heard::Stopped(controller) => {
                if !self.singleton {
                    return;
                }
                match self.store.release_orphans(&controller, self.now()) {
                    Ok(events) => {
                        tracing::warn!(%controller, hosts = events.len(), "a controller stopped beating; its hosts that did not move are offline");
                        for e in events {
                            self.publish(e);
                        }
                    }
                    Err(e) => {
                        tracing::error!(%controller, error = %e, "cannot release the hosts of a stopped controller")
                    }
                }
            }
        }
    }

    /// Reads the acknowledgements again from the store: others made or ended some.
    pub(super) fn reload_acks(&mut self) {
        match self.store.load_acks() {
            Ok(acks) => self.acks = super::Acks::new(acks),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the acknowledgements other controllers made")
            }
        }
    }

    /// Reads a host again from the store. A host whose stream this controller holds keeps
    /// what this controller knows, unless the store says another took it since: then this
    /// stream is closed without a word in the log (the new holder said it).
    pub(super) fn mirror(&mut self, host_id: &str) {
        let stored = match self.store.load_host(host_id) {
            Ok(Some(stored)) => stored,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(host = host_id, error = %e, "cannot read a host another controller changed");
                return;
            }
        };
        let local = self.hosts.get(host_id).is_some_and(|h| h.conn.is_some());
        if local {
            if stored.holder == Holder::Me {
                return;
            }
            self.let_go(host_id, &stored.holder);
        }
        let desired = self.manifests.desired_for(&stored.info.identity());
        let StoredHost {
            info,
            last_seen_ms,
            drift,
            holder,
            state,
        } = stored;
        let host = self
            .hosts
            .entry(host_id.to_owned())
            .or_insert_with(|| Host::new(info.clone(), desired.clone(), last_seen_ms));
        host.info = info;
        host.set_desired(desired);
        host.last_seen_ms = last_seen_ms;
        host.seen_stored_ms = last_seen_ms;
        host.drift = by_key(drift);
        host.remote = match holder {
            Holder::Other(controller) => Some(controller),
            Holder::Me | Holder::Nobody => None,
        };
        host.evaluated = host.remote.is_some() && state.evaluated;
        host.coverage = state.coverage.filter(|_| host.remote.is_some());
    }

    /// Another controller holds this host's stream now (the store refused a write for it, or
    /// said so): this controller's stream for it ends, and writes nothing more for it.
    pub(super) fn let_go(&mut self, host_id: &str, holder: &Holder) {
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        if let Some(conn) = host.conn.take() {
            tracing::warn!(host = host_id, holder = ?holder, "the host's stream is held by another controller now; closing this one");
            self.conn_host.remove(&conn.id);
            self.pending_content.retain(|_, p| p.conn != conn.id);
        }
        host.observed.clear_unstored();
    }
}

/// Drift records grouped by the key whose evaluation produced them.
pub(super) fn by_key(drift: Vec<(Key, DriftRecord)>) -> BTreeMap<Key, Vec<DriftRecord>> {
    let mut grouped: BTreeMap<Key, Vec<DriftRecord>> = BTreeMap::new();
    for (origin, record) in drift {
        grouped.entry(origin).or_default().push(record);
    }
    grouped
}
