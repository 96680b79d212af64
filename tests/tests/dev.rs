//! `plumb dev`, the one-command demo: starts in sync, shows drift when a demo file is edited,
//! and cleans up after itself on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use plumb_tests::{DEADLINE, bin, wait_for};
use serde_json::Value;

#[test]
fn dev_starts_in_sync_and_shows_an_edit_as_drift() {
    let mut dev = Command::new(bin("plumb"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn plumb dev");
    let mut lines = BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let (mut url, mut root, mut console) = (None, None, None);
    let start = Instant::now();
    while url.is_none() || root.is_none() || console.is_none() {
        assert!(start.elapsed() < DEADLINE, "banner incomplete");
        let line = lines.next().expect("banner line").expect("utf-8");
        if let Some(rest) = line.strip_prefix("plumb dev: controller on ") {
            url = rest.split(',').next().map(str::to_owned);
        }
        if let Some(rest) = line.trim_start().strip_prefix("demo host files") {
            root = rest.split_whitespace().next().map(PathBuf::from);
        }
        if let Some(rest) = line.trim_start().strip_prefix("web console") {
            console = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let (url, root) = (url.expect("url"), root.expect("root"));
    // The console is on, on loopback, for the local user.
    let console: std::net::SocketAddr = console
        .as_deref()
        .and_then(|c| c.strip_prefix("http://"))
        .and_then(|c| c.trim_end_matches('/').parse().ok())
        .expect("the console's URL in the banner");
    assert!(console.ip().is_loopback());
    let page = plumb_tests::browser::http(console, "GET", "/", &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("local · admin"), "{}", page.body);
    let drift = || -> Value {
        let out = Command::new(bin("plumb"))
            .args(["drift", "-o", "json", "--controller", &url])
            .output()
            .expect("run");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };

    // The demo tree agrees with the built-in example manifests.
    wait_for("the local host to be in sync", || {
        (drift()["hosts"][0]["status"] == "in_sync").then_some(())
    });

    std::fs::write(root.join("etc/motd"), "Welcome!\n").expect("edit a demo file");
    let item = wait_for("drift on /etc/motd", || {
        let v = drift();
        let d = v["hosts"][0]["drift"][0].clone();
        (d["resource"] == "file:/etc/motd").then_some(d)
    });
    assert_eq!(item["attribute"], "sha256");

    let status = Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = wait_for("plumb dev to exit", || dev.try_wait().ok().flatten());
    assert_eq!(code.code(), Some(0), "SIGTERM is a clean exit");
    assert!(!root.exists(), "the temp dir is removed");
}
