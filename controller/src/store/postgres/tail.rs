//! What the other controllers on the database do, as this one hears it: a thread with a
//! connection of its own that listens on the channel every write notifies, then reads what
//! is new since it last looked (entries by id, host rows by version; both in commit order,
//! as both move only under the head's lock). A notification only wakes it; the rows say what
//! happened, and it also looks every `POLL` in case a notification was missed.
//!
//! The same thread beats for this controller in `controllers`, and competes for the advisory
//! lock of the fleet's singleton work: the controller whose session holds it expires
//! acknowledgements and releases the hosts of controllers that stopped beating. The lock is
//! the session's, so it moves when that controller dies or loses the database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator as _;

use super::content::{self, ContentAnswer, ContentAsk};
use super::{PostgresStore, chain, connect, event_of, redact, schema};
use crate::model::Event;
use crate::store::Result;

/// The longest a change waits to be heard when its notification was lost.
const POLL: Duration = Duration::from_millis(500);
/// How often this controller beats.
const BEAT: Duration = Duration::from_secs(1);
/// A stopped controller still there this long after it was said is said again.
const STOPPED_AGAIN: Duration = Duration::from_secs(10);
/// At most this many entries are read at once.
const BATCH: i64 = 1000;

/// What the tail heard.
#[derive(Debug)]
pub enum Heard {
    /// Entries appended by any controller (this one's too), in the log's order; `mine` says
    /// which were this controller's.
    Logged(Vec<(Event, bool)>),
    /// Hosts whose rows changed (a claim, drift, state, offline).
    Changed(Vec<String>),
    /// This controller now does the fleet's singleton work (`true`), or no longer (`false`).
    Singleton(bool),
    /// A controller that stopped beating: its hosts are to be released.
    Stopped(String),
    /// Diffs other controllers ask of hosts whose streams this one holds.
    ContentAsked(Vec<ContentAsk>),
    /// Answers to the diffs this controller asked of others.
    ContentAnswered(Vec<ContentAnswer>),
    /// The store cannot be reached (what the driver said): this controller must not claim
    /// to know, nor hold streams it cannot write for, until it can write again.
    Lost(String),
}

/// Where the tail starts: what the fleet has already loaded.
pub struct Tail {
    url: String,
    me: String,
    last_event: i64,
    last_version: i64,
}

impl Tail {
    /// A tail for `store`'s controller that hears what happens from now on: take it before
    /// the fleet loads the store, so nothing falls between.
    pub fn new(store: &PostgresStore) -> Result<Self> {
        let mut session = store.session()?;
        let last_event = chain::head(&mut session.client)?.last_id;
        let last_version: i64 = session
            .client
            .query_one("SELECT COALESCE(max(version), 0) FROM hosts", &[])?
            .get(0);
        Ok(Self {
            url: store.url.clone(),
            me: store.me.clone(),
            last_event,
            last_version,
        })
    }

    /// Runs until `hear` returns false (the fleet is gone); a controller silent for
    /// `stopped_after` has stopped. A lost connection is said, made again with backoff, and
    /// gives up the singleton work meanwhile.
    pub fn run(mut self, stopped_after: Duration, mut hear: impl FnMut(Heard) -> bool) {
        let mut pause = Duration::from_millis(250);
        loop {
            let failure = match connect(&self.url) {
                Ok(mut client) => {
                    pause = Duration::from_millis(250);
                    match self.follow(&mut client, stopped_after, &mut hear) {
                        Ok(()) => return,
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            tracing::warn!(store = %redact(&self.url), error = %failure, "lost the store's notifications; connecting again");
            if !hear(Heard::Singleton(false)) || !hear(Heard::Lost(failure.to_string())) {
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Listens and reads over `client` until it fails (`Err`) or the fleet is gone (`Ok`).
    fn follow(
        &mut self,
        client: &mut Client,
        stopped_after: Duration,
        hear: &mut impl FnMut(Heard) -> bool,
    ) -> Result<()> {
        client.batch_execute(&format!("LISTEN {}", schema::CHANNEL))?;
        let mut singleton = false;
        // Stopped controllers said, and when: said again if still there (a release failed).
        let mut reported: HashMap<String, Instant> = HashMap::new();
        let mut last_beat: Option<Instant> = None;
        // Diff requests and answers are looked for when one was notified, and every `POLL`
        // in case a notification was missed: not at every write's (two more round trips).
        let mut content_due = true;
        let mut content_read = Instant::now();
        loop {
            if last_beat.is_none_or(|t| t.elapsed() >= BEAT) {
                last_beat = Some(Instant::now());
                client.execute(
                    "INSERT INTO controllers (id) VALUES ($1)
                     ON CONFLICT (id) DO UPDATE SET beat_at = now()",
                    &[&self.me],
                )?;
                if !singleton {
                    singleton = client
                        .query_one(
                            "SELECT pg_try_advisory_lock($1)",
                            &[&schema::SINGLETON_LOCK],
                        )?
                        .get(0);
                    if singleton {
                        tracing::info!("this controller does the fleet's singleton work now");
                        if !hear(Heard::Singleton(true)) {
                            return Ok(());
                        }
                    }
                }
                if singleton {
                    client.execute(
                        "DELETE FROM content_requests
                         WHERE asked_at < now() - make_interval(secs => $1)",
                        &[&content::FORGOTTEN_AFTER_SECS],
                    )?;
                    let stopped: Vec<String> = client
                        .query(
                            "SELECT id FROM controllers
                             WHERE id <> $1 AND beat_at < now() - make_interval(secs => $2)",
                            &[&self.me, &stopped_after.as_secs_f64()],
                        )?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    reported.retain(|id, _| stopped.contains(id));
                    for id in stopped {
                        let due = reported
                            .get(&id)
                            .is_none_or(|at| at.elapsed() >= STOPPED_AGAIN);
                        if due {
                            reported.insert(id.clone(), Instant::now());
                            if !hear(Heard::Stopped(id)) {
                                return Ok(());
                            }
                        }
                    }
                }
            }
            content_due |= content_read.elapsed() >= POLL;
            if content_due {
                content_read = Instant::now();
            }
            if !self.read(client, hear, content_due)? {
                return Ok(());
            }
            // Woken by a notification or by the poll, whichever comes first; the rest of a
            // burst of notifications is taken at once, and read as one.
            let mut notifications = client.notifications();
            let about_content = |n: &postgres::Notification| n.payload() == schema::CONTENT;
            let first = notifications.timeout_iter(POLL).next()?;
            content_due = match first {
                None => false,
                Some(first) => {
                    let mut due = about_content(&first);
                    while let Some(n) = notifications.iter().next()? {
                        due |= about_content(&n);
                    }
                    due
                }
            };
        }
    }

    /// Reads what is new (diff requests and answers too if `content`); false once the fleet
    /// is gone.
    fn read(
        &mut self,
        client: &mut Client,
        hear: &mut impl FnMut(Heard) -> bool,
        content: bool,
    ) -> Result<bool> {
        loop {
            let rows = client.query(
                &format!(
                    "SELECT {}, origin FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                    chain::event_columns()
                ),
                &[&self.last_event, &BATCH],
            )?;
            let full = rows.len() as i64 == BATCH;
            let mut events = Vec::with_capacity(rows.len());
            for r in &rows {
                let origin: String = r.get("origin");
                events.push((event_of(r)?, origin == self.me));
            }
            if let Some((last, _)) = events.last() {
                self.last_event = last.id;
                if !hear(Heard::Logged(events)) {
                    return Ok(false);
                }
            }
            if !full {
                break;
            }
        }
        // Rows this controller holds changed because it wrote them: not heard again.
        let rows = client.query(
            "SELECT host_id, version, owner IS NOT DISTINCT FROM $2 FROM hosts
             WHERE version > $1 ORDER BY version",
            &[&self.last_version, &self.me],
        )?;
        if let Some(last) = rows.last() {
            self.last_version = last.get(1);
            let hosts: Vec<String> = rows
                .iter()
                .filter(|r| !r.get::<_, bool>(2))
                .map(|r| r.get(0))
                .collect();
            if !hosts.is_empty() && !hear(Heard::Changed(hosts)) {
                return Ok(false);
            }
        }
        if !content {
            return Ok(true);
        }
        let (asks, answers) = content::take(client, &self.me)?;
        if !asks.is_empty() && !hear(Heard::ContentAsked(asks)) {
            return Ok(false);
        }
        if !answers.is_empty() && !hear(Heard::ContentAnswered(answers)) {
            return Ok(false);
        }
        Ok(true)
    }
}
