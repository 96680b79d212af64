//! One connection to the controller: Hello, then for every Plan arm the watches, scan, send a
//! Snapshot, and from then on send only Deltas of what really changed.

use std::collections::BTreeSet;
use std::hash::{BuildHasher as _, RandomState};
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use plumb_proto::v1;
use plumb_proto::{MAX_LISTED_ENTRIES, REPORT_BYTES};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::AgentConfig;
use crate::attribute::{Attribution, Who};
use crate::collect::IdCache;
use crate::collect::files::{Observation, Requests, observe_many};
use crate::collect::packages::PackageObservation;
use crate::message::{Coverage, Hello, Incoming, Outgoing, Plan, Report};
use crate::watch::{QUEUE, Watch, WatchMsg};
use crate::wire;

mod changes;
mod globs;
mod packages;
mod settling;
mod summaries;
#[cfg(test)]
mod tests;
use packages::Packages;
use settling::Settling;
use summaries::Summaries;

/// Messages queued for the controller; a full queue blocks the session (backpressure), while
/// the watcher's own queue absorbs and, past its size, coalesces into a rescan.
const OUTBOUND: usize = 64;
/// Paths observed at a time: a snapshot, or a rescan, holds this many observations, not the
/// whole plan's. They go as messages of about `REPORT_BYTES` each (`wire::split`).
const PART: usize = 256;
/// Heartbeat interval until the first plan says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// The controller is presumed gone after this many silent heartbeat intervals.
const MISSED_HEARTBEATS: u32 = 3;

/// How a session ended without error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Shutdown,
    /// The controller asked for a new stream (its reason): connect again at once.
    GoAway(String),
}

/// Runs one session until shutdown or an error. `planned` is set once a plan was applied, so
/// the caller can reset its backoff.
pub(crate) async fn run(
    cfg: &AgentConfig,
    channel: Channel,
    shutdown: &CancellationToken,
    planned: &mut bool,
    attribution: &Attribution,
) -> anyhow::Result<Ended> {
    let (out_tx, out_rx) = mpsc::channel::<Outgoing>(OUTBOUND);
    let root = cfg.root.clone();
    let facts = tokio::task::spawn_blocking(move || crate::collect::facts::collect(&root)).await?;
    send(
        &out_tx,
        Outgoing::Hello(Hello {
            host_id: cfg.host_id.clone(),
            labels: cfg.labels.clone(),
            facts,
        }),
    )
    .await?;
    let mut client = v1::agent_service_client::AgentServiceClient::new(channel);
    // The stream's edge: the session speaks its own messages, converted here as they go.
    let inbound = client
        .connect(ReceiverStream::new(out_rx).map(wire::outgoing_to_proto))
        .await
        .context("controller refused the stream")?
        .into_inner();
    let mut edge = wire::Inbound::default();
    let inbound = inbound.filter_map(move |m| incoming(&mut edge, m).transpose());
    // Read as it comes, so what the controller says while a scan keeps the session busy (an
    // acknowledgement a part) does not wait in h2.
    let inbound = wire::ReadAhead::new(inbound);
    converse(cfg, inbound, out_tx, shutdown, planned, attribution.clone()).await
}

/// A message from the stream in the session's terms (`None`: part of a plan, kept until the
/// last part); a malformed one ends the session.
fn incoming(
    edge: &mut wire::Inbound,
    m: Result<v1::ControllerMessage, tonic::Status>,
) -> anyhow::Result<Option<Incoming>> {
    let m = m.context("stream from the controller failed")?;
    edge.read(m)
        .context("rejected a malformed message from the controller")
}

/// The session proper, over any stream of messages from the controller: it answers on `out`.
async fn converse(
    cfg: &AgentConfig,
    inbound: impl Stream<Item = anyhow::Result<Incoming>>,
    out: mpsc::Sender<Outgoing>,
    shutdown: &CancellationToken,
    planned: &mut bool,
    attribution: Attribution,
) -> anyhow::Result<Ended> {
    let mut inbound = std::pin::pin!(inbound);
    let (watch_tx, mut watch_rx) = mpsc::channel(QUEUE);
    let mut s = State {
        cfg: cfg.clone(),
        out,
        seq: 0,
        generation: 0,
        requests: Arc::default(),
        watch: Watch::new(cfg.root.clone(), watch_tx, cfg.max_watches)
            .context("cannot start the file watcher")?,
        last_sent: Box::default(),
        fingerprints: RandomState::new(),
        dirty: BTreeSet::new(),
        touched: Vec::new(),
        settling: Settling::default(),
        rescan: false,
        ids: IdCache::default(),
        packages: Packages::default(),
        overflows: 0,
        last_full_scan_ms: 0,
        coverage_sent: None,
        coverage_due: false,
        acked: 0,
        unacked_since: None,
        summaries: Summaries::default(),
        held_until: None,
        attribution,
        expansion: None,
        heartbeat_every: DEFAULT_HEARTBEAT,
    };
    let mut poll = tokio::time::interval(cfg.poll_interval);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heartbeat = tokio::time::interval(s.heartbeat_every);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut rescan =
        tokio::time::interval_at(Instant::now() + cfg.rescan_interval, cfg.rescan_interval);
    rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut flush_at: Option<Instant> = None;

    loop {
        tokio::select! {
            // In this order: what the controller sent while the session was busy (a long
            // verification) is read before the heartbeat tick asks how long it has been silent.
            biased;
            _ = shutdown.cancelled() => return Ok(Ended::Shutdown),
            msg = inbound.next() => {
                let msg = msg.ok_or_else(|| anyhow!("controller closed the stream"))??;
                last_heard = Instant::now();
                match msg {
                    Incoming::Plan(plan) => {
                        if plan.heartbeat_interval_secs > 0 {
                            let every = Duration::from_secs(plan.heartbeat_interval_secs.into());
                            if every != s.heartbeat_every {
                                s.heartbeat_every = every;
                                heartbeat = tokio::time::interval(every);
                                heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
                            }
                        }
                        s.apply_plan(plan).await?;
                        *planned = true;
                        plumb_common::systemd::status(&format!(
                            "reporting to {}: {} paths declared",
                            s.cfg.controller,
                            s.requests.len()
                        ));
                    }
                    Incoming::Ack { seq } => s.acknowledged(seq),
                    Incoming::ContentRequest { id, path, max_bytes } => s.answer_content(id, path, max_bytes).await?,
                    Incoming::GoAway(reason) => return Ok(Ended::GoAway(reason)),
                    Incoming::Heartbeat => {}
                }
            }
            Some(msg) = watch_rx.recv() => {
                s.note(msg);
                // Drain what is already queued: under a burst, one flush covers it all.
                while let Ok(msg) = watch_rx.try_recv() {
                    s.note(msg);
                }
                if s.settling.quiet() {
                    // Every change seen is complete: observe and send now.
                    flush_at = None;
                    s.flush().await?;
                } else {
                    // A writer is still at work: wait for its close, at most the window.
                    flush_at.get_or_insert_with(|| Instant::now() + cfg.coalesce);
                }
            }
            _ = async { sleep_until(flush_at.unwrap_or_else(Instant::now)).await }, if flush_at.is_some() => {
                flush_at = None;
                s.flush().await?;
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > s.heartbeat_every * MISSED_HEARTBEATS {
                    bail!("controller silent for {:?}", last_heard.elapsed());
                }
                if s.unacked_since.is_some_and(|t| t.elapsed() >= cfg.ack_deadline) {
                    // The controller did not store what it was sent (its disk may be full): it
                    // acknowledges only what is in its store. Send everything again.
                    tracing::warn!(acked = s.acked, sent = s.seq, "the controller has confirmed storing nothing for {:?}; sending the whole state again", cfg.ack_deadline);
                    s.unacked_since = Some(Instant::now());
                    s.last_sent.fill(None);
                    s.summaries.clear();
                    s.rescan = true;
                    s.flush().await?;
                }
                send(&s.out, Outgoing::Heartbeat { sent_at_ms: now_ms() }).await?;
            }
            _ = async { sleep_until(s.held_until.unwrap_or_else(Instant::now)).await }, if s.held_until.is_some() => {
                s.flush().await?;
            }
            _ = async { sleep_until(s.packages.retry_at.unwrap_or_else(Instant::now)).await }, if s.packages.retry_at.is_some() => {
                s.packages.dirty = true;
                s.flush().await?;
            }
            _ = cfg.rescan_now.notified() => {
                tracing::info!("full rescan requested");
                s.rescan = true;
                s.flush().await?;
            }
            _ = rescan.tick() => {
                tracing::debug!("periodic full rescan");
                s.rescan = true;
                s.flush().await?;
            }
            _ = poll.tick() => {
                // Paths that could not be watched are observed here instead; watches that
                // failed are tried again.
                if !s.watch.failures.is_empty() {
                    s.watch.rearm(&[]);
                    s.follow_watches();
                    let polled = s.watch.unwatched();
                    s.dirty.extend(polled);
                    s.coverage_due = true;
                    s.flush().await?;
                }
            }
        }
    }
}

struct State {
    cfg: AgentConfig,
    out: mpsc::Sender<Outgoing>,
    seq: u64,
    generation: u64,
    requests: Arc<Requests>,
    watch: Watch,
    /// A fingerprint of what the controller last heard for each path (by its index in
    /// `requests`; none before the first snapshot part): only differences are sent.
    last_sent: Box<[Option<NonZeroU64>]>,
    /// Hashes observations into `last_sent` (keyed per process: a collision between two
    /// states of one path, which would hide a change, has odds of 2^-63).
    fingerprints: RandomState,
    dirty: BTreeSet<String>,
    /// Directories on the way to declared paths that changed: the watch set may move.
    touched: Vec<PathBuf>,
    /// Declared files mid-change: observing waits for them.
    settling: Settling,
    rescan: bool,
    ids: IdCache,
    packages: Packages,
    /// Event losses (kernel queue overflow, full internal queue) since the session started.
    overflows: u64,
    last_full_scan_ms: i64,
    /// What the controller last heard about coverage; resent only when it changes.
    coverage_sent: Option<Coverage>,
    /// The watch set may have changed: recompute coverage after this flush.
    coverage_due: bool,
    /// The highest seq the controller has acknowledged: it is stored there.
    acked: u64,
    /// Since when a state message waits for its acknowledgement with none arriving; `None`
    /// when everything sent is acknowledged.
    unacked_since: Option<Instant>,
    /// Summarised directories whose listings churn: sent at most once per hold.
    summaries: Summaries,
    /// When the first held listing is due.
    held_until: Option<Instant>,
    /// Who made each change, where the agent can tell.
    attribution: Attribution,
    /// The plan's globs and what they match, if it has any.
    expansion: Option<Box<globs::Expansion>>,
    /// How often the controller expects to hear from this agent.
    heartbeat_every: Duration,
}

impl State {
    /// The next seq, for a state message about to be sent.
    fn next_seq(&mut self) -> u64 {
        if self.acked >= self.seq {
            // Nothing was waiting: the clock starts with this message.
            self.unacked_since = Some(Instant::now());
        }
        self.seq += 1;
        self.seq
    }

    fn acknowledged(&mut self, seq: u64) {
        tracing::trace!(seq, "acknowledged");
        self.acked = self.acked.max(seq);
        // Progress: the clock starts again for what is still waiting, if anything.
        self.unacked_since = (self.acked < self.seq).then(Instant::now);
    }

    async fn apply_plan(&mut self, plan: Plan) -> anyhow::Result<()> {
        self.generation = plan.generation;
        self.expansion = None;
        self.requests = Arc::new(if plan.globs.is_empty() {
            plan.requests
        } else {
            self.expand_plan(plan.requests, plan.globs).await?
        });
        if let Some(a) = self.attribution.attributor() {
            a.plan(self.requests.clone());
        }
        let n = self.requests.len();
        self.last_sent = vec![None; n].into_boxed_slice();
        self.summaries.clear();
        self.packages.set(plan.packages, &self.cfg.root);
        if let Some(a) = self.attribution.attributor() {
            a.databases(self.packages.databases());
        }
        // Watches first: a change during the scan then shows up as an event afterwards.
        self.rewatch();
        // Empty while a package database is mid-transaction; a Delta follows once it settles.
        let mut packages = self.poll_packages().await?;
        let (mut start, mut parts) = (0, 0);
        loop {
            let end = n.min(start + PART);
            let observed = self.observe((start..end).collect()).await?;
            let files = self.sent(observed);
            let last = end == n;
            let report = Report {
                generation: self.generation,
                seq: 0,
                files,
                packages: if last {
                    std::mem::take(&mut packages)
                } else {
                    Vec::new()
                },
                // The state as found, not a change seen: no one to name.
                who: Default::default(),
            };
            let split = wire::split(report, REPORT_BYTES);
            let count = split.len();
            for (i, mut report) in split.into_iter().enumerate() {
                report.seq = self.next_seq();
                let more = !last || i + 1 < count;
                send(&self.out, Outgoing::Snapshot { report, more }).await?;
                parts += 1;
            }
            if last {
                break;
            }
            start = end;
        }
        tracing::info!(
            generation = self.generation,
            paths = n,
            parts,
            watches = self.watch.armed(),
            "plan applied; snapshot sent"
        );
        self.last_full_scan_ms = now_ms();
        self.coverage_sent = None;
        self.report_coverage().await
    }

    /// Runs `work` on a blocking thread (hashing, a glob's walk, package logs), the session
    /// still sending heartbeats meanwhile.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let done = tokio::task::spawn_blocking(work);
        Ok(beating(&self.out, self.heartbeat_every, done).await??)
    }

    /// Sends a file's content for an operator's diff, if the plan allows it for that path and
    /// the local deny list does not forbid it; otherwise says why not.
    async fn answer_content(
        &mut self,
        id: u64,
        path: String,
        max_bytes: u64,
    ) -> anyhow::Result<()> {
        /// No plan can ask for more than this, whatever it says.
        const HARD_CAP: u64 = 1 << 20;
        let allowed = self.requests.find(&path).is_some_and(|r| r.allow_content);
        let reply = if crate::denied(&self.cfg.deny_content, &path) {
            Err(format!(
                "{path} is on this agent's local deny list; no plan can override it"
            ))
        } else if !allowed {
            Err(format!(
                "the plan does not allow sending the content of {path}"
            ))
        } else {
            let (root, path, max) = (self.cfg.root.clone(), path.clone(), max_bytes.min(HARD_CAP));
            tokio::task::spawn_blocking(move || crate::collect::files::content(&root, &path, max))
                .await?
        };
        if let Err(why) = &reply {
            tracing::info!(path, why, "refused to send content");
        }
        send(&self.out, Outgoing::Content { id, reply }).await
    }

    /// Arms the watches for the declared files and whatever the packages need.
    fn rewatch(&mut self) {
        let globbed = self
            .expansion
            .iter()
            .flat_map(|e| e.dirs.iter().map(|d| (d.as_str(), true)));
        self.watch.set_paths(
            self.requests.clone(),
            self.packages.watch_paths().chain(globbed),
            self.packages.owned(),
        );
        self.follow_watches();
    }

    /// Attribution marks what is watched.
    fn follow_watches(&self) {
        if let Some(a) = self.attribution.attributor() {
            a.follow(self.watch.armed_dirs());
        }
    }

    fn note(&mut self, msg: WatchMsg) {
        match msg {
            WatchMsg::Rescan => {
                self.overflows += 1;
                self.rescan = true;
            }
            WatchMsg::Paths(changes) => {
                for (p, stage) in changes {
                    self.settling.note(&p, stage, self.watch.declares(&p));
                    if self.watch.affected(&p, &mut self.dirty) {
                        self.touched.push(p);
                    }
                }
            }
        }
    }

    /// Sends what changed, then the coverage if it may have changed.
    async fn flush(&mut self) -> anyhow::Result<()> {
        self.settling.clear();
        self.send_changes().await?;
        if std::mem::take(&mut self.coverage_due) {
            self.report_coverage().await?;
        }
        Ok(())
    }

    /// Tells the controller how well the plan is observed, when that changed.
    async fn report_coverage(&mut self) -> anyhow::Result<()> {
        let coverage = Coverage {
            watches: self.watch.armed(),
            watch_limit: self.watch.limit(),
            polled: self.watch.unwatched().into_iter().collect(),
            watch_errors: self
                .watch
                .failures
                .iter()
                .map(|(d, e)| format!("{}: {e}", d.display()))
                .chain(self.expansion.iter().flat_map(|e| e.over.iter().cloned()))
                .collect(),
            overflows: self.overflows,
            last_full_scan_ms: self.last_full_scan_ms,
            poll_interval: self.cfg.poll_interval,
            attribution: self.attribution.status(),
        };
        if self.coverage_sent.as_ref() == Some(&coverage) {
            return Ok(());
        }
        if !coverage.polled.is_empty() {
            tracing::warn!(
                polled = coverage.polled.len(),
                "some declared paths cannot be watched; polling them"
            );
        }
        self.coverage_sent = Some(coverage.clone());
        send(&self.out, Outgoing::Coverage(coverage)).await
    }
}

/// Awaits `work` (blocking work off the runtime: hashing, a whole host's package
/// verification) while still sending a heartbeat every `every`: the controller presumes an
/// agent that misses three gone, however busy it is.
async fn beating<T>(
    out: &mpsc::Sender<Outgoing>,
    every: Duration,
    work: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    let mut work = std::pin::pin!(work);
    let mut beat = tokio::time::interval_at(Instant::now() + every, every);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = beat.tick() => send(out, Outgoing::Heartbeat { sent_at_ms: now_ms() }).await?,
        }
    }
}

async fn send(out: &mpsc::Sender<Outgoing>, msg: Outgoing) -> anyhow::Result<()> {
    out.send(msg)
        .await
        .map_err(|_| anyhow!("stream to the controller closed"))
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
