//! Change windows in PostgreSQL: the `windows` rows, each opening, closing and end written
//! with its entry in one transaction under the head's lock (`append_after`), so a window ends
//! once whichever controllers try.

use super::PostgresStore;
use crate::model::{Event, EventKind};
use crate::store::{Result, StoreError, windows};
use crate::window::ChangeWindow;

impl PostgresStore {
    pub(super) fn read_windows(&self) -> Result<Vec<ChangeWindow>> {
        let rows = self.session()?.client.query(
            &format!("SELECT {} FROM windows ORDER BY ticket", windows::COLUMNS),
            &[],
        )?;
        rows.iter()
            .map(|r| {
                let closed = r
                    .get::<_, Option<i64>>(6)
                    .map(|at| (at, r.get::<_, Option<String>>(7).unwrap_or_default()));
                windows::window_of(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    closed,
                    r.get(8),
                )
            })
            .collect()
    }

    pub(super) fn open_window_row(&mut self, w: &ChangeWindow, at_ms: i64) -> Result<Event> {
        let scope = windows::scope_text(&w.scope)?;
        let record = windows::record(w, w.reason.clone(), &w.opened_by);
        self.append_after(
            |tx, _| {
                let inserted = tx.execute(
                    "INSERT INTO windows (ticket, scope, from_ms, until_ms, opened_by, reason)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticket) DO NOTHING",
                    &[
                        &w.ticket,
                        &scope,
                        &w.from_ms,
                        &w.until_ms,
                        &w.opened_by,
                        &w.reason,
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

    pub(super) fn close_window_row(&mut self, w: &ChangeWindow) -> Result<Event> {
        let (at_ms, by) = w.closed.clone().unwrap_or_default();
        let record = windows::record(w, format!("closed early by {by}"), &by);
        self.append_after(
            |tx, _| {
                let closed = tx.execute(
                    "UPDATE windows SET closed_ms = $2, closed_by = $3
                     WHERE ticket = $1 AND closed_ms IS NULL AND NOT ended",
                    &[&w.ticket, &at_ms, &by],
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

    pub(super) fn end_window_row(
        &mut self,
        w: &ChangeWindow,
        at_ms: i64,
        text: &str,
    ) -> Result<Event> {
        let record = windows::record(w, text.to_owned(), "");
        self.append_after(
            |tx, _| {
                let ended = tx.execute(
                    "UPDATE windows SET ended = true WHERE ticket = $1 AND NOT ended",
                    &[&w.ticket],
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
}
