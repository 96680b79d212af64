//! The event log's hash chain as PostgreSQL keeps it: entries in `events`, the head in
//! `audit_head`. Every write locks the head row first (`FOR UPDATE`), so that appends from
//! every controller on the database make one order, each chained to the one before. The
//! hashing, the signature and what verification checks are the store's, in `store/audit.rs`.

use postgres::{GenericClient, Row, Statement, Transaction};

use crate::model::{DriftRecord, EventKind};
use crate::store::audit::{AuditKey, Entry, Head, Logged, canonical, chain};
use crate::store::{Result, evidence};

/// The columns every `SELECT` of an event's item lists, in this order, from `ITEM_AT`.
const ITEM_COLUMNS: &str = "resource, attribute, expected, actual, since_ms, declared_at, evidence";

/// Locks the head for this transaction and returns it as committed, whoever wrote it last.
pub(super) fn lock_head(tx: &mut Transaction<'_>) -> Result<Head> {
    let row = tx.query_opt(
        "SELECT last_id, hash, signature, public_key FROM audit_head WHERE id = 1 FOR UPDATE",
        &[],
    )?;
    Ok(row.map(|r| head_of(&r)).unwrap_or_default())
}

/// The head as committed; an empty head for an empty log.
pub(super) fn head(client: &mut impl GenericClient) -> Result<Head> {
    let row = client.query_opt(
        "SELECT last_id, hash, signature, public_key FROM audit_head WHERE id = 1",
        &[],
    )?;
    Ok(row.map(|r| head_of(&r)).unwrap_or_default())
}

fn head_of(r: &Row) -> Head {
    Head {
        last_id: r.get(0),
        hash: r.get(1),
        signature: r.get(2),
        public_key: r.get(3),
    }
}

/// The `INSERT` of one entry, to prepare once per connection: with it, what the entry does
/// to the spans (`moment::effect`; `$15` NULL where nothing), in the same statement: the span
/// open under (`$15`, `$16`, `$17`) ends at the entry's time, and one begins where `$18`.
pub(super) fn append_sql() -> String {
    format!(
        "WITH entry AS (
             INSERT INTO events (id, at_ms, host_id, kind, {ITEM_COLUMNS}, prev_hash, hash, origin)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ), ended AS (
             UPDATE spans SET to_ms = $2 WHERE $15::TEXT IS NOT NULL AND host_id = $3
             AND span = $15 AND resource = $16 AND attribute = $17 AND to_ms = {OPEN}
         )
         INSERT INTO spans (span, host_id, resource, attribute, from_id, from_ms, to_ms)
         SELECT $15, $3, $16, $17, $1, $2, {OPEN} WHERE $18",
        OPEN = crate::moment::OPEN
    )
}

/// Appends one entry in `tx` with the next id, chained to `head`, and moves `head` (not yet
/// its stored row: `store_head` does that once per transaction). `origin` is the controller
/// appending, outside the chain. Returns the new id.
pub(super) fn append(
    tx: &mut Transaction<'_>,
    (insert, origin): (&Statement, &str),
    head: &mut Head,
    at_ms: i64,
    host_id: &str,
    kind: EventKind,
    item: Option<&DriftRecord>,
) -> Result<i64> {
    let id = head.last_id + 1;
    let evidence = item
        .map(|r| evidence::to_text(&r.evidence))
        .transpose()?
        .flatten();
    let hash = chain(
        &head.hash,
        &canonical(id, at_ms, host_id, kind.as_str(), item, evidence.as_deref()),
    );
    let entry = Logged {
        id,
        at_ms,
        host_id: host_id.to_owned(),
        kind: kind.as_str().to_owned(),
        item: item.cloned(),
        evidence,
        prev_hash: head.hash.clone(),
        hash,
    };
    insert_entry(tx, insert, origin, &entry)?;
    let hash = entry.hash;
    head.last_id = id;
    head.hash = hash;
    head.signature.clear();
    Ok(id)
}

/// Inserts one entry as it is, its links included (`append`, and `plumb store copy`).
pub(super) fn insert_entry(
    tx: &mut Transaction<'_>,
    insert: &Statement,
    origin: &str,
    e: &Logged,
) -> Result<()> {
    let r = e.item.as_ref();
    let fx = EventKind::parse(&e.kind).and_then(|k| crate::moment::effect(k, r));
    tx.execute(
        insert,
        &[
            &e.id,
            &e.at_ms,
            &e.host_id,
            &e.kind,
            &r.map(|r| &r.resource),
            &r.map(|r| &r.attribute),
            &r.map(|r| &r.expected),
            &r.map(|r| &r.actual),
            &r.map(|r| r.since_ms),
            &r.map(|r| &r.declared_at),
            &e.evidence,
            &e.prev_hash,
            &e.hash,
            &origin,
            &fx.map(|f| f.span.as_str()),
            &fx.map_or("", |f| f.resource),
            &fx.map_or("", |f| f.attribute),
            &fx.is_some_and(|f| f.begins),
        ],
    )?;
    Ok(())
}

/// Ends a write's transaction: if it appended, the head is stored (signed with `key`) and
/// the other controllers notified (`notify`), on commit.
pub(super) fn commit(
    mut tx: Transaction<'_>,
    notify: &Statement,
    head: &mut Head,
    key: Option<&AuditKey>,
    appended: bool,
) -> Result<()> {
    if appended {
        store_head(&mut tx, head, key)?;
        tx.execute(notify, &[])?;
    }
    tx.commit()?;
    Ok(())
}

/// Writes the head row for `head`, signed with `key` if there is one.
pub(super) fn store_head(
    tx: &mut Transaction<'_>,
    head: &mut Head,
    key: Option<&AuditKey>,
) -> Result<()> {
    if let Some(key) = key {
        head.signature = key.sign(head.last_id, &head.hash);
        head.public_key = key.public_hex();
    } else {
        head.signature.clear();
        head.public_key.clear();
    }
    tx.execute(
        "INSERT INTO audit_head (id, last_id, hash, signature, public_key) VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash,
             signature = excluded.signature, public_key = excluded.public_key",
        &[&head.last_id, &head.hash, &head.signature, &head.public_key],
    )?;
    Ok(())
}

/// The `SELECT` list of an event with its item from column `ITEM_AT`.
pub(super) fn event_columns() -> String {
    format!("id, at_ms, host_id, kind, {ITEM_COLUMNS}")
}

/// Where an event row's item begins (see `event_columns`).
const ITEM_AT: usize = 4;

/// An event row's item; `None` where the event has none.
pub(super) fn event_item(r: &Row) -> Result<Option<DriftRecord>> {
    let Some(resource) = r.get::<_, Option<String>>(ITEM_AT) else {
        return Ok(None);
    };
    let text = |i: usize| r.get::<_, Option<String>>(ITEM_AT + i).unwrap_or_default();
    let id: i64 = r.get(0);
    Ok(Some(DriftRecord {
        resource,
        attribute: text(1),
        expected: text(2),
        actual: text(3),
        since_ms: r.get::<_, Option<i64>>(ITEM_AT + 4).unwrap_or_default(),
        declared_at: text(5),
        evidence: evidence::from_text(
            r.get::<_, Option<&str>>(ITEM_AT + 6),
            &format_args!("event {id}"),
        )?,
    }))
}

pub(super) fn entries(client: &mut impl GenericClient) -> Result<Vec<Entry>> {
    Ok(logged(client)?.iter().map(Logged::entry).collect())
}

/// Every entry as stored, in id order.
pub(super) fn logged(client: &mut impl GenericClient) -> Result<Vec<Logged>> {
    let rows = client.query(
        &format!(
            "SELECT {}, prev_hash, hash FROM events ORDER BY id",
            event_columns()
        ),
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Logged {
                item: event_item(r)?,
                evidence: r.get(ITEM_AT + 6),
                id: r.get(0),
                at_ms: r.get(1),
                host_id: r.get(2),
                kind: r.get(3),
                prev_hash: r.get(ITEM_AT + 7),
                hash: r.get(ITEM_AT + 8),
            })
        })
        .collect()
}
