//! The attributor's state, behind its lock: the directories marked and how fanotify names
//! them, programs read as they started, and the latest change to each declared path, until the
//! session takes it. Reading events, reading processes and deciding who made a change are here;
//! the threads and the public face are in `mod.rs`.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::fanotify::Fanotify;

use super::fanotify::{self, Change, FileId, Record};
use super::{EXITED, Identity, Inner, LOST, PROCESSES, RECENT, UNSEEN, Who, origin, process};
use crate::collect::IdCache;
use crate::collect::files::Requests;
use crate::root::Root;

/// A process as known from its exec, for a writer gone by the time its change is read.
enum Known {
    Identified {
        identity: Box<Identity>,
        /// Its parent, whose ancestors are read once they are needed.
        ppid: u32,
        /// When it started a script: the interpreter's exec that follows is the same start.
        script_at: Option<std::time::Instant>,
        /// Read only as it started (no ancestors, no arguments): read whole at its first
        /// event (`sed -i` creating its temporary file), while it is surely there.
        partial: bool,
    },
    /// Gone already at its exec: only its program is known.
    Program(String),
}

/// What a process's name (comm) becomes at exec: its program's file name, cut to 15 bytes.
fn comm_of(exe: &str) -> String {
    let mut name = exe.rsplit('/').next().unwrap_or(exe).to_owned();
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

pub(super) struct Engine {
    root: Root,
    command_lines: bool,
    /// The agent's deny list: no command line is sent for these paths.
    deny: Vec<String>,
    requests: Arc<Requests>,
    /// Marked directories (host paths) and how fanotify names them.
    marked: std::collections::BTreeMap<PathBuf, Option<FileId>>,
    dirs: HashMap<FileId, PathBuf>,
    mark_errors: std::collections::BTreeMap<PathBuf, String>,
    processes: HashMap<u32, (u64, Known)>,
    /// The latest change to each declared path (and entry of a listed directory) not yet
    /// taken: its sequence number, and who made it.
    recent: HashMap<String, (u64, Recent)>,
    seq: u64,
    /// The package databases' declared paths (directories: whether their entries are it).
    databases: Vec<(String, bool)>,
    /// Who last wrote one of them.
    package_writer: Option<Who>,
    /// Events were lost since the last batch of takes.
    lost: bool,
    ids: IdCache,
    buf: Vec<u8>,
    me: u32,
    records: Vec<Record>,
    execs: Vec<fanotify::Exec>,
}

impl Engine {
    pub(super) fn new(root: Root, command_lines: bool, deny: Vec<String>) -> Self {
        Self {
            root,
            command_lines,
            deny,
            requests: Arc::default(),
            marked: Default::default(),
            dirs: HashMap::new(),
            mark_errors: Default::default(),
            processes: HashMap::new(),
            recent: HashMap::new(),
            seq: 0,
            databases: Vec::new(),
            package_writer: None,
            lost: false,
            ids: IdCache::default(),
            buf: vec![0; 64 * 1024],
            me: std::process::id(),
            records: Vec::new(),
            execs: Vec::new(),
        }
    }

    /// The declared paths: changes to these (and to entries of listed directories) are kept.
    pub(super) fn plan(&mut self, requests: Arc<Requests>) {
        self.requests = requests;
        self.recent.clear();
    }

    /// The package databases' declared paths (and whether a path is a directory whose entries
    /// are the database): their writer is who changed packages.
    pub(super) fn databases(&mut self, databases: Vec<(String, bool)>) {
        self.databases = databases;
        self.package_writer = None;
    }

    /// Who last wrote a package database, if anyone was seen to.
    pub(super) fn package_writer(&self) -> Option<Who> {
        self.package_writer.clone()
    }

    /// A lost event no longer stands for what comes next.
    pub(super) fn end_batch(&mut self) {
        self.lost = false;
    }

    /// The directories that could not be marked (one of them, with why, and how many), and
    /// how many there are in all.
    pub(super) fn unmarked(&self) -> (Option<(&Path, &str)>, usize, usize) {
        let first = self
            .mark_errors
            .iter()
            .next()
            .map(|(d, why)| (d.as_path(), why.as_str()));
        (
            first,
            self.mark_errors.len(),
            self.marked.len() + self.mark_errors.len(),
        )
    }

    /// Whether a change to `path` waits to be taken.
    #[cfg(test)]
    pub(super) fn holds(&self, path: &str) -> bool {
        self.recent.contains_key(path)
    }

    pub(super) fn follow(&mut self, group: &Fanotify, dirs: &BTreeSet<PathBuf>) {
        let gone: Vec<PathBuf> = self
            .marked
            .keys()
            .filter(|d| !dirs.contains(*d))
            .cloned()
            .collect();
        for dir in gone {
            // The mark may already be gone with its directory.
            let _ = fanotify::unmark_dir(group, &dir);
            if let Some(Some(id)) = self.marked.remove(&dir) {
                self.dirs.remove(&id);
            }
        }
        self.mark_errors.retain(|d, _| dirs.contains(d));
        let mut added = Vec::new();
        for dir in dirs {
            if self.marked.contains_key(dir) {
                continue;
            }
            match fanotify::mark_dir(group, dir) {
                Ok(()) => {
                    self.mark_errors.remove(dir);
                    self.marked.insert(dir.clone(), None);
                    added.push(dir.clone());
                }
                Err(e) => {
                    self.mark_errors.insert(dir.clone(), e.to_string());
                }
            }
        }
        if added.is_empty() {
            return;
        }
        // How fanotify will name each new mark: its handle, from the group's fdinfo.
        let marks = match fanotify::fdinfo(group) {
            Ok(text) => fanotify::marks_in_fdinfo(&text),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the attribution group's marks");
                Default::default()
            }
        };
        for dir in added {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let Some((handle_type, handle)) =
                marks.get(&(meta.ino(), fanotify::kernel_dev(meta.dev())))
            else {
                self.mark_errors
                    .insert(dir.clone(), "its mark has no file handle".into());
                continue;
            };
            let Ok(fsid) = fanotify::fsid(&dir) else {
                continue;
            };
            let id = FileId {
                fsid,
                handle_type: *handle_type,
                handle: handle.clone(),
            };
            self.dirs.insert(id.clone(), dir.clone());
            self.marked.insert(dir, Some(id));
        }
    }

    /// Reads both groups until neither holds anything: execs first, so that a writer is known
    /// from its start before its changes are read.
    pub(super) fn drain(&mut self, inner: &Inner) {
        self.read_execs(inner);
        let mut records = std::mem::take(&mut self.records);
        let mut buf = std::mem::take(&mut self.buf);
        if let Err(e) = fanotify::read_changes(&inner.changes, &mut buf, &mut records) {
            tracing::warn!(error = %e, "cannot read attribution events");
        }
        self.buf = buf;
        if !records.is_empty() {
            // Every program start before these changes is queued by now (a process starts
            // before it writes): read them, so that a writer gone already is known from its
            // start. Whether it is gone cannot be told from /proc: a zombie is still there.
            self.read_execs(inner);
        }
        for record in records.drain(..) {
            match record {
                Record::Overflow => {
                    tracing::warn!("attribution events were lost: the kernel's queue overflowed");
                    self.lost = true;
                }
                Record::Change(change) => self.changed(change),
            }
        }
        self.records = records;
    }

    fn read_execs(&mut self, inner: &Inner) {
        let Some(group) = &inner.execs else { return };
        let mut execs = std::mem::take(&mut self.execs);
        match fanotify::read_execs(group, &mut execs) {
            Ok(true) => {
                tracing::warn!("attribution lost program starts: the kernel's queue overflowed")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read program starts"),
        }
        for exec in execs.drain(..) {
            let Some(exe) = exec.exe.filter(|e| !fanotify::is_loader(e)) else {
                continue;
            };
            // A script's interpreter: the script still names the process.
            if let Some((
                _,
                Known::Identified {
                    identity,
                    script_at,
                    ..
                },
            )) = self.processes.get_mut(&exec.pid)
                && script_at.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
            {
                identity.exe = exe;
                *script_at = None;
                continue;
            }
            // Read as it execs, as little and as fast as will do: a writer such as sed -i
            // may be gone a millisecond later. What /proc says of its name may still be its
            // parent's, so the program it opened names it.
            let known = match self.read_process(exec.pid, Some(&exe), process::Depth::AtExec) {
                Some((mut identity, ppid)) => {
                    identity.name = comm_of(&exe);
                    Known::Identified {
                        identity: Box::new(identity),
                        ppid,
                        script_at: exec.script.then(std::time::Instant::now),
                        partial: true,
                    }
                }
                None => Known::Program(exe),
            };
            self.seq += 1;
            self.processes.insert(exec.pid, (self.seq, known));
        }
        self.execs = execs;
        if self.processes.len() > PROCESSES {
            evict_oldest(&mut self.processes);
        }
    }

    fn read_process(
        &mut self,
        pid: u32,
        exe: Option<&str>,
        depth: process::Depth,
    ) -> Option<(Identity, u32)> {
        process::read(Path::new("/proc"), pid, exe, depth, self.command_lines)
    }

    fn changed(&mut self, change: Change) {
        if change.pid == self.me {
            return;
        }
        self.complete(change.pid);
        let Some(dir) = self.dirs.get(&change.dir) else {
            return;
        };
        let host = if change.name.is_empty() || change.name == b"." {
            dir.clone()
        } else {
            fanotify::join(dir, &change.name)
        };
        let Some(path) = self.root.declared_path(&host) else {
            return;
        };
        let parent = Path::new(&path).parent().and_then(Path::to_str);
        let listed_parent = parent
            .and_then(|p| self.requests.find(p))
            .is_some_and(|r| r.list_entries);
        let database = self
            .databases
            .iter()
            .any(|(d, dir)| *d == path || (*dir && parent == Some(d.as_str())));
        if self.requests.index(&path).is_none() && !listed_parent && !database {
            return; // a temporary file, an editor's swap file: not declared
        }
        let live = match self.processes.get(&change.pid) {
            // Read whole at this very event (`complete`): no need to read it again.
            Some((
                _,
                Known::Identified {
                    partial: false,
                    identity,
                    ..
                },
            )) => Some((**identity).clone()),
            _ => self
                .read_process(change.pid, None, process::Depth::Full)
                .map(|(identity, _)| identity),
        };
        let who = match live {
            Some(identity) => Who::Process(identity),
            None => match self.processes.get(&change.pid) {
                Some((_, Known::Identified { identity, .. })) => Who::Process((**identity).clone()),
                Some((_, Known::Program(exe))) => Who::Unknown(format!("{EXITED}; it ran {exe}")),
                None => Who::Unknown(EXITED.into()),
            },
        };
        // One process's events on one name make one change (cp creates, writes, closes): its
        // first event says what it was.
        let mask = match self.recent.get(&path) {
            Some((_, r)) if r.pid == change.pid => r.mask | change.mask,
            _ => change.mask,
        };
        let who = match who {
            Who::Process(mut identity) => {
                let names = self.ids.get(&self.root);
                process::named(&mut identity, &|uid| names.user(uid).map(str::to_owned));
                identity.action = action(mask).into();
                // Command lines may hold secrets: never for a sensitive or deny-listed path.
                let sensitive = self.requests.find(&path).is_some_and(|r| r.sensitive);
                if sensitive || crate::denied(&self.deny, &path) {
                    identity.command_line.clear();
                }
                Who::Process(identity)
            }
            other => other,
        };
        if database {
            self.package_writer = Some(who.clone());
            if self.requests.index(&path).is_none() {
                return;
            }
        }
        self.seq += 1;
        let recent = Recent {
            pid: change.pid,
            mask,
            who,
        };
        self.recent.insert(path, (self.seq, recent));
        if self.recent.len() > RECENT {
            evict_oldest(&mut self.recent);
        }
    }

    /// A process read as it started is read whole at its first event, whatever the event is
    /// about: by then its exec is done, and it may be gone by its declared change. One gone
    /// already keeps what was read at its start, with its ancestors (still there, mostly:
    /// the shell that waits for it).
    fn complete(&mut self, pid: u32) {
        let (exe, ppid) = match self.processes.get(&pid) {
            Some((
                _,
                Known::Identified {
                    identity,
                    ppid,
                    partial: true,
                    ..
                },
            )) => (identity.exe.clone(), *ppid),
            _ => return,
        };
        let whole = self.read_process(pid, Some(&exe), process::Depth::Full);
        let Some((
            _,
            Known::Identified {
                identity, partial, ..
            },
        )) = self.processes.get_mut(&pid)
        else {
            return;
        };
        match whole {
            Some((again, _)) => **identity = again,
            None => {
                identity.parents = process::ancestors(Path::new("/proc"), ppid);
                identity.origin = origin::of(
                    &identity.name,
                    &[],
                    &identity.parents,
                    identity.login_uid.is_some(),
                )
                .to_owned();
            }
        }
        *partial = false;
    }

    pub(super) fn take(&mut self, path: &str, listed: bool) -> Who {
        let mut latest = self.recent.remove(path);
        if listed {
            let below = format!("{}/", path.trim_end_matches('/'));
            let entries: Vec<String> = self
                .recent
                .keys()
                .filter(|k| {
                    k.strip_prefix(&below)
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
                })
                .cloned()
                .collect();
            for entry in entries {
                if let Some(e) = self.recent.remove(&entry)
                    && latest.as_ref().is_none_or(|l| e.0 > l.0)
                {
                    latest = Some(e);
                }
            }
        }
        match latest {
            Some((_, recent)) => recent.who,
            None if self.lost => Who::Unknown(LOST.into()),
            None => Who::Unknown(UNSEEN.into()),
        }
    }
}

/// A change kept for the session.
struct Recent {
    pid: u32,
    /// Every event of this process on the name, together.
    mask: u64,
    who: Who,
}

/// What a change event (one process's events on one name, together) says was done to the
/// entry: what it is left as counts first (install(1) removes a file and creates it anew).
pub(super) fn action(mask: u64) -> &'static str {
    use fanotify::{
        FAN_ATTRIB, FAN_CLOSE_WRITE, FAN_CREATE, FAN_DELETE, FAN_MODIFY, FAN_MOVED_FROM,
        FAN_MOVED_TO,
    };
    if mask & FAN_MOVED_TO != 0 {
        "rename"
    } else if mask & FAN_CREATE != 0 {
        "create"
    } else if mask & (FAN_DELETE | FAN_MOVED_FROM) != 0 {
        "delete"
    } else if mask & (FAN_MODIFY | FAN_CLOSE_WRITE) != 0 {
        "write"
    } else if mask & FAN_ATTRIB != 0 {
        "attributes"
    } else {
        "change"
    }
}

/// Drops the older half of a map kept in order of a sequence number.
pub(super) fn evict_oldest<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, (u64, V)>) {
    let mut seqs: Vec<u64> = map.values().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    let cut = seqs.get(seqs.len() / 2).copied().unwrap_or(0);
    map.retain(|_, (s, _)| *s >= cut);
}
