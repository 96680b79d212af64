//! The event log's hash chain: every entry carries the hash of the one before it, ids run
//! from 1 without gaps, and a head row records the last entry, signed with an Ed25519 key kept
//! outside the database. `plumb audit verify` finds an edited, removed, reordered or cut-off
//! entry; a chain recomputed after an edit (it has no secret) is found by the head's signature;
//! a tail cut together with its head is found against a copy of a head published earlier
//! (logs, `plumb report`), which only ever grows.

use std::path::Path;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use super::{Result, StoreError};
use crate::digest::hex_sha256;
use crate::model::DriftRecord;
use plumb_common::hex::encode as to_hex;

/// One entry as hashed: every column, each length-prefixed so that no two entries encode alike.
/// `evidence` is the entry's evidence column as stored; an entry without one hashes as every
/// entry did before evidence existed, so logs written then still verify.
pub(super) fn canonical(
    id: i64,
    at_ms: i64,
    host_id: &str,
    kind: &str,
    item: Option<&DriftRecord>,
    evidence: Option<&str>,
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
    if let Some(evidence) = evidence {
        // A name first: no entry without evidence can encode as one with it.
        field("evidence");
        field(evidence);
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
                let der = plumb_common::hex::decode(hex)
                    .ok_or_else(|| fail("is not a plumb audit key".into()))?;
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

    pub(super) fn sign(&self, last_id: i64, hash: &str) -> String {
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

/// An entry's fields as stored, with its links: what `plumb store copy` carries over as it is
/// (a kind this plumb does not know included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub id: i64,
    pub at_ms: i64,
    pub host_id: String,
    pub kind: String,
    pub item: Option<DriftRecord>,
    /// The evidence column as stored (hashed as it is).
    pub evidence: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Logged {
    /// The entry as verification reads it.
    pub(super) fn entry(&self) -> Entry {
        Entry {
            id: self.id,
            canonical: canonical(
                self.id,
                self.at_ms,
                &self.host_id,
                &self.kind,
                self.item.as_ref(),
                self.evidence.as_deref(),
            ),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

/// One entry as a backend reads it back: its id, its content as hashed (`canonical`), and the
/// hashes stored with it.
pub(super) struct Entry {
    pub(super) id: i64,
    pub(super) canonical: String,
    pub(super) prev_hash: String,
    pub(super) hash: String,
}

/// Walks the whole chain (every entry, in id order, as a backend read it), its ids and the head, and checks the head against what is trusted.
pub(super) fn verify(rows: &[Entry], head: Head, trusted: &Trusted) -> Verification {
    let mut problems = Vec::new();
    let mut prev: Option<&Entry> = None;
    for e in rows {
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
    Verification {
        entries: rows.len(),
        head_id: head.last_id,
        head: head.hash,
        signature,
        problems,
    }
}

fn check_signature(public_key: &str, head: &Head) -> std::result::Result<(), String> {
    if head.signature.is_empty() {
        return Err(format!(
            "the head (entry {}) carries no signature: it was written without the audit key, or its signature was removed",
            head.last_id
        ));
    }
    let key = plumb_common::hex::decode(public_key)
        .ok_or_else(|| format!("{public_key:?} is not a public key in hex"))?;
    let signature = plumb_common::hex::decode(&head.signature).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs written before evidence existed verify only while an entry without it hashes as
    /// it did then: this is that encoding, pinned.
    #[test]
    fn an_entry_without_evidence_encodes_as_before_it_existed() {
        let item = DriftRecord {
            resource: "file:/etc/a".into(),
            attribute: "mode".into(),
            expected: "0644".into(),
            actual: "0600".into(),
            since_ms: 5,
            declared_at: "m.yaml:4".into(),
            evidence: Default::default(),
        };
        assert_eq!(
            canonical(7, 9, "web-1", "opened", Some(&item), None),
            "1:7|1:9|5:web-1|6:opened|11:file:/etc/a|4:mode|4:0644|4:0600|1:5|8:m.yaml:4|"
        );
        assert_eq!(
            canonical(7, 9, "web-1", "opened", Some(&item), Some("{}")),
            "1:7|1:9|5:web-1|6:opened|11:file:/etc/a|4:mode|4:0644|4:0600|1:5|8:m.yaml:4|8:evidence|2:{}|"
        );
        assert_eq!(
            canonical(1, 2, "", "log_created", None, None),
            "1:1|1:2|0:|11:log_created|"
        );
    }
}
