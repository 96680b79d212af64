//! The event log's hash chain as SQLite keeps it: entries in `events` (`prev_hash`, `hash`),
//! the head in `audit_head`. The hashing, the signature and what verification checks are the
//! store's, in `store/audit.rs`; only the rows are here.

use rusqlite::{Connection, Transaction, params};

use super::entry::{EVENT_COLUMNS, event_item};
use crate::model::{DriftRecord, Event, EventKind};
use crate::store::audit::{AuditKey, Entry, Head, Logged, canonical, chain};
use crate::store::{LogQuery, OUT_OF_ORDER_MS, Result, StoreError, evidence};

/// Appends one entry in `tx` with the next id, chained to `head`, and moves `head` (not yet
/// its stored row: `store_head` does that once per transaction). Returns the new id.
pub(super) fn append(
    tx: &Transaction<'_>,
    head: &mut Head,
    at_ms: i64,
    host_id: &str,
    kind: EventKind,
    item: Option<&DriftRecord>,
) -> Result<i64> {
    let r = item;
    let id = head.last_id + 1;
    let evidence = item
        .map(|r| evidence::to_text(&r.evidence))
        .transpose()?
        .flatten();
    let hash = chain(
        &head.hash,
        &canonical(id, at_ms, host_id, kind.as_str(), item, evidence.as_deref()),
    );
    tx.prepare_cached(
        "INSERT INTO events (id, at_ms, host_id, kind, resource, attribute, expected, actual, since_ms, declared_at, evidence, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        id,
        at_ms,
        host_id,
        kind.as_str(),
        r.map(|r| &r.resource),
        r.map(|r| &r.attribute),
        r.map(|r| &r.expected),
        r.map(|r| &r.actual),
        r.map(|r| r.since_ms),
        r.map(|r| &r.declared_at),
        evidence,
        head.hash,
        hash,
    ])?;
    super::spans::index(tx, id, at_ms, host_id, kind, item)?;
    head.last_id = id;
    head.hash = hash;
    head.signature.clear();
    Ok(id)
}

/// Writes the head row for `head`, signed with `key` if there is one.
pub(super) fn store_head(
    tx: &Transaction<'_>,
    head: &mut Head,
    key: Option<&AuditKey>,
) -> Result<()> {
    if let Some(key) = key {
        head.signature = key.sign(head.last_id, &head.hash);
        head.public_key = key.public_hex();
    } else {
        head.signature.clear();
        head.public_key.clear();
    }
    tx.prepare_cached(
        "INSERT INTO audit_head (id, last_id, hash, signature, public_key) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash,
             signature = excluded.signature, public_key = excluded.public_key",
    )?
    .execute(params![head.last_id, head.hash, head.signature, head.public_key])?;
    Ok(())
}

/// The head as stored; an empty head for an empty log.
pub(super) fn head(conn: &Connection) -> Result<Head> {
    let signed = has_column(conn, "audit_head", "signature")?;
    let sql = if signed {
        "SELECT last_id, hash, signature, public_key FROM audit_head WHERE id = 1"
    } else {
        "SELECT last_id, hash, '', '' FROM audit_head WHERE id = 1"
    };
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    Ok(match rows.next()? {
        Some(row) => Head {
            last_id: row.get(0)?,
            hash: row.get(1)?,
            signature: row.get(2)?,
            public_key: row.get(3)?,
        },
        None => Head::default(),
    })
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Chains rows written before the log was chained (schema version 1).
pub(super) fn chain_existing(tx: &Transaction<'_>) -> Result<()> {
    let rows = entries(tx)?;
    let mut head = (0i64, String::new());
    for e in rows {
        let hash = chain(&head.1, &e.canonical);
        tx.execute(
            "UPDATE events SET prev_hash = ?2, hash = ?3 WHERE id = ?1",
            params![e.id, head.1, hash],
        )?;
        head = (e.id, hash);
    }
    if head.0 > 0 {
        tx.execute(
            "INSERT INTO audit_head (id, last_id, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash",
            params![head.0, head.1],
        )?;
    }
    Ok(())
}

/// A page of the log, newest first (`Store::page`). A period is the entries made in it, by
/// their own times, whatever order they were appended in (a clock set back, another
/// controller's behind): read through `events_by_time`, then ordered by id (the planner,
/// knowing no better, would read back from the newest).
pub(super) fn page(conn: &Connection, q: &LogQuery) -> Result<Vec<Event>> {
    let (index, period) = if q.since_ms.is_some() || q.until_ms.is_some() {
        (
            "INDEXED BY events_by_time",
            "AND at_ms >= ?5 AND at_ms < ?6",
        )
    } else {
        ("", "")
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events {index} WHERE id < ?3 \
         AND (?1 IS NULL OR host_id = ?1) AND (?2 IS NULL OR kind = ?2) {period} \
         ORDER BY id DESC LIMIT ?4"
    ))?;
    let kind = q.kind.map(EventKind::as_str);
    let before = q.before.unwrap_or(i64::MAX);
    let mut rows = if period.is_empty() {
        stmt.query(params![q.host, kind, before, q.limit])?
    } else {
        let since = q.since_ms.unwrap_or(i64::MIN);
        let until = q.until_ms.unwrap_or(i64::MAX);
        stmt.query(params![q.host, kind, before, q.limit, since, until])?
    };
    let mut events = Vec::new();
    while let Some(r) = rows.next()? {
        let (id, kind): (i64, String) = (r.get(0)?, r.get(3)?);
        let kind = EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event {id} has kind {kind:?}")))?;
        events.push(Event {
            id,
            at_ms: r.get(1)?,
            host_id: r.get(2)?,
            kind,
            item: event_item(r)?,
        });
    }
    Ok(events)
}

/// When each `opened` and `resolved` entry since `since_ms` was made, read from the newest
/// back and stopped once past the start (`Store::trend`): no index on time is needed.
pub(super) fn trend(conn: &Connection, since_ms: i64) -> Result<Vec<(i64, EventKind)>> {
    let mut stmt = conn.prepare_cached("SELECT at_ms, kind FROM events ORDER BY id DESC")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (at_ms, kind): (i64, String) = (r.get(0)?, r.get(1)?);
        if at_ms < since_ms - OUT_OF_ORDER_MS {
            break;
        }
        match EventKind::parse(&kind) {
            Some(k @ (EventKind::Opened | EventKind::Resolved)) if at_ms >= since_ms => {
                out.push((at_ms, k))
            }
            _ => {}
        }
    }
    Ok(out)
}

pub(super) fn entries(conn: &Connection) -> Result<Vec<Entry>> {
    Ok(logged(conn)?.iter().map(Logged::entry).collect())
}

/// Every entry as stored, in id order.
pub(super) fn logged(conn: &Connection) -> Result<Vec<Logged>> {
    // A log being chained on upgrade (schema 1) has no evidence yet.
    let columns = if has_column(conn, "events", "evidence")? {
        EVENT_COLUMNS.to_owned()
    } else {
        EVENT_COLUMNS.replace(", evidence", ", NULL")
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {columns}, prev_hash, hash FROM events ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut logged = Vec::new();
    while let Some(r) = rows.next()? {
        logged.push(Logged {
            item: event_item(r)?,
            evidence: r.get(10)?,
            id: r.get(0)?,
            at_ms: r.get(1)?,
            host_id: r.get(2)?,
            kind: r.get(3)?,
            prev_hash: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            hash: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
        });
    }
    Ok(logged)
}
