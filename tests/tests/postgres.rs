//! The controller on PostgreSQL (issue 14), with the real binaries: `plumb serve --store
//! postgres://…` on a throwaway server of the test's own (`plumb_testkit::Postgres`).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use plumb_tests::{Controller, start_agent, write_tree};
use serde_json::Value;

const MANIFEST: &str =
    "name: web\nhosts: [\"web-*\"]\nfiles:\n  /etc/app.conf:\n    mode: \"0644\"\n";

/// A temp dir with the manifest in `manifests/` and web-1's root in `web-root/`, whose
/// `/etc/app.conf` has `mode`. Returns the dir and that file.
fn site(mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("web.yaml"), MANIFEST).expect("write");
    let root = tmp.path().join("web-root");
    write_tree(&root, &[("etc/app.conf", "a=1\n")]);
    let app = root.join("etc/app.conf");
    fs::set_permissions(&app, fs::Permissions::from_mode(mode)).expect("chmod");
    (tmp, app)
}

/// A site for several controllers on one database: `site`'s manifest and web-1's root, more
/// hosts' roots on demand, and one audit key for every controller, as the README asks.
struct Shared {
    tmp: tempfile::TempDir,
    /// web-1's `/etc/app.conf`.
    app: std::path::PathBuf,
    store: String,
    key: String,
}

impl Shared {
    fn new(pg: &plumb_testkit::Postgres) -> Self {
        let (tmp, app) = site(0o644);
        let key = tmp.path().join("audit.key").display().to_string();
        Self {
            tmp,
            app,
            store: pg.database(),
            key,
        }
    }

    /// The root of host `id` (web-1's is `site`'s; others get their own app.conf, mode 0644).
    fn root(&self, id: &str) -> std::path::PathBuf {
        if id == "web-1" {
            return self.tmp.path().join("web-root");
        }
        let root = self.tmp.path().join(format!("{id}-root"));
        write_tree(&root, &[("etc/app.conf", "a=1\n")]);
        fs::set_permissions(root.join("etc/app.conf"), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        root
    }

    /// A controller with data directory `name` on the store at `url` (this site's database
    /// by another way, or `self.store`).
    fn controller_on(&self, name: &str, url: &str) -> Controller {
        Controller::start_with(
            &self.tmp.path().join("manifests"),
            &self.tmp.path().join(name),
            "127.0.0.1:0",
            &["--store", url, "--audit-key", &self.key],
            "http",
        )
    }

    fn controller(&self, name: &str) -> Controller {
        self.controller_on(name, &self.store)
    }

    /// `plumb audit verify` of this site's one chain, through `c`, under the site's key.
    fn assert_verifies(&self, c: &Controller) {
        let public = format!("{}.pub", self.key);
        let out = c.plumb(&[
            "audit",
            "verify",
            "--store",
            &self.store,
            "--public-key",
            &public,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `host`'s status as controller `c` says it.
fn status(c: &Controller, host: &str) -> Option<String> {
    let hosts = c.json(&["hosts"]);
    hosts["hosts"]
        .as_array()?
        .iter()
        .find(|h| h["host"] == host)
        .and_then(|h| h["status"].as_str().map(str::to_owned))
}

/// Drift and its history live in the database, not in the controller: a controller started
/// on the same database with a new, empty data directory knows them, with the drift's
/// original `since`, and the agent that reconnects brings no second opening.
#[test]
fn drift_and_history_live_in_postgres_across_controllers() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let store = pg.database();
    let (tmp, app) = site(0o644);
    let (manifests, root) = (tmp.path().join("manifests"), tmp.path().join("web-root"));

    let first_data = tmp.path().join("data-1");
    let controller = Controller::start_with(
        &manifests,
        &first_data,
        "127.0.0.1:0",
        &["--store", &store],
        "http",
    );
    let addr = controller.url.trim_start_matches("http://").to_owned();
    let _agent = start_agent(&controller.url, "web-1", &root, &[]);
    controller.expect_drift("web-1", &[]);
    fs::set_permissions(&app, fs::Permissions::from_mode(0o600)).expect("chmod");
    let drifted =
        controller.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    let since = drifted["drift"][0]["since"].clone();
    let history_before = controller.json(&["history", "web-1"])["events"].clone();
    assert!(
        !first_data.join("plumb.db").exists(),
        "nothing is kept in SQLite when the store is PostgreSQL"
    );
    let mut controller = controller;
    controller.proc.signal("KILL");
    controller.proc.wait();
    drop(controller);

    // Another controller, its data directory new and empty, on the same address and database.
    let second_data = tmp.path().join("data-2");
    let controller = Controller::start_with(
        &manifests,
        &second_data,
        &addr,
        &["--store", &store],
        "http",
    );
    let history_after = controller.json(&["history", "web-1"])["events"].clone();
    let (before, after) = (events(&history_before), events(&history_after));
    assert!(
        after.ends_with(&before),
        "every event from the first controller is there: {after:?}"
    );
    let again = controller.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert_eq!(
        again["drift"][0]["since"], since,
        "the same drift, not a new one"
    );
    fs::set_permissions(&app, fs::Permissions::from_mode(0o644)).expect("chmod");
    controller.expect_drift("web-1", &[]);
    let kinds: Vec<String> = events(&controller.json(&["history", "web-1"])["events"])
        .into_iter()
        .filter(|e| e.contains("mode"))
        .collect();
    assert_eq!(
        kinds,
        [
            "resolved file:/etc/app.conf mode",
            "opened file:/etc/app.conf mode"
        ],
        "opened once, resolved once (most recent first)"
    );
}

/// `plumb audit verify --store` checks the chain in the database, finds an edited entry, and
/// never writes (a database without a plumb store stays without one).
#[test]
fn audit_verify_checks_the_chain_in_postgres() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let store = pg.database();
    let (tmp, _) = site(0o600);
    let (manifests, root) = (tmp.path().join("manifests"), tmp.path().join("web-root"));
    let data = tmp.path().join("data");
    let controller = Controller::start_with(
        &manifests,
        &data,
        "127.0.0.1:0",
        &["--store", &store],
        "http",
    );
    let _agent = start_agent(&controller.url, "web-1", &root, &[]);
    controller.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);

    let public = data.join("audit.key.pub");
    let verify = || {
        controller.plumb(&[
            "audit",
            "verify",
            "--store",
            &store,
            "--public-key",
            public.to_str().expect("utf-8"),
            "-o",
            "json",
        ])
    };
    let out = verify();
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["signature"], "valid", "{v}");
    let opened = controller.json(&["history", "web-1"])["events"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["event"] == "opened").cloned())
        .expect("an opened event");

    pg.psql(
        &store,
        &format!(
            "UPDATE events SET actual = 'innocent' WHERE id = {}",
            opened["id"]
        ),
    );
    let out = verify();
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(
        v["problems"][0],
        format!(
            "entry {} was edited: its content does not match its hash",
            opened["id"]
        )
    );

    let empty = pg.database();
    let out = controller.plumb(&["audit", "verify", "--store", &empty]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no plumb store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Verifying wrote nothing: psql fails (and so the test) if it made the schema.
    pg.psql(
        &empty,
        "DO $$ BEGIN IF to_regclass('plumb_schema') IS NOT NULL THEN \
         RAISE EXCEPTION 'audit verify made a schema'; END IF; END $$",
    );
}

/// A database that cannot be reached at start is said, and tried again until it can: the
/// controller comes up once the server appears, with nothing lost.
#[test]
fn a_store_that_cannot_be_reached_yet_is_said_and_tried_again() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let name = pg.database().rsplit('/').next().expect("a name").to_owned();
    let (tmp, _) = site(0o644);
    // The server appears in this folder only when the test links its socket there.
    let socket_dir = tmp.path().join("socket");
    fs::create_dir_all(&socket_dir).expect("mkdir");
    let url = pg.url_via(&socket_dir, &name);
    let manifests = tmp.path().join("manifests");
    let mut cmd = std::process::Command::new(plumb_tests::bin("plumb"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--manifests"])
        .arg(&manifests)
        .arg("--data")
        .arg(tmp.path().join("data"))
        .args(["--store", &url])
        .env("RUST_LOG", "info");
    let (proc, _) = plumb_tests::Proc::spawn(cmd, None);
    let said = |what: &str| proc.stderr().contains(what);
    plumb_tests::wait_for("the controller to say it cannot reach the store", || {
        said("cannot reach the store; trying again").then_some(())
    });
    assert!(!said("listening on"), "it does not serve without its store");
    std::os::unix::fs::symlink(pg.socket(), socket_dir.join(pg.socket_name())).expect("link");
    plumb_tests::wait_for("the controller to come up once the store is there", || {
        said("plumb: listening on").then_some(())
    });
}

/// A database that refuses (here: it does not exist) is not waited for: one line says which,
/// and the controller exits.
#[test]
fn a_database_that_is_not_there_is_said_at_once() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(plumb_tests::bin("plumb"))
        .args(["serve", "--listen", "127.0.0.1:0", "--manifests"])
        .arg(tmp.path())
        .arg("--data")
        .arg(tmp.path().join("data"))
        .args(["--store", &pg.url("not_there")])
        .output()
        .expect("run plumb serve");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("database \"not_there\" does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("trying again"), "{stderr}");
}

/// A bad store URL is a usage error that says what is accepted, before anything starts.
#[test]
fn a_store_that_is_not_a_store_url_is_refused_with_what_is_accepted() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(plumb_tests::bin("plumb"))
        .args(["serve", "--manifests"])
        .arg(tmp.path())
        .arg("--data")
        .arg(tmp.path().join("data"))
        .args(["--store", "mysql://root:hunter2@db/plumb"])
        .output()
        .expect("run plumb serve");
    assert_eq!(out.status.code(), Some(64), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("neither postgres://USER@HOST/DB nor sqlite:DIR"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is not shown: {stderr}"
    );
}

/// Each event as "KIND RESOURCE ATTRIBUTE", most recent first.
fn events(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{} {} {}",
                        e["event"].as_str().unwrap_or_default(),
                        e["resource"].as_str().unwrap_or_default(),
                        e["attribute"].as_str().unwrap_or_default()
                    )
                    .trim_end()
                    .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Two controllers on one database answer for the whole fleet: hosts and drift streaming to
/// either are seen from both, a follower on one hears the other's events in the log's order,
/// an acknowledgement made on one holds for a host streaming to the other, and a host that
/// moves keeps its drift and its since, opened once.
#[test]
fn two_controllers_on_one_database_answer_for_the_whole_fleet() {
    use std::io::BufRead as _;
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    let (root1, root2) = (site.root("web-1"), site.root("web-2"));
    let (app1, app2) = (site.app.clone(), root2.join("etc/app.conf"));
    let (a, b) = (site.controller("data-a"), site.controller("data-b"));
    let mut agent1 = start_agent(&a.url, "web-1", &root1, &[]);
    let _agent2 = start_agent(&b.url, "web-2", &root2, &[]);
    for c in [&a, &b] {
        c.expect_drift("web-1", &[]);
        c.expect_drift("web-2", &[]);
    }
    // Either says which controller holds each host's stream (a controller's id holds its
    // process id).
    let holder = |c: &Controller, host: &str| -> Option<String> {
        let hosts = c.json(&["hosts"]);
        let h = hosts["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["host"] == host)?;
        h["controller"].as_str().map(str::to_owned)
    };
    for c in [&a, &b] {
        let (one, two) = (holder(c, "web-1"), holder(c, "web-2"));
        assert!(
            one.as_deref()
                .is_some_and(|id| id.contains(&format!("-{}-", a.proc.pid()))),
            "{one:?}"
        );
        assert!(
            two.as_deref()
                .is_some_and(|id| id.contains(&format!("-{}-", b.proc.pid()))),
            "{two:?}"
        );
    }

    // A follower on a hears web-2's drift, which b evaluates.
    let mut follow = std::process::Command::new(plumb_tests::bin("plumb"));
    follow.args(["drift", "--follow", "-o", "json", "--controller", &a.url]);
    let mut follower = plumb_tests::Proc::spawn_reading(follow);
    let mut lines = std::io::BufReader::new(follower.take_stdout()).lines();
    let mut next_line = || -> Value {
        let line = lines.next().expect("a line").expect("read");
        serde_json::from_str(&line).expect("JSON")
    };
    // web-1 (on a) drifts first: once the follower prints it, it is listening.
    fs::set_permissions(&app1, fs::Permissions::from_mode(0o600)).expect("chmod");
    while next_line()["host"] != "web-1" {}
    fs::set_permissions(&app2, fs::Permissions::from_mode(0o600)).expect("chmod");
    let heard: Value = loop {
        let v = next_line();
        if v["host"] == "web-2" && v["event"] == "opened" {
            break v;
        }
    };
    assert_eq!(heard["attribute"], "mode", "{heard}");
    assert!(heard["id"].as_i64().is_some_and(|id| id > 0), "{heard}");
    let on_a = a.expect_drift("web-2", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    let on_b = b.expect_drift("web-2", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert_eq!(on_a["drift"][0]["since"], on_b["drift"][0]["since"]);

    // Acknowledged on a, for the host b holds: b shows it, and a drift item it no longer fails.
    let out = a.plumb(&[
        "ack",
        "web-2",
        "file:/etc/app.conf",
        "--reason",
        "change 42",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    plumb_tests::wait_for("b to hear of the acknowledgement", || {
        let web2 = b.host_drift("web-2")?;
        (web2["drift"][0]["acknowledged"]["reason"] == "change 42").then_some(())
    });

    // web-1 drifted on a; its agent moves to b: the same drift, since unchanged, and
    // opened once in the one log.
    let before = a.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    agent1.signal("TERM");
    agent1.wait();
    let _agent1 = start_agent(&b.url, "web-1", &root1, &[]);
    plumb_tests::wait_for("web-1 to stream to b, as a sees it", || {
        let hosts = a.json(&["hosts"]);
        let web1 = hosts["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["host"] == "web-1")?
            .clone();
        (web1["status"] == "drifted").then_some(())
    });
    let after = b.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert_eq!(after["drift"][0]["since"], before["drift"][0]["since"]);
    fs::set_permissions(&app1, fs::Permissions::from_mode(0o644)).expect("chmod");
    a.expect_drift("web-1", &[]);
    let opened: Vec<String> = events(&a.json(&["history", "web-1"])["events"])
        .into_iter()
        .filter(|e| e.contains("mode"))
        .collect();
    assert_eq!(
        opened,
        [
            "resolved file:/etc/app.conf mode",
            "opened file:/etc/app.conf mode"
        ]
    );

    // A report from either is the fleet's: web-1's incident (a's, then b's) and web-2's.
    for c in [&a, &b] {
        let report = c.json_raw(&["report", "--since", "1h"]);
        let hosts: Vec<&str> = report["hosts"]
            .as_array()
            .map(|h| h.iter().filter_map(|h| h["host"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(hosts, ["web-1", "web-2"], "{report}");
        assert_eq!(report["summary"]["resolved"], 1, "{report}");
    }

    // One chain for both, signed with the one key.
    site.assert_verifies(&a);
    drop(follower);
}

/// `plumb diff` on one controller reaches a host whose stream another holds: the holder asks
/// its agent and answers through the database, sealed so the database never holds the
/// content; the holder's agent's refusal comes back in its words; a holder that does not
/// answer is named.
#[test]
fn a_diff_reaches_the_host_through_the_controller_holding_its_stream() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    fs::write(
        site.tmp.path().join("manifests/web.yaml"),
        "name: web\nhosts: [\"web-*\"]\nfiles:\n  /etc/app.conf:\n    content: \"a=1\\nb=2\\n\"\n    diff: true\n  /etc/app.key:\n    content: \"k\\n\"\n    diff: true\n",
    )
    .expect("write");
    let root = site.root("web-1");
    fs::write(root.join("etc/app.conf"), "a=1\nb=secret-3\n").expect("write");
    fs::write(root.join("etc/app.key"), "key\n").expect("write");
    let (a, b) = (site.controller("data-a"), site.controller("data-b"));
    let _agent = plumb_tests::start_agent_with(
        std::process::Command::new(plumb_tests::bin("plumb-agent")),
        &b.url,
        "web-1",
        &root,
        &["--deny-content", "/etc/*.key"],
    );
    plumb_tests::wait_for("a to see web-1 drifted on b", || {
        (status(&a, "web-1")? == "drifted").then_some(())
    });

    let out = a.plumb(&["diff", "web-1", "/etc/app.conf"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--- /etc/app.conf (desired)\n+++ /etc/app.conf (actual)\n@@ -1,2 +1,2 @@\n a=1\n-b=2\n+b=secret-3\n"
    );
    assert_eq!(
        pg.query(&site.store, "SELECT count(*) FROM content_requests"),
        "0",
        "the asker deletes the answer once read"
    );
    // An asker's smaller limit is the holder's too (a request written as another controller
    // would, asking for at most 4 bytes): the agent refuses the 17-byte file.
    let holder = pg.query(
        &site.store,
        "SELECT owner FROM hosts WHERE host_id = 'web-1'",
    );
    pg.psql(
        &site.store,
        &format!(
            "INSERT INTO content_requests (asker, holder, host_id, path, max_bytes, public_key)
             VALUES ('a-test', '{holder}', 'web-1', '/etc/app.conf', 4, '\\x00');
             NOTIFY plumb, 'content'"
        ),
    );
    let refused = plumb_tests::wait_for("the holder's answer to a 4-byte request", || {
        let error = pg.query(
            &site.store,
            "SELECT error FROM content_requests WHERE asker = 'a-test' AND answered",
        );
        (!error.is_empty()).then_some(error)
    });
    assert!(
        refused.contains("more than the 4-byte diff limit"),
        "{refused}"
    );

    let out = a.plumb(&["diff", "web-1", "/etc/app.key"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("which holds web-1's stream: /etc/app.key is on this agent's local deny list"),
        "{err}"
    );

    // The holder stopped (SIGSTOP: alive, silent): the asker names it rather than time out.
    b.proc.signal("STOP");
    let out = a.plumb(&["diff", "web-1", "/etc/app.conf"]);
    b.proc.signal("CONT");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not answer within 8 s"), "{err}");
    assert!(err.contains("which holds web-1's stream"), "{err}");
}

/// A maximum connection age spreads streams: a controller asks its old streams to go, and an
/// agent given two controllers moves to the next, at once, without its host going offline.
#[test]
fn streams_past_the_maximum_age_move_to_the_next_controller() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    let root = site.root("web-1");
    let a = Controller::start_with(
        &site.tmp.path().join("manifests"),
        &site.tmp.path().join("data-a"),
        "127.0.0.1:0",
        &[
            "--store",
            &site.store,
            "--audit-key",
            &site.key,
            "--max-connection-age",
            "2s",
        ],
        "http",
    );
    let b = site.controller("data-b");
    let owner = || {
        pg.query(
            &site.store,
            "SELECT owner FROM hosts WHERE host_id = 'web-1'",
        )
    };
    let _agent = start_agent(&format!("{},{}", a.url, b.url), "web-1", &root, &[]);
    let on_a = plumb_tests::wait_for("web-1 to stream to a", || {
        let o = owner();
        (!o.is_empty()).then_some(o)
    });
    plumb_tests::wait_for("web-1 to move to b, in sync there", || {
        let o = owner();
        (!o.is_empty() && o != on_a && status(&b, "web-1")? == "in_sync").then_some(())
    });
    let kinds = b.event_kinds("web-1");
    assert!(
        !kinds.iter().any(|k| k == "host_offline"),
        "a moved stream is not an offline host: {kinds:?}"
    );
    fs::set_permissions(&site.app, fs::Permissions::from_mode(0o600)).expect("chmod");
    a.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
}

/// A controller killed with `kill -9`: its agents move to the next controller they were
/// given and are judged there as before; a host whose agent does not come back is marked
/// offline by the survivor, once, after three missed heartbeats.
#[test]
fn agents_move_to_the_next_controller_and_a_survivor_marks_the_rest_offline() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    let (root1, root3) = (site.root("web-1"), site.root("web-3"));
    // a does the singleton work (expiry, releasing orphans) before b exists.
    let singleton = "this controller does the fleet's singleton work now";
    let mut a = site.controller("data-a");
    plumb_tests::wait_for("a to do the singleton work", || {
        a.proc.stderr().contains(singleton).then_some(())
    });
    let b = site.controller("data-b");
    let both = format!("{},{}", a.url, b.url);
    let _agent1 = start_agent(&both, "web-1", &root1, &[]);
    let mut agent3 = start_agent(&a.url, "web-3", &root3, &[]);
    plumb_tests::wait_for("both hosts in sync on a, as b sees it", || {
        (status(&b, "web-1")? == "in_sync" && status(&b, "web-3")? == "in_sync").then_some(())
    });

    assert!(!b.proc.stderr().contains(singleton), "one at a time");
    a.proc.signal("KILL");
    a.proc.wait();
    agent3.signal("KILL");
    agent3.wait();
    // The singleton work moves to the survivor with the dead one's session.
    plumb_tests::wait_for("b to take the singleton work", || {
        b.proc.stderr().contains(singleton).then_some(())
    });
    fs::set_permissions(&site.app, fs::Permissions::from_mode(0o600)).expect("chmod");
    b.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    plumb_tests::wait_for("b to mark web-3 offline", || {
        (status(&b, "web-3")? == "offline").then_some(())
    });
    let offline = events(&b.json(&["history", "web-3"])["events"])
        .into_iter()
        .filter(|e| e == "host_offline")
        .count();
    assert_eq!(offline, 1, "{}", b.json(&["history", "web-3"]));
    drop(a);
}

/// A controller cut from the database (a TCP proxy between them) claims nothing: it closes its
/// agents' streams so they move to a controller that can write, and answers no host as in sync
/// from memory. Once the database is back it knows the fleet again by itself.
#[test]
fn a_controller_cut_from_the_database_lets_its_agents_move_and_claims_nothing() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    let name = site
        .store
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned();
    let proxy =
        plumb_tests::Proxy::start(format!("127.0.0.1:{}", pg.port()).parse().expect("addr"));
    let via_proxy = pg
        .tcp_url("127.0.0.1", "plumb", &name, "sslmode=disable")
        .replace(
            &format!(":{}/", pg.port()),
            &format!(":{}/", proxy.addr.port()),
        );
    let (app, root) = (site.app.clone(), site.root("web-1"));
    let a = Controller::start_with(
        &site.tmp.path().join("manifests"),
        &site.tmp.path().join("data-a"),
        "127.0.0.1:0",
        &[
            "--store",
            &via_proxy,
            "--audit-key",
            &site.key,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        "http",
    );
    let metrics = plumb_tests::wait_for("a's metrics address", || {
        a.proc.stderr().lines().find_map(|l| {
            l.strip_prefix("plumb: metrics on http://")
                .map(|r| r.trim_end_matches("/metrics").to_owned())
        })
    });
    let writable = || {
        plumb_tests::scrape(&metrics)
            .get("plumb_store_writable")
            .copied()
    };
    let b = site.controller("data-b");
    let _agent = start_agent(&format!("{},{}", a.url, b.url), "web-1", &root, &[]);
    plumb_tests::wait_for("web-1 in sync on a", || {
        (status(&a, "web-1")? == "in_sync").then_some(())
    });

    assert_eq!(writable(), Some(1.0));
    proxy.cut();
    plumb_tests::wait_for("a to say it does not know web-1", || {
        (status(&a, "web-1")? == "unknown").then_some(())
    });
    // What monitoring reads says so too (the gRPC health service follows the same flag).
    assert_eq!(writable(), Some(0.0), "the store is down, as /metrics says");
    fs::set_permissions(&app, fs::Permissions::from_mode(0o600)).expect("chmod");
    b.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert_eq!(
        status(&a, "web-1").as_deref(),
        Some("unknown"),
        "a still claims nothing"
    );

    proxy.restore();
    plumb_tests::wait_for("a to know web-1's drift again", || {
        (status(&a, "web-1")? == "drifted").then_some(())
    });
    plumb_tests::wait_for("a's store to write again, as /metrics says", || {
        (writable()? == 1.0).then_some(())
    });
}

/// `plumb store copy` moves an installation from SQLite to PostgreSQL: the copy's chain
/// verifies under the same public key, a controller on it knows the drift (same since) and the
/// acknowledgement, and a target that is not empty is refused unless told to replace it.
#[test]
fn store_copy_moves_an_installation_from_sqlite_with_its_chain_intact() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let target = pg.database();
    let (tmp, _) = site(0o600);
    let (manifests, root) = (tmp.path().join("manifests"), tmp.path().join("web-root"));
    let data = tmp.path().join("data");
    let mut sqlite = Controller::start_on(&manifests, &data, "127.0.0.1:0");
    let mut agent = start_agent(&sqlite.url, "web-1", &root, &[]);
    let before = sqlite.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    let out = sqlite.plumb(&["ack", "web-1", "file:/etc/app.conf", "--reason", "CHG-7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.signal("TERM");
    agent.wait();
    sqlite.proc.signal("TERM");
    sqlite.proc.wait();

    let copy = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(plumb_tests::bin("plumb"));
        cmd.args(["store", "copy", "--from"])
            .arg(format!("sqlite:{}", data.display()))
            .args(["--to", &target])
            .args(extra);
        cmd.output().expect("run plumb store copy")
    };
    let out = copy(&[]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("copied 1 host(s)"), "{said}");
    assert!(
        said.contains("1 open drift item(s), 1 acknowledgement(s)"),
        "{said}"
    );
    assert!(said.contains("the copy's log verifies"), "{said}");

    let public = data.join("audit.key.pub");
    let verify = sqlite.plumb(&[
        "audit",
        "verify",
        "--store",
        &target,
        "--public-key",
        public.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&verify.stdout).expect("JSON");
    assert_eq!(verify.status.code(), Some(0), "{v}");
    assert_eq!(
        (v["intact"].clone(), v["signature"].clone()),
        (true.into(), "valid".into())
    );

    // Not into a store that holds something, unless told to replace it.
    let out = copy(&[]);
    assert_eq!(out.status.code(), Some(1));
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("is not empty") && why.contains("--replace"),
        "{why}"
    );
    let out = copy(&["--replace"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let key = data.join("audit.key");
    let pg_controller = Controller::start_with(
        &manifests,
        &tmp.path().join("data-pg"),
        "127.0.0.1:0",
        &[
            "--store",
            &target,
            "--audit-key",
            key.to_str().expect("utf-8"),
        ],
        "http",
    );
    let _agent = start_agent(&pg_controller.url, "web-1", &root, &[]);
    let after =
        pg_controller.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert_eq!(after["drift"][0]["since"], before["drift"][0]["since"]);
    assert_eq!(
        after["drift"][0]["acknowledged"]["reason"], "CHG-7",
        "{after}"
    );
    drop(sqlite);
}

/// PostgreSQL restarted under two controllers (every session ended, a fast shutdown): both
/// recover by themselves, with no one touching them, and a change made while the database was
/// down is seen from both; the one chain still verifies.
#[test]
fn a_restarted_database_is_taken_up_again_by_every_controller() {
    let Some(pg) = plumb_testkit::Postgres::own() else {
        return;
    };
    let site = Shared::new(&pg);
    let (root1, root2) = (site.root("web-1"), site.root("web-2"));
    let (a, b) = (site.controller("data-a"), site.controller("data-b"));
    let both = format!("{},{}", a.url, b.url);
    let _agent1 = start_agent(&both, "web-1", &root1, &[]);
    let _agent2 = start_agent(&format!("{},{}", b.url, a.url), "web-2", &root2, &[]);
    for c in [&a, &b] {
        plumb_tests::wait_for("both hosts in sync", || {
            (status(c, "web-1")? == "in_sync" && status(c, "web-2")? == "in_sync").then_some(())
        });
    }

    pg.stop();
    fs::set_permissions(&site.app, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::set_permissions(
        root2.join("etc/app.conf"),
        fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    pg.start();
    for c in [&a, &b] {
        c.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
        c.expect_drift("web-2", &[("file:/etc/app.conf", "mode", "0644", "0640")]);
    }
    site.assert_verifies(&a);
}

/// Three controllers on one database, twenty agents spread over them (each given all three,
/// starting at a different one), and a burst of changes to every host during which one
/// controller is killed with `kill -9`. Once the burst is over, checked against the truth:
/// every host's drift, as each survivor says it, is what the files hold (their sha256 against
/// the declared content); the log holds each host's changes of state once and in order (no
/// drift opened twice without a resolve between, nothing resolved or changed that was not
/// open, and what is open at the end is the drift shown); a follower on a survivor heard every
/// entry after it began, in order, none twice; and the one chain verifies.
#[test]
fn three_controllers_twenty_agents_and_one_killed_mid_burst() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::BufRead as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const HOSTS: usize = 20;
    const FILES: usize = 3;
    const ROUNDS: usize = 24;
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    let mut manifest = String::from("name: web\nhosts: [\"web-*\"]\nfiles:\n");
    for f in 0..FILES {
        manifest.push_str(&format!("  /etc/burst/f{f}:\n    content: \"v0\\n\"\n"));
    }
    fs::write(site.tmp.path().join("manifests/web.yaml"), manifest).expect("write");
    let hosts: Vec<String> = (1..=HOSTS).map(|i| format!("web-{i:02}")).collect();
    let roots: Vec<std::path::PathBuf> = hosts
        .iter()
        .map(|h| {
            let root = site.tmp.path().join(format!("{h}-root"));
            let files: Vec<(String, &str)> = (0..FILES)
                .map(|f| (format!("etc/burst/f{f}"), "v0\n"))
                .collect();
            let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
            write_tree(&root, &refs);
            root
        })
        .collect();
    let mut controllers: Vec<Controller> = (0..3)
        .map(|i| site.controller(&format!("data-{i}")))
        .collect();
    let urls: Vec<String> = controllers.iter().map(|c| c.url.clone()).collect();
    let _agents: Vec<plumb_tests::Proc> = hosts
        .iter()
        .zip(&roots)
        .enumerate()
        .map(|(i, (h, root))| {
            let list: Vec<&str> = (0..3).map(|k| urls[(i + k) % 3].as_str()).collect();
            start_agent(&list.join(","), h, root, &[])
        })
        .collect();
    let (victim, survivors) = (0, [1, 2]);
    plumb_tests::wait_for_within(
        "every host in sync",
        std::time::Duration::from_secs(60),
        || {
            hosts
                .iter()
                .all(|h| status(&controllers[1], h).as_deref() == Some("in_sync"))
                .then_some(())
        },
    );

    // A follower on a survivor, listening before the burst begins.
    let mut follow = std::process::Command::new(plumb_tests::bin("plumb"));
    follow.args(["drift", "--follow", "-o", "json", "--controller", &urls[1]]);
    let mut follower = plumb_tests::Proc::spawn_reading(follow);
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let lines = std::io::BufReader::new(follower.take_stdout()).lines();
    let into = heard.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                into.lock().expect("lock").push(v);
            }
        }
    });
    // Listening once it prints, as an entry, a change made now (a change made before it
    // listened is printed as current drift, id 0): everything from that entry on is heard.
    let first_id = (0..30)
        .find_map(|k| {
            fs::write(roots[0].join("etc/burst/f0"), format!("warming up {k}\n")).expect("write");
            let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while std::time::Instant::now() < until {
                let entry = heard.lock().expect("lock").iter().find_map(|e| {
                    let id = e["id"].as_i64().filter(|id| *id > 0)?;
                    (e["host"] == "web-01").then_some(id)
                });
                if entry.is_some() {
                    return entry;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            None
        })
        .expect("the follower hears a change as it is logged")
        - 1;

    // The burst: every host's files rewritten round after round (some back to the declared
    // content), the victim killed half way.
    let written = std::sync::Arc::new(AtomicUsize::new(0));
    let writers: Vec<std::thread::JoinHandle<()>> = roots
        .iter()
        .enumerate()
        .map(|(i, root)| {
            let (root, written) = (root.clone(), written.clone());
            std::thread::spawn(move || {
                for r in 1..=ROUNDS {
                    let f = (i + r) % FILES;
                    let content = if (i + r) % 4 == 0 {
                        "v0\n".to_owned()
                    } else {
                        format!("v{r} of host {i}\n")
                    };
                    fs::write(root.join(format!("etc/burst/f{f}")), content).expect("write");
                    written.fetch_add(1, Ordering::SeqCst);
                    // The burst's pace (about 400 changes a second over the fleet), not a wait
                    // for anything.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        })
        .collect();
    plumb_tests::wait_for("half the burst", || {
        (written.load(Ordering::SeqCst) >= HOSTS * ROUNDS / 2).then_some(())
    });
    // web-01's agent was given the victim first: the victim's id is its owner.
    let victim_id = pg.query(
        &site.store,
        "SELECT owner FROM hosts WHERE host_id = 'web-01'",
    );
    let held = |owner: &str| {
        pg.query(
            &site.store,
            &format!("SELECT count(*) FROM hosts WHERE owner IS NOT DISTINCT FROM {owner}"),
        )
    };
    assert_ne!(
        held(&format!("'{victim_id}'")),
        "0",
        "the victim holds hosts"
    );
    controllers[victim].proc.signal("KILL");
    controllers[victim].proc.wait();
    for w in writers {
        w.join().expect("writer");
    }

    // The truth on disk: which declared files differ from their content.
    let mut truth: BTreeSet<(String, String)> = BTreeSet::new();
    for (h, root) in hosts.iter().zip(&roots) {
        for f in 0..FILES {
            let actual = fs::read(root.join(format!("etc/burst/f{f}"))).expect("read");
            if plumb_tests::sha256(&actual) != plumb_tests::sha256(b"v0\n") {
                truth.insert((h.clone(), format!("file:/etc/burst/f{f}")));
            }
        }
    }
    assert!(!truth.is_empty(), "the burst leaves drift behind");
    let drift_of = |c: &Controller| -> Option<BTreeSet<(String, String)>> {
        let drift = c.json(&["drift"]);
        let mut shown = BTreeSet::new();
        for host in drift["hosts"].as_array()? {
            if host["status"] == "offline" || host["status"] == "unknown" {
                return None;
            }
            for d in host["drift"].as_array()? {
                shown.insert((
                    host["host"].as_str()?.to_owned(),
                    d["resource"].as_str()?.to_owned(),
                ));
            }
        }
        Some(shown)
    };
    for s in survivors {
        let c = &controllers[s];
        plumb_tests::wait_for_within(
            "each survivor's drift to be the truth on disk",
            std::time::Duration::from_secs(90),
            || (drift_of(c)? == truth).then_some(()),
        );
    }

    assert_eq!(
        (held(&format!("'{victim_id}'")), held("NULL")),
        ("0".to_owned(), "0".to_owned()),
        "every host streams to a survivor"
    );

    // The log: each host's changes of state once, in order, ending in what is shown.
    let history = controllers[1].json(&["history", "--limit", "100000"]);
    let mut events: Vec<Value> = history["events"].as_array().expect("events").clone();
    events.sort_by_key(|e| e["id"].as_i64());
    let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "the log's ids follow each other"
    );
    let mut open: BTreeMap<(String, String), ()> = BTreeMap::new();
    for e in &events {
        let key = (
            e["host"].as_str().unwrap_or_default().to_owned(),
            e["resource"].as_str().unwrap_or_default().to_owned(),
        );
        match e["event"].as_str().unwrap_or_default() {
            "opened" => assert!(open.insert(key, ()).is_none(), "opened twice: {e}"),
            "resolved" => assert!(open.remove(&key).is_some(), "resolved, not open: {e}"),
            "changed" => assert!(open.contains_key(&key), "changed, not open: {e}"),
            _ => {}
        }
    }
    let logged: BTreeSet<(String, String)> = open.into_keys().collect();
    assert_eq!(logged, truth, "what the log leaves open is the truth");

    // The follower heard every entry since it began, in order, none twice.
    let last_id = *ids.last().expect("an entry");
    plumb_tests::wait_for("the follower to hear the last entry", || {
        let heard = heard.lock().expect("lock");
        (heard.last()?["id"].as_i64()? >= last_id).then_some(())
    });
    let heard_ids: Vec<i64> = heard
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|e| e["id"].as_i64())
        // After the last entry `plumb history` listed comes its own read of the log.
        .filter(|id| *id > first_id && *id <= last_id)
        .collect();
    let expected: Vec<i64> = ids.iter().copied().filter(|id| *id > first_id).collect();
    assert_eq!(heard_ids, expected, "the follower heard the log as it is");

    site.assert_verifies(&controllers[2]);
    drop(follower);
}

/// One controller name with two addresses (as DNS would give, here an /etc/hosts the agent
/// sees in a mount namespace of its own): the agent tries the addresses in turn, so when the
/// controller it streams to dies it reaches the other under the same name.
#[test]
fn an_agent_given_one_name_with_two_addresses_moves_to_the_other() {
    if !plumb_tests::have_or_skip(
        plumb_tests::is_root(),
        "root (a mount namespace for the agent's own /etc/hosts)",
    ) {
        return;
    }
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let on = |name: &str, ip: &str| {
        Controller::start_with(
            &site.tmp.path().join("manifests"),
            &site.tmp.path().join(name),
            &format!("{ip}:{port}"),
            &["--store", &site.store, "--audit-key", &site.key],
            "http",
        )
    };
    let mut controllers = [on("data-a", "127.0.0.1"), on("data-b", "127.0.0.2")];
    let hosts = site.tmp.path().join("hosts");
    fs::write(
        &hosts,
        "127.0.0.1 plumb-controllers\n127.0.0.2 plumb-controllers\n",
    )
    .expect("write");
    let mut agent = std::process::Command::new("unshare");
    agent
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#)
        .arg("sh")
        .arg(&hosts)
        .arg(plumb_tests::bin("plumb-agent"));
    let root = site.root("web-1");
    let _agent = plumb_tests::start_agent_with(
        agent,
        &format!("http://plumb-controllers:{port}"),
        "web-1",
        &root,
        &[],
    );
    let owner = || {
        pg.query(
            &site.store,
            "SELECT owner FROM hosts WHERE host_id = 'web-1'",
        )
    };
    plumb_tests::wait_for("web-1 in sync", || {
        (status(&controllers[1], "web-1")? == "in_sync").then_some(())
    });
    let first = owner();
    // Which address it reached first is the resolver's choice: kill that controller (a
    // controller's id holds its process id).
    let victim = controllers
        .iter()
        .position(|c| first.contains(&format!("-{}-", c.proc.pid())))
        .expect("web-1 streams to one of the two");
    controllers[victim].proc.signal("KILL");
    controllers[victim].proc.wait();
    let survivor = &controllers[1 - victim];
    fs::set_permissions(&site.app, fs::Permissions::from_mode(0o600)).expect("chmod");
    survivor.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert_ne!(owner(), first, "web-1 streams to the other address now");
}

/// A change window is the fleet's, whichever controller it was opened on: opened on one, it
/// authorises drift on a host another evaluates; closed on that other, its end is recorded
/// once, by the controller doing the singleton work.
#[test]
fn a_change_window_opened_on_one_controller_authorises_drift_on_another() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let site = Shared::new(pg);
    let root2 = site.root("web-2");
    let app2 = root2.join("etc/app.conf");
    let (a, b) = (site.controller("data-a"), site.controller("data-b"));
    let _agent2 = start_agent(&b.url, "web-2", &root2, &[]);
    b.expect_drift("web-2", &[]);
    let open = a.plumb(&[
        "change", "open", "CHG-9", "--hosts", "web-*", "--for", "1h", "--reason", "rollout",
    ]);
    assert!(
        open.status.success(),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );
    plumb_tests::wait_for("b to know the window", || {
        let list = b.json(&["change", "list"]);
        (list["changes"][0]["ticket"] == "CHG-9").then_some(())
    });
    fs::set_permissions(&app2, fs::Permissions::from_mode(0o600)).expect("chmod");
    let item = plumb_tests::wait_for("web-2's drift", || {
        let h = a.host_drift("web-2")?;
        h["drift"].as_array()?.first().cloned()
    });
    assert_eq!(
        (&item["authorised"], &item["change"]),
        (&Value::from(true), &Value::from("CHG-9")),
        "{item:#}"
    );
    let close = b.plumb(&["change", "close", "CHG-9"]);
    assert!(
        close.status.success(),
        "{}",
        String::from_utf8_lossy(&close.stderr)
    );
    let ended = plumb_tests::wait_for("the window's end in the log", || {
        let history = a.json(&["history", "--limit", "1000"]);
        let ends: Vec<Value> = history["events"]
            .as_array()?
            .iter()
            .filter(|e| e["event"] == "change_ended")
            .cloned()
            .collect();
        (!ends.is_empty()).then_some(ends)
    });
    assert_eq!(
        ended[0]["actual"],
        "change CHG-9 ended with 1 item still drifted: update the manifests or revert (web-2 file:/etc/app.conf)"
    );
    // Recorded once however many controllers see it end: the store ends a window once
    // (`end_window`, in the conformance suite), and only the singleton tries.
    assert_eq!(ended.len(), 1, "{ended:#?}");
    site.assert_verifies(&a);
}
