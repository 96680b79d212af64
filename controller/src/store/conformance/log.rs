//! The suite's cases about the event log: its first entry, reading it back (newest first, by
//! page, the trend), ids and head, and verification of an untouched log.

use super::*;

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
