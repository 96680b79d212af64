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
//!
//! `--store postgres --controllers K` runs K controllers on one PostgreSQL store (`store.rs`):
//! agent i streams to controller i mod K, the first answers the queries and the watch, and the
//! latency of hosts streaming to the others (what the store's tail adds) is reported apart.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plumb_proto::v1;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::StreamExt as _;

use crate::fixture;
use crate::simulated::{Change, IN_SYNC, agent};
use crate::store::Store;

/// The `f`th of `files` declared files. Numbered to one width, so that the plan's order (by
/// path) is the files' order, which the simulated agents go by: `f1000` would sort before
/// `f101`.
fn load_path(f: usize, files: usize) -> String {
    let width = files.saturating_sub(1).to_string().len().max(3);
    format!("/etc/load/f{f:0width$}.conf")
}

/// The same files, compared among the agents (`--baseline`) rather than declared.
fn baseline_manifest(files: usize) -> String {
    let mut out = String::from("name: load\nhosts: [\"load-*\"]\nbaseline:\n  files:\n");
    for f in 0..files {
        out.push_str(&format!("    - {}\n", load_path(f, files)));
    }
    out
}

pub(crate) fn manifest(files: usize) -> String {
    let mut out = String::from("name: load\nhosts: [\"load-*\"]\nfiles:\n");
    for f in 0..files {
        out.push_str(&format!(
            "  {}:\n    sha256: {IN_SYNC}\n",
            load_path(f, files)
        ));
    }
    out
}

async fn in_sync_count(
    client: &mut v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
) -> anyhow::Result<usize> {
    let hosts = client
        .list_hosts(v1::ListHostsRequest::default())
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
    /// More `plumb serve` arguments, for every controller.
    pub(crate) extra: Vec<String>,
}

/// An error if one of the simulated agents has ended, with what ended it.
async fn ended(tasks: &mut Vec<tokio::task::JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    if let Some(failed) = tasks.iter().position(|t| t.is_finished()) {
        let t = tasks.swap_remove(failed);
        anyhow::bail!("a simulated agent ended: {:?}", t.await);
    }
    Ok(())
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
            let mut extra: Vec<&str> = match &site.store {
                Some(url) => vec!["--store", url, "--audit-key", &key],
                None => Vec::new(),
            };
            extra.extend(site.extra.iter().map(String::as_str));
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
                // One the controller refused (a protocol it does not speak) never connects.
                ended(&mut tasks).await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut client = fixture::query(&urls[0]).await?;
        loop {
            if in_sync_count(&mut client).await? >= n {
                break;
            }
            ended(&mut tasks).await?;
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
                format!("file:{}", load_path(file, files)),
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
    /// The files compared among the agents instead of declared (`baseline_manifest`).
    pub(crate) baseline: bool,
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
    let text = if opts.baseline {
        baseline_manifest(files)
    } else {
        manifest(files)
    };
    std::fs::write(manifests.join("load.yaml"), text)?;
    let site = Site {
        store: store.fresh(),
        controllers: k,
        extra: Vec::new(),
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
    let remote = if k > 1 {
        format!(" (hosts on other controllers: p99 {remote_p99:.1} ms)")
    } else {
        String::new()
    };
    let drift_each: Vec<String> = drift.iter().map(|(ms, _)| format!("{ms:.0}")).collect();
    println!(
        "scale: {}{} x{k}, {n} agents{per} x {files} files: all in sync after {:.1} s; at rest: RSS {:?} MiB, CPU {:.1}%; \
         plumb drift -o json {} ms ({} KiB), plumb hosts -o json {hosts_ms:.0} ms ({} KiB); database {}; \
         {rate} changes/s: detection p50 {:.1} ms, p99 {:.1} ms{remote}, max {:.1} ms, {} unseen; CPU {:.1}%, RSS {:?} MiB{}",
        store.label(),
        if opts.baseline { " (a baseline)" } else { "" },
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
        "baseline": opts.baseline,
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
