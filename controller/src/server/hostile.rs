//! Hostile agent messages, property-tested: arbitrary well-typed messages go through the real
//! edge (wire validation) and the real fleet (evaluation, SQLite); the fleet never panics.

use std::time::Duration;

use plumb_proto::v1;
use proptest::prelude::*;

use crate::fleet::{Command, Fleet};
use crate::manifest::load::load_dir;
use crate::store::Store;

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
        std::fs::write(dir.path().join("m.yaml"), DECLARED).expect("write");
        let set = load_dir(dir.path()).expect("valid manifests");
        let store = Store::open(&dir.path().join("data")).expect("store");
        let (fleet, thread) = Fleet::new(store, set, Duration::from_secs(5)).expect("fleet").spawn().expect("spawn");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (out, mut plans) = tokio::sync::mpsc::channel(64);
            let info = crate::model::HostInfo { host_id: "h".into(), ..Default::default() };
            let conn = fleet.ask(|reply| Command::Connect { info, out, takeover: false, reply }).await.expect("connected").expect("accepted");
            let generation = match plans.recv().await {
                Some(crate::fleet::ToAgent::Plan { generation, .. }) => generation,
                other => panic!("expected a plan, got {other:?}"),
            };
            for (i, (files, packages)) in batches.into_iter().enumerate() {
                let states: Result<Vec<_>, String> = files
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
