//! The fleet in-process with a clock the test moves: acknowledgements, their expiry and end;
//! typed keys; last seen; a second stream refused; the store's outage; the console's trend.
//! Its harness is shared by `snapshot_tests` and by `baselines`, `evidence` and `moment` below.

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::drift::{Kind, Observation, Observed};
use crate::key::Key;
use crate::manifest::load::load_dir;
use crate::model::{EventKind, HostInfo, HostStatus};
use crate::store::SqliteStore;

const MANIFEST: &str = "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0644\"\n";

pub(super) fn file(mode: u32) -> Observation {
    Observation::File(Observed {
        kind: Kind::File,
        resolved_kind: Kind::File,
        mode,
        uid: 0,
        gid: 0,
        owner: None,
        group: None,
        sha256: None,
        more: None,
    })
}

/// A fleet on one manifest, with a clock the test moves (from 1,000,000 ms), its thread, and a
/// runtime to talk to it from.
pub(super) struct Harness {
    pub(super) dir: tempfile::TempDir,
    pub(super) time: Arc<AtomicI64>,
    pub(super) fleet: FleetHandle,
    pub(super) thread: std::thread::JoinHandle<()>,
    pub(super) runtime: tokio::runtime::Runtime,
}

pub(super) fn harness(manifest: &str) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let time = Arc::new(AtomicI64::new(1_000_000));
    let clock = time.clone();
    let fleet = super::for_test(dir.path(), manifest, Duration::from_secs(3600))
        .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
    let (fleet, thread) = fleet.spawn().expect("spawn");
    let runtime = super::test_runtime();
    Harness {
        dir,
        time,
        fleet,
        thread,
        runtime,
    }
}

/// Connects host "h"; returns its connection, its plan's generation and what it is sent.
pub(super) async fn connect(fleet: &FleetHandle) -> (u64, u64, mpsc::Receiver<ToAgent>) {
    let (conn, generation, rx, _) = connect_as(fleet, "h").await;
    (conn, generation, rx)
}

/// Connects `host`; returns its connection, its plan's generation, what it is sent, and the
/// paths its plan asks for.
async fn connect_as(
    fleet: &FleetHandle,
    host: &str,
) -> (
    u64,
    u64,
    mpsc::Receiver<ToAgent>,
    Vec<crate::plan::PathRequest>,
) {
    let info = HostInfo {
        host_id: host.into(),
        ..Default::default()
    };
    connect_with(fleet, info).await
}

/// What the fleet shows of `host` now.
pub(super) async fn view_of(fleet: &FleetHandle, host: &str) -> crate::model::HostView {
    fleet
        .ask(|reply| Command::Hosts { reply })
        .await
        .expect("fleet")
        .hosts
        .into_iter()
        .find(|h| h.info.host_id == host)
        .expect("the host is known")
}

/// `connect_as`, for a host introduced as `info` says (its labels, its facts).
async fn connect_with(
    fleet: &FleetHandle,
    info: HostInfo,
) -> (
    u64,
    u64,
    mpsc::Receiver<ToAgent>,
    Vec<crate::plan::PathRequest>,
) {
    let (out, mut rx) = mpsc::channel(64);
    let conn = fleet
        .ask(|reply| Command::Connect {
            info,
            out,
            heartbeats: Default::default(),
            takeover: false,
            reply,
        })
        .await
        .expect("connect")
        .expect("accepted");
    let Some(ToAgent::Plan(plan)) = rx.recv().await else {
        panic!("a plan")
    };
    (conn, plan.generation, rx, plan.paths)
}

#[test]
fn acknowledgements_expire_on_the_fleets_clock_and_end_with_their_drift() {
    let Harness {
        dir: _dir,
        time,
        fleet,
        thread,
        runtime,
    } = harness(MANIFEST);
    runtime.block_on(async {
        let (conn, generation, _rx) = connect(&fleet).await;
        let state = |mode, seq, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states: vec![(Key::file("/etc/a"), file(mode), None)],
            turn: Default::default(),
        };
        fleet
            .send(state(0o100600, 1, Report::Snapshot))
            .await
            .expect("send");
        let ack = |resource: &str, expires_ms| {
            let req = AckRequest {
                host: "h".into(),
                resource: resource.into(),
                reason: "change window".into(),
                by: "alice".into(),
                expires_ms,
            };
            let f = fleet.clone();
            async move {
                f.ask(|reply| Command::Ack { req, reply })
                    .await
                    .expect("fleet")
            }
        };
        let list = || {
            let f = fleet.clone();
            async move {
                f.ask(|reply| Command::ListAcks { reply })
                    .await
                    .expect("fleet")
            }
        };

        assert_eq!(
            ack("file:/etc/zzz", None)
                .await
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("h has no open drift on file:/etc/zzz")
        );
        assert_eq!(
            ack("file:/etc/a", Some(999_999))
                .await
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("the expiry is in the past")
        );
        let made = ack("file:/etc/a", Some(1_000_500))
            .await
            .expect("acknowledged");
        assert_eq!((made.by.as_str(), made.at_ms), ("alice", 1_000_000));
        let view = view_of(&fleet, "h").await;
        assert_eq!(view.acks.len(), 1, "the view carries the acknowledgement");
        assert_eq!(
            view.status,
            HostStatus::Drifted,
            "acknowledged drift stays visible"
        );

        // Time passes the expiry: the next tick ends it.
        time.store(1_000_499, Ordering::SeqCst);
        fleet.send(Command::Tick).await.expect("tick");
        assert_eq!(list().await.len(), 1);
        time.store(1_000_500, Ordering::SeqCst);
        fleet.send(Command::Tick).await.expect("tick");
        assert!(list().await.is_empty(), "expired");

        // An acknowledgement ends when its drift resolves.
        ack("file:/etc/a", None).await.expect("acknowledged again");
        fleet
            .send(state(0o100644, 2, Report::Delta))
            .await
            .expect("send");
        assert!(
            list().await.is_empty(),
            "resolved drift releases its acknowledgement"
        );

        let history = fleet.history(Some("h".into()), 100).await.expect("history");
        let kinds: Vec<&str> = history.0.iter().rev().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "host_online",
                "opened",
                "acknowledged",
                "ack_expired",
                "acknowledged",
                "resolved",
                "ack_revoked"
            ]
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

/// Keys are typed: a file an agent names `package:nginx` is a file, undeclared, and cannot
/// stand in for the package of that name (with string keys it replaced the package's
/// observation, and the package's drift was resolved).
#[test]
fn a_file_named_like_a_package_key_is_not_the_package() {
    let Harness {
        dir: _dir,
        fleet,
        thread,
        runtime,
        ..
    } = harness("name: m\nhosts: [\"*\"]\npackages:\n  nginx: present\n");
    runtime.block_on(async {
        let (conn, generation, mut rx) = connect(&fleet).await;
        let absent = Observation::Package(Box::new(crate::drift::ObservedPackage {
            instances: vec![],
            error: None,
            problems: vec![],
        }));
        let state = |states, seq, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states,
            turn: Default::default(),
        };
        let drift = || async {
            view_of(&fleet, "h")
                .await
                .drift
                .iter()
                .map(|d| format!("{} {}", d.resource, d.attribute))
                .collect::<Vec<_>>()
        };
        fleet
            .send(state(
                vec![(Key::package("nginx"), absent, None)],
                1,
                Report::Snapshot,
            ))
            .await
            .expect("send");
        let Some(ToAgent::Ack { seq: 1 }) = rx.recv().await else {
            panic!("the snapshot is acknowledged")
        };
        assert_eq!(drift().await, ["package:nginx version"]);

        let impostor = vec![(Key::file("package:nginx"), file(0o100644), None)];
        fleet
            .send(state(impostor, 2, Report::Delta))
            .await
            .expect("send");
        let Some(ToAgent::Ack { seq: 2 }) = rx.recv().await else {
            panic!("the delta is acknowledged")
        };
        assert_eq!(drift().await, ["package:nginx version"], "still open");
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

#[test]
fn a_connected_hosts_last_seen_is_stored_every_30_s_and_at_once_when_it_disconnects() {
    let Harness {
        dir,
        time,
        fleet,
        thread,
        runtime,
    } = harness(MANIFEST);
    let reader = SqliteStore::open(&dir.path().join("data")).expect("a second connection");
    let stored = || reader.load_hosts().expect("hosts")[0].last_seen_ms;
    runtime.block_on(async {
        let heartbeats = Arc::new(crate::fleet::Heartbeats::default());
        let (out, _rx) = mpsc::channel(64);
        let conn = fleet
            .connect(
                HostInfo {
                    host_id: "h".into(),
                    ..Default::default()
                },
                out,
                heartbeats.clone(),
                false,
            )
            .await
            .expect("accepted");
        assert_eq!(stored(), 1_000_000, "written on connect");
        // Heard (as the stream's task counts it), then a tick; a Hosts round trip makes sure
        // the tick was handled.
        let heard_at = |ms| {
            time.store(ms, Ordering::SeqCst);
            heartbeats.heard();
            let fleet = fleet.clone();
            async move {
                fleet.send(Command::Tick).await.expect("tick");
                fleet
                    .ask(|reply| Command::Hosts { reply })
                    .await
                    .expect("fleet");
            }
        };
        heard_at(1_010_000).await;
        assert_eq!(stored(), 1_000_000, "not rewritten within 30 s");
        heard_at(1_031_000).await;
        assert_eq!(stored(), 1_031_000, "rewritten once 30 s old");
        heard_at(1_035_000).await;
        assert_eq!(stored(), 1_031_000);
        fleet
            .send(Command::Disconnected { conn })
            .await
            .expect("disconnect");
        fleet
            .ask(|reply| Command::Hosts { reply })
            .await
            .expect("fleet");
        assert_eq!(stored(), 1_035_000, "written at once when it goes");
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

// Regression (issue 12, weak): without TLS, an agent claiming another host's id replaced the
// real one's stream, and its snapshot wrote a false `resolved` event before the real agent
// took over again.
#[test]
fn without_tls_a_second_stream_for_a_live_host_is_refused_and_the_first_kept() {
    let Harness {
        dir: _dir,
        time: _time,
        fleet,
        thread,
        runtime,
    } = harness(MANIFEST);
    runtime.block_on(async {
        let (conn, generation, mut rx) = connect(&fleet).await;
        fleet
            .send(Command::State {
                conn,
                report: Report::Snapshot,
                generation,
                seq: 1,
                states: vec![(Key::file("/etc/a"), file(0o100600), None)],
                turn: Default::default(),
            })
            .await
            .expect("send");
        let Some(ToAgent::Ack { seq: 1 }) = rx.recv().await else {
            panic!("acknowledged")
        };
        let second = |takeover| {
            let fleet = fleet.clone();
            async move {
                let (out, rx) = mpsc::channel(64);
                let info = HostInfo {
                    host_id: "h".into(),
                    ..Default::default()
                };
                let r = fleet
                    .ask(|reply| Command::Connect {
                        info,
                        out,
                        heartbeats: Default::default(),
                        takeover,
                        reply,
                    })
                    .await
                    .expect("fleet");
                (r, rx)
            }
        };
        let (refused, _rx2) = second(false).await;
        let why = refused.expect_err("the impostor is refused");
        let why = why.to_string();
        assert!(why.contains("already has a live stream"), "{why}");
        // The first stream is still the host's: its messages count, its drift stands.
        let drift = view_of(&fleet, "h").await.drift;
        assert_eq!(drift.len(), 1, "{drift:?}");
        assert!(
            fleet
                .history(Some("h".into()), 100)
                .await
                .expect("history")
                .0
                .iter()
                .all(|e| e.kind != EventKind::Resolved),
            "no false resolved event"
        );
        // Under mutual TLS the certificate proves the host: the newer stream takes over.
        let (taken, _rx3) = second(true).await;
        assert!(taken.is_ok());
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

// Regression (issue 12, item 8): on a full disk, events went unrecorded while agents were
// acknowledged and drift was shown without a word. Now: writes wait in order, the agent's
// messages are acknowledged only once stored, what cannot be kept makes its host be read
// again, and the outage is itself in the log.
#[test]
fn while_the_store_cannot_write_nothing_is_acknowledged_and_nothing_is_lost_from_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("m.yaml"), MANIFEST).expect("write");
    let set = load_dir(dir.path()).expect("valid");
    let store = SqliteStore::open(&dir.path().join("data")).expect("store");
    let fault = store.fault();
    let (fleet, thread) = Fleet::new(Box::new(store), set, Duration::from_secs(3600))
        .expect("fleet")
        .with_max_pending(4)
        .spawn()
        .expect("spawn");
    let runtime = super::test_runtime();
    runtime.block_on(async {
        let (conn, generation, mut rx) = connect(&fleet).await;
        let state = |mode, seq, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states: vec![(Key::file("/etc/a"), file(mode), None)],
            turn: Default::default(),
        };
        // A round trip through the fleet: whatever it sent before is in `rx` now.
        let settle = || async {
            fleet
                .ask(|reply| Command::Hosts { reply })
                .await
                .expect("fleet")
        };
        fleet
            .send(state(0o100600, 1, Report::Snapshot))
            .await
            .expect("send");
        settle().await;
        assert!(matches!(rx.try_recv(), Ok(ToAgent::Ack { seq: 1 })));

        fault.store(true, Ordering::SeqCst);
        // Resolved, opened, resolved, opened (kept), resolved, opened, resolved (dropped).
        for seq in 2..9 {
            let mode = if seq % 2 == 0 { 0o100644 } else { 0o100600 };
            fleet
                .send(state(mode, seq, Report::Delta))
                .await
                .expect("send");
        }
        let overview = settle().await;
        assert!(rx.try_recv().is_err(), "nothing unstored is acknowledged");
        let warning = overview.warnings.join("\n");
        assert!(
            warning.contains("the store cannot write since") && warning.contains("could not be kept"),
            "{warning}"
        );
        assert_eq!(overview.hosts[0].drift.len(), 0, "the truth is shown meanwhile");
        assert!(
            fleet
                .ask(|reply| Command::Ack {
                    req: AckRequest {
                        host: "h".into(),
                        resource: "file:/etc/a".into(),
                        reason: "r".into(),
                        by: "op".into(),
                        expires_ms: None,
                    },
                    reply,
                })
                .await
                .expect("fleet")
                .is_err(),
            "an operator's change is refused, not kept"
        );

        fault.store(false, Ordering::SeqCst);
        fleet.send(Command::Tick).await.expect("tick");
        let overview = settle().await;
        assert!(overview.warnings.is_empty(), "{:?}", overview.warnings);
        let mut acked = Vec::new();
        let mut replanned = None;
        while let Ok(m) = rx.try_recv() {
            match m {
                ToAgent::Ack { seq } => acked.push(seq),
                ToAgent::Plan(plan) => replanned = Some(plan.generation),
                _ => {}
            }
        }
        assert_eq!(acked, [2, 3, 4, 5], "the kept ones, in order, once stored");
        let generation = replanned.expect("the host whose writes were dropped is read again");
        // Its snapshot is judged against what the log holds (opened at seq 5): the drift that
        // ended while writes were dropped is resolved now, in the log.
        fleet
            .send(Command::State {
                conn,
                report: Report::Snapshot,
                generation,
                seq: 9,
                states: vec![(Key::file("/etc/a"), file(0o100644), None)],
                turn: Default::default(),
            })
            .await
            .expect("send");
        settle().await;
        let (events, _) = fleet.history(None, 100).await.expect("history");
        let kinds: Vec<&str> = events.iter().rev().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "log_created",
                "host_online",
                "opened",
                "resolved",
                "opened",
                "resolved",
                "opened",
                "store_outage",
                "resolved",
            ]
        );
        let outage = events[1].item.as_ref().expect("item");
        assert!(
            outage.actual.contains("4 write(s) were made late, in order; 3 could not be kept, so these hosts were read again: h"),
            "{}",
            outage.actual
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

/// The overview's trend: drift opened before it was first asked for is read from the store,
/// drift after it is counted as it is published; a scoped person sees only their hosts and
/// no trend.
#[test]
fn the_consoles_summary_counts_drift_per_day_from_the_store_then_as_it_happens() {
    use crate::role::{Scope, Selector};
    let Harness {
        dir: _dir,
        time: _time,
        fleet,
        thread,
        runtime,
    } = harness(MANIFEST);
    runtime.block_on(async {
        let (conn, generation, _rx) = connect(&fleet).await;
        let state = |mode, seq, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states: vec![(Key::file("/etc/a"), file(mode), None)],
            turn: Default::default(),
        };
        fleet
            .send(state(0o100600, 1, Report::Snapshot))
            .await
            .expect("send");
        let today = |s: &super::console::Summary| *s.trend.last().expect("14 days");
        let s = fleet.summary(Scope::default()).await.expect("summary");
        assert_eq!((s.hosts, s.drift_open, s.unauthorised_open), (1, 1, 1));
        assert_eq!(s.trend.len(), 14);
        assert_eq!((today(&s).1, today(&s).2), (1, 0), "opened, from the store");
        fleet
            .send(state(0o100644, 2, Report::Delta))
            .await
            .expect("send");
        fleet
            .send(state(0o100600, 3, Report::Delta))
            .await
            .expect("send");
        let s = fleet.summary(Scope::default()).await.expect("summary");
        assert_eq!(
            (today(&s).1, today(&s).2),
            (2, 1),
            "resolved and opened again, counted as published"
        );
        let elsewhere = Scope {
            selectors: vec![Selector {
                hosts: vec![crate::manifest::glob::Glob::new("db-*").expect("glob")],
                labels: Default::default(),
            }],
        };
        let s = fleet.summary(elsewhere).await.expect("summary");
        assert_eq!((s.hosts, s.drift_open), (0, 0));
        assert!(
            s.trend.is_empty(),
            "the fleet's trend is not a scoped person's"
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

mod baselines;
mod evidence;
mod moment;
