//! The PostgreSQL schema, versioned in `plumb_schema`: each migration runs once, in order, at
//! open, under an advisory lock so that controllers starting together migrate once; a store
//! of a newer version is refused.

use postgres::{Client, GenericClient};

use crate::store::{Result, StoreError};

pub(super) const SCHEMA_VERSION: i32 = 6;

/// The advisory lock that serialises migrations (an arbitrary constant: "plumb" in ASCII).
pub(super) const MIGRATION_LOCK: i64 = 0x0070_6c75_6d62;
/// The advisory lock the controller doing the fleet's singleton work holds, for as long as
/// its session lasts ("plumb1").
pub(super) const SINGLETON_LOCK: i64 = 0x706c_756d_6231;
/// The channel every write notifies, once committed.
pub(super) const CHANNEL: &str = "plumb";
/// The payload of a notification about a diff request or its answer (others have none).
pub(super) const CONTENT: &str = "content";

/// The schema version written in the database; `None` where it holds no plumb store (yet).
pub(super) fn version(client: &mut impl GenericClient) -> Result<Option<i32>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('plumb_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt("SELECT version FROM plumb_schema", &[])?
        .map(|r| r.get(0)))
}

/// The refusal of a store written by a newer plumb.
pub(super) fn newer(version: i32) -> StoreError {
    StoreError::Corrupt(format!(
        "schema version {version} is newer than this plumb's {SCHEMA_VERSION}; use a newer plumb"
    ))
}

pub(super) fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS plumb_schema (version INTEGER NOT NULL)")?;
    let version = match version(&mut tx)? {
        Some(v) => v,
        None => {
            tx.execute("INSERT INTO plumb_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    if version > SCHEMA_VERSION {
        return Err(newer(version));
    }
    if version < 1 {
        // What SQLite's schema 4 holds: the chain's ids given by the store, one after the
        // other, and a signed head.
        tx.batch_execute(
            "CREATE TABLE hosts (
                 host_id TEXT PRIMARY KEY,
                 info TEXT NOT NULL,
                 last_seen_ms BIGINT NOT NULL
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
                 since_ms BIGINT NOT NULL,
                 declared_at TEXT NOT NULL,
                 PRIMARY KEY (host_id, resource, attribute)
             );
             CREATE TABLE events (
                 id BIGINT PRIMARY KEY,
                 at_ms BIGINT NOT NULL,
                 host_id TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 resource TEXT,
                 attribute TEXT,
                 expected TEXT,
                 actual TEXT,
                 since_ms BIGINT,
                 declared_at TEXT,
                 prev_hash TEXT NOT NULL,
                 hash TEXT NOT NULL
             );
             CREATE INDEX events_by_host ON events (host_id, id);
             CREATE TABLE audit_head (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 last_id BIGINT NOT NULL,
                 hash TEXT NOT NULL,
                 signature TEXT NOT NULL,
                 public_key TEXT NOT NULL
             );
             CREATE TABLE acks (
                 host_id TEXT NOT NULL,
                 resource TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 by_whom TEXT NOT NULL,
                 at_ms BIGINT NOT NULL,
                 expires_ms BIGINT,
                 PRIMARY KEY (host_id, resource)
             );
             UPDATE plumb_schema SET version = 1;",
        )?;
    }
    if version < 2 {
        // Several controllers: who holds each host's stream, under which claim (`epoch`, one
        // more at every claim, for fencing); `version`, from one sequence under the head's
        // lock, so others read what changed since they last looked, in commit order; the
        // holder's word on the host (`state`); which controller appended each entry (not
        // part of the chain: it routes, it proves nothing); and the controllers' beats.
        tx.batch_execute(
            "ALTER TABLE hosts
                 ADD COLUMN owner TEXT,
                 ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0,
                 ADD COLUMN version BIGINT NOT NULL DEFAULT 0,
                 ADD COLUMN state TEXT;
             CREATE SEQUENCE host_versions;
             CREATE INDEX hosts_by_version ON hosts (version);
             CREATE INDEX hosts_by_owner ON hosts (owner);
             ALTER TABLE events ADD COLUMN origin TEXT NOT NULL DEFAULT '';
             CREATE TABLE controllers (
                 id TEXT PRIMARY KEY,
                 started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                 beat_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );
             UPDATE plumb_schema SET version = 2;",
        )?;
    }
    if version < 3 {
        // Diffs across controllers (`content.rs`): a request names the controller holding
        // the host's stream; the answer is sealed to the asker's key.
        tx.batch_execute(
            "CREATE TABLE content_requests (
                 id BIGSERIAL PRIMARY KEY,
                 asker TEXT NOT NULL,
                 holder TEXT NOT NULL,
                 host_id TEXT NOT NULL,
                 path TEXT NOT NULL,
                 max_bytes BIGINT NOT NULL,
                 public_key BYTEA NOT NULL,
                 asked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                 taken BOOLEAN NOT NULL DEFAULT false,
                 answered BOOLEAN NOT NULL DEFAULT false,
                 sealed BYTEA,
                 error TEXT
             );
             CREATE INDEX content_requests_to_take ON content_requests (holder) WHERE NOT taken;
             CREATE INDEX content_requests_answered ON content_requests (asker) WHERE answered;
             UPDATE plumb_schema SET version = 3;",
        )?;
    }
    if version < 4 {
        // Evidence: who made a change, whether it was authorised, how it resolved (JSON,
        // `store/evidence.rs`); NULL for everything before.
        tx.batch_execute(
            "ALTER TABLE events ADD COLUMN evidence TEXT;
             ALTER TABLE drift ADD COLUMN evidence TEXT;
             UPDATE plumb_schema SET version = 4;",
        )?;
    }
    if version < 5 {
        // Change windows (`window.rs`): a ticket's approval, its scope as JSON.
        tx.batch_execute(
            "CREATE TABLE windows (
                 ticket TEXT PRIMARY KEY,
                 scope TEXT NOT NULL,
                 from_ms BIGINT NOT NULL,
                 until_ms BIGINT NOT NULL,
                 opened_by TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 closed_ms BIGINT,
                 closed_by TEXT,
                 ended BOOLEAN NOT NULL DEFAULT false
             );
             UPDATE plumb_schema SET version = 5;",
        )?;
    }
    if version < 6 {
        // The fleet at a moment (`moment.rs`): spans begun and ended by the entries, built
        // from the log as it stands; and the entries by time, for periods.
        tx.batch_execute(&super::spans::schema())?;
        super::spans::backfill(&mut tx)?;
        tx.batch_execute("UPDATE plumb_schema SET version = 6;")?;
    }
    tx.commit()?;
    Ok(())
}
