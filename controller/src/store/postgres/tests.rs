//! The PostgreSQL store on a real, throwaway server (`plumb_testkit::Postgres`): the whole
//! conformance suite, and what only a shared database has.

use super::*;
use crate::store::{Change, Write};

/// A new database on this test process's server, or `None` where PostgreSQL is missing
/// (said; under CI a failure).
fn database() -> Option<String> {
    plumb_testkit::Postgres::shared().map(|pg| pg.database())
}

crate::store::conformance::suite!(|| {
    let url = database()?;
    Some(move || -> Box<dyn Store> { Box::new(PostgresStore::open(&url).expect("open")) })
});

fn info(id: &str) -> HostInfo {
    HostInfo {
        host_id: id.into(),
        hostname: "h".into(),
        ..Default::default()
    }
}

fn record(attribute: &str, since_ms: i64) -> DriftRecord {
    DriftRecord {
        resource: "file:/etc/a".into(),
        attribute: attribute.into(),
        expected: "0644".into(),
        actual: "x".into(),
        since_ms,
        declared_at: "m.yaml:4:3".into(),
    }
}

fn log(store: &mut PostgresStore, host: &str, at_ms: i64) -> Event {
    let write = Write::Log {
        host_id: host.into(),
        at_ms,
        kind: EventKind::HostOnline,
        item: None,
    };
    store.apply(&write).expect("log").remove(0)
}

fn sql(url: &str, statements: &str) {
    Client::connect(url, NoTls)
        .expect("raw connect")
        .batch_execute(statements)
        .expect("raw SQL");
}

fn trusting(public_key: &str) -> Trusted {
    Trusted {
        public_key: Some(public_key.to_owned()),
        published: Vec::new(),
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(url) = database() else { return };
    drop(PostgresStore::open(&url).expect("open"));
    sql(&url, "UPDATE plumb_schema SET version = 99");
    let err = PostgresStore::open(&url).err().expect("refused");
    assert!(
        err.to_string().contains("schema version 99 is newer"),
        "{err}"
    );
}

#[test]
fn a_database_that_is_not_there_is_named_without_the_password() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let url = pg
        .url("no_such_database")
        .replace("plumb@", "plumb:hunter2@");
    let err = PostgresStore::open(&url).err().expect("refused");
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(text.contains("\"no_such_database\""), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password is not shown: {text}"
    );
}

/// Two controllers on one database, appending at once: one chain, in one order, with no id
/// twice and none missing, and the signed head verifies.
#[test]
fn controllers_appending_at_once_make_one_chain() {
    let Some(url) = database() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    // Made here; each writer loads the same key, as controllers sharing one would.
    let public = AuditKey::load_or_create(&dir.path().join("audit.key"))
        .expect("key")
        .0
        .public_hex();
    const EACH: i64 = 100;
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let url = url.clone();
            let key = AuditKey::load_or_create(&dir.path().join("audit.key"))
                .expect("key")
                .0;
            std::thread::spawn(move || {
                let mut store = PostgresStore::open(&url).expect("open").with_audit_key(key);
                store
                    .apply(&Write::Host {
                        info: info(name),
                        last_seen_ms: 0,
                    })
                    .expect("host");
                let mut ids = Vec::new();
                for i in 0..EACH {
                    if i % 2 == 0 {
                        ids.push(log(&mut store, name, i).id);
                    } else {
                        let change = Change::Open {
                            origin: Key::file("/etc/a"),
                            record: record(&format!("attr{i}"), i),
                        };
                        let events = store
                            .apply(&Write::Record {
                                host_id: name.into(),
                                at_ms: i,
                                observations: vec![],
                                changes: vec![change],
                            })
                            .expect("record");
                        ids.extend(events.iter().map(|e| e.id));
                    }
                }
                ids
            })
        })
        .collect();
    let mut ids: Vec<i64> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    ids.sort_unstable();
    let expected: Vec<i64> = (2..2 + 2 * EACH).collect();
    assert_eq!(ids, expected, "every id once, after the log's first entry");

    let store = PostgresStore::open(&url).expect("open");
    let v = store.verify(&trusting(&public)).expect("verify");
    assert_eq!(v.problems, Vec::<String>::new());
    assert_eq!(v.entries as i64, 1 + 2 * EACH);
    assert_eq!(v.signature, crate::store::Signature::Valid(public));
}

/// Tampering with the rows is found, as with SQLite.
#[test]
fn edited_removed_and_truncated_entries_are_named() {
    let problems_after = |statements: &str| {
        let url = database().expect("checked below");
        let dir = tempfile::tempdir().expect("temp dir");
        let (key, _) = AuditKey::load_or_create(&dir.path().join("audit.key")).expect("key");
        let public = key.public_hex();
        let mut store = PostgresStore::open(&url).expect("open").with_audit_key(key);
        store
            .apply(&Write::Host {
                info: info("web-1"),
                last_seen_ms: 1,
            })
            .expect("host");
        for at in 2..=6 {
            log(&mut store, "web-1", at);
        }
        sql(&url, statements);
        store.verify(&trusting(&public)).expect("verify").problems
    };
    if database().is_none() {
        return;
    }
    assert_eq!(
        problems_after("UPDATE events SET host_id = 'innocent' WHERE id = 4"),
        ["entry 4 was edited: its content does not match its hash"]
    );
    assert_eq!(
        problems_after("DELETE FROM events WHERE id = 4"),
        [
            "entries 4 to 4 are missing: the log jumps from entry 3 to 5",
            "entry 5 does not follow entry 3: entries between them were removed, or entries were reordered"
        ]
    );
    assert_eq!(
        problems_after("DELETE FROM events WHERE id = 6"),
        [
            "the log ends at entry 5 but its head records entry 6: entries at the end were removed or replaced"
        ]
    );
}
