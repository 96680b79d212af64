//! The fleet: one thread owns every host's state (desired, observed, drift), the manifest set
//! and the store. Agent streams and queries send it `Command`s; it evaluates, records, and
//! broadcasts drift events to followers.
//!
//! A dedicated thread, not a task: evaluation and SQLite writes are synchronous and must not
//! stall the reactor, and one owner means no locks and a single order of events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::clock::rfc3339;
pub use crate::clock::{Clock, now_ms};
use crate::drift::{self, Observation};
use crate::manifest::{Diagnostic, ManifestSet};
use crate::model::{Ack, Coverage, DriftRecord, Event, EventKind, HostInfo, HostView};
use crate::plan::{self, PathRequest};
use crate::store::{Change, Store, StoreError, Write};

mod acks;
mod host;
pub mod metrics;
mod reconcile;
mod writes;
use acks::Acks;
use host::{Conn, Host};
use metrics::{Counters, Metrics};
use reconcile::reconcile;
use writes::{MAX_PENDING, Pending, Writes};

/// Commands waiting for the fleet thread. A full queue makes senders wait: agents are slowed
/// down rather than their changes dropped.
const COMMAND_QUEUE: usize = 1024;
/// Messages queued to one agent. Plans and acks are small and rare; an agent that lets this
/// fill up is not reading, and its stream is closed (it reconnects and resyncs).
pub const AGENT_QUEUE: usize = 64;
/// Events buffered for each follower; a follower that falls further behind is told it lagged.
const FOLLOWER_QUEUE: usize = 4096;
/// A host is offline after this many missed heartbeats.
const MISSED_HEARTBEATS: u32 = 3;
/// A connected host's last-seen time is written to the store at most this often; connecting
/// and disconnecting write it at once, so only a controller crash loses up to this much of
/// it. Writing every host on every tick cost a 10,000-row transaction a second, and at 120,000
/// hosts a quarter of a second of the fleet thread's time in every second.
const SEEN_WRITE_EVERY_MS: i64 = 30_000;
/// The event log's head is said in the controller's log at start, at stop, and at most this
/// often in between (when it moved).
const HEAD_PUBLISHED_EVERY: Duration = Duration::from_secs(300);

/// What the controller sends an agent, before conversion to the wire.
#[derive(Debug, Clone)]
pub enum ToAgent {
    Plan {
        generation: u64,
        paths: Vec<PathRequest>,
        /// (name, verify its files)
        packages: Vec<(String, bool)>,
        heartbeat_interval: Duration,
    },
    Ack {
        seq: u64,
    },
    /// The answer to an agent's heartbeat, so the agent knows the controller is alive.
    Heartbeat {
        at_ms: i64,
    },
    /// For an operator's diff of a file the manifest allows it for.
    ContentRequest {
        id: u64,
        path: String,
        max_bytes: u64,
    },
}

/// What an operator asks to acknowledge.
pub struct AckRequest {
    pub host: String,
    pub resource: String,
    pub reason: String,
    /// The operator's name (from the certificate), or "local".
    pub by: String,
    pub expires_ms: Option<i64>,
}

/// Largest file a diff is made of.
pub const DIFF_MAX_BYTES: u64 = 256 * 1024;

/// Desired and actual content of a file, for a diff.
pub struct DiffContent {
    pub desired: Arc<Vec<u8>>,
    pub actual: Vec<u8>,
}

/// What an agent's state message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Only what changed since the agent's last message.
    Delta,
    /// A part of a snapshot whose last part is still to come: kept, not yet evaluated.
    SnapshotPart,
    /// A whole snapshot, or its last part: every declared path is evaluated.
    Snapshot,
}

pub enum Command {
    Connect {
        info: HostInfo,
        out: mpsc::Sender<ToAgent>,
        /// Whether a new stream for a host replaces its live one: under mutual TLS, where the
        /// certificate proves who connects. Without TLS anyone may claim any host id, so the
        /// live stream is kept and the newcomer refused.
        takeover: bool,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    State {
        conn: u64,
        report: Report,
        generation: u64,
        seq: u64,
        states: Vec<(String, Observation)>,
        /// Held until the fleet has handled the message (see `Turn`).
        turn: Turn,
    },
    Heard {
        conn: u64,
    },
    Coverage {
        conn: u64,
        coverage: Coverage,
    },
    Disconnected {
        conn: u64,
    },
    /// A (re)load of the manifest directory; `source` is its git commit, or its folder.
    Manifests {
        result: Result<ManifestSet, Vec<Diagnostic>>,
        source: String,
    },
    Tick,
    Hosts {
        reply: oneshot::Sender<Overview>,
    },
    Follow {
        hosts: Vec<String>,
        reply: oneshot::Sender<(Vec<Event>, broadcast::Receiver<Event>)>,
    },
    History {
        host: Option<String>,
        limit: u32,
        /// The events, and the log's head when they were read.
        reply: oneshot::Sender<Result<(Vec<Event>, crate::store::Head), String>>,
    },
    /// The content of a declared file, where policy allows, for `plumb diff`.
    Diff {
        host: String,
        path: String,
        reply: oneshot::Sender<Result<DiffContent, String>>,
    },
    Ack {
        req: AckRequest,
        reply: oneshot::Sender<Result<Ack, String>>,
    },
    RevokeAck {
        host: String,
        resource: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    ListAcks {
        reply: oneshot::Sender<Vec<Ack>>,
    },
    /// Answered at once: the fleet thread is alive (the systemd watchdog asks).
    Ping {
        reply: oneshot::Sender<()>,
    },
    /// The fleet's figures, for `/metrics`.
    Metrics {
        reply: oneshot::Sender<Metrics>,
    },
    /// An agent's answer to a content request.
    Content {
        conn: u64,
        id: u64,
        result: Result<Vec<u8>, String>,
    },
    Shutdown,
}

/// One of the few places a stream may hold in the fleet's queue; given back once its message
/// is handled. A host that sends as fast as it can then waits its turn, instead of filling the
/// queue every other host's messages wait in.
#[derive(Debug, Default)]
pub struct Turn(
    #[allow(dead_code, reason = "held, never read")] Option<tokio::sync::OwnedSemaphorePermit>,
);

impl Turn {
    /// Waits for one of `places`.
    pub async fn take(places: &Arc<tokio::sync::Semaphore>) -> Self {
        Self(places.clone().acquire_owned().await.ok())
    }
}

/// The fleet as the query API shows it.
#[derive(Debug, Clone)]
pub struct Overview {
    pub hosts: Vec<HostView>,
    /// Non-empty while a manifest change is rejected (the last good set stays in force).
    pub manifest_errors: Vec<String>,
    /// What is wrong with the controller itself (the store cannot write).
    pub warnings: Vec<String>,
}

/// Cheap to clone; every method is a message to the fleet thread.
#[derive(Clone)]
pub struct FleetHandle {
    tx: mpsc::Sender<Command>,
}

#[derive(Debug, thiserror::Error)]
#[error("the fleet thread has stopped")]
pub struct Stopped;

impl FleetHandle {
    pub async fn send(&self, cmd: Command) -> Result<(), Stopped> {
        self.tx.send(cmd).await.map_err(|_| Stopped)
    }

    pub fn try_send(&self, cmd: Command) {
        let _ = self.tx.try_send(cmd);
    }

    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| Stopped)
    }
}

pub struct Fleet {
    store: Box<dyn Store>,
    manifests: ManifestSet,
    manifest_errors: Vec<String>,
    /// What the event log last said about the manifest directory: a reload that finds the
    /// same again is not logged again (a reloader woken by unrelated writes filled the audit
    /// log with identical `manifests_accepted` entries, seven a second).
    manifests_logged: Option<ManifestOutcome>,
    hosts: BTreeMap<String, Host>,
    conn_host: HashMap<u64, String>,
    next_conn: u64,
    next_generation: u64,
    heartbeat_interval: Duration,
    events: broadcast::Sender<Event>,
    /// Diffs waiting for an agent's content: id -> (host, desired content, reply).
    pending_content: HashMap<u64, PendingContent>,
    next_content: u64,
    acks: Acks,
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
}

#[derive(PartialEq)]
enum ManifestOutcome {
    Accepted,
    Rejected(Vec<String>),
}

struct PendingContent {
    conn: u64,
    desired: Arc<Vec<u8>>,
    since: Instant,
    reply: oneshot::Sender<Result<DiffContent, String>>,
}

impl Fleet {
    /// Loads the known hosts and their open drift from the store: after a restart, every host
    /// is offline with its last known drift until its agent reconnects.
    pub fn new(
        store: impl Store + 'static,
        manifests: ManifestSet,
        heartbeat_interval: Duration,
    ) -> Result<Self, StoreError> {
        let mut hosts = BTreeMap::new();
        for stored in store.load_hosts()? {
            let mut drift: BTreeMap<String, Vec<DriftRecord>> = BTreeMap::new();
            for (origin, record) in stored.drift {
                drift.entry(origin).or_default().push(record);
            }
            let observed = store
                .load_observations(&stored.info.host_id)?
                .into_iter()
                .collect();
            hosts.insert(
                stored.info.host_id.clone(),
                Host {
                    desired: manifests.desired_for(&stored.info.identity()),
                    info: stored.info,
                    last_seen_ms: stored.last_seen_ms,
                    seen_stored_ms: stored.last_seen_ms,
                    conn: None,
                    generation: 0,
                    observed,
                    unstored: Default::default(),
                    evaluated: false,
                    drift,
                    coverage: None,
                },
            );
        }
        let (events, _) = broadcast::channel(FOLLOWER_QUEUE);
        let store_acks = store.load_acks()?;
        Ok(Self {
            store: Box::new(store),
            manifests,
            manifest_errors: Vec::new(),
            manifests_logged: None,
            hosts,
            conn_host: HashMap::new(),
            next_conn: 1,
            next_generation: 1,
            heartbeat_interval,
            events,
            pending_content: HashMap::new(),
            next_content: 1,
            acks: Acks::new(store_acks),
            clock: Arc::new(now_ms),
            counters: Counters::default(),
            webhooks: None,
            head_published: 0,
            head_published_at: Instant::now(),
            writes: Writes::default(),
            max_pending: MAX_PENDING,
            store_ok: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
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

    /// Makes `write` now, or keeps it behind the writes already waiting; the agent message
    /// `ack` names is acknowledged once it is in the store, never before. Followers hear of
    /// its events at once either way (with id 0 while they wait for the store).
    fn write(&mut self, write: Option<Write>, ack: Option<(u64, u64)>) {
        if self.writes.pending.is_empty() {
            let started = Instant::now();
            let result = match &write {
                Some(w) => self.store.apply(w),
                None => Ok(Vec::new()),
            };
            match result {
                Ok(events) => {
                    if write.is_some() {
                        self.counters.store.observe(started.elapsed().as_secs_f64());
                    }
                    if self.writes.failing.is_some() {
                        // Nothing was waiting: the failure was a touch, now past.
                        self.recovered();
                    }
                    for e in events {
                        self.publish(e);
                    }
                    self.send_ack(ack);
                    return;
                }
                Err(e) => {
                    self.writes.failed(self.now(), &e);
                    self.store_ok
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        if let Some(w) = &write {
            for e in w.events() {
                self.publish(e);
            }
        }
        if self.writes.pending.len() >= self.max_pending {
            // Not kept, and not acknowledged: the host is read again once the store writes.
            if let Some(w) = &write {
                self.writes.lose(w.host_id(), self.now());
            }
            return;
        }
        self.writes.keep(Pending { write, ack });
    }

    /// Makes the waiting writes, in order, as far as the store lets them.
    fn flush_writes(&mut self) {
        while let Some(p) = self.writes.pending.front() {
            if let Some(w) = &p.write
                && let Err(e) = self.store.apply(w)
            {
                self.writes.failed(self.now(), &e);
                return;
            }
            if let Some(p) = self.writes.pending.pop_front() {
                self.send_ack(p.ack);
            }
        }
        if self.writes.failing.is_some() {
            self.recovered();
        }
    }

    /// The store writes again and nothing waits: say so in the log itself, and read again the
    /// hosts whose writes could not be kept.
    fn recovered(&mut self) {
        let Some((since, error)) = self.writes.failing.take() else {
            return;
        };
        let now = self.now();
        let lost: Vec<String> = std::mem::take(&mut self.writes.lost).into_keys().collect();
        let summary = format!(
            "the store could not write from {} to {} ({error}); {} write(s) were made late, in order; {} could not be kept{}",
            rfc3339(since, false).unwrap_or_default(),
            rfc3339(now, false).unwrap_or_default(),
            self.writes.delayed,
            self.writes.dropped,
            if lost.is_empty() {
                String::new()
            } else {
                format!(", so these hosts were read again: {}", lost.join(", "))
            }
        );
        let record = DriftRecord {
            resource: "store".into(),
            attribute: "writes".into(),
            expected: "written when they happen".into(),
            actual: summary.clone(),
            since_ms: since,
            declared_at: String::new(),
        };
        match self
            .store
            .log("", now, EventKind::StoreOutage, Some(&record))
        {
            Ok(event) => self.publish(event),
            Err(e) => {
                self.writes.failing = Some((since, error));
                self.writes.failed(now, &e);
                self.writes.lost = lost.into_iter().map(|h| (h, since)).collect();
                return;
            }
        }
        tracing::warn!(%summary, "the store writes again");
        self.writes.delayed = 0;
        self.writes.dropped = 0;
        self.store_ok
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for host in lost {
            self.reread(&host);
        }
    }

    /// Forgets what the fleet holds of a host beyond its store (writes were dropped), and asks
    /// its agent for everything again: the snapshot is then judged against what the log says,
    /// so every difference is recorded, now.
    fn reread(&mut self, host_id: &str) {
        let stored = self
            .store
            .load_drift(host_id)
            .and_then(|d| Ok((d, self.store.load_observations(host_id)?)));
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        match stored {
            Ok((drift, observed)) => {
                host.drift.clear();
                for (origin, record) in drift {
                    host.drift.entry(origin).or_default().push(record);
                }
                host.observed = observed.into_iter().collect();
                host.unstored.clear();
            }
            Err(e) => {
                tracing::error!(host = host_id, error = %e, "cannot read back what the store holds of a host")
            }
        }
        // A new plan makes the agent send everything again.
        self.send_plan(host_id);
    }

    fn send_ack(&self, ack: Option<(u64, u64)>) {
        let Some((conn, seq)) = ack else { return };
        let out = self
            .conn_host
            .get(&conn)
            .and_then(|id| self.hosts.get(id))
            .and_then(|h| h.conn.as_ref())
            .filter(|c| c.id == conn);
        if let Some(c) = out {
            let _ = c.out.try_send(ToAgent::Ack { seq });
        }
    }

    /// Last-seen times: not events, so not kept when they cannot be written (they are written
    /// again later), but a failure still says the store cannot write.
    fn touch(&mut self, seen: &[(&str, i64)]) -> bool {
        match self.store.touch_hosts(seen) {
            Ok(()) => true,
            Err(e) => {
                self.writes.failed(self.now(), &e);
                self.store_ok
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }

    /// Starts the fleet thread; it runs until `Command::Shutdown` or every handle is dropped.
    pub fn spawn(self) -> std::io::Result<(FleetHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let thread = std::thread::Builder::new()
            .name("plumb-fleet".into())
            .spawn(move || self.run(rx))?;
        Ok((FleetHandle { tx }, thread))
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        self.publish_head();
        while let Some(cmd) = rx.blocking_recv() {
            if matches!(cmd, Command::Shutdown) {
                break;
            }
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
                takeover,
                reply,
            } => self.connect(info, out, takeover, reply)?,
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
            Command::Coverage { conn, mut coverage } => {
                let now = self.now();
                if let Some(host) = self.host_of(conn) {
                    let was = host.coverage.take();
                    coverage.degraded_since_ms = match (&was, coverage.degraded()) {
                        (_, false) => None,
                        (Some(w), true) if w.degraded() => w.degraded_since_ms,
                        (_, true) => Some(now),
                    };
                    if coverage.degraded() && was.as_ref().is_none_or(|w| !w.degraded()) {
                        tracing::warn!(host = %host.info.host_id, polled = coverage.polled.len(), errors = ?coverage.watch_errors, "coverage degraded");
                    }
                    host.coverage = Some(coverage);
                }
            }
            Command::Heard { conn } => {
                let now = self.now();
                if let Some(host) = self.host_of(conn) {
                    host.last_seen_ms = now;
                    if let Some(c) = host.conn.as_mut() {
                        c.last_heard = Instant::now();
                        let _ = c.out.try_send(ToAgent::Heartbeat { at_ms: now });
                    }
                }
            }
            Command::Disconnected { conn } => self.disconnected(conn, "stream closed")?,
            Command::Manifests { result, source } => self.manifests(result, &source)?,
            Command::Tick => self.tick()?,
            Command::Hosts { reply } => {
                let _ = reply.send(Overview {
                    hosts: self.hosts.values().map(|h| self.view(h)).collect(),
                    manifest_errors: self.manifest_errors.clone(),
                    warnings: self.writes.warning().into_iter().collect(),
                });
            }
            Command::Follow { hosts, reply } => {
                // Subscribing and reading the current drift in one step: nothing falls between.
                let rx = self.events.subscribe();
                let now = self.now();
                let current = self
                    .hosts
                    .values()
                    .filter(|h| hosts.is_empty() || hosts.contains(&h.info.host_id))
                    .flat_map(|h| {
                        h.view().drift.into_iter().map(|item| Event {
                            id: 0,
                            at_ms: now,
                            host_id: h.info.host_id.clone(),
                            kind: EventKind::Opened,
                            item: Some(item),
                        })
                    })
                    .collect();
                let _ = reply.send((current, rx));
            }
            Command::History { host, limit, reply } => {
                let _ = reply.send(
                    self.store
                        .history(host.as_deref(), limit)
                        .map(|events| (events, self.store.head().clone()))
                        .map_err(|e| e.to_string()),
                );
            }
            Command::Diff { host, path, reply } => self.diff(&host, &path, reply),
            Command::Ack { req, reply } => {
                let _ = reply.send(self.acknowledge(req));
            }
            Command::RevokeAck {
                host,
                resource,
                reply,
            } => {
                let _ = reply.send(self.revoke_now(&host, &resource));
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
            Command::Content { conn, id, result } => {
                if let Some(p) = self.pending_content.remove(&id).filter(|p| p.conn == conn) {
                    let _ = p.reply.send(result.map(|actual| DiffContent {
                        desired: p.desired,
                        actual,
                    }));
                }
            }
            Command::Shutdown => {}
        }
        Ok(())
    }

    /// Checks the manifest's policy for a diff and asks the agent for the content; the agent
    /// checks its own deny list again.
    fn diff(
        &mut self,
        host_id: &str,
        path: &str,
        reply: oneshot::Sender<Result<DiffContent, String>>,
    ) {
        let Some(host) = self.hosts.get(host_id) else {
            let _ = reply.send(Err(format!(
                "no host {host_id:?} is known to this controller"
            )));
            return;
        };
        let Some(decl) = host.desired.files.get(path) else {
            let _ = reply.send(Err(format!("{path} is not declared for {host_id}")));
            return;
        };
        let why_not = if decl.spec.sensitive {
            Some(format!(
                "{path} is declared sensitive ({}): its content never leaves the host",
                decl.declared_at
            ))
        } else if !decl.spec.diff {
            Some(format!(
                "{path} is not declared with diff: true ({}); its content stays on the host",
                decl.declared_at
            ))
        } else {
            None
        };
        if let Some(why) = why_not {
            let _ = reply.send(Err(why));
            return;
        }
        let (Some(desired), Some(conn)) = (decl.spec.desired_content.clone(), host.conn.as_ref())
        else {
            let _ = reply.send(Err(format!("{host_id} is offline; a diff needs the agent")));
            return;
        };
        let id = self.next_content;
        self.next_content += 1;
        let request = ToAgent::ContentRequest {
            id,
            path: path.to_owned(),
            max_bytes: DIFF_MAX_BYTES,
        };
        if conn.out.try_send(request).is_err() {
            let _ = reply.send(Err(format!("{host_id} is not reading its stream")));
            return;
        }
        self.pending_content.insert(
            id,
            PendingContent {
                conn: conn.id,
                desired,
                since: Instant::now(),
                reply,
            },
        );
    }

    /// Tells followers and webhooks, and counts the event. Webhooks get the log's head with an
    /// event the store holds (a copy of the head outside the store, for `audit verify --head`).
    fn publish(&mut self, event: Event) {
        *self.counters.events.entry(event.kind.as_str()).or_default() += 1;
        if let Some(hooks) = &self.webhooks {
            let head = self.store.head();
            let stored = event.id > 0 && head.last_id >= event.id;
            hooks.send(&event, stored.then_some(head));
        }
        let _ = self.events.send(event);
    }

    fn metrics(&self) -> Metrics {
        let mut hosts: BTreeMap<&'static str, u64> =
            ["in_sync", "drifted", "degraded", "offline", "unknown"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        for h in self.hosts.values() {
            *hosts.entry(h.status().as_str()).or_default() += 1;
        }
        let w = &self.writes;
        Metrics {
            hosts,
            drift_open: self
                .hosts
                .values()
                .map(|h| h.drift.values().map(Vec::len).sum::<usize>() as u64)
                .sum(),
            agent_streams: self.hosts.values().filter(|h| h.conn.is_some()).count() as u64,
            acknowledgements: self.acks.all().len() as u64,
            store_writable: w.failing.is_none(),
            store_pending_writes: w.pending.iter().filter(|p| p.write.is_some()).count() as u64,
            store_write_failures_total: w.failures_total,
            store_dropped_writes_total: w.dropped_total,
            events_total: self.counters.events.clone(),
            evaluation_seconds: self.counters.evaluation.clone(),
            store_seconds: self.counters.store.clone(),
            webhooks: self
                .webhooks
                .as_ref()
                .map(|h| h.counts())
                .unwrap_or_default(),
        }
    }

    fn view(&self, host: &Host) -> HostView {
        let mut view = host.view();
        view.acks = self.acks.of_host(&host.info.host_id);
        view
    }

    /// An operator's acknowledgement: made in the store at once, or refused.
    fn acknowledge(&mut self, req: AckRequest) -> Result<Ack, String> {
        self.refuse_while_failing()?;
        let Some(host) = self.hosts.get(&req.host) else {
            return Err(format!(
                "no host {:?} is known to this controller",
                req.host
            ));
        };
        if !host
            .drift
            .values()
            .flatten()
            .any(|d| d.resource == req.resource)
        {
            return Err(format!(
                "{} has no open drift on {}",
                req.host, req.resource
            ));
        }
        let now = self.now();
        if req.expires_ms.is_some_and(|e| e <= now) {
            return Err("the expiry is in the past".into());
        }
        let ack = Ack {
            host_id: req.host,
            resource: req.resource,
            reason: req.reason,
            by: req.by,
            at_ms: now,
            expires_ms: req.expires_ms,
        };
        match self.store.put_ack(&ack) {
            Ok(event) => self.publish(event),
            Err(e) => return Err(self.cannot_write(&e)),
        }
        self.acks.put(ack.clone());
        Ok(ack)
    }

    /// An operator's revocation: made in the store at once, or refused.
    fn revoke_now(&mut self, host: &str, resource: &str) -> Result<(), String> {
        self.refuse_while_failing()?;
        let Some(ack) = self.acks.remove(host, resource) else {
            return Err(format!("no acknowledgement for {resource} on {host}"));
        };
        match self.store.drop_ack(&ack, self.now(), EventKind::AckRevoked) {
            Ok(event) => {
                self.publish(event);
                Ok(())
            }
            Err(e) => {
                self.acks.put(ack);
                Err(self.cannot_write(&e))
            }
        }
    }

    /// An operator's change is not kept for later: it is refused while the store cannot write.
    fn refuse_while_failing(&self) -> Result<(), String> {
        match self.writes.warning() {
            Some(w) => Err(format!("{w}; try again once it writes")),
            None => Ok(()),
        }
    }

    fn cannot_write(&mut self, e: &StoreError) -> String {
        self.writes.failed(self.now(), e);
        self.store_ok
            .store(false, std::sync::atomic::Ordering::Relaxed);
        format!("the store cannot write ({e}); nothing was changed")
    }

    /// An acknowledgement the fleet ends (its drift resolved, or it expired).
    fn end_ack(&mut self, host: &str, resource: &str, kind: EventKind) {
        if let Some(ack) = self.acks.remove(host, resource) {
            let at_ms = self.now();
            self.write(Some(Write::DropAck { ack, at_ms, kind }), None);
        }
    }

    /// An acknowledgement covers the drift it was given for: once the resource has no open
    /// drift any more, it ends (a new drift there later is not pre-approved).
    fn release_acks(&mut self, host_id: &str) {
        let Some(host) = self.hosts.get(host_id) else {
            return;
        };
        let done: Vec<String> = self
            .acks
            .of_host(host_id)
            .into_iter()
            .filter(|a| {
                !host
                    .drift
                    .values()
                    .flatten()
                    .any(|d| d.resource == a.resource)
            })
            .map(|a| a.resource)
            .collect();
        for resource in done {
            self.end_ack(host_id, &resource, EventKind::AckRevoked);
        }
    }

    fn host_of(&mut self, conn: u64) -> Option<&mut Host> {
        let id = self.conn_host.get(&conn)?;
        self.hosts
            .get_mut(id)
            .filter(|h| h.conn.as_ref().is_some_and(|c| c.id == conn))
    }

    fn connect(
        &mut self,
        info: HostInfo,
        out: mpsc::Sender<ToAgent>,
        takeover: bool,
        reply: oneshot::Sender<Result<u64, String>>,
    ) -> Result<(), StoreError> {
        let live = self
            .hosts
            .get(&info.host_id)
            .and_then(|h| h.conn.as_ref().map(|c| c.since_ms));
        if let (Some(since), false) = (live, takeover) {
            tracing::warn!(host = %info.host_id, "refused a second stream for a host that has a live one (without TLS a host id proves nothing); keeping the first");
            let _ = reply.send(Err(format!(
                "host {:?} already has a live stream (connected {}); without TLS the first is kept. \
                 If this is the real agent, it is let in once the other stream ends or misses three heartbeats",
                info.host_id,
                rfc3339(since, false).unwrap_or_default()
            )));
            return Ok(());
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let now = self.now();
        let desired = self.manifests.desired_for(&info.identity());
        let host = self
            .hosts
            .entry(info.host_id.clone())
            .or_insert_with(|| Host {
                info: info.clone(),
                last_seen_ms: now,
                seen_stored_ms: now,
                conn: None,
                desired: desired.clone(),
                generation: 0,
                observed: HashMap::new(),
                unstored: Default::default(),
                evaluated: false,
                drift: BTreeMap::new(),
                coverage: None,
            });
        if let Some(old) = host.conn.take() {
            tracing::warn!(host = %info.host_id, "host connected again; replacing its previous stream");
            self.conn_host.remove(&old.id);
        }
        host.info = info;
        host.last_seen_ms = now;
        host.desired = desired;
        host.evaluated = false;
        host.coverage = None;
        host.conn = Some(Conn {
            id: conn,
            out,
            last_heard: Instant::now(),
            since_ms: now,
        });
        self.conn_host.insert(conn, host.info.host_id.clone());
        host.seen_stored_ms = now;
        tracing::info!(host = %host.info.host_id, manifests = ?host.desired.manifests, "agent connected");
        let id = host.info.host_id.clone();
        let info = host.info.clone();
        self.write(
            Some(Write::Host {
                info,
                last_seen_ms: now,
            }),
            None,
        );
        self.write(
            Some(Write::Log {
                host_id: id.clone(),
                at_ms: now,
                kind: EventKind::HostOnline,
                item: None,
            }),
            None,
        );
        let _ = reply.send(Ok(conn));
        self.send_plan(&id);
        Ok(())
    }

    fn send_plan(&mut self, host_id: &str) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        host.generation = generation;
        host.evaluated = false;
        let msg = ToAgent::Plan {
            generation,
            paths: plan::requests(&host.desired),
            packages: plan::packages(&host.desired),
            heartbeat_interval: self.heartbeat_interval,
        };
        let full = host
            .conn
            .as_ref()
            .is_some_and(|c| c.out.try_send(msg).is_err());
        if full {
            tracing::warn!(
                host = host_id,
                "agent is not reading its stream; closing it"
            );
            if let Some(c) = host.conn.take() {
                self.conn_host.remove(&c.id);
            }
        }
    }

    fn state(
        &mut self,
        conn: u64,
        report: Report,
        generation: u64,
        seq: u64,
        states: Vec<(String, Observation)>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let Some(host) = self.host_of(conn) else {
            return Ok(());
        };
        if let Some(c) = host.conn.as_mut() {
            c.last_heard = Instant::now();
        }
        host.last_seen_ms = now;
        if generation != host.generation {
            // State for an older plan: the agent sends a fresh snapshot for the new one.
            tracing::debug!(host = %host.info.host_id, generation, current = host.generation, "state for an old plan ignored");
            return Ok(());
        }
        let host_id = host.info.host_id.clone();
        let mut paths: Vec<String> = Vec::with_capacity(states.len());
        for (path, observed) in states {
            if host.desired.contains_key(&path) {
                paths.push(path.clone());
                if host.observed.get(&path) != Some(&observed) {
                    host.unstored.insert(path.clone());
                }
                host.observed.insert(path, observed);
            }
        }
        if report == Report::SnapshotPart {
            // Kept until the last part: a host is evaluated on its whole snapshot at once.
            if let Some(c) = host.conn.as_ref() {
                let _ = c.out.try_send(ToAgent::Ack { seq });
            }
            return Ok(());
        }
        if report == Report::Snapshot {
            // Everything declared is evaluated; drift of paths no longer declared is resolved.
            host.observed.retain(|p, _| host.desired.contains_key(p));
            host.unstored.retain(|p| host.desired.contains_key(p));
            host.evaluated = true;
            paths = host.desired.keys().collect();
            paths.extend(
                host.drift
                    .keys()
                    .filter(|p| !host.desired.contains_key(p))
                    .cloned(),
            );
        }
        self.evaluate(&host_id, &paths, Some((conn, seq)));
        Ok(())
    }

    /// Re-evaluates the given declared paths of one host, records what changed (with the
    /// observations that differ from the stored ones) and tells followers; `ack` is the agent
    /// message to acknowledge once that is in the store.
    fn evaluate(&mut self, host_id: &str, paths: &[String], ack: Option<(u64, u64)>) {
        let now = self.now();
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        let mut opened: Vec<(String, DriftRecord)> = Vec::new();
        let mut changed: Vec<(String, DriftRecord)> = Vec::new();
        let mut resolved: Vec<DriftRecord> = Vec::new();
        let mut observations: Vec<(String, Option<Observation>)> = Vec::new();
        for path in paths {
            let new = if !host.desired.contains_key(path) {
                // No longer declared: its drift is resolved.
                Vec::new()
            } else {
                match host.observed.get(path) {
                    // Declared but not observed yet: nothing known, nothing changes.
                    None => continue,
                    Some(obs) => drift::evaluate_key(&host.desired, path, obs),
                }
            };
            let observed = host.observed.get(path);
            // An unchanged observation is in the store already: only what differs is written
            // (a reconnecting agent's snapshot of 10,000 paths is then no 10,000-row write).
            if observed.is_none() || host.unstored.remove(path) {
                observations.push((path.clone(), observed.cloned()));
            }
            let old = host.drift.remove(path).unwrap_or_default();
            let r = reconcile(old, new, now);
            opened.extend(r.opened.into_iter().map(|d| (path.clone(), d)));
            changed.extend(r.changed.into_iter().map(|d| (path.clone(), d)));
            resolved.extend(r.resolved);
            if !r.open.is_empty() {
                host.drift.insert(path.clone(), r.open);
            }
        }
        let changes: Vec<Change> = opened
            .into_iter()
            .map(|(origin, record)| Change::Open { origin, record })
            .chain(
                changed
                    .into_iter()
                    .map(|(origin, record)| Change::Change { origin, record }),
            )
            .chain(
                resolved
                    .into_iter()
                    .map(|record| Change::Resolve { record }),
            )
            .collect();
        for c in &changes {
            let (kind, item) = match c {
                Change::Open { record, .. } => (EventKind::Opened, record),
                Change::Change { record, .. } => (EventKind::Changed, record),
                Change::Resolve { record } => (EventKind::Resolved, record),
            };
            tracing::info!(host = %host_id, event = %kind, resource = %item.resource, attribute = %item.attribute, expected = %item.expected, actual = %item.actual, "drift");
        }
        let write = (!changes.is_empty() || !observations.is_empty()).then(|| Write::Record {
            host_id: host_id.to_owned(),
            at_ms: now,
            observations,
            changes,
        });
        self.write(write, ack);
        self.release_acks(host_id);
    }

    fn disconnected(&mut self, conn: u64, why: &str) -> Result<(), StoreError> {
        let Some(id) = self.conn_host.remove(&conn) else {
            return Ok(());
        };
        let Some(host) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        if host.conn.as_ref().is_none_or(|c| c.id != conn) {
            return Ok(()); // an older stream of a host that has reconnected since
        }
        host.conn = None;
        tracing::warn!(host = %id, why, "agent offline; keeping its last known drift");
        let seen = host.last_seen_ms;
        if self.touch(&[(&id, seen)])
            && let Some(host) = self.hosts.get_mut(&id)
        {
            host.seen_stored_ms = seen;
        }
        let at_ms = self.now();
        self.write(
            Some(Write::Log {
                host_id: id,
                at_ms,
                kind: EventKind::HostOffline,
                item: None,
            }),
            None,
        );
        Ok(())
    }

    fn manifests(
        &mut self,
        result: Result<ManifestSet, Vec<Diagnostic>>,
        source: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let record = |summary: String| DriftRecord {
            resource: "manifests".into(),
            attribute: "set".into(),
            expected: String::new(),
            actual: summary,
            since_ms: now,
            declared_at: source.to_owned(),
        };
        let set = match result {
            Ok(set) => set,
            Err(errors) => {
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let outcome = Some(ManifestOutcome::Rejected(messages.clone()));
                if self.manifests_logged == outcome {
                    tracing::debug!("manifests reloaded: the same errors as before");
                    return Ok(());
                }
                for e in &errors {
                    tracing::error!("manifest rejected: {e}");
                }
                tracing::error!("manifest change rejected; the last good set stays in force");
                self.manifest_errors = messages;
                let first = errors
                    .first()
                    .map(|e| e.to_string().lines().next().unwrap_or_default().to_owned());
                let summary = format!(
                    "rejected, {} error(s): {}",
                    errors.len(),
                    first.unwrap_or_default()
                );
                self.write(
                    Some(Write::Log {
                        host_id: String::new(),
                        at_ms: now,
                        kind: EventKind::ManifestsRejected,
                        item: Some(record(summary)),
                    }),
                    None,
                );
                self.manifests_logged = outcome;
                return Ok(());
            }
        };
        let unchanged = set.same_as(&self.manifests);
        if unchanged && self.manifests_logged == Some(ManifestOutcome::Accepted) {
            tracing::debug!("manifests reloaded: nothing changed");
            return Ok(());
        }
        let summary = format!("{} manifests in force", set.manifests().len());
        self.write(
            Some(Write::Log {
                host_id: String::new(),
                at_ms: now,
                kind: EventKind::ManifestsAccepted,
                item: Some(record(summary)),
            }),
            None,
        );
        self.manifests_logged = Some(ManifestOutcome::Accepted);
        tracing::info!(manifests = set.manifests().len(), "manifest set in force");
        self.manifest_errors.clear();
        if unchanged {
            // The directory is back to the set in force (after a rejected change): nothing
            // to plan anew.
            return Ok(());
        }
        self.manifests = set;
        let ids: Vec<String> = self.hosts.keys().cloned().collect();
        for id in ids {
            let Some(host) = self.hosts.get_mut(&id) else {
                continue;
            };
            let desired = self.manifests.desired_for(&host.info.identity());
            if desired == host.desired {
                continue;
            }
            host.desired = desired;
            // Evaluate what is already known against the new declarations now; the agent's
            // snapshot for the new plan then brings the rest.
            let mut paths: Vec<String> = host.desired.keys().collect();
            paths.extend(
                host.drift
                    .keys()
                    .filter(|p| !host.desired.contains_key(p))
                    .cloned(),
            );
            host.observed.retain(|p, _| host.desired.contains_key(p));
            host.unstored.retain(|p| host.desired.contains_key(p));
            self.evaluate(&id, &paths, None);
            self.send_plan(&id);
        }
        Ok(())
    }

    /// Says where the event log's head is, in the controller's own log: a copy outside the
    /// store, for `plumb audit verify --head` to hold the store to later.
    fn publish_head(&mut self) {
        let head = self.store.head();
        if head.last_id == self.head_published {
            return;
        }
        self.head_published = head.last_id;
        self.head_published_at = Instant::now();
        tracing::info!(
            entry = head.last_id,
            hash = %head.hash,
            signature = %head.signature,
            public_key = %head.public_key,
            "audit head"
        );
    }

    fn tick(&mut self) -> Result<(), StoreError> {
        if self.head_published_at.elapsed() >= HEAD_PUBLISHED_EVERY {
            self.publish_head();
        }
        if self.writes.failing.is_some() {
            self.flush_writes();
        }
        for ack in self.acks.take_expired(self.now()) {
            tracing::info!(host = %ack.host_id, resource = %ack.resource, "acknowledgement expired; the drift counts again");
            let at_ms = self.now();
            self.write(
                Some(Write::DropAck {
                    ack,
                    at_ms,
                    kind: EventKind::AckExpired,
                }),
                None,
            );
        }
        // Agents that never answered a content request: give up (the caller has timed out).
        self.pending_content
            .retain(|_, p| p.since.elapsed() < Duration::from_secs(30));
        let limit = self.heartbeat_interval * MISSED_HEARTBEATS;
        let silent: Vec<u64> = self
            .hosts
            .values()
            .filter_map(|h| {
                h.conn
                    .as_ref()
                    .filter(|c| c.last_heard.elapsed() > limit)
                    .map(|c| c.id)
            })
            .collect();
        for conn in silent {
            self.disconnected(conn, "missed heartbeats")?;
        }
        let seen: Vec<(String, i64)> = self
            .hosts
            .values()
            .filter(|h| {
                h.conn.is_some() && h.last_seen_ms - h.seen_stored_ms >= SEEN_WRITE_EVERY_MS
            })
            .map(|h| (h.info.host_id.clone(), h.last_seen_ms))
            .collect();
        if !seen.is_empty() {
            let refs: Vec<(&str, i64)> = seen.iter().map(|(h, t)| (h.as_str(), *t)).collect();
            if self.touch(&refs) {
                for (id, at) in &seen {
                    if let Some(h) = self.hosts.get_mut(id) {
                        h.seen_stored_ms = *at;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
