//! What an agent must observe to evaluate a host's desired state. Pure.

use crate::key::Key;
use crate::manifest::{DesiredState, FileType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRequest {
    pub path: String,
    pub hash: bool,
    /// (pattern, is_regex) for each `contains` entry, in declaration order.
    pub contains: Vec<(String, bool)>,
    pub list_entries: bool,
    /// The manifest allows a diff: the agent may send this file's content when asked.
    pub allow_content: bool,
    /// The manifest marks it sensitive: who changed it is sent without a command line.
    pub sensitive: bool,
    /// Of a listed directory: entries the agent neither lists nor counts; of a glob, the
    /// matches it leaves out.
    pub ignore: Vec<String>,
    /// `path` is a glob: the agent observes each path it matches (a baseline's).
    pub expand: bool,
}

/// The packages to report: (name, whether to verify its files).
pub fn packages(desired: &DesiredState) -> Vec<(String, bool)> {
    let compared = desired.baselines.keys().filter_map(|k| match k {
        Key::Package(name) => Some((name.to_string(), false)),
        Key::File(_) => None,
    });
    desired
        .packages
        .values()
        .map(|p| (p.name.clone(), p.spec.verify_files))
        .chain(compared)
        .collect()
}

/// One request per declared path, asking only for what the declaration needs: content is
/// hashed only where a digest is declared, entries listed only for exclusive directories; and
/// one per path a baseline compares, hashed (its digest is compared with the peers').
pub fn requests(desired: &DesiredState) -> Vec<PathRequest> {
    let compared = desired.baselines.keys().filter_map(|k| match k {
        Key::File(path) => Some(PathRequest {
            path: path.to_string(),
            hash: true,
            contains: Vec::new(),
            list_entries: false,
            allow_content: false,
            sensitive: false,
            ignore: Vec::new(),
            expand: false,
        }),
        Key::Package(_) => None,
    });
    let globs = desired.baseline_globs.iter().map(|(g, b)| PathRequest {
        path: g.clone(),
        hash: true,
        contains: Vec::new(),
        list_entries: false,
        allow_content: false,
        sensitive: false,
        ignore: b.ignore.clone(),
        expand: true,
    });
    desired
        .files
        .values()
        .map(|decl| {
            let spec = &decl.spec;
            PathRequest {
                path: decl.path.clone(),
                hash: spec.sha256.is_some(),
                contains: spec
                    .contains
                    .iter()
                    .map(|p| (p.pattern.clone(), p.regex))
                    .collect(),
                list_entries: spec.exclusive && spec.kind == Some(FileType::Directory),
                allow_content: spec.diff && !spec.sensitive,
                sensitive: spec.sensitive,
                ignore: spec.ignore.clone(),
                expand: false,
            }
        })
        .chain(compared)
        .chain(globs)
        .collect()
}
