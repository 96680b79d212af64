//! The shared store: PostgreSQL, for several controllers on one database (`plumb serve
//! --store postgres://…`, in the works) and sites past one machine.
//!
//! The same tables as SQLite's, with hosts and observations as JSON of the stores' own row
//! types (`store/rows.rs`). Every write is one transaction that first locks the audit head's
//! row, so the event log is one hash chain in one order whichever controller appends, and its
//! ids follow each other without gaps. The connection is synchronous (the `postgres` crate,
//! tokio-postgres on a runtime of its own), as the fleet thread that owns the store is.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::audit::{AuditKey, Head, Trusted, Verification};
use super::{
    DriftChange, HostState, LogQuery, Result, Store, StoreError, StoredHost, ack_record, rows,
};
use crate::drift::Observation;
use crate::key::Key;
use crate::model::{Ack, DriftRecord, Event, EventKind, HostInfo};
use crate::moment::Standing;

mod chain;
mod claims;
mod connection;
mod content;
pub use content::{ContentAnswer, ContentAsk};
mod copy;
mod read;
pub use copy::Copied;
mod schema;
mod spans;
mod tail;
mod tls;
mod windows;
pub use tail::{Heard, Tail};

use crate::store::evidence;
use crate::window::ChangeWindow;
use claims::fence;
use connection::{Session, Statements, connect, controller_id};
pub(crate) use connection::{check, redact, unproven, unreachable};
use read::{DRIFT_COLUMNS, HOST_COLUMNS, drift_row, event_of, verify_snapshot};

pub struct PostgresStore {
    url: String,
    /// Reads take `&self` (the `Store` trait's), and a query needs the client mutably. A lost
    /// connection is made again at the next use (a restarted server, a network cut).
    session: RefCell<Session>,
    /// The event log's head as this controller last committed or read it.
    head: Head,
    /// Signs the head at every append; `None` only in tests and tools that do not append.
    key: Option<AuditKey>,
    /// This controller, as other controllers on the database know it.
    me: String,
    /// The claim (epoch) under which this controller holds each host's stream: its writes for
    /// a host are made only while the host's row still names it with this epoch.
    held: HashMap<String, i64>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db`), migrates the schema, and begins the log
    /// if it is new. Must not be called on an async runtime's thread (the connection runs a
    /// runtime of its own).
    pub fn open(url: &str) -> Result<Self> {
        let mut client = connect(url)?;
        schema::migrate(&mut client)?;
        let st = Statements::prepare(&mut client)?;
        let mut store = Self {
            url: url.to_owned(),
            session: RefCell::new(Session { client, st }),
            head: Head::default(),
            key: None,
            me: controller_id(),
            held: HashMap::new(),
        };
        store.begin_log()?;
        store.head = chain::head(&mut store.session.get_mut().client)?;
        Ok(store)
    }

    /// Verifies the log in the database at `url` without writing to it (no migration, no
    /// first entry): the entries and the head as of one moment.
    pub fn verify_url(url: &str, trusted: &Trusted) -> Result<Verification> {
        let mut client = connect(url)?;
        match schema::version(&mut client)? {
            Some(v) if v > schema::SCHEMA_VERSION => return Err(schema::newer(v)),
            Some(v) if v >= 1 => {}
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "{} holds no plumb store",
                    redact(url)
                )));
            }
        }
        verify_snapshot(&mut client, trusted)
    }

    /// Signs the log's head with `key` from now on (at every append).
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The session, connected again first if the connection was lost.
    fn session(&self) -> Result<std::cell::RefMut<'_, Session>> {
        let mut session = self.session.borrow_mut();
        if session.client.is_closed() {
            *session = Session::open(&self.url)?;
            tracing::info!(store = %redact(&self.url), "connected to the store again");
        }
        Ok(session)
    }

    /// Every log begins with `LogCreated`, so an emptied log can never pass for a new one.
    /// Under the migration lock: two controllers opening a new database begin it once.
    fn begin_log(&mut self) -> Result<()> {
        let (me, key) = (&self.me, self.key.as_ref());
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::MIGRATION_LOCK],
        )?;
        let events: i64 = tx.query_one("SELECT count(*) FROM events", &[])?.get(0);
        if events == 0 && chain::head(&mut tx)?.last_id == 0 {
            let mut head = Head::default();
            let now = crate::clock::now_ms();
            chain::append(
                &mut tx,
                (&st.append, me),
                &mut head,
                now,
                "",
                EventKind::LogCreated,
                None,
            )?;
            chain::store_head(&mut tx, &mut head, key)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Appends one entry to the event log, after `before` (in the same transaction, under
    /// the head's lock), and notifies the other controllers once committed.
    fn append_after(
        &mut self,
        before: impl FnOnce(&mut postgres::Transaction<'_>, &Statements) -> Result<()>,
        host_id: &str,
        at_ms: i64,
        kind: EventKind,
        item: Option<&DriftRecord>,
    ) -> Result<Event> {
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        let mut head = chain::lock_head(&mut tx)?;
        before(&mut tx, st)?;
        let id = chain::append(
            &mut tx,
            (&st.append, &self.me),
            &mut head,
            at_ms,
            host_id,
            kind,
            item,
        )?;
        chain::commit(tx, &st.notify, &mut head, self.key.as_ref(), true)?;
        drop(session);
        self.head = head;
        Ok(Event {
            id,
            at_ms,
            host_id: host_id.to_owned(),
            kind,
            item: item.cloned(),
        })
    }
}

/// Records `a`, replacing an acknowledgement of the same resource (`put_ack`, and the copy).
fn put_ack(tx: &mut postgres::Transaction<'_>, a: &Ack) -> Result<()> {
    tx.execute(
        "INSERT INTO acks (host_id, resource, reason, by_whom, at_ms, expires_ms)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (host_id, resource) DO UPDATE SET reason = excluded.reason,
             by_whom = excluded.by_whom, at_ms = excluded.at_ms,
             expires_ms = excluded.expires_ms",
        &[
            &a.host_id,
            &a.resource,
            &a.reason,
            &a.by,
            &a.at_ms,
            &a.expires_ms,
        ],
    )?;
    Ok(())
}

impl Store for PostgresStore {
    fn logged(&self) -> Result<Vec<super::Logged>> {
        chain::logged(&mut self.session()?.client)
    }

    fn head(&self) -> &Head {
        &self.head
    }

    fn load_hosts(&self) -> Result<Vec<StoredHost>> {
        let mut session = self.session()?;
        let client = &mut session.client;
        let mut hosts = Vec::new();
        for r in client.query(
            &format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY host_id"),
            &[],
        )? {
            hosts.push(self.stored_host(&r)?);
        }
        let mut at: HashMap<String, usize> = HashMap::with_capacity(hosts.len());
        for (i, h) in hosts.iter().enumerate() {
            at.insert(h.info.host_id.clone(), i);
        }
        for r in client.query(
            &format!(
                "SELECT host_id, {DRIFT_COLUMNS} FROM drift ORDER BY host_id, resource, attribute"
            ),
            &[],
        )? {
            let host_id: String = r.get(0);
            if let Some(&i) = at.get(&host_id) {
                let drift = drift_row(&r, 1, &host_id)?;
                hosts[i].drift.push(drift);
            }
        }
        Ok(hosts)
    }

    fn load_host(&self, host_id: &str) -> Result<Option<StoredHost>> {
        let row = self.session()?.client.query_opt(
            &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE host_id = $1"),
            &[&host_id],
        )?;
        let Some(row) = row else { return Ok(None) };
        let mut host = self.stored_host(&row)?;
        host.drift = self.load_drift(host_id)?;
        Ok(Some(host))
    }

    fn load_drift(&self, host_id: &str) -> Result<Vec<(Key, DriftRecord)>> {
        let rows = self.session()?.client.query(
            &format!(
                "SELECT {DRIFT_COLUMNS} FROM drift WHERE host_id = $1 ORDER BY resource, attribute"
            ),
            &[&host_id],
        )?;
        rows.iter().map(|r| drift_row(r, 0, host_id)).collect()
    }

    fn load_observations(&self, host_id: &str) -> Result<Vec<(Key, Observation)>> {
        let rows = self.session()?.client.query(
            "SELECT path, state FROM observations WHERE host_id = $1",
            &[&host_id],
        )?;
        rows.iter()
            .map(|r| {
                let (path, state): (String, String) = (r.get(0), r.get(1));
                rows::observation(host_id, &path, &state)
            })
            .collect()
    }

    fn load_acks(&self) -> Result<Vec<Ack>> {
        let rows = self.session()?.client.query(
            "SELECT host_id, resource, reason, by_whom, at_ms, expires_ms FROM acks ORDER BY host_id, resource",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| Ack {
                host_id: r.get(0),
                resource: r.get(1),
                reason: r.get(2),
                by: r.get(3),
                at_ms: r.get(4),
                expires_ms: r.get(5),
            })
            .collect())
    }

    fn page(&self, q: &LogQuery) -> Result<Vec<Event>> {
        let kind = q.kind.map(EventKind::as_str);
        let mut session = self.session()?;
        let client = &mut session.client;
        // A period is the entries made in it, by their own times (as SQLite's `chain::page`).
        let since = q.since_ms.unwrap_or(i64::MIN);
        let until = q.until_ms.unwrap_or(i64::MAX);
        let rows = client.query(
            &format!(
                "SELECT {} FROM events WHERE ($1::TEXT IS NULL OR host_id = $1) \
                 AND ($2::TEXT IS NULL OR kind = $2) AND ($3::BIGINT IS NULL OR id < $3) \
                 AND at_ms >= $5 AND at_ms < $6 ORDER BY id DESC LIMIT $4",
                chain::event_columns()
            ),
            &[
                &q.host,
                &kind,
                &q.before,
                &i64::from(q.limit),
                &since,
                &until,
            ],
        )?;
        rows.iter().map(event_of).collect()
    }

    fn standing(&self, at_ms: i64) -> Result<Standing> {
        spans::standing(&mut self.session()?.client, at_ms)
    }

    fn trend(&self, since_ms: i64) -> Result<Vec<(i64, EventKind)>> {
        let rows = self.session()?.client.query(
            "SELECT at_ms, kind FROM events WHERE at_ms >= $1 AND kind IN ('opened', 'resolved')",
            &[&since_ms],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), EventKind::parse(r.get(1))?)))
            .collect())
    }

    fn verify(&self, trusted: &Trusted) -> Result<Verification> {
        verify_snapshot(&mut self.session()?.client, trusted)
    }

    fn record(
        &mut self,
        host_id: &str,
        at_ms: i64,
        observations: &[(&Key, Option<&Observation>)],
        changes: &[DriftChange<'_>],
    ) -> Result<Vec<Event>> {
        let epoch = self.claim_of(host_id)?;
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        let mut head = chain::lock_head(&mut tx)?;
        fence(&mut tx, st, &self.me, host_id, epoch, !changes.is_empty())?;
        // One statement each for what is kept and what is gone, whatever their number: a
        // snapshot is hundreds of rows, and a round trip each more than halved how fast a
        // fleet came into sync (BENCHMARKS.md).
        // The last word on a path wins, as it would row by row.
        let mut last: BTreeMap<std::borrow::Cow<'_, str>, Option<&Observation>> = BTreeMap::new();
        for (key, observed) in observations {
            last.insert(key.stored(), *observed);
        }
        let (mut paths, mut states, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for (path, observed) in &last {
            match observed {
                Some(o) => {
                    paths.push(path.as_ref());
                    states.push(
                        serde_json::to_string(&rows::ObservationRow::from(*o))
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    );
                }
                None => gone.push(path.as_ref()),
            }
        }
        if !paths.is_empty() {
            tx.execute(&st.put_observations, &[&host_id, &paths, &states])?;
        }
        if !gone.is_empty() {
            tx.execute(&st.forget_observations, &[&host_id, &gone])?;
        }
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            let (kind, record) = change.parts();
            match change {
                DriftChange::Open { origin, .. } | DriftChange::Change { origin, .. } => {
                    tx.execute(
                        &st.upsert_drift,
                        &[
                            &host_id,
                            &record.resource,
                            &record.attribute,
                            &origin.stored().as_ref(),
                            &record.expected,
                            &record.actual,
                            &record.since_ms,
                            &record.declared_at,
                            &evidence::to_text(&record.evidence)?,
                        ],
                    )?;
                }
                DriftChange::Resolve { .. } => {
                    tx.execute(
                        &st.delete_drift,
                        &[&host_id, &record.resource, &record.attribute],
                    )?;
                }
            }
            let id = chain::append(
                &mut tx,
                (&st.append, &self.me),
                &mut head,
                at_ms,
                host_id,
                kind,
                Some(record),
            )?;
            events.push(Event {
                id,
                at_ms,
                host_id: host_id.to_owned(),
                kind,
                item: Some(record.clone()),
            });
        }
        chain::commit(
            tx,
            &st.notify,
            &mut head,
            self.key.as_ref(),
            !events.is_empty(),
        )?;
        drop(session);
        self.head = head;
        Ok(events)
    }

    /// A host's own entries are its holder's: `HostOffline` ends the claim, any other is made
    /// only under it. The controller's own entries (no host) are anyone's.
    fn append_log(
        &mut self,
        host_id: &str,
        at_ms: i64,
        kind: EventKind,
        item: Option<&DriftRecord>,
    ) -> Result<Event> {
        if host_id.is_empty() {
            return self.append_after(|_, _| Ok(()), host_id, at_ms, kind, item);
        }
        let epoch = self.claim_of(host_id)?;
        let me = self.me.clone();
        let event = self.append_after(
            |tx, st| {
                fence(tx, st, &me, host_id, epoch, true)?;
                if kind == EventKind::HostOffline {
                    tx.execute(
                        "UPDATE hosts SET owner = NULL WHERE host_id = $1",
                        &[&host_id],
                    )?;
                }
                Ok(())
            },
            host_id,
            at_ms,
            kind,
            item,
        )?;
        if kind == EventKind::HostOffline {
            self.held.remove(host_id);
        }
        Ok(event)
    }

    fn delete_ack(&mut self, ack: &Ack, at_ms: i64, kind: EventKind) -> Result<Event> {
        let (host, resource) = (ack.host_id.clone(), ack.resource.clone());
        self.append_after(
            |tx, _| {
                let deleted = tx.execute(
                    "DELETE FROM acks WHERE host_id = $1 AND resource = $2",
                    &[&host, &resource],
                )?;
                if deleted == 0 {
                    return Err(StoreError::AlreadyEnded {
                        host: host.clone(),
                        resource: resource.clone(),
                    });
                }
                Ok(())
            },
            &ack.host_id,
            at_ms,
            kind,
            Some(&ack_record(ack)),
        )
    }

    /// Claims the host's stream for this controller: one more epoch, so that writes for it
    /// under any earlier claim (another controller's, or this one's before) are refused.
    fn upsert_host(&mut self, info: &HostInfo, last_seen_ms: i64) -> Result<()> {
        self.claim(info, last_seen_ms, false).map(|_| ())
    }

    /// The claim and its `HostOnline` entry in one transaction.
    fn host_online(&mut self, info: &HostInfo, at_ms: i64) -> Result<Event> {
        self.claim(info, at_ms, true)?
            .ok_or_else(|| StoreError::Corrupt("a claim with its entry appended none".into()))
    }

    fn load_windows(&self) -> Result<Vec<ChangeWindow>> {
        self.read_windows()
    }

    fn open_window(&mut self, w: &ChangeWindow, at_ms: i64) -> Result<Event> {
        self.open_window_row(w, at_ms)
    }

    fn close_window(&mut self, w: &ChangeWindow) -> Result<Event> {
        self.close_window_row(w)
    }

    fn end_window(&mut self, w: &ChangeWindow, at_ms: i64, text: &str) -> Result<Event> {
        self.end_window_row(w, at_ms, text)
    }

    fn put_ack(&mut self, ack: &Ack) -> Result<Event> {
        let a = ack.clone();
        self.append_after(
            move |tx, _| put_ack(tx, &a),
            &ack.host_id,
            ack.at_ms,
            EventKind::Acknowledged,
            Some(&ack_record(ack)),
        )
    }

    fn touch_hosts(&mut self, seen: &[(&str, i64)]) -> Result<()> {
        self.touch_held(seen)
    }

    fn put_state(&mut self, host_id: &str, state: &HostState) -> Result<()> {
        self.write_state(host_id, state)
    }

    fn release_orphans(&mut self, id: &str, at_ms: i64) -> Result<Vec<Event>> {
        self.release(id, at_ms)
    }

    fn controller_id(&self) -> Option<&str> {
        Some(&self.me)
    }

    fn ask_content(
        &mut self,
        holder: &str,
        host_id: &str,
        path: &str,
        max_bytes: u64,
        public_key: &[u8],
    ) -> Result<i64> {
        self.insert_request(holder, host_id, path, max_bytes, public_key)
    }

    fn answer_content(&mut self, answer: &ContentAnswer) -> Result<()> {
        self.write_answer(answer)
    }

    fn forget_content(&mut self, id: i64) -> Result<()> {
        self.delete_request(id)
    }
}

#[cfg(test)]
mod tests;
