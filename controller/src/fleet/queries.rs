//! What the fleet answers without changing anything: the hosts as the query API shows them,
//! the current drift for a follower, the event log, and its figures for `/metrics`.

use std::collections::BTreeMap;

use tokio::sync::broadcast;

use super::host::Host;
use super::metrics::Metrics;
use super::{Fleet, FleetError, Overview};
use crate::model::{Event, EventKind, HostInfo, HostStatus, HostView};
use crate::store::Head;

impl Fleet {
    pub(super) fn overview(&self) -> Overview {
        Overview {
            hosts: self.hosts.values().map(|h| self.view(h)).collect(),
            manifest_errors: self.manifest_errors.clone(),
            warnings: self.writes.warning().into_iter().collect(),
        }
    }

    /// Subscribes and reads the current drift in one step, so nothing falls between.
    pub(super) fn follow(&self, hosts: &[String]) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let rx = self.events.subscribe();
        let now = self.now();
        let current = self
            .hosts
            .values()
            .filter(|h| hosts.is_empty() || hosts.contains(&h.info.host_id))
            .flat_map(|h| {
                h.view().drift.into_iter().map(|item| Event {
                    id: 0,
                    at_ms: now,
                    host_id: h.info.host_id.clone(),
                    kind: EventKind::Opened,
                    item: Some(item),
                })
            })
            .collect();
        (current, rx)
    }

    /// The events, most recent first, and the log's head when they were read.
    pub(super) fn history(
        &self,
        host: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Event>, Head), FleetError> {
        let events = self.store.history(host, limit)?;
        Ok((events, self.store.head().clone()))
    }

    pub(super) fn metrics(&self) -> Metrics {
        let mut hosts: BTreeMap<&'static str, u64> =
            ["in_sync", "drifted", "degraded", "offline", "unknown"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        for h in self.hosts.values() {
            *hosts.entry(h.status().as_str()).or_default() += 1;
        }
        let w = &self.writes;
        Metrics {
            hosts,
            drift_open: self
                .hosts
                .values()
                .map(|h| h.drift.values().map(Vec::len).sum::<usize>() as u64)
                .sum(),
            agent_streams: self.hosts.values().filter(|h| h.conn.is_some()).count() as u64,
            acknowledgements: self.acks.all().len() as u64,
            store_writable: w.failing.is_none(),
            store_pending_writes: w.pending.iter().filter(|p| p.write.is_some()).count() as u64,
            store_write_failures_total: w.failures_total,
            store_dropped_writes_total: w.dropped_total,
            events_total: self.counters.events.clone(),
            evaluation_seconds: self.counters.evaluation.clone(),
            store_seconds: self.counters.store.clone(),
            webhooks: self
                .webhooks
                .as_ref()
                .map(|h| h.counts())
                .unwrap_or_default(),
        }
    }

    pub(super) fn view(&self, host: &Host) -> HostView {
        let mut view = host.view();
        view.acks = self.acks.of_host(&host.info.host_id);
        if host.conn.is_some() {
            view.controller = self.store.controller_id().map(str::to_owned);
        }
        view.status = self.status_of(host);
        view
    }

    /// A host's status as the queries say it.
    pub(super) fn status_of(&self, host: &Host) -> crate::model::HostStatus {
        if self.shared && self.writes.failing.is_some() && host.conn.is_none() {
            // What the other controllers did since the store was lost is not known here:
            // no "in sync" or "offline" from memory that may be stale.
            return crate::model::HostStatus::Unknown;
        }
        host.status()
    }

    /// A page of the log, and its head when it was read.
    pub(super) fn log_page(
        &self,
        q: &crate::store::LogQuery,
    ) -> Result<(Vec<Event>, Head), FleetError> {
        let events = self.store.page(q)?;
        Ok((events, self.store.head().clone()))
    }

    /// The hosts as they stood at `at_ms`, rebuilt from the log (`crate::moment`); those the
    /// fleet has forgotten since keep only their id. Read from the store, so a write still
    /// waiting for it is not in the answer: said, with the store's warning.
    pub(super) fn moment(&self, at_ms: i64) -> Result<(Overview, Head), FleetError> {
        let standing = self.store.standing(at_ms)?;
        let hosts = crate::moment::hosts(&standing)
            .into_iter()
            .map(|h| {
                let info = self.hosts.get(&h.host_id).map_or_else(
                    || HostInfo {
                        host_id: h.host_id.clone(),
                        ..HostInfo::default()
                    },
                    |known| known.info.clone(),
                );
                let online = h.status != HostStatus::Offline;
                HostView {
                    info,
                    status: h.status,
                    // Heard from then while its stream stood; else when that ended.
                    last_seen_ms: if online { at_ms } else { h.since_ms },
                    drift: h.drift,
                    manifests: Vec::new(),
                    coverage: None,
                    acks: h.acks,
                    controller: None,
                }
            })
            .collect();
        let mut warnings = vec![format!(
            "as at {}: {}",
            crate::clock::rfc3339(at_ms, true).unwrap_or_else(|| at_ms.to_string()),
            crate::moment::CAVEAT
        )];
        warnings.extend(self.writes.warning());
        let overview = Overview {
            hosts,
            manifest_errors: Vec::new(),
            warnings,
        };
        Ok((overview, self.store.head().clone()))
    }
}
