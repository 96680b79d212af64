//! Hostile agent messages, property-tested: arbitrary well-typed messages go through the real
//! edge (wire validation) and the real fleet (evaluation, SQLite); the fleet never panics.

use std::time::Duration;

use plumb_proto::v1;
use proptest::prelude::*;

use crate::fleet::Command;

fn path_state() -> impl Strategy<Value = v1::PathState> {
    let path = prop::sample::select(vec![
        "/etc/a",
        "/etc/b",
        "/etc/d",
        "/nope",
        "",
        "relative",
        "/etc/a/../b",
    ]);
    let text = prop::sample::select(vec!["", "x", "root", "0", "/target", "\u{0}", "ä"]);
    let sha = prop::sample::select(vec![
        String::new(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string(),
        "not-hex".to_string(),
        "Z".repeat(64),
    ]);
    (
        path,
        any::<i32>(),
        any::<i32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        text,
        sha,
        prop::collection::vec(any::<bool>(), 0..4),
        (prop::collection::vec("[a-z]{0,3}", 0..4), 0u64..200_000),
    )
        .prop_map(
            |(path, kind, resolved, mode, uid, gid, text, sha256, contains, (entries, total))| {
                v1::PathState {
                    path: path.into(),
                    kind: kind % 8,
                    link_target: text.into(),
                    resolved_kind: resolved % 8,
                    mode,
                    uid,
                    gid,
                    owner: text.into(),
                    group: text.into(),
                    size: u64::from(mode),
                    sha256,
                    contains,
                    who: (mode % 3 == 0).then(|| {
                        Box::new(v1::Who {
                            who: Some(match mode % 2 {
                                0 => v1::who::Who::Unknown(text.into()),
                                _ => v1::who::Who::Process(v1::ProcessIdentity {
                                    name: text.into(),
                                    pid: mode,
                                    uid: Some(uid),
                                    parents: entries.clone(),
                                    ..Default::default()
                                }),
                            }),
                        })
                    }),
                    entries_total: if total % 3 == 0 {
                        total
                    } else {
                        entries.len() as u64
                    },
                    entries,
                    error: text.into(),
                }
            },
        )
}

fn package_state() -> impl Strategy<Value = v1::PackageState> {
    let name = prop::sample::select(vec![
        "nginx",
        "openssh-server",
        "",
        "x".repeat(300).leak() as &str,
    ]);
    let manager = prop::sample::select(vec!["dpkg", "rpm", "apk", "pacman", "yum", ""]);
    let version = prop::sample::select(vec![
        "1.0",
        "1:9.2p1-2",
        "",
        "~",
        "a",
        "1.0_rc1-r2",
        "-",
        ":",
    ]);
    (name, prop::collection::vec((manager, version), 0..3)).prop_map(|(name, instances)| {
        v1::PackageState {
            name: name.into(),
            instances: instances
                .into_iter()
                .map(|(m, v)| v1::PackageInstance {
                    manager: m.into(),
                    arch: "amd64".into(),
                    version: v.into(),
                    state: "installed".into(),
                })
                .collect(),
            error: String::new(),
            problems: vec![],
            who: None,
        }
    })
}

const DECLARED: &str = "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    content: \"x\"\n    mode: \"0644\"\n    owner: root\n    contains: [\"a\", \"!/b+/\"]\n  /etc/b:\n    target: /x\n  /etc/d:\n    exclusive: true\npackages:\n  nginx: \">= 1.0\"\n  openssh-server: {version: \"!= 1\", verify_files: true}\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary agent messages go through the real edge (wire validation) and the real fleet
    /// (evaluation, SQLite): the fleet thread survives and still answers.
    #[test]
    fn the_fleet_survives_arbitrary_agent_states(
        batches in prop::collection::vec((prop::collection::vec(path_state(), 0..6), prop::collection::vec(package_state(), 0..3)), 1..5)
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (fleet, thread) = crate::fleet::for_test(dir.path(), DECLARED, Duration::from_secs(5)).spawn().expect("spawn");
        let runtime = crate::fleet::test_runtime();
        runtime.block_on(async {
            let (out, mut plans) = tokio::sync::mpsc::channel(64);
            let info = crate::model::HostInfo { host_id: "h".into(), ..Default::default() };
            let conn = fleet.ask(|reply| Command::Connect { info, out, heartbeats: Default::default(), takeover: false, reply }).await.expect("connected").expect("accepted");
            let generation = match plans.recv().await {
                Some(crate::fleet::ToAgent::Plan(plan)) => plan.generation,
                other => panic!("expected a plan, got {other:?}"),
            };
            for (i, (files, packages)) in batches.into_iter().enumerate() {
                let states: Result<Vec<_>, super::wire::Malformed> = files
                    .into_iter()
                    .map(super::wire::state_from_proto)
                    .chain(packages.into_iter().map(super::wire::package_from_proto))
                    .collect();
                // Malformed messages are rejected at the edge; well-formed ones are evaluated.
                if let Ok(states) = states {
                    // Snapshots, unfinished snapshot parts and deltas, in an order no agent would use.
                    let report = match i % 3 {
                        0 => crate::fleet::Report::Snapshot,
                        1 => crate::fleet::Report::SnapshotPart,
                        _ => crate::fleet::Report::Delta,
                    };
                    let cmd = Command::State { conn, report, generation, seq: i as u64, states, turn: Default::default() };
                    fleet.send(cmd).await.expect("fleet alive");
                }
            }
            let hosts = fleet.ask(|reply| Command::Hosts { reply }).await.expect("fleet still answers").hosts;
            assert_eq!(hosts.len(), 1);
            fleet.send(Command::Shutdown).await.expect("shutdown");
        });
        thread.join().expect("the fleet thread did not panic");
    }
}

/// The messages a well-behaved agent sends, of every kind: the campaign's first corpus
/// (`PLUMB_WRITE_CORPUS=1` writes them to `tests/corpus/agent-messages/`).
fn seed_messages() -> Vec<(&'static str, v1::AgentMessage)> {
    use v1::agent_message::Msg;
    let state = |path: &str, kind: v1::FileKind| v1::PathState {
        path: path.into(),
        kind: kind as i32,
        resolved_kind: kind as i32,
        mode: 0o100644,
        owner: "root".into(),
        group: "root".into(),
        sha256: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881".into(),
        contains: vec![true, false],
        ..Default::default()
    };
    let listed = v1::PathState {
        entries: vec!["known".into(), "rogue".into(), "evil\\xff".into()],
        entries_total: 100_000,
        ..state("/etc/d", v1::FileKind::Directory)
    };
    let package = v1::PackageState {
        name: "openssh-server".into(),
        instances: vec![v1::PackageInstance {
            manager: "dpkg".into(),
            arch: "amd64".into(),
            version: "1:9.2p1-2".into(),
            state: "installed".into(),
        }],
        problems: vec![v1::FileProblem {
            path: "/usr/sbin/sshd".into(),
            expected: "md5 0".into(),
            actual: "missing".into(),
        }],
        ..Default::default()
    };
    let m = |msg| v1::AgentMessage { msg: Some(msg) };
    vec![
        (
            "snapshot",
            m(Msg::Snapshot(v1::Snapshot {
                plan_generation: 1,
                seq: 1,
                states: vec![
                    state("/etc/a", v1::FileKind::File),
                    v1::PathState {
                        link_target: "/x".into(),
                        ..state("/etc/b", v1::FileKind::Symlink)
                    },
                    listed.clone(),
                ],
                packages: vec![package.clone()],
                more: false,
            })),
        ),
        (
            "snapshot-part",
            m(Msg::Snapshot(v1::Snapshot {
                plan_generation: 1,
                seq: 2,
                states: vec![state("/etc/a", v1::FileKind::Absent)],
                packages: vec![],
                more: true,
            })),
        ),
        (
            "delta",
            m(Msg::Delta(v1::Delta {
                plan_generation: 1,
                seq: 3,
                states: vec![
                    v1::PathState {
                        error: "unverifiable: line 2 is longer than 65536 bytes".into(),
                        contains: vec![],
                        ..state("/etc/a", v1::FileKind::File)
                    },
                    listed,
                ],
                packages: vec![package],
            })),
        ),
        (
            "heartbeat",
            m(Msg::Heartbeat(v1::Heartbeat {
                sent_at_ms: 1_700_000_000_000,
            })),
        ),
        (
            "coverage",
            m(Msg::Coverage(v1::Coverage {
                watches: 3,
                polled: vec!["/etc/a".into()],
                watch_errors: vec!["/etc: permission denied".into()],
                overflows: 1,
                ..Default::default()
            })),
        ),
        (
            "content-reply",
            m(Msg::ContentReply(v1::ContentReply {
                id: 1,
                content: b"x".to_vec(),
                refused: String::new(),
            })),
        ),
        (
            "hello",
            m(Msg::Hello(v1::Hello {
                host_id: "h".into(),
                protocol_version: plumb_proto::PROTOCOL_VERSION,
                ..Default::default()
            })),
        ),
    ]
}

#[test]
fn the_corpus_holds_every_kind_of_agent_message() {
    use prost::Message as _;
    let dir = plumb_tests::fuzz::corpus_dir("agent-messages");
    if std::env::var_os("PLUMB_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, m) in seed_messages() {
            std::fs::write(dir.join(format!("{name}.bin")), m.encode_to_vec()).expect("write");
        }
    }
    let kinds: std::collections::BTreeSet<String> = plumb_tests::fuzz::corpus("agent-messages")
        .iter()
        .filter_map(|(_, b)| v1::AgentMessage::decode(b.as_slice()).ok()?.msg)
        .map(|m| {
            format!("{m:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for (_, m) in seed_messages() {
        let kind = format!("{:?}", m.msg.expect("a message"));
        let kind = kind.split('(').next().unwrap_or_default();
        assert!(kinds.contains(kind), "the corpus lacks a {kind}: {kinds:?}");
    }
}

/// Agent messages from the corpus, then random mutations of them, as bytes: decoded as the
/// edge decodes them, checked by the edge (`agent_api::command`), and the accepted ones handled
/// by a real fleet on a real store. The fleet must neither panic nor stop answering, and
/// what one message costs stays bounded (the fleet answers between messages).
#[test]
fn agent_messages_and_mutations_of_them_go_through_the_edge_unharmed() {
    use plumb_tests::fuzz;
    use prost::Message as _;
    let corpus = fuzz::corpus("agent-messages");
    let seeds: Vec<Vec<u8>> = corpus.iter().map(|(_, b)| b.clone()).collect();
    let mut rng = fuzz::Rng::from_env("agent-messages");
    let dir = tempfile::tempdir().expect("temp dir");
    let (fleet, thread) = crate::fleet::for_test(dir.path(), DECLARED, Duration::from_secs(5))
        .spawn()
        .expect("spawn");
    let runtime = crate::fleet::test_runtime();
    let mut last = Vec::new();
    let (accepted, rejected) = runtime.block_on(async {
        let (out, mut plans) = tokio::sync::mpsc::channel(1 << 16);
        let info = crate::model::HostInfo {
            host_id: "h".into(),
            ..Default::default()
        };
        let conn = fleet
            .ask(|reply| Command::Connect {
                info,
                out,
                heartbeats: Default::default(),
                takeover: false,
                reply,
            })
            .await
            .expect("connected")
            .expect("accepted");
        let generation = match plans.recv().await {
            Some(crate::fleet::ToAgent::Plan(plan)) => plan.generation,
            other => panic!("expected a plan, got {other:?}"),
        };
        let (mut accepted, mut rejected) = (0u64, 0u64);
        let started = std::time::Instant::now();
        let mut i = 0usize;
        loop {
            let input = if i < seeds.len() {
                seeds[i].clone()
            } else if started.elapsed() < fuzz::budget() {
                let seed = rng.below(seeds.len());
                fuzz::mutate(&mut rng, &seeds[seed], &seeds)
            } else {
                break;
            };
            i += 1;
            last.clone_from(&input);
            let Some(mut msg) = v1::AgentMessage::decode(input.as_slice())
                .ok()
                .and_then(|m| m.msg)
            else {
                rejected += 1;
                continue;
            };
            // Half the time for the plan in force, so that states are evaluated.
            if rng.one_in(2) {
                use v1::agent_message::Msg;
                match &mut msg {
                    Msg::Snapshot(s) => s.plan_generation = generation,
                    Msg::Delta(d) => d.plan_generation = generation,
                    _ => {}
                }
            }
            match super::agent_api::command(conn, msg, Default::default()) {
                Ok(cmd) => {
                    accepted += 1;
                    if fleet.send(cmd).await.is_err() {
                        break;
                    }
                }
                Err(_) => rejected += 1,
            }
            while plans.try_recv().is_ok() {}
            if i.is_multiple_of(64) {
                // The fleet answers between messages: no one message holds it up.
                tokio::time::timeout(
                    Duration::from_secs(10),
                    fleet.ask(|reply| Command::Hosts { reply }),
                )
                .await
                .expect("the fleet answers in time")
                .expect("the fleet is alive");
            }
        }
        let hosts = fleet
            .ask(|reply| Command::Hosts { reply })
            .await
            .expect("the fleet still answers")
            .hosts;
        assert_eq!(hosts.len(), 1);
        let _ = fleet.send(Command::Shutdown).await;
        (accepted, rejected)
    });
    if thread.join().is_err() {
        let kept = plumb_tests::fuzz::keep_failure("agent-messages", &last);
        panic!(
            "the fleet thread panicked; the last input is in {}",
            kept.display()
        );
    }
    eprintln!("agent-messages: {accepted} accepted, {rejected} rejected at the edge");
    assert!(accepted > 0, "some inputs reached the fleet");
}
