//! The SQLite schema, versioned in `PRAGMA user_version`: each migration runs once, in
//! order, at open; a store of a newer version is refused.

use rusqlite::Connection;

use super::chain;
use crate::store::{Result, StoreError};

pub(super) const SCHEMA_VERSION: i64 = 7;

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "schema version {version} is newer than this controller's {SCHEMA_VERSION}; use a newer plumb"
        )));
    }
    if version < 1 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE hosts (
                 host_id TEXT PRIMARY KEY,
                 info TEXT NOT NULL,
                 last_seen_ms INTEGER NOT NULL
             );
             CREATE TABLE observations (
                 host_id TEXT NOT NULL REFERENCES hosts(host_id),
                 path TEXT NOT NULL,
                 state TEXT NOT NULL,
                 PRIMARY KEY (host_id, path)
             );
             CREATE TABLE drift (
                 host_id TEXT NOT NULL REFERENCES hosts(host_id),
                 resource TEXT NOT NULL,
                 attribute TEXT NOT NULL,
                 origin TEXT NOT NULL,
                 expected TEXT NOT NULL,
                 actual TEXT NOT NULL,
                 since_ms INTEGER NOT NULL,
                 declared_at TEXT NOT NULL,
                 PRIMARY KEY (host_id, resource, attribute)
             );
             CREATE TABLE events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 at_ms INTEGER NOT NULL,
                 host_id TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 resource TEXT,
                 attribute TEXT,
                 expected TEXT,
                 actual TEXT,
                 since_ms INTEGER,
                 declared_at TEXT
             );
             CREATE INDEX events_by_host ON events (host_id, id);
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    if version < 2 {
        // The event log becomes a hash chain; entries already there are chained in order.
        let tx = conn.transaction()?;
        tx.execute_batch(
            "ALTER TABLE events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
             ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT '';
             CREATE TABLE audit_head (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 last_id INTEGER NOT NULL,
                 hash TEXT NOT NULL
             );",
        )?;
        chain::chain_existing(&tx)?;
        tx.execute_batch("PRAGMA user_version = 2;")?;
        tx.commit()?;
    }
    if version < 3 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE acks (
                 host_id TEXT NOT NULL,
                 resource TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 by TEXT NOT NULL,
                 at_ms INTEGER NOT NULL,
                 expires_ms INTEGER,
                 PRIMARY KEY (host_id, resource)
             );
             PRAGMA user_version = 3;
             COMMIT;",
        )?;
    }
    if version < 4 {
        // The head is signed (Ed25519, the key outside the database); ids are given by
        // the store, one after the other, so a gap is a removal.
        let tx = conn.transaction()?;
        tx.execute_batch(
            "ALTER TABLE audit_head ADD COLUMN signature TEXT NOT NULL DEFAULT '';
             ALTER TABLE audit_head ADD COLUMN public_key TEXT NOT NULL DEFAULT '';
             PRAGMA user_version = 4;",
        )?;
        tx.commit()?;
    }
    if version < 5 {
        // Evidence: who made a change, whether it was authorised, how it resolved (JSON,
        // `store/evidence.rs`); NULL for everything before.
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE events ADD COLUMN evidence TEXT;
             ALTER TABLE drift ADD COLUMN evidence TEXT;
             PRAGMA user_version = 5;
             COMMIT;",
        )?;
    }
    if version < 6 {
        // Change windows (`window.rs`): a ticket's approval, its scope as JSON.
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE windows (
                 ticket TEXT PRIMARY KEY,
                 scope TEXT NOT NULL,
                 from_ms INTEGER NOT NULL,
                 until_ms INTEGER NOT NULL,
                 opened_by TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 closed_ms INTEGER,
                 closed_by TEXT,
                 ended INTEGER NOT NULL DEFAULT 0
             );
             PRAGMA user_version = 6;
             COMMIT;",
        )?;
    }
    if version < 7 {
        // The fleet at a moment (`moment.rs`): spans begun and ended by the entries, built
        // from the log as it stands; and the entries by time, for periods.
        let tx = conn.transaction()?;
        tx.execute_batch(super::spans::SCHEMA)?;
        super::spans::backfill(&tx)?;
        tx.execute_batch("PRAGMA user_version = 7;")?;
        tx.commit()?;
    }
    Ok(())
}
