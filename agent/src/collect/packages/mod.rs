//! Installed packages, read from the package managers' own databases under the root. Only
//! the packages a plan names are reported, and, where asked, their files are checked against
//! the package manager's record (like `debsums`).
//!
//! A database caught in the middle of a transaction must never make a package look absent:
//! `read` says `Unsettled` then, and the caller reads again a little later.

mod apk;
pub(crate) mod changed_by;
mod dnf_history;
mod dpkg;
pub mod history;
mod pacman;
mod rpm;
mod verify;

use std::collections::{BTreeMap, HashMap};

use crate::path_set::{PathList, PathSet};
use crate::root::Root;

/// One installed instance of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub manager: &'static str,
    pub arch: String,
    pub version: String,
    /// "installed", or the manager's word for a transitional state.
    pub state: String,
}

/// What the plan asks about one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRequest {
    pub name: String,
    pub verify_files: bool,
}

/// An owned file that differs from the package manager's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub path: String,
    pub expected: String,
    pub actual: String,
}

/// What the controller is told about one requested package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageObservation {
    pub name: String,
    pub instances: Vec<Instance>,
    pub error: Option<String>,
    pub problems: Vec<FileProblem>,
}

/// Every package of every manager found under the root, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    by_name: HashMap<String, Vec<Instance>>,
    /// dpkg's record of configuration files, by (name, arch).
    conffiles: HashMap<(String, String), Vec<(String, String)>>,
    /// dpkg's diversions: files installed away from their path (`/bin/sh` of dash, perf).
    diversions: dpkg::Diversions,
    /// Managers whose database exists but could not be read, with the reason.
    errors: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Settled(Inventory),
    /// Mid-transaction or mid-rewrite; read again shortly.
    Unsettled(String),
}

/// The database files to watch (as declared paths): a change to one means "read again".
pub fn databases(root: &Root) -> Vec<(&'static str, bool)> {
    let mut paths = Vec::new();
    if dpkg::present(root) {
        paths.extend(dpkg::WATCH);
    }
    if apk::present(root) {
        paths.extend(apk::WATCH);
    }
    if pacman::present(root) {
        paths.extend(pacman::WATCH);
    }
    paths.extend(rpm::watch(root));
    paths
}

/// Reads every database found under the root.
pub fn read(root: &Root) -> Read {
    let mut inv = Inventory::default();
    if dpkg::present(root) {
        match dpkg::read(root) {
            Ok(entries) => {
                for e in entries {
                    inv.conffiles
                        .insert((e.name.clone(), e.instance.arch.clone()), e.conffiles);
                    inv.by_name.entry(e.name).or_default().push(e.instance);
                }
            }
            Err(Error::Unsettled(why)) => return Read::Unsettled(why),
            Err(Error::Unreadable(why)) => inv.errors.push(why),
        }
        match dpkg::Diversions::read(root) {
            Ok(d) => inv.diversions = d,
            Err(Error::Unsettled(why)) => return Read::Unsettled(why),
            Err(Error::Unreadable(why)) => inv.errors.push(why),
        }
    }
    let others: [(bool, ReadFn); 3] = [
        (apk::present(root), apk::read),
        (pacman::present(root), pacman::read),
        (rpm::present(root), rpm::read),
    ];
    for (present, read) in others {
        if !present {
            continue;
        }
        match read(root) {
            Ok(list) => {
                for (name, instance) in list {
                    inv.by_name.entry(name).or_default().push(instance);
                }
            }
            Err(Error::Unsettled(why)) => return Read::Unsettled(why),
            Err(Error::Unreadable(why)) => inv.errors.push(why),
        }
    }
    Read::Settled(inv)
}

impl Inventory {
    /// The requested packages, in request order; files are checked where asked (blocking IO).
    pub fn observe(&self, root: &Root, requests: &[PackageRequest]) -> Vec<PackageObservation> {
        self.observe_owned(root, requests).0
    }

    /// Like `observe`, and also every file `verify_files` checked (to watch them), from the
    /// same reading of the package managers' records. Packages are checked side by side on
    /// `--scan-threads` threads, each taking the next package and reading its files one after
    /// another: no thread waits for another between packages.
    pub fn observe_owned(
        &self,
        root: &Root,
        requests: &[PackageRequest],
    ) -> (Vec<PackageObservation>, PathSet) {
        let error = (!self.errors.is_empty()).then(|| self.errors.join("; "));
        let observed = crate::collect::parallel::map_ordered(
            crate::collect::files::scan_threads(),
            requests,
            |req| Some(self.observe_one(root, req, &error)),
        );
        let mut owned = PathList::default();
        let observations = observed
            .into_iter()
            .map(|(observation, files)| {
                files.iter().for_each(|f| owned.push(f));
                observation
            })
            .collect();
        (observations, PathSet::new(owned.iter()))
    }

    /// One requested package, and the files it owns where they were checked.
    fn observe_one(
        &self,
        root: &Root,
        req: &PackageRequest,
        error: &Option<String>,
    ) -> (PackageObservation, PathList) {
        let instances = self.by_name.get(&req.name).cloned().unwrap_or_default();
        let mut problems = Vec::new();
        let mut owned = PathList::default();
        for i in instances.iter().filter(|_| req.verify_files) {
            match self.verify(root, &req.name, i) {
                Ok((found, files)) => {
                    problems.extend(found);
                    files.iter().for_each(|f| owned.push(f));
                }
                Err(e) => problems.push(FileProblem {
                    path: format!("(file list of {} {})", req.name, i.version),
                    expected: "readable".into(),
                    actual: format!("unreadable: {e}"),
                }),
            }
        }
        let observation = PackageObservation {
            name: req.name.clone(),
            instances,
            error: error.clone(),
            problems,
        };
        (observation, owned)
    }

    /// Owned files of one instance that differ from the package manager's record, and the
    /// paths of all its owned files.
    fn verify(
        &self,
        root: &Root,
        name: &str,
        instance: &Instance,
    ) -> Result<(Vec<FileProblem>, Vec<String>), String> {
        match instance.manager {
            "rpm" => Ok((rpm::verify(root, name)?, rpm::files(root, name))),
            _ => {
                let files = self.owned(root, name, instance)?;
                let problems = verify::check(root, &files);
                Ok((problems, files.into_iter().map(|(path, _)| path).collect()))
            }
        }
    }

    /// (path, md5) of what the package manager recorded for one instance.
    fn owned(
        &self,
        root: &Root,
        name: &str,
        instance: &Instance,
    ) -> Result<Vec<(String, String)>, String> {
        match instance.manager {
            "dpkg" => {
                let mut files = dpkg::md5sums(root, name, &instance.arch)?;
                files.extend(
                    self.conffiles
                        .get(&(name.to_owned(), instance.arch.clone()))
                        .cloned()
                        .unwrap_or_default(),
                );
                // As dpkg and debsums do: a diverted file is checked where dpkg put it.
                Ok(files
                    .into_iter()
                    .map(|(path, md5)| (self.diversions.locate(name, path), md5))
                    .collect())
            }
            other => Err(format!("verifying {other} packages is not supported yet")),
        }
    }

    /// Requested packages in a transitional state, as `name (state)`.
    pub fn transitional(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .flat_map(|n| {
                self.by_name
                    .get(n)
                    .into_iter()
                    .flatten()
                    .filter(|i| i.state != "installed")
                    .map(move |i| format!("{n} ({})", i.state))
            })
            .collect()
    }

    /// Every package, for capture.
    pub fn all(&self) -> BTreeMap<&str, &[Instance]> {
        self.by_name
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect()
    }
}

/// Reads one manager's database as (package name, instance) pairs.
type ReadFn = fn(&Root) -> Result<Vec<(String, Instance)>, Error>;

/// Why a database could not be read.
pub(super) enum Error {
    /// Mid-transaction or mid-rewrite: read again shortly.
    Unsettled(String),
    /// Present but not readable (permissions, IO): reported with the packages.
    Unreadable(String),
}

pub(super) fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
