//! Manifests: desired state in YAML, parsed and validated into types the rest of the
//! controller can rely on, and selected per host. Pure: reading files is `load`'s job, and
//! the content of `source:` files is handed in by the caller.

mod consistency;
pub(crate) mod glob;
pub mod load;
mod locate;
mod raw;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

pub use glob::Glob;
pub use raw::{FileType, LinePattern, Mode, Principal, Want};

use crate::digest::Digest;
use crate::key::Key;
use crate::problem::Problem;
use crate::version::Manager;

pub use validate::parse;

/// Manifests larger than this are refused: desired state is small, a huge file is a mistake
/// or an attack.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// A problem with a manifest, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    fn at(file: &str, pos: Option<locate::Pos>, problem: impl Into<Problem>) -> Self {
        let Problem { message, hint } = problem.into();
        Self {
            file: file.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message,
            hint,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Where a declaration was written: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Desired state of one path. `kind` is the declared type, or the one implied by the other
/// attributes (content implies a file, `target` a symlink, `exclusive` a directory).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSpec {
    pub absent: bool,
    pub kind: Option<FileType>,
    pub sha256: Option<Digest>,
    pub mode: Option<Mode>,
    pub owner: Option<Principal>,
    pub group: Option<Principal>,
    pub target: Option<String>,
    pub contains: Vec<LinePattern>,
    pub exclusive: bool,
    /// Operators may see a diff of desired against actual content (`plumb diff`).
    pub diff: bool,
    /// Content must never leave the host, not even for a diff.
    pub sensitive: bool,
    /// The declared content, kept only when a diff is allowed.
    /// On an exclusive directory: what of its entries is never drift, its own names and the
    /// manifest's patterns, each a name glob (`*.swp`) or an absolute path glob
    /// (`/etc/**/*.dpkg-*`). A declared path is never ignored.
    pub ignore: Vec<String>,
    pub desired_content: Option<Arc<Vec<u8>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileDecl {
    pub path: String,
    pub spec: FileSpec,
    pub declared_at: Location,
}

/// Desired state of one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub want: Want,
    /// Only instances from this manager count; any manager when `None`.
    pub manager: Option<Manager>,
    /// Only instances of this architecture count; any when `None`.
    pub arch: Option<String>,
    /// Check every file the package owns against the package manager's record.
    pub verify_files: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageDecl {
    pub name: String,
    pub spec: PackageSpec,
    pub declared_at: Location,
}

/// Hosts that should be alike (`baseline:`): paths and packages compared among the hosts a
/// manifest selects, each host against the majority or against one named host. Nothing is
/// declared of their values; a path or package declared with values for a host is judged by
/// those instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// The manifest declaring it: the hosts it selects are the group.
    pub manifest: String,
    /// Every host is compared with this one; with the majority when `None`.
    pub reference: Option<String>,
    pub files: Vec<String>,
    pub packages: Vec<String>,
    /// What the manifest's `ignore:` leaves out of its globs' matches (per-host files: the
    /// host name, SSH host keys, machine-id).
    pub ignore: Vec<String>,
    pub declared_at: Location,
}

impl Baseline {
    /// What it compares by name, as keys (its globs' matches are found on the hosts).
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.files
            .iter()
            .filter(|p| !is_glob(p))
            .map(|p| Key::file(p))
            .chain(self.packages.iter().map(|n| Key::package(n)))
    }

    /// Its paths that are globs (`/etc/nginx/**`): every match on a host is compared.
    pub fn globs(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(String::as_str).filter(|p| is_glob(p))
    }
}

/// Whether a path as written is a glob.
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?'])
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    /// As given to the parser, e.g. `manifests/web.yaml`.
    pub file: String,
    pub hosts: Vec<Glob>,
    pub labels: BTreeMap<String, String>,
    /// Globs on the host's facts (`os`, `os_version`, `arch`); all must match.
    pub facts: BTreeMap<String, Glob>,
    pub files: Vec<FileDecl>,
    pub packages: Vec<PackageDecl>,
    pub baseline: Option<Arc<Baseline>>,
}

/// What selection looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIdentity {
    pub host_id: String,
    pub labels: BTreeMap<String, String>,
    /// `os`, `os_version`, `arch`, as the host reported them.
    pub facts: BTreeMap<String, String>,
}

impl Manifest {
    /// A manifest selects a host when one of its globs matches the host id (if it has globs)
    /// and every label it names has the given value on the host.
    pub fn selects(&self, host: &HostIdentity) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|g| g.matches(&host.host_id)))
            && self
                .labels
                .iter()
                .all(|(k, v)| host.labels.get(k) == Some(v))
            && self
                .facts
                .iter()
                .all(|(k, g)| host.facts.get(k).is_some_and(|v| g.matches(v)))
    }

    /// Whether some host could be selected by both (conservative: true unless provably not).
    fn may_overlap(&self, other: &Manifest) -> bool {
        let labels_conflict = self
            .labels
            .iter()
            .any(|(k, v)| other.labels.get(k).is_some_and(|w| w != v));
        let facts_conflict = self
            .facts
            .iter()
            .any(|(k, g)| other.facts.get(k).is_some_and(|h| !g.intersects(h)));
        if labels_conflict || facts_conflict {
            return false;
        }
        if self.hosts.is_empty() || other.hosts.is_empty() {
            return true;
        }
        self.hosts
            .iter()
            .any(|a| other.hosts.iter().any(|b| a.intersects(b)))
    }
}

/// A consistent set of manifests: unique names, and no path declared differently by two
/// manifests that may select the same host.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    manifests: Vec<Manifest>,
    /// Desired states already built, by the manifests that select a host: hosts selected
    /// alike share one (at 10,000 hosts, one copy instead of 10,000).
    desired: Arc<std::sync::Mutex<HashMap<Vec<usize>, Arc<DesiredState>>>>,
    /// A digest of everything the set was loaded from (file names, manifests, sources), when
    /// it was loaded from a directory: equal fingerprints, the same set.
    fingerprint: Option<[u8; 32]>,
}

/// Everything declared for one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub files: BTreeMap<String, FileDecl>,
    pub packages: BTreeMap<String, PackageDecl>,
    /// Names of the manifests that selected the host.
    pub manifests: Vec<String>,
    /// What is compared with the host's peers rather than declared: each key (never one
    /// declared with values) and the baseline comparing it.
    pub baselines: BTreeMap<Key, Arc<Baseline>>,
    /// Baselines' globs, each with its baseline: every path they match on the host is
    /// compared (but one declared with values, or named by a baseline).
    pub baseline_globs: Vec<(String, Arc<Baseline>)>,
    /// `keys()` sorted, made on first use (see `key_list`).
    key_list: KeyList,
}

/// A desired state's keys in a list, once made: derived from the state, so never compared and
/// not carried over by a clone (which may then be changed).
#[derive(Default)]
struct KeyList(std::sync::OnceLock<Arc<[Key]>>);

impl Clone for KeyList {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for KeyList {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for KeyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyList")
    }
}

impl DesiredState {
    /// Every key of `keys()`, sorted, once each; one list for every host this state is for
    /// (a controller keeps each host's observations in that order).
    pub fn key_list(&self) -> Arc<[Key]> {
        self.key_list
            .0
            .get_or_init(|| {
                let mut keys: Vec<Key> = self.keys().collect();
                keys.sort();
                keys.dedup();
                keys.into()
            })
            .clone()
    }

    /// Every key observations and drift are filed under: declared paths, then packages, then
    /// what baselines compare.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.files
            .keys()
            .map(|p| Key::file(p))
            .chain(self.packages.keys().map(|n| Key::package(n)))
            .chain(self.baselines.keys().cloned())
    }

    pub fn contains_key(&self, key: &Key) -> bool {
        let declared = match key {
            Key::File(path) => self.files.contains_key(&**path),
            Key::Package(name) => self.packages.contains_key(&**name),
        };
        declared || self.compared(key).is_some()
    }

    /// Whether anything is compared with peers for this host.
    pub fn has_baselines(&self) -> bool {
        !self.baselines.is_empty() || !self.baseline_globs.is_empty()
    }

    /// The baseline that compares `key` for this host, by name or by a glob; none for a key
    /// declared with values.
    pub fn compared(&self, key: &Key) -> Option<&Arc<Baseline>> {
        if !self.has_baselines() {
            return None; // most hosts: every observation asks this
        }
        if let Some(b) = self.baselines.get(key) {
            return Some(b);
        }
        match key {
            Key::File(path) if !self.files.contains_key(&**path) => self
                .baseline_globs
                .iter()
                .find(|(g, _)| plumb_common::glob::path_matches(g, path))
                .map(|(_, b)| b),
            _ => None,
        }
    }
}

impl ManifestSet {
    pub fn new(mut manifests: Vec<Manifest>) -> Result<Self, Vec<Diagnostic>> {
        manifests.sort_by(|a, b| a.file.cmp(&b.file));
        let errors = consistency::check(&manifests);
        if errors.is_empty() {
            Ok(Self {
                manifests,
                desired: Default::default(),
                fingerprint: None,
            })
        } else {
            Err(errors)
        }
    }

    pub fn manifests(&self) -> &[Manifest] {
        &self.manifests
    }

    pub(crate) fn with_fingerprint(mut self, fingerprint: [u8; 32]) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// Whether both sets were loaded from exactly the same files (unknown: not the same).
    pub fn same_as(&self, other: &ManifestSet) -> bool {
        self.fingerprint.is_some() && self.fingerprint == other.fingerprint
    }

    pub fn desired_for(&self, host: &HostIdentity) -> Arc<DesiredState> {
        let selected: Vec<usize> = (0..self.manifests.len())
            .filter(|&i| self.manifests[i].selects(host))
            .collect();
        let mut cache = self
            .desired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(selected)
            .or_insert_with_key(|selected| Arc::new(self.build_desired(selected)))
            .clone()
    }

    fn build_desired(&self, selected: &[usize]) -> DesiredState {
        let mut desired = DesiredState::default();
        for m in selected.iter().map(|&i| &self.manifests[i]) {
            desired.manifests.push(m.name.clone());
            // Identical duplicates are allowed (checked in `new`); the first declaration wins.
            for decl in &m.files {
                desired
                    .files
                    .entry(decl.path.clone())
                    .or_insert_with(|| decl.clone());
            }
            for decl in &m.packages {
                desired
                    .packages
                    .entry(decl.name.clone())
                    .or_insert_with(|| decl.clone());
            }
            // Two baselines never compare one key for one host (checked in `new`).
            if let Some(baseline) = &m.baseline {
                for key in baseline.keys() {
                    desired.baselines.insert(key, baseline.clone());
                }
                for g in baseline.globs() {
                    desired
                        .baseline_globs
                        .push((g.to_owned(), baseline.clone()));
                }
            }
        }
        // A value declared for the host is what it is judged by.
        let declared: Vec<Key> = desired
            .baselines
            .keys()
            .filter(|k| match k {
                Key::File(path) => desired.files.contains_key(&**path),
                Key::Package(name) => desired.packages.contains_key(&**name),
            })
            .cloned()
            .collect();
        for key in declared {
            desired.baselines.remove(&key);
        }
        desired
    }
}

#[cfg(test)]
mod tests;
