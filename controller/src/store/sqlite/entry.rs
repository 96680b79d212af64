//! An event row read back, as every read of the log selects it (`chain.rs` for pages and
//! periods, `spans.rs` for a moment's entries).

use crate::model::DriftRecord;
use crate::store::{Result, evidence};

/// The columns every `SELECT` of an event lists, in this order: `event_item` reads 4 to 10.
pub(super) const EVENT_COLUMNS: &str = "id, at_ms, host_id, kind, resource, attribute, expected, actual, since_ms, declared_at, evidence";

/// An event row's item, from its columns 4 to 10 (`resource` to `evidence`, as
/// `EVENT_COLUMNS` lists them); `None` where the event has none.
pub(super) fn event_item(r: &rusqlite::Row<'_>) -> Result<Option<DriftRecord>> {
    let Some(resource) = r.get::<_, Option<String>>(4)? else {
        return Ok(None);
    };
    let id: i64 = r.get(0)?;
    Ok(Some(DriftRecord {
        resource,
        attribute: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        expected: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
        actual: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        since_ms: r.get::<_, Option<i64>>(8)?.unwrap_or_default(),
        declared_at: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        evidence: evidence::from_text(
            r.get::<_, Option<String>>(10)?.as_deref(),
            &format_args!("event {id}"),
        )?,
    }))
}
