//! The commands that need no controller: `plumb manifests check`, `plumb certs`, and
//! `plumb audit verify`, which reads a store's files and never writes them.

use std::path::Path;

use plumb_common::cli::exit;
use serde_json::json;

use super::CertsCommand;
use super::output::{Format, emit};
use crate::manifest::load::load_dir;

pub(super) fn audit_verify(
    store: &crate::store::Location,
    public_key: Option<&str>,
    heads: &[String],
    format: Format,
) -> anyhow::Result<i32> {
    use crate::store::{Location, PostgresStore, Signature, SqliteStore, Trusted};
    let data = match store {
        Location::Sqlite(dir) => {
            anyhow::ensure!(
                dir.join("plumb.db").exists(),
                "{} holds no plumb store (plumb.db)",
                dir.display()
            );
            Some(dir.as_path())
        }
        Location::Postgres(_) => None,
    };
    let read_key = |given: &str| -> anyhow::Result<String> {
        let text = match std::fs::read_to_string(given) {
            Ok(t) => t,
            Err(_) => given.to_owned(),
        };
        Ok(text.trim().to_ascii_lowercase())
    };
    let (public_key, from) = match public_key {
        Some(k) => (Some(read_key(k)?), "given"),
        None => match data.and_then(|d| {
            std::fs::read_to_string(crate::store::public_path(&d.join("audit.key"))).ok()
        }) {
            Some(t) => (Some(t.trim().to_ascii_lowercase()), "data directory"),
            None => (None, "none"),
        },
    };
    let mut published = Vec::new();
    for h in heads {
        let parsed = h
            .split_once(':')
            .and_then(|(id, hash)| Some((id.parse::<i64>().ok()?, hash.trim().to_owned())));
        let Some(head) = parsed else {
            return Err(plumb_common::cli::UsageError(format!(
                "--head {h:?}: expected ENTRY:HASH, e.g. 1234:3f2a…"
            ))
            .into());
        };
        published.push(head);
    }
    let trusted = Trusted {
        public_key,
        published,
    };
    let v = match store {
        Location::Sqlite(dir) => SqliteStore::verify_dir(dir, &trusted)?,
        Location::Postgres(url) => PostgresStore::verify_url(url, &trusted)?,
    };
    let (signature, key) = match &v.signature {
        Signature::Valid(k) => ("valid", Some(k.as_str())),
        Signature::Invalid => ("invalid", None),
        Signature::Unchecked => ("unchecked", None),
    };
    match format {
        Format::Json => emit(
            &(serde_json::to_string_pretty(&json!({
                "intact": v.problems.is_empty(), "entries": v.entries,
                "head": {"entry": v.head_id, "hash": v.head},
                "signature": signature, "public_key": key, "key_from": from,
                "problems": v.problems,
            }))? + "\n"),
        )?,
        Format::Table if v.problems.is_empty() => {
            emit(&format!(
                "intact: {} entries, head {}:{}\n",
                v.entries, v.head_id, v.head
            ))?;
            match (&v.signature, from) {
                (Signature::Valid(k), "given") => emit(&format!("signed: by key {k}\n"))?,
                (Signature::Valid(k), _) => {
                    emit(&format!("signed: by key {k}\n"))?;
                    eprintln!(
                        "note: checked with the public key in {}; whoever can write there could replace it. \
                         Give --public-key from a copy you keep elsewhere",
                        data.map(|d| d.display().to_string()).unwrap_or_default()
                    );
                }
                _ => eprintln!(
                    "note: the head's signature was not checked (no public key); give --public-key"
                ),
            }
        }
        Format::Table => {
            let text: String = v.problems.iter().map(|p| format!("{p}\n")).collect();
            emit(&text)?;
            eprintln!(
                "the event log was tampered with ({} problem(s) in {} entries)",
                v.problems.len(),
                v.entries
            );
        }
    }
    Ok(if v.problems.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}

pub(super) fn certs(command: CertsCommand) -> anyhow::Result<i32> {
    let mut browser = None;
    let written = match command {
        CertsCommand::Init { dir, days } => crate::certs::init(&dir, days)?,
        CertsCommand::Issue {
            kind,
            names,
            role,
            scope_hosts,
            scope_labels,
            dir,
            days,
            not_after,
        } => {
            let mut scope: Vec<(&str, String)> =
                scope_hosts.into_iter().map(|g| ("hosts", g)).collect();
            for label in scope_labels {
                anyhow::ensure!(
                    label.split_once('=').is_some_and(|(k, _)| !k.is_empty()),
                    "--label {label:?}: expected KEY=VALUE, e.g. role=web"
                );
                scope.push(("label", label));
            }
            let written =
                crate::certs::issue(&dir, kind, &names, role, &scope, days, not_after.as_deref())?;
            if kind == crate::certs::Kind::Operator {
                browser = Some(crate::certs::browser_hint(&dir, &names[0]));
            }
            written
        }
    };
    let mut out = String::new();
    for w in &written {
        out.push_str(&format!(
            "wrote {}  ({}, mode 0600)\n",
            w.path.display(),
            w.what
        ));
    }
    if let Some(hint) = browser {
        out.push_str(&hint);
    }
    emit(&out)?;
    Ok(exit::OK)
}

pub(super) fn check(dir: &Path, format: Format) -> anyhow::Result<i32> {
    let result = load_dir(dir);
    match (&result, format) {
        (Ok(set), Format::Table) => {
            let files: usize = set.manifests().iter().map(|m| m.files.len()).sum();
            emit(&format!(
                "ok: {} manifests, {files} paths declared in {}\n",
                set.manifests().len(),
                dir.display()
            ))?;
        }
        (Err(errors), Format::Table) => {
            let text: String = errors.iter().map(|e| format!("{e}\n")).collect();
            emit(&text)?;
            eprintln!(
                "{} error{} in {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                dir.display()
            );
        }
        (Ok(set), Format::Json) => emit(
            &(serde_json::to_string_pretty(&json!({
                "ok": true,
                "manifests": set.manifests().iter().map(|m| json!({"name": m.name, "file": m.file, "paths": m.files.len()})).collect::<Vec<_>>(),
                "errors": [],
            }))? + "\n"),
        )?,
        (Err(errors), Format::Json) => emit(
            &(serde_json::to_string_pretty(&json!({
                "ok": false,
                "manifests": [],
                "errors": errors.iter().map(|e| json!({
                    "file": e.file, "line": e.line, "column": e.column, "message": e.message, "hint": e.hint,
                })).collect::<Vec<_>>(),
            }))? + "\n"),
        )?,
    }
    Ok(if result.is_ok() {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// `plumb store copy`: a controller's SQLite store into an empty PostgreSQL database, then
/// that database's log verified as `audit verify --store` would.
pub(super) fn store_copy(from: &str, to: &str, replace: bool) -> anyhow::Result<i32> {
    use crate::store::{Location, PostgresStore, SqliteStore, Trusted};
    use plumb_common::cli::UsageError;
    let dir = match Location::parse(from).map_err(|e| UsageError(format!("--from: {e}")))? {
        Location::Sqlite(dir) => dir,
        Location::Postgres(_) => {
            return Err(UsageError(
                "--from: copies are made from a controller's SQLite store: give sqlite:DIR".into(),
            )
            .into());
        }
    };
    let url = match Location::parse(to).map_err(|e| UsageError(format!("--to: {e}")))? {
        Location::Postgres(url) => url,
        Location::Sqlite(_) => {
            return Err(UsageError(
                "--to: copies go into PostgreSQL: give postgres://USER@HOST/DB".into(),
            )
            .into());
        }
    };
    anyhow::ensure!(
        dir.join("plumb.db").exists(),
        "{} holds no plumb store (plumb.db)",
        dir.display()
    );
    let source = SqliteStore::open(&dir)?;
    let copied = PostgresStore::import(&url, &source, replace)?;
    let check = PostgresStore::verify_url(&url, &Trusted::default())?;
    println!(
        "copied {} host(s), {} observation(s), {} open drift item(s), {} acknowledgement(s) and {} log entries into {}",
        copied.hosts,
        copied.observations,
        copied.drift,
        copied.acks,
        copied.entries,
        crate::store::postgres::redact(&url)
    );
    if !check.problems.is_empty() {
        for p in &check.problems {
            eprintln!("plumb: the copy's log does not verify: {p}");
        }
        return Ok(exit::ERROR);
    }
    println!(
        "the copy's log verifies: {} entries, head {} {}, signed by {}",
        check.entries, check.head_id, check.head, copied.head.public_key
    );
    Ok(exit::OK)
}
