//! The suite's cases about the fleet at a moment and periods of the log: what a store reads
//! from its spans must be what replaying its own log says (`moment::replay`), at every moment
//! its entries name and between them, before and after reopening.

use super::*;
use crate::model::{Ack, Event};
use crate::moment::{self, Span};
use crate::store::LogQuery;

/// Two hosts over a morning: streams begun, ended and begun again, drift opened, changed and
/// resolved, an acknowledgement given and revoked, another with an end, reads that stand for
/// nothing; entries made out of time order as a shared store's controllers may.
pub(crate) fn a_morning(store: &mut dyn Store) {
    let mode = |actual: &str, since| record("mode", actual, since);
    let ack = |at_ms, expires_ms| Ack {
        host_id: "web-1".into(),
        resource: "file:/etc/a".into(),
        reason: "known".into(),
        by: "alice".into(),
        at_ms,
        expires_ms,
    };
    store.host_online(&host("web-1"), 100).expect("online");
    store.host_online(&host("web-2"), 110).expect("online");
    write_record(
        store,
        "web-1",
        200,
        vec![],
        vec![open_change("/etc/a", &mode("0600", 200))],
    );
    write_record(
        store,
        "web-2",
        210,
        vec![],
        vec![open_change("/etc/a", &record("owner", "bob", 210))],
    );
    store.put_ack(&ack(250, None)).expect("ack");
    write_record(
        store,
        "web-1",
        300,
        vec![],
        vec![Change::Change {
            origin: Key::from_stored("/etc/a"),
            record: mode("0640", 200),
        }],
    );
    store
        .log("web-2", 400, EventKind::HostOffline, None)
        .expect("offline");
    store
        .log(
            "",
            420,
            EventKind::LogRead,
            Some(&record("audit-log", "a page", 0)),
        )
        .expect("read");
    store
        .drop_ack(&ack(250, None), 450, EventKind::AckRevoked)
        .expect("revoke");
    store
        .put_ack(&ack(460, Some(480)))
        .expect("ack with an end");
    write_record(
        store,
        "web-1",
        500,
        vec![],
        vec![Change::Resolve {
            record: mode("0640", 200),
        }],
    );
    // Another controller's clock, a little behind: appended after, made before.
    store
        .host_online(&host("web-2"), 490)
        .expect("online again");
    store
        .drop_ack(&ack(460, Some(480)), 510, EventKind::AckExpired)
        .expect("expired");
}

fn the_log(store: &dyn Store) -> Vec<Event> {
    let mut all = store
        .page(&LogQuery {
            limit: 10_000,
            ..LogQuery::default()
        })
        .expect("log");
    all.reverse();
    all
}

/// What stood, in a form two answers compare in (the order within a moment is the log's).
fn compare(mut s: moment::Standing) -> moment::Standing {
    s.open.sort_by_key(|(_, e)| e.id);
    s
}

/// What `store` says stood at every moment its entries name, and between them, is what its
/// log replayed says (`a_morning`'s log, or any).
pub(crate) fn stands_as_its_log_says(store: &dyn Store) {
    let log = the_log(store);
    let mut moments: Vec<i64> = log
        .iter()
        .flat_map(|e| [e.at_ms - 1, e.at_ms, e.at_ms + 1])
        .collect();
    moments.extend([0, 99, 10_000, i64::MAX - 1]);
    for at in moments {
        let read = compare(store.standing(at).expect("standing"));
        assert_eq!(read, compare(moment::replay(&log, at)), "at {at}");
    }
    assert!(
        !store.standing(10_000).expect("standing").open.is_empty(),
        "the log stood for something"
    );
}

pub(crate) fn the_fleet_at_any_moment_is_its_log_replayed(open: Opener<'_>) {
    let mut store = open();
    a_morning(store.as_mut());
    for store in [store, open()] {
        stands_as_its_log_says(store.as_ref());
        // What the moments say, read back by hand.
        let at = |ms| moment::hosts(&store.standing(ms).expect("standing"));
        assert!(at(99).is_empty(), "nothing before the first stream");
        let h = at(350);
        assert_eq!(
            (h[0].status, h[0].drift[0].actual.as_str(), h[0].acks.len()),
            (crate::model::HostStatus::Drifted, "0640", 1),
            "{h:?}"
        );
        assert_eq!(h[1].drift[0].attribute, "owner");
        let h = at(470);
        assert_eq!(
            h[0].acks[0].expires_ms,
            Some(480),
            "the second acknowledgement"
        );
        assert_eq!(
            (h[1].status, h[1].since_ms),
            (crate::model::HostStatus::Offline, 400),
            "offline since its stream ended, its drift kept"
        );
        assert_eq!(h[1].drift.len(), 1);
        let h = at(485);
        assert!(h[0].acks.is_empty(), "ran out before its expiry entry");
        let h = at(495);
        assert_eq!(h[1].status, crate::model::HostStatus::Drifted, "{h:?}");
        let h = at(600);
        assert_eq!(h[0].status, crate::model::HostStatus::InSync, "{h:?}");
        let spans: Vec<Span> = store
            .standing(600)
            .expect("standing")
            .open
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(
            spans,
            [Span::Stream, Span::Drift, Span::Stream],
            "web-1's stream, web-2's drift and its new stream"
        );
    }
}

pub(crate) fn a_period_of_the_log_is_read_by_time_and_paged_by_id(open: Opener<'_>) {
    let mut store = open();
    a_morning(store.as_mut());
    let log = the_log(store.as_ref());
    let period = |since: Option<i64>, until: Option<i64>, before: Option<i64>, limit| {
        store
            .page(&LogQuery {
                since_ms: since,
                until_ms: until,
                before,
                limit,
                ..LogQuery::default()
            })
            .expect("page")
    };
    for (since, until) in [(200, 450), (0, 300), (490, 491), (450, 10_000), (5, 6)] {
        let got: Vec<i64> = period(Some(since), Some(until), None, 100)
            .iter()
            .map(|e| e.id)
            .collect();
        let mut want: Vec<i64> = log
            .iter()
            .filter(|e| since <= e.at_ms && e.at_ms < until)
            .map(|e| e.id)
            .collect();
        want.reverse();
        assert_eq!(got, want, "from {since} to {until}");
    }
    // The entry made at 490 but appended after the one at 500 is in its period all the same.
    let late = period(Some(490), Some(500), None, 100);
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0].kind, EventKind::HostOnline);
    // Paged: three at a time, each page before the last id of the one before.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = period(Some(100), Some(505), before, 3);
        before = page.last().map(|e| e.id);
        let done = page.len() < 3;
        pages.extend(page.into_iter().map(|e| e.id));
        if done {
            break;
        }
    }
    let all: Vec<i64> = period(Some(100), Some(505), None, 100)
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(pages, all);
    let only_since: Vec<i64> = period(Some(450), None, None, 100)
        .iter()
        .map(|e| e.at_ms)
        .collect();
    // The five entries from 450 on, and the log's first, made when the store was (now).
    assert!(
        only_since.iter().all(|&t| t >= 450) && only_since.len() == 6,
        "{only_since:?}"
    );
    // An entry appended after one made a day later than it (a clock set back, another
    // controller's behind) is in its period all the same, at either end.
    let late = record("set", "2", 0);
    store
        .log("", 100_000_000, EventKind::ManifestsAccepted, Some(&late))
        .expect("log");
    let behind = store
        .log("", 13_600_000, EventKind::ManifestsAccepted, Some(&late))
        .expect("log");
    for (since, until) in [
        (13_600_000, 13_600_001),
        (13_000_000, 14_000_000),
        (13_600_000, 99_000_000),
    ] {
        let got = store
            .page(&LogQuery {
                since_ms: Some(since),
                until_ms: Some(until),
                limit: 100,
                ..LogQuery::default()
            })
            .expect("page");
        assert_eq!(
            got.iter().map(|e| e.id).collect::<Vec<_>>(),
            [behind.id],
            "from {since} to {until}"
        );
    }
}
