//! Change windows as both stores keep them: a `windows` row per ticket, its scope as JSON of
//! the stores' own type, and the entry each opening, closing and end appends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::model::DriftRecord;
use crate::window::{ChangeWindow, Scope};

#[derive(Serialize, Deserialize)]
struct ScopeRow {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    packages: Vec<String>,
}

pub(super) fn scope_text(s: &Scope) -> Result<String> {
    serde_json::to_string(&ScopeRow {
        hosts: s.hosts.clone(),
        labels: s.labels.clone(),
        paths: s.paths.clone(),
        packages: s.packages.clone(),
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn scope_of(ticket: &str, text: &str) -> Result<Scope> {
    let r: ScopeRow = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("change {ticket}'s scope: {e}")))?;
    Ok(Scope {
        hosts: r.hosts,
        labels: r.labels,
        paths: r.paths,
        packages: r.packages,
    })
}

/// The columns both backends read a window from, in `window_of`'s order.
pub(super) const COLUMNS: &str =
    "ticket, scope, from_ms, until_ms, opened_by, reason, closed_ms, closed_by, ended";

/// A window from its columns (`COLUMNS`), as each backend reads them.
#[allow(clippy::too_many_arguments)]
pub(super) fn window_of(
    ticket: String,
    scope: &str,
    from_ms: i64,
    until_ms: i64,
    opened_by: String,
    reason: String,
    closed: Option<(i64, String)>,
    ended: bool,
) -> Result<ChangeWindow> {
    Ok(ChangeWindow {
        scope: scope_of(&ticket, scope)?,
        ticket,
        from_ms,
        until_ms,
        opened_by,
        reason,
        closed,
        ended,
    })
}

/// A window's entry in the log: `change:TICKET`, its scope in `expected`, `actual` as given,
/// its end in `since_ms`, `by` (who opened or closed it) in `declared_at`.
pub(crate) fn record(w: &ChangeWindow, actual: String, by: &str) -> DriftRecord {
    DriftRecord {
        resource: format!("change:{}", w.ticket),
        attribute: "change".into(),
        expected: w.scope_text(),
        actual,
        since_ms: w.until_ms,
        declared_at: by.to_owned(),
        evidence: Default::default(),
    }
}

/// The refusal of a second window under one ticket.
pub(super) fn exists(ticket: &str) -> StoreError {
    StoreError::Refused(format!(
        "change {ticket} exists already; close it, or open the new one under another ticket"
    ))
}

/// The refusal to close a window that is closed or over.
pub(super) fn not_open(ticket: &str) -> StoreError {
    StoreError::Refused(format!("change {ticket} is not open (closed, or ended)"))
}
