//! `plumb-agent capture`: writes a manifest of this host's current state for the given paths
//! and packages (like `goss add`), which `plumb manifests check` accepts and which shows no
//! drift when served back for the same host. Content is captured as a digest, never copied.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;

use crate::collect::IdNames;
use crate::collect::files::{self, Kind, Observation};
use crate::collect::packages::{self, Read};
use crate::root::Root;

/// Entries captured below one directory at most; a larger tree is an error, not a huge file.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Default)]
pub struct CaptureRequest {
    pub host_id: String,
    pub paths: Vec<String>,
    pub packages: Vec<String>,
    pub all_packages: bool,
    /// Mark captured directories exclusive: entries added later are drift.
    pub exclusive: bool,
    /// Capture volatile files too, and write no `ignore:` for them.
    pub no_default_ignores: bool,
}

/// Names of volatile files (editor swaps and backups, `-` backups of passwd and friends,
/// package managers' leftovers, caches): not captured, and ignored in captured exclusive
/// directories unless `--no-default-ignores`.
pub const DEFAULT_IGNORES: &[&str] = &[
    "*~",
    "*-",
    "*.swp",
    "*.dpkg-*",
    "*.ucf-*",
    "*.rpmnew",
    "*.rpmsave",
    "*.rpmorig",
    "ld.so.cache",
    "__pycache__",
];

/// Why a capture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0:?} is not a normalized absolute path")]
    NotAbsolute(String),
    #[error("{0} has more than {MAX_ENTRIES} entries; capture smaller parts of it")]
    TooManyEntries(String),
    #[error("{0} does not exist")]
    Missing(String),
    #[error("cannot list {path}: {source}")]
    List {
        path: String,
        source: std::io::Error,
    },
    #[error("the package database is changing ({0}); try again")]
    PackagesChanging(String),
}

/// The manifest text, or why it could not be captured.
pub fn capture(root: &Root, req: &CaptureRequest) -> Result<String, CaptureError> {
    let names = IdNames::load(root);
    let ignores: &[&str] = if req.no_default_ignores {
        &[]
    } else {
        DEFAULT_IGNORES
    };
    let mut files: BTreeMap<String, Observation> = BTreeMap::new();
    for path in &req.paths {
        let path = normalize(path)?;
        collect(root, &names, &path, ignores, &mut files)?;
    }
    let packages = capture_packages(root, req)?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Captured by plumb-agent {} for host {}.",
        env!("CARGO_PKG_VERSION"),
        req.host_id
    );
    let _ = writeln!(
        out,
        "# File content is recorded as a SHA-256 digest; nothing was copied."
    );
    let _ = writeln!(out, "name: {}", quote(&format!("captured-{}", req.host_id)));
    let _ = writeln!(out, "hosts: [{}]", quote(&req.host_id));
    let exclusive_dirs = req.exclusive && files.values().any(|o| o.kind == Kind::Directory);
    if exclusive_dirs && !ignores.is_empty() {
        out.push_str(
            "# Volatile files (editor swaps and backups, `-` backups, package managers' leftovers,\n\
             # caches) are never drift in the exclusive directories below. Edit as you see fit;\n\
             # `plumb-agent capture --no-default-ignores` leaves this out.\n",
        );
        let list: Vec<String> = ignores.iter().map(|g| quote(g)).collect();
        let _ = writeln!(out, "ignore: [{}]", list.join(", "));
    }
    if !files.is_empty() {
        out.push_str("files:\n");
        for (path, o) in &files {
            write_file(&mut out, path, o, req.exclusive);
        }
    }
    if !packages.is_empty() {
        out.push_str("packages:\n");
        for (name, want) in &packages {
            let _ = writeln!(out, "  {}: {}", quote(name), quote(want));
        }
    }
    Ok(out)
}

fn normalize(path: &str) -> Result<String, CaptureError> {
    let trimmed = path.trim_end_matches('/');
    let ok = trimmed.starts_with('/')
        && trimmed[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(CaptureError::NotAbsolute(path.to_owned()))
    }
}

/// Observes `path` and, for a directory, everything below it but entries named as `ignores`
/// says.
fn collect(
    root: &Root,
    names: &IdNames,
    path: &str,
    ignores: &[&str],
    out: &mut BTreeMap<String, Observation>,
) -> Result<(), CaptureError> {
    let mut pending = vec![path.to_owned()];
    let mut seen = 0;
    while let Some(p) = pending.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            return Err(CaptureError::TooManyEntries(path.to_owned()));
        }
        let o = files::observe(
            root,
            files::RequestRef {
                path: &p,
                hash: true,
                contains: &[],
                list_entries: false,
                allow_content: false,
                sensitive: false,
                ignore: &[],
            },
            names,
            &files::Requests::default(),
        );
        match o.kind {
            Kind::Absent => return Err(CaptureError::Missing(p)),
            Kind::Directory => {
                let dir = root.host_path(&p);
                let entries = fs::read_dir(&dir).map_err(|source| CaptureError::List {
                    path: p.clone(),
                    source,
                })?;
                for entry in entries.filter_map(Result::ok) {
                    let name = plumb_proto::names::escape(std::os::unix::ffi::OsStrExt::as_bytes(
                        entry.file_name().as_os_str(),
                    ));
                    if ignores
                        .iter()
                        .any(|g| plumb_common::glob::name_matches(g, &name))
                    {
                        continue;
                    }
                    pending.push(format!("{}/{name}", p.trim_end_matches('/')));
                }
            }
            Kind::File | Kind::Symlink | Kind::Other | Kind::Unreadable => {}
        }
        out.insert(p, o);
    }
    Ok(())
}

fn write_file(out: &mut String, path: &str, o: &Observation, exclusive: bool) {
    let key = format!("  {}:", quote(path));
    let owner = o.owner.clone().unwrap_or_else(|| o.uid.to_string());
    let group = o.group.clone().unwrap_or_else(|| o.gid.to_string());
    let attrs = |out: &mut String| {
        let _ = writeln!(out, "    mode: \"{:04o}\"", o.mode & 0o7777);
        let _ = writeln!(out, "    owner: {}", quote(&owner));
        let _ = writeln!(out, "    group: {}", quote(&group));
    };
    match o.kind {
        Kind::File => {
            let _ = writeln!(out, "{key}");
            match &o.sha256 {
                Some(sha) => {
                    let _ = writeln!(out, "    sha256: \"{sha}\"");
                }
                None => {
                    let _ = writeln!(out, "    type: file");
                    let _ = writeln!(
                        out,
                        "    # content not captured: {}",
                        o.error.as_deref().unwrap_or("unreadable")
                    );
                }
            }
            attrs(out);
        }
        Kind::Directory => {
            let _ = writeln!(out, "{key}");
            let _ = writeln!(out, "    type: directory");
            attrs(out);
            if exclusive {
                let _ = writeln!(out, "    exclusive: true");
            }
        }
        Kind::Symlink => {
            let _ = writeln!(out, "{key}");
            let _ = writeln!(
                out,
                "    target: {}",
                quote(o.link_target.as_deref().unwrap_or_default())
            );
        }
        Kind::Other | Kind::Unreadable | Kind::Absent => {
            // FIFOs, sockets, devices and what cannot be inspected: declared to exist only.
            let _ = writeln!(out, "{key} {{}}");
        }
    }
}

/// (name, wanted) for the requested packages: the exact installed version where there is one.
fn capture_packages(
    root: &Root,
    req: &CaptureRequest,
) -> Result<Vec<(String, String)>, CaptureError> {
    if req.packages.is_empty() && !req.all_packages {
        return Ok(Vec::new());
    }
    let inv = match packages::read(root) {
        Read::Settled(inv) => inv,
        Read::Unsettled(why) => {
            return Err(CaptureError::PackagesChanging(why));
        }
    };
    let all = inv.all();
    let mut wanted: Vec<String> = req.packages.clone();
    if req.all_packages {
        wanted.extend(all.keys().map(|k| k.to_string()));
    }
    wanted.sort();
    wanted.dedup();
    let mut out = Vec::new();
    for name in wanted {
        let instances = all.get(name.as_str()).copied().unwrap_or_default();
        let installed: Vec<_> = instances
            .iter()
            .filter(|i| i.state == "installed")
            .collect();
        let want = match installed.as_slice() {
            [] if instances.is_empty() => "absent".to_owned(),
            [first, rest @ ..] if rest.iter().all(|i| i.version == first.version) => {
                format!("= {}", first.version)
            }
            _ => "present".to_owned(),
        };
        out.push((name, want));
    }
    Ok(out)
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_files_are_left_out_and_ignored_unless_asked() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("etc/app")).expect("mkdir");
        for name in [
            "app.conf",
            "app.conf~",
            ".app.conf.swp",
            "passwd-",
            "x.dpkg-old",
        ] {
            fs::write(dir.path().join("etc/app").join(name), "x\n").expect("write");
        }
        let root = Root::new(Some(dir.path().to_path_buf()));
        let req = CaptureRequest {
            host_id: "h1".into(),
            paths: vec!["/etc/app".into()],
            exclusive: true,
            ..Default::default()
        };
        let text = capture(&root, &req).expect("captured");
        assert!(
            text.contains("\nignore: [\"*~\", \"*-\", \"*.swp\", "),
            "{text}"
        );
        assert!(text.contains("\"/etc/app/app.conf\":"), "{text}");
        for volatile in ["app.conf~", ".app.conf.swp", "passwd-", "x.dpkg-old"] {
            assert!(!text.contains(volatile), "{volatile} captured:\n{text}");
        }
        let all = capture(
            &root,
            &CaptureRequest {
                no_default_ignores: true,
                ..req.clone()
            },
        )
        .expect("captured");
        assert!(!all.contains("ignore:") && all.contains("passwd-"), "{all}");
        let files_only = capture(
            &root,
            &CaptureRequest {
                paths: vec!["/etc/app/app.conf".into()],
                ..req
            },
        )
        .expect("captured");
        assert!(
            !files_only.contains("ignore:"),
            "no exclusive directory to ignore in"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000ad\"");
    }

    #[test]
    fn captures_a_tree_under_a_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("etc/app/conf.d")).expect("mkdir");
        fs::write(dir.path().join("etc/app/app.conf"), "x=1\n").expect("write");
        fs::write(dir.path().join("etc/app/conf.d/a.conf"), "").expect("write");
        std::os::unix::fs::symlink("app.conf", dir.path().join("etc/app/current"))
            .expect("symlink");
        let root = Root::new(Some(dir.path().to_path_buf()));
        let req = CaptureRequest {
            host_id: "h1".into(),
            paths: vec!["/etc/app/".into()],
            exclusive: true,
            ..Default::default()
        };
        let text = capture(&root, &req).expect("captured");
        for want in [
            "hosts: [\"h1\"]",
            "  \"/etc/app\":\n    type: directory\n",
            "    exclusive: true",
            "  \"/etc/app/app.conf\":\n    sha256: \"",
            "  \"/etc/app/conf.d/a.conf\":",
            "  \"/etc/app/current\":\n    target: \"app.conf\"",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert!(
            capture(
                &root,
                &CaptureRequest {
                    paths: vec!["/nope".into()],
                    ..req.clone()
                }
            )
            .is_err()
        );
        assert!(
            capture(
                &root,
                &CaptureRequest {
                    paths: vec!["etc".into()],
                    ..req
                }
            )
            .is_err()
        );
    }
}
