//! A snapshot in parts: evaluated once it is whole, and a large one stored as it comes.

use super::agents::WRITE_AHEAD;
use super::tests::{Harness, connect, file, harness, view_of};
use super::*;
use crate::key::Key;
use crate::model::HostStatus;
use crate::store::SqliteStore;

/// The next thing the agent is sent is the acknowledgement of `seq`.
async fn acked(rx: &mut mpsc::Receiver<ToAgent>, seq: u64) {
    match rx.recv().await {
        Some(ToAgent::Ack { seq: got }) => assert_eq!(got, seq, "acknowledged"),
        other => panic!("the acknowledgement of {seq}, not {other:?}"),
    }
}

#[test]
fn a_snapshot_in_parts_is_evaluated_once_when_its_last_part_arrives() {
    let Harness {
        dir: _dir,
        fleet,
        thread,
        runtime,
        ..
    } = harness(
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0644\"\n  /etc/b:\n    mode: \"0644\"\n",
    );
    runtime.block_on(async {
        let (conn, generation, mut rx) = connect(&fleet).await;
        let part = |path: &str, seq, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states: vec![(Key::file(path), file(0o100600), None)],
            turn: Default::default(),
        };

        fleet
            .send(part("/etc/a", 1, Report::SnapshotPart))
            .await
            .expect("send");
        acked(&mut rx, 1).await;
        let h = view_of(&fleet, "h").await;
        assert_eq!(h.status, HostStatus::Unknown, "not evaluated on a part");
        assert!(h.drift.is_empty(), "no drift from a part: {:?}", h.drift);

        fleet
            .send(part("/etc/b", 2, Report::Snapshot))
            .await
            .expect("send");
        acked(&mut rx, 2).await;
        let h = view_of(&fleet, "h").await;
        assert_eq!(h.status, HostStatus::Drifted);
        let drifted: Vec<&str> = h.drift.iter().map(|d| d.resource.as_str()).collect();
        assert_eq!(
            drifted,
            ["file:/etc/a", "file:/etc/b"],
            "both parts evaluated together"
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

/// A host of more than `WRITE_AHEAD` paths: what its parts observed is in the store before
/// its last part arrives, each such part acknowledged once it is; a part that brings fewer
/// waits, acknowledged at once, and the last part stores the rest with the evaluation.
#[test]
fn a_large_snapshots_observations_are_stored_as_its_parts_arrive() {
    let paths: Vec<String> = (0..WRITE_AHEAD + 10)
        .map(|i| format!("/etc/f{i:05}"))
        .collect();
    let mut manifest = "name: m\nhosts: [\"*\"]\nfiles:\n".to_owned();
    for p in &paths {
        manifest.push_str(&format!("  {p}:\n    mode: \"0600\"\n"));
    }
    let Harness {
        dir,
        fleet,
        thread,
        runtime,
        ..
    } = harness(&manifest);
    let reader = SqliteStore::open(&dir.path().join("data")).expect("a second connection");
    let stored = || reader.load_observations("h").expect("observations").len();
    runtime.block_on(async {
        let (conn, generation, mut rx) = connect(&fleet).await;
        let part = |range: std::ops::Range<usize>, seq, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states: paths[range]
                .iter()
                .map(|p| (Key::file(p), file(0o100600), None))
                .collect(),
            turn: Default::default(),
        };

        // Fewer than WRITE_AHEAD so far: acknowledged, nothing stored yet.
        fleet
            .send(part(0..10, 1, Report::SnapshotPart))
            .await
            .expect("send");
        acked(&mut rx, 1).await;
        assert_eq!(stored(), 0, "a small part waits for the rest");

        // WRITE_AHEAD now: stored (all gathered so far) before it is acknowledged.
        fleet
            .send(part(10..WRITE_AHEAD, 2, Report::SnapshotPart))
            .await
            .expect("send");
        acked(&mut rx, 2).await;
        assert_eq!(stored(), WRITE_AHEAD, "stored ahead of the last part");
        let h = view_of(&fleet, "h").await;
        assert_eq!(h.status, HostStatus::Unknown, "not evaluated on a part");

        fleet
            .send(part(WRITE_AHEAD..paths.len(), 3, Report::Snapshot))
            .await
            .expect("send");
        acked(&mut rx, 3).await;
        assert_eq!(stored(), paths.len(), "the rest with the evaluation");
        let h = view_of(&fleet, "h").await;
        assert_eq!(
            h.status,
            HostStatus::InSync,
            "every path evaluated: {:?}",
            h.drift
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}
