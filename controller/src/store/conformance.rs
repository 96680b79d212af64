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
        link_target: None,
        resolved_kind: Kind::File,
        mode,
        uid: 0,
        gid: 0,
        owner: Some("root".into()),
        group: None,
        sha256: None,
        contains: vec![true],
        entries: vec![],
        entries_total: 0,
        error: None,
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

pub(crate) fn a_new_store_begins_its_log_with_log_created(open: Opener<'_>) {
    let store = open();
    let events = store.history(None, 10).expect("history");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].id, events[0].kind), (1, EventKind::LogCreated));
    assert_eq!(store.head().last_id, 1);
    drop(store);
    let again = open();
    assert_eq!(
        again.history(None, 10).expect("history").len(),
        1,
        "opening it again adds no second log_created"
    );
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

pub(crate) fn history_is_newest_first_per_host_and_limited(open: Opener<'_>) {
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    put_host(store.as_mut(), "web-2", 1);
    for (i, id) in ["web-1", "web-2", "web-1"].iter().enumerate() {
        store
            .log(id, 10 + i as i64, EventKind::HostOnline, None)
            .expect("log");
    }
    store
        .log(
            "",
            20,
            EventKind::ManifestsAccepted,
            Some(&record("set", "2", 20)),
        )
        .expect("log");
    let all = store.history(None, 100).expect("history");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all.len(), 5, "four entries and log_created");
    let web1 = store.history(Some("web-1"), 100).expect("history");
    assert_eq!(
        web1.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        [12, 10],
        "only that host"
    );
    assert!(
        store
            .history(Some("other"), 10)
            .expect("history")
            .is_empty()
    );
    let two = store.history(None, 2).expect("history");
    assert_eq!(two.len(), 2, "the limit applies");
    assert_eq!(two[0].host_id, "", "the controller's own entries too");
    assert_eq!(two[0].item.as_ref().map(|i| i.actual.as_str()), Some("2"));
}

pub(crate) fn the_log_pages_by_id_host_and_kind_and_the_trend_counts_recent_drift(
    open: Opener<'_>,
) {
    use crate::store::LogQuery;
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    put_host(store.as_mut(), "web-2", 1);
    for i in 0..10 {
        let (id, kind) = match i % 3 {
            0 => ("web-1", EventKind::Opened),
            1 => ("web-2", EventKind::Resolved),
            _ => ("web-1", EventKind::HostOnline),
        };
        let item = (kind != EventKind::HostOnline).then(|| record("/etc/a", "x", 0));
        store.log(id, 1_000 * i, kind, item.as_ref()).expect("log");
    }
    let first = store
        .page(&LogQuery {
            limit: 4,
            ..Default::default()
        })
        .expect("page");
    assert_eq!(first.len(), 4);
    let second = store
        .page(&LogQuery {
            limit: 4,
            before: first.last().map(|e| e.id),
            ..Default::default()
        })
        .expect("page");
    assert!(
        second.iter().all(|e| e.id < first[3].id) && second.len() == 4,
        "the next page follows on"
    );
    let web1_opened = store
        .page(&LogQuery {
            host: Some("web-1".into()),
            kind: Some(EventKind::Opened),
            limit: 100,
            ..Default::default()
        })
        .expect("page");
    assert_eq!(
        web1_opened.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        [9_000, 6_000, 3_000, 0]
    );
    let mut trend = store.trend(4_000).expect("trend");
    trend.sort_by_key(|(at, _)| *at);
    assert_eq!(
        trend,
        [
            (4_000, EventKind::Resolved),
            (6_000, EventKind::Opened),
            (7_000, EventKind::Resolved),
            (9_000, EventKind::Opened)
        ]
    );
}

pub(crate) fn ids_follow_the_head_without_gaps_and_the_head_moves_only_with_events(
    open: Opener<'_>,
) {
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    let before = store.head().clone();
    assert_eq!(before.last_id, 1, "a host row is no event");
    assert_eq!(before.hash.len(), 64);
    // Observations alone: no event, and the head stays.
    write_record(
        store.as_mut(),
        "web-1",
        5,
        vec![("/etc/a", Some(observed(0o100644)))],
        vec![],
    );
    assert_eq!(store.head(), &before);
    let events = write_record(
        store.as_mut(),
        "web-1",
        6,
        vec![],
        vec![
            open_change("/etc/a", &record("mode", "0600", 6)),
            open_change("/etc/a", &record("owner", "bin", 6)),
        ],
    );
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 3]);
    let e = store
        .log("web-1", 7, EventKind::HostOffline, None)
        .expect("log");
    assert_eq!(e.id, 4);
    assert_eq!(store.head().last_id, 4);
    assert_ne!(store.head().hash, before.hash);
    let head = store.head().clone();
    drop(store);
    assert_eq!(open().head(), &head, "the head as committed");
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

pub(crate) fn evidence_is_kept_with_open_drift_and_its_events(open: Opener<'_>) {
    use crate::evidence::{Authorisation, Evidence, Process, Resolution, Transaction, Who};
    let mut opened = record("mode", "0600", 2);
    opened.evidence = Evidence {
        who: Some(Who::Process(Box::new(Process {
            origin: "manual".into(),
            action: "attributes".into(),
            pid: 42,
            name: "chmod".into(),
            uid: Some(0),
            login_uid: Some(1000),
            login_user: "alice".into(),
            parents: vec!["bash".into(), "sshd".into()],
            ..Default::default()
        }))),
        authorisation: Some(Authorisation::Authorised {
            change: "CHG-7".into(),
        }),
        resolution: None,
    };
    let mut package = record("version", "1.1", 2);
    package.resource = "package:nginx".into();
    package.evidence = Evidence {
        who: Some(Who::Package(Box::new(Transaction {
            manager: "apt".into(),
            user: "bob".into(),
            uid: Some(1001),
            command: "apt-get install nginx".into(),
            ..Default::default()
        }))),
        authorisation: Some(Authorisation::Unauthorised),
        resolution: None,
    };
    let mut resolved = record("owner", "bob", 1);
    resolved.evidence = Evidence {
        who: Some(Who::Unknown(
            "the writer exited before it could be identified".into(),
        )),
        authorisation: None,
        resolution: Some(Resolution::Reverted),
    };
    {
        let mut store = open();
        put_host(store.as_mut(), "web-1", 1);
        write_record(
            store.as_mut(),
            "web-1",
            1,
            vec![],
            vec![open_change("/etc/a", &record("owner", "bob", 1))],
        );
        let events = write_record(
            store.as_mut(),
            "web-1",
            2,
            vec![],
            vec![
                open_change("/etc/a", &opened),
                open_change("package:nginx", &package),
                Change::Resolve {
                    record: resolved.clone(),
                },
            ],
        );
        let said: Vec<_> = events.iter().filter_map(|e| e.item.clone()).collect();
        assert_eq!(said, [opened.clone(), package.clone(), resolved.clone()]);
    }
    let store = open();
    let mut drift: Vec<DriftRecord> = store
        .load_drift("web-1")
        .expect("drift")
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    drift.sort_by(|a, b| a.resource.cmp(&b.resource));
    assert_eq!(
        drift,
        [opened.clone(), package.clone()],
        "open drift keeps who and why"
    );
    let hosts = store.load_hosts().expect("hosts");
    assert!(
        hosts[0].drift.iter().any(|(_, d)| d == &package),
        "and so does loading every host"
    );
    let history: Vec<DriftRecord> = store
        .history(Some("web-1"), 3)
        .expect("history")
        .into_iter()
        .rev()
        .filter_map(|e| e.item)
        .collect();
    assert_eq!(history, [opened, package, resolved]);
    let v = store.verify(&Trusted::default()).expect("verify");
    assert_eq!(v.problems, Vec::<String>::new());
}

pub(crate) fn change_windows_open_close_and_end_once_with_their_entries(open: Opener<'_>) {
    use crate::store::StoreError;
    use crate::window::{ChangeWindow, Scope};
    let window = |ticket: &str| ChangeWindow {
        ticket: ticket.into(),
        scope: Scope {
            hosts: vec!["web-*".into()],
            labels: [("zone".to_owned(), "a".to_owned())].into(),
            paths: vec!["/etc/nginx/**".into()],
            packages: vec!["nginx".into()],
        },
        from_ms: 100,
        until_ms: 7_300,
        opened_by: "alice".into(),
        reason: "nginx upgrade".into(),
        closed: None,
        ended: false,
    };
    {
        let mut store = open();
        let e = store.open_window(&window("CHG-1"), 100).expect("open");
        assert_eq!(e.kind, EventKind::ChangeOpened);
        let item = e.item.as_ref().expect("item");
        assert_eq!(
            (
                item.resource.as_str(),
                item.actual.as_str(),
                item.declared_at.as_str()
            ),
            ("change:CHG-1", "nginx upgrade", "alice")
        );
        assert!(matches!(
            store.open_window(&window("CHG-1"), 101),
            Err(StoreError::Refused(_))
        ));
        store.open_window(&window("CHG-2"), 102).expect("open");
        let mut closed = window("CHG-2");
        closed.closed = Some((200, "bob".into()));
        let e = store.close_window(&closed).expect("close");
        assert_eq!(e.kind, EventKind::ChangeClosed);
        assert!(
            matches!(store.close_window(&closed), Err(StoreError::Refused(_))),
            "closed once"
        );
        let e = store
            .end_window(
                &window("CHG-1"),
                7_300,
                "change CHG-1 ended with 1 item still drifted",
            )
            .expect("end");
        assert_eq!(e.kind, EventKind::ChangeEnded);
        assert!(
            matches!(
                store.end_window(&window("CHG-1"), 7_301, "again"),
                Err(StoreError::AlreadyEnded { .. })
            ),
            "ended once, whoever ends it"
        );
    }
    let store = open();
    let windows = store.load_windows().expect("windows");
    let mut first = window("CHG-1");
    first.ended = true;
    let mut second = window("CHG-2");
    second.closed = Some((200, "bob".into()));
    assert_eq!(windows, [first, second]);
    let kinds: Vec<EventKind> = store
        .history(None, 10)
        .expect("history")
        .into_iter()
        .rev()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::LogCreated,
            EventKind::ChangeOpened,
            EventKind::ChangeOpened,
            EventKind::ChangeClosed,
            EventKind::ChangeEnded
        ],
        "refusals append nothing"
    );
    let v = store.verify(&Trusted::default()).expect("verify");
    assert_eq!(v.problems, Vec::<String>::new());
}

pub(crate) fn an_untouched_log_verifies(open: Opener<'_>) {
    let mut store = open();
    put_host(store.as_mut(), "web-1", 1);
    write_record(
        store.as_mut(),
        "web-1",
        2,
        vec![],
        vec![open_change("/etc/a", &record("mode", "0600", 2))],
    );
    store
        .log("web-1", 3, EventKind::HostOffline, None)
        .expect("log");
    let v = store.verify(&Trusted::default()).expect("verify");
    assert_eq!(v.problems, Vec::<String>::new());
    assert_eq!((v.entries, v.head_id), (3, 3));
    assert_eq!(v.head, store.head().hash);
    let published = Trusted {
        public_key: None,
        published: vec![(
            2,
            store.history(None, 10).expect("history")[1].id.to_string(),
        )],
    };
    // A head published with another hash for entry 2: the log was rewritten since, and is named.
    let v = store.verify(&published).expect("verify");
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
}
