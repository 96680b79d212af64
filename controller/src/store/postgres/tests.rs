//! The PostgreSQL store on a real, throwaway server (`plumb_testkit::Postgres`): the whole
//! conformance suite, and what only a shared database has.

use super::*;
use postgres::{Client, NoTls};

use crate::store::{Change, Holder, Write};

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
        evidence: Default::default(),
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
fn a_log_kept_before_moments_were_gets_its_spans_on_upgrade() {
    let Some(url) = database() else { return };
    let mut store = PostgresStore::open(&url).expect("open");
    crate::store::conformance::a_morning(&mut store);
    drop(store);
    sql(
        &url,
        "DROP TABLE spans; DROP INDEX events_by_time; UPDATE plumb_schema SET version = 5;",
    );
    let store = PostgresStore::open(&url).expect("upgraded");
    crate::store::conformance::stands_as_its_log_says(&store);
}

/// `plumb store copy` carries the past too: the copy stands at every moment as its log says,
/// and a copy over one (`replace`) leaves none of the first copy's spans behind.
#[test]
fn a_copy_stands_as_its_log_says_and_replaces_what_was_there() {
    let Some(url) = database() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut source = crate::store::SqliteStore::open(dir.path()).expect("SQLite");
    crate::store::conformance::a_morning(&mut source);
    let first = PostgresStore::import(&url, &source, false).expect("copied");
    let again = PostgresStore::import(&url, &source, true).expect("copied over the first");
    assert_eq!(first, again);
    let copy = PostgresStore::open(&url).expect("open the copy");
    crate::store::conformance::stands_as_its_log_says(&copy);
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
                store.upsert_host(&info(name), 0).expect("host");
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
        store.upsert_host(&info("web-1"), 1).expect("host");
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
        problems_after(
            r#"UPDATE events SET evidence = '{"authorisation":{"kind":"unauthorised"}}' WHERE id = 4"#
        ),
        ["entry 4 was edited: its content does not match its hash"],
        "evidence is part of its entry"
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

/// Whether the session at `url` is encrypted, as the server sees it.
fn encrypted(url: &str) -> std::result::Result<bool, String> {
    let mut client = connect(url).map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[test]
fn tls_to_the_store_is_checked_as_sslmode_says() {
    use plumb_testkit::{CERT_USER, SCRAM_PASSWORD, SCRAM_USER};
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let url = pg.database();
    let name = url.rsplit('/').next().expect("a database name").to_owned();
    let ca = pg.ca_file().display().to_string();
    let (cert, key) = pg.client_identity();
    let identity = format!("sslcert={}&sslkey={}", cert.display(), key.display());
    let scram = format!("{SCRAM_USER}:{}", SCRAM_PASSWORD.replace(' ', "%20"));

    // Proven server, client certificate; and SCRAM bound to the TLS session.
    let full = pg.tcp_url(
        "localhost",
        CERT_USER,
        &name,
        &format!("sslmode=verify-full&sslrootcert={ca}&{identity}"),
    );
    assert_eq!(encrypted(&full), Ok(true));
    let bound = pg.tcp_url(
        "localhost",
        &scram,
        &name,
        &format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
    );
    assert_eq!(encrypted(&bound), Ok(true));
    drop(PostgresStore::open(&bound).expect("a store over TLS"));

    // The certificate names localhost, not 127.0.0.1: the chain holds, the name does not.
    let by_address = |mode: &str, ca: &str| {
        pg.tcp_url(
            "127.0.0.1",
            CERT_USER,
            &name,
            &format!("sslmode={mode}&sslrootcert={ca}&{identity}"),
        )
    };
    let why = encrypted(&by_address("verify-full", &ca)).expect_err("refused");
    assert!(
        why.contains(r#"certificate not valid for name "127.0.0.1""#),
        "{why}"
    );
    assert_eq!(encrypted(&by_address("verify-ca", &ca)), Ok(true));

    // Signed by a CA it was not told to trust; the store is named, never the password.
    let other = pg.other_ca_file().display().to_string();
    let why = encrypted(&by_address("verify-ca", &other)).expect_err("refused");
    assert!(
        why.contains("invalid peer certificate: UnknownIssuer"),
        "{why}"
    );
    assert!(why.contains(r#"PostgreSQL database "test_"#), "{why}");
    let why = encrypted(&bound.replace(&ca, &other)).expect_err("refused");
    assert!(!why.contains("horse"), "{why}");

    // require without roots: encrypted, and said to be unproven.
    let unchecked = pg.tcp_url(
        "127.0.0.1",
        CERT_USER,
        &name,
        &format!("sslmode=require&{identity}"),
    );
    assert_eq!(encrypted(&unchecked), Ok(true));
    assert!(
        unproven(&unchecked).is_some_and(|w| w.contains("not checked")),
        "{:?}",
        unproven(&unchecked)
    );
    assert_eq!(unproven(&full), None);
    assert_eq!(unproven(&url), None, "a unix socket stays on the machine");

    // A wrong password: the server's one line, naming the user, never the password.
    let wrong = bound.replace(&SCRAM_PASSWORD.replace(' ', "%20"), "wrong%20staple");
    let why = encrypted(&wrong).expect_err("refused");
    assert!(
        why.contains(&format!(
            r#"password authentication failed for user "{SCRAM_USER}""#
        )),
        "{why}"
    );
    assert!(!why.contains("staple"), "{why}");

    // This user may not log in without TLS, and the server's refusal is what is said.
    let plain = pg.tcp_url("127.0.0.1", CERT_USER, &name, "sslmode=disable");
    let why = encrypted(&plain).expect_err("refused");
    assert!(why.contains("no pg_hba.conf entry"), "{why}");
}

fn claim(store: &mut PostgresStore, host: &str) {
    store.upsert_host(&info(host), 1).expect("claim");
}

fn open_drift(store: &mut PostgresStore, host: &str, attribute: &str) -> Result<Vec<Event>> {
    store.apply(&Write::Record {
        host_id: host.into(),
        at_ms: 5,
        observations: vec![(Key::file("/etc/a"), None)],
        changes: vec![Change::Open {
            origin: Key::file("/etc/a"),
            record: record(attribute, 5),
        }],
    })
}

fn holder(store: &PostgresStore, host: &str) -> Holder {
    store
        .load_host(host)
        .expect("load")
        .expect("a stored host")
        .holder
}

#[test]
fn the_newest_claim_holds_a_host_and_the_former_holder_writes_nothing_for_it() {
    let Some(url) = database() else { return };
    let mut a = PostgresStore::open(&url).expect("open a");
    let mut b = PostgresStore::open(&url).expect("open b");
    assert_ne!(a.controller_id(), b.controller_id());
    claim(&mut a, "web-1");
    open_drift(&mut a, "web-1", "mode").expect("a holds web-1");
    assert_eq!(holder(&a, "web-1"), Holder::Me);

    // The host's stream moves to b: a's writes for it are refused from now on, whatever a's
    // clock or memory says, and leave nothing behind.
    claim(&mut b, "web-1");
    assert_eq!(holder(&b, "web-1"), Holder::Me);
    let b_id = b.controller_id().map(str::to_owned).expect("an id");
    assert_eq!(holder(&a, "web-1"), Holder::Other(b_id.clone()));
    let head = chain::head(&mut a.session().expect("session").client).expect("head");
    for refused in [
        open_drift(&mut a, "web-1", "owner").map(|_| ()),
        a.append_log("web-1", 6, EventKind::HostOffline, None)
            .map(|_| ()),
        a.put_state("web-1", &HostState::default()),
    ] {
        assert!(
            matches!(&refused, Err(StoreError::Fenced { host }) if host == "web-1"),
            "{refused:?}"
        );
    }
    a.touch_hosts(&[("web-1", 999)]).expect("touch skips it");
    let after = chain::head(&mut a.session().expect("session").client).expect("head");
    assert_eq!(after.last_id, head.last_id, "nothing appended");
    let stored = b.load_host("web-1").expect("load").expect("host");
    assert_eq!(stored.last_seen_ms, 1);
    assert_eq!(stored.drift.len(), 1, "{:?}", stored.drift);

    // Claiming again (a reconnect to a) takes it back; b is then the former holder.
    claim(&mut a, "web-1");
    assert!(matches!(
        open_drift(&mut b, "web-1", "group"),
        Err(StoreError::Fenced { .. })
    ));
    open_drift(&mut a, "web-1", "group").expect("a holds it again");

    // Offline ends a claim: nobody holds the host.
    a.append_log("web-1", 7, EventKind::HostOffline, None)
        .expect("offline");
    assert_eq!(holder(&b, "web-1"), Holder::Nobody);
    assert!(matches!(
        open_drift(&mut a, "web-1", "size"),
        Err(StoreError::Fenced { .. })
    ));

    // A controller that stopped: a survivor marks its hosts offline, once each, in the chain.
    claim(&mut b, "web-2");
    claim(&mut b, "web-3");
    let released = a.release_orphans(&b_id, 8).expect("release");
    let mut hosts: Vec<(&str, EventKind)> = released
        .iter()
        .map(|e| (e.host_id.as_str(), e.kind))
        .collect();
    hosts.sort_by_key(|(h, _)| *h);
    assert_eq!(
        hosts,
        [
            ("web-2", EventKind::HostOffline),
            ("web-3", EventKind::HostOffline)
        ]
    );
    assert_eq!(holder(&a, "web-2"), Holder::Nobody);
    assert!(matches!(
        open_drift(&mut b, "web-2", "mode"),
        Err(StoreError::Fenced { .. })
    ));
    assert!(a.release_orphans(&b_id, 9).expect("again").is_empty());
}

#[test]
fn a_lost_connection_is_made_again_at_the_next_use() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let url = pg.database();
    let mut store = PostgresStore::open(&url).expect("open");
    claim(&mut store, "web-1");
    pg.psql(
        &url,
        // With a timeout, it returns once the backend is gone, not when it is told to go.
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    // The first use after the cut may fail (the client learns of it then); the next works.
    let _ = store.load_hosts();
    open_drift(&mut store, "web-1", "mode").expect("written over a new connection");
    assert_eq!(store.load_drift("web-1").expect("drift").len(), 1);
}

/// Two controllers end the same acknowledgement at once (an expiry during the singleton
/// work's hand-over, a revocation on one while it expires on the other): one entry, and the
/// other is told it had already ended.
#[test]
fn an_acknowledgement_ends_once_whichever_controllers_end_it() {
    let Some(url) = database() else { return };
    let mut a = PostgresStore::open(&url).expect("open a");
    let mut b = PostgresStore::open(&url).expect("open b");
    claim(&mut a, "web-1");
    let ack = crate::model::Ack {
        host_id: "web-1".into(),
        resource: "file:/etc/a".into(),
        reason: "change 42".into(),
        by: "alice".into(),
        at_ms: 10,
        expires_ms: Some(20),
    };
    a.put_ack(&ack).expect("ack");
    let ended = a
        .drop_ack(&ack, 20, EventKind::AckExpired)
        .expect("ended by a");
    let again = b.drop_ack(&ack, 20, EventKind::AckExpired);
    assert!(
        matches!(again, Err(StoreError::AlreadyEnded { .. })),
        "{again:?}"
    );
    let expired = a
        .history(Some("web-1"), 100)
        .expect("history")
        .into_iter()
        .filter(|e| e.kind == EventKind::AckExpired)
        .count();
    assert_eq!(expired, 1);
    let now = PostgresStore::open(&url).expect("open again");
    assert_eq!(now.head().last_id, ended.id, "nothing after a's entry");
}
