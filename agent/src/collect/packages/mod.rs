//! Installed packages, read from the package managers' own databases under the root. Only
//! the packages a plan names are reported.
//!
//! A database caught in the middle of a transaction must never make a package look absent:
//! `read` says `Unsettled` then, and the caller reads again a little later.

mod dpkg;

use std::collections::{BTreeMap, HashMap};

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

/// What the controller is told about one requested package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageObservation {
    pub name: String,
    pub instances: Vec<Instance>,
    pub error: Option<String>,
}

/// Every package of every manager found under the root, by name.
#[derive(Debug, Default)]
pub struct Inventory {
    by_name: HashMap<String, Vec<Instance>>,
    /// Managers whose database exists but could not be read, with the reason.
    errors: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Settled(Inventory),
    /// Mid-transaction or mid-rewrite; read again shortly.
    Unsettled(String),
}

impl PartialEq for Inventory {
    fn eq(&self, other: &Self) -> bool {
        self.by_name == other.by_name && self.errors == other.errors
    }
}
impl Eq for Inventory {}

/// The database files to watch (as declared paths): a change to one means "read again".
pub fn databases(root: &Root) -> Vec<(&'static str, bool)> {
    let mut paths = Vec::new();
    if dpkg::present(root) {
        paths.extend(dpkg::WATCH);
    }
    paths
}

/// Reads every database found under the root.
pub fn read(root: &Root) -> Read {
    let mut inv = Inventory::default();
    if dpkg::present(root) {
        match dpkg::read(root) {
            Ok(entries) => {
                for e in entries {
                    inv.by_name.entry(e.name).or_default().push(e.instance);
                }
            }
            Err(dpkg::Error::Unsettled(why)) => return Read::Unsettled(why),
            Err(dpkg::Error::Unreadable(why)) => inv.errors.push(why),
        }
    }
    Read::Settled(inv)
}

impl Inventory {
    /// The requested packages, in request order.
    pub fn observe(&self, names: &[String]) -> Vec<PackageObservation> {
        let error = (!self.errors.is_empty()).then(|| self.errors.join("; "));
        names
            .iter()
            .map(|name| PackageObservation {
                name: name.clone(),
                instances: self.by_name.get(name).cloned().unwrap_or_default(),
                error: error.clone(),
            })
            .collect()
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

#[cfg(test)]
mod tests;
