//! Who holds each host's stream on a shared store: a connect is a claim (one more epoch on the
//! host's row, under the head's lock, so claims and fenced writes make one order); every later
//! write for the host checks the claim in its own transaction (`fence`), so a former holder's
//! writes are refused whatever its clock or memory says. Offline ends a claim; a controller
//! that stopped beating has its hosts released by the one doing the singleton work.

use super::{PostgresStore, Session, Statements, chain, rows};
use crate::model::{Event, EventKind, HostInfo};
use crate::store::{HostState, Result, StoreError};

impl PostgresStore {
    /// Claims `info`'s host for this controller (one more epoch, under the head's lock: claims
    /// and fenced writes make one order), with its `HostOnline` entry if `online`.
    pub(super) fn claim(
        &mut self,
        info: &HostInfo,
        at_ms: i64,
        online: bool,
    ) -> Result<Option<Event>> {
        let json = serde_json::to_string(&rows::HostRow::from(info))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        let mut head = chain::lock_head(&mut tx)?;
        let epoch: i64 = tx
            .query_one(
                "INSERT INTO hosts (host_id, info, last_seen_ms, owner, epoch, version)
                 VALUES ($1, $2, $3, $4, 1, nextval('host_versions'))
                 ON CONFLICT (host_id) DO UPDATE SET info = excluded.info,
                     last_seen_ms = excluded.last_seen_ms, owner = excluded.owner,
                     epoch = hosts.epoch + 1, version = excluded.version, state = NULL
                 RETURNING epoch",
                &[&info.host_id, &json, &at_ms, &self.me],
            )?
            .get(0);
        let event = if online {
            let kind = EventKind::HostOnline;
            let id = chain::append(
                &mut tx,
                (&st.append, &self.me),
                &mut head,
                at_ms,
                &info.host_id,
                kind,
                None,
            )?;
            Some(Event {
                id,
                at_ms,
                host_id: info.host_id.clone(),
                kind,
                item: None,
            })
        } else {
            None
        };
        if !online {
            // Nothing appended, but the row moved: the others hear of the claim.
            tx.execute(&st.notify, &[])?;
        }
        chain::commit(tx, &st.notify, &mut head, self.key.as_ref(), online)?;
        drop(session);
        self.held.insert(info.host_id.clone(), epoch);
        if online {
            self.head = head;
        }
        Ok(event)
    }

    /// The claim under which this controller holds `host_id`, or the refusal that it holds
    /// none.
    pub(super) fn claim_of(&self, host_id: &str) -> Result<i64> {
        self.held
            .get(host_id)
            .copied()
            .ok_or_else(|| StoreError::Fenced {
                host: host_id.to_owned(),
            })
    }

    /// Only the hosts this controller holds: another's are its to write. One statement for
    /// all of them: row by row, a round trip each held the fleet thread (BENCHMARKS.md).
    pub(super) fn touch_held(&mut self, seen: &[(&str, i64)]) -> Result<()> {
        let (mut hosts, mut ats, mut epochs) = (Vec::new(), Vec::new(), Vec::new());
        for (host, at) in seen {
            if let Some(epoch) = self.held.get(*host) {
                hosts.push(*host);
                ats.push(*at);
                epochs.push(*epoch);
            }
        }
        if hosts.is_empty() {
            return Ok(());
        }
        self.session()?.client.execute(
            "UPDATE hosts AS h SET last_seen_ms = t.at
             FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS t(host_id, at, epoch)
             WHERE h.host_id = t.host_id AND h.owner = $4 AND h.epoch = t.epoch",
            &[&hosts, &ats, &epochs, &self.me],
        )?;
        Ok(())
    }

    pub(super) fn write_state(&mut self, host_id: &str, state: &HostState) -> Result<()> {
        let epoch = self.claim_of(host_id)?;
        let json = serde_json::to_string(&rows::StateRow::from(state))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        chain::lock_head(&mut tx)?;
        fence(&mut tx, st, &self.me, host_id, epoch, true)?;
        tx.execute(
            "UPDATE hosts SET state = $2 WHERE host_id = $1",
            &[&host_id, &json],
        )?;
        tx.execute(&st.notify, &[])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn release(&mut self, id: &str, at_ms: i64) -> Result<Vec<Event>> {
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        let mut head = chain::lock_head(&mut tx)?;
        let orphans: Vec<String> = tx
            .query(
                "UPDATE hosts SET owner = NULL, version = nextval('host_versions')
                 WHERE owner = $1 RETURNING host_id",
                &[&id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut events = Vec::with_capacity(orphans.len());
        for host_id in orphans {
            let kind = EventKind::HostOffline;
            let event_id = chain::append(
                &mut tx,
                (&st.append, &self.me),
                &mut head,
                at_ms,
                &host_id,
                kind,
                None,
            )?;
            events.push(Event {
                id: event_id,
                at_ms,
                host_id,
                kind,
                item: None,
            });
        }
        tx.execute("DELETE FROM controllers WHERE id = $1", &[&id])?;
        chain::commit(
            tx,
            &st.notify,
            &mut head,
            self.key.as_ref(),
            !events.is_empty(),
        )?;
        drop(session);
        self.head = head;
        Ok(events)
    }
}

/// Checks in `tx` that this controller still holds `host_id` under `epoch` (moving the host's
/// version if `moved`), or refuses.
pub(super) fn fence(
    tx: &mut postgres::Transaction<'_>,
    st: &Statements,
    me: &str,
    host_id: &str,
    epoch: i64,
    moved: bool,
) -> Result<()> {
    if tx.execute(&st.fence, &[&host_id, &me, &epoch, &moved])? == 0 {
        return Err(StoreError::Fenced {
            host: host_id.to_owned(),
        });
    }
    Ok(())
}
