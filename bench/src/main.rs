//! `plumb-bench`: measures plumb and prints numbers (see BENCHMARKS.md). Not a test: it never
//! fails on a slow figure, and CI does not run it.
//!
//!     cargo run --release -p plumb-bench -- all
//!
//! It builds and runs the release binaries (`plumb`, `plumb-agent`) as real processes on
//! loopback, in a temporary directory.

mod fixture;
mod footprint;
mod latency;
mod scan;

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
    },
    /// The agent's hashing of a generated tree against `sha256sum` over the same files.
    Scan {
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        files: Vec<usize>,
        /// Runs per size; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
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
    plumb_agent::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new()?;
    let mut summary = serde_json::Map::new();
    let (footprint, scan, latency) = match args.command {
        Command::All => (
            Some((vec![1000, 10_000], Duration::from_secs(60))),
            Some((vec![1000, 10_000], 5)),
            Some(1000),
        ),
        Command::Footprint { files, idle } => (Some((files, idle)), None, None),
        Command::Scan { files, runs } => (None, Some((files, runs)), None),
        Command::Latency { changes } => (None, None, Some(changes)),
    };
    if let Some((files, idle)) = footprint {
        summary.insert(
            "footprint".into(),
            runtime.block_on(footprint::run(&files, idle))?,
        );
    }
    if let Some((files, runs)) = scan {
        summary.insert("scan".into(), scan::run(&files, runs)?);
    }
    if let Some(changes) = latency {
        summary.insert("latency".into(), runtime.block_on(latency::run(changes))?);
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
