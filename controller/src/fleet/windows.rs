//! Change windows in the fleet: opened and closed by operators (made in the store at once, or
//! refused), consulted whenever drift opens or changes, and ended on the fleet's clock with an
//! entry that says what they authorised that is still drifted.

use super::{Fleet, FleetError};
use crate::evidence::Authorisation;
use crate::model::EventKind;
use crate::store::{StoreError, Write};
use crate::window::{self, ChangeWindow};

impl Fleet {
    /// Opens `w` (its `from_ms` already set, now at the latest): refused when its ticket is in
    /// use, its scope malformed, or it would end before it begins.
    pub(super) fn open_window(
        &mut self,
        mut w: ChangeWindow,
        for_ms: Option<i64>,
    ) -> Result<ChangeWindow, FleetError> {
        self.refuse_while_failing()?;
        if w.from_ms == 0 {
            w.from_ms = self.now();
        }
        if let Some(d) = for_ms {
            w.until_ms = w.from_ms.saturating_add(d);
        }
        window::check_ticket(&w.ticket).map_err(FleetError::BadWindow)?;
        window::check_scope(&w.scope).map_err(FleetError::BadWindow)?;
        let now = self.now();
        if w.until_ms <= w.from_ms.max(now) {
            return Err(FleetError::BadWindow(format!(
                "change {} would end before it begins: give a later --until or a --for",
                w.ticket
            )));
        }
        if self.windows.iter().any(|o| o.ticket == w.ticket) {
            return Err(FleetError::BadWindow(format!(
                "change {} exists already (see `plumb change list --all`); open the new one under another ticket",
                w.ticket
            )));
        }
        let event = match self.store.open_window(&w, now) {
            Ok(e) => e,
            Err(StoreError::Refused(why)) => return Err(FleetError::BadWindow(why)),
            Err(e) => return Err(self.cannot_write(e)),
        };
        tracing::info!(ticket = %w.ticket, scope = %w.scope_text(), by = %w.opened_by, "change window opened");
        self.windows.push(w.clone());
        self.publish(event);
        Ok(w)
    }

    /// Closes an open (or not yet begun) window now; its end is then recorded at the next
    /// tick, as for one that ran its course.
    pub(super) fn close_window(
        &mut self,
        ticket: &str,
        by: &str,
    ) -> Result<ChangeWindow, FleetError> {
        self.refuse_while_failing()?;
        let now = self.now();
        let Some(w) = self.windows.iter().find(|w| w.ticket == ticket) else {
            return Err(FleetError::BadWindow(format!(
                "no change {ticket} (see `plumb change list --all`)"
            )));
        };
        if w.closed.is_some() || w.ended || w.ends_ms() <= now {
            return Err(FleetError::BadWindow(format!(
                "change {ticket} is over already"
            )));
        }
        let mut closed = w.clone();
        closed.closed = Some((now, by.to_owned()));
        let event = match self.store.close_window(&closed) {
            Ok(e) => e,
            Err(StoreError::Refused(why)) => return Err(FleetError::BadWindow(why)),
            Err(e) => return Err(self.cannot_write(e)),
        };
        tracing::info!(%ticket, by, "change window closed early");
        if let Some(w) = self.windows.iter_mut().find(|w| w.ticket == ticket) {
            *w = closed.clone();
        }
        self.publish(event);
        self.end_windows();
        Ok(closed)
    }

    pub(super) fn list_windows(&self) -> Vec<ChangeWindow> {
        self.windows.clone()
    }

    /// Records the end of every window whose time is up, with what it authorised that is
    /// still drifted. On a shared store only the controller doing the singleton work does.
    pub(super) fn end_windows(&mut self) {
        if !self.singleton {
            return;
        }
        let now = self.now();
        let due: Vec<ChangeWindow> = self
            .windows
            .iter()
            .filter(|w| !w.ended && w.ends_ms() <= now)
            .cloned()
            .collect();
        for w in due {
            let by_it = Authorisation::Authorised {
                change: w.ticket.clone(),
            };
            let mut still_open: Vec<(String, String)> = self
                .hosts
                .values()
                .flat_map(|h| {
                    h.drift
                        .values()
                        .flatten()
                        .filter(|d| d.evidence.authorisation.as_ref() == Some(&by_it))
                        .map(|d| (h.info.host_id.clone(), d.resource.clone()))
                })
                .collect();
            still_open.sort();
            still_open.dedup();
            let text = window::ended_text(&w, &still_open);
            if still_open.is_empty() {
                tracing::info!(ticket = %w.ticket, "{text}");
            } else {
                tracing::warn!(ticket = %w.ticket, "{text}");
            }
            if let Some(mine) = self.windows.iter_mut().find(|o| o.ticket == w.ticket) {
                mine.ended = true;
            }
            self.write(
                Some(Write::EndWindow {
                    window: w,
                    at_ms: now,
                    text,
                }),
                None,
            );
        }
    }

    /// Reads the windows again from the store: another controller opened, closed or ended
    /// one.
    pub(super) fn reload_windows(&mut self) {
        match self.store.load_windows() {
            Ok(windows) => self.windows = windows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the change windows other controllers made")
            }
        }
    }

    /// Whether the windows moved, for the tail: an entry about one from another controller.
    pub(super) fn window_entry(kind: EventKind) -> bool {
        matches!(
            kind,
            EventKind::ChangeOpened | EventKind::ChangeClosed | EventKind::ChangeEnded
        )
    }
}
