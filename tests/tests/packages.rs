//! End to end: an agent on a synthetic root whose dpkg database changes (install, upgrade,
//! downgrade, removal, a transaction in progress) shows the right package drift and resolves it.

use std::fs;
use std::path::Path;

use std::process::Command;

use plumb_tests::{Controller, bin, md5, start_agent_with, wait_for};

const MANIFEST: &str = r#"name: pkgs
hosts: ["*"]
packages:
  openssh-server: ">= 1:9.2p1"
  nginx: ">= 1.22"
  telnet: absent
"#;

fn stanza(name: &str, status: &str, version: &str) -> String {
    format!(
        "Package: {name}\nStatus: install ok {status}\nArchitecture: amd64\nVersion: {version}\nDescription: test\n continued\n\n"
    )
}

/// Replaces the status file the way dpkg does: write a new one, rename it over.
fn set_status(root: &Path, stanzas: &[String]) {
    let dir = root.join("var/lib/dpkg");
    fs::write(dir.join("status-new"), stanzas.concat()).expect("write");
    fs::rename(dir.join("status-new"), dir.join("status")).expect("rename");
}

#[test]
fn dpkg_database_changes_show_as_package_drift() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("pkgs.yaml"), MANIFEST).expect("write");
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("var/lib/dpkg/updates")).expect("mkdir");
    let ssh = |v: &str| stanza("openssh-server", "installed", v);
    let nginx = stanza("nginx", "installed", "1.22.1-9");
    set_status(&root, &[ssh("1:9.2p1-2"), nginx.clone()]);

    let c = Controller::start(&manifests, &tmp.path().join("data"));
    let mut cmd = Command::new(bin("plumb-agent"));
    cmd.env("RUST_LOG", "info,plumb_agent::session=debug");
    let agent = start_agent_with(cmd, &c.url, "h1", &root, &[]);
    c.expect_drift("h1", &[]);

    // Downgrade below the constraint.
    set_status(&root, &[ssh("1:9.0p1-1"), nginx.clone()]);
    c.expect_drift(
        "h1",
        &[(
            "package:openssh-server",
            "version",
            ">= 1:9.2p1",
            "1:9.0p1-1",
        )],
    );
    // Upgrade back above it.
    set_status(&root, &[ssh("1:9.3p1-1"), nginx.clone()]);
    c.expect_drift("h1", &[]);

    // A forbidden package installed, then removed (config files left: not installed).
    set_status(
        &root,
        &[
            ssh("1:9.3p1-1"),
            nginx.clone(),
            stanza("telnet", "installed", "0.17+2.4-2"),
        ],
    );
    c.expect_drift(
        "h1",
        &[("package:telnet", "version", "absent", "0.17+2.4-2")],
    );
    let telnet_removed = "Package: telnet\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 0.17+2.4-2\n\n".to_string();
    set_status(&root, &[ssh("1:9.3p1-1"), nginx.clone(), telnet_removed]);
    c.expect_drift("h1", &[]);

    // A required package removed, then installed again.
    set_status(&root, &[ssh("1:9.3p1-1")]);
    c.expect_drift("h1", &[("package:nginx", "version", ">= 1.22", "absent")]);
    set_status(&root, &[ssh("1:9.3p1-1"), nginx.clone()]);
    c.expect_drift("h1", &[]);

    // dpkg mid-upgrade: its journal says nginx is half-configured. That is neither absent nor
    // a finished install: the agent waits (it logs so), and nothing is reported until dpkg is done.
    let updates = root.join("var/lib/dpkg/updates");
    fs::write(
        updates.join("0000"),
        stanza("nginx", "half-configured", "1.24.0-1"),
    )
    .expect("journal");
    wait_for("the agent to see the transaction", || {
        agent
            .stderr()
            .contains("in transition: nginx (half-configured)")
            .then_some(())
    });
    fs::write(
        updates.join("0001"),
        stanza("nginx", "installed", "1.24.0-1"),
    )
    .expect("journal");
    // dpkg folds the journal into status when it finishes.
    set_status(
        &root,
        &[ssh("1:9.3p1-1"), stanza("nginx", "installed", "1.24.0-1")],
    );
    fs::remove_file(updates.join("0000")).expect("rm");
    fs::remove_file(updates.join("0001")).expect("rm");
    c.expect_drift("h1", &[]);

    let history = c.json(&["history", "h1"]);
    let kinds: Vec<(String, String)> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("package:"))
        })
        .map(|e| {
            (
                e["resource"].as_str().unwrap_or_default().to_owned(),
                e["event"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .rev()
        .collect();
    let want: Vec<(String, String)> = [
        ("package:openssh-server", "opened"),
        ("package:openssh-server", "resolved"),
        ("package:telnet", "opened"),
        ("package:telnet", "resolved"),
        ("package:nginx", "opened"),
        ("package:nginx", "resolved"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(
        kinds, want,
        "no false absent while the transaction was in progress"
    );
}

/// A verification that outlasts three heartbeat intervals keeps its stream: the agent reads at
/// 16 KiB/s (`--scan-rate`), so a package's 160 KiB file takes 8 s, and the controller expects
/// a heartbeat every second. The agent says it is alive while it works; the host is evaluated
/// on its first stream, never shown offline.
#[test]
fn a_verification_longer_than_three_heartbeats_keeps_the_stream() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(
        manifests.join("pkgs.yaml"),
        "name: pkgs\nhosts: [\"*\"]\npackages:\n  slowpkg: {version: present, verify_files: true}\n",
    )
    .expect("write");
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("var/lib/dpkg/info")).expect("mkdir");
    fs::create_dir_all(root.join("usr/share/slowpkg")).expect("mkdir");
    let data: Vec<u8> = (0..160 * 1024).map(|i| (i % 251) as u8).collect();
    fs::write(root.join("usr/share/slowpkg/data"), &data).expect("data");
    fs::write(
        root.join("var/lib/dpkg/info/slowpkg.md5sums"),
        format!("{}  usr/share/slowpkg/data\n", md5(&data)),
    )
    .expect("md5sums");
    set_status(&root, &[stanza("slowpkg", "installed", "1.0-1")]);

    let c = Controller::start(&manifests, &tmp.path().join("data"));
    let agent = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "h1",
        &root,
        &["--scan-rate", "16K"],
    );
    c.expect_drift("h1", &[]);
    assert!(
        !agent.stderr().contains("lost the controller"),
        "{}",
        agent.stderr()
    );
    let kinds = c.event_kinds("h1");
    assert!(!kinds.iter().any(|k| k == "host_offline"), "{kinds:?}");
}
