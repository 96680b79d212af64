//! A real SQLite file in a temp dir: the conformance suite every backend passes, then what is
//! SQLite's own (migrations, a refused file, the hash chain against edits made in SQL).

use std::path::Path;

use super::*;
use crate::store::Signature;

crate::store::conformance::suite!(|| {
    let dir = tempfile::tempdir().expect("temp dir");
    Some(move || -> Box<dyn Store> { Box::new(SqliteStore::open(dir.path()).expect("open")) })
});

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
        evidence: Default::default(),
    }
}

#[test]
fn a_log_kept_before_moments_were_gets_its_spans_on_upgrade() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = SqliteStore::open(dir.path()).expect("open");
    crate::store::conformance::a_morning(&mut store);
    drop(store);
    let conn = Connection::open(dir.path().join("plumb.db")).expect("raw open");
    conn.execute_batch("DROP TABLE spans; DROP INDEX events_by_time; PRAGMA user_version = 6;")
        .expect("as schema 6 was");
    drop(conn);
    let store = SqliteStore::open(dir.path()).expect("upgraded");
    crate::store::conformance::stands_as_its_log_says(&store);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(SqliteStore::open(dir.path()).expect("open"));
    let conn = Connection::open(dir.path().join("plumb.db")).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = SqliteStore::open(dir.path()).err().expect("refused");
    assert!(
        err.to_string().contains("schema version 99 is newer"),
        "{err}"
    );
}

/// A store with a few events of every shape, its head signed with a key made in the temp dir;
/// returns the dir, the number of entries (the first is `log_created`) and the public key.
fn log_with_events() -> (tempfile::TempDir, usize, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, made) = AuditKey::load_or_create(&dir.path().join("keys/audit.key")).expect("key");
    assert!(made);
    let public = key.public_hex();
    let mut store = SqliteStore::open(dir.path())
        .expect("open")
        .with_audit_key(key);
    store.upsert_host(&info("web-1"), 1).expect("host");
    store
        .append_log("web-1", 10, EventKind::HostOnline, None)
        .expect("event");
    for (i, attr) in ["mode", "owner", "group"].iter().enumerate() {
        let mut r = record(attr, "x", 20 + i as i64);
        if *attr == "group" {
            r.evidence = evidence();
        }
        store
            .record(
                "web-1",
                20 + i as i64,
                &[],
                &[DriftChange::Open {
                    origin: &Key::file("/etc/a"),
                    record: &r,
                }],
            )
            .expect("record");
    }
    store
        .append_log("web-1", 50, EventKind::HostOffline, None)
        .expect("event");
    (dir, 6, public)
}

/// What entry 5 of `log_with_events` carries.
fn evidence() -> crate::evidence::Evidence {
    use crate::evidence::{Authorisation, Evidence, Process, Who};
    Evidence {
        who: Some(Who::Process(Box::new(Process {
            origin: "manual".into(),
            name: "chgrp".into(),
            uid: Some(0),
            login_uid: Some(1000),
            login_user: "alice".into(),
            ..Default::default()
        }))),
        authorisation: Some(Authorisation::Unauthorised),
        resolution: None,
    }
}

fn trusting(public_key: &str) -> Trusted {
    Trusted {
        public_key: Some(public_key.to_owned()),
        published: Vec::new(),
    }
}

fn tamper(dir: &Path, sql: &str) {
    Connection::open(dir.join("plumb.db"))
        .expect("raw open")
        .execute_batch(sql)
        .expect("tamper");
}

fn problems_after(sql: &str) -> Vec<String> {
    let (dir, _, public) = log_with_events();
    tamper(dir.path(), sql);
    SqliteStore::verify_dir(dir.path(), &trusting(&public))
        .expect("verify")
        .problems
}

#[test]
fn an_intact_log_verifies() {
    let (dir, n, public) = log_with_events();
    let v = SqliteStore::verify_dir(dir.path(), &trusting(&public)).expect("verify");
    assert_eq!(v.problems, Vec::<String>::new());
    assert_eq!((v.entries, v.head_id, v.head.len()), (n, n as i64, 64));
    assert_eq!(v.signature, Signature::Valid(public));
    let first = SqliteStore::open(dir.path())
        .expect("open")
        .history(None, 100)
        .expect("history");
    assert_eq!(
        first.last().map(|e| (e.id, e.kind)),
        Some((1, EventKind::LogCreated))
    );
}

#[test]
fn edited_removed_reordered_and_truncated_entries_are_named() {
    assert_eq!(
        problems_after("UPDATE events SET actual = 'innocent' WHERE id = 4"),
        ["entry 4 was edited: its content does not match its hash"]
    );
    assert_eq!(
        problems_after("DELETE FROM events WHERE id = 4"),
        [
            "entries 4 to 4 are missing: the log jumps from entry 3 to 5",
            "entry 5 does not follow entry 3: entries between them were removed, or entries were reordered"
        ]
    );
    // Two entries swapped: their contents no longer match their hashes.
    let swapped = problems_after(
        "UPDATE events SET attribute = CASE id WHEN 3 THEN 'owner' WHEN 4 THEN 'mode' END, \
         at_ms = CASE id WHEN 3 THEN 21 WHEN 4 THEN 20 END, since_ms = CASE id WHEN 3 THEN 21 WHEN 4 THEN 20 END WHERE id IN (3, 4)",
    );
    assert_eq!(
        swapped,
        [
            "entry 3 was edited: its content does not match its hash",
            "entry 4 was edited: its content does not match its hash"
        ]
    );
    assert_eq!(
        problems_after("DELETE FROM events WHERE id = 6"),
        [
            "the log ends at entry 5 but its head records entry 6: entries at the end were removed or replaced"
        ]
    );
    let first = problems_after("DELETE FROM events WHERE id = 1");
    assert_eq!(
        first,
        [
            "the log starts at entry 2: entries 1 to 1 were removed",
            "entry 2 is not the first entry of the log: earlier entries were removed"
        ]
    );
}

// Regression (issue 12, item 9): deleting the last events and updating the head row to match
// verified as intact. The head's signature no longer matches.
#[test]
fn a_cut_tail_with_a_head_rewritten_to_match_is_found() {
    let (dir, _, public) = log_with_events();
    let (id, hash): (i64, String) = Connection::open(dir.path().join("plumb.db"))
        .expect("raw open")
        .query_row("SELECT id, hash FROM events WHERE id = 4", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("entry 4");
    tamper(
        dir.path(),
        &format!(
            "DELETE FROM events WHERE id > 4; UPDATE audit_head SET last_id = {id}, hash = '{hash}'"
        ),
    );
    let v = SqliteStore::verify_dir(dir.path(), &trusting(&public)).expect("verify");
    assert_eq!(
        v.problems,
        [format!(
            "the head's signature does not verify with key {public}: the head, and so the log, was rewritten without the audit key"
        )]
    );
    assert_eq!(v.signature, Signature::Invalid);
}

// Regression (issue 12, item 9): a chain recomputed after an edit verified as intact, since the
// chain has no secret. Without the key the head cannot be signed anew.
#[test]
fn a_chain_recomputed_after_an_edit_is_found_by_the_signature() {
    let (dir, _, public) = log_with_events();
    let conn = Connection::open(dir.path().join("plumb.db")).expect("raw open");
    conn.execute("UPDATE events SET actual = 'innocent' WHERE id = 4", [])
        .expect("edit");
    // What an attacker with the database (not the key) does: rechain everything after it.
    let rows = chain::logged(&conn).expect("rows");
    let mut prev = String::new();
    for e in rows {
        let id = e.id;
        let hash = audit::chain(&prev, &e.entry().canonical);
        conn.execute(
            "UPDATE events SET prev_hash = ?2, hash = ?3 WHERE id = ?1",
            params![id, prev, hash],
        )
        .expect("rechain");
        conn.execute(
            "UPDATE audit_head SET last_id = ?1, hash = ?2",
            params![id, hash],
        )
        .expect("head");
        prev = hash;
    }
    drop(conn);
    let v = SqliteStore::verify_dir(dir.path(), &Trusted::default()).expect("verify");
    assert!(
        v.problems.is_empty(),
        "the chain itself is consistent again"
    );
    let v = SqliteStore::verify_dir(dir.path(), &trusting(&public)).expect("verify");
    assert_eq!(v.signature, Signature::Invalid, "{:?}", v.problems);
    // Nor does dropping the signature help.
    tamper(dir.path(), "UPDATE audit_head SET signature = ''");
    let v = SqliteStore::verify_dir(dir.path(), &trusting(&public)).expect("verify");
    assert_eq!(
        v.problems,
        [
            "the head (entry 6) carries no signature: it was written without the audit key, or its signature was removed"
        ]
    );
}

// Regression (issue 12, item 9): an emptied log verified as intact.
#[test]
fn an_emptied_log_is_not_intact() {
    assert_eq!(
        problems_after("DELETE FROM events; DELETE FROM audit_head"),
        [
            "the log is empty: every log begins with its log_created entry, so every entry was removed".to_owned(),
            "the head (entry 0) carries no signature: it was written without the audit key, or its signature was removed".to_owned(),
        ]
    );
}

// Regression (issue 12, item 9): an old head and its signature, put back after the entries
// written since were removed, verify; a copy of a later head published outside the store does
// not let it pass.
#[test]
fn a_log_cut_back_to_an_old_signed_head_is_found_against_a_published_head() {
    let (dir, n, public) = log_with_events();
    let old_head: (i64, String, String, String) = Connection::open(dir.path().join("plumb.db"))
        .expect("raw open")
        .query_row(
            "SELECT last_id, hash, signature, public_key FROM audit_head",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("head");
    {
        let (key, made) =
            AuditKey::load_or_create(&dir.path().join("keys/audit.key")).expect("key");
        assert!(!made, "the same key, read back");
        let mut store = SqliteStore::open(dir.path())
            .expect("open")
            .with_audit_key(key);
        store
            .append_log("web-1", 60, EventKind::HostOnline, None)
            .expect("event");
    }
    let published = SqliteStore::open(dir.path()).expect("open").head().clone();
    assert_eq!(published.last_id, n as i64 + 1);
    tamper(
        dir.path(),
        &format!(
            "DELETE FROM events WHERE id > {}; UPDATE audit_head SET last_id = {}, hash = '{}', signature = '{}', public_key = '{}'",
            old_head.0, old_head.0, old_head.1, old_head.2, old_head.3
        ),
    );
    let v = SqliteStore::verify_dir(dir.path(), &trusting(&public)).expect("verify");
    assert!(
        v.problems.is_empty(),
        "an old, genuinely signed head: {:?}",
        v.problems
    );
    let v = SqliteStore::verify_dir(
        dir.path(),
        &Trusted {
            public_key: Some(public),
            published: vec![(published.last_id, published.hash.clone())],
        },
    )
    .expect("verify");
    assert_eq!(
        v.problems,
        [format!(
            "entry {0} was published with hash {1}, but the log has no entry {0}: it was cut below a head seen before",
            published.last_id, published.hash
        )]
    );
}

// Regression (issue 12, item 9): a 0-byte plumb.db was taken for a new store: all history
// gone, and verify said "intact".
#[test]
fn a_store_file_of_zero_bytes_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("plumb.db"), b"").expect("empty");
    let e = SqliteStore::open(dir.path()).err().expect("refused");
    assert!(e.to_string().contains("is empty (0 bytes)"), "{e}");
    let e = SqliteStore::verify_dir(dir.path(), &Trusted::default()).expect_err("refused");
    assert!(e.to_string().contains("is empty (0 bytes)"), "{e}");
}

#[test]
fn evidence_is_part_of_its_entry() {
    let (dir, _, _) = log_with_events();
    let store = SqliteStore::open(dir.path()).expect("open");
    let events = store.history(None, 100).expect("history");
    let group = events.iter().find(|e| e.id == 5).expect("entry 5");
    assert_eq!(group.item.as_ref().map(|d| &d.evidence), Some(&evidence()));
    let drift = store.load_drift("web-1").expect("drift");
    let open = drift
        .iter()
        .find(|(_, d)| d.attribute == "group")
        .expect("open");
    assert_eq!(open.1.evidence, evidence(), "open drift keeps its evidence");
    drop(store);
    let edited = ["entry 5 was edited: its content does not match its hash"];
    assert_eq!(
        problems_after(
            "UPDATE events SET evidence = replace(evidence, 'alice', 'mallory') WHERE id = 5"
        ),
        edited
    );
    assert_eq!(
        problems_after("UPDATE events SET evidence = NULL WHERE id = 5"),
        edited,
        "evidence removed"
    );
    assert_eq!(
        problems_after(
            r#"UPDATE events SET evidence = '{"authorisation":{"kind":"authorised","change":"CHG-1"}}' WHERE id = 4"#
        ),
        ["entry 4 was edited: its content does not match its hash"],
        "evidence added"
    );
}

/// Entries written before evidence existed (schema 4) still verify, and entries with it follow.
#[test]
fn a_log_from_before_evidence_verifies_and_grows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = SqliteStore::open(dir.path()).expect("open");
    store.upsert_host(&info("web-1"), 1).expect("host");
    let r = record("mode", "0600", 2);
    let open = [DriftChange::Open {
        origin: &Key::file("/etc/a"),
        record: &r,
    }];
    store.record("web-1", 2, &[], &open).expect("record");
    drop(store);
    tamper(
        dir.path(),
        "DROP TABLE spans; DROP INDEX events_by_time; DROP TABLE windows; ALTER TABLE events DROP COLUMN evidence; ALTER TABLE drift DROP COLUMN evidence; PRAGMA user_version = 4;",
    );
    let mut store = SqliteStore::open(dir.path()).expect("upgrade");
    let mut changed = record("mode", "0640", 2);
    changed.evidence = evidence();
    let change = [DriftChange::Change {
        origin: &Key::file("/etc/a"),
        record: &changed,
    }];
    store.record("web-1", 3, &[], &change).expect("record");
    let v = store.verify(&Trusted::default()).expect("verify");
    assert_eq!((v.entries, v.problems), (3, Vec::<String>::new()));
}

#[test]
fn an_unchained_log_is_chained_on_upgrade() {
    let (dir, n, _) = log_with_events();
    Connection::open(dir.path().join("plumb.db"))
        .expect("raw open")
        .execute_batch(
            "DROP TABLE spans; DROP INDEX events_by_time;
             UPDATE events SET prev_hash = '', hash = ''; DROP TABLE audit_head; DROP TABLE acks;
             ALTER TABLE events DROP COLUMN prev_hash; ALTER TABLE events DROP COLUMN hash;
             DROP TABLE windows; ALTER TABLE events DROP COLUMN evidence; ALTER TABLE drift DROP COLUMN evidence; PRAGMA user_version = 1;",
        )
        .expect("downgrade to version 1");
    let mut store = SqliteStore::open(dir.path()).expect("upgrade");
    store
        .append_log("web-1", 60, EventKind::HostOnline, None)
        .expect("append after the upgrade");
    let v = store.verify(&Trusted::default()).expect("verify");
    assert_eq!((v.entries, v.problems), (n + 1, Vec::<String>::new()));
}
