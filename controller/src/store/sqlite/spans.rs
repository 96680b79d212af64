//! The fleet at a moment (`moment.rs`) as SQLite keeps it: `spans`, one row per span, begun
//! and ended by the entries `chain::append` writes, in their transaction; read back joined
//! to the entries that began them.

use rusqlite::{Connection, params};

use super::entry::{EVENT_COLUMNS, event_item};
use crate::model::{DriftRecord, Event, EventKind};
use crate::moment::{self, Span, Standing};
use crate::store::{Result, StoreError};

/// The table and its indexes, as few as a moment needs, since every entry writes them: open
/// spans by what ends them (only open ones: the costly one, a random place in a B-tree for
/// each span, BENCHMARKS.md), every span by its end with its beginning, and streams by host
/// (only streams). A moment's question, `to_ms > T AND from_ms <= T`, is read from `spans_at`
/// alone (the spans not ended by T, the beginning checked in the index), by their own times
/// whatever order their entries were appended in.
pub(super) const SCHEMA: &str = "
    CREATE TABLE spans (
        span TEXT NOT NULL,
        host_id TEXT NOT NULL,
        resource TEXT NOT NULL,
        attribute TEXT NOT NULL,
        from_id INTEGER NOT NULL PRIMARY KEY,
        from_ms INTEGER NOT NULL,
        to_ms INTEGER NOT NULL
    );
    CREATE INDEX spans_open ON spans (host_id, span, resource, attribute)
        WHERE to_ms = 9223372036854775807;
    CREATE INDEX spans_at ON spans (to_ms, from_ms);
    CREATE INDEX spans_streams ON spans (host_id, from_ms, to_ms) WHERE span = 'stream';
    CREATE INDEX events_by_time ON events (at_ms, id);";

/// What entry `id` does to the spans (`moment::effect`), in the entry's transaction.
pub(super) fn index(
    conn: &Connection,
    id: i64,
    at_ms: i64,
    host_id: &str,
    kind: EventKind,
    item: Option<&DriftRecord>,
) -> Result<()> {
    let Some(fx) = moment::effect(kind, item) else {
        return Ok(());
    };
    // The literal matches `spans_open`'s, so the update uses it.
    conn.prepare_cached(
        "UPDATE spans SET to_ms = ?5 WHERE host_id = ?1 AND span = ?2 AND resource = ?3
         AND attribute = ?4 AND to_ms = 9223372036854775807",
    )?
    .execute(params![
        host_id,
        fx.span.as_str(),
        fx.resource,
        fx.attribute,
        at_ms
    ])?;
    if fx.begins {
        conn.prepare_cached(
            "INSERT INTO spans (span, host_id, resource, attribute, from_id, from_ms, to_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            fx.span.as_str(),
            host_id,
            fx.resource,
            fx.attribute,
            id,
            at_ms,
            moment::OPEN
        ])?;
    }
    Ok(())
}

/// Builds the spans of a log written before they were kept, entry by entry in id order.
pub(super) fn backfill(conn: &Connection) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT id, at_ms, host_id, kind, resource, attribute FROM events ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (id, kind): (i64, String) = (r.get(0)?, r.get(3)?);
        let Some(kind) = EventKind::parse(&kind) else {
            return Err(StoreError::Corrupt(format!("event {id} has kind {kind:?}")));
        };
        let attribute = r.get::<_, Option<String>>(5)?.unwrap_or_default();
        let item = r.get::<_, Option<String>>(4)?.map(|resource| DriftRecord {
            resource,
            attribute,
            expected: String::new(),
            actual: String::new(),
            since_ms: 0,
            declared_at: String::new(),
            evidence: Default::default(),
        });
        let host: String = r.get(2)?;
        index(conn, id, r.get(1)?, &host, kind, item.as_ref())?;
    }
    Ok(())
}

/// What stood at `at_ms` (`Store::standing`).
pub(super) fn standing(conn: &Connection, at_ms: i64) -> Result<Standing> {
    let columns: Vec<String> = EVENT_COLUMNS
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {}, s.span FROM spans s INDEXED BY spans_at JOIN events e ON e.id = s.from_id
         WHERE s.to_ms > ?1 AND s.from_ms <= ?1 ORDER BY s.from_id",
        columns.join(", ")
    ))?;
    let mut rows = stmt.query(params![at_ms])?;
    let mut open = Vec::new();
    while let Some(r) = rows.next()? {
        let (id, kind, span): (i64, String, String) = (r.get(0)?, r.get(3)?, r.get(11)?);
        let bad = || StoreError::Corrupt(format!("span of event {id} reads {span:?}/{kind:?}"));
        let span = Span::parse(&span).ok_or_else(bad)?;
        let kind = EventKind::parse(&kind).ok_or_else(bad)?;
        open.push((
            span,
            Event {
                id,
                at_ms: r.get(1)?,
                host_id: r.get(2)?,
                kind,
                item: event_item(r)?,
            },
        ));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT host_id, max(to_ms) FROM spans INDEXED BY spans_streams
         WHERE span = 'stream' AND from_ms <= ?1 GROUP BY host_id ORDER BY host_id",
    )?;
    let hosts = stmt
        .query_map(params![at_ms], |r| {
            let (host, to): (String, i64) = (r.get(0)?, r.get(1)?);
            Ok((host, (to <= at_ms).then_some(to)))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Standing { at_ms, open, hosts })
}
