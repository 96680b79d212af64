//! What a person limited to some hosts (`role::Scope`) may see of the fleet's answers, in one
//! place for the gRPC API and the console: which hosts, which entries of the log (their own
//! hosts' only: the controller's own entries speak of the whole fleet), and pages of the log
//! made of those entries alone.

use std::collections::HashSet;

use crate::fleet::{FleetError, FleetHandle};
use crate::model::{Event, EventKind};
use crate::role::Scope;
use crate::store::{Head, LogQuery};

/// Entries read back per page when looking for a scoped person's entries.
const SCAN_PAGE: u32 = 1000;
/// Entries looked at for one scoped page at most; the page then ends there, and the next one
/// goes on from it.
const MAX_SCANNED: usize = 100_000;

/// The hosts a person sees, as they were when asked.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    scope: Scope,
    /// `None`: the whole fleet.
    hosts: Option<HashSet<String>>,
}

impl Seen {
    pub(crate) async fn of(fleet: &FleetHandle, scope: &Scope) -> Result<Seen, FleetError> {
        let hosts = if scope.whole() {
            None
        } else {
            Some(fleet.visible(scope.clone()).await?)
        };
        Ok(Seen {
            scope: scope.clone(),
            hosts,
        })
    }

    pub(crate) fn whole(&self) -> bool {
        self.hosts.is_none()
    }

    pub(crate) fn host(&self, id: &str) -> bool {
        self.hosts.as_ref().is_none_or(|h| h.contains(id))
    }

    /// An entry of a host it sees (for a scoped person, not the controller's own entries).
    pub(crate) fn event(&self, e: &Event) -> bool {
        match &self.hosts {
            None => true,
            Some(h) => !e.host_id.is_empty() && h.contains(&e.host_id),
        }
    }

    /// Whether `e` should be passed on, learning of hosts as they come: a host that comes
    /// online unknown may be one the scope selects (a new host, or new labels).
    pub(crate) async fn follows(&mut self, fleet: &FleetHandle, e: &Event) -> bool {
        if !self.event(e)
            && e.kind == EventKind::HostOnline
            && let Ok(again) = Seen::of(fleet, &self.scope).await
        {
            *self = again;
        }
        self.event(e)
    }
}

/// A page of the log as `q` asks, of the entries `seen` sees; and the id to read on before,
/// when the log goes on. A scoped person's page is gathered from pages of the store (at most
/// `MAX_SCANNED` entries looked at), so they get `q.limit` of their own entries, not what is
/// left of the fleet's latest.
pub(crate) async fn log_page(
    fleet: &FleetHandle,
    seen: &Seen,
    q: LogQuery,
) -> Result<(Vec<Event>, Head, Option<i64>), FleetError> {
    if seen.whole() {
        let limit = q.limit as usize;
        let (events, head) = fleet.log_page(q).await?;
        let next = (events.len() == limit)
            .then(|| events.last().map(|e| e.id))
            .flatten();
        return Ok((events, head, next));
    }
    if q.host.as_deref().is_some_and(|h| !seen.host(h)) {
        let (_, head) = fleet
            .log_page(LogQuery {
                limit: 0,
                ..LogQuery::default()
            })
            .await?;
        return Ok((Vec::new(), head, None));
    }
    let mut found = Vec::new();
    let mut before = q.before;
    let mut scanned = 0;
    loop {
        let (page, head) = fleet
            .log_page(LogQuery {
                before,
                limit: SCAN_PAGE,
                ..q.clone()
            })
            .await?;
        let ended = page.len() < SCAN_PAGE as usize;
        scanned += page.len();
        for e in page {
            before = Some(e.id);
            if seen.event(&e) {
                found.push(e);
                if found.len() == q.limit as usize {
                    return Ok((found, head, before));
                }
            }
        }
        if ended {
            return Ok((found, head, None));
        }
        if scanned >= MAX_SCANNED {
            return Ok((found, head, before));
        }
    }
}
