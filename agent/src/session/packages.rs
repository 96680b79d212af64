//! The packages half of a session: which packages the plan names, which database files to
//! watch, and when a read of the databases can be trusted.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::collect::packages::{self, PackageObservation, Read};
use crate::root::Root;

/// How soon to read again when a database is mid-transaction.
const RETRY: Duration = Duration::from_millis(250);
/// How long a transaction may look unfinished before the agent reports what it sees (a dpkg
/// that crashed leaves packages half-configured for good; that is worth knowing too).
const GRACE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Packages {
    names: Vec<String>,
    /// Declared paths of the database files being watched.
    databases: BTreeSet<String>,
    last_sent: HashMap<String, PackageObservation>,
    /// A database changed (or a rescan is due): read again.
    pub(super) dirty: bool,
    unsettled_since: Option<Instant>,
    pub(super) retry_at: Option<Instant>,
}

impl Packages {
    /// Takes the plan's package names; returns the database paths to watch (path, is a dir).
    pub(super) fn set(&mut self, names: Vec<String>, root: &Root) -> Vec<(&'static str, bool)> {
        self.names = names;
        self.last_sent.clear();
        self.unsettled_since = None;
        self.retry_at = None;
        self.dirty = !self.names.is_empty();
        let watch = if self.names.is_empty() {
            Vec::new()
        } else {
            packages::databases(root)
        };
        self.databases = watch.iter().map(|(p, _)| (*p).to_owned()).collect();
        watch
    }

    /// Moves database paths out of the dirty file paths: they mean "read the databases".
    pub(super) fn claim(&mut self, dirty: &mut BTreeSet<String>) {
        let before = dirty.len();
        dirty.retain(|p| {
            !self.databases.contains(p)
                && !self
                    .databases
                    .iter()
                    .any(|d| p.starts_with(&format!("{d}/")))
        });
        if dirty.len() != before {
            self.dirty = true;
        }
    }

    /// Reads the databases if needed; returns the packages whose state changed, or nothing
    /// while the databases are mid-transaction (then `retry_at` is set).
    pub(super) async fn poll(&mut self, root: &Root) -> anyhow::Result<Vec<PackageObservation>> {
        if !std::mem::take(&mut self.dirty) || self.names.is_empty() {
            return Ok(Vec::new());
        }
        self.retry_at = None;
        let root = root.clone();
        let read = tokio::task::spawn_blocking(move || packages::read(&root)).await?;
        let now = Instant::now();
        let waited = now - *self.unsettled_since.get_or_insert(now);
        let observed = match read {
            Read::Settled(inv) => {
                let pending = inv.transitional(&self.names);
                if !pending.is_empty() && waited < GRACE {
                    return Ok(self.wait(format!("in transition: {}", pending.join(", "))));
                }
                inv.observe(&self.names)
            }
            Read::Unsettled(why) if waited < GRACE => return Ok(self.wait(why)),
            Read::Unsettled(why) => self
                .names
                .iter()
                .map(|name| PackageObservation {
                    name: name.clone(),
                    instances: Vec::new(),
                    error: Some(why.clone()),
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
