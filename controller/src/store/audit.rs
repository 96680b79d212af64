//! The event log's hash chain: every entry carries the hash of the one before it, and a head
//! row records the last entry, so an edited, removed or reordered entry (or a cut-off tail) is
//! found by `plumb audit verify` and named.

use rusqlite::{Connection, Transaction, params};

use super::{Result, StoreError};
use crate::manifest::hex_sha256;
use crate::model::{DriftRecord, EventKind};

/// One entry as hashed: every column, each length-prefixed so that no two entries encode alike.
fn canonical(id: i64, at_ms: i64, host_id: &str, kind: &str, item: Option<&DriftRecord>) -> String {
    let mut s = String::new();
    let mut field = |v: &str| {
        s.push_str(&v.len().to_string());
        s.push(':');
        s.push_str(v);
        s.push('|');
    };
    field(&id.to_string());
    field(&at_ms.to_string());
    field(host_id);
    field(kind);
    if let Some(r) = item {
        for v in [
            &r.resource,
            &r.attribute,
            &r.expected,
            &r.actual,
            &r.since_ms.to_string(),
            &r.declared_at,
        ] {
            field(v);
        }
    }
    s
}

fn chain(prev: &str, canonical: &str) -> String {
    hex_sha256(format!("{prev}\n{canonical}").as_bytes())
}

/// Appends one entry in `tx`, chained to `head`, and moves the head. Returns the new id.
pub(super) fn append(
    tx: &Transaction<'_>,
    head: &mut (i64, String),
    at_ms: i64,
    host_id: &str,
    kind: EventKind,
    item: Option<&DriftRecord>,
) -> Result<i64> {
    let r = item;
    tx.prepare_cached(
        "INSERT INTO events (at_ms, host_id, kind, resource, attribute, expected, actual, since_ms, declared_at, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '')",
    )?
    .execute(params![
        at_ms,
        host_id,
        kind.as_str(),
        r.map(|r| &r.resource),
        r.map(|r| &r.attribute),
        r.map(|r| &r.expected),
        r.map(|r| &r.actual),
        r.map(|r| r.since_ms),
        r.map(|r| &r.declared_at),
        head.1,
    ])?;
    let id = tx.last_insert_rowid();
    let hash = chain(&head.1, &canonical(id, at_ms, host_id, kind.as_str(), item));
    tx.prepare_cached("UPDATE events SET hash = ?2 WHERE id = ?1")?
        .execute(params![id, hash])?;
    tx.prepare_cached(
        "INSERT INTO audit_head (id, last_id, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash",
    )?
    .execute(params![id, hash])?;
    *head = (id, hash);
    Ok(id)
}

/// The head as stored: (last id, its hash); (0, "") for an empty log.
pub(super) fn head(conn: &Connection) -> Result<(i64, String)> {
    let mut stmt = conn.prepare("SELECT last_id, hash FROM audit_head WHERE id = 1")?;
    let mut rows = stmt.query([])?;
    Ok(match rows.next()? {
        Some(row) => (row.get(0)?, row.get(1)?),
        None => (0, String::new()),
    })
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

struct Entry {
    id: i64,
    canonical: String,
    prev_hash: String,
    hash: String,
}

fn entries(conn: &Connection) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare(
        "SELECT id, at_ms, host_id, kind, resource, attribute, expected, actual, since_ms, declared_at, prev_hash, hash
         FROM events ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        let resource: Option<String> = r.get(4)?;
        let item = match resource {
            Some(resource) => Some(DriftRecord {
                resource,
                attribute: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                expected: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                actual: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                since_ms: r.get::<_, Option<i64>>(8)?.unwrap_or_default(),
                declared_at: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
            }),
            None => None,
        };
        let (id, at_ms, host, kind): (i64, i64, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        Ok(Entry {
            id,
            canonical: canonical(id, at_ms, &host, &kind, item.as_ref()),
            prev_hash: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            hash: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        })
    })?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(StoreError::from)
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verification {
    pub entries: usize,
    pub head: String,
    /// Empty when the log is intact; otherwise each problem, naming the entry.
    pub problems: Vec<String>,
}

/// Walks the whole chain and the head.
pub(super) fn verify(conn: &Connection) -> Result<Verification> {
    let rows = entries(conn)?;
    let mut problems = Vec::new();
    let mut prev: Option<&Entry> = None;
    for e in &rows {
        let expected_prev = prev.map_or("", |p| p.hash.as_str());
        if e.prev_hash != expected_prev {
            problems.push(match prev {
                Some(p) => format!(
                    "entry {} does not follow entry {}: entries between them were removed, or entries were reordered",
                    e.id, p.id
                ),
                None => format!("entry {} is not the first entry of the log: earlier entries were removed", e.id),
            });
        }
        if chain(&e.prev_hash, &e.canonical) != e.hash {
            problems.push(format!(
                "entry {} was edited: its content does not match its hash",
                e.id
            ));
        }
        prev = Some(e);
    }
    let (last_id, last_hash) = head(conn)?;
    let tail = rows.last();
    match tail {
        Some(t) if t.id != last_id || t.hash != last_hash => problems.push(format!(
            "the log ends at entry {} but its head records entry {}: entries at the end were removed or replaced",
            t.id, last_id
        )),
        None if last_id != 0 => {
            problems.push(format!("the log is empty but its head records entry {last_id}: every entry was removed"))
        }
        _ => {}
    }
    Ok(Verification {
        entries: rows.len(),
        head: last_hash,
        problems,
    })
}
