//! What every store backend must do, written against the `Store` trait alone. A backend runs
//! the whole suite with `suite!(make)`, where `make()` prepares a new, empty place to store
//! (a temp dir, a new database) and returns an opener: each call opens that same store again,
//! as a restart of the controller would. `make()` returns `None` where the backend's server is
//! missing on this machine (it says so; under CI it fails instead).
//!
//! SQLite runs it in `sqlite/tests.rs` and PostgreSQL in `postgres/tests.rs`, unchanged.

use crate::drift::{Kind, Observation, Observed};
use crate::key::Key;
use crate::model::{Ack, DriftRecord, EventKind, HostInfo};
use crate::store::{Change, Store, Trusted, Write};

/// Opens one place's store (again).
mod evidence;
mod log;
mod moment;

pub(crate) use evidence::{
    change_windows_open_close_and_end_once_with_their_entries,
    evidence_is_kept_with_open_drift_and_its_events,
};
pub(crate) use log::{
    a_new_store_begins_its_log_with_log_created, an_untouched_log_verifies,
    history_is_newest_first_per_host_and_limited,
    ids_follow_the_head_without_gaps_and_the_head_moves_only_with_events,
    the_log_pages_by_id_host_and_kind_and_the_trend_counts_recent_drift,
};
pub(crate) use moment::{
    a_morning, a_period_of_the_log_is_read_by_time_and_paged_by_id, stands_as_its_log_says,
    the_fleet_at_any_moment_is_its_log_replayed,
};

pub(crate) type Opener<'a> = &'a dyn Fn() -> Box<dyn Store>;

/// One `#[test]` per case, each on a new place from `$make`.
macro_rules! suite {
    ($make:expr) => {
        mod conformance {
            use super::*;
            $crate::store::conformance::suite!(@cases $make;
                a_new_store_begins_its_log_with_log_created,
                drift_events_and_observations_survive_reopening,
                history_is_newest_first_per_host_and_limited,
                the_log_pages_by_id_host_and_kind_and_the_trend_counts_recent_drift,
                ids_follow_the_head_without_gaps_and_the_head_moves_only_with_events,
                a_write_appends_the_events_it_says_it_will,
                a_removed_observation_is_gone_and_others_stay,
                each_hosts_drift_is_its_own,
                acknowledgements_are_kept_replaced_and_dropped_with_their_events,
                last_seen_times_are_written_for_many_hosts_at_once,
                a_host_written_again_keeps_one_row_with_its_new_identity,
                an_untouched_log_verifies,
                evidence_is_kept_with_open_drift_and_its_events,
                change_windows_open_close_and_end_once_with_their_entries,
                the_fleet_at_any_moment_is_its_log_replayed,
                a_period_of_the_log_is_read_by_time_and_paged_by_id,
            );
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                // `None`: the backend's server is missing here (the maker said so, and fails
                // under CI instead).
                let Some(open) = ($make)() else { return };
                $crate::store::conformance::$case(&open);
            }
        )*
    };
}
pub(crate) use suite;

fn host(id: &str) -> HostInfo {
    HostInfo {
        host_id: id.into(),
        hostname: format!("{id}.example"),
        labels: [("role".to_owned(), "web".to_owned())].into(),
        ..Default::default()
    }
}

fn record(attribute: &str, actual: &str, since_ms: i64) -> DriftRecord {
    DriftRecord {
        resource: "file:/etc/a".into(),
        attribute: attribute.into(),
        expected: "0644".into(),
        actual: actual.into(),
        since_ms,
        declared_at: "m.yaml:4:3".into(),
        evidence: Default::default(),
    }
}

fn observed(mode: u32) -> Observation {
    Observation::File(Observed {
        kind: Kind::File,
        resolved_kind: Kind::File,
        mode,
        uid: 0,
        gid: 0,
        owner: Some("root".into()),
        group: None,
        sha256: None,
        more: crate::drift::More {
            contains: vec![true],
            ..Default::default()
        }
        .boxed(),
    })
}

fn put_host(store: &mut dyn Store, id: &str, last_seen_ms: i64) {
    store.upsert_host(&host(id), last_seen_ms).expect("host");
}

fn write_record(
    store: &mut dyn Store,
    host_id: &str,
    at_ms: i64,
    observations: Vec<(&str, Option<Observation>)>,
    changes: Vec<Change>,
) -> Vec<crate::model::Event> {
    store
        .apply(&Write::Record {
            host_id: host_id.into(),
            at_ms,
            observations: observations
                .into_iter()
                .map(|(p, o)| (Key::from_stored(p), o))
                .collect(),
            changes,
        })
        .expect("record")
}

fn open_change(origin: &str, record: &DriftRecord) -> Change {
    Change::Open {
        origin: Key::from_stored(origin),
        record: record.clone(),
    }
}

pub(crate) fn drift_events_and_observations_survive_reopening(open: Opener<'_>) {
    let opened = record("mode", "0600", 1000);
    {
        let mut store = open();
        put_host(store.as_mut(), "web-1", 900);
        let events = write_record(
            store.as_mut(),
            "web-1",
            1000,
            vec![("/etc/a", Some(observed(0o100600)))],
            vec![open_change("/etc/a", &opened)],
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Opened);
        store.touch_hosts(&[("web-1", 1500)]).expect("touch");
    }
    let mut store = open();
    let hosts = store.load_hosts().expect("load");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].info, host("web-1"));
    assert_eq!(hosts[0].last_seen_ms, 1500);
    assert_eq!(hosts[0].drift, [(Key::file("/etc/a"), opened.clone())]);
    assert_eq!(
        store.load_observations("web-1").expect("observations"),
        [(Key::file("/etc/a"), observed(0o100600))]
    );

    // The host's agent connects to the controller of the reopened store: it claims the host
    // before writing for it, as the fleet does.
    put_host(store.as_mut(), "web-1", 1600);
    let changed = record("mode", "0640", 1000);
    write_record(
        store.as_mut(),
        "web-1",
        2000,
        vec![],
        vec![Change::Change {
            origin: Key::file("/etc/a"),
            record: changed.clone(),
        }],
    );
    assert_eq!(
        store.load_drift("web-1").expect("drift"),
        [(Key::file("/etc/a"), changed.clone())]
    );
    write_record(
        store.as_mut(),
        "web-1",
        3000,
        vec![("/etc/a", None)],
        vec![Change::Resolve {
            record: changed.clone(),
        }],
    );
    drop(store);
    let store = open();
    assert!(
        store.load_hosts().expect("load")[0].drift.is_empty(),
        "resolved drift is no longer open"
    );
    assert!(
        store
            .load_observations("web-1")
            .expect("observations")
            .is_empty()
    );
    let history = store.history(Some("web-1"), 10).expect("history");
    let kinds: Vec<_> = history.iter().map(|e| (e.kind, e.at_ms)).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Resolved, 3000),
            (EventKind::Changed, 2000),
            (EventKind::Opened, 1000)
        ]
    );
    assert_eq!(history[1].item.as_ref(), Some(&changed));
}

pub(crate) fn a_write_appends_the_events_it_says_it_will(open: Opener<'_>) {
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    let ack = Ack {
        host_id: "web-1".into(),
        resource: "file:/etc/a".into(),
        reason: "change 42".into(),
        by: "alice".into(),
        at_ms: 3,
        expires_ms: Some(99),
    };
    store.put_ack(&ack).expect("ack");
    let writes = [
        Write::Record {
            host_id: "web-1".into(),
            at_ms: 4,
            observations: vec![],
            changes: vec![open_change("/etc/a", &record("mode", "0600", 4))],
        },
        Write::Log {
            host_id: "web-1".into(),
            at_ms: 5,
            kind: EventKind::HostOnline,
            item: None,
        },
        Write::DropAck {
            ack,
            at_ms: 6,
            kind: EventKind::AckExpired,
        },
        Write::Online {
            info: host("web-2"),
            at_ms: 7,
        },
    ];
    for w in &writes {
        let said: Vec<_> = w.events();
        let made = store.apply(w).expect("apply");
        assert_eq!(made.len(), said.len(), "{w:?}");
        for (m, s) in made.iter().zip(&said) {
            assert!(m.id > 0);
            assert_eq!(
                (m.at_ms, &m.host_id, m.kind, &m.item),
                (s.at_ms, &s.host_id, s.kind, &s.item)
            );
        }
        assert_eq!(made.last().map(|e| e.id), Some(store.head().last_id));
    }
    // A stream's beginning stores the host too, and (on a shared store) claims it, so that
    // its writes are made.
    let web2 = store.load_host("web-2").expect("read").expect("stored");
    assert_eq!((web2.info, web2.last_seen_ms), (host("web-2"), 7));
    write_record(
        store.as_mut(),
        "web-2",
        8,
        vec![("/etc/a", Some(observed(0o644)))],
        vec![],
    );
}

pub(crate) fn a_removed_observation_is_gone_and_others_stay(open: Opener<'_>) {
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    write_record(
        store.as_mut(),
        "web-1",
        2,
        vec![
            ("/etc/a", Some(observed(0o100644))),
            ("package:nginx", Some(observed(0o100600))),
        ],
        vec![],
    );
    write_record(
        store.as_mut(),
        "web-1",
        3,
        vec![
            ("/etc/a", Some(observed(0o100640))),
            ("package:nginx", None),
        ],
        vec![],
    );
    let mut got = store.load_observations("web-1").expect("observations");
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, [(Key::file("/etc/a"), observed(0o100640))]);
}

pub(crate) fn each_hosts_drift_is_its_own(open: Opener<'_>) {
    let mut store = open();
    put_host(store.as_mut(), "web-2", 1);
    put_host(store.as_mut(), "web-1", 1);
    write_record(
        store.as_mut(),
        "web-1",
        2,
        vec![],
        vec![open_change("/etc/a", &record("mode", "0600", 2))],
    );
    write_record(
        store.as_mut(),
        "web-2",
        2,
        vec![],
        vec![open_change("package:nginx", &record("version", "1.2", 2))],
    );
    let hosts = store.load_hosts().expect("hosts");
    assert_eq!(
        hosts
            .iter()
            .map(|h| h.info.host_id.as_str())
            .collect::<Vec<_>>(),
        ["web-1", "web-2"],
        "by host id"
    );
    assert_eq!(hosts[0].drift[0].0, Key::file("/etc/a"));
    assert_eq!(
        hosts[1].drift[0].0,
        Key::package("nginx"),
        "the key it came from"
    );
    assert_eq!(store.load_drift("web-1").expect("drift").len(), 1);
    assert!(store.load_drift("nobody").expect("drift").is_empty());
}

pub(crate) fn acknowledgements_are_kept_replaced_and_dropped_with_their_events(open: Opener<'_>) {
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    let ack = Ack {
        host_id: "web-1".into(),
        resource: "file:/etc/a".into(),
        reason: "change 42".into(),
        by: "alice".into(),
        at_ms: 10,
        expires_ms: None,
    };
    let e = store.put_ack(&ack).expect("ack");
    assert_eq!(e.kind, EventKind::Acknowledged);
    let item = e.item.expect("an item");
    assert_eq!(
        (item.expected.as_str(), item.actual.as_str()),
        ("alice", "change 42")
    );
    let replaced = Ack {
        reason: "change 43".into(),
        expires_ms: Some(500),
        at_ms: 20,
        ..ack.clone()
    };
    store.put_ack(&replaced).expect("ack again");
    drop(store);
    let mut store = open();
    assert_eq!(
        store.load_acks().expect("acks"),
        std::slice::from_ref(&replaced),
        "one per resource"
    );
    let e = store
        .drop_ack(&replaced, 30, EventKind::AckRevoked)
        .expect("drop");
    assert_eq!((e.kind, e.at_ms), (EventKind::AckRevoked, 30));
    assert!(store.load_acks().expect("acks").is_empty());
    // Ended once: ending it again (another controller's expiry racing this one's) appends
    // nothing and says so.
    let head = store.head().clone();
    let again = store.drop_ack(&replaced, 40, EventKind::AckExpired);
    assert!(
        matches!(again, Err(crate::store::StoreError::AlreadyEnded { .. })),
        "{again:?}"
    );
    drop(store);
    assert_eq!(
        open().head(),
        &head,
        "no entry for an acknowledgement already ended"
    );
}

pub(crate) fn last_seen_times_are_written_for_many_hosts_at_once(open: Opener<'_>) {
    let mut store = open();
    for id in ["a", "b", "c"] {
        put_host(store.as_mut(), id, 1);
    }
    let head = store.head().clone();
    store.touch_hosts(&[("a", 100), ("c", 300)]).expect("touch");
    assert_eq!(store.head(), &head, "no event");
    let seen: Vec<(String, i64)> = store
        .load_hosts()
        .expect("hosts")
        .into_iter()
        .map(|h| (h.info.host_id, h.last_seen_ms))
        .collect();
    assert_eq!(
        seen,
        [("a".into(), 100), ("b".into(), 1), ("c".into(), 300)]
    );
}

pub(crate) fn a_host_written_again_keeps_one_row_with_its_new_identity(open: Opener<'_>) {
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    let mut info = host("web-1");
    info.labels.insert("tier".into(), "1".into());
    info.facts.os_id = "debian".into();
    store.upsert_host(&info, 2).expect("host again");
    let hosts = store.load_hosts().expect("hosts");
    assert_eq!(hosts.len(), 1);
    assert_eq!((&hosts[0].info, hosts[0].last_seen_ms), (&info, 2));
}
