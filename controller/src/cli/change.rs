//! `plumb change open|list|close`: change windows through the query API.

use anyhow::anyhow;
use plumb_common::cli::exit;
use plumb_proto::v1;

use super::ChangeCommand;
use super::output::{Format, emit, emit_json, rfc3339, table};
use super::query::{client, status_error};
use crate::server::wire;
use crate::window::ChangeWindow;

pub(super) async fn run(command: ChangeCommand) -> anyhow::Result<i32> {
    match command {
        ChangeCommand::Open {
            ticket,
            hosts,
            labels,
            paths,
            packages,
            duration,
            until,
            from,
            reason,
            query,
        } => {
            let from_ms = from.as_deref().map(time).transpose()?.unwrap_or(0);
            let until_ms = until.as_deref().map(time).transpose()?.unwrap_or(0);
            let duration_ms = duration.map_or(0, |d| d.as_millis() as i64);
            let w = client(&query.conn)
                .await?
                .open_change(v1::OpenChangeRequest {
                    ticket,
                    scope: Some(v1::ChangeScope {
                        hosts,
                        labels: labels.into_iter().collect(),
                        paths,
                        packages,
                    }),
                    from_ms,
                    until_ms,
                    reason,
                    duration_ms,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let w = wire::window_from_proto(w);
            said(query.output, &w, || {
                format!(
                    "opened change {} ({}) from {} until {}",
                    w.ticket,
                    w.scope_text(),
                    rfc3339(w.from_ms, false).unwrap_or_default(),
                    rfc3339(w.until_ms, false).unwrap_or_default()
                )
            })
        }
        ChangeCommand::Close { ticket, query } => {
            let w = client(&query.conn)
                .await?
                .close_change(v1::CloseChangeRequest { ticket })
                .await
                .map_err(status_error)?
                .into_inner();
            let w = wire::window_from_proto(w);
            said(query.output, &w, || format!("closed change {}", w.ticket))
        }
        ChangeCommand::List { all, query } => {
            let now = crate::clock::now_ms();
            let windows: Vec<ChangeWindow> = client(&query.conn)
                .await?
                .list_changes(v1::ListChangesRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .changes
                .into_iter()
                .map(wire::window_from_proto)
                .filter(|w| all || (!w.ended && w.ends_ms() > now))
                .collect();
            match query.output {
                Format::Json => emit_json(&serde_json::json!({
                    "changes": windows.iter().map(crate::json::window).collect::<Vec<_>>(),
                }))?,
                Format::Table if windows.is_empty() => eprintln!(
                    "no change windows{}",
                    if all {
                        ""
                    } else {
                        " open or to come (--all for past ones)"
                    }
                ),
                Format::Table => emit(&windows_table(&windows, now))?,
            }
            Ok(exit::OK)
        }
    }
}

/// What an opened or closed window is: its JSON on stdout, or a line for a person on stderr.
fn said(format: Format, w: &ChangeWindow, line: impl FnOnce() -> String) -> anyhow::Result<i32> {
    match format {
        Format::Json => emit_json(&crate::json::window(w))?,
        Format::Table => eprintln!("{}", line()),
    }
    Ok(exit::OK)
}

/// The windows for a person: ticket, state, from, until, scope, by, why.
pub(super) fn windows_table(windows: &[ChangeWindow], now: i64) -> String {
    let rows: Vec<Vec<String>> = windows
        .iter()
        .map(|w| {
            let state = match &w.closed {
                Some((_, by)) => format!("closed by {by}"),
                None if w.ended || w.ends_ms() <= now => "ended".into(),
                None if w.from_ms > now => "to come".into(),
                None => "open".into(),
            };
            vec![
                w.ticket.clone(),
                state,
                rfc3339(w.from_ms, false).unwrap_or_default(),
                rfc3339(w.until_ms, false).unwrap_or_default(),
                w.scope_text(),
                w.opened_by.clone(),
                w.reason.clone(),
            ]
        })
        .collect();
    table(
        &["TICKET", "STATE", "FROM", "UNTIL", "SCOPE", "BY", "REASON"],
        &rows,
    )
}

/// Milliseconds since the epoch for an RFC 3339 time.
fn time(s: &str) -> anyhow::Result<i64> {
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|_| anyhow!("invalid time {s:?}; hint: RFC 3339, e.g. 2026-12-06T18:00:00Z"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}
