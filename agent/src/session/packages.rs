//! The packages half of a session: which packages the plan names, which files to watch for
//! them (the databases, and the owned files of packages whose files are verified), and when a
//! read of the databases can be trusted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::collect::files::Requests;
use crate::collect::packages::{self, PackageObservation, PackageRequest, Read};
use crate::path_set::PathSet;
use crate::root::Root;

/// How soon to read again when a database is mid-transaction.
const RETRY: Duration = Duration::from_millis(250);
/// How long a transaction may look unfinished before the agent reports what it sees (a dpkg
/// that crashed leaves packages half-configured for good; that is worth knowing too).
const GRACE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Packages {
    requests: Vec<PackageRequest>,
    /// Declared paths of the database files and folders being watched.
    databases: Vec<(&'static str, bool)>,
    /// Files owned by packages whose files are verified; watched like declared files (the
    /// watcher holds the same set).
    owned: Arc<PathSet>,
    last_sent: HashMap<String, PackageObservation>,
    /// A database or an owned file changed (or a rescan is due): read again.
    pub(super) dirty: bool,
    /// The set of paths to watch changed: the session must re-arm.
    pub(super) rewatch: bool,
    unsettled_since: Option<Instant>,
    pub(super) retry_at: Option<Instant>,
}

impl Packages {
    pub(super) fn set(&mut self, requests: Vec<PackageRequest>, root: &Root) {
        self.requests = requests;
        self.last_sent.clear();
        self.owned = Arc::default();
        self.unsettled_since = None;
        self.retry_at = None;
        self.dirty = !self.requests.is_empty();
        self.databases = if self.requests.is_empty() {
            Vec::new()
        } else {
            packages::databases(root)
        };
    }

    /// The package databases' declared paths, and whether each is a directory whose entries
    /// are the database.
    pub(super) fn databases(&self) -> Vec<(String, bool)> {
        self.databases
            .iter()
            .map(|(p, dir)| ((*p).to_owned(), *dir))
            .collect()
    }

    /// The databases' paths to watch: (declared path, whether its entries matter).
    pub(super) fn watch_paths(&self) -> impl Iterator<Item = (&str, bool)> {
        self.databases.iter().copied()
    }

    /// The owned files to watch.
    pub(super) fn owned(&self) -> Arc<PathSet> {
        self.owned.clone()
    }

    /// Notes dirty paths that concern packages; paths that are only package paths are taken
    /// out of the file paths to observe.
    pub(super) fn claim(&mut self, dirty: &mut BTreeSet<String>, files: &Requests) {
        // A database path or an entry of a database folder (no allocation per path).
        let ours = |p: &String| {
            self.owned.contains(p)
                || self.databases.iter().any(|(d, _)| {
                    p.strip_prefix(d)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                })
        };
        if dirty.iter().any(&ours) {
            self.dirty = true;
            dirty.retain(|p| !ours(p) || files.index(p).is_some());
        }
    }

    /// Reads the databases if needed; returns the packages whose state changed, or nothing
    /// while the databases are mid-transaction (then `retry_at` is set).
    pub(super) async fn poll(&mut self, root: &Root) -> anyhow::Result<Vec<PackageObservation>> {
        if !std::mem::take(&mut self.dirty) || self.requests.is_empty() {
            return Ok(Vec::new());
        }
        self.retry_at = None;
        let (root, requests) = (root.clone(), self.requests.clone());
        let read = tokio::task::spawn_blocking(move || match packages::read(&root) {
            Read::Settled(inv) => {
                let names: Vec<String> = requests.iter().map(|r| r.name.clone()).collect();
                let pending = inv.transitional(&names);
                let (observed, owned) = inv.observe_owned(&root, &requests);
                Ok((pending, observed, owned))
            }
            Read::Unsettled(why) => Err(why),
        })
        .await?;
        let now = Instant::now();
        let waited = now - *self.unsettled_since.get_or_insert(now);
        let observed = match read {
            Ok((pending, _, _)) if !pending.is_empty() && waited < GRACE => {
                return Ok(self.wait(format!("in transition: {}", pending.join(", "))));
            }
            Ok((_, observed, owned)) => {
                if owned != *self.owned {
                    self.owned = Arc::new(owned);
                    self.rewatch = true;
                }
                observed
            }
            Err(why) if waited < GRACE => return Ok(self.wait(why)),
            Err(why) => self
                .requests
                .iter()
                .map(|r| PackageObservation {
                    name: r.name.clone(),
                    instances: Vec::new(),
                    error: Some(why.clone()),
                    problems: Vec::new(),
                })
                .collect(),
        };
        self.unsettled_since = None;
        let changed: Vec<PackageObservation> = observed
            .into_iter()
            .filter(|o| self.last_sent.get(&o.name) != Some(o))
            .collect();
        for o in &changed {
            self.last_sent.insert(o.name.clone(), o.clone());
        }
        Ok(changed)
    }

    fn wait(&mut self, why: String) -> Vec<PackageObservation> {
        tracing::debug!(why, "package database unsettled; reading again shortly");
        self.dirty = true;
        self.retry_at = Some(Instant::now() + RETRY);
        Vec::new()
    }
}
