//! Mutual TLS over loopback with certificates from `plumb certs`: who may report, who may read.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use plumb_tests::{Controller, bin, start_agent_with, wait_for, write_tree};

fn plumb(args: &[&str]) -> Output {
    Command::new(bin("plumb"))
        .args(args)
        .env_remove("PLUMB_CONTROLLER")
        .output()
        .expect("run plumb")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA with a controller certificate for 127.0.0.1, agents web-1 and web-2, and operators
/// alice (admin), vic (viewer), oscar (operator), ann (auditor), and sam (admin of the hosts
/// labelled role=web only).
fn pki(dir: &Path) -> PathBuf {
    let d = dir.to_str().expect("utf-8 path");
    let out = ok(plumb(&["certs", "init", "--dir", d]));
    assert!(
        out.contains("ca.pem") && out.contains("ca-key.pem"),
        "{out}"
    );
    ok(plumb(&[
        "certs",
        "issue",
        "controller",
        "127.0.0.1",
        "localhost",
        "--dir",
        d,
    ]));
    for (kind, name, role) in [
        ("agent", "web-1", None),
        ("agent", "web-2", None),
        ("operator", "alice", Some("admin")),
        ("operator", "vic", Some("viewer")),
        ("operator", "oscar", Some("operator")),
        ("operator", "ann", Some("auditor")),
        ("operator", "sam", Some("admin")),
    ] {
        let mut args = vec!["certs", "issue", kind, name, "--dir", d];
        args.extend(role.iter().flat_map(|r| ["--role", r]));
        if name == "sam" {
            // Only the hosts labelled role=web.
            args.extend(["--label", "role=web"]);
        }
        let out = ok(plumb(&args));
        assert!(
            out.contains(&format!("{kind}-{name}.pem")) && out.contains("mode 0600"),
            "{out}"
        );
    }
    dir.to_path_buf()
}

fn agent_tls(pki: &Path, name: &str) -> Vec<String> {
    let p = |f: &str| pki.join(f).display().to_string();
    vec![
        "--ca".into(),
        p("ca.pem"),
        "--cert".into(),
        p(&format!("agent-{name}.pem")),
        "--key".into(),
        p(&format!("agent-{name}-key.pem")),
    ]
}

#[test]
fn mutual_tls_identities_and_who_may_do_what() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let pki = pki(&tmp.path().join("pki"));
    for entry in fs::read_dir(&pki).expect("pki dir") {
        let mode = entry
            .expect("entry")
            .metadata()
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "every certificate and key is written 0600");
    }
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(
        m.join("m.yaml"),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n",
    )
    .expect("write");
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "hi\n")]);
    let c = Controller::start_tls(&m, &tmp.path().join("data"), &pki, "alice");
    assert!(c.url.starts_with("https://"));

    // An agent with its own certificate reports; the operator reads the fleet.
    let args = agent_tls(&pki, "web-1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _web1 = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "web-1",
        &root,
        &args,
    );
    c.expect_drift("web-1", &[]);

    // A second agent, with its own (valid) certificate, claiming web-1's host id: refused.
    let impostor_root = tmp.path().join("impostor");
    write_tree(&impostor_root, &[("etc/motd", "owned\n")]);
    let args = agent_tls(&pki, "web-2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let impostor = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "web-1",
        &impostor_root,
        &args,
    );
    wait_for("the controller to refuse the impostor", || {
        c.proc
            .stderr()
            .contains("refused an agent: its certificate is not for the host it claims")
            .then_some(())
    });
    wait_for("the impostor to be told", || {
        impostor
            .stderr()
            .contains("may not report for host")
            .then_some(())
    });
    c.expect_drift("web-1", &[]);

    let p = |f: &str| pki.join(f).display().to_string();
    let query = |env: &[(&str, String)]| {
        Command::new(bin("plumb"))
            .args(["hosts", "-o", "json", "--controller", &c.url])
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .output()
            .expect("run")
    };
    // No client certificate.
    let out = query(&[("PLUMB_CA", p("ca.pem"))]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    // An agent certificate cannot read the fleet.
    let out = query(&[
        ("PLUMB_CA", p("ca.pem")),
        ("PLUMB_CERT", p("agent-web-1.pem")),
        ("PLUMB_KEY", p("agent-web-1-key.pem")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("only operator certificates may query the fleet")
    );
    // An operator certificate from another CA.
    let other = tmp.path().join("other-pki");
    let o = other.to_str().expect("utf-8");
    ok(plumb(&["certs", "init", "--dir", o]));
    ok(plumb(&[
        "certs", "issue", "operator", "eve", "--role", "admin", "--dir", o,
    ]));
    let out = query(&[
        ("PLUMB_CA", p("ca.pem")),
        (
            "PLUMB_CERT",
            other.join("operator-eve.pem").display().to_string(),
        ),
        (
            "PLUMB_KEY",
            other.join("operator-eve-key.pem").display().to_string(),
        ),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "another CA's operator is refused"
    );
    // An expired operator certificate (valid from yesterday until the start of today).
    let today = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%F"])
            .output()
            .expect("date")
            .stdout,
    )
    .expect("utf-8");
    let d = pki.to_str().expect("utf-8");
    ok(plumb(&[
        "certs",
        "issue",
        "operator",
        "old",
        "--role",
        "admin",
        "--dir",
        d,
        "--not-after",
        today.trim(),
    ]));
    let out = query(&[
        ("PLUMB_CA", p("ca.pem")),
        ("PLUMB_CERT", p("operator-old.pem")),
        ("PLUMB_KEY", p("operator-old-key.pem")),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an expired certificate is refused"
    );
    // The operator reads the fleet: web-1 only.
    let v: serde_json::Value =
        serde_json::from_slice(&c.plumb(&["hosts", "-o", "json"]).stdout).expect("json");
    let hosts: Vec<&str> = v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h["host"].as_str())
        .collect();
    assert_eq!(hosts, ["web-1"]);

    // A change window opened by the operator carries the operator's name; an agent's
    // certificate may not open one.
    let opened = c.json(&[
        "change",
        "open",
        "CHG-7",
        "--for",
        "1h",
        "--reason",
        "maintenance",
    ]);
    assert_eq!(opened["opened_by"], "alice", "{opened:#}");
    let out = Command::new(bin("plumb"))
        .args([
            "change",
            "open",
            "CHG-8",
            "--for",
            "1h",
            "--reason",
            "x",
            "--controller",
            &c.url,
        ])
        .envs([
            ("PLUMB_CA", p("ca.pem")),
            ("PLUMB_CERT", p("agent-web-1.pem")),
            ("PLUMB_KEY", p("agent-web-1-key.pem")),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("only operator certificates may open or close change windows"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each role does what it may and is refused the rest, saying which role would do; reads of
/// content and of the log are entries of the log, naming who read.
#[test]
fn roles_decide_who_may_do_what_and_reads_are_recorded() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let pki = pki(&tmp.path().join("pki"));
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(
        m.join("m.yaml"),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n    diff: true\n",
    )
    .expect("write");
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "changed\n")]);
    let c = Controller::start_tls(&m, &tmp.path().join("data"), &pki, "alice");
    let args = agent_tls(&pki, "web-1");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--label=role=web");
    let _web1 = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "web-1",
        &root,
        &args,
    );
    c.expect_content_drift("web-1", "/etc/motd", b"hi\n", b"changed\n");

    let p = |f: &str| pki.join(f).display().to_string();
    let as_ = |who: &str, args: &[&str]| {
        Command::new(bin("plumb"))
            .args(args)
            .args(["--controller", &c.url])
            .env("PLUMB_CA", p("ca.pem"))
            .env("PLUMB_CERT", p(&format!("operator-{who}.pem")))
            .env("PLUMB_KEY", p(&format!("operator-{who}-key.pem")))
            .output()
            .expect("run plumb")
    };
    let refused = |out: Output, says: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(says), "wanted {says:?} in: {err}");
    };
    let ack = [
        "ack",
        "web-1",
        "file:/etc/motd",
        "--reason",
        "known, ticket OPS-1",
    ];

    // A viewer reads the fleet, and nothing else.
    let hosts = ok(as_("vic", &["hosts", "-o", "json"]));
    assert!(hosts.contains("\"drifted\""), "{hosts}");
    refused(
        as_("vic", &ack),
        "vic (viewer) may not acknowledge drift or revoke an acknowledgement: that needs the operator or admin role",
    );
    refused(
        as_("vic", &["history"]),
        "vic (viewer) may not read the event log: that needs the operator, auditor or admin role",
    );
    refused(
        as_("vic", &["diff", "web-1", "/etc/motd"]),
        "may not read file content (diff): that needs the operator or admin role",
    );
    // An auditor reads the log, never content, and acts on nothing.
    ok(as_("ann", &["history", "-o", "json"]));
    refused(
        as_("ann", &["diff", "web-1", "/etc/motd"]),
        "ann (auditor) may not read file content (diff): that needs the operator or admin role",
    );
    refused(as_("ann", &ack), "ann (auditor) may not acknowledge drift");
    // An operator diffs and acknowledges, but approves no change.
    let out = as_("oscar", &["diff", "web-1", "/etc/motd"]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the content differs: exit 2, as for drift"
    );
    assert!(diff.contains("-hi") && diff.contains("+changed"), "{diff}");
    ok(as_("oscar", &ack));
    refused(
        as_(
            "oscar",
            &["change", "open", "CHG-1", "--for", "1h", "--reason", "x"],
        ),
        "oscar (operator) may not open or close change windows: that needs the admin role",
    );
    ok(as_("oscar", &["ack", "revoke", "web-1", "file:/etc/motd"]));

    // The log names each read and each action with the person behind it.
    let history = c.json(&["history", "--limit", "50"]);
    let events = history["events"].as_array().expect("events");
    let entry = |kind: &str, expected: &str| {
        events.iter().find(|e| {
            e["event"] == kind && e["expected"].as_str().is_some_and(|x| x.contains(expected))
        })
    };
    let read = entry("content_read", "oscar (operator)").unwrap_or_else(|| panic!("{history:#}"));
    assert_eq!(read["host"], "", "the controller's own entry");
    assert_eq!(read["resource"], "web-1:/etc/motd");
    assert!(entry("log_read", "ann (auditor)").is_some(), "{history:#}");
    assert!(entry("acknowledged", "oscar").is_some(), "{history:#}");
    assert!(entry("ack_revoked", "oscar").is_some(), "{history:#}");
    assert!(
        entry("content_read", "ann").is_none() && entry("log_read", "vic").is_none(),
        "a refused read is not a read: {history:#}"
    );
    // A person limited to some hosts: the others do not exist for them.
    let root2 = tmp.path().join("root2");
    write_tree(&root2, &[("etc/motd", "hi\n")]);
    let args2 = agent_tls(&pki, "web-2");
    let mut args2: Vec<&str> = args2.iter().map(String::as_str).collect();
    args2.push("--label=role=db");
    let _web2 = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "web-2",
        &root2,
        &args2,
    );
    c.expect_drift("web-2", &[]);
    let hosts = ok(as_("sam", &["hosts", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&hosts).expect("json");
    let seen: Vec<&str> = v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h["host"].as_str())
        .collect();
    assert_eq!(seen, ["web-1"], "{v}");
    refused(
        as_("sam", &["drift", "web-2"]),
        "no host \"web-2\" is known to this controller",
    );
    refused(
        as_("sam", &["history", "web-2"]),
        "no host \"web-2\" is known to this controller",
    );
    let history: serde_json::Value =
        serde_json::from_str(&ok(as_("sam", &["history", "-o", "json"]))).expect("json");
    let hosts: std::collections::BTreeSet<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["host"].as_str())
        .collect();
    assert_eq!(
        hosts,
        ["web-1"].into(),
        "web-1's entries, neither web-2's nor the controller's own: {history:#}"
    );
    // A baseline group holding a host sam does not see: not shown to sam, and its state is
    // not sam's to accept (its majority depends on that host).
    fs::write(
        m.join("alike.yaml"),
        "name: alike\nhosts: [\"*\"]\nbaseline:\n  files:\n    - /etc/issue\n",
    )
    .expect("write");
    plumb_tests::wait_for("both hosts compared by alike", || {
        let v: serde_json::Value =
            serde_json::from_slice(&as_("alice", &["diverge", "alike", "-o", "json"]).stdout)
                .ok()?;
        let group = v["groups"].get(0)?;
        (group["unreported"].as_array()?.is_empty()
            && group["aspects"][0]["variants"][0]["hosts"]
                .as_array()?
                .len()
                == 2)
            .then_some(())
    });
    let seen: serde_json::Value =
        serde_json::from_str(&ok(as_("sam", &["diverge", "-o", "json"]))).expect("json");
    assert_eq!(seen["groups"], serde_json::json!([]), "{seen}");
    refused(
        as_("sam", &["baseline", "accept", "alike"]),
        "a baseline's state is read from every host of its group: it takes a person who sees the whole fleet",
    );
    assert!(
        ok(as_("alice", &["baseline", "accept", "alike"])).contains("/etc/issue"),
        "alice sees the whole fleet"
    );
    refused(
        as_(
            "sam",
            &["change", "open", "CHG-2", "--for", "1h", "--reason", "x"],
        ),
        "sam (admin) is limited to label role=web: change windows are for those who see the whole fleet",
    );

    // An operator certificate must say its role.
    let out = plumb(&[
        "certs",
        "issue",
        "operator",
        "nobody",
        "--dir",
        pki.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--role viewer|operator|auditor|admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The console over TLS knows each person by the operator certificate their browser presents,
/// exported as PKCS#12 as `plumb certs issue` says; anyone else is told how to sign in.
#[test]
fn the_console_over_tls_knows_operators_by_their_certificates() {
    let tools = ["curl", "openssl"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(t)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
    });
    if !plumb_tests::have_or_skip(tools, "curl and openssl") {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let pki = pki(&tmp.path().join("pki"));
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(m.join("m.yaml"), "name: m\nhosts: [\"*\"]\n").expect("write");
    let p = |f: &str| pki.join(f).display().to_string();
    let c = Controller::start_with(
        &m,
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &p("controller.pem"),
            "--tls-key",
            &p("controller-key.pem"),
            "--tls-ca",
            &p("ca.pem"),
            "--web-listen",
            "127.0.0.1:0",
        ],
        "https",
    );
    let url = c.console_url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let curl = |cert: &[&str], path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", &p("ca.pem"), "-w", "\n%{http_code}"])
            .args(cert)
            .arg(format!("{}{path}", url.trim_end_matches('/')))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
        (code.to_owned(), body.to_owned())
    };
    // The certificate exported for a browser, as `plumb certs issue` says.
    let issued = ok(plumb(&[
        "certs",
        "issue",
        "operator",
        "pia",
        "--role",
        "auditor",
        "--dir",
        &pki.display().to_string(),
    ]));
    let export: Vec<String> = issued
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("openssl pkcs12"))
        .flat_map(|l| {
            l.trim()
                .trim_end_matches('\\')
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        export.first().map(String::as_str),
        Some("openssl"),
        "{issued}"
    );
    let p12 = tmp.path().join("operator-pia.p12");
    let made = Command::new("openssl")
        .args(&export[1..])
        .args(["-passout", "pass:secret"])
        .current_dir(tmp.path())
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(p12.exists());
    let (code, body) = curl(
        &[
            "--cert-type",
            "P12",
            "--cert",
            &format!("{}:secret", p12.display()),
        ],
        "/history",
    );
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("pia · auditor"), "{body}");

    let pem = |who: &str| {
        vec![
            "--cert".to_owned(),
            p(&format!("{who}.pem")),
            "--key".to_owned(),
            p(&format!("{who}-key.pem")),
        ]
    };
    let vic = pem("operator-vic");
    let vic: Vec<&str> = vic.iter().map(String::as_str).collect();
    let (code, body) = curl(&vic, "/");
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("vic · viewer"), "{body}");
    // HTTP/2 where the client offers it: every open page's live stream on one connection.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--http2", "-w", "%{http_version}"])
        .args(["--cacert", &p("ca.pem")])
        .args(&vic)
        .arg(&url)
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2");
    // Over HTTP/2 there is no Host header: a form from elsewhere is refused all the same.
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--cacert", &p("ca.pem")])
        .args(&vic)
        .args([
            "-H",
            "Origin: https://evil.example",
            "--data",
            "csrf=x&host=web-1&resource=r",
        ])
        .arg(format!("{}actions/ack", url))
        .output()
        .expect("run curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("a form from another origin was refused"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (code, body) = curl(&vic, "/history");
    assert_eq!(code, "403");
    assert!(
        body.contains("vic (viewer) may not read the event log"),
        "{body}"
    );
    let (code, body) = curl(&[], "/");
    assert_eq!(code, "401");
    assert!(body.contains("present your operator certificate"), "{body}");
    let agent = pem("agent-web-1");
    let agent: Vec<&str> = agent.iter().map(String::as_str).collect();
    let (code, body) = curl(&agent, "/");
    assert_eq!(code, "403");
    assert!(
        body.contains("only operator certificates may use the console"),
        "{body}"
    );
}

#[test]
fn no_plaintext_on_a_non_loopback_address_unless_asked() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(m.join("m.yaml"), "name: m\nhosts: [\"*\"]\n").expect("write");
    let data = tmp.path().join("data");
    let out = Command::new(bin("plumb"))
        .args(["serve", "--listen", "0.0.0.0:0", "--manifests"])
        .arg(&m)
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without TLS") && err.contains("hint:"),
        "{err}"
    );

    // With --insecure-plaintext it starts, and says so at start and to every CLI user.
    let c = Controller::start_with(&m, &data, "0.0.0.0:0", &["--insecure-plaintext"], "http");
    assert!(
        c.proc
            .stderr()
            .contains("without TLS (--insecure-plaintext)")
            || wait_for("the start-up warning", || c
                .proc
                .stderr()
                .contains("without TLS")
                .then_some(true))
    );
    let local = c.url.replace("0.0.0.0", "127.0.0.1");
    let out = Command::new(bin("plumb"))
        .args(["hosts", "--controller", &local])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: the controller listens on 0.0.0.0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Content stays home: a diff only where the manifest allows it, within the size limit, never
/// for sensitive files, and never for what the agent's own deny list forbids.
#[test]
fn diff_policy_allowed_too_large_sensitive_and_deny_listed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    let big = "x".repeat(300 * 1024);
    fs::write(
        m.join("m.yaml"),
        format!(
            "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/app.conf:\n    content: \"a=1\\nb=2\\n\"\n    diff: true\n  /etc/big:\n    content: \"{big}\"\n    diff: true\n  /etc/secret:\n    content: \"s\\n\"\n    sensitive: true\n  /etc/plain:\n    content: \"p\\n\"\n  /etc/shadow:\n    content: \"root:*:1::::::\\n\"\n    diff: true\n  /etc/custom.key:\n    content: \"k\\n\"\n    diff: true\n"
        ),
    )
    .expect("write");
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    for (f, c) in [
        ("app.conf", "a=1\nb=3\n"),
        ("big", "y"),
        ("secret", "leaked?\n"),
        ("plain", "q\n"),
        ("shadow", "root:$6$hash::::::\n"),
        ("custom.key", "key\n"),
    ] {
        fs::write(root.join("etc").join(f), c).expect("write");
    }
    fs::write(root.join("etc/big"), "y".repeat(300 * 1024)).expect("write");
    let c = Controller::start(&m, &tmp.path().join("data"));
    let agent = Command::new(bin("plumb-agent"));
    let _agent = start_agent_with(
        agent,
        &c.url,
        "h1",
        &root,
        &["--deny-content", "/etc/*.key"],
    );
    wait_for("the host to be evaluated", || {
        (c.host_drift("h1")?["status"] == "drifted").then_some(())
    });

    let diff = |path: &str| c.plumb(&["diff", "h1", path]);
    let out = diff("/etc/app.conf");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--- /etc/app.conf (desired)\n+++ /etc/app.conf (actual)\n@@ -1,2 +1,2 @@\n a=1\n-b=2\n+b=3\n"
    );
    let refused = |path: &str, why: &str| {
        let out = diff(path);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{path}: {err}");
        assert!(out.stdout.is_empty(), "{path}: no content printed");
        assert!(err.contains(why), "{path}: {err}");
    };
    refused("/etc/big", "more than the 262144-byte diff limit");
    refused("/etc/secret", "is declared sensitive");
    refused("/etc/plain", "is not declared with diff: true");
    refused(
        "/etc/shadow",
        "/etc/shadow is on this agent's local deny list",
    );
    refused(
        "/etc/custom.key",
        "/etc/custom.key is on this agent's local deny list",
    );
    refused("/etc/undeclared", "is not declared for h1");

    fs::write(root.join("etc/app.conf"), "a=1\nb=2\n").expect("revert");
    wait_for("the revert", || {
        c.plumb(&["diff", "h1", "/etc/app.conf"])
            .status
            .code()
            .filter(|&code| code == 0)
    });
}

// Regression (issue 12, weak): idle TCP connections that never speak were kept forever, on
// the plaintext and on the TLS port; with 450 of them and a low open-file limit, queries
// stopped. Now each must begin speaking within a deadline, and at most so many are held.
#[test]
fn idle_connections_are_closed_and_do_not_lock_out_queries() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = tmp.path().join("manifests");
    write_tree(&m, &[("all.yaml", "name: all\nhosts: [\"*\"]\n")]);
    let pki = pki(&tmp.path().join("pki"));
    let p = |f: &str| pki.join(f).display().to_string();
    let limits = ["--max-connections", "40", "--handshake-timeout", "1s"];
    let tls = [
        "--tls-cert",
        &p("controller.pem"),
        "--tls-key",
        &p("controller-key.pem"),
        "--tls-ca",
        &p("ca.pem"),
    ];
    for (scheme, extra) in [("http", vec![]), ("https", tls.to_vec())] {
        let args: Vec<&str> = limits.iter().copied().chain(extra).collect();
        let mut c = Controller::start_with(
            &m,
            &tmp.path().join(format!("data-{scheme}")),
            "127.0.0.1:0",
            &args,
            scheme,
        );
        if scheme == "https" {
            c.client_env = vec![
                ("PLUMB_CA".into(), p("ca.pem")),
                ("PLUMB_CERT".into(), p("operator-alice.pem")),
                ("PLUMB_KEY".into(), p("operator-alice-key.pem")),
            ];
        }
        let addr = c.url.split("://").nth(1).expect("an address").to_owned();
        // More idle connections than the controller holds.
        let idle: Vec<std::net::TcpStream> = (0..60)
            .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
            .collect();
        // Each is closed: the held ones at the deadline, the others at once.
        for mut s in idle {
            use std::io::Read as _;
            s.set_read_timeout(Some(plumb_tests::DEADLINE))
                .expect("timeout");
            // (The HTTP/2 server speaks first: its settings may come before the close.)
            let mut got = Vec::new();
            match s.read_to_end(&mut got) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                other => panic!("{scheme}: an idle connection was kept: {other:?}"),
            }
        }
        // And queries answer.
        wait_for("a query to answer", || {
            c.plumb(&["hosts"]).status.success().then_some(())
        });
    }
}
