//! rpm's database, read and verified with the `rpm` tool itself (`rpm -qa`, `rpm -V`), which
//! knows every database format (sqlite, ndb, BerkeleyDB) and opens it read-only with the right
//! locking. Needs `rpm` on the agent's host; without it the packages are reported unreadable.

use std::io::ErrorKind;
use std::process::Command;

use super::{Error, FileProblem, Instance};
use crate::root::Root;

/// Where distributions keep the database, newest layout first.
const DBPATHS: [&str; 2] = ["/usr/lib/sysimage/rpm", "/var/lib/rpm"];
const DB_FILES: [&str; 4] = [
    "rpmdb.sqlite",
    "Packages.db",
    "Packages",
    "rpmdb.sqlite-wal",
];

/// The database folder under the root, if there is one.
pub(super) fn dbpath(root: &Root) -> Option<&'static str> {
    DBPATHS.into_iter().find(|d| {
        DB_FILES
            .iter()
            .any(|f| root.host_path(&format!("{d}/{f}")).is_file())
    })
}

pub(super) fn present(root: &Root) -> bool {
    dbpath(root).is_some()
}

/// The database folder is watched as a whole: rpm writes its files (and sqlite's WAL) there.
pub(super) fn watch(root: &Root) -> Vec<(&'static str, bool)> {
    dbpath(root).map(|d| vec![(d, true)]).unwrap_or_default()
}

fn rpm(root: &Root, args: &[&str]) -> Result<std::process::Output, Error> {
    let Some(db) = dbpath(root) else {
        return Err(Error::Unsettled("the rpm database went away".into()));
    };
    let top = root.host_path("/");
    Command::new("rpm")
        .arg("--root")
        .arg(&top)
        .args(["--dbpath", db])
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::Unreadable(
                "an rpm database is present but the rpm tool is not installed".into(),
            ),
            _ => Error::Unreadable(format!("cannot run rpm: {e}")),
        })
}

pub(super) fn read(root: &Root) -> Result<Vec<(String, Instance)>, Error> {
    let out = rpm(
        root,
        &[
            "-qa",
            "--qf",
            "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n",
        ],
    )?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(Error::Unreadable(format!("rpm -qa failed: {why}")));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let [name, epoch, version, release, arch] = f.as_slice() else {
                return None;
            };
            let evr = match *epoch {
                "0" | "" | "(none)" => format!("{version}-{release}"),
                e => format!("{e}:{version}-{release}"),
            };
            let instance = Instance {
                manager: "rpm",
                arch: arch.to_string(),
                version: evr,
                state: "installed".into(),
            };
            Some((name.to_string(), instance))
        })
        .collect())
}

/// Files of an installed package that differ from the database, as `rpm -V` reports them.
/// A changed modification time alone is not a difference (a `touch` is not drift).
pub(super) fn verify(root: &Root, name: &str) -> Result<Vec<FileProblem>, String> {
    let out = rpm(root, &["-V", name]).map_err(|e| match e {
        Error::Unsettled(w) | Error::Unreadable(w) => w,
    })?;
    Ok(parse_verify(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `rpm -V` output: `SM5DLUGTP [c] PATH` per differing file, or `missing [c] PATH`.
fn parse_verify(text: &str) -> Vec<FileProblem> {
    let mut problems = Vec::new();
    for line in text.lines() {
        let (flags, path) = match line.split_once(' ') {
            Some((flags, rest)) => (flags, rest.trim_start()),
            None => continue,
        };
        // "c /etc/x" for a configuration file; the path is what follows the attribute marker.
        let path = match path.split_once(' ') {
            Some((marker, p)) if marker.len() == 1 && p.starts_with('/') => p,
            _ => path,
        };
        if !path.starts_with('/') {
            continue;
        }
        let actual = if flags == "missing" {
            "missing".to_owned()
        } else {
            let names: Vec<&str> = flags
                .chars()
                .zip([
                    "size",
                    "mode",
                    "digest",
                    "device",
                    "link target",
                    "user",
                    "group",
                    "mtime",
                    "capabilities",
                ])
                .filter(|(c, what)| *c != '.' && *what != "mtime")
                .map(|(c, what)| if c == '?' { "unverifiable" } else { what })
                .collect();
            if names.is_empty() {
                continue;
            }
            format!("differs: {}", names.join(", "))
        };
        problems.push(FileProblem {
            path: path.to_owned(),
            expected: "as packaged".into(),
            actual,
        });
    }
    problems
}

/// Every path the package owns, for watching.
pub(super) fn files(root: &Root, name: &str) -> Vec<String> {
    match rpm(root, &["-ql", name]) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('/') && !root.host_path(l).is_dir())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_output() {
        let out = "S.5....T.    /usr/share/hello/data.txt\nmissing   c /etc/hello.conf\n.......T.  c /etc/touched.conf\n..?......    /usr/bin/unreadable\n.M.......    /usr/bin/chmodded\n";
        let got: Vec<(String, String)> = parse_verify(out)
            .into_iter()
            .map(|p| (p.path, p.actual))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/usr/share/hello/data.txt".to_string(),
                    "differs: size, digest".to_string()
                ),
                ("/etc/hello.conf".into(), "missing".into()),
                ("/usr/bin/unreadable".into(), "differs: unverifiable".into()),
                ("/usr/bin/chmodded".into(), "differs: mode".into()),
            ],
            "an mtime-only change (a touch) is not a difference"
        );
    }
}
