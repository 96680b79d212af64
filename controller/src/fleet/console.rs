//! What the web console asks of the fleet, answered on the fleet thread without copying the
//! whole fleet: a summary (hosts by status, open drift, the hosts not seen lately, the trend of
//! drift opened and resolved), one page of drift rows under a filter, one host.

use std::collections::BTreeMap;

use super::{Fleet, FleetError};
use crate::manifest::glob::Glob;
use crate::model::{Ack, DriftRecord, Event, EventKind, HostStatus, HostView};
use crate::role::Scope;

/// Days the overview's trend covers.
pub const TREND_DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;
/// Hosts not seen lately the overview names (the rest are counted).
const STALE_SHOWN: usize = 10;
/// Unauthorised drift rows the overview shows (the drift page has them all).
const TOP_DRIFT: usize = 10;
/// Drift items a host's page shows (the drift page pages through them all).
pub const HOST_DRIFT_SHOWN: usize = 200;

/// The overview page's figures.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub hosts: usize,
    /// Hosts by status, every status present (0 where none).
    pub by_status: Vec<(HostStatus, usize)>,
    pub drift_open: usize,
    pub unauthorised_open: usize,
    pub acknowledged_open: usize,
    /// The most recent unauthorised drift, newest first.
    pub top_unauthorised: Vec<DriftRow>,
    /// Hosts whose agent has not been heard from for three heartbeats, longest first.
    pub stale: Vec<(String, i64)>,
    pub stale_total: usize,
    pub manifest_errors: Vec<String>,
    pub warnings: Vec<String>,
    /// (day start in ms, opened, resolved), oldest first, `TREND_DAYS` of them.
    pub trend: Vec<(i64, u64, u64)>,
    pub now_ms: i64,
}

/// One open drift item, with its host's status and its acknowledgement.
#[derive(Debug, Clone)]
pub struct DriftRow {
    pub host: String,
    pub status: HostStatus,
    pub record: DriftRecord,
    pub ack: Option<Ack>,
}

/// Which drift rows, and which page of them.
#[derive(Debug, Clone, Default)]
pub struct DriftFilter {
    /// A host id glob (`web-*`) or part of one.
    pub host: String,
    /// `key=value` a host's labels must hold.
    pub label: String,
    /// Part of the manifest file that declares it.
    pub manifest: String,
    /// Part of the resource (`file:/etc/nginx`, `package:`).
    pub resource: String,
    pub attribute: String,
    /// Only acknowledged (`Some(true)`) or unacknowledged (`Some(false)`) rows.
    pub acknowledged: Option<bool>,
    pub unauthorised_only: bool,
    pub offset: usize,
    pub limit: usize,
    /// The asker's hosts; no other host's rows are looked at.
    pub scope: Scope,
}

/// A page of drift rows, and how many match in all.
#[derive(Debug, Clone, Default)]
pub struct DriftPage {
    pub rows: Vec<DriftRow>,
    pub total: usize,
}

/// One host as its page shows it: the query API's view, and the declared files a diff may be
/// asked for.
#[derive(Debug, Clone)]
pub struct HostDetail {
    /// The query API's view, its drift cut to the first `HOST_DRIFT_SHOWN` items.
    pub view: HostView,
    /// The host's open drift items in all.
    pub drift_total: usize,
    pub diffable: Vec<String>,
    pub now_ms: i64,
}

/// Opened and resolved entries per day, kept as they are published once read from the store.
#[derive(Debug, Default)]
pub(super) struct Trend {
    days: BTreeMap<i64, (u64, u64)>,
}

impl Trend {
    fn count(&mut self, at_ms: i64, kind: EventKind) {
        let day = at_ms.div_euclid(DAY_MS) * DAY_MS;
        let slot = self.days.entry(day).or_default();
        match kind {
            EventKind::Opened => slot.0 += 1,
            EventKind::Resolved => slot.1 += 1,
            _ => {}
        }
    }
}

impl Fleet {
    /// Counts an entry in the trend, once the trend has been read from the store (until then
    /// the store's read will count it).
    pub(super) fn count_trend(&mut self, event: &Event) {
        if let Some(trend) = &mut self.trend
            && matches!(event.kind, EventKind::Opened | EventKind::Resolved)
        {
            trend.count(event.at_ms, event.kind);
        }
    }

    /// The ids of the hosts `scope` sees.
    pub(super) fn visible(&self, scope: &Scope) -> std::collections::HashSet<String> {
        self.hosts
            .values()
            .filter(|h| scope.sees(&h.info.host_id, &h.info.labels))
            .map(|h| h.info.host_id.clone())
            .collect()
    }

    /// The overview's figures over the hosts `scope` sees. The trend counts the whole fleet's
    /// drift, so a scoped person gets none (it would tell of hosts they may not see).
    pub(super) fn summary(&mut self, scope: &Scope) -> Result<Summary, FleetError> {
        let now = self.now();
        let first_day = (now.div_euclid(DAY_MS) - (TREND_DAYS - 1)) * DAY_MS;
        if self.trend.is_none() {
            let mut trend = Trend::default();
            for (at_ms, kind) in self.store.trend(first_day)? {
                trend.count(at_ms, kind);
            }
            self.trend = Some(trend);
        }
        let days = &self.trend.as_ref().map(|t| &t.days);
        let trend = (0..TREND_DAYS)
            .map(|i| {
                let day = first_day + i * DAY_MS;
                let (o, r) = days.and_then(|d| d.get(&day).copied()).unwrap_or_default();
                (day, o, r)
            })
            .collect();
        let mut s = Summary {
            hosts: 0,
            manifest_errors: self.manifest_errors.clone(),
            warnings: self.writes.warning().into_iter().collect(),
            trend,
            now_ms: now,
            ..Summary::default()
        };
        let mut by_status: BTreeMap<&'static str, usize> = BTreeMap::new();
        let quiet_ms = (self.heartbeat_interval * super::MISSED_HEARTBEATS).as_millis() as i64;
        let mut stale = Vec::new();
        let mut unauthorised = Vec::new();
        if !scope.whole() {
            s.trend.clear();
        }
        for h in self
            .hosts
            .values()
            .filter(|h| scope.sees(&h.info.host_id, &h.info.labels))
        {
            s.hosts += 1;
            let status = self.status_of(h);
            *by_status.entry(status.as_str()).or_default() += 1;
            if now - h.last_seen_ms > quiet_ms {
                stale.push((h.info.host_id.clone(), h.last_seen_ms));
            }
            for d in h.drift.values().flatten() {
                s.drift_open += 1;
                if self.acks.get(&h.info.host_id, &d.resource).is_some() {
                    s.acknowledged_open += 1;
                }
                if d.evidence.unauthorised() {
                    s.unauthorised_open += 1;
                    unauthorised.push((h, status, d));
                }
            }
        }
        s.by_status = [
            HostStatus::Drifted,
            HostStatus::Degraded,
            HostStatus::Offline,
            HostStatus::Unknown,
            HostStatus::InSync,
        ]
        .into_iter()
        .map(|st| (st, by_status.get(st.as_str()).copied().unwrap_or(0)))
        .collect();
        unauthorised.sort_by_key(|(_, _, d)| std::cmp::Reverse(d.since_ms));
        s.top_unauthorised = unauthorised
            .into_iter()
            .take(TOP_DRIFT)
            .map(|(h, status, d)| self.row(h, status, d))
            .collect();
        stale.sort_by_key(|(_, seen)| *seen);
        s.stale_total = stale.len();
        stale.truncate(STALE_SHOWN);
        s.stale = stale;
        Ok(s)
    }

    /// The rows `f` selects, unauthorised first, then newest first; `f.limit` of them from
    /// `f.offset`.
    pub(super) fn drift_page(&self, f: &DriftFilter) -> DriftPage {
        let host_glob = f
            .host
            .contains(['*', '?', '['])
            .then(|| Glob::new(&f.host).ok())
            .flatten();
        let label = f.label.split_once('=');
        let mut rows: Vec<(&super::host::Host, HostStatus, &DriftRecord)> = Vec::new();
        for h in self.hosts.values() {
            let id = &h.info.host_id;
            let host_ok = match &host_glob {
                Some(g) => g.matches(id),
                None => id.contains(f.host.as_str()),
            };
            let label_ok = match label {
                Some((k, v)) => h.info.labels.get(k.trim()).is_some_and(|x| x == v.trim()),
                None => f.label.is_empty() || h.info.labels.contains_key(f.label.trim()),
            };
            if !host_ok || !label_ok || !f.scope.sees(id, &h.info.labels) {
                continue;
            }
            let status = self.status_of(h);
            for d in h.drift.values().flatten() {
                let acked = self.acks.get(id, &d.resource).is_some();
                let keep = d.resource.contains(f.resource.as_str())
                    && (f.attribute.is_empty() || d.attribute == f.attribute)
                    && d.declared_at.contains(f.manifest.as_str())
                    && f.acknowledged.is_none_or(|want| want == acked)
                    && (!f.unauthorised_only || d.evidence.unauthorised());
                if keep {
                    rows.push((h, status, d));
                }
            }
        }
        rows.sort_by(|a, b| {
            let key = |(h, _, d): &(&super::host::Host, HostStatus, &DriftRecord)| {
                (
                    !d.evidence.unauthorised(),
                    std::cmp::Reverse(d.since_ms),
                    h.info.host_id.clone(),
                    d.resource.clone(),
                    d.attribute.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        DriftPage {
            total: rows.len(),
            rows: rows
                .into_iter()
                .skip(f.offset)
                .take(f.limit)
                .map(|(h, status, d)| self.row(h, status, d))
                .collect(),
        }
    }

    /// One host, if `scope` sees it (else it is unknown, as a host that does not exist).
    pub(super) fn host_detail(&self, id: &str, scope: &Scope) -> Result<HostDetail, FleetError> {
        let h = self
            .hosts
            .get(id)
            .filter(|h| scope.sees(id, &h.info.labels))
            .ok_or_else(|| FleetError::UnknownHost(id.to_owned()))?;
        let diffable = h
            .desired
            .files
            .iter()
            .filter(|(_, decl)| {
                decl.spec.diff && !decl.spec.sensitive && decl.spec.desired_content.is_some()
            })
            .map(|(path, _)| path.clone())
            .collect();
        let mut view = self.view(h);
        let drift_total = view.drift.len();
        view.drift.truncate(HOST_DRIFT_SHOWN);
        Ok(HostDetail {
            view,
            drift_total,
            diffable,
            now_ms: self.now(),
        })
    }

    fn row(&self, h: &super::host::Host, status: HostStatus, d: &DriftRecord) -> DriftRow {
        DriftRow {
            host: h.info.host_id.clone(),
            status,
            record: d.clone(),
            ack: self.acks.get(&h.info.host_id, &d.resource).cloned(),
        }
    }
}
