//! Who changed a declared path: with `--attribution fanotify`, every change the agent reports
//! names the process that made it (its user, the login user behind `sudo`, its session,
//! terminal, unit or container, ancestors, and the usual origins: a package manager or a
//! configuration tool), or says plainly that it cannot, and why. Never a guess.
//!
//! fanotify needs `CAP_SYS_ADMIN`. Without it the agent says once, at start, that attribution
//! is off and why, and its coverage says so. See `fanotify.rs` for the groups and marks,
//! `process.rs` for what is read of a process, `origin.rs` for the one-word origin.
//!
//! A thread reads both groups as events arrive, so that a process is read while it is still
//! there; the session drains them (`sync`) before it observes, so that a change's record is
//! in before the change is reported (fsnotify queues an event to every group at once: once
//! inotify told the session of a change, fanotify's event is queued too).

use std::collections::{BTreeSet, HashMap};
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::fanotify::Fanotify;

use crate::collect::IdCache;
use crate::collect::files::Requests;
use crate::root::Root;

mod fanotify;
mod origin;
mod process;

use fanotify::{Change, FileId, Record};

/// Who made a change, as the agent tells the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The process that made it.
    Process(Identity),
    /// The package manager's transaction that left a package as it is.
    Package(Transaction),
    /// Not known, and why.
    Unknown(String),
}

/// A process, as read when it was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// One word: a package manager or configuration tool, `manual` or `service`.
    pub origin: String,
    /// What it did: `write`, `rename`, `attributes`, `create` or `delete`.
    pub action: String,
    pub pid: u32,
    pub name: String,
    pub exe: String,
    pub uid: Option<u32>,
    pub user: String,
    pub login_uid: Option<u32>,
    pub login_user: String,
    pub session: Option<u32>,
    pub tty: String,
    pub unit: String,
    pub container: String,
    pub parents: Vec<String>,
    pub command_line: String,
}

/// A package manager transaction from its own history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub manager: String,
    pub started: String,
    pub user: String,
    pub uid: Option<u32>,
    pub command: String,
    pub action: String,
}

/// How the agent attributes changes (`--attribution`, `attribution:`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Not at all.
    #[default]
    Off,
    /// fanotify (needs CAP_SYS_ADMIN).
    Fanotify,
}

/// Why attribution is off without CAP_SYS_ADMIN, and what to do.
pub const NO_CAPABILITY: &str = "fanotify needs CAP_SYS_ADMIN: run the agent as root, or install its unit with `plumb-agent install --attribution fanotify`";
/// The writer of a change could not be read: it had exited.
pub const EXITED: &str = "the writer exited before it could be identified";
/// Events were lost: the kernel's queue overflowed.
pub const LOST: &str = "fanotify lost events (its queue overflowed)";
/// A change no event named a writer for.
pub const UNSEEN: &str = "no writer was seen for this change";

/// Processes identified at exec, kept for writers that exit before their change is read
/// (read within milliseconds): a busy host starts thousands a second, and each kept costs a
/// few hundred bytes of an agent meant to stay under 10 MiB.
const PROCESSES: usize = 1024;
/// Changes kept until the session takes them.
const RECENT: usize = 8192;

/// Attribution as the agent runs it: on, with one attributor for all its sessions (so that a
/// change made while it reconnects is still named), or off and why.
#[derive(Clone)]
pub struct Attribution {
    on: Option<Arc<Attributor>>,
    off: String,
}

impl Attribution {
    /// Off, for this reason (said in the coverage after `off: `).
    pub fn off(why: &str) -> Self {
        Self {
            on: None,
            off: format!("off: {why}"),
        }
    }

    /// As configured: started if asked for and possible; otherwise off, said once here.
    pub fn start(source: Source, root: &Root, command_lines: bool, deny: Vec<String>) -> Self {
        match source {
            Source::Off => {
                tracing::info!(
                    "attribution is off: changes are reported without who made them (--attribution fanotify names them)"
                );
                Self::off("not asked for (--attribution fanotify)")
            }
            Source::Fanotify => match Attributor::start(root, command_lines, deny) {
                Ok(a) => {
                    tracing::info!(
                        command_lines,
                        "attribution on: each change names who made it (fanotify)"
                    );
                    Self {
                        on: Some(Arc::new(a)),
                        off: String::new(),
                    }
                }
                Err(why) => {
                    tracing::warn!("attribution is off: {why}");
                    Self::off(&why)
                }
            },
        }
    }

    pub fn attributor(&self) -> Option<&Attributor> {
        self.on.as_deref()
    }

    /// What the coverage says: `fanotify`, or `off: ` and why.
    pub fn status(&self) -> String {
        match &self.on {
            Some(a) => a.status(),
            None => self.off.clone(),
        }
    }
}

pub struct Attributor {
    inner: Arc<Inner>,
    wake: UnixStream,
    reader: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    changes: Fanotify,
    execs: Option<Fanotify>,
    engine: Mutex<Engine>,
    stop: AtomicBool,
}

impl Attributor {
    /// Starts fanotify attribution for the host under `root`; `Err` says why it cannot be
    /// (the capability missing, an old kernel), in words for the log and the coverage.
    pub fn start(root: &Root, command_lines: bool, deny: Vec<String>) -> Result<Self, String> {
        // Since Linux 5.13 a process without the capability may use fanotify too, but is told
        // no other process's pid: no attribution at all. Refused here, plainly.
        if !process::has_sys_admin(Path::new("/proc/self/status")) {
            return Err(NO_CAPABILITY.into());
        }
        let changes = fanotify::changes_group().map_err(|e| match e {
            nix::errno::Errno::EPERM => NO_CAPABILITY.to_owned(),
            nix::errno::Errno::EINVAL => {
                "this kernel's fanotify cannot name files (Linux 5.9 or later is needed)".to_owned()
            }
            e => format!("fanotify cannot start: {e}"),
        })?;
        // Execs: where the programs are, on the host and under the root.
        let execs = fanotify::execs_group().ok();
        let mut exec_errors = Vec::new();
        if let Some(group) = &execs {
            let mut devices = BTreeSet::new();
            for dir in ["/", "/usr", "/usr/local", "/opt"] {
                for path in [PathBuf::from(dir), root.host_path(dir)] {
                    let Ok(meta) = std::fs::metadata(&path) else {
                        continue;
                    };
                    if devices.insert(meta.dev())
                        && let Err(e) = fanotify::mark_execs(group, &path)
                    {
                        exec_errors.push(format!("{}: {e}", path.display()));
                    }
                }
            }
        }
        if !exec_errors.is_empty() {
            tracing::warn!(errors = ?exec_errors, "attribution cannot see programs start on some filesystems; writers that exit at once may be unknown there");
        }
        let (wake, asleep) = UnixStream::pair().map_err(|e| format!("cannot start: {e}"))?;
        asleep
            .set_nonblocking(true)
            .map_err(|e| format!("cannot start: {e}"))?;
        let inner = Arc::new(Inner {
            changes,
            execs,
            engine: Mutex::new(Engine::new(root.clone(), command_lines, deny)),
            stop: AtomicBool::new(false),
        });
        let (ready, started) = std::sync::mpsc::sync_channel(1);
        let reader = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("attribution".into())
                .stack_size(256 * 1024)
                .spawn(move || read_until_stopped(&inner, asleep, ready))
                .map_err(|e| format!("cannot start: {e}"))?
        };
        // Reading from the first change on: a process that starts now is read as it starts.
        let _ = started.recv();
        Ok(Self {
            inner,
            wake,
            reader: Some(reader),
        })
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.inner
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The declared paths: changes to these (and to the entries of listed directories) are
    /// kept for the session.
    pub fn plan(&self, requests: Arc<Requests>) {
        let mut engine = self.engine();
        engine.requests = requests;
        engine.recent.clear();
    }

    /// Marks exactly these directories (the watcher's), so attribution covers what is watched.
    pub fn follow(&self, dirs: &BTreeSet<PathBuf>) {
        self.engine().follow(&self.inner.changes, dirs);
    }

    /// Reads every event queued so far.
    pub fn sync(&self) {
        self.engine().drain(&self.inner);
    }

    /// Who made the latest change to `path` (or, for a `listed` directory, to it or an entry
    /// of it) since it was last taken; what cannot be known says why.
    pub fn take(&self, path: &str, listed: bool) -> Who {
        self.engine().take(path, listed)
    }

    /// Ends a batch of takes: a lost event no longer stands for what comes next.
    pub fn end_batch(&self) {
        self.engine().lost = false;
    }

    /// What the coverage says of attribution.
    pub fn status(&self) -> String {
        let engine = self.engine();
        let mut status = "fanotify".to_owned();
        if self.inner.execs.is_none() {
            status
                .push_str(" (programs starting are not seen: short-lived writers may be unknown)");
        }
        if let Some((dir, why)) = engine.mark_errors.iter().next() {
            status.push_str(&format!(
                " ({} of {} directories not marked, e.g. {}: {why})",
                engine.mark_errors.len(),
                engine.marked.len() + engine.mark_errors.len(),
                dir.display()
            ));
        }
        status
    }
}

impl Drop for Attributor {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.write_all(&[1]);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The reader thread: waits for events on either group (or the wake-up at stop) and reads
/// them as they come, without ever waking when nothing happens.
fn read_until_stopped(
    inner: &Inner,
    mut asleep: UnixStream,
    ready: std::sync::mpsc::SyncSender<()>,
) {
    let _ = ready.send(());
    loop {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        {
            let mut fds = vec![
                PollFd::new(inner.changes.as_fd(), PollFlags::POLLIN),
                PollFd::new(asleep.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(execs) = &inner.execs {
                fds.push(PollFd::new(execs.as_fd(), PollFlags::POLLIN));
            }
            if let Err(e) = poll(&mut fds, PollTimeout::NONE)
                && e != nix::errno::Errno::EINTR
            {
                tracing::error!(error = %e, "attribution stopped: cannot wait for events");
                return;
            }
        }
        let mut byte = [0u8; 16];
        let _ = asleep.read(&mut byte);
        inner
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(inner);
    }
}

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

struct Engine {
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
    /// Events were lost since the last batch of takes.
    lost: bool,
    ids: IdCache,
    buf: Vec<u8>,
    me: u32,
    records: Vec<Record>,
    execs: Vec<fanotify::Exec>,
}

impl Engine {
    fn new(root: Root, command_lines: bool, deny: Vec<String>) -> Self {
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
            lost: false,
            ids: IdCache::default(),
            buf: vec![0; 64 * 1024],
            me: std::process::id(),
            records: Vec::new(),
            execs: Vec::new(),
        }
    }

    fn follow(&mut self, group: &Fanotify, dirs: &BTreeSet<PathBuf>) {
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
    fn drain(&mut self, inner: &Inner) {
        self.read_execs(inner);
        let mut records = std::mem::take(&mut self.records);
        let mut buf = std::mem::take(&mut self.buf);
        if let Err(e) = fanotify::read_changes(&inner.changes, &mut buf, &mut records) {
            tracing::warn!(error = %e, "cannot read attribution events");
        }
        self.buf = buf;
        let mut execs_read_again = false;
        for record in records.drain(..) {
            match record {
                Record::Overflow => {
                    tracing::warn!("attribution events were lost: the kernel's queue overflowed");
                    self.lost = true;
                }
                Record::Change(change) => {
                    if !execs_read_again && !self.alive_or_known(change.pid) {
                        // Its exec may be queued still: read it before giving up on it.
                        self.read_execs(inner);
                        execs_read_again = true;
                    }
                    self.changed(change);
                }
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

    fn alive_or_known(&self, pid: u32) -> bool {
        self.processes.contains_key(&pid) || Path::new(&format!("/proc/{pid}")).exists()
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
        if self.requests.index(&path).is_none() && !listed_parent {
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

    fn take(&mut self, path: &str, listed: bool) -> Who {
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
fn action(mask: u64) -> &'static str {
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
fn evict_oldest<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, (u64, V)>) {
    let mut seqs: Vec<u64> = map.values().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    let cut = seqs.get(seqs.len() / 2).copied().unwrap_or(0);
    map.retain(|_, (s, _)| *s >= cut);
}

#[cfg(test)]
mod tests;
