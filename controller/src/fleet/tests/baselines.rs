//! Baselines on the fleet: one host's change moves its peers' drift, a tie is said, and the
//! log says how each drift ended (the host put right, or its peers changed).

use super::*;
use crate::evidence::Resolution;

const WEB: &str = "name: web\nhosts: [\"web-*\"]\nbaseline:\n  files:\n    - /etc/app.conf\n";

fn content(text: &str) -> Observation {
    let Observation::File(mut o) = file(0o100644) else {
        unreachable!()
    };
    o.sha256 = Some(crate::digest::Digest::of(text.as_bytes()));
    Observation::File(o)
}

/// Connects `host`; returns its connection and its plan's generation, having checked that
/// the plan asks for the compared path hashed.
async fn join(fleet: &FleetHandle, host: &str) -> (u64, u64, mpsc::Receiver<ToAgent>) {
    let (conn, generation, rx, paths) = connect_as(fleet, host).await;
    assert_eq!(
        paths
            .iter()
            .map(|p| (p.path.as_str(), p.hash))
            .collect::<Vec<_>>(),
        [("/etc/app.conf", true)],
        "the compared path is asked for, with its digest"
    );
    (conn, generation, rx)
}

/// Each host's open drift as (host, attribute, expected).
async fn drift(fleet: &FleetHandle) -> Vec<(String, String, String)> {
    let overview = fleet.overview().await.expect("overview");
    overview
        .hosts
        .iter()
        .flat_map(|h| {
            h.drift.iter().map(|d| {
                (
                    h.info.host_id.clone(),
                    d.attribute.clone(),
                    d.expected.clone(),
                )
            })
        })
        .collect()
}

#[test]
fn the_odd_host_out_is_drift_and_its_peers_move_with_the_majority() {
    let Harness {
        dir: _dir,
        time: _,
        fleet,
        thread,
        runtime,
    } = harness(WEB);
    runtime.block_on(async {
        let mut conns = Vec::new();
        for i in 1..=5 {
            let host = format!("web-{i}");
            let (conn, generation, rx) = join(&fleet, &host).await;
            conns.push((conn, generation, rx));
        }
        let mut seq = 0;
        let mut say = |i: usize, text: &str, report: Report| {
            let (conn, generation, _) = &conns[i - 1];
            seq += 1;
            Command::State {
                conn: *conn,
                report,
                generation: *generation,
                seq,
                states: vec![(Key::file("/etc/app.conf"), content(text), None)],
                turn: Default::default(),
            }
        };
        for i in 1..=5 {
            let text = if i == 4 {
                "listen 8080\n"
            } else {
                "listen 80\n"
            };
            fleet
                .send(say(i, text, Report::Snapshot))
                .await
                .expect("send");
        }
        let majority = crate::digest::Digest::of(b"listen 80\n").to_hex();
        assert_eq!(
            drift(&fleet).await,
            [(
                "web-4".into(),
                "baseline.sha256".into(),
                format!("{majority} (as most of web)")
            )],
            "the odd one out, and only it"
        );

        // web-4 is put right; then three hosts move to a new value, one by one: once they are
        // the majority, the two left behind are the odd ones out.
        fleet
            .send(say(4, "listen 80\n", Report::Delta))
            .await
            .expect("send");
        assert_eq!(drift(&fleet).await, []);
        fleet
            .send(say(1, "listen 443\n", Report::Delta))
            .await
            .expect("send");
        fleet
            .send(say(2, "listen 443\n", Report::Delta))
            .await
            .expect("send");
        assert_eq!(
            drift(&fleet)
                .await
                .iter()
                .map(|d| d.0.as_str())
                .collect::<Vec<_>>(),
            ["web-1", "web-2"]
        );
        fleet
            .send(say(3, "listen 443\n", Report::Delta))
            .await
            .expect("send");
        let new = crate::digest::Digest::of(b"listen 443\n").to_hex();
        assert_eq!(
            drift(&fleet).await,
            [
                (
                    "web-4".into(),
                    "baseline.sha256".into(),
                    format!("{new} (as most of web)")
                ),
                (
                    "web-5".into(),
                    "baseline.sha256".into(),
                    format!("{new} (as most of web)")
                ),
            ],
            "the majority moved: the hosts that did not are the odd ones out now"
        );

        let (log, _) = fleet.history(None, 100).await.expect("log");
        let said: Vec<(String, &str, Option<Resolution>)> = log
            .iter()
            .rev()
            .filter(|e| e.item.is_some())
            .map(|e| {
                let d = e.item.as_ref().expect("item");
                (
                    e.host_id.clone(),
                    e.kind.as_str(),
                    d.evidence.resolution.clone(),
                )
            })
            .collect();
        let row = |h: &str, kind, how| (h.to_owned(), kind, how);
        assert_eq!(
            said,
            [
                // The first to report had no one to be compared with, until the second did.
                row("web-1", "opened", None),
                row("web-1", "resolved", Some(Resolution::PeersChanged)),
                row("web-4", "opened", None),
                row("web-4", "resolved", Some(Resolution::Reverted)),
                row("web-1", "opened", None),
                row("web-2", "opened", None),
                row("web-1", "resolved", Some(Resolution::PeersChanged)),
                row("web-2", "resolved", Some(Resolution::PeersChanged)),
                row("web-4", "opened", None),
                row("web-5", "opened", None),
            ],
            "who changed is in each host's own entry; the peers' ends say the group moved"
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

#[test]
fn a_tie_is_drift_on_every_host_of_it_until_one_side_wins() {
    let Harness {
        dir: _dir,
        time: _,
        fleet,
        thread,
        runtime,
    } = harness(WEB);
    runtime.block_on(async {
        let (a, ga, _ra) = join(&fleet, "web-a").await;
        let (b, gb, _rb) = join(&fleet, "web-b").await;
        let state = |conn, generation, seq, text: &str, report| Command::State {
            conn,
            report,
            generation,
            seq,
            states: vec![(Key::file("/etc/app.conf"), content(text), None)],
            turn: Default::default(),
        };
        fleet
            .send(state(a, ga, 1, "x", Report::Snapshot))
            .await
            .expect("send");
        assert_eq!(
            drift(&fleet).await,
            [(
                "web-a".into(),
                "baseline.type".into(),
                "a majority of web, and there is none: no other host has reported it".into()
            )],
            "alone, a host is not in sync with a group"
        );
        fleet
            .send(state(b, gb, 1, "y", Report::Snapshot))
            .await
            .expect("send");
        let tie = "a majority of web, and there is none: 2 variants held by 1, 1 hosts";
        assert_eq!(
            drift(&fleet).await,
            [
                ("web-a".into(), "baseline.sha256".into(), tie.into()),
                ("web-b".into(), "baseline.sha256".into(), tie.into()),
            ],
            "a tie is said on both, never guessed"
        );
        fleet
            .send(state(b, gb, 2, "x", Report::Delta))
            .await
            .expect("send");
        assert_eq!(drift(&fleet).await, [], "alike: in sync");
        let overview = fleet.overview().await.expect("overview");
        assert!(
            overview
                .hosts
                .iter()
                .all(|h| h.status == HostStatus::InSync),
            "{:?}",
            overview.hosts.iter().map(|h| h.status).collect::<Vec<_>>()
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

/// `plumb baseline accept` leaves out what another manifest declares with values for a host
/// of the group (the accepted manifest would declare it twice, differently, for that host),
/// and says why.
#[test]
fn accepting_a_group_leaves_out_a_path_pinned_for_one_of_its_hosts() {
    let Harness {
        dir,
        time: _,
        fleet,
        thread,
        runtime,
    } = harness(WEB);
    runtime.block_on(async {
        std::fs::write(
            dir.path().join("pinned.yaml"),
            "name: pinned\nhosts: [\"web-9\"]\nfiles:\n  /etc/app.conf:\n    mode: \"0600\"\n",
        )
        .expect("write");
        let set = load_dir(dir.path()).expect("valid");
        fleet
            .send(Command::Manifests {
                result: Ok(set),
                source: "test".into(),
            })
            .await
            .expect("send");
        for (seq, host) in [(1, "web-1"), (2, "web-2")] {
            let (conn, generation, _rx) = join(&fleet, host).await;
            fleet
                .send(Command::State {
                    conn,
                    report: Report::Snapshot,
                    generation,
                    seq,
                    states: vec![(Key::file("/etc/app.conf"), content("x"), None)],
                    turn: Default::default(),
                })
                .await
                .expect("send");
        }
        let accepted = fleet.accept("web".into(), None).await.expect("accepted");
        assert_eq!(accepted.len(), 1);
        assert!(accepted[0].manifest.contains("/etc/app.conf"), "while no host is pinned");
        assert!(accepted[0].undecided.is_empty());

        // web-9 joins: /etc/app.conf is pinned for it.
        let (_, _, _rx, paths) = connect_as(&fleet, "web-9").await;
        assert_eq!(paths.len(), 1);
        assert!(!paths[0].hash, "declared with a mode only: not hashed");
        let accepted = fleet.accept("web".into(), None).await.expect("accepted");
        assert_eq!(
            accepted[0].undecided,
            ["file:/etc/app.conf: declared with values for web-9 by another manifest; left to that declaration"]
        );
        assert!(!accepted[0].manifest.contains("\"/etc/app.conf\":"), "{}", accepted[0].manifest);
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

/// A baseline's glob: what it matches on each host is compared; a path some hosts have and
/// one lacks is drift on the one (absent), a path only one has is drift on it, and a match
/// a host held before and does not report in its next snapshot is gone from it.
#[test]
fn a_glob_compares_every_path_it_matches_on_each_host() {
    let Harness {
        dir: _dir,
        time: _,
        fleet,
        thread,
        runtime,
    } = harness("name: web\nhosts: [\"web-*\"]\nbaseline:\n  files:\n    - /etc/app.d/**\n");
    runtime.block_on(async {
        let snapshot = |conn, generation, seq, files: &[&str]| Command::State {
            conn,
            report: Report::Snapshot,
            generation,
            seq,
            states: files
                .iter()
                .map(|f| (Key::file(&format!("/etc/app.d/{f}")), content("x"), None))
                .collect(),
            turn: Default::default(),
        };
        let mut conns = Vec::new();
        for host in ["web-1", "web-2", "web-3"] {
            let (conn, generation, rx, paths) = connect_as(&fleet, host).await;
            assert_eq!(
                paths
                    .iter()
                    .map(|p| (p.path.as_str(), p.hash, p.expand))
                    .collect::<Vec<_>>(),
                [("/etc/app.d/**", true, true)],
                "the agent expands the glob"
            );
            conns.push((conn, generation, rx));
        }
        fleet
            .send(snapshot(conns[0].0, conns[0].1, 1, &["a.conf", "b.conf"]))
            .await
            .expect("send");
        fleet
            .send(snapshot(conns[1].0, conns[1].1, 1, &["a.conf", "b.conf"]))
            .await
            .expect("send");
        fleet
            .send(snapshot(
                conns[2].0,
                conns[2].1,
                1,
                &["a.conf", "extra.conf"],
            ))
            .await
            .expect("send");
        let most = |v: &str| format!("{v} (as most of web)");
        let overview = fleet.overview().await.expect("overview");
        let items: Vec<(String, String, String, String)> = overview
            .hosts
            .iter()
            .flat_map(|h| {
                h.drift.iter().map(|d| {
                    (
                        h.info.host_id.clone(),
                        d.resource.clone(),
                        d.expected.clone(),
                        d.actual.clone(),
                    )
                })
            })
            .collect();
        assert_eq!(
            items,
            [
                (
                    "web-3".into(),
                    "file:/etc/app.d/b.conf".into(),
                    most("file"),
                    "absent".into()
                ),
                (
                    "web-3".into(),
                    "file:/etc/app.d/extra.conf".into(),
                    most("absent"),
                    "file".into()
                ),
            ],
            "the path web-3 lacks, and the one only it has"
        );
        let groups = fleet
            .diverge(Some("web".into()), None)
            .await
            .expect("diverge");
        assert_eq!(
            groups.iter().map(|d| d.key.to_string()).collect::<Vec<_>>(),
            [
                "file:/etc/app.d/a.conf",
                "file:/etc/app.d/b.conf",
                "file:/etc/app.d/extra.conf"
            ]
        );

        // web-3 put right, and seen again from a new stream: extra.conf is not reported, so
        // it is gone; b.conf is there.
        let (gone, _, _) = conns.pop().expect("web-3");
        fleet
            .send(Command::Disconnected { conn: gone })
            .await
            .expect("send");
        let (conn, generation, _rx, _) = connect_as(&fleet, "web-3").await;
        fleet
            .send(snapshot(conn, generation, 1, &["a.conf", "b.conf"]))
            .await
            .expect("send");
        let overview = fleet.overview().await.expect("overview");
        assert!(
            overview.hosts.iter().all(|h| h.drift.is_empty()),
            "{:?}",
            overview
                .hosts
                .iter()
                .map(|h| (&h.info.host_id, &h.drift))
                .collect::<Vec<_>>()
        );
        let groups = fleet
            .diverge(Some("web".into()), None)
            .await
            .expect("diverge");
        assert_eq!(
            groups.iter().map(|d| d.key.to_string()).collect::<Vec<_>>(),
            ["file:/etc/app.d/a.conf", "file:/etc/app.d/b.conf"],
            "a match gone from every host is left out"
        );

        // web-2 goes offline; web-1 makes a new file. web-3, streaming with its snapshot whole,
        // lacks it; what web-2 has is not known: unreported, never guessed absent.
        fleet
            .send(Command::Disconnected { conn: conns[1].0 })
            .await
            .expect("send");
        fleet
            .send(Command::State {
                conn: conns[0].0,
                report: Report::Delta,
                generation: conns[0].1,
                seq: 2,
                states: vec![(Key::file("/etc/app.d/new.conf"), content("x"), None)],
                turn: Default::default(),
            })
            .await
            .expect("send");
        let new = Key::file("/etc/app.d/new.conf");
        let groups = fleet
            .diverge(Some("web".into()), Some(new.clone()))
            .await
            .expect("diverge");
        assert_eq!(groups[0].unreported, ["web-2"]);
        let types: Vec<(String, Vec<String>)> = groups[0].aspects[0]
            .variants
            .iter()
            .map(|v| (v.value.clone(), v.hosts.clone()))
            .collect();
        assert_eq!(
            types,
            [
                ("absent".to_owned(), vec!["web-3".to_owned()]),
                ("file".to_owned(), vec!["web-1".to_owned()])
            ]
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

/// A host that comes back selected otherwise (its labels changed) leaves its group: what it
/// observed no longer counts there, so the two hosts left are a tie, not a majority with it.
#[test]
fn a_host_selected_otherwise_leaves_its_groups_counts() {
    let Harness {
        dir: _dir,
        time: _,
        fleet,
        thread,
        runtime,
    } = harness("name: web\nlabels: {role: web}\nbaseline:\n  files:\n    - /etc/app.conf\n");
    runtime.block_on(async {
        let connect = |host: &str, role: &str| {
            let info = HostInfo {
                host_id: host.into(),
                labels: [("role".to_owned(), role.to_owned())].into(),
                ..Default::default()
            };
            let fleet = fleet.clone();
            async move {
                let (conn, generation, rx, _) = connect_with(&fleet, info).await;
                (conn, generation, rx)
            }
        };
        let snapshot = |conn, generation, text: &str| Command::State {
            conn,
            report: Report::Snapshot,
            generation,
            seq: 1,
            states: vec![(Key::file("/etc/app.conf"), content(text), None)],
            turn: Default::default(),
        };
        let mut held = Vec::new();
        for (host, text) in [("h1", "x"), ("h2", "y"), ("h3", "y")] {
            let (conn, generation, rx) = connect(host, "web").await;
            fleet
                .send(snapshot(conn, generation, text))
                .await
                .expect("send");
            held.push((conn, rx));
        }
        let drifted = |overview: &Overview| -> Vec<String> {
            overview
                .hosts
                .iter()
                .filter(|h| !h.drift.is_empty())
                .map(|h| h.info.host_id.clone())
                .collect()
        };
        assert_eq!(drifted(&fleet.overview().await.expect("overview")), ["h1"]);

        // h3 comes back as a database server: out of the group.
        fleet
            .send(Command::Disconnected { conn: held[2].0 })
            .await
            .expect("send");
        let (conn, generation, _rx) = connect("h3", "db").await;
        fleet
            .send(Command::State {
                conn,
                report: Report::Snapshot,
                generation,
                seq: 1,
                states: vec![],
                turn: Default::default(),
            })
            .await
            .expect("send");
        let groups = fleet
            .diverge(Some("web".into()), None)
            .await
            .expect("diverge");
        assert_eq!(
            groups[0].standard[1].1,
            crate::baseline::Tally::None(vec![1, 1]),
            "h1 and h2 alone: a tie"
        );
        assert_eq!(
            drifted(&fleet.overview().await.expect("overview")),
            ["h1", "h2"],
            "both sides of the tie are told; h3 is judged by the group no more"
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}
