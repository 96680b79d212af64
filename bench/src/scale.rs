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

/// One simulated agent: Hello, a Snapshot of its plan in sync, then Deltas as told and
/// heartbeats, reading everything the controller sends.
async fn agent(
    channel: tonic::transport::Channel,
    host: String,
    facts: Arc<Facts>,
    mut changes: mpsc::Receiver<Change>,
    connected: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(Outgoing::Hello(Hello {
        host_id: host,
        labels: BTreeMap::new(),
        facts: Facts::clone(&facts),
    }))
    .await?;
    let mut inbound = v1::agent_service_client::AgentServiceClient::new(channel)
        .connect(ReceiverStream::new(rx).map(wire::outgoing_to_proto))
        .await?
        .into_inner();
    connected.fetch_add(1, Ordering::Relaxed);
    let mut seq = 0;
    let mut plan: Option<Plan> = None;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            m = inbound.message() => {
                let Some(m) = m? else { return Ok(()) };
                if let Incoming::Plan(p) = wire::incoming_from_proto(m)? {
                    if p.heartbeat_interval_secs > 0 {
                        heartbeat = tokio::time::interval(Duration::from_secs(p.heartbeat_interval_secs.into()));
                    }
                    seq += 1;
                    let files = p.requests.iter().map(|r| observation(&r.path, IN_SYNC)).collect();
                    let report = Report { generation: p.generation, seq, files, packages: Vec::new() };
                    tx.send(Outgoing::Snapshot { report, more: false }).await?;
                    plan = Some(p);
                }
            }
            Some(c) = changes.recv() => {
                let Some(p) = &plan else { continue };
                let Some(r) = p.requests.get(c.file) else { continue };
                seq += 1;
                let file = observation(&r.path, if c.drifted { DRIFTED } else { IN_SYNC });
                tx.send(Outgoing::Delta(Report { generation: p.generation, seq, files: vec![file], packages: Vec::new() })).await?;
            }
            _ = heartbeat.tick() => {
                tx.send(Outgoing::Heartbeat { sent_at_ms: 0 }).await?;
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

/// N simulated agents of M files each, connected and in sync, against a controller on
/// `manifests` (which must hold `manifest(files)` as `load.yaml`).
pub(crate) struct SimulatedFleet {
    /// Held: the controller stops when the fleet is dropped.
    _controller: fixture::Proc,
    pub(crate) url: String,
    pub(crate) pid: u32,
    pub(crate) client: v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    senders: Vec<mpsc::Sender<Change>>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    files: usize,
    /// How long until every agent was in sync.
    pub(crate) ramp: Duration,
    rng: fixture::Rng,
    drifted: Vec<bool>,
}

/// What a spell of changes found.
pub(crate) struct Changes {
    /// Delta sent → event seen, sorted, in ms.
    pub(crate) latencies: Vec<f64>,
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
    pub(crate) async fn start(
        manifests: &std::path::Path,
        data: &std::path::Path,
        n: usize,
        streams_per_connection: usize,
        files: usize,
    ) -> anyhow::Result<Self> {
        let facts = Arc::new(plumb_agent::collect::facts::collect(
            &plumb_agent::root::Root::new(None),
        ));
        let (controller, url) = fixture::controller(manifests, data, &[])?;
        let pid = controller.pid();
        // Connect everyone, a few hundred at a time, as a fleet after a controller restart.
        let start = Instant::now();
        let connected = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let mut channel = None;
        for i in 0..n {
            if i % streams_per_connection.max(1) == 0 {
                // Connected by its first stream; the next K-1 agents share it.
                channel = Some(
                    tonic::transport::Endpoint::from_shared(url.clone())?
                        .tcp_nodelay(true)
                        .connect_timeout(Duration::from_secs(30))
                        .connect_lazy(),
                );
            }
            let channel = channel.clone().expect("set for the first agent");
            let (tx, rx) = mpsc::channel(64);
            senders.push(tx);
            tasks.push(tokio::spawn(agent(
                channel,
                format!("load-{i:05}"),
                facts.clone(),
                rx,
                connected.clone(),
            )));
            while i + 1 - connected.load(Ordering::Relaxed) > 256 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut client = fixture::query(&url).await?;
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
            _controller: controller,
            url,
            pid,
            client,
            senders,
            tasks,
            files,
            ramp: start.elapsed(),
            rng: fixture::Rng::new(n as u64),
            drifted: vec![false; n * files],
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
        let seen: Arc<Mutex<Vec<f64>>> = Default::default();
        let latencies = seen.clone();
        let collector = tokio::spawn(async move {
            while let Some(Ok(e)) = events.next().await {
                let Some(item) = e.item else { continue };
                if let Some(t0) = pending.lock().await.remove(&(e.host_id, item.resource)) {
                    latencies
                        .lock()
                        .await
                        .push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
        });
        let total = (rate as f64 * duration.as_secs_f64()) as usize;
        let cpu0 = fixture::cpu_time(self.pid)?;
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
        let cpu_percent =
            (fixture::cpu_time(self.pid)? - cpu0).as_secs_f64() / busy.as_secs_f64() * 100.0;
        let unseen = sent.lock().await.len();
        collector.abort();
        let mut latencies = std::mem::take(&mut *seen.lock().await);
        latencies.sort_by(f64::total_cmp);
        Ok(Changes {
            latencies,
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

pub(crate) async fn run(
    sizes: &[usize],
    streams_per_connection: usize,
    files: usize,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &n in sizes {
        let tmp = tempfile::tempdir()?;
        let manifests = tmp.path().join("manifests");
        std::fs::create_dir_all(&manifests)?;
        std::fs::write(manifests.join("load.yaml"), manifest(files))?;
        let mut fleet = SimulatedFleet::start(
            &manifests,
            &tmp.path().join("data"),
            n,
            streams_per_connection,
            files,
        )
        .await?;
        let (pid, url) = (fleet.pid, fleet.url.clone());

        // At rest: heartbeats only.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu0 = fixture::cpu_time(pid)?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let rest_cpu = (fixture::cpu_time(pid)? - cpu0).as_secs_f64() / 10.0;
        let rest = fixture::memory(pid)?;
        let (drift_ms, drift_bytes) = cli_ms(&url, &["drift"])?;
        let (hosts_ms, hosts_bytes) = cli_ms(&url, &["hosts"])?;

        let c = fleet.changes(rate, duration).await?;
        let under_load = fixture::memory(pid)?;
        let ramp = fleet.ramp;
        drop(fleet);
        let mib = |kib: u64| kib as f64 / 1024.0;
        let per = if streams_per_connection > 1 {
            format!(" ({streams_per_connection} per connection)")
        } else {
            String::new()
        };
        println!(
            "scale: {n} agents{per} x {files} files: all in sync after {:.1} s; at rest: RSS {:.0} MiB, CPU {:.1}%; \
             plumb drift -o json {drift_ms:.0} ms ({} KiB), plumb hosts -o json {hosts_ms:.0} ms ({} KiB); \
             {rate} changes/s: detection p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} unseen; CPU {:.1}%, RSS {:.0} MiB",
            ramp.as_secs_f64(),
            mib(rest.rss),
            rest_cpu * 100.0,
            drift_bytes / 1024,
            hosts_bytes / 1024,
            c.q(0.5),
            c.q(0.99),
            c.q(1.0),
            c.unseen,
            c.cpu_percent,
            mib(under_load.rss),
        );
        results.push(json!({
            "agents": n,
            "streams_per_connection": streams_per_connection.max(1),
            "files_per_agent": files,
            "all_in_sync_s": ramp.as_secs_f64(),
            "rest_rss_mib": mib(rest.rss),
            "rest_cpu_percent": rest_cpu * 100.0,
            "drift_json_ms": drift_ms,
            "hosts_json_ms": hosts_ms,
            "changes_per_s": rate,
            "changes": c.total,
            "detection_p50_ms": c.q(0.5),
            "detection_p99_ms": c.q(0.99),
            "detection_max_ms": c.q(1.0),
            "unseen": c.unseen,
            "busy_cpu_percent": c.cpu_percent,
            "busy_rss_mib": mib(under_load.rss),
            "peak_rss_mib": mib(under_load.peak),
        }));
    }
    Ok(json!({ "results": results }))
}
