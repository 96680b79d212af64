//! Incidents from scripted histories: the whole log, and a period read from its start.

use super::*;

fn event(id: i64, at_ms: i64, kind: EventKind, attribute: &str, actual: &str) -> Event {
    Event {
        id,
        at_ms,
        host_id: "web-1".into(),
        kind,
        item: Some(crate::model::DriftRecord {
            resource: "file:/etc/a".into(),
            attribute: attribute.into(),
            expected: if kind == EventKind::Acknowledged {
                "alice".into()
            } else {
                "0644".into()
            },
            actual: actual.into(),
            since_ms: at_ms,
            declared_at: "m.yaml:4".into(),
            evidence: Default::default(),
        }),
    }
}

fn with(mut e: Event, evidence: crate::evidence::Evidence) -> Event {
    if let Some(item) = e.item.as_mut() {
        item.evidence = evidence;
    }
    e
}

/// Two incidents on web-1 (mode: opened, acknowledged, changed, resolved; owner: opened)
/// and one (group) over before the periods the tests ask about; ids not in time order.
fn scripted() -> Vec<Event> {
    use crate::evidence::{Evidence, Process, Resolution, Transaction};
    use EventKind as K;
    let alice = Who::Process(Box::new(Process {
        origin: "manual".into(),
        name: "vim".into(),
        user: "alice".into(),
        ..Default::default()
    }));
    let mut events = vec![
        with(
            event(4, 4_000, K::Resolved, "mode", "0600"),
            Evidence {
                who: Some(alice.clone()),
                authorisation: Some(Authorisation::Unauthorised),
                resolution: Some(Resolution::Reverted),
            },
        ),
        with(
            event(1, 1_000, K::Opened, "mode", "0600"),
            Evidence {
                who: Some(alice.clone()),
                authorisation: Some(Authorisation::Unauthorised),
                resolution: None,
            },
        ),
        event(
            2,
            2_000,
            K::Acknowledged,
            "ack",
            "change <window> \"CHG-1\"",
        ),
        event(3, 3_000, K::Changed, "mode", "0640"),
        with(
            event(5, 5_000, K::Opened, "owner", "bob"),
            Evidence {
                who: Some(Who::Package(Box::new(Transaction {
                    manager: "apt".into(),
                    ..Default::default()
                }))),
                authorisation: Some(Authorisation::Authorised {
                    change: "CHG-1".into(),
                }),
                resolution: None,
            },
        ),
        event(6, 500, K::Opened, "group", "adm"),
        event(7, 600, K::Resolved, "group", "adm"),
    ];
    // An acknowledgement without an end; a change keeps its drift's beginning.
    events[2].item.as_mut().expect("an item").since_ms = 0;
    events[3].item.as_mut().expect("an item").since_ms = 1_000;
    events
}

#[test]
fn incidents_from_a_scripted_history() {
    let events = scripted();
    let hosts = vec![HostView {
        info: crate::model::HostInfo {
            host_id: "web-1".into(),
            ..Default::default()
        },
        status: HostStatus::Drifted,
        last_seen_ms: 0,
        drift: Vec::new(),
        manifests: Vec::new(),
        coverage: None,
        acks: Vec::new(),
        controller: None,
    }];
    let r = build(&[], events, 900, 10_000, &hosts);
    type Row<'a> = (&'a str, i64, Option<i64>, Option<&'a str>, &'a str);
    let got: Vec<Row<'_>> = r
        .incidents
        .iter()
        .map(|i| {
            (
                i.attribute.as_str(),
                i.opened_ms,
                i.resolved_ms,
                i.acknowledged.as_deref(),
                i.actual.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "mode",
                1_000,
                Some(4_000),
                Some("by alice: change <window> \"CHG-1\""),
                "0640"
            ),
            ("owner", 5_000, None, None, "bob"),
        ],
        "the group incident ended before the period"
    );
    assert_eq!(r.mttr_seconds(), Some(3.0));
    assert_eq!((r.hosts, r.hosts_in_sync), (1, 0));

    let csv = csv(&r);
    assert_eq!(csv.lines().count(), 3);
    assert!(
        csv.contains("\"by alice: change <window> \"\"CHG-1\"\"\""),
        "{csv}"
    );
    let html = html(&r);
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.contains("change &lt;window&gt; &quot;CHG-1&quot;")
    );
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
    let j = json(&r);
    assert_eq!(j["summary"]["mean_time_to_resolve_seconds"], 3.0);
    assert_eq!(j["summary"]["unauthorised"], 1, "{j:#}");
    assert_eq!(j["summary"]["unauthorised_by_host"], json!({"web-1": 1}));
    assert_eq!(j["summary"]["unauthorised_by_origin"], json!({"manual": 1}));
    let first = &j["hosts"][0]["incidents"][0];
    assert_eq!(
        (&first["origin"], &first["authorised"], &first["resolution"]),
        (
            &json!("manual"),
            &json!(false),
            &json!("reverted on the host, by alice: vim")
        )
    );
    assert_eq!(j["hosts"][0]["incidents"][1]["change"], "CHG-1");
    assert!(
        html.contains("Unauthorised changes: 1") && html.contains("<td>manual</td><td>1</td>"),
        "{html}"
    );
    assert!(
        csv.lines()
            .next()
            .is_some_and(|h| h.ends_with(",origin,who,authorised,change,resolution"))
    );
    assert_eq!(j["hosts"][0]["incidents"][0]["duration_seconds"], 3.0);
    assert_eq!(j["hosts"][0]["incidents"][1]["resolved"], Value::Null);
}

/// The hosts as they stood at `at_ms`, as the fleet answers `moment` (identity: the id).
fn at(events: &[Event], at_ms: i64) -> Vec<HostView> {
    let mut by_id = events.to_vec();
    by_id.sort_by_key(|e| e.id);
    crate::moment::hosts(&crate::moment::replay(&by_id, at_ms))
        .into_iter()
        .map(|h| HostView {
            info: crate::model::HostInfo {
                host_id: h.host_id,
                ..Default::default()
            },
            status: h.status,
            last_seen_ms: h.since_ms,
            drift: h.drift,
            manifests: Vec::new(),
            coverage: None,
            acks: h.acks,
            controller: None,
        })
        .collect()
}

#[test]
fn a_period_read_from_its_start_and_its_own_entries_has_the_incidents_of_the_log_until_its_end() {
    let mut events = scripted();
    events.push(Event {
        id: 0,
        at_ms: 100,
        host_id: "web-1".into(),
        kind: EventKind::HostOnline,
        item: None,
    });
    for since in [900, 1_500, 2_500, 4_500] {
        let until = since + 3_000;
        // The whole log up to the period's end (what came after is not the period's).
        let before_end: Vec<Event> = events.iter().filter(|e| e.at_ms < until).cloned().collect();
        let whole = build(&[], before_end, since, until, &[]);
        let own: Vec<Event> = events
            .iter()
            .filter(|e| since <= e.at_ms && e.at_ms < until)
            .cloned()
            .collect();
        let read = build(&at(&events, since), own.clone(), since, until, &[]);
        assert_eq!(read.incidents, whole.incidents, "from {since}");
        assert!(!read.incidents.is_empty(), "from {since}");
        if since > 1_000 && since < 4_000 {
            // The mode drift opened before the period: only its start says so.
            let alone = build(&[], own, since, until, &[]);
            assert!(
                alone.incidents.len() < read.incidents.len(),
                "from {since}: {:?}",
                alone.incidents
            );
        }
    }
}
