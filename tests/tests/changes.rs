//! End to end, with the real binaries: change windows. Drift inside an open window whose scope
//! covers it is authorised (with the ticket), any other unauthorised; `plumb drift` can show
//! and fail on unauthorised drift only; closing a window with drift it authorised still open
//! records a `change_ended` that says so, and sends it to webhooks; a webhook can hear
//! unauthorised drift only.

use std::fs;

use plumb_tests::hooks::HookServer;
use plumb_tests::{Controller, start_agent, wait_for, write_tree};
use serde_json::Value;

const MANIFEST: &str = r#"name: web
hosts: ["h*"]
files:
  /etc/nginx/nginx.conf:
    content: "worker_processes 1;\n"
  /etc/motd:
    content: "hi\n"
"#;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The open drift item on `resource`, once it is there.
fn item(c: &Controller, resource: &str) -> Value {
    wait_for(&format!("drift on {resource}"), || {
        c.host_drift("h1")?["drift"]
            .as_array()?
            .iter()
            .find(|d| d["resource"] == resource)
            .cloned()
    })
}

#[test]
fn drift_inside_an_open_window_is_authorised_and_its_end_says_what_is_left() {
    let server = HookServer::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("web.yaml"), MANIFEST).expect("write");
    let data = tmp.path().join("data");
    let config = tmp.path().join("controller.yaml");
    fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nmanifests: {}\ndata: {}\nheartbeat_interval: 1s\nwebhooks:\n\
             - url: {}\n\
             - url: {}\n  unauthorised_only: true\n",
            manifests.display(),
            data.display(),
            server.url("/all"),
            server.url("/unauthorised"),
        ),
    )
    .expect("write");
    let c = Controller::start_config(&config, &manifests, &data);
    let root = tmp.path().join("root");
    write_tree(
        &root,
        &[
            ("etc/nginx/nginx.conf", "worker_processes 1;\n"),
            ("etc/motd", "hi\n"),
        ],
    );
    let _agent = start_agent(&c.url, "h1", &root, &["role=web"]);
    c.expect_drift("h1", &[]);

    let open = c.plumb(&[
        "change",
        "open",
        "CHG-1234",
        "--hosts",
        "h*",
        "--label",
        "role=web",
        "--paths",
        "/etc/nginx/**",
        "--for",
        "1h",
        "--reason",
        "nginx rollout",
    ]);
    assert_eq!(code(&open), 0, "{}", String::from_utf8_lossy(&open.stderr));
    assert!(
        String::from_utf8_lossy(&open.stderr)
            .contains("opened change CHG-1234 (hosts h*; labels role=web; paths /etc/nginx/**)"),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );
    let twice = c.plumb(&["change", "open", "CHG-1234", "--for", "1h", "--reason", "x"]);
    assert_eq!(code(&twice), 1);
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("change CHG-1234 exists already"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
    let listed = c.json(&["change", "list"]);
    assert_eq!(listed["changes"][0]["ticket"], "CHG-1234", "{listed:#}");
    assert_eq!(listed["changes"][0]["opened_by"], "local");
    assert_eq!(listed["changes"][0]["paths"][0], "/etc/nginx/**");

    // Inside the window's scope: authorised.
    fs::write(root.join("etc/nginx/nginx.conf"), "worker_processes 4;\n").expect("write");
    let nginx = item(&c, "file:/etc/nginx/nginx.conf");
    assert_eq!(
        (&nginx["authorised"], &nginx["change"]),
        (&Value::from(true), &Value::from("CHG-1234")),
        "{nginx:#}"
    );
    assert_eq!(code(&c.plumb(&["drift"])), 2, "drift is drift");
    assert_eq!(
        code(&c.plumb(&["drift", "--fail-on", "unauthorised"])),
        0,
        "authorised drift is expected"
    );
    let table = String::from_utf8_lossy(&c.plumb(&["drift", "h1"]).stdout).into_owned();
    assert!(
        table.contains("CHANGE") && table.contains("CHG-1234"),
        "{table}"
    );

    // Outside it: unauthorised.
    fs::write(root.join("etc/motd"), "sneaky\n").expect("write");
    let motd = item(&c, "file:/etc/motd");
    assert_eq!(
        (&motd["authorised"], &motd["change"]),
        (&Value::from(false), &Value::Null),
        "{motd:#}"
    );
    assert_eq!(code(&c.plumb(&["drift", "--fail-on", "unauthorised"])), 2);
    let only = c.json(&["drift", "--unauthorised"]);
    let resources: Vec<&str> = only["hosts"][0]["drift"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["resource"].as_str())
        .collect();
    assert_eq!(resources, ["file:/etc/motd"], "{only:#}");

    // Closed early with the nginx drift still open: said in the log and to the webhooks.
    let close = c.plumb(&["change", "close", "CHG-1234"]);
    assert_eq!(
        code(&close),
        0,
        "{}",
        String::from_utf8_lossy(&close.stderr)
    );
    let ended = wait_for("change_ended in the log", || {
        let history = c.json(&["history", "--limit", "100"]);
        history["events"]
            .as_array()?
            .iter()
            .find(|e| e["event"] == "change_ended")
            .cloned()
    });
    assert_eq!(ended["resource"], "change:CHG-1234");
    assert_eq!(
        ended["actual"],
        "change CHG-1234 ended with 1 item still drifted: update the manifests or revert (h1 file:/etc/nginx/nginx.conf)"
    );
    let kinds = |path: &str| -> Vec<(String, String)> {
        server
            .at(path)
            .iter()
            .map(|r| {
                (
                    r.body["event"].as_str().unwrap_or("?").to_owned(),
                    r.body["resource"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let all = wait_for("three events at /all", || {
        let k = kinds("/all");
        (k.len() >= 3).then_some(k)
    });
    assert_eq!(
        all,
        [
            ("opened".to_owned(), "file:/etc/nginx/nginx.conf".to_owned()),
            ("opened".to_owned(), "file:/etc/motd".to_owned()),
            ("change_ended".to_owned(), "change:CHG-1234".to_owned()),
        ]
    );
    let unauthorised = wait_for("two events at /unauthorised", || {
        let k = kinds("/unauthorised");
        (k.len() >= 2).then_some(k)
    });
    assert_eq!(
        unauthorised,
        [
            ("opened".to_owned(), "file:/etc/motd".to_owned()),
            ("change_ended".to_owned(), "change:CHG-1234".to_owned()),
        ],
        "no authorised drift"
    );
    // Over: no longer listed as open; with --all, as closed.
    let listed = c.plumb(&["change", "list"]);
    assert!(
        String::from_utf8_lossy(&listed.stderr).contains("no change windows open or to come"),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let all = String::from_utf8_lossy(&c.plumb(&["change", "list", "--all"]).stdout).into_owned();
    assert!(
        all.contains("CHG-1234") && all.contains("closed by local"),
        "{all}"
    );
    // A change after the window: unauthorised.
    fs::write(root.join("etc/nginx/nginx.conf"), "worker_processes 8;\n").expect("write");
    wait_for("nginx.conf changed again, unauthorised", || {
        let d = item(&c, "file:/etc/nginx/nginx.conf");
        (d["authorised"] == false).then_some(())
    });
}
