//! Pure: the fleet as it stood at a moment, rebuilt from the event log.
//!
//! Every entry that opens or changes drift, acknowledges a resource, or begins a host's stream
//! begins a *span*; the entry that changes, resolves, ends or replaces it ends that span. What
//! stood at a moment T is every span begun at or before T and not ended by then
//! (`from_ms <= T < to_ms`), each read back with the entry that began it, so its content is
//! the chained entry's own. Stores keep the spans as an index beside the log (`effect` says
//! what each entry does to them, written in the entry's own transaction); `replay` builds the
//! same answer from the entries alone, which is what the stores are tested against.

use std::collections::BTreeMap;

use crate::model::{Ack, DriftRecord, Event, EventKind, HostStatus};

/// `to_ms` of a span nothing has ended yet.
pub const OPEN: i64 = i64::MAX;

/// What a span is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    /// One version of one drift item: from its `opened` or `changed` entry to the next
    /// `changed` or its `resolved`.
    Drift,
    /// An acknowledgement: from `acknowledged` to `ack_revoked`, `ack_expired` or the next
    /// `acknowledged` of the same resource.
    Ack,
    /// A host's stream: from `host_online` to `host_offline` or the next `host_online`.
    Stream,
}

impl Span {
    pub fn as_str(self) -> &'static str {
        match self {
            Span::Drift => "drift",
            Span::Ack => "ack",
            Span::Stream => "stream",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Span::Drift, Span::Ack, Span::Stream]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What one entry does to the spans of its host: it ends the span open under
/// (`span`, `resource`, `attribute`), if any, at its time; and, where `begins`, begins a new
/// one there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect<'a> {
    pub span: Span,
    pub resource: &'a str,
    pub attribute: &'a str,
    pub begins: bool,
}

/// What an entry of `kind` with `item` does to the spans; `None` for the entries that stand
/// for nothing at a later moment (reads, manifests, the controller's own).
pub fn effect(kind: EventKind, item: Option<&DriftRecord>) -> Option<Effect<'_>> {
    let (span, begins) = match kind {
        EventKind::Opened | EventKind::Changed => (Span::Drift, true),
        EventKind::Resolved => (Span::Drift, false),
        EventKind::Acknowledged => (Span::Ack, true),
        EventKind::AckRevoked | EventKind::AckExpired => (Span::Ack, false),
        EventKind::HostOnline => (Span::Stream, true),
        EventKind::HostOffline => (Span::Stream, false),
        _ => return None,
    };
    let (resource, attribute) = match span {
        Span::Stream => ("", ""),
        Span::Ack => (item?.resource.as_str(), ""),
        Span::Drift => {
            let item = item?;
            (item.resource.as_str(), item.attribute.as_str())
        }
    };
    Some(Effect {
        span,
        resource,
        attribute,
        begins,
    })
}

/// What stood at a moment, as a store reads it from its spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    pub at_ms: i64,
    /// Every span standing then, with the entry that began it, in the entries' order.
    pub open: Vec<(Span, Event)>,
    /// Every host whose first stream had begun by then, by id, with when its last stream
    /// ended where none stood then.
    pub hosts: Vec<(String, Option<i64>)>,
}

/// One host as it stood at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAt {
    pub host_id: String,
    /// `offline`, `drifted` or `in_sync`, as the log says: the log keeps streams and drift,
    /// not the agent's coverage, so a host then degraded reads `in_sync` here (said where
    /// this is shown).
    pub status: HostStatus,
    /// Since when its stream stood (online) or since it ended (offline).
    pub since_ms: i64,
    pub drift: Vec<DriftRecord>,
    /// Acknowledgements standing then and not yet run out.
    pub acks: Vec<Ack>,
}

/// What the log cannot say of a past moment, for whoever shows one.
pub const CAVEAT: &str = "rebuilt from the event log, which keeps streams, drift and acknowledgements but not the agents' coverage: a host whose coverage was degraded then shows in_sync";

/// Each host known at the moment with its status, drift and acknowledgements then, by id.
pub fn hosts(standing: &Standing) -> Vec<HostAt> {
    let at = standing.at_ms;
    let mut by_host: BTreeMap<&str, HostAt> = standing
        .hosts
        .iter()
        .map(|(id, ended)| {
            (
                id.as_str(),
                HostAt {
                    host_id: id.clone(),
                    status: HostStatus::Offline,
                    since_ms: ended.unwrap_or(0),
                    drift: Vec::new(),
                    acks: Vec::new(),
                },
            )
        })
        .collect();
    for (span, e) in &standing.open {
        let Some(h) = by_host.get_mut(e.host_id.as_str()) else {
            // Drift of a host whose stream began after it (written by another controller's
            // clock): it stood all the same.
            continue;
        };
        match span {
            Span::Stream => {
                h.status = HostStatus::InSync;
                h.since_ms = e.at_ms;
            }
            Span::Drift => h.drift.extend(e.item.clone()),
            Span::Ack => {
                if let Some(ack) = ack_of(e).filter(|a| a.active(at)) {
                    h.acks.push(ack);
                }
            }
        }
    }
    for h in by_host.values_mut() {
        if h.status == HostStatus::InSync && !h.drift.is_empty() {
            h.status = HostStatus::Drifted;
        }
        h.drift
            .sort_by(|a, b| (&a.resource, &a.attribute).cmp(&(&b.resource, &b.attribute)));
    }
    by_host.into_values().collect()
}

/// The acknowledgement an `acknowledged` entry gave (who in `expected`, why in `actual`,
/// until when in `since_ms`, 0: no end).
pub fn ack_of(e: &Event) -> Option<Ack> {
    let item = e.item.as_ref()?;
    Some(Ack {
        host_id: e.host_id.clone(),
        resource: item.resource.clone(),
        reason: item.actual.clone(),
        by: item.expected.clone(),
        at_ms: e.at_ms,
        expires_ms: (item.since_ms > 0).then_some(item.since_ms),
    })
}

/// Every span the entries make, as (span, the entry that began it, when it ended): what a
/// store's index holds, built from the log alone. `events` in the log's order (by id).
pub fn spans(events: &[Event]) -> Vec<(Span, &Event, i64)> {
    let mut all: Vec<(Span, &Event, i64)> = Vec::new();
    let mut open: BTreeMap<(&str, Span, &str, &str), usize> = BTreeMap::new();
    for e in events {
        let Some(fx) = effect(e.kind, e.item.as_ref()) else {
            continue;
        };
        let key = (e.host_id.as_str(), fx.span, fx.resource, fx.attribute);
        if let Some(i) = open.remove(&key) {
            all[i].2 = e.at_ms;
        }
        if fx.begins {
            open.insert(key, all.len());
            all.push((fx.span, e, OPEN));
        }
    }
    all
}

/// What stood at `at_ms`, from the log alone (`events` by id): the answer a store's
/// `standing` must give.
pub fn replay(events: &[Event], at_ms: i64) -> Standing {
    let spans = spans(events);
    let open = spans
        .iter()
        .filter(|(_, e, to)| e.at_ms <= at_ms && at_ms < *to)
        .map(|(s, e, _)| (*s, (*e).clone()))
        .collect();
    let mut hosts: BTreeMap<String, i64> = BTreeMap::new();
    for (_, e, to) in spans
        .iter()
        .filter(|(s, e, _)| *s == Span::Stream && e.at_ms <= at_ms)
    {
        let last = hosts.entry(e.host_id.clone()).or_insert(*to);
        *last = (*last).max(*to);
    }
    Standing {
        at_ms,
        open,
        hosts: hosts
            .into_iter()
            .map(|(h, to)| (h, (to <= at_ms).then_some(to)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        id: i64,
        at_ms: i64,
        host: &str,
        kind: EventKind,
        item: Option<(&str, &str)>,
    ) -> Event {
        Event {
            id,
            at_ms,
            host_id: host.into(),
            kind,
            item: item.map(|(resource, actual)| DriftRecord {
                resource: resource.into(),
                attribute: if kind == EventKind::Acknowledged {
                    "ack".into()
                } else {
                    "sha256".into()
                },
                expected: "alice".into(),
                actual: actual.into(),
                since_ms: 0,
                declared_at: String::new(),
                evidence: Default::default(),
            }),
        }
    }

    fn log() -> Vec<Event> {
        use EventKind::*;
        vec![
            entry(1, 100, "web-1", HostOnline, None),
            entry(2, 110, "web-2", HostOnline, None),
            entry(3, 200, "web-1", Opened, Some(("file:/etc/motd", "aa"))),
            entry(4, 300, "web-1", Changed, Some(("file:/etc/motd", "bb"))),
            entry(
                5,
                350,
                "web-1",
                Acknowledged,
                Some(("file:/etc/motd", "known")),
            ),
            entry(6, 400, "web-2", HostOffline, None),
            entry(7, 500, "web-1", Resolved, Some(("file:/etc/motd", "bb"))),
            entry(
                8,
                500,
                "web-1",
                AckRevoked,
                Some(("file:/etc/motd", "resolved")),
            ),
            entry(9, 600, "web-2", HostOnline, None),
            entry(10, 650, "", LogRead, Some(("audit-log", "history"))),
        ]
    }

    fn at(ms: i64) -> Vec<(String, HostStatus, Vec<String>, usize)> {
        hosts(&replay(&log(), ms))
            .into_iter()
            .map(|h| {
                (
                    h.host_id,
                    h.status,
                    h.drift.into_iter().map(|d| d.actual).collect(),
                    h.acks.len(),
                )
            })
            .collect()
    }

    #[test]
    fn a_moment_holds_the_version_of_each_drift_then_and_the_hosts_streams() {
        use HostStatus::*;
        let s = |h: &str, st, d: &[&str], acks| {
            (
                h.to_owned(),
                st,
                d.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                acks,
            )
        };
        assert_eq!(at(99), vec![]);
        assert_eq!(at(105), vec![s("web-1", InSync, &[], 0)]);
        assert_eq!(
            at(250),
            vec![s("web-1", Drifted, &["aa"], 0), s("web-2", InSync, &[], 0)]
        );
        // An entry counts from its own millisecond: the change at 300 stands at 300.
        assert_eq!(at(300)[0], s("web-1", Drifted, &["bb"], 0));
        assert_eq!(
            at(450),
            vec![s("web-1", Drifted, &["bb"], 1), s("web-2", Offline, &[], 0)]
        );
        assert_eq!(hosts(&replay(&log(), 450))[1].since_ms, 400);
        assert_eq!(
            at(500),
            vec![s("web-1", InSync, &[], 0), s("web-2", Offline, &[], 0)]
        );
        assert_eq!(
            at(700),
            vec![s("web-1", InSync, &[], 0), s("web-2", InSync, &[], 0)]
        );
        assert_eq!(hosts(&replay(&log(), 700))[1].since_ms, 600);
    }

    #[test]
    fn an_acknowledgement_stands_until_it_runs_out_even_before_its_expiry_entry() {
        let mut ack = entry(
            2,
            200,
            "h",
            EventKind::Acknowledged,
            Some(("file:/x", "why")),
        );
        ack.item.as_mut().expect("an item").since_ms = 300;
        let log = vec![entry(1, 100, "h", EventKind::HostOnline, None), ack];
        assert_eq!(hosts(&replay(&log, 250))[0].acks.len(), 1);
        assert_eq!(hosts(&replay(&log, 300))[0].acks.len(), 0);
    }

    #[test]
    fn reads_and_manifest_entries_stand_for_nothing() {
        for kind in [
            EventKind::LogRead,
            EventKind::ContentRead,
            EventKind::ManifestsAccepted,
            EventKind::StoreOutage,
            EventKind::ChangeOpened,
        ] {
            assert_eq!(effect(kind, None), None, "{kind}");
        }
        let log = log();
        let spans = spans(&log);
        assert_eq!(spans.len(), 6, "{spans:?}");
        // The first version of the drift ended with the change, the second with its resolve.
        assert_eq!((spans[2].1.id, spans[2].2), (3, 300));
        assert_eq!((spans[3].1.id, spans[3].2), (4, 500));
        assert_eq!(spans[5].2, OPEN);
    }
}
