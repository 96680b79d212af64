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

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::fanotify::Fanotify;

use crate::collect::files::Requests;
use crate::root::Root;

mod engine;
mod fanotify;
mod origin;
mod process;

use engine::Engine;

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
        engine.plan(requests);
    }

    /// The package databases' declared paths (directories: whether their entries are it): who
    /// writes them is who changes packages.
    pub fn databases(&self, databases: Vec<(String, bool)>) {
        self.engine().databases(databases);
    }

    /// Who last wrote a package database, if anyone was seen to.
    pub fn package_writer(&self) -> Option<Who> {
        self.engine().package_writer()
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
        self.engine().end_batch();
    }

    /// What the coverage says of attribution.
    pub fn status(&self) -> String {
        let engine = self.engine();
        let mut status = "fanotify".to_owned();
        if self.inner.execs.is_none() {
            status
                .push_str(" (programs starting are not seen: short-lived writers may be unknown)");
        }
        if let (Some((dir, why)), unmarked, all) = engine.unmarked() {
            status.push_str(&format!(
                " ({unmarked} of {all} directories not marked, e.g. {}: {why})",
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

#[cfg(test)]
mod tests;
