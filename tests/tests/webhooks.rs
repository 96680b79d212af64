//! End to end: drift events reach webhooks (plumb's JSON and Slack's form) on a real local
//! HTTP server, retried with backoff after failures, given up at once on a 4xx, and never
//! held up by an endpoint that does not answer; each with the event log's signed head.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;

use plumb_tests::hooks::HookServer;
use plumb_tests::{Controller, scrape, start_agent, wait_for, write_tree};
use serde_json::Value;

#[test]
fn drift_events_reach_webhooks_with_retries_and_a_stuck_endpoint_holds_nothing_up() {
    let server = HookServer::start();
    // Accepts connections and never answers.
    let black_hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang = format!(
        "http://127.0.0.1:{}/hang",
        black_hole.local_addr().expect("addr").port()
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(
        manifests.join("all.yaml"),
        "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n",
    )
    .expect("write");
    let config = tmp.path().join("controller.yaml");
    fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nmanifests: {}\ndata: {}\n\
             heartbeat_interval: 1s\nwebhooks:\n\
             - url: {hang}\n  timeout: 60s\n\
             - url: {}\n  backoff: 50ms\n  attempts: 5\n  headers: {{Authorization: Bearer t0ken}}\n\
             - url: {}\n  format: slack\n\
             - url: {}\n",
            manifests.display(),
            tmp.path().join("data").display(),
            server.url("/json"),
            server.url("/slack"),
            server.url("/gone"),
        ),
    )
    .expect("write");
    let c = Controller::start_config(&config, &manifests, &tmp.path().join("data"));
    let metrics = wait_for("the metrics address", || {
        c.proc
            .stderr()
            .lines()
            .find_map(|l| l.strip_prefix("plumb: metrics on http://"))
            .map(|r| r.trim_end_matches("/metrics").to_owned())
    });
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "hi\n")]);
    let _agent = start_agent(&c.url, "h1", &root, &[]);
    wait_for("h1 in sync", || {
        let hosts = c.json(&["hosts"]);
        (hosts["hosts"][0]["status"] == "in_sync").then_some(())
    });

    fs::write(root.join("etc/motd"), "changed\n").expect("write");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"changed\n");
    fs::write(root.join("etc/motd"), "hi\n").expect("write");

    // plumb's JSON: the opened event three times (503, 503, then accepted), then resolved.
    let json = wait_for("both events delivered to /json", || {
        let got = server.at("/json");
        (got.iter().filter(|r| r.status == 200).count() == 2).then_some(got)
    });
    let kinds: Vec<(&str, u16)> = json
        .iter()
        .map(|r| (r.body["event"].as_str().unwrap_or("?"), r.status))
        .collect();
    assert_eq!(
        kinds,
        [
            ("opened", 503),
            ("opened", 503),
            ("opened", 200),
            ("resolved", 200)
        ]
    );
    let opened = &json[2];
    assert_eq!(
        opened.body["id"], json[0].body["id"],
        "a retry is the same event"
    );
    assert_eq!(opened.body["host"], "h1");
    assert_eq!(opened.body["resource"], "file:/etc/motd");
    assert_eq!(
        opened.body["declared_at"],
        format!("{}:4", c.manifests.join("all.yaml").display())
    );
    assert_eq!(opened.headers["authorization"], "Bearer t0ken");
    assert_eq!(opened.headers["content-type"], "application/json");
    assert!(opened.headers["user-agent"].starts_with("plumb/"));
    // The same events, in the same order, as the event log has them.
    let history = c.json(&["history", "h1"]);
    let logged: Vec<&Value> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == "opened" || e["event"] == "resolved")
        .collect();
    let ids: Vec<&Value> = logged.iter().rev().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&json[2].body["id"], &json[3].body["id"]]);
    // Each carries the log's head once it was stored: copies outside the store, signed, that
    // `plumb audit verify --head` holds the log to.
    let public = fs::read_to_string(c.data.join("audit.key.pub")).expect("the public key");
    let mut heads = Vec::new();
    for r in &json[2..] {
        let head = &r.body["audit_head"];
        assert!(
            head["entry"].as_i64() >= r.body["id"].as_i64(),
            "the head includes the event: {}",
            r.body
        );
        assert_eq!(head["public_key"].as_str(), Some(public.trim()));
        assert!(!head["signature"].as_str().unwrap_or("").is_empty());
        heads.push(format!(
            "{}:{}",
            head["entry"],
            head["hash"].as_str().expect("a hash")
        ));
    }
    let verify = std::process::Command::new(plumb_tests::bin("plumb"))
        .args(["audit", "verify", "-o", "json", "--data"])
        .arg(&c.data)
        .args([
            "--public-key",
            public.trim(),
            "--head",
            &heads[0],
            "--head",
            &heads[1],
        ])
        .output()
        .expect("run plumb audit verify");
    let v: Value = serde_json::from_slice(&verify.stdout).expect("JSON");
    assert_eq!(
        (verify.status.code(), &v["intact"]),
        (Some(0), &true.into()),
        "{v}"
    );

    // Slack's form.
    let slack = wait_for("both events delivered to /slack", || {
        let got = server.at("/slack");
        (got.len() == 2).then_some(got)
    });
    let text = |i: usize| slack[i].body["text"].as_str().unwrap_or("").to_owned();
    assert!(
        text(0).starts_with(":warning: drift opened on *h1*: `file:/etc/motd`"),
        "{}",
        text(0)
    );
    assert!(
        text(1).starts_with(":white_check_mark: drift resolved on *h1*"),
        "{}",
        text(1)
    );

    // A 404 is not retried: one attempt per event.
    let gone = wait_for("both events offered to /gone", || {
        let got = server.at("/gone");
        (got.len() == 2).then_some(got)
    });
    assert_eq!(gone[0].body["event"], "opened");
    assert_eq!(gone[1].body["event"], "resolved");

    // All of that happened while the first webhook has not answered at all.
    // The counters follow the answers (they are counted once each answer is read).
    let counts = |m: &BTreeMap<String, f64>| {
        let n = |hook: u32, result: &str| {
            m[&format!("plumb_webhook_events_total{{webhook=\"{hook}\",result=\"{result}\"}}")]
        };
        [
            n(0, "delivered"),
            n(1, "delivered"),
            n(1, "retried"),
            n(2, "delivered"),
            n(3, "delivered"),
            n(3, "failed"),
        ]
    };
    let want = [0.0, 2.0, 2.0, 2.0, 0.0, 2.0];
    wait_for("webhook counters in /metrics", || {
        (counts(&scrape(&metrics)) == want).then_some(())
    });
    drop(black_hole);
}
