//! The fleet at a past moment, on the fleet's movable clock: what `moment` answers for each
//! moment of a host's morning is what the events the test made say, and what replaying the
//! log says.

use super::*;

#[test]
fn the_fleet_at_any_moment_is_what_its_events_made_it() {
    let Harness {
        dir: _dir,
        time,
        fleet,
        thread,
        runtime,
    } = harness(MANIFEST);
    runtime.block_on(async {
        // The clock moves once the fleet has done what was sent before (a query answered
        // after it in the same queue).
        let at = |ms: i64| {
            let (fleet, time) = (fleet.clone(), time.clone());
            async move {
                fleet.overview().await.expect("fleet");
                time.store(ms, Ordering::SeqCst);
            }
        };
        let (conn, generation, _rx) = connect(&fleet).await; // online at 1,000,000
        let state = |mode, seq, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states: vec![(Key::file("/etc/a"), file(mode), None)],
            turn: Default::default(),
        };
        at(1_000_100).await;
        fleet
            .send(state(0o100600, 1, Report::Snapshot))
            .await
            .expect("drift opens");
        at(1_000_200).await;
        fleet
            .acknowledge(AckRequest {
                host: "h".into(),
                resource: "file:/etc/a".into(),
                reason: "known".into(),
                by: "alice".into(),
                expires_ms: Some(1_000_500),
            })
            .await
            .expect("acknowledged");
        at(1_000_300).await;
        fleet
            .send(state(0o100640, 2, Report::Delta))
            .await
            .expect("drift changes");
        at(1_000_500).await;
        fleet.send(Command::Tick).await.expect("the ack expires");
        at(1_000_600).await;
        fleet
            .send(state(0o100644, 3, Report::Delta))
            .await
            .expect("resolved");
        at(1_000_700).await;
        fleet
            .send(Command::Disconnected { conn })
            .await
            .expect("offline");

        fleet.overview().await.expect("fleet");
        let (log, _) = fleet.history(Some("h".into()), 100).await.expect("log");
        let kinds: Vec<&str> = log.iter().rev().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "host_online",
                "opened",
                "acknowledged",
                "changed",
                "ack_expired",
                "resolved",
                "host_offline"
            ],
            "the morning as the log has it"
        );
        let mut by_id = log.clone();
        by_id.sort_by_key(|e| e.id);

        type Seen = (HostStatus, Option<String>, usize, i64);
        let mut seen: Vec<(i64, Seen)> = Vec::new();
        for ms in [
            999_999, 1_000_000, 1_000_150, 1_000_250, 1_000_350, 1_000_550, 1_000_650, 1_000_800,
        ] {
            let (overview, _) = fleet.moment(ms).await.expect("moment");
            let expected = crate::moment::hosts(&crate::moment::replay(&by_id, ms));
            assert_eq!(overview.hosts.len(), expected.len(), "at {ms}");
            for (view, want) in overview.hosts.iter().zip(&expected) {
                assert_eq!(
                    (view.status, &view.drift, &view.acks),
                    (want.status, &want.drift, &want.acks),
                    "at {ms}: as the log replayed says"
                );
            }
            if let Some(h) = overview.hosts.first() {
                seen.push((
                    ms,
                    (
                        h.status,
                        h.drift.first().map(|d| d.actual.clone()),
                        h.acks.len(),
                        h.last_seen_ms,
                    ),
                ));
            }
            assert!(
                overview.warnings.iter().any(|w| w.contains("coverage")),
                "what the log cannot say is said: {:?}",
                overview.warnings
            );
        }
        use HostStatus::*;
        assert_eq!(
            seen,
            [
                (1_000_000, (InSync, None, 0, 1_000_000)),
                (1_000_150, (Drifted, Some("0600".into()), 0, 1_000_150)),
                (1_000_250, (Drifted, Some("0600".into()), 1, 1_000_250)),
                (1_000_350, (Drifted, Some("0640".into()), 1, 1_000_350)),
                (1_000_550, (Drifted, Some("0640".into()), 0, 1_000_550)),
                (1_000_650, (InSync, None, 0, 1_000_650)),
                (1_000_800, (Offline, None, 0, 1_000_700)),
            ],
            "before its first stream the host was not known; then as the events made it"
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}
