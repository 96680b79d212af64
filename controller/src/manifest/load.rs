//! Reads a manifest directory: every `*.yaml` / `*.yml` file directly inside it (hidden files
//! skipped), with `source:` files resolved relative to the folder. The only IO of the manifest
//! model; everything it reads is handed to the pure `parse`.
//!
//! Everything is opened confined to the folder: a path, and every symlink on its way, must
//! stay inside it (a symlink to `/etc` is refused, one to `..data/web.yaml` as Kubernetes
//! writes ConfigMaps is fine), and only regular files are read (a FIFO would block the reader
//! forever, a device is not a manifest).

use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{Diagnostic, MAX_MANIFEST_BYTES, ManifestSet, parse};

/// Source files above this size are refused (they are desired content of configuration files).
const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// What one load of a manifest directory found.
pub struct Loaded {
    pub result: Result<ManifestSet, Vec<Diagnostic>>,
    /// The `source:` files it read (or tried to), relative to the folder: a change to one of
    /// them is a change to the manifests.
    pub sources: Vec<PathBuf>,
}

/// Loads and validates every manifest in `dir`; all problems found are returned together.
pub fn load_dir(dir: &Path) -> Result<ManifestSet, Vec<Diagnostic>> {
    load(dir).result
}

/// Like `load_dir`, also saying which source files were read. The set carries a fingerprint
/// of everything read, so that an unchanged directory can be told from a changed one.
pub fn load(dir: &Path) -> Loaded {
    let mut sources = Vec::new();
    let result = load_into(dir, &mut sources);
    Loaded { result, sources }
}

fn load_into(dir: &Path, sources: &mut Vec<PathBuf>) -> Result<ManifestSet, Vec<Diagnostic>> {
    let dir_name = dir.display().to_string();
    let fail = |message: String| {
        vec![Diagnostic {
            file: dir_name.clone(),
            line: None,
            column: None,
            message,
            hint: None,
        }]
    };
    let folder =
        Folder::open(dir).map_err(|e| fail(format!("cannot read the manifest directory: {e}")))?;
    let entries =
        fs::read_dir(dir).map_err(|e| fail(format!("cannot read the manifest directory: {e}")))?;
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fail(format!("cannot read the manifest directory: {e}")))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            // Not silently skipped: it may be a manifest someone expects in force.
            let shown = plumb_proto::names::escape(std::os::unix::ffi::OsStrExt::as_bytes(
                name.as_os_str(),
            ));
            if shown.ends_with(".yaml") || shown.ends_with(".yml") {
                errors.push(Diagnostic {
                    file: dir.join(&shown).display().to_string(),
                    line: None,
                    column: None,
                    message: "the file name is not valid UTF-8, so it cannot name a manifest"
                        .into(),
                    hint: Some("rename it; manifest file names are UTF-8".into()),
                });
            }
            continue;
        };
        if !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml")) {
            names.push(name.to_owned());
        }
    }
    names.sort();

    let mut digest = Sha256::new();
    let mut manifests = Vec::new();
    for name in &names {
        let file = dir.join(name).display().to_string();
        let text = match folder.read(Path::new(name), MAX_MANIFEST_BYTES as u64 + 1) {
            Ok(Some(text)) => text,
            // A folder named `x.yaml` is not a manifest.
            Ok(None) => continue,
            Err(e) => {
                errors.push(Diagnostic {
                    file,
                    line: None,
                    column: None,
                    message: format!("cannot read: {e}"),
                    hint: None,
                });
                continue;
            }
        };
        hash_part(&mut digest, name.as_bytes(), &text);
        let Ok(text) = String::from_utf8(text) else {
            errors.push(Diagnostic {
                file,
                line: None,
                column: None,
                message: "not valid UTF-8".into(),
                hint: None,
            });
            continue;
        };
        let mut read_source = |source: &str| {
            let bytes = read_source(&folder, source, sources)?;
            hash_part(&mut digest, source.as_bytes(), &bytes);
            Ok(bytes)
        };
        match parse(&file, &text, &mut read_source) {
            Ok(m) => manifests.push(m),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    ManifestSet::new(manifests).map(|set| set.with_fingerprint(digest.finalize().into()))
}

/// One named part of what a set was loaded from, into its fingerprint.
fn hash_part(digest: &mut Sha256, name: &[u8], content: &[u8]) {
    for part in [name, content] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
}

fn read_source(folder: &Folder, source: &str, read: &mut Vec<PathBuf>) -> Result<Vec<u8>, String> {
    let rel = Path::new(source);
    // A source names a file of the manifest repository, never one elsewhere on the controller.
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("must be a relative path inside the manifest folder".into());
    }
    read.push(rel.to_path_buf());
    match folder.read(rel, MAX_SOURCE_BYTES + 1) {
        Ok(Some(bytes)) if bytes.len() as u64 > MAX_SOURCE_BYTES => {
            Err(format!("larger than {} MiB", MAX_SOURCE_BYTES >> 20))
        }
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err("not a regular file".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The manifest directory, opened once: everything below is opened relative to it.
struct Folder {
    fd: OwnedFd,
    /// Resolved, for the fallback on kernels without openat2.
    canonical: PathBuf,
}

impl Folder {
    fn open(dir: &Path) -> io::Result<Self> {
        let fd = fs::File::open(dir)?.into();
        Ok(Self {
            fd,
            canonical: fs::canonicalize(dir)?,
        })
    }

    /// At most `cap` bytes of the regular file at `rel`; `None` when it is a directory.
    /// Refused: a path that leaves the folder (through `..` or a symlink), and anything but
    /// a regular file or a directory.
    fn read(&self, rel: &Path, cap: u64) -> io::Result<Option<Vec<u8>>> {
        let file = self.open_inside(rel)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Ok(None);
        }
        if !meta.is_file() {
            return Err(io::Error::other(
                "not a regular file (plumb reads only regular files from a manifest directory)",
            ));
        }
        let mut bytes = Vec::new();
        file.take(cap).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// Opens without following anything out of the folder and without blocking: a FIFO opens
    /// at once (O_NONBLOCK) and is then refused by its type.
    fn open_inside(&self, rel: &Path) -> io::Result<fs::File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(self.fd.as_fd(), rel, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(fd.into()),
            Err(rustix::io::Errno::XDEV) => Err(outside()),
            // No openat2 (Linux before 5.6, or a seccomp filter): resolve, check, then open.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                let full = fs::canonicalize(self.canonical.join(rel))?;
                if !full.starts_with(&self.canonical) {
                    return Err(outside());
                }
                let fd = rustix::fs::open(&full, flags | OFlags::NOFOLLOW, Mode::empty())?;
                Ok(fd.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn outside() -> io::Error {
    io::Error::other("it resolves outside the manifest folder (through a symlink)")
}

/// Where a manifest set came from, for the event log: `git COMMIT (DIR)` when the directory is
/// in a git work tree, else the directory. Reads `.git` directly: no git binary needed.
pub fn source_of(dir: &Path) -> String {
    match git_commit(dir) {
        Some(commit) => format!("git {commit} ({})", dir.display()),
        None => dir.display().to_string(),
    }
}

fn git_commit(dir: &Path) -> Option<String> {
    let start = fs::canonicalize(dir).ok()?;
    let mut git = None;
    for d in start.ancestors() {
        let candidate = d.join(".git");
        if candidate.is_dir() {
            git = Some(candidate);
            break;
        }
        // A worktree or submodule: `.git` is a file saying where the repository is.
        if let Ok(text) = fs::read_to_string(&candidate) {
            let target = text.strip_prefix("gitdir:")?.trim();
            git = Some(d.join(target));
            break;
        }
    }
    let git = git?;
    let head = fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return Some(head.to_owned());
    };
    if let Ok(sha) = fs::read_to_string(git.join(reference)) {
        return Some(sha.trim().to_owned());
    }
    // Refs packed by `git gc`: lines of `SHA REF`.
    let packed = fs::read_to_string(git.join("packed-refs")).ok()?;
    packed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(_, r)| *r == reference)
        .map(|(sha, _)| sha.to_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use super::*;

    fn manifest_with_source(source: &str) -> String {
        format!(
            "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/app.conf:\n    source: {source}\n    diff: true\n"
        )
    }

    fn errors(dir: &Path) -> String {
        match load_dir(dir) {
            Ok(_) => panic!("{} should be refused", dir.display()),
            Err(e) => e
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// A temp dir holding `manifests/` and, beside it, `outside/secret` (not to be read).
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("manifests");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::create_dir_all(tmp.path().join("outside")).expect("mkdir");
        fs::write(tmp.path().join("outside/secret"), "TOP SECRET\n").expect("write");
        (tmp, dir)
    }

    // Regression (issue 12, item 2): a symlink in the manifest directory to a root-only file,
    // declared as `source:` with `diff: true`, made `plumb diff` print that file.
    #[test]
    fn a_source_cannot_leave_the_manifest_folder_through_a_symlink() {
        let (tmp, dir) = setup();
        symlink(tmp.path().join("outside/secret"), dir.join("link")).expect("symlink");
        fs::write(dir.join("m.yaml"), manifest_with_source("link")).expect("write");
        let e = errors(&dir);
        assert!(e.contains("resolves outside the manifest folder"), "{e}");

        // A symlinked folder: `source: etclink/passwd`.
        fs::write(dir.join("m.yaml"), manifest_with_source("etclink/secret")).expect("write");
        symlink(tmp.path().join("outside"), dir.join("etclink")).expect("symlink");
        let e = errors(&dir);
        assert!(e.contains("resolves outside the manifest folder"), "{e}");

        // Symlinks that stay inside are fine (a `current -> v2` switch).
        fs::create_dir_all(dir.join("v2")).expect("mkdir");
        fs::write(dir.join("v2/app.conf"), "x=1\n").expect("write");
        symlink("v2", dir.join("current")).expect("symlink");
        fs::write(dir.join("m.yaml"), manifest_with_source("current/app.conf")).expect("write");
        let set = load_dir(&dir).expect("a symlink inside the folder is followed");
        let decl = &set.manifests()[0].files[0];
        assert_eq!(
            decl.spec.desired_content.as_deref().map(Vec::as_slice),
            Some(&b"x=1\n"[..])
        );
    }

    // Regression (issue 12, item 2): a manifest file that is a symlink to a file elsewhere was
    // read, and its content echoed into the parse error.
    #[test]
    fn a_manifest_symlinked_from_elsewhere_is_refused_without_reading_it() {
        let (tmp, dir) = setup();
        symlink(tmp.path().join("outside/secret"), dir.join("evil.yaml")).expect("symlink");
        let e = errors(&dir);
        assert!(e.contains("resolves outside the manifest folder"), "{e}");
        assert!(!e.contains("SECRET"), "its content was echoed: {e}");

        // Kubernetes ConfigMaps: each file a symlink into `..data`, itself a symlink.
        fs::remove_file(dir.join("evil.yaml")).expect("rm");
        fs::create_dir_all(dir.join("..2026_12_02")).expect("mkdir");
        fs::write(
            dir.join("..2026_12_02/web.yaml"),
            "name: web\nhosts: [\"*\"]\nfiles:\n  /etc/motd: {}\n",
        )
        .expect("write");
        symlink("..2026_12_02", dir.join("..data")).expect("symlink");
        symlink("..data/web.yaml", dir.join("web.yaml")).expect("symlink");
        let set = load_dir(&dir).expect("a ConfigMap mount loads");
        assert_eq!(set.manifests()[0].name, "web");
    }

    // Regression (issue 12, item 3): a FIFO as `source:` blocked the loader forever (`manifests
    // check` hung, reloads stopped). Only regular files are read, and never by blocking.
    #[test]
    fn fifos_in_the_manifest_folder_are_refused_without_blocking() {
        let (_tmp, dir) = setup();
        let mkfifo = |p: &Path| {
            let ok = std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .expect("mkfifo")
                .success();
            assert!(ok, "mkfifo {}", p.display());
        };
        mkfifo(&dir.join("pipe"));
        mkfifo(&dir.join("fifo.yaml"));
        fs::write(dir.join("m.yaml"), manifest_with_source("pipe")).expect("write");
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.clone();
        std::thread::spawn(move || {
            let _ = tx.send(load_dir(&d).map(|_| ()));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("loading returns instead of blocking on a FIFO");
        let e: Vec<String> = result
            .expect_err("refused")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e.iter().all(|e| e.contains("not a regular file")), "{e:#?}");
    }

    // Regression (issue 12, weak): a manifest whose file name is not UTF-8 was skipped silently.
    #[test]
    fn a_manifest_name_that_is_not_utf8_is_an_error_not_a_silent_skip() {
        use std::os::unix::ffi::OsStrExt as _;
        let (_tmp, dir) = setup();
        let name = std::ffi::OsStr::from_bytes(b"web\xff.yaml");
        fs::write(dir.join(name), "name: w\nhosts: [\"*\"]\n").expect("write");
        let e = errors(&dir);
        assert!(e.contains("web\\xff.yaml"), "{e}");
        assert!(e.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn a_set_is_the_same_only_when_every_file_read_is() {
        let (_tmp, dir) = setup();
        fs::write(dir.join("app.conf"), "a\n").expect("write");
        fs::write(dir.join("m.yaml"), manifest_with_source("app.conf")).expect("write");
        let first = load_dir(&dir).expect("valid");
        assert!(load_dir(&dir).expect("valid").same_as(&first));
        fs::write(dir.join("app.conf"), "b\n").expect("write");
        assert!(
            !load_dir(&dir).expect("valid").same_as(&first),
            "a source changed"
        );
    }
}
