//! pacman's database (Arch): one folder per installed package under `/var/lib/pacman/local`,
//! each with a `desc` file of `%FIELD%` sections. pacman holds `db.lck` for the length of a
//! transaction: while it exists the database is not read.

use std::fs;
use std::io::ErrorKind;

use super::{Error, Instance, describe};
use crate::root::Root;

const LOCAL: &str = "/var/lib/pacman/local";
const LOCK: &str = "/var/lib/pacman/db.lck";
/// The package folders come and go in `local`; the lock's removal ends a transaction.
pub(super) const WATCH: [(&str, bool); 2] = [(LOCAL, true), (LOCK, false)];

pub(super) fn present(root: &Root) -> bool {
    root.host_path(LOCAL).is_dir()
}

pub(super) fn read(root: &Root) -> Result<Vec<(String, Instance)>, Error> {
    if root.host_path(LOCK).exists() {
        return Err(Error::Unsettled("pacman holds its database lock".into()));
    }
    let dir = fs::read_dir(root.host_path(LOCAL))
        .map_err(|e| Error::Unreadable(format!("cannot list {LOCAL}: {}", describe(&e))))?;
    let mut out = Vec::new();
    for entry in dir.filter_map(Result::ok) {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue; // ALPM_DB_VERSION and the like
        }
        let path = format!("{LOCAL}/{}/desc", entry.file_name().to_string_lossy());
        let text = match fs::read_to_string(root.host_path(&path)) {
            Ok(t) => t,
            // A folder without its desc yet: pacman is writing it.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::Unsettled(format!("{path} is missing")));
            }
            Err(e) => {
                return Err(Error::Unreadable(format!(
                    "cannot read {path}: {}",
                    describe(&e)
                )));
            }
        };
        out.push(parse(&text).map_err(|e| Error::Unsettled(format!("{path}: {e}")))?);
    }
    Ok(out)
}

fn parse(text: &str) -> Result<(String, Instance), String> {
    let mut lines = text.lines();
    let (mut name, mut version, mut arch) = (None, None, String::new());
    while let Some(line) = lines.next() {
        let value = || lines.clone().next().map(str::to_owned);
        match line {
            "%NAME%" => name = value(),
            "%VERSION%" => version = value(),
            "%ARCH%" => arch = value().unwrap_or_default(),
            _ => {}
        }
    }
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Ok((
            n,
            Instance {
                manager: "pacman",
                arch,
                version: v,
                state: "installed".into(),
            },
        )),
        _ => Err("no %NAME% or no %VERSION% (still being written?)".into()),
    }
}
