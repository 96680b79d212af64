//! `plumb store copy`: a whole store (SQLite's, say) into a PostgreSQL database that holds
//! nothing yet: hosts, their observations and open drift, acknowledgements, and the event log
//! entry by entry as it is stored, with its hashes and its signed head, so the copy verifies
//! under the same public key. One transaction: a copy that fails leaves the target as it was.

use super::{Result, StoreError, connect, redact, rows, schema};
use crate::store::{Head, Store};

/// What a copy carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub hosts: usize,
    pub observations: usize,
    pub drift: usize,
    pub acks: usize,
    pub entries: usize,
    pub head: Head,
}

/// How recently a controller must have beaten to count as using the target.
const IN_USE_SECS: f64 = 10.0;

impl super::PostgresStore {
    /// Copies `from` into the database at `url`, which must hold no plumb state unless
    /// `replace` (then what it holds is deleted first). Refused while a controller uses it.
    pub fn import(url: &str, from: &dyn Store, replace: bool) -> Result<Copied> {
        let source_check = from.verify(&crate::store::Trusted::default())?;
        if !source_check.problems.is_empty() {
            return Err(StoreError::Refused(format!(
                "the source's event log does not verify ({}); nothing was copied",
                source_check.problems.join("; ")
            )));
        }
        let hosts = from.load_hosts()?;
        let acks = from.load_acks()?;
        let logged = from.logged()?;
        let head = from.head().clone();

        let mut client = connect(url)?;
        schema::migrate(&mut client)?;
        let mut tx = client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::MIGRATION_LOCK],
        )?;
        let live: i64 = tx
            .query_one(
                "SELECT count(*) FROM controllers WHERE beat_at > now() - make_interval(secs => $1)",
                &[&IN_USE_SECS],
            )?
            .get(0);
        if live > 0 {
            return Err(StoreError::Refused(format!(
                "{live} controller(s) use {} now; stop them before copying into it",
                redact(url)
            )));
        }
        let (events, held_hosts): (i64, i64) = {
            let r = tx.query_one(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM hosts)",
                &[],
            )?;
            (r.get(0), r.get(1))
        };
        if events + held_hosts > 0 {
            if !replace {
                return Err(StoreError::Refused(format!(
                    "{} is not empty ({events} entries, {held_hosts} hosts); copy into an empty database, or give --replace to delete what it holds first",
                    redact(url)
                )));
            }
            tx.batch_execute(
                "TRUNCATE observations, drift, acks, events, spans, hosts, audit_head, controllers",
            )?;
        }

        let mut copied = Copied {
            hosts: hosts.len(),
            observations: 0,
            drift: 0,
            acks: acks.len(),
            entries: logged.len(),
            head: head.clone(),
        };
        let put_host = tx.prepare(
            "INSERT INTO hosts (host_id, info, last_seen_ms, version)
             VALUES ($1, $2, $3, nextval('host_versions'))",
        )?;
        let put_observation =
            tx.prepare("INSERT INTO observations (host_id, path, state) VALUES ($1, $2, $3)")?;
        let put_drift = tx.prepare(
            "INSERT INTO drift (host_id, resource, attribute, origin, expected, actual, since_ms, declared_at, evidence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )?;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        for host in &hosts {
            let id = &host.info.host_id;
            let info = serde_json::to_string(&rows::HostRow::from(&host.info)).map_err(corrupt)?;
            tx.execute(&put_host, &[id, &info, &host.last_seen_ms])?;
            for (key, observed) in from.load_observations(id)? {
                let state = serde_json::to_string(&rows::ObservationRow::from(&observed))
                    .map_err(corrupt)?;
                tx.execute(&put_observation, &[id, &key.stored().as_ref(), &state])?;
                copied.observations += 1;
            }
            for (origin, d) in &host.drift {
                let evidence = super::super::evidence::to_text(&d.evidence)?;
                tx.execute(
                    &put_drift,
                    &[
                        id,
                        &d.resource,
                        &d.attribute,
                        &origin.stored().as_ref(),
                        &d.expected,
                        &d.actual,
                        &d.since_ms,
                        &d.declared_at,
                        &evidence,
                    ],
                )?;
                copied.drift += 1;
            }
        }
        for a in &acks {
            super::put_ack(&mut tx, a)?;
        }
        let append = tx.prepare(&super::chain::append_sql())?;
        for e in &logged {
            super::chain::insert_entry(&mut tx, &append, "copy", e)?;
        }
        tx.execute(
            "INSERT INTO audit_head (id, last_id, hash, signature, public_key) VALUES (1, $1, $2, $3, $4)",
            &[&head.last_id, &head.hash, &head.signature, &head.public_key],
        )?;
        tx.commit()?;
        Ok(copied)
    }
}
