//! Drift evaluation: desired state of a path against what the agent observed. Pure.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

pub use crate::digest::Digest;
use crate::key::{file_resource, package_resource};
use crate::manifest::{DesiredState, FileDecl, FileType, PackageDecl, Principal, Want};
use crate::version::{self, Manager};

/// What a path was found to be (`lstat`), as reported by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Absent,
    File,
    Directory,
    Symlink,
    Other,
    Unreadable,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Absent => "absent",
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
            Kind::Unreadable => "unreadable",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The observed state of one declared path. For a symlink, the attributes after its target
/// describe what it points to.
///
/// A controller holds one per observed path of every host (millions): what most paths have
/// is inline, what few have (`More`) is boxed, so that a regular file costs 88 bytes rather
/// than 192.
#[derive(Debug, Clone, Eq)]
pub struct Observed {
    pub kind: Kind,
    pub resolved_kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// User and group names are shared (`intern`): a fleet has few of them and millions of
    /// files.
    pub owner: Option<Arc<str>>,
    pub group: Option<Arc<str>>,
    pub sha256: Option<Digest>,
    /// A link's target, `contains` results, a listing, an error; `None` for nothing of these.
    pub more: Option<Box<More>>,
}

/// One shared copy of each user or group name, for what agents send and what the store reads
/// back alike. At most `MAX_NAMES` are kept, each of at most `MAX_NAME` bytes (Linux's own
/// bound on a login name), so an agent sending endless or endlessly long made-up names costs
/// only its own observations, never a set that outlives them.
pub(crate) fn intern(name: &str) -> Arc<str> {
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex, PoisonError};
    const MAX_NAMES: usize = 10_000;
    const MAX_NAME: usize = 256;
    static NAMES: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Default::default);
    if name.len() > MAX_NAME {
        return name.into();
    }
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = names.get(name) {
        return shared.clone();
    }
    let new: Arc<str> = name.into();
    if names.len() < MAX_NAMES {
        names.insert(new.clone());
    }
    new
}

/// What few observed paths have. `More::default()` is nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct More {
    pub link_target: Option<String>,
    pub contains: Vec<bool>,
    /// A listed directory's undeclared entries: the first `MAX_LISTED_ENTRIES` names...
    pub entries: Vec<String>,
    /// ...and how many there are (older stores lack it: then `entries` is all of them).
    pub entries_total: u64,
    pub error: Option<String>,
}

static NOTHING_MORE: More = More {
    link_target: None,
    contains: Vec::new(),
    entries: Vec::new(),
    entries_total: 0,
    error: None,
};

impl More {
    /// Boxed, or `None` if it holds nothing.
    pub fn boxed(self) -> Option<Box<More>> {
        (self != NOTHING_MORE).then(|| Box::new(self))
    }
}

impl Observed {
    /// What else was observed (nothing, for most paths).
    pub fn more(&self) -> &More {
        self.more.as_deref().unwrap_or(&NOTHING_MORE)
    }

    pub fn more_mut(&mut self) -> &mut More {
        self.more.get_or_insert_default()
    }

    pub fn link_target(&self) -> Option<&str> {
        self.more().link_target.as_deref()
    }

    pub fn error(&self) -> Option<&str> {
        self.more().error.as_deref()
    }
}

// Equal whether "nothing more" is `None` or an empty box.
impl PartialEq for Observed {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.resolved_kind == other.resolved_kind
            && self.mode == other.mode
            && self.uid == other.uid
            && self.gid == other.gid
            && self.owner == other.owner
            && self.group == other.group
            && self.sha256 == other.sha256
            && self.more() == other.more()
    }
}

/// How an agent's error begins when it read a file but cannot vouch for the answer.
pub const UNVERIFIABLE: &str = "unverifiable:";

/// Above this many undeclared entries, an exclusive directory is one drift item with their
/// count and a sample, not one item per entry: what a single host's directory can cost the
/// fleet (evaluation, the store, every follower) stays bounded.
pub const MAX_UNDECLARED_ITEMS: usize = plumb_proto::MAX_LISTED_ENTRIES;
/// Names shown in that one item.
const UNDECLARED_SAMPLE: usize = 10;
/// Above this many files of one package that differ from the package manager's record, they
/// are one drift item with their count and a sample.
pub const MAX_PACKAGE_FILE_ITEMS: usize = 1000;

/// One installed instance of a package, as reported by the agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    pub manager: Manager,
    pub arch: String,
    pub version: String,
    /// "installed", or a transitional state the package manager left it in.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObservedPackage {
    pub instances: Vec<Installed>,
    /// The package databases could not be read.
    pub error: Option<String>,
    /// Owned files that differ from the package manager's record (when verified).
    pub problems: Vec<FileProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileProblem {
    pub path: String,
    pub expected: String,
    pub actual: String,
}

/// What the agent reported for one key of the desired state (a path or `package:NAME`).
/// A package's observation is boxed: files are the many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    File(Observed),
    Package(Box<ObservedPackage>),
}

const _: () = assert!(std::mem::size_of::<Observation>() <= 88);

impl Observation {
    /// A path the host does not have: what an agent reports of one, and what the controller
    /// records for a baseline glob's match a host's whole snapshot did not hold.
    pub fn absent() -> Self {
        Observation::File(Observed {
            kind: Kind::Absent,
            resolved_kind: Kind::Absent,
            mode: 0,
            uid: 0,
            gid: 0,
            owner: None,
            group: None,
            sha256: None,
            more: None,
        })
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Observation::File(o) if o.kind == Kind::Absent)
    }
}

/// One way in which a host differs from its declared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftItem {
    /// `file:/etc/x`
    pub resource: String,
    pub attribute: String,
    pub expected: String,
    pub actual: String,
    pub declared_at: String,
}

/// The drift of one observation against the desired state, for the declared path or package
/// `name` (which of the two, the observation says); none when it is not declared.
pub fn evaluate_observation(
    desired: &DesiredState,
    name: &str,
    observed: &Observation,
) -> Vec<DriftItem> {
    match observed {
        Observation::File(o) => desired
            .files
            .get(name)
            .map(|decl| evaluate(decl, o, desired))
            .unwrap_or_default(),
        Observation::Package(o) => desired
            .packages
            .get(name)
            .map(|decl| evaluate_package(decl, o))
            .unwrap_or_default(),
    }
}

/// Evaluates one declared path. `desired` is the host's whole desired state, needed to tell
/// declared from undeclared entries of an exclusive directory.
pub fn evaluate(decl: &FileDecl, observed: &Observed, desired: &DesiredState) -> Vec<DriftItem> {
    let mut out = Vec::new();
    // Spelled only for drift: most paths evaluated have none.
    let mut push = |attribute: &str, expected: String, actual: String| {
        out.push(DriftItem {
            resource: file_resource(&decl.path),
            attribute: attribute.to_owned(),
            expected,
            actual,
            declared_at: decl.declared_at.to_string(),
        });
    };
    let spec = &decl.spec;
    let unreadable = |o: &Observed| match o.error() {
        // The agent read it, but cannot vouch for what was asked (a line too long to match).
        Some(e) if e.starts_with(UNVERIFIABLE) => e.to_owned(),
        e => format!("unreadable: {}", e.unwrap_or("unknown error")),
    };

    if observed.kind == Kind::Unreadable {
        push("readable", "readable".into(), unreadable(observed));
        return out;
    }
    // A symlink whose target cannot be reached (a loop, a permission): what it points to is
    // unknown, and saying only "unreadable" as its type hid why.
    if observed.kind == Kind::Symlink
        && observed.resolved_kind == Kind::Unreadable
        && !spec.absent
        && spec.kind != Some(FileType::Symlink)
    {
        push("readable", "readable".into(), unreadable(observed));
        return out;
    }
    if spec.absent {
        if observed.kind != Kind::Absent {
            push("present", "absent".into(), observed.kind.to_string());
        }
        return out;
    }
    if observed.kind == Kind::Absent {
        push("present", "present".into(), "absent".into());
        return out;
    }
    if let Some(want) = spec.kind {
        let actual = if want == FileType::Symlink {
            observed.kind
        } else {
            observed.resolved_kind
        };
        if actual.as_str() != want.as_str() {
            push("type", want.as_str().into(), actual.to_string());
            return out;
        }
    }
    if let Some(target) = &spec.target {
        let actual = observed.link_target().unwrap_or_default().to_owned();
        if &actual != target {
            push("target", target.clone(), actual);
        }
    }
    if let Some(mode) = spec.mode {
        let actual = observed.mode & 0o7777;
        if actual != mode.0 {
            push("mode", mode.to_string(), format!("{actual:04o}"));
        }
    }
    if let Some(owner) = &spec.owner
        && let Some(actual) = principal_drift(owner, observed.uid, observed.owner.as_deref())
    {
        push("owner", owner.to_string(), actual);
    }
    if let Some(group) = &spec.group
        && let Some(actual) = principal_drift(group, observed.gid, observed.group.as_deref())
    {
        push("group", group.to_string(), actual);
    }
    if let Some(want) = &spec.sha256 {
        match &observed.sha256 {
            Some(actual) if actual == want => {}
            Some(actual) => push("sha256", want.to_hex(), actual.to_hex()),
            None => push("sha256", want.to_hex(), unreadable(observed)),
        }
    }
    for (i, pattern) in spec.contains.iter().enumerate() {
        let attribute = format!("contains:{}", pattern.text);
        let expected = if pattern.negated { "absent" } else { "present" };
        match observed.more().contains.get(i) {
            // The agent could not read the content: say so rather than guess.
            None => push(&attribute, expected.into(), unreadable(observed)),
            Some(&matched) if matched == pattern.negated => push(
                &attribute,
                expected.into(),
                if matched { "present" } else { "absent" }.into(),
            ),
            Some(_) => {}
        }
    }
    if spec.exclusive && observed.resolved_kind == Kind::Directory {
        if observed.error().is_some() {
            // The entries could not be listed: what is in there is unknown, never "nothing".
            push("entries", "listed".into(), unreadable(observed));
        } else {
            out.extend(undeclared_entries(decl, observed, desired));
        }
    }
    out
}

/// The entries of an exclusive directory that no declaration covers: one item each, or one
/// item for all of them when there are more than `MAX_UNDECLARED_ITEMS`.
fn undeclared_entries(
    decl: &FileDecl,
    observed: &Observed,
    desired: &DesiredState,
) -> Vec<DriftItem> {
    let below = format!("{}/", decl.path);
    // Paths a baseline compares are declared too.
    let compared = desired
        .baselines
        .range((
            std::ops::Bound::Excluded(crate::key::Key::file(&below)),
            std::ops::Bound::Unbounded,
        ))
        .map_while(|(k, _)| match k {
            crate::key::Key::File(path) => path.strip_prefix(below.as_str()),
            crate::key::Key::Package(_) => None,
        });
    let declared: BTreeSet<&str> = desired
        .files
        .range::<str, _>((
            std::ops::Bound::Excluded(below.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .map_while(|(p, _)| p.strip_prefix(below.as_str()))
        .chain(compared)
        // An entry leading to a declared path deeper down is declared too.
        .filter_map(|rest| rest.split('/').next())
        .collect();
    // An agent from before ignore patterns lists ignored entries too: they are dropped here
    // (though its count of unlisted ones may still hold some).
    let ignored = |name: &str| {
        decl.spec.ignore.iter().any(|g| {
            if g.contains('/') {
                plumb_common::glob::path_matches(g, &format!("{}/{name}", decl.path))
            } else {
                plumb_common::glob::name_matches(g, name)
            }
        })
    };
    let more = observed.more();
    let listed: Vec<&String> = more
        .entries
        .iter()
        .filter(|e| !declared.contains(e.as_str()) && !ignored(e))
        .collect();
    // The agent lists only what its plan does not declare, at most a fixed number of names;
    // the rest it counts.
    let unlisted = more.entries_total.saturating_sub(more.entries.len() as u64);
    let count = listed.len() as u64 + unlisted;
    let declared_at = decl.declared_at.to_string();
    let expected = format!("absent (exclusive directory {})", decl.path);
    if unlisted == 0 && listed.len() <= MAX_UNDECLARED_ITEMS {
        return listed
            .into_iter()
            .map(|entry| DriftItem {
                resource: file_resource(&format!("{}/{entry}", decl.path)),
                attribute: "undeclared".into(),
                expected: expected.clone(),
                actual: "present".into(),
                declared_at: declared_at.clone(),
            })
            .collect();
    }
    let sample: Vec<&str> = listed
        .iter()
        .take(UNDECLARED_SAMPLE)
        .map(|s| s.as_str())
        .collect();
    vec![DriftItem {
        resource: file_resource(&decl.path),
        attribute: "undeclared".into(),
        expected: format!("no undeclared entries (exclusive directory {})", decl.path),
        actual: format!("{count} undeclared entries, e.g. {}, …", sample.join(", ")),
        declared_at,
    }]
}

/// Evaluates one declared package: one `version` item when it is not as wanted, saying the
/// constraint (or present/absent) and what is installed; with `verify_files`, one
/// `file:PATH` item per owned file that differs from the package manager's record.
pub fn evaluate_package(decl: &PackageDecl, observed: &ObservedPackage) -> Vec<DriftItem> {
    let mut items = package_version(decl, observed);
    if decl.spec.verify_files {
        let resource = package_resource(&decl.name);
        let declared_at = decl.declared_at.to_string();
        if observed.problems.len() > MAX_PACKAGE_FILE_ITEMS {
            let sample: Vec<&str> = observed
                .problems
                .iter()
                .take(UNDECLARED_SAMPLE)
                .map(|p| p.path.as_str())
                .collect();
            items.push(DriftItem {
                resource,
                attribute: "files".into(),
                expected: "as the package manager recorded them".into(),
                actual: format!(
                    "{} files differ, e.g. {}, …",
                    observed.problems.len(),
                    sample.join(", ")
                ),
                declared_at,
            });
            return items;
        }
        // A file the package owns differs from what the installed version shipped.
        items.extend(observed.problems.iter().map(|p| DriftItem {
            resource: resource.clone(),
            attribute: format!("file:{}", p.path),
            expected: p.expected.clone(),
            actual: p.actual.clone(),
            declared_at: declared_at.clone(),
        }));
    }
    items
}

fn package_version(decl: &PackageDecl, observed: &ObservedPackage) -> Vec<DriftItem> {
    let spec = &decl.spec;
    let item = |actual: String| {
        vec![DriftItem {
            resource: package_resource(&decl.name),
            attribute: "version".into(),
            expected: spec.want.to_string(),
            actual,
            declared_at: decl.declared_at.to_string(),
        }]
    };
    if let Some(error) = &observed.error {
        return item(format!("unknown: {error}"));
    }
    let matching: Vec<&Installed> = observed
        .instances
        .iter()
        .filter(|i| spec.manager.is_none_or(|m| m == i.manager))
        .filter(|i| spec.arch.as_ref().is_none_or(|a| a == &i.arch))
        .collect();
    let describe = |list: &[&Installed]| -> String {
        list.iter()
            .map(|i| {
                let mut s = i.version.clone();
                if observed.instances.len() > 1 && !i.arch.is_empty() {
                    s = format!("{s} ({})", i.arch);
                }
                if i.state != "installed" {
                    s = format!("{s} ({})", i.state);
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &spec.want {
        Want::Absent if matching.is_empty() => Vec::new(),
        Want::Absent => item(describe(&matching)),
        _ if matching.is_empty() => item("absent".into()),
        Want::Present => Vec::new(),
        Want::Versions(constraints) => {
            // Any instance that is properly installed at a satisfying version will do.
            let mut errors = Vec::new();
            for i in matching.iter().filter(|i| i.state == "installed") {
                match version::satisfies(i.manager, &i.version, constraints) {
                    Ok(true) => return Vec::new(),
                    Ok(false) => {}
                    Err(e) => errors.push(e),
                }
            }
            match errors.first() {
                Some(e) if errors.len() == matching.len() => {
                    item(format!("{} (cannot compare: {e})", describe(&matching)))
                }
                _ => item(describe(&matching)),
            }
        }
    }
}

/// `None` when the declared principal matches; otherwise how the actual one reads.
fn principal_drift(want: &Principal, id: u32, name: Option<&str>) -> Option<String> {
    match want {
        Principal::Id(w) if *w == id => None,
        Principal::Id(_) => Some(id.to_string()),
        Principal::Name(w) if name == Some(w.as_str()) => None,
        Principal::Name(_) => Some(name.map_or_else(|| id.to_string(), str::to_owned)),
    }
}

#[cfg(test)]
mod tests;
