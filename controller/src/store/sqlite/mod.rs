//! The embedded store: SQLite (bundled) in the data directory.
//!
//! Durability: WAL with `synchronous=NORMAL`. A committed transaction survives the controller
//! being killed (`kill -9`): the WAL is in the OS page cache and replayed on open. Only an OS
//! crash or power loss can lose the last transactions; agents resend their full state on
//! reconnect, so what is lost then is re-established, with a later `since`.
//!
//! Hosts and observations are kept as JSON of the stores' own row types (`store/rows.rs`), not
//! of the model's: a change to a core type cannot change what is on disk by accident.

use std::path::Path;

use rusqlite::{Connection, params};

use super::audit::{self, AuditKey, Head, Trusted, Verification};
use super::{
    DriftChange, LogQuery, Result, Store, StoreError, StoredHost, ack_record, evidence, rows,
    windows,
};
use crate::drift::Observation;
use crate::key::Key;
use crate::model::{Ack, DriftRecord, Event, EventKind, HostInfo};
use crate::moment::Standing;
use crate::window::ChangeWindow;

mod chain;
mod entry;
mod schema;
mod spans;

use schema::SCHEMA_VERSION;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

pub struct SqliteStore {
    conn: Connection,
    /// The event log's head as stored.
    head: Head,
    /// Signs the head at every append; `None` only in tests and tools that do not append.
    key: Option<AuditKey>,
    /// Tests make every write fail with it, as a full disk does.
    #[cfg(test)]
    fault: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SqliteStore {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("plumb.db");
        let open_err = |source: rusqlite::Error| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(source),
        };
        refuse_emptied(&path)?;
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let mut store = Self {
            conn,
            head: Head::default(),
            key: None,
            #[cfg(test)]
            fault: Default::default(),
        };
        schema::migrate(&mut store.conn)?;
        store.head = chain::head(&store.conn)?;
        if store.head.last_id == 0 && store.event_count()? == 0 {
            // Every log begins with this entry, so an emptied log can never pass for a new one.
            store.append_log("", crate::clock::now_ms(), EventKind::LogCreated, None)?;
        }
        Ok(store)
    }

    /// Signs the log's head with `key` from now on (at every append).
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    /// While set, every write fails as on a full disk.
    #[cfg(test)]
    pub(crate) fn fault(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.fault.clone()
    }

    fn writable(&self) -> Result<()> {
        #[cfg(test)]
        if self.fault.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full".into()),
            )));
        }
        Ok(())
    }

    fn event_count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
    }

    /// Verifies the store in `dir` without writing to it (no migration, no first entry).
    pub fn verify_dir(dir: &Path, trusted: &Trusted) -> Result<Verification> {
        let path = dir.join("plumb.db");
        refuse_emptied(&path)?;
        let open_err = |source: rusqlite::Error| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(source),
        };
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(open_err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 2 {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} has no hash chain; start the controller on it once to upgrade it"
            )));
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} is newer than this plumb's {SCHEMA_VERSION}; use a newer plumb"
            )));
        }
        Ok(audit::verify(
            &chain::entries(&conn)?,
            chain::head(&conn)?,
            trusted,
        ))
    }
}

impl SqliteStore {
    /// Makes `before`'s rows and one entry in one transaction: both, or neither (`before`'s
    /// refusal included). The head moves only once they are committed.
    fn append_after(
        &mut self,
        before: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
        host_id: &str,
        at_ms: i64,
        kind: EventKind,
        item: Option<&DriftRecord>,
    ) -> Result<Event> {
        self.writable()?;
        let mut head = self.head.clone();
        let tx = self.conn.transaction()?;
        before(&tx)?;
        let id = chain::append(&tx, &mut head, at_ms, host_id, kind, item)?;
        chain::store_head(&tx, &mut head, self.key.as_ref())?;
        tx.commit()?;
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

impl Store for SqliteStore {
    fn logged(&self) -> Result<Vec<super::Logged>> {
        chain::logged(&self.conn)
    }

    fn head(&self) -> &Head {
        &self.head
    }

    fn load_hosts(&self) -> Result<Vec<StoredHost>> {
        let mut hosts = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT host_id, info, last_seen_ms FROM hosts ORDER BY host_id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (host_id, info, last_seen_ms) = row?;
            let info: HostInfo = serde_json::from_str::<rows::HostRow>(&info)
                .map_err(|e| StoreError::Corrupt(format!("host {host_id}: {e}")))?
                .into();
            hosts.push(StoredHost {
                info,
                last_seen_ms,
                drift: Vec::new(),
                holder: Default::default(),
                state: Default::default(),
            });
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT host_id, {DRIFT_COLUMNS} FROM drift ORDER BY host_id, resource, attribute"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let host_id: String = r.get(0)?;
            let drift = drift_row(r, 1, &host_id)?;
            if let Some(h) = hosts.iter_mut().find(|h| h.info.host_id == host_id) {
                h.drift.push(drift);
            }
        }
        Ok(hosts)
    }

    fn load_drift(&self, host_id: &str) -> Result<Vec<(Key, DriftRecord)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {DRIFT_COLUMNS} FROM drift WHERE host_id = ?1 ORDER BY resource, attribute"
        ))?;
        let mut rows = stmt.query([host_id])?;
        let mut drift = Vec::new();
        while let Some(r) = rows.next()? {
            drift.push(drift_row(r, 0, host_id)?);
        }
        Ok(drift)
    }

    fn load_observations(&self, host_id: &str) -> Result<Vec<(Key, Observation)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, state FROM observations WHERE host_id = ?1")?;
        let rows = stmt.query_map([host_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (path, state) = row?;
            out.push(rows::observation(host_id, &path, &state)?);
        }
        Ok(out)
    }

    fn load_acks(&self) -> Result<Vec<Ack>> {
        let mut stmt = self.conn.prepare(
            "SELECT host_id, resource, reason, by, at_ms, expires_ms FROM acks ORDER BY host_id, resource",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Ack {
                host_id: r.get(0)?,
                resource: r.get(1)?,
                reason: r.get(2)?,
                by: r.get(3)?,
                at_ms: r.get(4)?,
                expires_ms: r.get(5)?,
            })
        })?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(StoreError::from)
    }

    fn page(&self, q: &LogQuery) -> Result<Vec<Event>> {
        chain::page(&self.conn, q)
    }

    fn trend(&self, since_ms: i64) -> Result<Vec<(i64, EventKind)>> {
        chain::trend(&self.conn, since_ms)
    }

    fn standing(&self, at_ms: i64) -> Result<Standing> {
        spans::standing(&self.conn, at_ms)
    }

    fn verify(&self, trusted: &Trusted) -> Result<Verification> {
        Ok(audit::verify(
            &chain::entries(&self.conn)?,
            chain::head(&self.conn)?,
            trusted,
        ))
    }

    fn record(
        &mut self,
        host_id: &str,
        at_ms: i64,
        observations: &[(&Key, Option<&Observation>)],
        changes: &[DriftChange<'_>],
    ) -> Result<Vec<Event>> {
        self.writable()?;
        // The head moves only once the entries are committed.
        let mut head = self.head.clone();
        let tx = self.conn.transaction()?;
        let mut events = Vec::with_capacity(changes.len());
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO observations (host_id, path, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (host_id, path) DO UPDATE SET state = excluded.state",
            )?;
            let mut forget =
                tx.prepare_cached("DELETE FROM observations WHERE host_id = ?1 AND path = ?2")?;
            for (key, observed) in observations {
                let path = key.stored();
                match observed {
                    Some(o) => {
                        let json = serde_json::to_string(&rows::ObservationRow::from(*o))
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        put.execute(params![host_id, path, json])?;
                    }
                    None => {
                        forget.execute(params![host_id, path])?;
                    }
                }
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO drift (host_id, resource, attribute, origin, expected, actual, since_ms, declared_at, evidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (host_id, resource, attribute) DO UPDATE SET
                     origin = excluded.origin, expected = excluded.expected, actual = excluded.actual,
                     since_ms = excluded.since_ms, declared_at = excluded.declared_at,
                     evidence = excluded.evidence",
            )?;
            let mut delete = tx.prepare_cached(
                "DELETE FROM drift WHERE host_id = ?1 AND resource = ?2 AND attribute = ?3",
            )?;
            for change in changes {
                let (kind, record) = change.parts();
                match change {
                    DriftChange::Open { origin, .. } | DriftChange::Change { origin, .. } => {
                        upsert.execute(params![
                            host_id,
                            record.resource,
                            record.attribute,
                            origin.stored(),
                            record.expected,
                            record.actual,
                            record.since_ms,
                            record.declared_at,
                            evidence::to_text(&record.evidence)?,
                        ])?;
                    }
                    DriftChange::Resolve { .. } => {
                        delete.execute(params![host_id, record.resource, record.attribute])?;
                    }
                }
                let id = chain::append(&tx, &mut head, at_ms, host_id, kind, Some(record))?;
                events.push(Event {
                    id,
                    at_ms,
                    host_id: host_id.to_owned(),
                    kind,
                    item: Some(record.clone()),
                });
            }
        }
        if !events.is_empty() {
            chain::store_head(&tx, &mut head, self.key.as_ref())?;
        }
        tx.commit()?;
        self.head = head;
        Ok(events)
    }

    fn append_log(
        &mut self,
        host_id: &str,
        at_ms: i64,
        kind: EventKind,
        item: Option<&DriftRecord>,
    ) -> Result<Event> {
        self.append_after(|_| Ok(()), host_id, at_ms, kind, item)
    }

    fn load_windows(&self) -> Result<Vec<ChangeWindow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM windows ORDER BY ticket",
            windows::COLUMNS
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let closed = match (r.get::<_, Option<i64>>(6)?, r.get::<_, Option<String>>(7)?) {
                (Some(at), by) => Some((at, by.unwrap_or_default())),
                _ => None,
            };
            out.push(windows::window_of(
                r.get(0)?,
                &r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                closed,
                r.get::<_, i64>(8)? != 0,
            )?);
        }
        Ok(out)
    }

    fn open_window(&mut self, w: &ChangeWindow, at_ms: i64) -> Result<Event> {
        let scope = windows::scope_text(&w.scope)?;
        let record = windows::record(w, w.reason.clone(), &w.opened_by);
        self.append_after(
            |tx| {
                let inserted = tx.execute(
                    "INSERT INTO windows (ticket, scope, from_ms, until_ms, opened_by, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (ticket) DO NOTHING",
                    params![
                        w.ticket,
                        scope,
                        w.from_ms,
                        w.until_ms,
                        w.opened_by,
                        w.reason
                    ],
                )?;
                if inserted == 0 {
                    return Err(windows::exists(&w.ticket));
                }
                Ok(())
            },
            "",
            at_ms,
            EventKind::ChangeOpened,
            Some(&record),
        )
    }

    fn close_window(&mut self, w: &ChangeWindow) -> Result<Event> {
        let (at_ms, by) = w.closed.clone().unwrap_or_default();
        let record = windows::record(w, format!("closed early by {by}"), &by);
        self.append_after(
            |tx| {
                let closed = tx.execute(
                    "UPDATE windows SET closed_ms = ?2, closed_by = ?3
                     WHERE ticket = ?1 AND closed_ms IS NULL AND ended = 0",
                    params![w.ticket, at_ms, by],
                )?;
                if closed == 0 {
                    return Err(windows::not_open(&w.ticket));
                }
                Ok(())
            },
            "",
            at_ms,
            EventKind::ChangeClosed,
            Some(&record),
        )
    }

    fn end_window(&mut self, w: &ChangeWindow, at_ms: i64, text: &str) -> Result<Event> {
        let record = windows::record(w, text.to_owned(), "");
        self.append_after(
            |tx| {
                let ended = tx.execute(
                    "UPDATE windows SET ended = 1 WHERE ticket = ?1 AND ended = 0",
                    params![w.ticket],
                )?;
                if ended == 0 {
                    return Err(StoreError::AlreadyEnded {
                        host: String::new(),
                        resource: format!("change:{}", w.ticket),
                    });
                }
                Ok(())
            },
            "",
            at_ms,
            EventKind::ChangeEnded,
            Some(&record),
        )
    }
    fn delete_ack(&mut self, ack: &Ack, at_ms: i64, kind: EventKind) -> Result<Event> {
        self.append_after(
            |tx| {
                let deleted = tx.execute(
                    "DELETE FROM acks WHERE host_id = ?1 AND resource = ?2",
                    params![ack.host_id, ack.resource],
                )?;
                if deleted == 0 {
                    return Err(StoreError::AlreadyEnded {
                        host: ack.host_id.clone(),
                        resource: ack.resource.clone(),
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

    fn upsert_host(&mut self, info: &HostInfo, last_seen_ms: i64) -> Result<()> {
        self.writable()?;
        let json = serde_json::to_string(&rows::HostRow::from(info))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO hosts (host_id, info, last_seen_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (host_id) DO UPDATE SET info = excluded.info, last_seen_ms = excluded.last_seen_ms",
            params![info.host_id, json, last_seen_ms],
        )?;
        Ok(())
    }

    fn touch_hosts(&mut self, seen: &[(&str, i64)]) -> Result<()> {
        self.writable()?;
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("UPDATE hosts SET last_seen_ms = ?2 WHERE host_id = ?1")?;
            for (host, at) in seen {
                stmt.execute(params![host, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn put_ack(&mut self, ack: &Ack) -> Result<Event> {
        self.append_after(
            |tx| {
                tx.execute(
                    "INSERT INTO acks (host_id, resource, reason, by, at_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (host_id, resource) DO UPDATE SET reason = excluded.reason, by = excluded.by,
                         at_ms = excluded.at_ms, expires_ms = excluded.expires_ms",
                    params![ack.host_id, ack.resource, ack.reason, ack.by, ack.at_ms, ack.expires_ms],
                )?;
                Ok(())
            },
            &ack.host_id,
            ack.at_ms,
            EventKind::Acknowledged,
            Some(&ack_record(ack)),
        )
    }
}

/// The columns `drift_row` reads, in its order.
const DRIFT_COLUMNS: &str =
    "origin, resource, attribute, expected, actual, since_ms, declared_at, evidence";

/// A `drift` row's key and record, from column `from` on (`DRIFT_COLUMNS`).
fn drift_row(r: &rusqlite::Row<'_>, from: usize, host_id: &str) -> Result<(Key, DriftRecord)> {
    let record = DriftRecord {
        resource: r.get(from + 1)?,
        attribute: r.get(from + 2)?,
        expected: r.get(from + 3)?,
        actual: r.get(from + 4)?,
        since_ms: r.get(from + 5)?,
        declared_at: r.get(from + 6)?,
        evidence: Default::default(),
    };
    let evidence = evidence::from_text(
        r.get::<_, Option<String>>(from + 7)?.as_deref(),
        &format_args!("drift {} on {host_id}", record.resource),
    )?;
    Ok((
        Key::from_stored(&r.get::<_, String>(from)?),
        DriftRecord { evidence, ..record },
    ))
}

/// A store file of 0 bytes is not a new store: something emptied it, and starting over would
/// throw the history away and verify "intact". A missing file is a new store.
fn refuse_emptied(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => Err(StoreError::Corrupt(format!(
            "{} is empty (0 bytes): the store and its history are gone; refusing to start a new one over it. \
             Restore it from a backup, or move it away to start afresh on purpose",
            path.display()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
