//! Reads a manifest directory: every `*.yaml` / `*.yml` file directly inside it (hidden files
//! skipped), with `source:` files resolved relative to the folder. The only IO of the manifest
//! model; everything it reads is handed to the pure `parse`.

use std::fs;
use std::io::Read;
use std::path::{Component, Path};

use super::{Diagnostic, MAX_MANIFEST_BYTES, Manifest, ManifestSet, parse};

/// Source files above this size are refused (they are desired content of configuration files).
const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// Loads and validates every manifest in `dir`; all problems found are returned together.
pub fn load_dir(dir: &Path) -> Result<ManifestSet, Vec<Diagnostic>> {
    let dir_name = dir.display().to_string();
    let entries = fs::read_dir(dir).map_err(|e| {
        vec![Diagnostic {
            file: dir_name.clone(),
            line: None,
            column: None,
            message: format!("cannot read the manifest directory: {e}"),
            hint: None,
        }]
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_manifest_file(p))
        .collect();
    files.sort();

    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for path in &files {
        match load_file(dir, path) {
            Ok(m) => manifests.push(m),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    ManifestSet::new(manifests)
}

fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml")) && path.is_file()
}

fn load_file(dir: &Path, path: &Path) -> Result<Manifest, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let fail = |message: String| {
        vec![Diagnostic {
            file: file.clone(),
            line: None,
            column: None,
            message,
            hint: None,
        }]
    };
    let text = read_capped(path, MAX_MANIFEST_BYTES as u64 + 1)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = String::from_utf8(text).map_err(|_| fail("not valid UTF-8".into()))?;
    parse(&file, &text, &mut |source| read_source(dir, source))
}

fn read_source(dir: &Path, source: &str) -> Result<Vec<u8>, String> {
    let rel = Path::new(source);
    // A source names a file of the manifest repository, never one elsewhere on the controller.
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("must be a relative path inside the manifest folder".into());
    }
    let bytes = read_capped(&dir.join(rel), MAX_SOURCE_BYTES + 1).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(format!("larger than {} MiB", MAX_SOURCE_BYTES >> 20));
    }
    Ok(bytes)
}

fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)?.take(cap).read_to_end(&mut bytes)?;
    Ok(bytes)
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
