//! End to end: hosts that should be alike (a manifest's `baseline:`), with real agents on temp
//! roots and the real controller: ten web servers with one odd file and one odd mode, put
//! right; a group judged against a reference host; a tie of two, said on both until one side
//! wins.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use plumb_tests::{Controller, Proc, sha256, start_agent, write_tree};

const WEB: &str = "name: web\nhosts: [\"web-*\"]\nbaseline:\n  files:\n    - /etc/app.conf\n";
const DB: &str =
    "name: db\nhosts: [\"db-*\"]\nbaseline:\n  reference: db-1\n  files:\n    - /etc/app.conf\n";
const PAIR: &str = "name: pair\nhosts: [\"pair-*\"]\nbaseline:\n  files:\n    - /etc/app.conf\n";

const APP: &str = "/etc/app.conf";
const RESOURCE: &str = "file:/etc/app.conf";

struct Site {
    tmp: tempfile::TempDir,
    controller: Controller,
    agents: Vec<Proc>,
}

impl Site {
    /// A controller over these manifests (file name, text), in a temp dir; no agent yet.
    fn start(manifests: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("manifests");
        fs::create_dir_all(&dir).expect("mkdir");
        for (name, text) in manifests {
            fs::write(dir.join(name), text).expect("write");
        }
        let controller = Controller::start(&dir, &tmp.path().join("data"));
        Self {
            tmp,
            controller,
            agents: Vec::new(),
        }
    }

    /// Host `id`'s root, its /etc/app.conf holding `content` with mode 0644, and its agent.
    fn host(&mut self, id: &str, content: &str) -> std::path::PathBuf {
        let root = self.tmp.path().join(id);
        write_tree(&root, &[("etc/app.conf", content)]);
        chmod(&root, 0o644);
        self.agents
            .push(start_agent(&self.controller.url, id, &root, &[]));
        root
    }
}

fn chmod(root: &std::path::Path, mode: u32) {
    fs::set_permissions(root.join("etc/app.conf"), fs::Permissions::from_mode(mode))
        .expect("chmod");
}

fn digest(content: &str) -> String {
    sha256(content.as_bytes())
}

#[test]
fn the_odd_hosts_out_a_reference_and_a_tie() {
    let mut site = Site::start(&[("web.yaml", WEB), ("db.yaml", DB), ("pair.yaml", PAIR)]);

    // Ten web servers: web-7 holds another file, web-3 the same one with another mode.
    let mut roots = Vec::new();
    for i in 1..=10 {
        let content = if i == 7 {
            "listen 8080\n"
        } else {
            "listen 80\n"
        };
        roots.push(site.host(&format!("web-{i}"), content));
    }
    chmod(&roots[2], 0o600);
    let c = &site.controller;
    let most = format!("{} (as most of web)", digest("listen 80\n"));
    c.expect_drift(
        "web-7",
        &[(RESOURCE, "baseline.sha256", &most, &digest("listen 8080\n"))],
    );
    c.expect_drift(
        "web-3",
        &[(RESOURCE, "baseline.mode", "0644 (as most of web)", "0600")],
    );
    for i in [1, 2, 4, 5, 6, 8, 9, 10] {
        c.expect_drift(&format!("web-{i}"), &[]);
    }
    let drift = c.json(&["drift"]);
    let odd: Vec<&str> = drift["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter(|h| h["drift"].as_array().is_some_and(|d| !d.is_empty()))
        .filter_map(|h| h["host"].as_str())
        .collect();
    assert_eq!(odd, ["web-3", "web-7"], "{drift}");

    // Which hosts hold which variant.
    let out = c.plumb(&["diverge", "web", "/etc/app.conf", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "the group is not alike");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let group = &v["groups"][0];
    assert_eq!(group["resource"], RESOURCE);
    let variants = |aspect: &str| -> Vec<(String, usize, serde_json::Value)> {
        let a = group["aspects"]
            .as_array()
            .expect("aspects")
            .iter()
            .find(|a| a["aspect"] == aspect)
            .unwrap_or_else(|| panic!("{aspect} in {group}"));
        a["variants"]
            .as_array()
            .expect("variants")
            .iter()
            .map(|v| {
                let hosts = v["hosts"].as_array().expect("hosts");
                let few = if hosts.len() == 1 {
                    hosts[0].clone()
                } else {
                    serde_json::Value::Null
                };
                (
                    v["value"].as_str().expect("value").to_owned(),
                    hosts.len(),
                    few,
                )
            })
            .collect()
    };
    assert_eq!(
        variants("sha256"),
        [
            (digest("listen 80\n"), 9, serde_json::Value::Null),
            (digest("listen 8080\n"), 1, "web-7".into())
        ]
    );
    assert_eq!(
        variants("mode"),
        [
            ("0644".into(), 9, serde_json::Value::Null),
            ("0600".into(), 1, "web-3".into())
        ]
    );
    let table = String::from_utf8_lossy(&c.plumb(&["diverge", "web-7"]).stdout).into_owned();
    assert!(
        table.contains("the majority") && table.contains("web-7") && table.contains("web-3"),
        "{table}"
    );

    let lone = c.json(&["diverge", "/etc/app.conf"]);
    assert_eq!(
        lone["groups"].as_array().map(|g| g.len()),
        Some(1),
        "a lone path is the resource, across groups: {lone}"
    );

    // The group's majority as the manifest that declares it: once it replaces the baseline,
    // the same two hosts are the drift, now against declared values.
    let out = c.plumb(&["baseline", "accept", "web"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(!accepted.contains("baseline:"), "{accepted}");
    fs::write(site.tmp.path().join("manifests/web.yaml"), &accepted).expect("write");
    c.expect_drift(
        "web-7",
        &[(
            RESOURCE,
            "sha256",
            &digest("listen 80\n"),
            &digest("listen 8080\n"),
        )],
    );
    c.expect_drift("web-3", &[(RESOURCE, "mode", "0644", "0600")]);
    for i in [1, 2, 4, 5, 6, 8, 9, 10] {
        c.expect_drift(&format!("web-{i}"), &[]);
    }

    // Put right, as the group has it.
    fs::write(roots[6].join("etc/app.conf"), "listen 80\n").expect("write");
    chmod(&roots[2], 0o644);
    c.expect_drift("web-7", &[]);
    c.expect_drift("web-3", &[]);

    // Against a reference: db-1's file is the one, however many hosts hold another.
    let _ = site.host("db-1", "pool 10\n");
    let _ = site.host("db-2", "pool 5\n");
    let _ = site.host("db-3", "pool 5\n");
    let c = &site.controller;
    let as_db1 = format!("{} (as db-1)", digest("pool 10\n"));
    for host in ["db-2", "db-3"] {
        c.expect_drift(
            host,
            &[(RESOURCE, "baseline.sha256", &as_db1, &digest("pool 5\n"))],
        );
    }
    c.expect_drift("db-1", &[]);

    // Two hosts that differ: no majority, said on both, never guessed.
    let _ = site.host("pair-a", "x\n");
    let b = site.host("pair-b", "y\n");
    let c = &site.controller;
    let tie = "a majority of pair, and there is none: 2 variants held by 1, 1 hosts";
    c.expect_drift(
        "pair-a",
        &[(RESOURCE, "baseline.sha256", tie, &digest("x\n"))],
    );
    c.expect_drift(
        "pair-b",
        &[(RESOURCE, "baseline.sha256", tie, &digest("y\n"))],
    );
    let out = c.plumb(&["drift", "pair-a"]);
    assert_eq!(out.status.code(), Some(2), "a tie is drift to scripts too");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("baseline.sha256") && said.contains(tie),
        "{said}"
    );
    // A tie cannot be accepted as it stands: left out, said, exit 2; one host's state can.
    let out = c.plumb(&["baseline", "accept", "pair"]);
    assert_eq!(out.status.code(), Some(2));
    let left_out = String::from_utf8_lossy(&out.stderr);
    assert!(
        left_out.contains("left out (not decided): pair: file:/etc/app.conf: no majority"),
        "{left_out}"
    );
    let out = c.plumb(&["baseline", "accept", "--from", "pair-a", "pair"]);
    assert_eq!(out.status.code(), Some(0));
    let from_a = String::from_utf8_lossy(&out.stdout);
    assert!(from_a.contains(&digest("x\n")), "{from_a}");
    let out = c.plumb(&["baseline", "accept", "nothing-*"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no baseline is named \"nothing-*\" or compares a host it matches")
    );
    fs::write(b.join(APP.trim_start_matches('/')), "x\n").expect("write");
    c.expect_drift("pair-a", &[]);
    c.expect_drift("pair-b", &[]);
    drop(site);
}

/// A baseline's glob on real agents: each path it matches on any host is compared (per-host
/// files left out with `ignore:`); a path only one host has, or one it lacks, is drift on
/// it; a file made later on two hosts becomes the group's, and one removed is seen gone.
#[test]
fn a_glob_compares_every_match_and_ignores_per_host_files() {
    let mut site = Site::start(&[(
        "app.yaml",
        "name: app\nhosts: [\"app-*\"]\nignore: [hostname]\nbaseline:\n  files:\n    - /etc/app.d/**\n",
    )]);
    let mut roots = Vec::new();
    for i in 1..=3 {
        let id = format!("app-{i}");
        let root = site.tmp.path().join(&id);
        let mut files = vec![
            ("etc/app.d/a.conf", "a\n".to_owned()),
            ("etc/app.d/hostname", format!("{id}\n")),
        ];
        if i == 3 {
            files.push(("etc/app.d/sub/extra.conf", "extra\n".to_owned()));
        }
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        write_tree(&root, &files);
        site.agents
            .push(start_agent(&site.controller.url, &id, &root, &[]));
        roots.push(root);
    }
    let c = &site.controller;
    let extra = "file:/etc/app.d/sub/extra.conf";
    c.expect_drift(
        "app-3",
        &[(extra, "baseline.type", "absent (as most of app)", "file")],
    );
    c.expect_drift("app-1", &[]);
    c.expect_drift("app-2", &[]);

    // A file made on two hosts of three: the group's now, and app-3 lacks it.
    for root in &roots[..2] {
        fs::write(root.join("etc/app.d/new.conf"), "new\n").expect("write");
    }
    let new = "file:/etc/app.d/new.conf";
    c.expect_drift(
        "app-3",
        &[
            (new, "baseline.type", "file (as most of app)", "absent"),
            (extra, "baseline.type", "absent (as most of app)", "file"),
        ],
    );
    c.expect_drift("app-1", &[]);
    c.expect_drift("app-2", &[]);

    // app-3 put right: the extra file removed, the new one made.
    fs::remove_file(roots[2].join("etc/app.d/sub/extra.conf")).expect("remove");
    fs::write(roots[2].join("etc/app.d/new.conf"), "new\n").expect("write");
    c.expect_drift("app-3", &[]);
    let v = c.json(&["diverge", "app"]);
    let resources: Vec<&str> = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["resource"].as_str())
        .collect();
    assert_eq!(
        resources,
        ["file:/etc/app.d/a.conf", "file:/etc/app.d/new.conf"],
        "the per-host file ignored, the gone one left out: {v}"
    );
    drop(site);
}

/// On a store several controllers share, each holds only its own hosts' observations, so a
/// baseline would be judged on part of its group: refused, said plainly, on reload (the last
/// good set stays in force) and at start.
#[test]
fn a_baseline_is_refused_on_a_shared_store_and_said_why() {
    let Some(pg) = plumb_testkit::Postgres::shared() else {
        return;
    };
    let store = pg.database();
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(
        manifests.join("web.yaml"),
        "name: web\nhosts: [\"web-*\"]\nfiles:\n  /etc/motd:\n    mode: \"0644\"\n",
    )
    .expect("write");
    let key = tmp.path().join("audit.key").display().to_string();
    let serve = ["--store", store.as_str(), "--audit-key", key.as_str()];
    let c = Controller::start_with(
        &manifests,
        &tmp.path().join("data-a"),
        "127.0.0.1:0",
        &serve,
        "http",
    );
    fs::write(
        manifests.join("alike.yaml"),
        "name: alike\nhosts: [\"web-*\"]\nbaseline:\n  files:\n    - /etc/motd\n",
    )
    .expect("write");
    let errors = plumb_tests::wait_for("the baseline refused on reload", || {
        let errors = c.json(&["hosts"])["manifest_errors"].as_array()?.clone();
        (!errors.is_empty()).then_some(errors)
    });
    assert_eq!(
        errors,
        [serde_json::Value::from(format!(
            "{}: baselines are not compared on a store several controllers share yet\n  hint: run one controller on this store, or declare the values the hosts should have",
            manifests.join("alike.yaml:3").display()
        ))]
    );
    drop(c);

    let out = std::process::Command::new(plumb_tests::bin("plumb"))
        .args(["serve", "--listen", "127.0.0.1:0", "--manifests"])
        .arg(&manifests)
        .arg("--data")
        .arg(tmp.path().join("data-b"))
        .args(serve)
        .output()
        .expect("run plumb serve");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("baselines are not compared on a store several controllers share yet"),
        "{said}"
    );
}
