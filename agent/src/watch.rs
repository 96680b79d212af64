//! Watches on the parent directories of declared paths (and on listed directories), so that
//! in-place writes, rename-on-save, delete and recreate, chmod and chown are all seen.
//!
//! inotify watches inodes, not names: a file watched directly is lost at the first rename-save.
//! Watching the parent directory non-recursively sees every change to the names in it. A parent
//! that does not exist yet is covered by watching its nearest existing ancestor, and the watch
//! set is recomputed whenever a directory on the way to a declared path changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::event::{AccessKind, AccessMode, EventKind, EventKindMask};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::collect::files::Requests;
use crate::path_set::PathSet;
use crate::root::Root;

/// What the watcher thread tells the session.
#[derive(Debug)]
pub enum WatchMsg {
    /// Paths on this machine that changed, each with how far its change has got (see
    /// `stage`).
    Paths(Vec<(PathBuf, Stage)>),
    /// Events were lost (kernel queue overflow or a watcher error): observe everything again.
    Rescan,
}

/// How far a change to a path has got when its event is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Complete: a closed writer, a file renamed into place, new attributes. Observe it now,
    /// unless the file was created in the same burst (see `Created`).
    Done,
    /// Under way: data being written, a file removed or renamed away (tools such as install(1)
    /// and some editors put a new one in its place). Wait for what follows.
    Pending,
    /// A new file. Its writer's close does not finish it: install(1) creates it 0600, writes,
    /// closes, and only then sets its mode and owner. Wait the whole window.
    Created,
}

/// Events queued between the watcher thread and the session. When full, events are dropped
/// and `overflowed` is raised, which makes the session rescan everything: nothing is lost,
/// only coalesced.
pub const QUEUE: usize = 4096;

pub struct Watch {
    watcher: RecommendedWatcher,
    root: Root,
    /// The plan's paths (shared with the session, not copied).
    files: Arc<Requests>,
    /// Other declared paths: the package databases and globbed directories.
    extra: BTreeSet<String>,
    /// The files packages own, where they are verified (shared with the session).
    owned: Arc<PathSet>,
    /// Declared directories whose entries are observed; watched themselves.
    listed: BTreeSet<String>,
    /// Every directory on the way to a declared path (and the listed ones): a change to one of
    /// these may move the watch set.
    chain: HashSet<String>,
    armed: BTreeSet<PathBuf>,
    /// Directories that could not be watched, with the reason.
    pub failures: BTreeMap<PathBuf, String>,
    limit: Option<usize>,
    overflowed: Arc<AtomicBool>,
}

impl Watch {
    /// `limit` caps the number of directories watched; beyond it paths are polled.
    pub fn new(
        root: Root,
        tx: mpsc::Sender<WatchMsg>,
        limit: Option<usize>,
    ) -> notify::Result<Self> {
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = overflowed.clone();
        // No access events but a write's close: every open of a watched file (the agent's own
        // hashing, any process reading /etc/hosts) would otherwise wake the agent.
        let kinds = EventKindMask::CORE | EventKindMask::ACCESS_CLOSE;
        let handler = move |res: notify::Result<Event>| {
            let msg = match res {
                Ok(ev) if ev.need_rescan() => WatchMsg::Rescan,
                Ok(ev) if is_noise(&ev.kind) || ev.paths.is_empty() => return,
                Ok(ev) => WatchMsg::Paths(
                    ev.paths
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (p, stage(&ev.kind, i)))
                        .collect(),
                ),
                Err(_) => WatchMsg::Rescan,
            };
            if tx.try_send(msg).is_err() {
                flag.store(true, Ordering::Relaxed);
            }
        };
        let watcher =
            RecommendedWatcher::new(handler, notify::Config::default().with_event_kinds(kinds))?;
        Ok(Self {
            watcher,
            root,
            files: Arc::default(),
            extra: BTreeSet::new(),
            owned: Arc::default(),
            listed: BTreeSet::new(),
            chain: HashSet::new(),
            armed: BTreeSet::new(),
            failures: BTreeMap::new(),
            limit,
            overflowed,
        })
    }

    /// Replaces the declared paths, the plan's `files`, `extra` ones (each with whether its
    /// entries are listed) and the files packages `owned`, and arms the watches they need.
    /// Call before scanning, so that a change made during the scan is not missed.
    pub fn set_paths<'a>(
        &mut self,
        files: Arc<Requests>,
        extra: impl IntoIterator<Item = (&'a str, bool)>,
        owned: Arc<PathSet>,
    ) {
        self.listed.clear();
        self.chain.clear();
        let extra: Vec<(&str, bool)> = extra.into_iter().collect();
        let planned = files.iter().map(|r| (r.path, r.list_entries));
        for (path, listed) in planned.chain(extra.iter().copied()) {
            if listed {
                self.listed.insert(path.to_owned());
                self.chain.insert(path.to_owned());
            }
            if let Some(parent) = Path::new(path).parent() {
                self.chain_from(parent);
            }
        }
        // Owned files come grouped by their directory: one walk up from each.
        for (dir, _) in owned.dirs() {
            self.chain_from(Path::new(dir));
        }
        self.extra = extra.into_iter().map(|(p, _)| p.to_owned()).collect();
        self.files = files;
        self.owned = owned;
        self.rearm(&[]);
    }

    /// Notes `dir` and every directory above it as on the way to a declared path.
    fn chain_from(&mut self, dir: &Path) {
        for d in dir.ancestors() {
            // Most paths share their parents: look before allocating.
            let text = d.to_string_lossy();
            if self.chain.contains(&*text) {
                // Its own ancestors were noted with it.
                break;
            }
            self.chain.insert(text.into_owned());
        }
    }

    /// Whether events were dropped since the last call (then everything must be observed).
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::Relaxed)
    }

    /// Whether `host_path` is a declared path.
    pub fn declares(&self, host_path: &Path) -> bool {
        self.root
            .declared_path(host_path)
            .is_some_and(|p| self.is_declared(&p))
    }

    fn is_declared(&self, path: &str) -> bool {
        self.files.index(path).is_some() || self.extra.contains(path) || self.owned.contains(path)
    }

    /// The declared paths a change to `host_path` may affect: the path itself, any declared
    /// path below it (a directory on the way was created, removed or renamed), and a listed
    /// directory it is an entry of. Also says whether the watch set must be recomputed.
    pub fn affected(&self, host_path: &Path, into: &mut BTreeSet<String>) -> bool {
        let Some(path) = self.root.declared_path(host_path) else {
            return false;
        };
        if self.is_declared(&path) {
            into.insert(path.clone());
        }
        into.extend(self.files.below(&path).map(str::to_owned));
        let below = format!("{}/", path.trim_end_matches('/'));
        into.extend(
            self.extra
                .range(below.clone()..)
                .take_while(|d| d.starts_with(&below))
                .cloned(),
        );
        into.extend(self.owned.below(&path));
        if let Some(parent) = Path::new(&path).parent().and_then(Path::to_str)
            && self.listed.contains(parent)
        {
            into.insert(parent.to_owned());
        }
        self.chain.contains(&path)
    }

    /// Recomputes the directories to watch; `touched` ones are re-armed even if already
    /// watched (the name may now belong to a new directory).
    pub fn rearm(&mut self, touched: &[PathBuf]) {
        let wanted = self.wanted();
        let stale: Vec<PathBuf> = {
            let keep: HashSet<&PathBuf> = wanted.iter().collect();
            self.armed
                .iter()
                .filter(|p| !keep.contains(p) || touched.contains(p))
                .cloned()
                .collect()
        };
        for p in stale {
            // The watch may already be gone with its directory; nothing to undo then.
            let _ = self.watcher.unwatch(&p);
            self.armed.remove(&p);
        }
        self.failures.clear();
        // A directory created deeper down between computing the set and arming its parent
        // sent no event to anyone: recompute until arming adds nothing new.
        let mut wanted = wanted;
        loop {
            let mut added = false;
            for p in wanted {
                if self.armed.contains(&p) || self.failures.contains_key(&p) {
                    continue;
                }
                if let Some(limit) = self.limit.filter(|l| self.armed.len() >= *l) {
                    self.failures.insert(
                        p,
                        format!("watch budget of {limit} used up (--max-watches)"),
                    );
                    continue;
                }
                match self.watcher.watch(&p, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.armed.insert(p);
                        added = true;
                    }
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "cannot watch directory");
                        self.failures.insert(p, e.to_string());
                    }
                }
            }
            if !added {
                break;
            }
            wanted = self.wanted();
        }
    }

    pub fn armed(&self) -> usize {
        self.armed.len()
    }

    /// The directories watched (paths on this machine).
    pub fn armed_dirs(&self) -> &BTreeSet<PathBuf> {
        &self.armed
    }

    /// The directories to watch: those the declared paths depend on first (they come first
    /// out of a watch budget), then every existing directory above them. A directory renamed
    /// or removed up there takes the declared paths with it, and the directories below are
    /// told nothing (inotify follows inodes: a directory moved with its parent has not moved
    /// itself).
    fn wanted(&self) -> Vec<PathBuf> {
        let mut needed: BTreeSet<PathBuf> = BTreeSet::new();
        self.each_need(|dir, _| {
            if !needed.contains(dir) {
                needed.insert(dir.to_owned());
            }
        });
        let above: BTreeSet<PathBuf> = self
            .chain
            .iter()
            .map(|d| self.root.host_path(d))
            .filter(|d| !needed.contains(d) && d.is_dir())
            .collect();
        needed.into_iter().chain(above).collect()
    }

    /// Each directory to watch, with each declared path (or package directory) that depends
    /// on it, one at a time: at 100,000 paths a map of them all was 4 MB at the agent's peak,
    /// built again for each coverage report.
    fn each_need<'a>(&'a self, mut f: impl FnMut(&Path, Need<'a>)) {
        // Declared paths mostly share their parents: one look at each parent, not at each path.
        let mut nearest: HashMap<&Path, Option<PathBuf>> = HashMap::new();
        let declared = self.files.iter().map(|r| r.path);
        let declared = declared.chain(self.extra.iter().map(String::as_str));
        let parents = declared.map(|d| (Path::new(d).parent(), Need::Path(d)));
        let owned = self
            .owned
            .dirs()
            .map(|(d, _)| (Some(Path::new(d)), Need::Owned(d)));
        for (parent, need) in parents.chain(owned) {
            let parent = parent.unwrap_or(Path::new("/"));
            let dir = nearest
                .entry(parent)
                .or_insert_with(|| self.nearest_existing_dir(parent));
            if let Some(dir) = dir {
                f(dir, need);
            }
        }
        for d in &self.listed {
            let host = self.root.host_path(d);
            if host.is_dir() {
                f(&host, Need::Path(d));
            }
        }
    }

    /// Declared paths that depend on a directory that is not watched: poll them.
    pub fn unwatched(&self) -> BTreeSet<String> {
        let mut paths = BTreeSet::new();
        self.each_need(|dir, need| {
            if self.armed.contains(dir) {
                return;
            }
            match need {
                Need::Path(p) => {
                    paths.insert(p.to_owned());
                }
                Need::Owned(dir) => paths.extend(self.owned.in_dir(dir)),
            }
        });
        paths
    }

    /// The watch budget, if one was set.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    fn nearest_existing_dir(&self, declared: &Path) -> Option<PathBuf> {
        let mut p = Some(declared);
        while let Some(dir) = p {
            // `dir` is a parent of a declared path: canonical text, always UTF-8.
            let host = self.root.host_path(&dir.to_string_lossy());
            if host.is_dir() {
                return Some(host);
            }
            p = dir.parent();
        }
        None
    }
}

/// What depends on a watched directory.
enum Need<'a> {
    /// A declared path.
    Path(&'a str),
    /// The owned files in this directory.
    Owned(&'a str),
}

/// How far the change to an event's `index`th path has got when it is seen (see `Stage`): the
/// session observes a path at once only when nothing about it is still under way, so that a
/// half-done replacement is not reported as drift.
fn stage(kind: &EventKind, index: usize) -> Stage {
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
    match kind {
        EventKind::Create(CreateKind::File | CreateKind::Any) => Stage::Created,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
        | EventKind::Remove(RemoveKind::File | RemoveKind::Any)
        | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Stage::Pending,
        // `Both` names the old path, then the new one.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if index == 0 => Stage::Pending,
        _ => Stage::Done,
    }
}

/// Opens and reads change nothing; the agent's own reads would otherwise wake it up again.
fn is_noise(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(a) if !matches!(a, AccessKind::Close(AccessMode::Write)))
}

#[cfg(test)]
mod tests;
