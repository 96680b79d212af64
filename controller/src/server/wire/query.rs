//! The query API's messages: the model's hosts, drift, events and acknowledgements to
//! plumb.v1 (the controller answering) and back (the CLI reading the answer). Each mapping is
//! here once in each direction, and the tests hold them to be inverses.

use plumb_proto::v1;

use crate::model::{
    Ack, Coverage, DriftRecord, Event, EventKind, HostFacts, HostInfo, HostStatus, HostView,
};
use crate::store::Head;
use crate::window::{ChangeWindow, Scope};

/// A host as listed; takes the view by value: a listing of 10,000 hosts moves their strings
/// rather than copying them again.
pub(crate) fn host_to_proto(h: HostView) -> v1::Host {
    let HostView {
        info,
        status,
        last_seen_ms,
        drift,
        manifests,
        coverage,
        acks: _,
        controller,
    } = h;
    let HostInfo {
        host_id,
        hostname,
        labels,
        facts,
        agent_version,
    } = info;
    v1::Host {
        host_id,
        hostname,
        status: status_to_proto(status) as i32,
        last_seen_ms,
        labels: labels.into_iter().collect(),
        os_name: facts.os_name,
        os_version: facts.os_version,
        kernel_version: facts.kernel_version,
        arch: facts.arch,
        agent_version,
        drift_count: drift.len() as u32,
        manifests,
        os_id: facts.os_id,
        coverage: coverage.map(|c| v1::HostCoverage {
            watches: c.watches,
            watch_limit: c.watch_limit,
            polled: c.polled,
            watch_errors: c.watch_errors,
            overflows: c.overflows,
            last_full_scan_ms: c.last_full_scan_ms,
            degraded_since_ms: c.degraded_since_ms.unwrap_or(0),
            attribution: c.attribution,
        }),
        controller: controller.unwrap_or_default(),
    }
}

fn status_to_proto(s: HostStatus) -> v1::HostStatus {
    match s {
        HostStatus::InSync => v1::HostStatus::InSync,
        HostStatus::Drifted => v1::HostStatus::Drifted,
        HostStatus::Offline => v1::HostStatus::Offline,
        HostStatus::Unknown => v1::HostStatus::Unknown,
        HostStatus::Degraded => v1::HostStatus::Degraded,
    }
}

pub(crate) fn drift_to_proto(d: &DriftRecord) -> v1::DriftItem {
    v1::DriftItem {
        resource: d.resource.clone(),
        attribute: d.attribute.clone(),
        expected: d.expected.clone(),
        actual: d.actual.clone(),
        since_ms: d.since_ms,
        declared_at: d.declared_at.clone(),
        evidence: super::evidence_to_proto(&d.evidence).map(Box::new),
    }
}

pub(crate) fn event_to_proto(e: &Event) -> v1::DriftEvent {
    let kind = match e.kind {
        EventKind::Opened => v1::DriftEventKind::Opened,
        EventKind::Resolved => v1::DriftEventKind::Resolved,
        EventKind::Changed => v1::DriftEventKind::Changed,
        EventKind::HostOnline => v1::DriftEventKind::HostOnline,
        EventKind::HostOffline => v1::DriftEventKind::HostOffline,
        EventKind::ManifestsAccepted => v1::DriftEventKind::ManifestsAccepted,
        EventKind::ManifestsRejected => v1::DriftEventKind::ManifestsRejected,
        EventKind::Acknowledged => v1::DriftEventKind::Acknowledged,
        EventKind::AckRevoked => v1::DriftEventKind::AckRevoked,
        EventKind::AckExpired => v1::DriftEventKind::AckExpired,
        EventKind::LogCreated => v1::DriftEventKind::LogCreated,
        EventKind::StoreOutage => v1::DriftEventKind::StoreOutage,
        EventKind::ChangeOpened => v1::DriftEventKind::ChangeOpened,
        EventKind::ChangeClosed => v1::DriftEventKind::ChangeClosed,
        EventKind::ChangeEnded => v1::DriftEventKind::ChangeEnded,
        EventKind::ContentRead => v1::DriftEventKind::ContentRead,
        EventKind::LogRead => v1::DriftEventKind::LogRead,
    };
    v1::DriftEvent {
        id: e.id,
        at_ms: e.at_ms,
        host_id: e.host_id.clone(),
        kind: kind as i32,
        item: e.item.as_ref().map(drift_to_proto),
    }
}

pub(crate) fn window_to_proto(w: &ChangeWindow) -> v1::ChangeWindow {
    let (closed_ms, closed_by) = w.closed.clone().unwrap_or_default();
    v1::ChangeWindow {
        ticket: w.ticket.clone(),
        scope: Some(scope_to_proto(&w.scope)),
        from_ms: w.from_ms,
        until_ms: w.until_ms,
        opened_by: w.opened_by.clone(),
        reason: w.reason.clone(),
        closed_ms,
        closed_by,
        ended: w.ended,
    }
}

pub(crate) fn scope_to_proto(s: &Scope) -> v1::ChangeScope {
    v1::ChangeScope {
        hosts: s.hosts.clone(),
        labels: s.labels.clone().into_iter().collect(),
        paths: s.paths.clone(),
        packages: s.packages.clone(),
    }
}

pub(crate) fn scope_from_proto(s: Option<v1::ChangeScope>) -> Scope {
    let s = s.unwrap_or_default();
    Scope {
        hosts: s.hosts,
        labels: s.labels.into_iter().collect(),
        paths: s.paths,
        packages: s.packages,
    }
}

pub(crate) fn window_from_proto(w: v1::ChangeWindow) -> ChangeWindow {
    ChangeWindow {
        ticket: w.ticket,
        scope: scope_from_proto(w.scope),
        from_ms: w.from_ms,
        until_ms: w.until_ms,
        opened_by: w.opened_by,
        reason: w.reason,
        closed: (w.closed_ms > 0).then_some((w.closed_ms, w.closed_by)),
        ended: w.ended,
    }
}

pub(crate) fn ack_to_proto(a: &Ack) -> v1::Acknowledgement {
    v1::Acknowledgement {
        host_id: a.host_id.clone(),
        resource: a.resource.clone(),
        reason: a.reason.clone(),
        by: a.by.clone(),
        at_ms: a.at_ms,
        expires_ms: a.expires_ms.unwrap_or(0),
    }
}

/// A host as a listing carries it (without its drift items), and its open drift count.
pub(crate) fn host_from_proto(h: v1::Host) -> (HostView, usize) {
    let drift_count = h.drift_count as usize;
    let view = HostView {
        info: HostInfo {
            host_id: h.host_id,
            hostname: h.hostname,
            labels: h.labels.into_iter().collect(),
            facts: HostFacts {
                os_id: h.os_id,
                os_name: h.os_name,
                os_version: h.os_version,
                kernel_version: h.kernel_version,
                arch: h.arch,
                cpus: 0,
                memory_bytes: 0,
            },
            agent_version: h.agent_version,
        },
        status: status_from_proto(h.status),
        last_seen_ms: h.last_seen_ms,
        drift: Vec::new(),
        manifests: h.manifests,
        coverage: h.coverage.map(|c| Coverage {
            watches: c.watches,
            watch_limit: c.watch_limit,
            polled: c.polled,
            watch_errors: c.watch_errors,
            overflows: c.overflows,
            last_full_scan_ms: c.last_full_scan_ms,
            degraded_since_ms: (c.degraded_since_ms > 0).then_some(c.degraded_since_ms),
            attribution: c.attribution,
        }),
        acks: Vec::new(),
        controller: (!h.controller.is_empty()).then_some(h.controller),
    };
    (view, drift_count)
}

/// A host with its drift items and the acknowledgements in force for them.
pub(crate) fn host_drift_from_proto(hd: v1::HostDrift) -> HostView {
    let (mut view, _) = host_from_proto(hd.host.unwrap_or_default());
    view.drift = hd.drift.into_iter().map(drift_from_proto).collect();
    view.acks = hd.acks.into_iter().map(ack_from_proto).collect();
    view
}

/// A status this plumb does not know (a newer controller's) reads as unknown.
fn status_from_proto(s: i32) -> HostStatus {
    match v1::HostStatus::try_from(s) {
        Ok(v1::HostStatus::InSync) => HostStatus::InSync,
        Ok(v1::HostStatus::Drifted) => HostStatus::Drifted,
        Ok(v1::HostStatus::Offline) => HostStatus::Offline,
        Ok(v1::HostStatus::Degraded) => HostStatus::Degraded,
        _ => HostStatus::Unknown,
    }
}

pub(crate) fn drift_from_proto(d: v1::DriftItem) -> DriftRecord {
    DriftRecord {
        resource: d.resource,
        attribute: d.attribute,
        expected: d.expected,
        actual: d.actual,
        since_ms: d.since_ms,
        declared_at: d.declared_at,
        evidence: super::evidence_from_proto(d.evidence.map(|e| *e)),
    }
}

/// An event of a kind this plumb does not know (a newer controller's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the controller sent event {id} of a kind this plumb does not know ({kind}); use the controller's version of plumb"
)]
pub(crate) struct UnknownEvent {
    id: i64,
    kind: i32,
}

/// An event; one of a kind this plumb does not know (a newer controller's) is an error that
/// says so, rather than an event shown as something it is not.
pub(crate) fn event_from_proto(e: v1::DriftEvent) -> Result<Event, UnknownEvent> {
    use v1::DriftEventKind as K;
    let kind = match K::try_from(e.kind) {
        Ok(K::Opened) => EventKind::Opened,
        Ok(K::Resolved) => EventKind::Resolved,
        Ok(K::Changed) => EventKind::Changed,
        Ok(K::HostOnline) => EventKind::HostOnline,
        Ok(K::HostOffline) => EventKind::HostOffline,
        Ok(K::ManifestsAccepted) => EventKind::ManifestsAccepted,
        Ok(K::ManifestsRejected) => EventKind::ManifestsRejected,
        Ok(K::Acknowledged) => EventKind::Acknowledged,
        Ok(K::AckRevoked) => EventKind::AckRevoked,
        Ok(K::AckExpired) => EventKind::AckExpired,
        Ok(K::LogCreated) => EventKind::LogCreated,
        Ok(K::StoreOutage) => EventKind::StoreOutage,
        Ok(K::ChangeOpened) => EventKind::ChangeOpened,
        Ok(K::ChangeClosed) => EventKind::ChangeClosed,
        Ok(K::ChangeEnded) => EventKind::ChangeEnded,
        Ok(K::ContentRead) => EventKind::ContentRead,
        Ok(K::LogRead) => EventKind::LogRead,
        Ok(K::Unspecified) | Err(_) => {
            return Err(UnknownEvent {
                id: e.id,
                kind: e.kind,
            });
        }
    };
    Ok(Event {
        id: e.id,
        at_ms: e.at_ms,
        host_id: e.host_id,
        kind,
        item: e.item.map(drift_from_proto),
    })
}

pub(crate) fn ack_from_proto(a: v1::Acknowledgement) -> Ack {
    Ack {
        host_id: a.host_id,
        resource: a.resource,
        reason: a.reason,
        by: a.by,
        at_ms: a.at_ms,
        expires_ms: (a.expires_ms > 0).then_some(a.expires_ms),
    }
}

pub(crate) fn head_from_proto(h: v1::AuditHead) -> Head {
    Head {
        last_id: h.entry,
        hash: h.hash,
        signature: h.signature,
        public_key: h.public_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DriftRecord {
        DriftRecord {
            resource: "file:/etc/a".into(),
            attribute: "mode".into(),
            expected: "0644".into(),
            actual: "0600".into(),
            since_ms: 1_000,
            declared_at: "m.yaml:4:3".into(),
            evidence: Default::default(),
        }
    }

    #[test]
    fn every_event_kind_reads_back_as_itself() {
        let kinds = [
            EventKind::Opened,
            EventKind::Resolved,
            EventKind::Changed,
            EventKind::HostOnline,
            EventKind::HostOffline,
            EventKind::ManifestsAccepted,
            EventKind::ManifestsRejected,
            EventKind::Acknowledged,
            EventKind::AckRevoked,
            EventKind::AckExpired,
            EventKind::LogCreated,
            EventKind::StoreOutage,
        ];
        for kind in kinds {
            let e = Event {
                id: 7,
                at_ms: 2_000,
                host_id: "web-1".into(),
                kind,
                item: Some(record()),
            };
            assert_eq!(event_from_proto(event_to_proto(&e)), Ok(e));
        }
        let unknown = v1::DriftEvent {
            id: 9,
            kind: 999,
            ..Default::default()
        };
        let why = event_from_proto(unknown).expect_err("not a kind this plumb knows");
        assert!(why.to_string().contains("event 9"), "{why}");
    }

    #[test]
    fn hosts_and_acknowledgements_read_back_as_themselves() {
        let ack = Ack {
            host_id: "web-1".into(),
            resource: "file:/etc/a".into(),
            reason: "change 42".into(),
            by: "alice".into(),
            at_ms: 3_000,
            expires_ms: None,
        };
        assert_eq!(ack_from_proto(ack_to_proto(&ack)), ack);
        for status in [
            HostStatus::InSync,
            HostStatus::Drifted,
            HostStatus::Offline,
            HostStatus::Unknown,
            HostStatus::Degraded,
        ] {
            let view = HostView {
                info: HostInfo {
                    host_id: "web-1".into(),
                    hostname: "web-1.example".into(),
                    labels: [("role".to_owned(), "web".to_owned())].into(),
                    facts: HostFacts {
                        os_id: "debian".into(),
                        arch: "x86_64".into(),
                        ..Default::default()
                    },
                    agent_version: "0.1.0".into(),
                },
                status,
                last_seen_ms: 5_000,
                drift: vec![record()],
                manifests: vec!["baseline".into()],
                coverage: Some(Coverage {
                    watches: 3,
                    degraded_since_ms: Some(4_000),
                    ..Default::default()
                }),
                acks: vec![ack.clone()],
                controller: Some("c1-42-00ff".into()),
            };
            let (listed, count) = host_from_proto(host_to_proto(view.clone()));
            assert_eq!(count, 1);
            assert_eq!(listed.status, status);
            assert_eq!(listed.info, view.info);
            assert_eq!(listed.coverage, view.coverage);
            assert_eq!(listed.controller, view.controller);
            let with_drift = host_drift_from_proto(v1::HostDrift {
                host: Some(host_to_proto(view.clone())),
                drift: view.drift.iter().map(drift_to_proto).collect(),
                acks: view.acks.iter().map(ack_to_proto).collect(),
            });
            assert_eq!(with_drift, view);
        }
    }
}
