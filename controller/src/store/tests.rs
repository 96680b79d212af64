//! A real SQLite file in a temp dir, reopened to prove what survives.

use super::*;
use crate::drift::{Kind, Observed};

fn info(id: &str) -> HostInfo {
    HostInfo {
        host_id: id.into(),
        hostname: "h".into(),
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
        declared_at: "m.yaml:4".into(),
    }
}

fn observed() -> Observation {
    Observation::File(Observed {
        kind: Kind::File,
        link_target: None,
        resolved_kind: Kind::File,
        mode: 0o100600,
        uid: 0,
        gid: 0,
        owner: None,
        group: None,
        sha256: None,
        contains: vec![],
        entries: vec![],
        entries_total: 0,
        error: None,
    })
}

#[test]
fn drift_events_and_observations_survive_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opened = record("mode", "0600", 1000);
    {
        let mut store = Store::open(dir.path()).expect("open");
        store.upsert_host(&info("web-1"), 900).expect("host");
        let obs = observed();
        let events = store
            .record(
                "web-1",
                1000,
                &[("/etc/a", Some(&obs))],
                &[DriftChange::Open {
                    origin: "/etc/a",
                    record: &opened,
                }],
            )
            .expect("record");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Opened);
        store.touch_hosts(&[("web-1", 1500)]).expect("touch");
    }
    let mut store = Store::open(dir.path()).expect("reopen");
    let hosts = store.load_hosts().expect("load");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].info, info("web-1"));
    assert_eq!(hosts[0].last_seen_ms, 1500);
    assert_eq!(hosts[0].drift, [("/etc/a".to_string(), opened.clone())]);
    assert_eq!(
        store.load_observations("web-1").expect("observations"),
        [("/etc/a".to_string(), observed())]
    );

    let changed = record("mode", "0640", 1000);
    store
        .record(
            "web-1",
            2000,
            &[],
            &[DriftChange::Change {
                origin: "/etc/a",
                record: &changed,
            }],
        )
        .expect("change");
    store
        .record(
            "web-1",
            3000,
            &[("/etc/a", None)],
            &[DriftChange::Resolve { record: &changed }],
        )
        .expect("resolve");
    store
        .host_event("web-1", 4000, EventKind::HostOffline)
        .expect("host event");

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
            (EventKind::HostOffline, 4000),
            (EventKind::Resolved, 3000),
            (EventKind::Changed, 2000),
            (EventKind::Opened, 1000)
        ]
    );
    assert_eq!(
        history[1].item.as_ref().map(|i| i.actual.as_str()),
        Some("0640")
    );
    assert!(
        history.windows(2).all(|w| w[0].id > w[1].id),
        "ids increase with time"
    );
    assert!(
        store
            .history(Some("other"), 10)
            .expect("history")
            .is_empty()
    );
    assert_eq!(
        store.history(None, 2).expect("history").len(),
        2,
        "limit applies"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Store::open(dir.path()).expect("open"));
    let conn = Connection::open(dir.path().join("plumb.db")).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(
        err.to_string().contains("schema version 99 is newer"),
        "{err}"
    );
}

/// A store with a few events of every shape; returns the dir and the number of events.
fn log_with_events() -> (tempfile::TempDir, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    store.upsert_host(&info("web-1"), 1).expect("host");
    store
        .host_event("web-1", 10, EventKind::HostOnline)
        .expect("event");
    for (i, attr) in ["mode", "owner", "group"].iter().enumerate() {
        let r = record(attr, "x", 20 + i as i64);
        store
            .record(
                "web-1",
                20 + i as i64,
                &[],
                &[DriftChange::Open {
                    origin: "/etc/a",
                    record: &r,
                }],
            )
            .expect("record");
    }
    store
        .host_event("web-1", 50, EventKind::HostOffline)
        .expect("event");
    (dir, 5)
}

fn problems_after(sql: &str) -> Vec<String> {
    let (dir, _) = log_with_events();
    Connection::open(dir.path().join("plumb.db"))
        .expect("raw open")
        .execute_batch(sql)
        .expect("tamper");
    Store::open(dir.path())
        .expect("reopen")
        .verify()
        .expect("verify")
        .problems
}

#[test]
fn an_intact_log_verifies() {
    let (dir, n) = log_with_events();
    let v = Store::open(dir.path())
        .expect("reopen")
        .verify()
        .expect("verify");
    assert_eq!((v.entries, v.problems.len(), v.head.len()), (n, 0, 64));
}

#[test]
fn edited_removed_reordered_and_truncated_entries_are_named() {
    assert_eq!(
        problems_after("UPDATE events SET actual = 'innocent' WHERE id = 3"),
        ["entry 3 was edited: its content does not match its hash"]
    );
    assert_eq!(
        problems_after("DELETE FROM events WHERE id = 3"),
        [
            "entry 4 does not follow entry 2: entries between them were removed, or entries were reordered"
        ]
    );
    // Two entries swapped: their contents no longer match their hashes.
    let swapped = problems_after(
        "UPDATE events SET attribute = CASE id WHEN 2 THEN 'owner' WHEN 3 THEN 'mode' END, \
         at_ms = CASE id WHEN 2 THEN 21 WHEN 3 THEN 20 END, since_ms = CASE id WHEN 2 THEN 21 WHEN 3 THEN 20 END WHERE id IN (2, 3)",
    );
    assert_eq!(
        swapped,
        [
            "entry 2 was edited: its content does not match its hash",
            "entry 3 was edited: its content does not match its hash"
        ]
    );
    assert_eq!(
        problems_after("DELETE FROM events WHERE id = 5"),
        [
            "the log ends at entry 4 but its head records entry 5: entries at the end were removed or replaced"
        ]
    );
    assert_eq!(
        problems_after("DELETE FROM events WHERE id = 1"),
        ["entry 2 is not the first entry of the log: earlier entries were removed"]
    );
}

#[test]
fn an_unchained_log_is_chained_on_upgrade() {
    let (dir, n) = log_with_events();
    Connection::open(dir.path().join("plumb.db"))
        .expect("raw open")
        .execute_batch(
            "UPDATE events SET prev_hash = '', hash = ''; DROP TABLE audit_head; DROP TABLE acks;
             ALTER TABLE events DROP COLUMN prev_hash; ALTER TABLE events DROP COLUMN hash; PRAGMA user_version = 1;",
        )
        .expect("downgrade to version 1");
    let mut store = Store::open(dir.path()).expect("upgrade");
    store
        .host_event("web-1", 60, EventKind::HostOnline)
        .expect("append after the upgrade");
    let v = store.verify().expect("verify");
    assert_eq!((v.entries, v.problems), (n + 1, Vec::<String>::new()));
}
