//! The store: hosts, their latest observed state, open drift, acknowledgements, and the
//! append-only, hash-chained event log. Everything the fleet and the queries need from storage
//! goes through the `Store` trait; `sqlite` is the embedded backend (`--data`), and a second
//! backend is a new module that passes the same `conformance` suite.
//!
//! Synchronous: a store is owned by the fleet thread, so no call ever waits on the reactor.

use crate::drift::Observation;
use crate::key::Key;
use crate::model::{Ack, Coverage, DriftRecord, Event, EventKind, HostInfo};
use crate::moment::Standing;
use crate::window::ChangeWindow;

mod audit;
#[cfg(test)]
pub(crate) mod conformance;
mod evidence;
pub mod postgres;
mod rows;
pub mod sqlite;
mod windows;

pub use audit::{AuditKey, Head, Logged, Signature, Trusted, Verification, public_path};
pub use postgres::{ContentAnswer, ContentAsk, Heard, PostgresStore, Tail};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("store {path}: {source}")]
    Open {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// What the backend said when a read or a write failed (a full disk, a lost connection).
    #[error("store: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    #[error("store holds a value it cannot read: {0}")]
    Corrupt(String),
    /// An operation the store's state does not allow (a copy into a store in use), said.
    #[error("{0}")]
    Refused(String),
    #[error("audit key {path} {reason}")]
    Key { path: String, reason: String },
    /// A write for a host whose stream another controller took since this one claimed it
    /// (shared stores): refused, so the former owner never writes over the new one.
    #[error(
        "host {host}'s stream is held by another controller now; this controller's write for it was refused"
    )]
    Fenced { host: String },
    /// An acknowledgement to end that is not in the store (another controller ended it):
    /// nothing is appended, so it ends once in the log.
    #[error("the acknowledgement for {resource} on {host} has already ended")]
    AlreadyEnded { host: String, resource: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where a controller keeps its state: `--store`, `store:` or `PLUMB_STORE`; by default SQLite
/// in the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite:DIR`: the embedded store in DIR (as `--data DIR` alone).
    Sqlite(std::path::PathBuf),
    /// `postgres://…` or `postgresql://…`: a PostgreSQL database.
    Postgres(String),
}

impl Location {
    /// Reads a store URL; the error says what is accepted.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return postgres::check(text)
                .map(|_| Location::Postgres(text.to_owned()))
                .map_err(|e| {
                    format!("store URL {:?} does not parse: {e}", postgres::redact(text))
                });
        }
        if let Some(dir) = text.strip_prefix("sqlite:")
            && !dir.is_empty()
        {
            return Ok(Location::Sqlite(dir.into()));
        }
        Err(format!(
            "store {:?} is neither postgres://USER@HOST/DB nor sqlite:DIR",
            without_password(text)
        ))
    }

    /// What this store's connection leaves unproven (PostgreSQL over TCP without TLS, or
    /// without checking the server's certificate), to be said at start.
    pub fn caveat(&self) -> Option<String> {
        match self {
            Location::Sqlite(_) => None,
            Location::Postgres(url) => postgres::unproven(url),
        }
    }

    /// Opens it, signing the event log's head with `key`; with a tail where other
    /// controllers may share it (`Tail`, to run once the fleet has loaded the store). Not on
    /// an async runtime's thread.
    pub fn open(&self, key: AuditKey) -> Result<(Box<dyn Store>, Option<Tail>)> {
        Ok(match self {
            Location::Sqlite(dir) => (Box::new(SqliteStore::open(dir)?.with_audit_key(key)), None),
            Location::Postgres(url) => {
                let store = PostgresStore::open(url)?.with_audit_key(key);
                let tail = Tail::new(&store)?;
                (Box::new(store), Some(tail))
            }
        })
    }
}

/// A URL as messages may show it: `scheme://user:secret@host` becomes `scheme://user@host`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

impl StoreError {
    /// Whether the store could not be reached (nothing listening yet, the network), which may
    /// come right by itself, rather than refused or broken. Only a PostgreSQL store can be.
    pub fn unreachable(&self) -> bool {
        postgres::unreachable(self)
    }
}

/// What the fleet and the queries ask of storage. Every write is atomic: its rows and its
/// events are committed together, or nothing is (and the error says why); the events' ids
/// follow the log's head without gaps, and the head moves only once they are committed.
///
/// A host's own writes (its observations and drift, its entries, its state) are made by the
/// controller that claimed it last (`host_online`, as its agent connected): a store that
/// several controllers share refuses them from any other (`StoreError::Fenced`).
pub trait Store: Send {
    /// The event log's head as last committed.
    fn head(&self) -> &Head;
    /// Every known host, with its open drift (each record with the key it came from).
    fn load_hosts(&self) -> Result<Vec<StoredHost>>;
    /// One host's open drift, each record with the key it came from.
    fn load_drift(&self, host_id: &str) -> Result<Vec<(Key, DriftRecord)>>;
    /// One host's latest observations, by key.
    fn load_observations(&self, host_id: &str) -> Result<Vec<(Key, Observation)>>;
    /// The acknowledgements in force.
    fn load_acks(&self) -> Result<Vec<Ack>>;
    /// A page of the log, newest first: entries before `q.before` (an id), of one host and
    /// one kind where given (the console pages a large log with it).
    fn page(&self, q: &LogQuery) -> Result<Vec<Event>>;
    /// When each `opened` and `resolved` entry since `since_ms` was made (a trend): read back
    /// from the newest, so a long log costs only its recent part.
    fn trend(&self, since_ms: i64) -> Result<Vec<(i64, EventKind)>>;
    /// What stood at `at_ms` (`moment::Standing`): the spans standing then, from the index the
    /// store keeps beside the log in each entry's own transaction (`moment::effect`), and
    /// every host whose stream had begun by then. Must equal `moment::replay` of the log.
    fn standing(&self, at_ms: i64) -> Result<Standing>;
    /// Checks the hash chain from the first entry to the head, and the head against what is
    /// trusted.
    fn verify(&self, trusted: &Trusted) -> Result<Verification>;
    /// Every entry of the log as stored, in id order (`plumb store copy`).
    fn logged(&self) -> Result<Vec<Logged>>;
    /// Atomically: a host's new observations (`None`: forget it), its drift changes, and one
    /// event per change. Returns the events with their ids.
    fn record(
        &mut self,
        host_id: &str,
        at_ms: i64,
        observations: &[(&Key, Option<&Observation>)],
        changes: &[DriftChange<'_>],
    ) -> Result<Vec<Event>>;
    /// Appends one entry to the event log on its own.
    fn append_log(
        &mut self,
        host_id: &str,
        at_ms: i64,
        kind: EventKind,
        item: Option<&DriftRecord>,
    ) -> Result<Event>;
    /// Records a host's identity and last-seen time (no event).
    fn upsert_host(&mut self, info: &HostInfo, last_seen_ms: i64) -> Result<()>;
    /// Removes an acknowledgement and logs why (`AckRevoked` or `AckExpired`), atomically.
    fn delete_ack(&mut self, ack: &Ack, at_ms: i64, kind: EventKind) -> Result<Event>;
    /// Records the last-seen times of many hosts at once (no event).
    fn touch_hosts(&mut self, seen: &[(&str, i64)]) -> Result<()>;
    /// Records an acknowledgement (replacing one for the same resource) and its event.
    fn put_ack(&mut self, ack: &Ack) -> Result<Event>;
    /// Every change window, open, closed or ended, by ticket.
    fn load_windows(&self) -> Result<Vec<ChangeWindow>>;
    /// Records a new change window and its `ChangeOpened` entry; `Refused` where its ticket
    /// exists already.
    fn open_window(&mut self, window: &ChangeWindow, at_ms: i64) -> Result<Event>;
    /// Records a window closed early (`window.closed` says when and by whom) and its
    /// `ChangeClosed` entry; `Refused` where it is closed or ended already.
    fn close_window(&mut self, window: &ChangeWindow) -> Result<Event>;
    /// Records a window's end once, with its `ChangeEnded` entry saying `text`; `AlreadyEnded`
    /// where another controller recorded it first.
    fn end_window(&mut self, window: &ChangeWindow, at_ms: i64, text: &str) -> Result<Event>;

    /// A host's stream begins here: its identity and last-seen time (`upsert_host`; on a
    /// shared store, this controller's claim) and its `HostOnline` entry. A backend that can
    /// makes both one transaction (one commit instead of two, for every agent that connects).
    fn host_online(&mut self, info: &HostInfo, at_ms: i64) -> Result<Event> {
        self.upsert_host(info, at_ms)?;
        self.append_log(&info.host_id, at_ms, EventKind::HostOnline, None)
    }

    /// This controller's id where several controllers share the store; `None` where it is
    /// this controller's alone (then every host is its, and nothing is fenced).
    fn controller_id(&self) -> Option<&str> {
        None
    }
    /// One host as stored.
    fn load_host(&self, host_id: &str) -> Result<Option<StoredHost>> {
        Ok(self
            .load_hosts()?
            .into_iter()
            .find(|h| h.info.host_id == host_id))
    }
    /// Records what this controller, holding `host_id`'s stream, knows of it beyond drift
    /// (shared stores only; fenced like every write for the host).
    fn put_state(&mut self, _host_id: &str, _state: &HostState) -> Result<()> {
        Ok(())
    }
    /// Marks offline, with an event each, the hosts whose streams controller `id` held, and
    /// forgets that controller: it stopped beating (shared stores only).
    fn release_orphans(&mut self, _id: &str, _at_ms: i64) -> Result<Vec<Event>> {
        Ok(Vec::new())
    }
    /// Asks controller `holder`, which holds `host_id`'s stream, for a file's content, sealed
    /// to `public_key`; the answer comes back through the tail (shared stores only). The
    /// request's id.
    fn ask_content(
        &mut self,
        _holder: &str,
        _host_id: &str,
        _path: &str,
        _max_bytes: u64,
        _public_key: &[u8],
    ) -> Result<i64> {
        Err(StoreError::Refused(
            "this store is one controller's: no other holds a stream".into(),
        ))
    }
    /// Answers another controller's request (shared stores only).
    fn answer_content(&mut self, _answer: &ContentAnswer) -> Result<()> {
        Ok(())
    }
    /// Withdraws a request this controller gave up waiting for (shared stores only).
    fn forget_content(&mut self, _id: i64) -> Result<()> {
        Ok(())
    }

    /// The most recent events first, for one host or all, at most `limit`.
    fn history(&self, host_id: Option<&str>, limit: u32) -> Result<Vec<Event>> {
        self.page(&LogQuery {
            host: host_id.map(str::to_owned),
            limit,
            ..LogQuery::default()
        })
    }

    /// Makes one write; returns the events it appended, with their ids.
    fn apply(&mut self, w: &Write) -> Result<Vec<Event>> {
        match w {
            Write::Record {
                host_id,
                at_ms,
                observations,
                changes,
            } => {
                let observations: Vec<(&Key, Option<&Observation>)> =
                    observations.iter().map(|(k, o)| (k, o.as_ref())).collect();
                let changes: Vec<DriftChange<'_>> = changes.iter().map(Change::borrowed).collect();
                self.record(host_id, *at_ms, &observations, &changes)
            }
            Write::Log {
                host_id,
                at_ms,
                kind,
                item,
            } => Ok(vec![self.append_log(
                host_id,
                *at_ms,
                *kind,
                item.as_ref(),
            )?]),
            Write::Online { info, at_ms } => Ok(vec![self.host_online(info, *at_ms)?]),
            Write::DropAck { ack, at_ms, kind } => Ok(vec![self.delete_ack(ack, *at_ms, *kind)?]),
            Write::State { host_id, state } => {
                self.put_state(host_id, state)?;
                Ok(Vec::new())
            }
            Write::EndWindow {
                window,
                at_ms,
                text,
            } => Ok(vec![self.end_window(window, *at_ms, text)?]),
        }
    }

    /// Appends one entry to the event log on its own: `apply(Write::Log)`.
    fn log(
        &mut self,
        host_id: &str,
        at_ms: i64,
        kind: EventKind,
        item: Option<&DriftRecord>,
    ) -> Result<Event> {
        let write = Write::Log {
            host_id: host_id.to_owned(),
            at_ms,
            kind,
            item: item.cloned(),
        };
        the_event(self.apply(&write)?)
    }

    /// Removes an acknowledgement, logging why (`AckRevoked` or `AckExpired`):
    /// `apply(Write::DropAck)`.
    fn drop_ack(&mut self, ack: &Ack, at_ms: i64, kind: EventKind) -> Result<Event> {
        let write = Write::DropAck {
            ack: ack.clone(),
            at_ms,
            kind,
        };
        the_event(self.apply(&write)?)
    }
}

/// The one event a write of one entry appends.
fn the_event(events: Vec<Event>) -> Result<Event> {
    events
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("a write of one entry appended none".into()))
}

/// A host as stored, with its open drift (each record with the key it came from).
pub struct StoredHost {
    pub info: HostInfo,
    pub last_seen_ms: i64,
    pub drift: Vec<(Key, DriftRecord)>,
    /// Who holds its stream (a shared store's; `Nobody` in one of a single controller).
    pub holder: Holder,
    /// What its holder says of it beyond drift.
    pub state: HostState,
}

/// Which controller holds a host's stream, as a shared store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Holder {
    /// No controller: the host is offline.
    #[default]
    Nobody,
    /// This controller, under the claim it made last.
    Me,
    /// Another controller (its id), or this one under an older claim.
    Other(String),
}

/// What a host's holder knows of it beyond its drift, kept in a shared store for the other
/// controllers: whether a whole snapshot was evaluated, and the agent's coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    pub evaluated: bool,
    pub coverage: Option<Coverage>,
}

/// A change to one host's drift, to record atomically with its events.
pub enum DriftChange<'a> {
    Open {
        origin: &'a Key,
        record: &'a DriftRecord,
    },
    Change {
        origin: &'a Key,
        record: &'a DriftRecord,
    },
    Resolve {
        record: &'a DriftRecord,
    },
}

/// Which entries of the log `Store::page` gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub host: Option<String>,
    pub kind: Option<EventKind>,
    /// Only entries with a smaller id (the last id of the page before).
    pub before: Option<i64>,
    /// Only entries made at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only entries made before this time.
    pub until_ms: Option<i64>,
    pub limit: u32,
}

/// How far a read by time (a trend, a period) goes past its bounds, for entries made out of
/// order (a controller's clock is not the log's order on a shared store).
pub(crate) const OUT_OF_ORDER_MS: i64 = 3_600_000;

/// A write of the fleet's, owned: what it could not make when it happened (the disk was full)
/// and makes, in the same order, once the store can write again.
#[derive(Debug, Clone)]
pub enum Write {
    /// Observations and drift changes of one host, with their events (`record`).
    Record {
        host_id: String,
        at_ms: i64,
        observations: Vec<(Key, Option<Observation>)>,
        changes: Vec<Change>,
    },
    /// One entry of the event log on its own (`log`).
    Log {
        host_id: String,
        at_ms: i64,
        kind: EventKind,
        item: Option<DriftRecord>,
    },
    /// A host's stream begins: `Host` and its `HostOnline` entry, at once (`host_online`).
    Online { info: HostInfo, at_ms: i64 },
    /// An acknowledgement ended by the fleet (`drop_ack`).
    DropAck {
        ack: Ack,
        at_ms: i64,
        kind: EventKind,
    },
    /// What the holder knows of a host beyond drift (`put_state`).
    State { host_id: String, state: HostState },
    /// A change window's end, with what it left drifted (`end_window`).
    EndWindow {
        window: ChangeWindow,
        at_ms: i64,
        text: String,
    },
}

/// An owned `DriftChange`.
#[derive(Debug, Clone)]
pub enum Change {
    Open { origin: Key, record: DriftRecord },
    Change { origin: Key, record: DriftRecord },
    Resolve { record: DriftRecord },
}

impl Write {
    /// The host it is about ("" for the controller's own entries).
    pub fn host_id(&self) -> &str {
        match self {
            Write::Record { host_id, .. } | Write::Log { host_id, .. } => host_id,
            Write::Online { info, .. } => &info.host_id,
            Write::DropAck { ack, .. } => &ack.host_id,
            Write::State { host_id, .. } => host_id,
            Write::EndWindow { .. } => "",
        }
    }

    /// The events it appends, as they will read once written (ids still unknown: 0).
    pub fn events(&self) -> Vec<Event> {
        let event = |host_id: &str, at_ms, kind, item: Option<&DriftRecord>| Event {
            id: 0,
            at_ms,
            host_id: host_id.to_owned(),
            kind,
            item: item.cloned(),
        };
        match self {
            Write::Record {
                host_id,
                at_ms,
                changes,
                ..
            } => changes
                .iter()
                .map(|c| {
                    let (kind, record) = c.parts();
                    event(host_id, *at_ms, kind, Some(record))
                })
                .collect(),
            Write::Log {
                host_id,
                at_ms,
                kind,
                item,
            } => vec![event(host_id, *at_ms, *kind, item.as_ref())],
            Write::Online { info, at_ms } => {
                vec![event(&info.host_id, *at_ms, EventKind::HostOnline, None)]
            }
            Write::State { .. } => Vec::new(),
            Write::DropAck { ack, at_ms, kind } => {
                vec![event(&ack.host_id, *at_ms, *kind, Some(&ack_record(ack)))]
            }
            Write::EndWindow {
                window,
                at_ms,
                text,
            } => vec![event(
                "",
                *at_ms,
                EventKind::ChangeEnded,
                Some(&windows::record(window, text.clone(), "")),
            )],
        }
    }
}

impl<'a> DriftChange<'a> {
    /// The event it is logged as, and its record.
    pub(crate) fn parts(&self) -> (EventKind, &'a DriftRecord) {
        match *self {
            DriftChange::Open { record, .. } => (EventKind::Opened, record),
            DriftChange::Change { record, .. } => (EventKind::Changed, record),
            DriftChange::Resolve { record } => (EventKind::Resolved, record),
        }
    }
}

impl Change {
    fn parts(&self) -> (EventKind, &DriftRecord) {
        self.borrowed().parts()
    }

    fn borrowed(&self) -> DriftChange<'_> {
        match self {
            Change::Open { origin, record } => DriftChange::Open { origin, record },
            Change::Change { origin, record } => DriftChange::Change { origin, record },
            Change::Resolve { record } => DriftChange::Resolve { record },
        }
    }
}

/// An acknowledgement as an event entry: who in `expected`, why in `actual`, until when in
/// `since_ms` (0: no expiry).
fn ack_record(ack: &Ack) -> DriftRecord {
    DriftRecord {
        resource: ack.resource.clone(),
        attribute: "ack".into(),
        expected: ack.by.clone(),
        actual: ack.reason.clone(),
        since_ms: ack.expires_ms.unwrap_or(0),
        declared_at: String::new(),
        evidence: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_location_is_postgres_or_sqlite_and_nothing_else() {
        assert_eq!(
            Location::parse("postgres://plumb@db/plumb"),
            Ok(Location::Postgres("postgres://plumb@db/plumb".into()))
        );
        assert_eq!(
            Location::parse("postgresql://plumb@%2Frun%2Fpg/plumb"),
            Ok(Location::Postgres(
                "postgresql://plumb@%2Frun%2Fpg/plumb".into()
            ))
        );
        assert_eq!(
            Location::parse("sqlite:/var/lib/plumb"),
            Ok(Location::Sqlite("/var/lib/plumb".into()))
        );
        for bad in ["sqlite:", "mysql://root:hunter2@db/x", "/var/lib/plumb"] {
            let why = Location::parse(bad).expect_err(bad);
            assert!(why.contains("neither postgres://"), "{bad}: {why}");
            assert!(!why.contains("hunter2"), "{why}");
            assert!(
                why.contains(&format!("{:?}", without_password(bad))),
                "{why}"
            );
        }
    }
}
