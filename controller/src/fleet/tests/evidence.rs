//! Evidence on the fleet's movable clock: who made each change stays with its drift and its
//! resolution, and change windows authorise drift in their scope and time.

use super::*;

/// Who made each change goes with the drift it opened or changed, and what put it right with
/// its resolution: the host put back (by whom), or a manifest change (its commit).
#[test]
fn who_made_a_change_stays_with_its_drift_and_its_resolution_says_how() {
    use crate::evidence::{Process, Resolution, Who};
    let Harness {
        dir,
        time: _time,
        fleet,
        thread,
        runtime,
    } = harness(MANIFEST);
    let by = |name: &str| {
        Who::Process(Box::new(Process {
            origin: "manual".into(),
            name: name.into(),
            uid: Some(0),
            login_uid: Some(1000),
            ..Default::default()
        }))
    };
    runtime.block_on(async {
        let (conn, generation, _rx) = connect(&fleet).await;
        let state = |mode, seq, report, who: Option<Who>| Command::State {
            conn,
            report,
            generation,
            seq,
            states: vec![(Key::file("/etc/a"), file(mode), who)],
            turn: Default::default(),
        };
        let history = || {
            let f = fleet.clone();
            async move { f.history(Some("h".into()), 100).await.expect("history").0 }
        };
        let open_drift = || async { view_of(&fleet, "h").await.drift };
        fleet
            .send(state(0o100644, 1, Report::Snapshot, None))
            .await
            .expect("send");
        fleet
            .send(state(0o100600, 2, Report::Delta, Some(by("chmod"))))
            .await
            .expect("send");
        let open = open_drift().await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].evidence.who, Some(by("chmod")));
        fleet
            .send(state(0o100640, 3, Report::Delta, Some(by("install"))))
            .await
            .expect("send");
        assert_eq!(
            open_drift().await[0].evidence.who,
            Some(by("install")),
            "changed again: the latest writer"
        );
        fleet
            .send(state(0o100644, 4, Report::Delta, Some(by("sed"))))
            .await
            .expect("send");
        // Drifted again, then made desired by the manifests.
        fleet
            .send(state(0o100600, 5, Report::Delta, Some(by("chmod"))))
            .await
            .expect("send");
        std::fs::write(dir.path().join("m.yaml"), MANIFEST.replace("0644", "0600")).expect("write");
        let set = load_dir(dir.path()).expect("valid");
        fleet
            .send(Command::Manifests {
                result: Ok(set),
                source: "commit 0123abc".into(),
            })
            .await
            .expect("send");
        let events = history().await;
        let said: Vec<(&str, Option<String>, Option<Resolution>)> = events
            .iter()
            .rev()
            .filter_map(|e| {
                let d = e.item.as_ref()?;
                Some((
                    e.kind.as_str(),
                    d.evidence.who.as_ref().map(|w| match w {
                        Who::Process(p) => p.name.clone(),
                        other => format!("{other:?}"),
                    }),
                    d.evidence.resolution.clone(),
                ))
            })
            .collect();
        assert_eq!(
            said,
            [
                ("opened", Some("chmod".into()), None),
                ("changed", Some("install".into()), None),
                ("resolved", Some("sed".into()), Some(Resolution::Reverted)),
                ("opened", Some("chmod".into()), None),
                (
                    "resolved",
                    None,
                    Some(Resolution::ManifestChanged {
                        commit: "commit 0123abc".into()
                    })
                ),
            ]
        );
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}

/// Change windows on the fleet's clock: drift inside an open window that covers it is
/// authorised with its ticket, any other is not; a window's end says what it authorised that
/// is still drifted; one closed early ends at once; a ticket is one window.
#[test]
fn change_windows_authorise_drift_in_scope_and_time_and_end_on_the_fleets_clock() {
    use crate::evidence::Authorisation;
    use crate::window::{ChangeWindow, Scope};
    const TWO: &str = "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0644\"\n  /etc/b:\n    mode: \"0644\"\n";
    let Harness {
        dir: _dir,
        time,
        fleet,
        thread,
        runtime,
    } = harness(TWO);
    let window = |ticket: &str, paths: &[&str]| ChangeWindow {
        ticket: ticket.into(),
        scope: Scope {
            hosts: vec!["h".into()],
            paths: paths.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        },
        from_ms: 0,
        until_ms: 0,
        opened_by: "alice".into(),
        reason: "a change".into(),
        closed: None,
        ended: false,
    };
    runtime.block_on(async {
        let (conn, generation, _rx) = connect(&fleet).await;
        let mut seq = 0;
        let mut state = |a, b| {
            seq += 1;
            Command::State {
                conn,
                report: if seq == 1 {
                    Report::Snapshot
                } else {
                    Report::Delta
                },
                generation,
                seq,
                states: vec![
                    (Key::file("/etc/a"), file(a), None),
                    (Key::file("/etc/b"), file(b), None),
                ],
                turn: Default::default(),
            }
        };
        let authorisations = || async {
            let mut found: Vec<(String, Option<Authorisation>)> = view_of(&fleet, "h")
                .await
                .drift
                .into_iter()
                .map(|d| (d.resource, d.evidence.authorisation))
                .collect();
            found.sort_by(|x, y| x.0.cmp(&y.0));
            found
        };
        fleet
            .send(state(0o100644, 0o100644, ))
            .await
            .expect("send");
        // One hour for /etc/a on h, from now (1,000,000 ms on the fleet's clock).
        let opened = fleet
            .open_window(window("CHG-1", &["/etc/a"]), Some(3_600_000))
            .await
            .expect("opened");
        assert_eq!((opened.from_ms, opened.until_ms), (1_000_000, 4_600_000));
        let again = fleet
            .open_window(window("CHG-1", &[]), Some(1))
            .await
            .expect_err("one window per ticket");
        assert!(again.to_string().contains("exists already"), "{again}");
        fleet
            .send(state(0o100600, 0o100600))
            .await
            .expect("send");
        let by = |t: &str| Some(Authorisation::Authorised { change: t.into() });
        assert_eq!(
            authorisations().await,
            [
                ("file:/etc/a".to_owned(), by("CHG-1")),
                ("file:/etc/b".to_owned(), Some(Authorisation::Unauthorised)),
            ],
            "in scope and time; out of scope"
        );
        // The hour passes: the window ends, saying what it left drifted.
        time.store(4_600_000, Ordering::SeqCst);
        fleet.send(Command::Tick).await.expect("tick");
        fleet
            .send(state(0o100640, 0o100644))
            .await
            .expect("send");
        assert_eq!(
            authorisations().await,
            [("file:/etc/a".to_owned(), Some(Authorisation::Unauthorised))],
            "after its end, a change is unauthorised"
        );
        // Closed early: over at once.
        fleet
            .open_window(window("CHG-2", &[]), Some(60_000))
            .await
            .expect("opened");
        let closed = fleet
            .close_window("CHG-2".into(), "bob".into())
            .await
            .expect("closed");
        assert_eq!(closed.closed, Some((4_600_000, "bob".into())));
        fleet
            .send(state(0o100600, 0o100644))
            .await
            .expect("send");
        assert_eq!(
            authorisations().await,
            [("file:/etc/a".to_owned(), Some(Authorisation::Unauthorised))]
        );
        let gone = fleet
            .close_window("CHG-2".into(), "bob".into())
            .await
            .expect_err("over");
        assert!(gone.to_string().contains("over already"), "{gone}");
        let (events, _) = fleet.history(None, 100).await.expect("history");
        let windows: Vec<(&str, String)> = events
            .iter()
            .rev()
            .filter(|e| e.host_id.is_empty())
            .filter_map(|e| Some((e.kind.as_str(), e.item.as_ref()?.actual.clone())))
            .filter(|(k, _)| k.starts_with("change_"))
            .collect();
        assert_eq!(
            windows,
            [
                ("change_opened", "a change".to_owned()),
                (
                    "change_ended",
                    "change CHG-1 ended with 1 item still drifted: update the manifests or revert (h file:/etc/a)".to_owned()
                ),
                ("change_opened", "a change".to_owned()),
                ("change_closed", "closed early by bob".to_owned()),
                (
                    "change_ended",
                    "change CHG-2 ended with nothing it authorised still drifted".to_owned()
                ),
            ]
        );
        let listed = fleet.windows().await.expect("windows");
        assert!(listed.iter().all(|w| w.ended), "{listed:?}");
        fleet.send(Command::Shutdown).await.expect("shutdown");
    });
    thread.join().expect("the fleet thread did not panic");
}
