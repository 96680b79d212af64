//! The fleet: one thread owns every host's state (desired, observed, drift), the manifest set
//! and the store. Agent streams and queries send it `Command`s; it evaluates, records, and
//! broadcasts drift events to followers.
//!
//! A dedicated thread, not a task: evaluation and SQLite writes are synchronous and must not
//! stall the reactor, and one owner means no locks and a single order of events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::clock::rfc3339;
pub use crate::clock::{Clock, now_ms};
use crate::manifest::ManifestSet;
use crate::model::Event;
use crate::store::{Holder, Store, StoreError};

mod acks;
mod agents;
mod baselines;
mod broker;
pub mod console;
mod handle;
mod host;
mod manifests;
pub mod metrics;
mod observations;
mod operators;
mod persist;
mod pulse;
mod queries;
mod reconcile;
mod retire;
mod shared;
mod tick;
mod windows;
mod writes;
use acks::Acks;
pub use baselines::Accepted;
pub use handle::{
    AckRequest, AgentPlan, Command, DIFF_MAX_BYTES, DiffContent, FleetError, FleetHandle, Overview,
    Read, Report, Stated, ToAgent, Turn,
};
use host::Host;
use metrics::Counters;
pub use pulse::{Heartbeats, Pulse};
pub use retire::ConnectionAge;
use writes::{MAX_PENDING, Writes};

/// Commands waiting for the fleet thread. A full queue makes senders wait: agents are slowed
/// down rather than their changes dropped.
const COMMAND_QUEUE: usize = 1024;
/// Messages queued to one agent. Plans and acks are small and rare; an agent that lets this
/// fill up is not reading, and its stream is closed (it reconnects and resyncs).
pub const AGENT_QUEUE: usize = 64;
/// Events buffered for each follower; a follower that falls further behind is told it lagged.
const FOLLOWER_QUEUE: usize = 4096;
/// A host is offline after this many missed heartbeats.
pub const MISSED_HEARTBEATS: u32 = 3;
/// A connected host's last-seen time is written to the store at most this often; connecting
/// and disconnecting write it at once, so only a controller crash loses up to this much of
/// it. Writing every host on every tick cost a 10,000-row transaction a second, and at 120,000
/// hosts a quarter of a second of the fleet thread's time in every second.
const SEEN_WRITE_EVERY_MS: i64 = 30_000;
/// The event log's head is said in the controller's log at start, at stop, and at most this
/// often in between (when it moved).
const HEAD_PUBLISHED_EVERY: Duration = Duration::from_secs(300);

pub struct Fleet {
    store: Box<dyn Store>,
    manifests: ManifestSet,
    manifest_errors: Vec<String>,
    /// What the event log last said about the manifest directory: a reload that finds the
    /// same again is not logged again (a reloader woken by unrelated writes filled the audit
    /// log with identical `manifests_accepted` entries, seven a second).
    manifests_logged: Option<ManifestOutcome>,
    /// Where the manifest set in force came from (its git commit, or its folder): what a
    /// resolution by a manifest change names.
    manifest_source: String,
    hosts: BTreeMap<String, Host>,
    conn_host: HashMap<u64, String>,
    next_conn: u64,
    next_generation: u64,
    heartbeat_interval: Duration,
    events: broadcast::Sender<Event>,
    /// Diffs waiting for an agent's content: id -> (host, desired content, reply).
    pending_content: HashMap<u64, PendingContent>,
    next_content: u64,
    /// Diffs asked of the controllers holding their hosts' streams, by request id.
    brokered: HashMap<i64, broker::Brokered>,
    acks: Acks,
    /// Change windows, open, closed and ended (`windows.rs`): what authorises drift.
    windows: Vec<crate::window::ChangeWindow>,
    /// Milliseconds since the epoch; replaceable so tests can move time.
    clock: Clock,
    counters: Counters,
    /// Where events go for the webhooks, if any are configured.
    webhooks: Option<crate::webhook::Sink>,
    /// The last head said in the log (`publish_head`), and when.
    head_published: i64,
    head_published_at: Instant,
    /// Writes waiting for a store that cannot write, at most `max_pending`.
    writes: Writes,
    max_pending: usize,
    /// Whether the store writes, for those outside the fleet thread (health, systemd).
    store_ok: Arc<std::sync::atomic::AtomicBool>,
    /// Whether other controllers share the store (`shared.rs`): followers then hear every
    /// entry from the store's tail, and writes for a host may be refused as another's.
    shared: bool,
    /// Whether this controller does the fleet's singleton work (acknowledgement expiry,
    /// releasing stopped controllers' hosts): always alone, on a shared store when the tail
    /// holds its lock.
    singleton: bool,
    /// Streams older than this are asked to go (`retire.rs`); none if `None`.
    max_age: Option<ConnectionAge>,
    /// Drift opened and resolved per day, for the console; read from the store when first
    /// asked for (`console.rs`).
    trend: Option<console::Trend>,
    /// What each baseline group's hosts hold of each key it compares, by manifest and key,
    /// kept as observations move (`baselines.rs`).
    counts: HashMap<String, HashMap<crate::key::Key, crate::baseline::Counts>>,
    /// Groups whose standard moved, to be judged again once the message that moved it is.
    regroup: BTreeMap<(String, crate::key::Key), Arc<crate::manifest::Baseline>>,
    /// Beaten for every command handled: streams answer heartbeats while it is recent.
    pulse: Arc<Pulse>,
}

#[derive(PartialEq)]
pub(super) enum ManifestOutcome {
    Accepted,
    Rejected(Vec<String>),
}

pub(super) struct PendingContent {
    conn: u64,
    since: Instant,
    waiter: operators::Waiter,
}

impl Fleet {
    /// Loads the known hosts and their open drift from the store: after a restart, every host
    /// is offline with its last known drift until its agent reconnects.
    pub fn new(
        store: Box<dyn Store>,
        manifests: ManifestSet,
        heartbeat_interval: Duration,
    ) -> Result<Self, StoreError> {
        let mut hosts = BTreeMap::new();
        for stored in store.load_hosts()? {
            let drift = shared::by_key(stored.drift);
            let observed = store.load_observations(&stored.info.host_id)?;
            let desired = manifests.desired_for(&stored.info.identity());
            let id = stored.info.host_id.clone();
            let mut host = Host::new(stored.info, desired, stored.last_seen_ms);
            host.observed_anew(observed);
            host.drift = drift;
            if let Holder::Other(controller) = stored.holder {
                host.remote = Some(controller);
                host.evaluated = stored.state.evaluated;
                host.coverage = stored.state.coverage;
            }
            hosts.insert(id, host);
        }
        let (events, _) = broadcast::channel(FOLLOWER_QUEUE);
        let store_acks = store.load_acks()?;
        let windows = store.load_windows()?;
        let shared = store.controller_id().is_some();
        if shared && let Err(refused) = manifests::refuse_baselines(&manifests) {
            let said: Vec<String> = refused.iter().map(ToString::to_string).collect();
            return Err(StoreError::Refused(said.join("; ")));
        }
        Ok(Self {
            store,
            manifests,
            manifest_errors: Vec::new(),
            manifests_logged: None,
            manifest_source: String::new(),
            hosts,
            conn_host: HashMap::new(),
            next_conn: 1,
            next_generation: 1,
            heartbeat_interval,
            events,
            pending_content: HashMap::new(),
            next_content: 1,
            brokered: HashMap::new(),
            acks: Acks::new(store_acks),
            windows,
            clock: Arc::new(now_ms),
            counters: Counters::default(),
            webhooks: None,
            head_published: 0,
            head_published_at: Instant::now(),
            writes: Writes::default(),
            max_pending: MAX_PENDING,
            store_ok: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            shared,
            singleton: !shared,
            max_age: None,
            trend: None,
            // The fleet's tick (every second) is command enough: a pulse is never judged on
            // less than two of them, so a tick's jitter never silences a short interval.
            pulse: Arc::new(Pulse::new(heartbeat_interval.max(Duration::from_secs(2)))),
            counts: HashMap::new(),
            regroup: BTreeMap::new(),
        }
        .counted())
    }

    /// With every baseline group's counts made from the observations loaded.
    fn counted(mut self) -> Self {
        self.count_all();
        self
    }

    /// Replaces the clock (tests move time with it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps at most this many writes while the store cannot write (tests lower it).
    #[cfg(test)]
    pub(crate) fn with_max_pending(mut self, n: usize) -> Self {
        self.max_pending = n;
        self
    }

    /// Asks streams older than `limit` to go, so they spread over controllers added since.
    pub fn with_max_age(mut self, limit: Option<ConnectionAge>) -> Self {
        self.max_age = limit;
        self
    }

    /// Hands every event to these webhooks too.
    pub fn with_webhooks(mut self, sink: Option<crate::webhook::Sink>) -> Self {
        self.webhooks = sink;
        self
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// True while the store writes; false while writes wait (see `writes`).
    pub fn store_ok(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.store_ok.clone()
    }

    /// Starts the fleet thread; it runs until `Command::Shutdown` or every handle is dropped.
    pub fn spawn(self) -> std::io::Result<(FleetHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let pulse = self.pulse.clone();
        let thread = std::thread::Builder::new()
            .name("plumb-fleet".into())
            .spawn(move || self.run(rx))?;
        Ok((FleetHandle { tx, pulse }, thread))
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        self.publish_head();
        while let Some(cmd) = rx.blocking_recv() {
            if matches!(cmd, Command::Shutdown) {
                break;
            }
            self.pulse.beat();
            if let Err(e) = self.handle(cmd) {
                // The store failing is not survivable silently: say so loudly, keep serving
                // what is in memory.
                tracing::error!(error = %e, "store write failed");
            }
        }
        self.publish_head();
        // Dropping the connections ends every agent stream, so a graceful shutdown can finish.
        tracing::debug!("fleet thread stopping");
    }

    fn handle(&mut self, cmd: Command) -> Result<(), StoreError> {
        match cmd {
            Command::Connect {
                info,
                out,
                heartbeats,
                takeover,
                reply,
            } => self.connect(info, out, heartbeats, takeover, reply)?,
            Command::State {
                conn,
                report,
                generation,
                seq,
                states,
                turn: _turn,
            } => {
                let started = Instant::now();
                self.state(conn, report, generation, seq, states)?;
                self.counters
                    .evaluation
                    .observe(started.elapsed().as_secs_f64());
            }
            Command::Coverage { conn, coverage } => self.coverage(conn, coverage),
            Command::Disconnected { conn } => self.disconnected(conn, "stream closed")?,
            Command::Manifests { result, source } => self.manifests(result, &source)?,
            Command::Tick => self.tick()?,
            Command::Hosts { reply } => {
                let _ = reply.send(self.overview());
            }
            Command::Follow { hosts, reply } => {
                let _ = reply.send(self.follow(&hosts));
            }
            Command::History { host, limit, reply } => {
                let _ = reply.send(self.history(host.as_deref(), limit));
            }
            Command::Diff { host, path, reply } => self.diff(&host, &path, reply),
            Command::Ack { req, reply } => {
                let _ = reply.send(self.acknowledge(req));
            }
            Command::RevokeAck {
                host,
                resource,
                by,
                reply,
            } => {
                let _ = reply.send(self.revoke_now(&host, &resource, by));
            }
            Command::Metrics { reply } => {
                let _ = reply.send(self.metrics());
            }
            Command::Ping { reply } => {
                let _ = reply.send(());
            }
            Command::ListAcks { reply } => {
                let _ = reply.send(self.acks.all());
            }
            Command::OpenWindow {
                window,
                for_ms,
                reply,
            } => {
                let _ = reply.send(self.open_window(window, for_ms));
            }
            Command::Summary { scope, reply } => {
                let _ = reply.send(self.summary(&scope));
            }
            Command::Visible { scope, reply } => {
                let _ = reply.send(self.visible(&scope));
            }
            Command::DriftPage { filter, reply } => {
                let _ = reply.send(self.drift_page(&filter));
            }
            Command::HostDetail { host, scope, reply } => {
                let _ = reply.send(self.host_detail(&host, &scope));
            }
            Command::LogPage { query, reply } => {
                let _ = reply.send(self.log_page(&query));
            }
            Command::Moment { at_ms, reply } => {
                let _ = reply.send(self.moment(at_ms));
            }
            Command::RecordRead { read, reply } => {
                let _ = reply.send(self.record_read(read));
            }
            Command::CloseWindow { ticket, by, reply } => {
                let _ = reply.send(self.close_window(&ticket, &by));
            }
            Command::ListWindows { reply } => {
                let _ = reply.send(self.list_windows());
            }
            Command::Diverge {
                selector,
                key,
                reply,
            } => {
                let _ = reply.send(self.diverge(selector.as_deref(), key.as_ref()));
            }
            Command::Accept {
                selector,
                from,
                reply,
            } => {
                let _ = reply.send(self.accept(&selector, from.as_deref()));
            }
            Command::Content { conn, id, result } => self.content(conn, id, result),
            Command::Store(heard) => self.hear(heard),
            Command::Shutdown => {}
        }
        Ok(())
    }

    fn host_of(&mut self, conn: u64) -> Option<&mut Host> {
        let id = self.conn_host.get(&conn)?;
        self.hosts
            .get_mut(id)
            .filter(|h| h.conn.as_ref().is_some_and(|c| c.id == conn))
    }
}

/// A fleet over a fresh SQLite store in `dir`, declared by `manifest` (written there as
/// `m.yaml`): what the tests of the fleet and of the edge start from.
#[cfg(test)]
pub(crate) fn for_test(
    dir: &std::path::Path,
    manifest: &str,
    heartbeat_interval: Duration,
) -> Fleet {
    std::fs::write(dir.join("m.yaml"), manifest).expect("write the manifest");
    let set = crate::manifest::load::load_dir(dir).expect("valid manifests");
    let store = crate::store::SqliteStore::open(&dir.join("data")).expect("store");
    Fleet::new(Box::new(store), set, heartbeat_interval).expect("fleet")
}

/// The runtime a test talks to a spawned fleet from (the fleet runs on its own thread).
#[cfg(test)]
pub(crate) fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
