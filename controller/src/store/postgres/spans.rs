//! The fleet at a moment (`moment.rs`) as PostgreSQL keeps it: `spans`, one row per span,
//! begun and ended by each entry's own `INSERT` (`chain::append_sql`); read back joined to the
//! entries that began them.

use postgres::{Client, IsolationLevel, Transaction};

use super::{chain, read};
use crate::model::{DriftRecord, EventKind};
use crate::moment::{self, Span, Standing};
use crate::store::{Result, StoreError};

/// The table and its indexes, as SQLite's (`sqlite/spans.rs`).
pub(super) fn schema() -> String {
    format!(
        "CREATE TABLE spans (
             span TEXT NOT NULL,
             host_id TEXT NOT NULL,
             resource TEXT NOT NULL,
             attribute TEXT NOT NULL,
             from_id BIGINT NOT NULL PRIMARY KEY,
             from_ms BIGINT NOT NULL,
             to_ms BIGINT NOT NULL
         );
         CREATE INDEX spans_open ON spans (host_id, span, resource, attribute)
             WHERE to_ms = {OPEN};
         CREATE INDEX spans_at ON spans (to_ms, from_ms);
         CREATE INDEX spans_streams ON spans (host_id, from_ms, to_ms) WHERE span = 'stream';
         CREATE INDEX events_by_time ON events (at_ms, id);",
        OPEN = moment::OPEN
    )
}

/// Builds the spans of a log written before they were kept, entry by entry in id order.
pub(super) fn backfill(tx: &mut Transaction<'_>) -> Result<()> {
    let end = tx.prepare(&format!(
        "UPDATE spans SET to_ms = $5 WHERE host_id = $1 AND span = $2 AND resource = $3
         AND attribute = $4 AND to_ms = {}",
        moment::OPEN
    ))?;
    let begin = tx.prepare(
        "INSERT INTO spans (span, host_id, resource, attribute, from_id, from_ms, to_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )?;
    let mut after = 0i64;
    loop {
        let rows = tx.query(
            "SELECT id, at_ms, host_id, kind, resource, attribute FROM events
             WHERE id > $1 ORDER BY id LIMIT 10000",
            &[&after],
        )?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.get(0);
        for r in &rows {
            let (id, at_ms, host, kind): (i64, i64, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let kind = EventKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("event {id} has kind {kind:?}")))?;
            let item = r.get::<_, Option<String>>(4).map(|resource| DriftRecord {
                resource,
                attribute: r.get::<_, Option<String>>(5).unwrap_or_default(),
                expected: String::new(),
                actual: String::new(),
                since_ms: 0,
                declared_at: String::new(),
                evidence: Default::default(),
            });
            let Some(fx) = moment::effect(kind, item.as_ref()) else {
                continue;
            };
            let span = fx.span.as_str();
            tx.execute(&end, &[&host, &span, &fx.resource, &fx.attribute, &at_ms])?;
            if fx.begins {
                tx.execute(
                    &begin,
                    &[
                        &span,
                        &host,
                        &fx.resource,
                        &fx.attribute,
                        &id,
                        &at_ms,
                        &moment::OPEN,
                    ],
                )?;
            }
        }
    }
}

/// What stood at `at_ms` (`Store::standing`), read in one snapshot.
pub(super) fn standing(client: &mut Client, at_ms: i64) -> Result<Standing> {
    let columns: Vec<String> = chain::event_columns()
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect();
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    // The spans not ended by T, their beginnings checked in `spans_at` (as SQLite's).
    let rows = tx.query(
        &format!(
            "SELECT {}, s.span FROM spans s JOIN events e ON e.id = s.from_id
             WHERE s.to_ms > $1 AND s.from_ms <= $1 ORDER BY s.from_id",
            columns.join(", ")
        ),
        &[&at_ms],
    )?;
    let span_at = columns.len();
    let mut open = Vec::with_capacity(rows.len());
    for r in &rows {
        let span: &str = r.get(span_at);
        let span = Span::parse(span).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "span of event {} reads {span:?}",
                r.get::<_, i64>(0)
            ))
        })?;
        open.push((span, read::event_of(r)?));
    }
    let hosts = tx
        .query(
            "SELECT host_id, max(to_ms) FROM spans WHERE span = 'stream' AND from_ms <= $1
             GROUP BY host_id ORDER BY host_id",
            &[&at_ms],
        )?
        .iter()
        .map(|r| {
            let to: i64 = r.get(1);
            (r.get(0), (to <= at_ms).then_some(to))
        })
        .collect();
    tx.commit()?;
    Ok(Standing { at_ms, open, hosts })
}
