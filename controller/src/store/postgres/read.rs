//! Rows read back: drift records, hosts with their holder, events.

use postgres::Client;

use super::{PostgresStore, chain, rows};
use crate::key::Key;
use crate::model::{DriftRecord, Event, EventKind, HostInfo};
use crate::store::audit::{self, Trusted, Verification};
use crate::store::{Holder, Result, StoreError, StoredHost, evidence};

/// The columns `drift_row` reads, in its order.
pub(super) const DRIFT_COLUMNS: &str =
    "origin, resource, attribute, expected, actual, since_ms, declared_at, evidence";

/// A `drift` row's key and record, from column `from` on (`DRIFT_COLUMNS`).
pub(super) fn drift_row(
    r: &postgres::Row,
    from: usize,
    host_id: &str,
) -> Result<(Key, DriftRecord)> {
    let resource: String = r.get(from + 1);
    let evidence = evidence::from_text(
        r.get::<_, Option<&str>>(from + 7),
        &format_args!("drift {resource} on {host_id}"),
    )?;
    Ok((
        Key::from_stored(r.get(from)),
        DriftRecord {
            resource,
            attribute: r.get(from + 2),
            expected: r.get(from + 3),
            actual: r.get(from + 4),
            since_ms: r.get(from + 5),
            declared_at: r.get(from + 6),
            evidence,
        },
    ))
}

/// The columns `stored_host` reads, in its order.
pub(super) const HOST_COLUMNS: &str = "host_id, info, last_seen_ms, owner, epoch, state";

impl PostgresStore {
    /// A host's row (without its drift), its holder as this controller sees it.
    pub(super) fn stored_host(&self, r: &postgres::Row) -> Result<StoredHost> {
        let (host_id, info): (String, String) = (r.get(0), r.get(1));
        let info: HostInfo = serde_json::from_str::<rows::HostRow>(&info)
            .map_err(|e| StoreError::Corrupt(format!("host {host_id}: {e}")))?
            .into();
        let (owner, epoch): (Option<String>, i64) = (r.get(3), r.get(4));
        let holder = match owner {
            None => Holder::Nobody,
            Some(o) if o == self.me && self.held.get(&host_id) == Some(&epoch) => Holder::Me,
            Some(o) => Holder::Other(o),
        };
        let state: Option<String> = r.get(5);
        Ok(StoredHost {
            state: rows::host_state(&host_id, state.as_deref())?,
            info,
            last_seen_ms: r.get(2),
            drift: Vec::new(),
            holder,
        })
    }
}

/// An event as `chain::event_columns` lists it.
pub(super) fn event_of(r: &postgres::Row) -> Result<Event> {
    let (id, kind): (i64, String) = (r.get(0), r.get(3));
    let kind = EventKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("event {id} has kind {kind:?}")))?;
    Ok(Event {
        id,
        at_ms: r.get(1),
        host_id: r.get(2),
        kind,
        item: chain::event_item(r)?,
    })
}

/// Verifies the chain as of one moment: the entries and the head read in one read-only
/// snapshot, so appends by other controllers meanwhile cannot make it look cut.
pub(super) fn verify_snapshot(client: &mut Client, trusted: &Trusted) -> Result<Verification> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let entries = chain::entries(&mut tx)?;
    let head = chain::head(&mut tx)?;
    tx.commit()?;
    Ok(audit::verify(&entries, head, trusted))
}
