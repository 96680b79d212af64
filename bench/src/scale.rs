//! Controller scale: a load generator opens N agent streams, each declaring M files, speaking
//! plumb.v1 with the agent's own message code (`plumb_agent::wire`), then changes files at a
//! steady rate. Reported: the time until all N are in sync, the controller's RSS and CPU at
//! rest and under changes, `plumb drift -o json` and `plumb hosts -o json` times over N hosts,
//! and detection latency (delta sent → event on `WatchDrift`) at that rate.
//!
//! The load generator shares the machine's two cores with the controller: the figures are
//! an upper bound on the controller's own cost.
//!
//! Each simulated agent has its own HTTP/2 connection, as real agents do, unless
//! `--streams-per-connection K` puts K agents' streams on one connection: that lets N pass the
//! open-files limit of one process (20,000 here, for the load generator and the controller
//! alike) to find where detection latency gives out, at the price of understating the
//! controller's memory per agent (about 40 KiB of buffers per connection).

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plumb_agent::collect::facts::Facts;
use plumb_agent::collect::files::{Kind, Observation};
use plumb_agent::message::{Hello, Incoming, Outgoing, Plan, Report};
use plumb_agent::wire;
use plumb_proto::v1;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use crate::fixture;

/// Digests a declared file flips between: the declared one (in sync) and another (drift).
const IN_SYNC: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const DRIFTED: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn observation(path: &str, sha256: &str) -> Observation {
    Observation {
        path: path.to_owned(),
        kind: Kind::File,
        link_target: None,
        resolved_kind: Kind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        owner: Some("root".into()),
        group: Some("root".into()),
        size: 512,
        sha256: Some(sha256.to_owned()),
        contains: Vec::new(),
        entries: Vec::new(),
        entries_total: 0,
        error: None,
    }
}

/// One file of one host flips to `drifted` (or back).
struct Change {
    file: usize,
    drifted: bool,
}

/// One simulated agent: Hello, a Snapshot of its plan (in sync but for the files told to
/// drift), then Deltas as told and heartbeats, reading everything the controller sends. Given
/// several controllers, it starts at `first` and moves to the next when its stream is lost, as
/// the real agent does (after a pause of 125 to 250 ms), and says in `resynced` when a
/// controller it moved to acknowledged its snapshot. With one, a lost stream ends it.
async fn agent(
    channels: Vec<tonic::transport::Channel>,
    first: usize,
    host: String,
    facts: Arc<Facts>,
    mut changes: mpsc::Receiver<Change>,
    connected: Arc<AtomicUsize>,
    resynced: Arc<std::sync::Mutex<Vec<Instant>>>,
) -> anyhow::Result<()> {
    let mut drifted: std::collections::BTreeSet<usize> = Default::default();
    let mut at = first;
    let mut moved = false;
    loop {
        let channel = channels[at % channels.len()].clone();
        let session = Session {
            host: &host,
            facts: &facts,
            connected: (!moved).then_some(&connected),
            resynced: moved.then_some(&resynced),
        };
        match session.run(channel, &mut changes, &mut drifted).await {
            Ok(()) => return Ok(()),
            Err(e) if channels.len() == 1 => return Err(e),
            Err(_) => {
                at += 1;
                moved = true;
                let seed = host
                    .bytes()
                    .fold(at as u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
                let pause = 125 + fixture::Rng::new(seed).next() % 125;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}

/// One stream of a simulated agent.
struct Session<'a> {
    host: &'a str,
    facts: &'a Facts,
    /// Counted once the stream is open (an agent's first).
    connected: Option<&'a AtomicUsize>,
    /// Told when its snapshot is acknowledged (a stream after a move).
    resynced: Option<&'a std::sync::Mutex<Vec<Instant>>>,
}

impl Session<'_> {
    /// Until the controller ends the stream (`Err`), or the agent is no longer told changes.
    async fn run(
        self,
        channel: tonic::transport::Channel,
        changes: &mut mpsc::Receiver<Change>,
        drifted: &mut std::collections::BTreeSet<usize>,
    ) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel(16);
        tx.send(Outgoing::Hello(Hello {
            host_id: self.host.to_owned(),
            labels: BTreeMap::new(),
            facts: self.facts.clone(),
        }))
        .await?;
        let mut inbound = v1::agent_service_client::AgentServiceClient::new(channel)
            .connect(ReceiverStream::new(rx).map(wire::outgoing_to_proto))
            .await?
            .into_inner();
        if let Some(c) = self.connected {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let mut seq = 0;
        let mut snapshot_seq = None;
        let mut plan: Option<Plan> = None;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
        let digest = |drifted: &std::collections::BTreeSet<usize>, f: usize| {
            if drifted.contains(&f) {
                DRIFTED
            } else {
                IN_SYNC
            }
        };
        loop {
            tokio::select! {
                m = inbound.message() => {
                    let m = m?.ok_or_else(|| anyhow::anyhow!("the controller ended the stream"))?;
                    match wire::incoming_from_proto(m)? {
                        Incoming::Plan(p) => {
                            if p.heartbeat_interval_secs > 0 {
                                heartbeat = tokio::time::interval(Duration::from_secs(p.heartbeat_interval_secs.into()));
                            }
                            seq += 1;
                            let files = p.requests.iter().enumerate()
                                .map(|(f, r)| observation(&r.path, digest(drifted, f)))
                                .collect();
                            let report = Report { generation: p.generation, seq, files, packages: Vec::new() };
                            tx.send(Outgoing::Snapshot { report, more: false }).await?;
                            snapshot_seq = Some(seq);
                            plan = Some(p);
                        }
                        Incoming::Ack { seq: acked } => {
                            if let (Some(r), Some(s)) = (self.resynced, snapshot_seq)
                                && acked >= s
                            {
                                r.lock().expect("lock").push(Instant::now());
                                snapshot_seq = None;
                            }
                        }
                        Incoming::GoAway(_) => anyhow::bail!("asked to go"),
                        _ => {}
                    }
                }
                c = changes.recv() => {
                    let Some(c) = c else { return Ok(()) };
                    if c.drifted { drifted.insert(c.file); } else { drifted.remove(&c.file); }
                    let Some(p) = &plan else { continue };
                    let Some(r) = p.requests.get(c.file) else { continue };
                    seq += 1;
                    let file = observation(&r.path, digest(drifted, c.file));
                    tx.send(Outgoing::Delta(Report { generation: p.generation, seq, files: vec![file], packages: Vec::new() })).await?;
                }
                _ = heartbeat.tick() => {
                    tx.send(Outgoing::Heartbeat { sent_at_ms: 0 }).await?;
                }
            }
        }
    }
}

pub(crate) fn manifest(files: usize) -> String {
    let mut out = String::from("name: load\nhosts: [\"load-*\"]\nfiles:\n");
    for f in 0..files {
        out.push_str(&format!(
            "  /etc/load/f{f:03}.conf:\n    sha256: {IN_SYNC}\n"
        ));
    }
    out
}

async fn in_sync_count(
    client: &mut v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
) -> anyhow::Result<usize> {
    let hosts = client
        .list_hosts(v1::ListHostsRequest {})
        .await?
        .into_inner();
    Ok(hosts
        .hosts
        .iter()
        .filter(|h| h.status == v1::HostStatus::InSync as i32)
        .count())
}

/// The median wall time of `plumb ARGS -o json` against the controller, and its output size.
fn cli_ms(url: &str, args: &[&str]) -> anyhow::Result<(f64, usize)> {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new(fixture::bin("plumb")?)
            .args(args)
            .args(["-o", "json", "--controller", url])
            .output()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            out.status.code().is_some_and(|c| c == 0 || c == 2),
            "plumb {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        size = out.stdout.len();
    }
    Ok((fixture::median(times), size))
}

/// Where the controllers of a simulated fleet keep their state, and how many there are.
#[derive(Debug, Clone, Default)]
pub(crate) struct Site {
    /// `--store` (a PostgreSQL URL); `None`: SQLite in each data directory.
    pub(crate) store: Option<String>,
    /// Controllers on it (more than one only on a shared store); agent i starts at i % K.
    pub(crate) controllers: usize,
}

/// N simulated agents of M files each, connected and in sync, against controllers on
/// `manifests` (which must hold `manifest(files)` as `load.yaml`).
pub(crate) struct SimulatedFleet {
    /// Held: the controllers stop when the fleet is dropped. The first answers queries.
    pub(crate) controllers: Vec<fixture::Proc>,
    pub(crate) urls: Vec<String>,
    pub(crate) url: String,
    pub(crate) client: v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    senders: Vec<mpsc::Sender<Change>>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    files: usize,
    /// How long until every agent was in sync.
    pub(crate) ramp: Duration,
    rng: fixture::Rng,
    drifted: Vec<bool>,
    /// When agents that moved to another controller had their snapshot acknowledged there.
    pub(crate) resynced: Arc<std::sync::Mutex<Vec<Instant>>>,
}

/// What a spell of changes found.
pub(crate) struct Changes {
    /// Delta sent → event seen, sorted, in ms.
    pub(crate) latencies: Vec<f64>,
    /// Those of hosts streaming to another controller than the one watched: what the store's
    /// tail adds.
    pub(crate) remote: Vec<f64>,
    pub(crate) total: usize,
    /// Changes whose event never came.
    pub(crate) unseen: usize,
    pub(crate) cpu_percent: f64,
}

impl Changes {
    pub(crate) fn q(&self, x: f64) -> f64 {
        fixture::quantile(&self.latencies, x)
    }
}

impl SimulatedFleet {
    /// The controllers' process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.controllers.iter().map(|c| c.pid()).collect()
    }

    pub(crate) async fn start(
        manifests: &std::path::Path,
        data: &std::path::Path,
        n: usize,
        streams_per_connection: usize,
        files: usize,
        site: &Site,
    ) -> anyhow::Result<Self> {
        let facts = Arc::new(plumb_agent::collect::facts::collect(
            &plumb_agent::root::Root::new(None),
        ));
        let key = data.join("audit.key").display().to_string();
        let mut controllers = Vec::new();
        let mut urls = Vec::new();
        for k in 0..site.controllers.max(1) {
            let extra: Vec<&str> = match &site.store {
                Some(url) => vec!["--store", url, "--audit-key", &key],
                None => Vec::new(),
            };
            let (proc, url) = fixture::controller(manifests, &data.join(format!("c{k}")), &extra)?;
            controllers.push(proc);
            urls.push(url);
        }
        // Connect everyone, a few hundred at a time, as a fleet after a controller restart.
        let start = Instant::now();
        let connected = Arc::new(AtomicUsize::new(0));
        let resynced: Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let mut channels = Vec::new();
        for i in 0..n {
            if i % streams_per_connection.max(1) == 0 {
                // Connected by its first stream; the next K-1 agents share them.
                channels = urls
                    .iter()
                    .map(|url| {
                        Ok(tonic::transport::Endpoint::from_shared(url.clone())?
                            .tcp_nodelay(true)
                            .connect_timeout(Duration::from_secs(30))
                            .connect_lazy())
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
            }
            let (tx, rx) = mpsc::channel(64);
            senders.push(tx);
            tasks.push(tokio::spawn(agent(
                channels.clone(),
                i % urls.len(),
                format!("load-{i:05}"),
                facts.clone(),
                rx,
                connected.clone(),
                resynced.clone(),
            )));
            while i + 1 - connected.load(Ordering::Relaxed) > 256 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut client = fixture::query(&urls[0]).await?;
        loop {
            if in_sync_count(&mut client).await? >= n {
                break;
            }
            if let Some(failed) = tasks.iter().position(|t| t.is_finished()) {
                let t = tasks.swap_remove(failed);
                anyhow::bail!("a simulated agent ended: {:?}", t.await);
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(600),
                "not all {n} hosts in sync after 10 min"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            url: urls[0].clone(),
            controllers,
            urls,
            client,
            senders,
            tasks,
            files,
            ramp: start.elapsed(),
            rng: fixture::Rng::new(n as u64),
            drifted: vec![false; n * files],
            resynced,
        })
    }

    /// Changes at `rate` per second for `duration`, spread over random agents and files; each
    /// one's latency from its Delta to its event on `WatchDrift`.
    pub(crate) async fn changes(
        &mut self,
        rate: u32,
        duration: Duration,
    ) -> anyhow::Result<Changes> {
        let n = self.senders.len();
        let files = self.files;
        let sent: Arc<Mutex<HashMap<(String, String), Instant>>> = Default::default();
        let mut events = self
            .client
            .watch_drift(v1::WatchDriftRequest { hosts: Vec::new() })
            .await?
            .into_inner();
        let pending = sent.clone();
        // (ms, whether the host streams to another controller than the one watched)
        let seen: Arc<Mutex<Vec<(f64, bool)>>> = Default::default();
        let latencies = seen.clone();
        let k = self.urls.len();
        let collector = tokio::spawn(async move {
            while let Some(Ok(e)) = events.next().await {
                let Some(item) = e.item else { continue };
                let remote = e
                    .host_id
                    .strip_prefix("load-")
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| i % k != 0);
                if let Some(t0) = pending.lock().await.remove(&(e.host_id, item.resource)) {
                    latencies
                        .lock()
                        .await
                        .push((t0.elapsed().as_secs_f64() * 1e3, remote));
                }
            }
        });
        let total = (rate as f64 * duration.as_secs_f64()) as usize;
        let pids = self.pids();
        let cpu = |pids: &[u32]| -> anyhow::Result<Duration> {
            pids.iter().map(|p| fixture::cpu_time(*p)).sum()
        };
        let cpu0 = cpu(&pids)?;
        let changes_start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..total {
            tick.tick().await;
            let host = (self.rng.next() % n as u64) as usize;
            let file = (self.rng.next() % files as u64) as usize;
            let key = (
                format!("load-{host:05}"),
                format!("file:/etc/load/f{file:03}.conf"),
            );
            let flag = &mut self.drifted[host * files + file];
            *flag = !*flag;
            sent.lock().await.insert(key, Instant::now());
            self.senders[host]
                .send(Change {
                    file,
                    drifted: *flag,
                })
                .await
                .map_err(|_| anyhow::anyhow!("simulated agent {host} is gone"))?;
        }
        // Wait for the last events to arrive, then stop collecting.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sent.lock().await.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let busy = changes_start.elapsed();
        let cpu_percent = (cpu(&pids)? - cpu0).as_secs_f64() / busy.as_secs_f64() * 100.0;
        let unseen = sent.lock().await.len();
        collector.abort();
        let seen = std::mem::take(&mut *seen.lock().await);
        let sorted = |keep: &dyn Fn(bool) -> bool| {
            let mut v: Vec<f64> = seen
                .iter()
                .filter(|(_, r)| keep(*r))
                .map(|(ms, _)| *ms)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        Ok(Changes {
            latencies: sorted(&|_| true),
            remote: sorted(&|r| r),
            total,
            unseen,
            cpu_percent,
        })
    }
}

impl Drop for SimulatedFleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What `plumb-bench scale` runs.
pub(crate) struct Options {
    pub(crate) agents: Vec<usize>,
    pub(crate) streams_per_connection: usize,
    pub(crate) files: usize,
    pub(crate) rate: u32,
    pub(crate) duration: Duration,
    /// `sqlite`, `postgres` (a throwaway server of this machine's PostgreSQL, with its default
    /// durability), or a `postgres://` URL.
    pub(crate) stores: Vec<String>,
    /// Controllers on each shared store.
    pub(crate) controllers: Vec<usize>,
    /// After the spell at `rate`, spells at rising rates until p99 passes 1 s.
    pub(crate) sweep: bool,
}

/// A store a benchmark runs on, and how to ask it its size.
pub(crate) enum Store {
    Sqlite,
    Throwaway(plumb_testkit::Postgres),
    Url(String),
}

impl Store {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "sqlite" => Self::Sqlite,
            "postgres" => {
                Self::Throwaway(plumb_testkit::Postgres::own_durable().ok_or_else(|| {
                    anyhow::anyhow!("--store postgres needs Debian's postgresql package here")
                })?)
            }
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Self::Url(url.to_owned())
            }
            other => anyhow::bail!("--store {other:?}: sqlite, postgres or a postgres:// URL"),
        })
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Throwaway(_) | Self::Url(_) => "PostgreSQL",
        }
    }

    /// A new, empty place for one run: `None` for SQLite (each controller's data directory).
    /// A URL given is used as it is (it must be empty).
    pub(crate) fn fresh(&self) -> Option<String> {
        match self {
            Self::Sqlite => None,
            Self::Throwaway(pg) => Some(pg.database()),
            Self::Url(url) => Some(url.clone()),
        }
    }

    /// The database's size in bytes, where it can be asked.
    pub(crate) fn size(&self, url: &str) -> Option<u64> {
        self.count(url, "SELECT pg_database_size(current_database())")
    }

    /// The one number `sql` returns in the database at `url`, where it can be asked.
    pub(crate) fn count(&self, url: &str, sql: &str) -> Option<u64> {
        self.text(url, sql)?.parse().ok()
    }

    /// What `sql` returns in the database at `url` (one value), where it can be asked.
    pub(crate) fn text(&self, url: &str, sql: &str) -> Option<String> {
        let text = match self {
            Self::Sqlite => return None,
            Self::Throwaway(pg) => pg.query(url, sql),
            Self::Url(_) => {
                let out = Command::new("psql")
                    .args([url, "--no-psqlrc", "--tuples-only", "--no-align"])
                    .args(["--command", sql])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
        };
        (!text.is_empty()).then_some(text)
    }
}

pub(crate) async fn run(opts: Options) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for store in &opts.stores {
        let store = Store::parse(store)?;
        for &k in &opts.controllers {
            if matches!(store, Store::Sqlite) && k != 1 {
                println!("scale: SQLite is one controller's; --controllers {k} is left out for it");
                continue;
            }
            for &n in &opts.agents {
                results.push(run_one(&opts, &store, k, n).await?);
            }
        }
    }
    Ok(json!({ "results": results }))
}

async fn run_one(opts: &Options, store: &Store, k: usize, n: usize) -> anyhow::Result<Value> {
    let (files, rate, streams_per_connection) =
        (opts.files, opts.rate, opts.streams_per_connection);
    let tmp = tempfile::tempdir()?;
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("load.yaml"), manifest(files))?;
    let site = Site {
        store: store.fresh(),
        controllers: k,
    };
    let mut fleet = SimulatedFleet::start(
        &manifests,
        &tmp.path().join("data"),
        n,
        streams_per_connection,
        files,
        &site,
    )
    .await?;
    let pids = fleet.pids();
    let urls = fleet.urls.clone();

    // At rest: heartbeats only.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = |pids: &[u32]| -> anyhow::Result<Duration> {
        pids.iter().map(|p| fixture::cpu_time(*p)).sum()
    };
    let cpu0 = cpu(&pids)?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rest_cpu = (cpu(&pids)? - cpu0).as_secs_f64() / 10.0;
    let rest: Vec<fixture::Memory> = pids
        .iter()
        .map(|p| fixture::memory(*p))
        .collect::<anyhow::Result<_>>()?;
    let mut drift = Vec::new();
    for url in &urls {
        drift.push(cli_ms(url, &["drift"])?);
    }
    let drift_bytes = drift[0].1;
    let (hosts_ms, hosts_bytes) = cli_ms(&urls[0], &["hosts"])?;
    let db_bytes = site.store.as_deref().and_then(|url| store.size(url));

    let c = fleet.changes(rate, opts.duration).await?;
    let mut sustained = None;
    if opts.sweep {
        for r in [500, 1000, 2000, 4000, 8000] {
            let s = fleet.changes(r, Duration::from_secs(10)).await?;
            println!(
                "scale: sweep {r} changes/s: p50 {:.1} ms, p99 {:.1} ms, {} unseen, CPU {:.0}%",
                s.q(0.5),
                s.q(0.99),
                s.unseen,
                s.cpu_percent
            );
            if s.q(0.99) > 1000.0 || s.unseen > 0 {
                break;
            }
            sustained = Some(r);
        }
    }
    let under_load: Vec<fixture::Memory> = pids
        .iter()
        .map(|p| fixture::memory(*p))
        .collect::<anyhow::Result<_>>()?;
    let ramp = fleet.ramp;
    drop(fleet);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rss = |m: &[fixture::Memory]| m.iter().map(|m| mib(m.rss)).collect::<Vec<f64>>();
    let per = if streams_per_connection > 1 {
        format!(" ({streams_per_connection} per connection)")
    } else {
        String::new()
    };
    let remote_p99 = fixture::quantile(&c.remote, 0.99);
    let drift_each: Vec<String> = drift.iter().map(|(ms, _)| format!("{ms:.0}")).collect();
    println!(
        "scale: {} x{k}, {n} agents{per} x {files} files: all in sync after {:.1} s; at rest: RSS {:?} MiB, CPU {:.1}%; \
         plumb drift -o json {} ms ({} KiB), plumb hosts -o json {hosts_ms:.0} ms ({} KiB); database {}; \
         {rate} changes/s: detection p50 {:.1} ms, p99 {:.1} ms (hosts on other controllers: p99 {remote_p99:.1} ms), max {:.1} ms, {} unseen; CPU {:.1}%, RSS {:?} MiB{}",
        store.label(),
        ramp.as_secs_f64(),
        rss(&rest).iter().map(|r| r.round()).collect::<Vec<_>>(),
        rest_cpu * 100.0,
        drift_each.join(" / "),
        drift_bytes / 1024,
        hosts_bytes / 1024,
        db_bytes.map_or("-".to_owned(), |b| format!(
            "{} MiB, {:.1} KiB per host",
            b >> 20,
            b as f64 / 1024.0 / n as f64
        )),
        c.q(0.5),
        c.q(0.99),
        c.q(1.0),
        c.unseen,
        c.cpu_percent,
        rss(&under_load)
            .iter()
            .map(|r| r.round())
            .collect::<Vec<_>>(),
        sustained.map_or(String::new(), |r| format!(
            "; sustained up to {r} changes/s with p99 under 1 s"
        )),
    );
    Ok(json!({
        "store": store.label(),
        "controllers": k,
        "agents": n,
        "streams_per_connection": streams_per_connection.max(1),
        "files_per_agent": files,
        "all_in_sync_s": ramp.as_secs_f64(),
        "rest_rss_mib": rss(&rest),
        "rest_cpu_percent": rest_cpu * 100.0,
        "drift_json_ms": drift.iter().map(|(ms, _)| *ms).collect::<Vec<f64>>(),
        "hosts_json_ms": hosts_ms,
        "database_bytes": db_bytes,
        "changes_per_s": rate,
        "changes": c.total,
        "detection_p50_ms": c.q(0.5),
        "detection_p99_ms": c.q(0.99),
        "detection_p99_other_controllers_ms": remote_p99,
        "detection_max_ms": c.q(1.0),
        "unseen": c.unseen,
        "busy_cpu_percent": c.cpu_percent,
        "busy_rss_mib": rss(&under_load),
        "sustained_changes_per_s": sustained,
        "peak_rss_mib": under_load.iter().map(|m| mib(m.peak)).collect::<Vec<f64>>(),
    }))
}
