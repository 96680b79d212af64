//! End to end, with the real binaries over real gRPC on loopback: one controller, two agents
//! with their own `--root` and `--host-id`, selected by different manifests. Every kind of file
//! change an operator makes shows up as drift with exact expected and actual values, goes away
//! on revert, is in the history, and survives a `kill -9` of the controller.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use plumb_tests::{Controller, is_root, sh, sha256, start_agent};
use serde_json::Value;

const WEB: &str = r#"name: web
hosts: ["web-*"]
files:
  /etc/app.conf:
    content: "a=1\n"
    mode: "0644"
    owner: tester
  /etc/ssh/sshd_config:
    contains:
      - "PermitRootLogin no"
      - "!X11Forwarding yes"
  /etc/current:
    target: /opt/r1
  /etc/conf.d:
    exclusive: true
  /etc/conf.d/main.conf: {}
  /etc/sentinel:
    absent: true
"#;

const ROLE: &str =
    "name: role-web\nlabels: {role: web}\nfiles:\n  /etc/telnetd.conf:\n    absent: true\n";
const DB: &str =
    "name: db\nhosts: [\"db-*\"]\nfiles:\n  /etc/db.conf:\n    content: \"port=5432\\n\"\n";

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, content).expect("write");
}

fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).expect("chmod");
}

fn history(c: &Controller, host: &str) -> Vec<Value> {
    c.json(&["history", host, "--limit", "10000"])["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn events_for(events: &[Value], resource: &str, attribute: &str) -> Vec<String> {
    let mut kinds: Vec<String> = events
        .iter()
        .filter(|e| e["resource"] == resource && e["attribute"] == attribute)
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    kinds.reverse(); // oldest first
    kinds
}

#[test]
fn file_changes_are_drift_until_reverted_and_survive_a_controller_kill() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("web.yaml"), WEB).expect("write");
    fs::write(manifests.join("role.yaml"), ROLE).expect("write");
    fs::write(manifests.join("db.yaml"), DB).expect("write");

    // web-1's host, in sync with web.yaml and role.yaml.
    let web = tmp.path().join("web-root");
    let uid = fs::metadata(tmp.path()).expect("meta").uid();
    write(
        &web,
        "etc/passwd",
        &format!("tester:x:{uid}:0::/:/bin/sh\nother:x:4242:4242::/:/bin/sh\n"),
    );
    write(&web, "etc/app.conf", "a=1\n");
    chmod(&web, "etc/app.conf", 0o644);
    write(&web, "etc/ssh/sshd_config", "Port 22\nPermitRootLogin no\n");
    write(&web, "etc/conf.d/main.conf", "");
    fs::create_dir_all(web.join("opt/r1")).expect("mkdir");
    symlink("/opt/r1", web.join("etc/current")).expect("symlink");
    // db-1's host.
    let db = tmp.path().join("db-root");
    write(&db, "etc/db.conf", "port=5432\n");

    let data = tmp.path().join("data");
    let mut controller = Controller::start(&manifests, &data);
    let _web_agent = start_agent(&controller.url, "web-1", &web, &["role=web"]);
    let _db_agent = start_agent(&controller.url, "db-1", &db, &["role=db"]);

    controller.expect_drift("web-1", &[]);
    controller.expect_drift("db-1", &[]);
    let hosts = controller.json(&["hosts"]);
    let manifests_of = |id: &str| -> Vec<String> {
        hosts["hosts"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["host"] == id))
            .map(|h| {
                h["manifests"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        manifests_of("web-1"),
        ["role-web", "web"],
        "selected by label and by host glob"
    );
    assert_eq!(manifests_of("db-1"), ["db"]);
    // The Hello's facts (sysinfo) and labels reach the operator.
    let web_host = hosts["hosts"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["host"] == "web-1"))
        .expect("web-1 listed");
    assert!(
        web_host["os"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty()),
        "{web_host}"
    );
    assert_eq!(web_host["labels"]["role"], "web");

    let app = web.join("etc/app.conf");
    let want = sha256(b"a=1\n");
    let sha = |content: &str| sha256(content.as_bytes());

    // In-place write.
    fs::write(&app, "a=2\n").expect("write");
    controller.expect_drift(
        "web-1",
        &[("file:/etc/app.conf", "sha256", &want, &sha("a=2\n"))],
    );
    fs::write(&app, "a=1\n").expect("revert");
    controller.expect_drift("web-1", &[]);

    // Rename-on-save, as editors do.
    write(&web, "etc/.app.conf.swp", "a=3\n");
    chmod(&web, "etc/.app.conf.swp", 0o644);
    fs::rename(web.join("etc/.app.conf.swp"), &app).expect("rename");
    controller.expect_drift(
        "web-1",
        &[("file:/etc/app.conf", "sha256", &want, &sha("a=3\n"))],
    );
    write(&web, "etc/.app.conf.swp", "a=1\n");
    chmod(&web, "etc/.app.conf.swp", 0o644);
    fs::rename(web.join("etc/.app.conf.swp"), &app).expect("rename back");
    controller.expect_drift("web-1", &[]);

    // sed -i (writes a temp file and renames it over the original).
    sh(&format!("sed -i 's/a=1/a=4/' {}", app.display()));
    controller.expect_drift(
        "web-1",
        &[("file:/etc/app.conf", "sha256", &want, &sha("a=4\n"))],
    );
    sh(&format!("sed -i 's/a=4/a=1/' {}", app.display()));
    controller.expect_drift("web-1", &[]);

    // install(1), as packaging scripts and configuration tools do.
    let staged = tmp.path().join("staged.conf");
    fs::write(&staged, "a=5\n").expect("stage");
    sh(&format!(
        "install -m 0644 {} {}",
        staged.display(),
        app.display()
    ));
    controller.expect_drift(
        "web-1",
        &[("file:/etc/app.conf", "sha256", &want, &sha("a=5\n"))],
    );
    fs::write(&staged, "a=1\n").expect("stage");
    sh(&format!(
        "install -m 0644 {} {}",
        staged.display(),
        app.display()
    ));
    controller.expect_drift("web-1", &[]);

    // Backup by rename, then a new file, as vim does (`backupcopy=no`): never reported absent.
    let backup = web.join("etc/app.conf~");
    sh(&format!(
        "mv {app} {bak} && printf 'a=6\\n' > {app} && chmod 0644 {app}",
        app = app.display(),
        bak = backup.display()
    ));
    controller.expect_drift(
        "web-1",
        &[("file:/etc/app.conf", "sha256", &want, &sha("a=6\n"))],
    );
    sh(&format!(
        "mv {app} {bak} && printf 'a=1\\n' > {app} && chmod 0644 {app}",
        app = app.display(),
        bak = backup.display()
    ));
    controller.expect_drift("web-1", &[]);

    // Delete, then recreate.
    fs::remove_file(&app).expect("rm");
    controller.expect_drift(
        "web-1",
        &[("file:/etc/app.conf", "present", "present", "absent")],
    );
    write(&web, "etc/app.conf", "a=1\n");
    chmod(&web, "etc/app.conf", 0o644);
    controller.expect_drift("web-1", &[]);

    // chmod.
    chmod(&web, "etc/app.conf", 0o600);
    controller.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    chmod(&web, "etc/app.conf", 0o644);
    controller.expect_drift("web-1", &[]);

    // chown (needs root; CI runs as root).
    if plumb_tests::have_or_skip(is_root(), "root (for the chown step)") {
        std::os::unix::fs::chown(&app, Some(4242), None).expect("chown");
        controller.expect_drift(
            "web-1",
            &[("file:/etc/app.conf", "owner", "tester", "other")],
        );
        std::os::unix::fs::chown(&app, Some(uid), None).expect("chown back");
        controller.expect_drift("web-1", &[]);
    }

    // Symlink retarget with the real `ln -sfn`.
    sh(&format!(
        "ln -sfn /opt/r2 {}",
        web.join("etc/current").display()
    ));
    controller.expect_drift(
        "web-1",
        &[("file:/etc/current", "target", "/opt/r1", "/opt/r2")],
    );
    sh(&format!(
        "ln -sfn /opt/r1 {}",
        web.join("etc/current").display()
    ));
    controller.expect_drift("web-1", &[]);

    // A new entry in an exclusive directory.
    write(&web, "etc/conf.d/rogue.conf", "x");
    controller.expect_drift(
        "web-1",
        &[(
            "file:/etc/conf.d/rogue.conf",
            "undeclared",
            "absent (exclusive directory /etc/conf.d)",
            "present",
        )],
    );
    fs::remove_file(web.join("etc/conf.d/rogue.conf")).expect("rm");
    controller.expect_drift("web-1", &[]);

    // A required line removed, a forbidden one added.
    let sshd = web.join("etc/ssh/sshd_config");
    sh(&format!(
        "sed -i '/PermitRootLogin no/d' {}",
        sshd.display()
    ));
    controller.expect_drift(
        "web-1",
        &[(
            "file:/etc/ssh/sshd_config",
            "contains:PermitRootLogin no",
            "present",
            "absent",
        )],
    );
    sh(&format!(
        "echo 'PermitRootLogin no' >> {0} && echo 'X11Forwarding yes' >> {0}",
        sshd.display()
    ));
    controller.expect_drift(
        "web-1",
        &[(
            "file:/etc/ssh/sshd_config",
            "contains:!X11Forwarding yes",
            "absent",
            "present",
        )],
    );
    sh(&format!("sed -i '/X11Forwarding/d' {}", sshd.display()));
    controller.expect_drift("web-1", &[]);

    // A touch changes nothing declared: no drift, no event. The sentinel change after it is
    // seen only once everything before it was processed.
    let before = events_for(
        &history(&controller, "web-1"),
        "file:/etc/app.conf",
        "sha256",
    )
    .len();
    sh(&format!("touch -d '2001-01-01 00:00' {}", app.display()));
    write(&web, "etc/sentinel", "");
    controller.expect_drift(
        "web-1",
        &[("file:/etc/sentinel", "present", "absent", "file")],
    );
    fs::remove_file(web.join("etc/sentinel")).expect("rm");
    controller.expect_drift("web-1", &[]);
    let events = history(&controller, "web-1");
    assert_eq!(
        events_for(&events, "file:/etc/app.conf", "sha256").len(),
        before,
        "a touch is not drift"
    );

    // History: each change opened and resolved, oldest first.
    assert_eq!(
        events_for(&events, "file:/etc/app.conf", "sha256"),
        ["opened", "resolved"].repeat(5),
        "in-place write, rename-save, sed -i, install, backup and rewrite"
    );
    for (resource, attribute) in [
        ("file:/etc/app.conf", "present"),
        ("file:/etc/app.conf", "mode"),
        ("file:/etc/current", "target"),
        ("file:/etc/conf.d/rogue.conf", "undeclared"),
        ("file:/etc/ssh/sshd_config", "contains:PermitRootLogin no"),
        ("file:/etc/sentinel", "present"),
    ] {
        assert_eq!(
            events_for(&events, resource, attribute),
            ["opened", "resolved"],
            "{resource} {attribute}"
        );
    }
    let opened = events
        .iter()
        .find(|e| e["attribute"] == "mode" && e["event"] == "opened")
        .expect("mode opened");
    assert_eq!(
        opened["declared_at"],
        format!("{}:4", manifests.join("web.yaml").display())
    );
    assert_eq!(opened["expected"], "0644");
    assert_eq!(opened["actual"], "0600");
    assert!(
        opened["at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "RFC 3339 time: {opened}"
    );
    // db-1 saw none of it.
    assert!(
        history(&controller, "db-1")
            .iter()
            .all(|e| e["event"] == "host_online")
    );

    // Leave one drift open, kill -9 the controller, restart it on the same data directory.
    chmod(&web, "etc/app.conf", 0o600);
    let drifted =
        controller.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    let since = drifted["drift"][0]["since"].clone();
    let history_before = history(&controller, "web-1");
    let addr = controller.url.trim_start_matches("http://").to_owned();
    controller.proc.signal("KILL");
    controller.proc.wait();
    drop(controller);

    let controller = Controller::start_on(&manifests, &data, &addr);
    let history_after = history(&controller, "web-1");
    // Most recent first: what was there before the kill is the tail of what is there now.
    assert!(
        history_after.ends_with(&history_before),
        "every event from before the kill is still there"
    );
    // The agents reconnect on their own; the drift is re-established with its original time.
    let again = controller.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert_eq!(
        again["drift"][0]["since"], since,
        "the drift is the same one, not a new one"
    );
    controller.expect_drift("db-1", &[]);
    chmod(&web, "etc/app.conf", 0o644);
    controller.expect_drift("web-1", &[]);
    let events = history(&controller, "web-1");
    assert_eq!(
        events_for(&events, "file:/etc/app.conf", "mode"),
        ["opened", "resolved", "opened", "resolved"]
    );
}

/// A plan of 600 files is more than one snapshot part (the agent sends 256 paths a message):
/// a file changed before the agent starts is reported in the first part, the middle one and
/// the last, each exactly once, and nothing else; reverting them brings the host back in sync.
#[test]
fn a_plan_larger_than_a_snapshot_part_is_observed_and_evaluated_whole() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    let mut yaml = String::from("name: many\nhosts: [\"*\"]\nfiles:\n");
    for i in 0..600 {
        yaml.push_str(&format!("  /etc/many/f{i:04}:\n    content: \"{i}\\n\"\n"));
    }
    fs::write(manifests.join("many.yaml"), yaml).expect("write");
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc/many")).expect("mkdir");
    let changed = [0, 300, 599];
    for i in 0..600 {
        let content = if changed.contains(&i) {
            "changed\n".to_string()
        } else {
            format!("{i}\n")
        };
        write(&root, &format!("etc/many/f{i:04}"), &content);
    }
    let c = Controller::start(&manifests, &tmp.path().join("data"));
    let _agent = start_agent(&c.url, "h1", &root, &[]);
    let resources: Vec<(String, String)> = changed
        .iter()
        .map(|i| {
            (
                format!("file:/etc/many/f{i:04}"),
                sha256(format!("{i}\n").as_bytes()),
            )
        })
        .collect();
    let actual = sha256(b"changed\n");
    let want: Vec<(&str, &str, &str, &str)> = resources
        .iter()
        .map(|(r, declared)| (r.as_str(), "sha256", declared.as_str(), actual.as_str()))
        .collect();
    c.expect_drift("h1", &want);
    let kinds = c.event_kinds("h1");
    assert_eq!(
        kinds.iter().filter(|k| *k == "opened").count(),
        3,
        "one opened event per changed file: {kinds:?}"
    );
    for i in changed {
        write(&root, &format!("etc/many/f{i:04}"), &format!("{i}\n"));
    }
    c.expect_drift("h1", &[]);
}
