//! `plumb-bench`: measures plumb and prints numbers (see BENCHMARKS.md). Not a test: it never
//! fails on a slow figure, and CI does not run it.
//!
//!     cargo run --release -p plumb-bench -- all
//!
//! It builds and runs the release binaries (`plumb`, `plumb-agent`) as real processes on
//! loopback, in a temporary directory.

mod attribution;
mod console;
mod failover;
mod fixture;
mod footprint;
mod hostile;
mod latency;
mod moment;
mod packages;
mod peers;
mod pulse;
mod scale;
mod scan;
mod simulated;
mod store;
mod sync;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// plumb's benchmarks; each prints its figures as it goes and a JSON summary at the end.
#[derive(Parser)]
#[command(name = "plumb-bench")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every benchmark with its default sizes.
    All,
    /// RSS and CPU of an idle agent watching N declared files; binary sizes.
    Footprint {
        /// Declared files (comma-separated list).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        files: Vec<usize>,
        /// How long the agent is watched at rest.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        idle: Duration,
        /// With `--attribution fanotify` (root).
        #[arg(long)]
        attribution: bool,
    },
    /// The agent's hashing of a generated tree against `sha256sum` over the same files.
    Scan {
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        files: Vec<usize>,
        /// Runs per size; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Threads hashing at once (comma-separated list; the agent's `--scan-threads`).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
    },
    /// Initial sync against its floor: agent start to in sync over N declared files (40 to
    /// an exclusive directory), beside `openssl dgst -sha256` on one core over the same files,
    /// with a warm and (as root) a cold page cache; then the agent at rest.
    Sync {
        #[arg(long, value_delimiter = ',', default_value = "10000")]
        files: Vec<usize>,
        /// Page caches to start from (comma-separated): warm, cold (root: drops the caches).
        #[arg(long, value_delimiter = ',', default_value = "warm,cold", value_parser = sync::Cache::parse)]
        cache: Vec<sync::Cache>,
        /// Runs per size and cache; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// How long the agent is watched at rest once in sync (0s: not at all).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        idle: Duration,
    },
    /// Whole-host package verification: every installed package with `verify_files: true`,
    /// an agent on this machine's root, agent start to evaluated, beside `md5sum -c` over the
    /// same files on one core; warm and (as root) cold; for each scan thread count.
    Packages {
        #[arg(long, value_delimiter = ',', default_value = "warm,cold", value_parser = sync::Cache::parse)]
        cache: Vec<sync::Cache>,
        /// The agent's `--scan-threads` (comma-separated list).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// How long the agent is left at rest once evaluated, before its RSS is read (0s: not).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        idle: Duration,
    },
    /// A load generator speaking the agent protocol: N streams of M files against one
    /// controller, then changes at a steady rate.
    Scale {
        /// Simulated agents (comma-separated list).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        agents: Vec<usize>,
        /// Agents sharing one HTTP/2 connection (1: each its own, like real agents). More lets
        /// N pass the open-files limit, but understates the controller's memory per agent.
        #[arg(long, default_value_t = 1)]
        streams_per_connection: usize,
        /// Declared files per agent.
        #[arg(long, default_value_t = 100)]
        files: usize,
        /// Changes per second, spread over random agents and files.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// How long changes are made.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Where the controllers keep their state (comma-separated list): sqlite, postgres (a
        /// throwaway server of this machine's PostgreSQL, with its default durability), or a
        /// postgres:// URL of an empty database.
        #[arg(long, value_delimiter = ',', default_value = "sqlite")]
        store: Vec<String>,
        /// Controllers sharing each PostgreSQL store (comma-separated list); agent i streams
        /// to controller i mod K, and queries go to the first.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        controllers: Vec<usize>,
        /// Then 10 s spells at 500, 1000, 2000… changes/s until p99 passes 1 s.
        #[arg(long)]
        sweep: bool,
        /// The files compared among the agents (one `baseline:` group of all of them) instead
        /// of declared with digests: a change makes its host the odd one out.
        #[arg(long)]
        baseline: bool,
    },
    /// The web console over a big fleet: N simulated agents of M files, some drifted; each
    /// page's time from request to whole answer over loopback (median and p99) and size.
    /// The fleet at a past moment: a store of N hosts and M log entries over 30 days, asked
    /// what stood early, midway and late, and for an hour of the log (`plumb drift --at`,
    /// `plumb history --between`).
    Moment {
        #[arg(long, default_value_t = 10_000)]
        hosts: usize,
        #[arg(long, default_value_t = 1_000_000)]
        entries: usize,
        /// sqlite, postgres (a throwaway server of this machine's), or a postgres:// URL.
        #[arg(long, value_delimiter = ',', default_value = "sqlite")]
        store: Vec<String>,
    },
    Console {
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        #[arg(long, default_value_t = 100)]
        files: usize,
        /// Changes a second for 5 s, spread over random hosts and files, to drift them.
        #[arg(long, default_value_t = 400)]
        drift_rate: u32,
        /// Requests per page.
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Failover: N simulated agents spread over K controllers on one PostgreSQL store; the
    /// first controller is killed (SIGKILL); the time until each of its agents streams to
    /// another and is in sync there.
    Failover {
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        #[arg(long, default_value_t = 100)]
        files: usize,
        #[arg(long, default_value_t = 2)]
        controllers: usize,
        /// postgres (a throwaway server) or a postgres:// URL of an empty database.
        #[arg(long, default_value = "postgres")]
        store: String,
    },
    /// A hostile host: N simulated agents make changes, alone and then while one real
    /// agent's exclusive directory churns through E entries, created and removed over and
    /// over; the others' detection latency side by side.
    Hostile {
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
    /// (For `hostile`: churns a directory until killed.)
    #[command(hide = true)]
    Churn {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long)]
        entries: usize,
        #[arg(long)]
        rounds: std::path::PathBuf,
    },
    /// The same changes to the same tree, found by AIDE (when installed) and by plumb.
    Peers {
        #[arg(long, default_value_t = 10_000)]
        files: usize,
    },
    /// Who made each change: the share of short-lived writers named (sed -i, a shell writing
    /// in place), with and without `--attribution fanotify`, its latency, CPU and RSS. Root.
    Attribution {
        /// Changes per writer.
        #[arg(long, default_value_t = 1000)]
        changes: usize,
    },
    /// The floors under heartbeats and memory per agent: a bare TCP server, and plumb's agent
    /// service on tonic with nothing behind it, each hearing (and answering) a heartbeat per
    /// connection every interval; compare `scale`'s controller at rest.
    Pulse {
        /// Servers (comma-separated): tcp (a bare TCP server), grpc (plumb's agent service on
        /// tonic with nothing behind it).
        #[arg(long, value_delimiter = ',', default_value = "tcp,grpc")]
        server: Vec<pulse::Kind>,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Intervals between one connection's messages (comma-separated list). 5s is an
        /// agent's heartbeat; 500ms on 10,000 connections is 100,000 agents' rate.
        #[arg(long, value_delimiter = ',', default_value = "5s,500ms", value_parser = humantime::parse_duration)]
        interval: Vec<Duration>,
        /// How long the server's CPU is measured.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
    /// (For `pulse`: the bare server, until killed.)
    #[command(hide = true)]
    PulseServe {
        #[arg(long)]
        kind: pulse::Kind,
        #[arg(long)]
        answer: bool,
    },
    /// Write to a declared file → drift event on the query service's watch.
    Latency {
        /// Changes per kind of write (in place, rename-save).
        #[arg(long, default_value_t = 1000)]
        changes: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    plumb_common::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new()?;
    let mut summary = serde_json::Map::new();
    let mut peers = None;
    let mut hostile = None;
    let mut attribution = None;
    let (footprint, scan, latency, scale) = match args.command {
        Command::Churn {
            dir,
            entries,
            rounds,
        } => return hostile::churn(&dir, entries, &rounds),
        Command::PulseServe { kind, answer } => return pulse::serve(kind, answer),
        Command::Pulse {
            server,
            connections,
            interval,
            duration,
        } => {
            summary.insert(
                "pulse".into(),
                runtime.block_on(pulse::run(&server, connections, &interval, duration))?,
            );
            (None, None, None, None)
        }
        Command::Attribution { changes } => {
            attribution = Some(changes);
            (None, None, None, None)
        }
        Command::Peers { files } => {
            peers = Some(files);
            (None, None, None, None)
        }
        Command::Hostile {
            agents,
            entries,
            rate,
            duration,
        } => {
            hostile = Some((agents, entries, rate, duration));
            (None, None, None, None)
        }
        Command::All => {
            peers = Some(10_000);
            attribution = Some(1000);
            hostile = Some((1000, 100_000, 200, Duration::from_secs(20)));
            (
                Some((vec![1000, 10_000], Duration::from_secs(60), false)),
                Some((vec![1000, 10_000], 5, vec![1, 2])),
                Some(1000),
                Some(scale::Options {
                    agents: vec![1000, 10_000],
                    streams_per_connection: 1,
                    files: 100,
                    rate: 200,
                    duration: Duration::from_secs(30),
                    stores: vec!["sqlite".into()],
                    controllers: vec![1],
                    sweep: false,
                    baseline: false,
                }),
            )
        }
        Command::Footprint {
            files,
            idle,
            attribution,
        } => (Some((files, idle, attribution)), None, None, None),
        Command::Scan {
            files,
            runs,
            threads,
        } => (None, Some((files, runs, threads)), None, None),
        Command::Packages {
            cache,
            threads,
            idle,
        } => {
            summary.insert(
                "packages".into(),
                runtime.block_on(packages::run(&cache, &threads, idle))?,
            );
            (None, None, None, None)
        }
        Command::Sync {
            files,
            cache,
            runs,
            idle,
        } => {
            summary.insert(
                "sync".into(),
                runtime.block_on(sync::run(&files, &cache, runs, idle))?,
            );
            (None, None, None, None)
        }
        Command::Latency { changes } => (None, None, Some(changes), None),
        Command::Scale {
            agents,
            streams_per_connection,
            files,
            rate,
            duration,
            store,
            controllers,
            sweep,
            baseline,
        } => (
            None,
            None,
            None,
            Some(scale::Options {
                agents,
                streams_per_connection,
                files,
                rate,
                duration,
                stores: store,
                controllers,
                sweep,
                baseline,
            }),
        ),
        Command::Moment {
            hosts,
            entries,
            store,
        } => {
            let runs = store
                .iter()
                .map(|s| moment::run(hosts, entries, s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            summary.insert("moment".into(), serde_json::Value::Array(runs));
            (None, None, None, None)
        }
        Command::Console {
            agents,
            files,
            drift_rate,
            runs,
        } => {
            summary.insert(
                "console".into(),
                runtime.block_on(console::run(agents, files, drift_rate, runs))?,
            );
            (None, None, None, None)
        }
        Command::Failover {
            agents,
            files,
            controllers,
            store,
        } => {
            let store = store::Store::parse(&store)?;
            summary.insert(
                "failover".into(),
                runtime.block_on(failover::run(agents, files, controllers, &store))?,
            );
            (None, None, None, None)
        }
    };
    if let Some((files, idle, attribution)) = footprint {
        summary.insert(
            "footprint".into(),
            runtime.block_on(footprint::run(&files, idle, attribution))?,
        );
    }
    if let Some((files, runs, threads)) = scan {
        summary.insert("scan".into(), scan::run(&files, runs, &threads)?);
    }
    if let Some(changes) = latency {
        summary.insert("latency".into(), runtime.block_on(latency::run(changes))?);
    }
    if let Some(opts) = scale {
        summary.insert("scale".into(), runtime.block_on(scale::run(opts))?);
    }
    if let Some((agents, entries, rate, duration)) = hostile {
        summary.insert(
            "hostile".into(),
            runtime.block_on(hostile::run(agents, entries, rate, duration))?,
        );
    }
    if let Some(changes) = attribution {
        summary.insert(
            "attribution".into(),
            runtime.block_on(attribution::run(changes))?,
        );
    }
    if let Some(files) = peers {
        summary.insert("peers".into(), runtime.block_on(peers::run(files))?);
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
