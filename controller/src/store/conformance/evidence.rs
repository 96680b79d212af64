//! The suite's cases about what drift carries and what approves it: evidence with open drift
//! and its entries, and change windows with theirs.

use super::*;

pub(crate) fn evidence_is_kept_with_open_drift_and_its_events(open: Opener<'_>) {
    use crate::evidence::{Authorisation, Evidence, Process, Resolution, Transaction, Who};
    let mut opened = record("mode", "0600", 2);
    opened.evidence = Evidence {
        who: Some(Who::Process(Box::new(Process {
            origin: "manual".into(),
            action: "attributes".into(),
            pid: 42,
            name: "chmod".into(),
            uid: Some(0),
            login_uid: Some(1000),
            login_user: "alice".into(),
            parents: vec!["bash".into(), "sshd".into()],
            ..Default::default()
        }))),
        authorisation: Some(Authorisation::Authorised {
            change: "CHG-7".into(),
        }),
        resolution: None,
    };
    let mut package = record("version", "1.1", 2);
    package.resource = "package:nginx".into();
    package.evidence = Evidence {
        who: Some(Who::Package(Box::new(Transaction {
            manager: "apt".into(),
            user: "bob".into(),
            uid: Some(1001),
            command: "apt-get install nginx".into(),
            ..Default::default()
        }))),
        authorisation: Some(Authorisation::Unauthorised),
        resolution: None,
    };
    let mut resolved = record("owner", "bob", 1);
    resolved.evidence = Evidence {
        who: Some(Who::Unknown(
            "the writer exited before it could be identified".into(),
        )),
        authorisation: None,
        resolution: Some(Resolution::Reverted),
    };
    {
        let mut store = open();
        put_host(store.as_mut(), "web-1", 1);
        write_record(
            store.as_mut(),
            "web-1",
            1,
            vec![],
            vec![open_change("/etc/a", &record("owner", "bob", 1))],
        );
        let events = write_record(
            store.as_mut(),
            "web-1",
            2,
            vec![],
            vec![
                open_change("/etc/a", &opened),
                open_change("package:nginx", &package),
                Change::Resolve {
                    record: resolved.clone(),
                },
            ],
        );
        let said: Vec<_> = events.iter().filter_map(|e| e.item.clone()).collect();
        assert_eq!(said, [opened.clone(), package.clone(), resolved.clone()]);
    }
    let store = open();
    let mut drift: Vec<DriftRecord> = store
        .load_drift("web-1")
        .expect("drift")
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    drift.sort_by(|a, b| a.resource.cmp(&b.resource));
    assert_eq!(
        drift,
        [opened.clone(), package.clone()],
        "open drift keeps who and why"
    );
    let hosts = store.load_hosts().expect("hosts");
    assert!(
        hosts[0].drift.iter().any(|(_, d)| d == &package),
        "and so does loading every host"
    );
    let history: Vec<DriftRecord> = store
        .history(Some("web-1"), 3)
        .expect("history")
        .into_iter()
        .rev()
        .filter_map(|e| e.item)
        .collect();
    assert_eq!(history, [opened, package, resolved]);
    let v = store.verify(&Trusted::default()).expect("verify");
    assert_eq!(v.problems, Vec::<String>::new());
}

pub(crate) fn change_windows_open_close_and_end_once_with_their_entries(open: Opener<'_>) {
    use crate::store::StoreError;
    use crate::window::{ChangeWindow, Scope};
    let window = |ticket: &str| ChangeWindow {
        ticket: ticket.into(),
        scope: Scope {
            hosts: vec!["web-*".into()],
            labels: [("zone".to_owned(), "a".to_owned())].into(),
            paths: vec!["/etc/nginx/**".into()],
            packages: vec!["nginx".into()],
        },
        from_ms: 100,
        until_ms: 7_300,
        opened_by: "alice".into(),
        reason: "nginx upgrade".into(),
        closed: None,
        ended: false,
    };
    {
        let mut store = open();
        let e = store.open_window(&window("CHG-1"), 100).expect("open");
        assert_eq!(e.kind, EventKind::ChangeOpened);
        let item = e.item.as_ref().expect("item");
        assert_eq!(
            (
                item.resource.as_str(),
                item.actual.as_str(),
                item.declared_at.as_str()
            ),
            ("change:CHG-1", "nginx upgrade", "alice")
        );
        assert!(matches!(
            store.open_window(&window("CHG-1"), 101),
            Err(StoreError::Refused(_))
        ));
        store.open_window(&window("CHG-2"), 102).expect("open");
        let mut closed = window("CHG-2");
        closed.closed = Some((200, "bob".into()));
        let e = store.close_window(&closed).expect("close");
        assert_eq!(e.kind, EventKind::ChangeClosed);
        assert!(
            matches!(store.close_window(&closed), Err(StoreError::Refused(_))),
            "closed once"
        );
        let e = store
            .end_window(
                &window("CHG-1"),
                7_300,
                "change CHG-1 ended with 1 item still drifted",
            )
            .expect("end");
        assert_eq!(e.kind, EventKind::ChangeEnded);
        assert!(
            matches!(
                store.end_window(&window("CHG-1"), 7_301, "again"),
                Err(StoreError::AlreadyEnded { .. })
            ),
            "ended once, whoever ends it"
        );
    }
    let store = open();
    let windows = store.load_windows().expect("windows");
    let mut first = window("CHG-1");
    first.ended = true;
    let mut second = window("CHG-2");
    second.closed = Some((200, "bob".into()));
    assert_eq!(windows, [first, second]);
    let kinds: Vec<EventKind> = store
        .history(None, 10)
        .expect("history")
        .into_iter()
        .rev()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::LogCreated,
            EventKind::ChangeOpened,
            EventKind::ChangeOpened,
            EventKind::ChangeClosed,
            EventKind::ChangeEnded
        ],
        "refusals append nothing"
    );
    let v = store.verify(&Trusted::default()).expect("verify");
    assert_eq!(v.problems, Vec::<String>::new());
}
