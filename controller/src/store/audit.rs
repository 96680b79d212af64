//! The event log's hash chain: every entry carries the hash of the one before it, ids run
//! from 1 without gaps, and a head row records the last entry, signed with an Ed25519 key kept
//! outside the database. `plumb audit verify` finds an edited, removed, reordered or cut-off
//! entry; a chain recomputed after an edit (it has no secret) is found by the head's signature;
//! a tail cut together with its head is found against a copy of a head published earlier
//! (logs, `plumb report`), which only ever grows.

use std::path::Path;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use rusqlite::{Connection, Transaction, params};

use super::{Result, StoreError};
use crate::manifest::{hex_sha256, to_hex};
use crate::model::{DriftRecord, EventKind};

/// One entry as hashed: every column, each length-prefixed so that no two entries encode alike.
pub(super) fn canonical(
    id: i64,
    at_ms: i64,
    host_id: &str,
    kind: &str,
    item: Option<&DriftRecord>,
) -> String {
    let mut s = String::new();
    let mut field = |v: &str| {
        s.push_str(&v.len().to_string());
        s.push(':');
        s.push_str(v);
        s.push('|');
    };
    field(&id.to_string());
    field(&at_ms.to_string());
    field(host_id);
    field(kind);
    if let Some(r) = item {
        for v in [
            &r.resource,
            &r.attribute,
            &r.expected,
            &r.actual,
            &r.since_ms.to_string(),
            &r.declared_at,
        ] {
            field(v);
        }
    }
    s
}

pub(super) fn chain(prev: &str, canonical: &str) -> String {
    hex_sha256(format!("{prev}\n{canonical}").as_bytes())
}

/// What a head's signature covers.
fn signed_text(last_id: i64, hash: &str) -> String {
    format!("plumb audit head v1\n{last_id}\n{hash}\n")
}

/// The log's head: its last entry, and that entry's hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub last_id: i64,
    pub hash: String,
    /// Ed25519 over `signed_text`, hex; empty when written without a key.
    pub signature: String,
    /// The public key that signed it, hex.
    pub public_key: String,
}

/// The key that signs the head. Keep it where whoever can write the database cannot read it
/// (`--audit-key`): then the log cannot be rewritten without it showing.
pub struct AuditKey {
    pair: Ed25519KeyPair,
}

impl AuditKey {
    /// Reads the key at `path`, or makes one there (mode 0600, its public key beside it as
    /// `PATH.pub`) when there is none. Returns whether it was made.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool)> {
        let fail = |e: String| StoreError::Key {
            path: path.display().to_string(),
            reason: e,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let hex = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .ok_or_else(|| fail("holds no key".into()))?;
                let der = from_hex(hex).ok_or_else(|| fail("is not a plumb audit key".into()))?;
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|e| fail(format!("is not an Ed25519 key: {e}")))?;
                Ok((Self { pair }, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let der = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|e| fail(format!("cannot make a key: {e}")))?;
                let pair = Ed25519KeyPair::from_pkcs8(der.as_ref())
                    .map_err(|e| fail(format!("cannot make a key: {e}")))?;
                let key = Self { pair };
                write_private(
                    path,
                    &format!(
                        "# plumb audit signing key (Ed25519, PKCS#8, hex). Keep it secret.\n{}\n",
                        to_hex(der.as_ref())
                    ),
                )
                .map_err(|e| fail(format!("cannot write it: {e}")))?;
                let public = public_path(path);
                std::fs::write(&public, format!("{}\n", key.public_hex()))
                    .map_err(|e| fail(format!("cannot write {}: {e}", public.display())))?;
                Ok((key, true))
            }
            Err(e) => Err(fail(format!("cannot read it: {e}"))),
        }
    }

    pub fn public_hex(&self) -> String {
        to_hex(self.pair.public_key().as_ref())
    }

    fn sign(&self, last_id: i64, hash: &str) -> String {
        to_hex(
            self.pair
                .sign(signed_text(last_id, hash).as_bytes())
                .as_ref(),
        )
    }
}

/// Where the public half of the key at `path` is written: `PATH.pub`.
pub fn public_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Appends one entry in `tx` with the next id, chained to `head`, and moves `head` (not yet
/// its stored row: `store_head` does that once per transaction). Returns the new id.
pub(super) fn append(
    tx: &Transaction<'_>,
    head: &mut Head,
    at_ms: i64,
    host_id: &str,
    kind: EventKind,
    item: Option<&DriftRecord>,
) -> Result<i64> {
    let r = item;
    let id = head.last_id + 1;
    let hash = chain(
        &head.hash,
        &canonical(id, at_ms, host_id, kind.as_str(), item),
    );
    tx.prepare_cached(
        "INSERT INTO events (id, at_ms, host_id, kind, resource, attribute, expected, actual, since_ms, declared_at, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        id,
        at_ms,
        host_id,
        kind.as_str(),
        r.map(|r| &r.resource),
        r.map(|r| &r.attribute),
        r.map(|r| &r.expected),
        r.map(|r| &r.actual),
        r.map(|r| r.since_ms),
        r.map(|r| &r.declared_at),
        head.hash,
        hash,
    ])?;
    head.last_id = id;
    head.hash = hash;
    head.signature.clear();
    Ok(id)
}

/// Writes the head row for `head`, signed with `key` if there is one.
pub(super) fn store_head(
    tx: &Transaction<'_>,
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
    tx.prepare_cached(
        "INSERT INTO audit_head (id, last_id, hash, signature, public_key) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash,
             signature = excluded.signature, public_key = excluded.public_key",
    )?
    .execute(params![head.last_id, head.hash, head.signature, head.public_key])?;
    Ok(())
}

/// The head as stored; an empty head for an empty log.
pub(super) fn head(conn: &Connection) -> Result<Head> {
    let signed = has_column(conn, "audit_head", "signature")?;
    let sql = if signed {
        "SELECT last_id, hash, signature, public_key FROM audit_head WHERE id = 1"
    } else {
        "SELECT last_id, hash, '', '' FROM audit_head WHERE id = 1"
    };
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    Ok(match rows.next()? {
        Some(row) => Head {
            last_id: row.get(0)?,
            hash: row.get(1)?,
            signature: row.get(2)?,
            public_key: row.get(3)?,
        },
        None => Head::default(),
    })
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Chains rows written before the log was chained (schema version 1).
pub(super) fn chain_existing(tx: &Transaction<'_>) -> Result<()> {
    let rows = entries(tx)?;
    let mut head = (0i64, String::new());
    for e in rows {
        let hash = chain(&head.1, &e.canonical);
        tx.execute(
            "UPDATE events SET prev_hash = ?2, hash = ?3 WHERE id = ?1",
            params![e.id, head.1, hash],
        )?;
        head = (e.id, hash);
    }
    if head.0 > 0 {
        tx.execute(
            "INSERT INTO audit_head (id, last_id, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash",
            params![head.0, head.1],
        )?;
    }
    Ok(())
}

struct Entry {
    id: i64,
    canonical: String,
    prev_hash: String,
    hash: String,
}

fn entries(conn: &Connection) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare(
        "SELECT id, at_ms, host_id, kind, resource, attribute, expected, actual, since_ms, declared_at, prev_hash, hash
         FROM events ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        let resource: Option<String> = r.get(4)?;
        let item = match resource {
            Some(resource) => Some(DriftRecord {
                resource,
                attribute: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                expected: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                actual: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                since_ms: r.get::<_, Option<i64>>(8)?.unwrap_or_default(),
                declared_at: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
            }),
            None => None,
        };
        let (id, at_ms, host, kind): (i64, i64, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        Ok(Entry {
            id,
            canonical: canonical(id, at_ms, &host, &kind, item.as_ref()),
            prev_hash: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            hash: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        })
    })?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(StoreError::from)
}

/// What a verification trusts beyond the database itself.
#[derive(Debug, Default, Clone)]
pub struct Trusted {
    /// The audit key's public half, hex, from a source the database's owner does not control.
    pub public_key: Option<String>,
    /// Heads published earlier (id, hash): the log must still hold each, unchanged.
    pub published: Vec<(i64, String)>,
}

/// How the head's signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Valid for this public key.
    Valid(String),
    /// No public key to check it with.
    Unchecked,
    /// Missing or wrong: see the problems.
    Invalid,
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verification {
    pub entries: usize,
    pub head_id: i64,
    pub head: String,
    pub signature: Signature,
    /// Empty when the log is intact; otherwise each problem, naming the entry.
    pub problems: Vec<String>,
}

/// Walks the whole chain, its ids and the head, and checks the head against what is trusted.
pub(super) fn verify(conn: &Connection, trusted: &Trusted) -> Result<Verification> {
    let rows = entries(conn)?;
    let mut problems = Vec::new();
    let mut prev: Option<&Entry> = None;
    for e in &rows {
        match prev {
            None if e.id != 1 => problems.push(format!(
                "the log starts at entry {}: entries 1 to {} were removed",
                e.id,
                e.id - 1
            )),
            Some(p) if e.id != p.id + 1 => problems.push(format!(
                "entries {} to {} are missing: the log jumps from entry {} to {}",
                p.id + 1,
                e.id - 1,
                p.id,
                e.id
            )),
            _ => {}
        }
        let expected_prev = prev.map_or("", |p| p.hash.as_str());
        if e.prev_hash != expected_prev {
            problems.push(match prev {
                Some(p) => format!(
                    "entry {} does not follow entry {}: entries between them were removed, or entries were reordered",
                    e.id, p.id
                ),
                None => format!("entry {} is not the first entry of the log: earlier entries were removed", e.id),
            });
        }
        if chain(&e.prev_hash, &e.canonical) != e.hash {
            problems.push(format!(
                "entry {} was edited: its content does not match its hash",
                e.id
            ));
        }
        prev = Some(e);
    }
    let head = head(conn)?;
    match rows.last() {
        Some(t) if t.id != head.last_id || t.hash != head.hash => problems.push(format!(
            "the log ends at entry {} but its head records entry {}: entries at the end were removed or replaced",
            t.id, head.last_id
        )),
        None if head.last_id != 0 => problems.push(format!(
            "the log is empty but its head records entry {}: every entry was removed",
            head.last_id
        )),
        None => problems.push(
            "the log is empty: every log begins with its log_created entry, so every entry was removed"
                .into(),
        ),
        _ => {}
    }
    for (id, hash) in &trusted.published {
        match rows.iter().find(|e| e.id == *id) {
            None => problems.push(format!(
                "entry {id} was published with hash {hash}, but the log has no entry {id}: it was cut below a head seen before"
            )),
            Some(e) if !e.hash.eq_ignore_ascii_case(hash) => problems.push(format!(
                "entry {id} was published with hash {hash}, but the log's entry {id} hashes to {}: the log was rewritten since",
                e.hash
            )),
            Some(_) => {}
        }
    }
    let signature = match &trusted.public_key {
        None => Signature::Unchecked,
        Some(key) => match check_signature(key, &head) {
            Ok(()) => Signature::Valid(key.clone()),
            Err(why) => {
                problems.push(why);
                Signature::Invalid
            }
        },
    };
    Ok(Verification {
        entries: rows.len(),
        head_id: head.last_id,
        head: head.hash,
        signature,
        problems,
    })
}

fn check_signature(public_key: &str, head: &Head) -> std::result::Result<(), String> {
    if head.signature.is_empty() {
        return Err(format!(
            "the head (entry {}) carries no signature: it was written without the audit key, or its signature was removed",
            head.last_id
        ));
    }
    let key =
        from_hex(public_key).ok_or_else(|| format!("{public_key:?} is not a public key in hex"))?;
    let signature = from_hex(&head.signature).unwrap_or_default();
    UnparsedPublicKey::new(&ED25519, key)
        .verify(signed_text(head.last_id, &head.hash).as_bytes(), &signature)
        .map_err(|_| {
            if !head.public_key.eq_ignore_ascii_case(public_key) {
                format!(
                    "the head is signed by key {}, not by the trusted key {public_key}: the log was rewritten, or another key signs it",
                    head.public_key
                )
            } else {
                format!(
                    "the head's signature does not verify with key {public_key}: the head, and so the log, was rewritten without the audit key"
                )
            }
        })
}
