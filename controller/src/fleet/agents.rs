//! Agent streams: a connection and its plan, state messages evaluated against the desired
//! state, and the end of a stream.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::host::{Conn, Host};
use super::reconcile::reconcile;
use super::{AgentPlan, Fleet, FleetError, Report, ToAgent, rfc3339};
use crate::drift::{self, Observation};
use crate::evidence::{Authorisation, Evidence, Resolution};
use crate::key::Key;
use crate::model::{Coverage, DriftRecord, EventKind, HostInfo};
use crate::plan;
use crate::store::{Change, StoreError, Write};

/// Observations a snapshot's parts gather before they are stored, ahead of its last part: a
/// host of 100,000 paths then writes them in 100 transactions while its agent still scans,
/// rather than in one after it (an initial sync's longest wait on the controller); a host of
/// fewer paths, nearly every one, writes them with its evaluation as before.
pub(super) const WRITE_AHEAD: usize = 1_000;

/// Why a host's keys are evaluated: what its resolved drift is put down to.
pub(super) enum Cause {
    /// What its agent said.
    Agent,
    /// A new manifest set.
    Manifests,
    /// Its peers in a baseline's group: what it is compared with moved.
    Peers,
}

impl Fleet {
    pub(super) fn connect(
        &mut self,
        info: HostInfo,
        out: mpsc::Sender<ToAgent>,
        heartbeats: Arc<super::Heartbeats>,
        takeover: bool,
        reply: oneshot::Sender<Result<u64, FleetError>>,
    ) -> Result<(), StoreError> {
        let live = self
            .hosts
            .get(&info.host_id)
            .and_then(|h| h.conn.as_ref().map(|c| c.since_ms));
        if let (Some(since), false) = (live, takeover) {
            tracing::warn!(host = %info.host_id, "refused a second stream for a host that has a live one (without TLS a host id proves nothing); keeping the first");
            let _ = reply.send(Err(FleetError::StreamTaken {
                host: info.host_id.clone(),
                since: rfc3339(since, false).unwrap_or_default(),
            }));
            return Ok(());
        }
        if self.shared
            && let Some(warning) = self.writes.warning()
        {
            // Another controller may be able to write: the agent is sent there.
            let _ = reply.send(Err(FleetError::StoreWaiting(warning)));
            return Ok(());
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let now = self.now();
        let desired = self.manifests.desired_for(&info.identity());
        let host = self
            .hosts
            .entry(info.host_id.clone())
            .or_insert_with(|| Host::new(info.clone(), desired.clone(), now));
        if let Some(old) = host.conn.take() {
            tracing::warn!(host = %info.host_id, "host connected again; replacing its previous stream");
            self.conn_host.remove(&old.id);
        }
        let info_id = info.host_id.clone();
        host.info = info;
        host.remote = None;
        host.moving_since = None;
        host.last_seen_ms = now;
        // Selected otherwise, into or out of a baseline's group: the groups are counted again.
        let regrouped = (host.desired.has_baselines() || desired.has_baselines())
            && !Arc::ptr_eq(&host.desired, &desired)
            && *host.desired != *desired;
        host.set_desired(desired);
        host.evaluated = false;
        host.coverage = None;
        host.conn = Some(Conn {
            id: conn,
            out,
            last_heard: Instant::now(),
            counted: heartbeats.count(),
            heartbeats,
            since_ms: now,
            retire_at: self.max_age.map(|limit| Instant::now() + limit.jittered()),
            asked_to_go: None,
        });
        self.conn_host.insert(conn, host.info.host_id.clone());
        if regrouped {
            // Its keys may be compared in other groups now, or in none: the groups it left
            // or joined stand otherwise.
            self.judge_every_group(&Cause::Peers);
        }
        let Some(host) = self.hosts.get_mut(&info_id) else {
            return Ok(());
        };
        host.seen_stored_ms = now;
        tracing::info!(host = %host.info.host_id, manifests = ?host.desired.manifests, "agent connected");
        let id = host.info.host_id.clone();
        let info = host.info.clone();
        self.write(Some(Write::Online { info, at_ms: now }), None);
        if self.shared {
            // Claimed: what the store says of the host (another controller may have held it
            // until now) is what the agent's snapshot is judged against, so since survives.
            self.load_stored(&id);
        }
        let _ = reply.send(Ok(conn));
        self.send_plan(&id);
        Ok(())
    }

    pub(super) fn send_plan(&mut self, host_id: &str) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        host.generation = generation;
        host.evaluated = false;
        host.globbed.clear();
        let msg = ToAgent::Plan(Box::new(AgentPlan {
            generation,
            paths: plan::requests(&host.desired),
            packages: plan::packages(&host.desired),
            heartbeat_interval: self.heartbeat_interval,
        }));
        let full = host
            .conn
            .as_ref()
            .is_some_and(|c| c.out.try_send(msg).is_err());
        if full {
            tracing::warn!(
                host = host_id,
                "agent is not reading its stream; closing it"
            );
            if let Some(c) = host.conn.take() {
                self.conn_host.remove(&c.id);
            }
        }
    }

    pub(super) fn state(
        &mut self,
        conn: u64,
        report: Report,
        generation: u64,
        seq: u64,
        states: Vec<super::Stated>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let Some(host) = self.host_of(conn) else {
            return Ok(());
        };
        if let Some(c) = host.conn.as_mut() {
            c.last_heard = Instant::now();
        }
        host.last_seen_ms = now;
        if generation != host.generation {
            // State for an older plan: the agent sends a fresh snapshot for the new one.
            tracing::debug!(host = %host.info.host_id, generation, current = host.generation, "state for an old plan ignored");
            return Ok(());
        }
        let host_id = host.info.host_id.clone();
        // A delta's keys are evaluated now; a snapshot's once it is whole, all of them.
        let mut keys: Vec<Key> = Vec::new();
        let mut recount = Vec::new();
        for (key, observed, who) in states {
            if !host.declares(&key) {
                continue;
            }
            if report == Report::Delta {
                keys.push(key.clone());
            }
            match who {
                Some(who) => {
                    host.who.insert(key.clone(), who);
                }
                None if !host.who.is_empty() => {
                    host.who.remove(&key);
                }
                None => {}
            }
            let compared = host.desired.compared(&key).cloned();
            if compared.is_some() && !host.desired.baselines.contains_key(&key) {
                host.globbed.insert(key.clone());
            }
            if host.observed.get(&key) != Some(&observed) {
                host.observed.mark_unstored(&key);
            }
            let old = host.observed.insert(key.clone(), observed);
            if let Some(baseline) = compared {
                recount.push((baseline, key, old));
            }
        }
        self.recount(&host_id, recount);
        let Some(host) = self.hosts.get_mut(&host_id) else {
            return Ok(());
        };
        if report == Report::SnapshotPart {
            // Kept until the last part: a host is evaluated on its whole snapshot at once.
            // What a large one observed is stored as it comes, a batch at a time (acknowledged
            // once stored), so that its last part waits only on the evaluation.
            if host.observed.unstored_count() < WRITE_AHEAD {
                self.send_ack(Some((conn, seq)));
            } else {
                let write = Write::Record {
                    host_id,
                    at_ms: now,
                    observations: host.observed.take_every_unstored(),
                    changes: Vec::new(),
                };
                self.write(Some(write), Some((conn, seq)));
            }
            return Ok(());
        }
        if report == Report::Snapshot {
            // Everything declared is evaluated; drift of paths no longer declared is resolved.
            host.forget_undeclared();
            host.evaluated = true;
            self.absent_here(&host_id);
            let Some(host) = self.hosts.get_mut(&host_id) else {
                return Ok(());
            };
            let (list, more) = host.keys_to_evaluate();
            self.evaluate(
                &host_id,
                list.iter().chain(&more),
                Some((conn, seq)),
                Cause::Agent,
            );
        } else {
            self.evaluate(&host_id, keys.iter(), Some((conn, seq)), Cause::Agent);
        }
        if report == Report::Snapshot {
            self.share_state(&host_id);
        }
        Ok(())
    }

    /// Re-evaluates the given declared paths of one host, records what changed (with the
    /// observations that differ from the stored ones, and the evidence of each change) and
    /// tells followers; `ack` is the agent message to acknowledge once that is in the store.
    pub(super) fn evaluate<'k>(
        &mut self,
        host_id: &str,
        keys: impl Iterator<Item = &'k Key> + Clone,
        ack: Option<(u64, u64)>,
        cause: Cause,
    ) {
        let judged = self.judge_among_peers(host_id, keys.clone());
        self.evaluate_judged(host_id, keys, judged, ack, &cause);
        self.judge_moved_groups();
    }

    /// `evaluate`, with the drift of each key a baseline compares already judged (`judged`).
    pub(super) fn evaluate_judged<'k>(
        &mut self,
        host_id: &str,
        keys: impl IntoIterator<Item = &'k Key>,
        mut judged: std::collections::HashMap<Key, Vec<drift::DriftItem>>,
        ack: Option<(u64, u64)>,
        cause: &Cause,
    ) {
        let now = self.now();
        let commit = self.manifest_source.clone();
        let windows = &self.windows;
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        let identity = (!windows.is_empty()).then(|| host.info.identity());
        let mut opened: Vec<(Key, DriftRecord)> = Vec::new();
        let mut changed: Vec<(Key, DriftRecord)> = Vec::new();
        let mut resolved: Vec<DriftRecord> = Vec::new();
        let mut observations: Vec<(Key, Option<Observation>)> = Vec::new();
        let peers = matches!(cause, Cause::Peers);
        for key in keys {
            let declared = host.declares(key);
            let compared = host.desired.compared(key).is_some();
            // A peer's evaluation is no change of this host: who changed it stays for its own.
            let who = if peers || host.who.is_empty() {
                None
            } else {
                host.who.remove(key)
            };
            let new = if !declared {
                // No longer declared: its drift is resolved.
                Vec::new()
            } else {
                match host.observed.get(key) {
                    // Declared but not observed yet: nothing known, nothing changes.
                    None => continue,
                    Some(_) if compared => judged.remove(key).unwrap_or_default(),
                    Some(obs) => drift::evaluate_observation(&host.desired, key.name(), obs),
                }
            };
            // An unchanged observation is in the store already: only what differs is written
            // (a reconnecting agent's snapshot of 10,000 paths is then no 10,000-row write).
            let unstored = host.observed.take_unstored(key);
            let observed = host.observed.get(key);
            if observed.is_none() || unstored {
                observations.push((key.clone(), observed.cloned()));
            }
            let old = host.drift.remove(key).unwrap_or_default();
            // A new or changed item is the work of whoever made this change, authorised or
            // not; what resolved says how.
            let mut r = reconcile(old, new, now, |resource| Evidence {
                who: who.clone(),
                authorisation: Some(match &identity {
                    Some(host) => crate::window::authorise(windows, host, resource, now),
                    None => Authorisation::Unauthorised,
                }),
                resolution: None,
            });
            let resolution = match (cause, declared, key) {
                _ if r.resolved.is_empty() => None,
                (Cause::Peers, true, _) => Some(Resolution::PeersChanged),
                (Cause::Manifests, _, _) | (Cause::Agent | Cause::Peers, false, _) => {
                    Some(Resolution::ManifestChanged {
                        commit: commit.clone(),
                    })
                }
                (Cause::Agent, true, Key::Package(_)) => Some(Resolution::PackageChanged),
                (Cause::Agent, true, Key::File(_)) => Some(Resolution::Reverted),
            };
            for d in &mut r.resolved {
                // Who put it right and how; whether the drift was authorised stays with it,
                // so that its end can be counted with its kind.
                d.evidence = Evidence {
                    who: matches!(cause, Cause::Agent).then(|| who.clone()).flatten(),
                    authorisation: d.evidence.authorisation.take(),
                    resolution: resolution.clone(),
                };
            }
            opened.extend(r.opened.into_iter().map(|d| (key.clone(), d)));
            changed.extend(r.changed.into_iter().map(|d| (key.clone(), d)));
            resolved.extend(r.resolved);
            if !r.open.is_empty() {
                host.drift.insert(key.clone(), r.open);
            }
        }
        host.release_drained();
        let changes: Vec<Change> = opened
            .into_iter()
            .map(|(origin, record)| Change::Open { origin, record })
            .chain(
                changed
                    .into_iter()
                    .map(|(origin, record)| Change::Change { origin, record }),
            )
            .chain(
                resolved
                    .into_iter()
                    .map(|record| Change::Resolve { record }),
            )
            .collect();
        for c in &changes {
            let (kind, item) = match c {
                Change::Open { record, .. } => (EventKind::Opened, record),
                Change::Change { record, .. } => (EventKind::Changed, record),
                Change::Resolve { record } => (EventKind::Resolved, record),
            };
            tracing::info!(host = %host_id, event = %kind, resource = %item.resource, attribute = %item.attribute, expected = %item.expected, actual = %item.actual, "drift");
        }
        let write = (!changes.is_empty() || !observations.is_empty()).then(|| Write::Record {
            host_id: host_id.to_owned(),
            at_ms: now,
            observations,
            changes,
        });
        self.write(write, ack);
        self.release_acks(host_id);
    }

    pub(super) fn disconnected(&mut self, conn: u64, why: &str) -> Result<(), StoreError> {
        let Some(id) = self.conn_host.remove(&conn) else {
            return Ok(());
        };
        self.stream_ended(id, conn, why);
        Ok(())
    }

    /// The end of stream `conn` of host `id` (already out of `conn_host`): the host is
    /// offline, said in the log; unless the stream was asked to go for its age, when it is
    /// offline only if it does not connect again (`retire.rs`).
    pub(super) fn stream_ended(&mut self, id: String, conn: u64, why: &str) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        if host.conn.as_ref().is_none_or(|c| c.id != conn) {
            return; // an older stream of a host that has reconnected since
        }
        let retired = host.conn.take().is_some_and(|c| c.asked_to_go.is_some());
        let seen = host.last_seen_ms;
        if retired {
            tracing::info!(host = %id, why, "retired stream ended; the agent is to connect again");
            host.moving_since = Some(Instant::now());
        } else {
            tracing::warn!(host = %id, why, "agent offline; keeping its last known drift");
        }
        if self.touch(&[(&id, seen)])
            && let Some(host) = self.hosts.get_mut(&id)
        {
            host.seen_stored_ms = seen;
        }
        if retired {
            return;
        }
        let at_ms = self.now();
        self.write(
            Some(Write::Log {
                host_id: id,
                at_ms,
                kind: EventKind::HostOffline,
                item: None,
            }),
            None,
        );
    }

    /// How well the agent observes its plan; degraded coverage is dated from when it began.
    pub(super) fn coverage(&mut self, conn: u64, mut coverage: Coverage) {
        let now = self.now();
        let Some(host) = self.host_of(conn) else {
            return;
        };
        let was = host.coverage.take();
        coverage.degraded_since_ms = match (&was, coverage.degraded()) {
            (_, false) => None,
            (Some(w), true) if w.degraded() => w.degraded_since_ms,
            (_, true) => Some(now),
        };
        if coverage.degraded() && was.as_ref().is_none_or(|w| !w.degraded()) {
            tracing::warn!(host = %host.info.host_id, polled = coverage.polled.len(), errors = ?coverage.watch_errors, "coverage degraded");
        }
        let changed = was.as_ref() != Some(&coverage);
        host.coverage = Some(coverage);
        if changed {
            let id = host.info.host_id.clone();
            self.share_state(&id);
        }
    }

    /// On a shared store, what this controller knows of a host beyond drift goes into the
    /// store for the others.
    fn share_state(&mut self, host_id: &str) {
        if !self.shared {
            return;
        }
        let Some(host) = self.hosts.get(host_id).filter(|h| h.conn.is_some()) else {
            return;
        };
        let state = crate::store::HostState {
            evaluated: host.evaluated,
            coverage: host.coverage.clone(),
        };
        self.write(
            Some(Write::State {
                host_id: host_id.to_owned(),
                state,
            }),
            None,
        );
    }
}
