//! Snapshot tests of what the CLI prints: the tables, the `-o json` documents, `--follow`
//! lines, `plumb report` in each format, and `--help`. The JSON is plumb's contract with
//! scripts and webhooks: a change here shows in review as a changed `.snap` file, never by
//! accident. (`cargo insta review`, or INSTA_UPDATE=always, after an intended change.)

use clap::CommandFactory as _;

use super::render;
use crate::evidence::{Authorisation, Evidence, Process, Resolution, Transaction, Who};
use crate::model::{
    Ack, Coverage, DriftRecord, Event, EventKind, HostFacts, HostInfo, HostStatus, HostView,
};
use crate::report;
use crate::store::Head;

const T: i64 = 1_764_000_000_000;

fn item(resource: &str, attribute: &str, expected: &str, actual: &str) -> DriftRecord {
    DriftRecord {
        resource: resource.into(),
        attribute: attribute.into(),
        expected: expected.into(),
        actual: actual.into(),
        since_ms: T + 1_500,
        declared_at: "/etc/plumb/manifests/baseline.yaml:6:3".into(),
        evidence: Default::default(),
    }
}

/// alice, logged in, became root and ran `tool` on pts/1.
fn alice(tool: &str, action: &str) -> Who {
    Who::Process(Box::new(Process {
        origin: "manual".into(),
        action: action.into(),
        pid: 31337,
        name: tool.into(),
        exe: format!("/usr/bin/{tool}"),
        uid: Some(0),
        user: "root".into(),
        login_uid: Some(1000),
        login_user: "alice".into(),
        session: Some(7),
        tty: "pts/1".into(),
        unit: "session-7.scope".into(),
        container: String::new(),
        parents: vec!["sudo".into(), "bash".into(), "sshd".into()],
        command_line: String::new(),
    }))
}

fn with(mut d: DriftRecord, who: Option<Who>, authorisation: Option<Authorisation>) -> DriftRecord {
    d.evidence = Evidence {
        who,
        authorisation,
        resolution: None,
    };
    d
}

fn ack() -> Ack {
    Ack {
        host_id: "web-1".into(),
        resource: "file:/etc/sudoers.d/backdoor".into(),
        reason: "CHG-42, removed on Friday".into(),
        by: "alice".into(),
        at_ms: T + 60_000,
        expires_ms: Some(T + 7 * 86_400_000),
    }
}

fn host(id: &str, status: HostStatus) -> HostView {
    HostView {
        info: HostInfo {
            host_id: id.into(),
            hostname: format!("{id}.example"),
            labels: [("role".to_owned(), "web".to_owned())].into(),
            facts: HostFacts {
                os_id: "debian".into(),
                os_name: "Debian GNU/Linux".into(),
                os_version: "12".into(),
                kernel_version: "6.1.0-28-amd64".into(),
                arch: "x86_64".into(),
                cpus: 0,
                memory_bytes: 0,
            },
            agent_version: "0.1.0".into(),
        },
        status,
        last_seen_ms: T + 120_000,
        drift: Vec::new(),
        manifests: vec!["baseline".into(), "web".into()],
        coverage: Some(Coverage {
            watches: 5,
            last_full_scan_ms: T,
            ..Default::default()
        }),
        acks: Vec::new(),
        controller: None,
    }
}

/// A drifted host (one item acknowledged), one in sync, one degraded, one never seen.
fn fleet() -> Vec<HostView> {
    let mut web1 = host("web-1", HostStatus::Drifted);
    web1.drift = vec![
        with(
            item(
                "file:/etc/ssh/sshd_config",
                "contains:!X11Forwarding yes",
                "absent",
                "present",
            ),
            Some(alice("vim", "rename")),
            Some(Authorisation::Unauthorised),
        ),
        with(
            item(
                "file:/etc/sudoers.d/backdoor",
                "undeclared",
                "absent (exclusive directory /etc/sudoers.d)",
                "present",
            ),
            Some(Who::Unknown(
                "the writer exited before it could be identified; it ran /usr/bin/cp".into(),
            )),
            Some(Authorisation::Unauthorised),
        ),
        with(
            item(
                "package:openssh-server",
                "version",
                ">= 1:9.2p1",
                "1:8.4p1-5",
            ),
            Some(Who::Package(Box::new(Transaction {
                manager: "apt".into(),
                started: "2025-11-24  16:00:01".into(),
                user: "bob".into(),
                uid: Some(1001),
                command: "apt-get install openssh-server=1:8.4p1-5".into(),
                action: "downgrade 1:9.2p1-2 -> 1:8.4p1-5".into(),
            }))),
            Some(Authorisation::Authorised {
                change: "CHG-42".into(),
            }),
        ),
    ];
    web1.acks = vec![ack()];
    let web2 = host("web-2", HostStatus::InSync);
    let mut db1 = host("db-1", HostStatus::Degraded);
    db1.coverage = Some(Coverage {
        watches: 8191,
        watch_limit: 8192,
        polled: vec!["/srv/data/a.conf".into()],
        watch_errors: vec!["inotify watch limit reached".into()],
        overflows: 1,
        last_full_scan_ms: T,
        degraded_since_ms: Some(T + 30_000),
        attribution: "off: not asked for (--attribution fanotify)".into(),
    });
    let mut new = host("new-1", HostStatus::Unknown);
    new.last_seen_ms = 0;
    new.coverage = None;
    vec![web1, web2, db1, new]
}

fn listing() -> Vec<(HostView, usize)> {
    fleet()
        .into_iter()
        .map(|h| {
            let n = h.drift.len();
            (h, n)
        })
        .collect()
}

fn events() -> Vec<Event> {
    let e = |id, at_ms, host: &str, kind, item: Option<DriftRecord>| Event {
        id,
        at_ms,
        host_id: host.into(),
        kind,
        item,
    };
    let sshd = with(
        item(
            "file:/etc/ssh/sshd_config",
            "contains:!X11Forwarding yes",
            "absent",
            "present",
        ),
        Some(alice("vim", "rename")),
        Some(Authorisation::Unauthorised),
    );
    let mut reverted = sshd.clone();
    reverted.evidence = Evidence {
        who: Some(alice("sed", "rename")),
        authorisation: None,
        resolution: Some(Resolution::Reverted),
    };
    let set = DriftRecord {
        resource: "manifests".into(),
        attribute: "set".into(),
        expected: String::new(),
        actual: "2 manifests in force".into(),
        since_ms: T,
        declared_at: "/etc/plumb/manifests".into(),
        evidence: Default::default(),
    };
    let ack = DriftRecord {
        resource: "file:/etc/ssh/sshd_config".into(),
        attribute: "ack".into(),
        expected: "alice".into(),
        actual: "CHG-42".into(),
        since_ms: 0,
        declared_at: String::new(),
        evidence: Default::default(),
    };
    vec![
        e(6, T + 9_000, "web-1", EventKind::Resolved, Some(reverted)),
        e(5, T + 5_000, "web-1", EventKind::Acknowledged, Some(ack)),
        e(4, T + 2_000, "web-1", EventKind::Opened, Some(sshd)),
        e(3, T + 1_000, "web-1", EventKind::HostOnline, None),
        e(2, T + 500, "", EventKind::ManifestsAccepted, Some(set)),
        e(1, T, "", EventKind::LogCreated, None),
    ]
}

fn head() -> Head {
    Head {
        last_id: 6,
        hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        signature: "5e".repeat(32),
        public_key: "0a".repeat(32),
    }
}

#[test]
fn hosts() {
    insta::assert_snapshot!("hosts_table", render::hosts_table(&listing()));
    insta::assert_snapshot!(
        "hosts_json",
        render::pretty(&render::hosts_json(
            &listing(),
            &["bad.yaml:3:1: unknown field `fils`".into()],
            &["listening without TLS".into()],
        ))
    );
}

#[test]
fn drift() {
    let fleet = fleet();
    insta::assert_snapshot!("drift_table", render::drift_table(&fleet));
    insta::assert_snapshot!(
        "drift_json",
        render::pretty(&render::drift_json(&fleet, &[], &[]))
    );
    insta::assert_snapshot!(
        "drift_degraded_warnings",
        render::degraded_warnings(&fleet).join("\n")
    );
    assert!(render::failing_drift(&fleet, false));
    assert!(
        render::failing_drift(&fleet, true),
        "the sshd_config item is unauthorised and unacknowledged"
    );
}

#[test]
fn history_and_follow() {
    let events = events();
    insta::assert_snapshot!("history_table", render::history_table(&events));
    insta::assert_snapshot!(
        "history_json",
        render::pretty(&render::history_json(&events))
    );
    let lines: String = events.iter().rev().map(render::event_line).collect();
    insta::assert_snapshot!("follow_table", lines);
    let json_lines: Vec<String> = events
        .iter()
        .rev()
        .map(|e| serde_json::to_string(&crate::json::event(e)).expect("json"))
        .collect();
    insta::assert_snapshot!("follow_json", json_lines.join("\n"));
    let hook = crate::webhook::event_json(&events[0], Some(&head()));
    insta::assert_snapshot!("webhook_json", render::pretty(&hook));
}

#[test]
fn acknowledgements() {
    let acks = vec![
        ack(),
        Ack {
            expires_ms: None,
            resource: "package:openssh-server".into(),
            ..ack()
        },
    ];
    insta::assert_snapshot!("acks_table", render::acks_table(&acks));
    insta::assert_snapshot!("acks_json", render::pretty(&render::acks_json(&acks)));
    insta::assert_snapshot!("ack_made", render::acknowledged(&acks[0]));
}

#[test]
fn reports() {
    let mut events = events();
    events.push(Event {
        id: 7,
        at_ms: T + 10_000,
        host_id: "web-1".into(),
        kind: EventKind::Opened,
        item: Some(item(
            "file:/etc/sudoers.d/backdoor",
            "undeclared",
            "absent",
            "present",
        )),
    });
    let mut r = report::build(&[], events, T, T + 86_400_000, &fleet());
    r.audit_head = Some(head());
    insta::assert_snapshot!("report_json", render::pretty(&report::json(&r)));
    insta::assert_snapshot!("report_csv", report::csv(&r));
    insta::assert_snapshot!("report_html", report::html(&r));
}

/// `--help` as a user reads it, less the values of `PLUMB_*` variables set where the test
/// runs (clap shows them).
fn help_text(cmd: &mut clap::Command) -> String {
    let text = cmd.render_long_help().to_string();
    regex::Regex::new(r"\[env: ([A-Z_]+)=[^\]]*\]")
        .expect("valid")
        .replace_all(&text, "[env: $1]")
        .into_owned()
}

#[test]
fn help() {
    let mut cmd = super::Args::command();
    // Built, so that each subcommand's usage reads `plumb drift ...`, as a user sees it.
    cmd.build();
    insta::assert_snapshot!("help", help_text(&mut cmd));
    for name in [
        "drift", "hosts", "history", "ack", "report", "serve", "diff",
    ] {
        let sub = cmd
            .find_subcommand_mut(name)
            .unwrap_or_else(|| panic!("plumb {name}"));
        insta::assert_snapshot!(format!("help_{name}"), help_text(sub));
    }
}
