//! Initial sync against its floor: from the agent's start to its host in sync in `plumb
//! hosts`, over a tree of N declared files (200 B to 64 KiB, plus one 1 MiB file per 1,000),
//! 40 to a directory and every directory declared `exclusive: true`; beside it, `openssl dgst
//! -sha256` over the same files on one core, which is the floor the agent is held to. Both
//! with a warm page cache and, as root, a cold one (the caches dropped before each). Then the
//! agent at rest: its RSS and CPU once in sync.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{fixture, scan};

/// Files to a directory: 10,000 files make 250 exclusive directories, as the issue measured.
const PER_DIR: usize = 40;

/// Declared paths to a manifest file, whole directories at a time: a manifest file may be at
/// most 4 MiB (about 30,000 paths declared by digest), so 100,000 files go in several.
const PATHS_PER_MANIFEST: usize = 10_000;

/// Which page cache a run starts with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cache {
    Warm,
    Cold,
}

impl Cache {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        }
    }

    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "warm" => Ok(Cache::Warm),
            "cold" => Ok(Cache::Cold),
            other => anyhow::bail!("--cache takes warm or cold, not {other:?}"),
        }
    }

    /// Drops the page cache for a cold run (root only); says whether it could.
    pub(crate) fn prepare(self) -> bool {
        match self {
            Cache::Warm => true,
            Cache::Cold => {
                let synced = Command::new("sync").status().is_ok_and(|s| s.success());
                synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
            }
        }
    }
}

/// The manifests (`bench-N.yaml`), each of whole directories of `paths`.
fn write_manifests(dir: &Path, root: &Path, paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut start = 0;
    for i in 0.. {
        if start == paths.len() {
            break;
        }
        let mut end = (start + PATHS_PER_MANIFEST).min(paths.len());
        while end < paths.len() && paths[end].parent() == paths[end - 1].parent() {
            end += 1;
        }
        let text = manifest(root, &paths[start..end])?.replacen(
            "name: bench\n",
            &format!("name: bench-{i}\n"),
            1,
        );
        std::fs::write(dir.join(format!("bench-{i}.yaml")), text)?;
        start = end;
    }
    Ok(())
}

/// A manifest: every file by digest, every directory exclusive.
fn manifest(root: &Path, paths: &[PathBuf]) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut text = fixture::manifest(root, paths)?;
    let mut dirs: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    dirs.dedup();
    for dir in dirs {
        let declared = Path::new("/").join(dir.strip_prefix(root)?);
        writeln!(text, "  {}:\n    exclusive: true", declared.display())?;
    }
    Ok(text)
}

/// One agent start to in sync, with its CPU time by then.
struct Sync {
    wall: f64,
    cpu: f64,
    /// The controller's, from the agent's start to in sync (on the same machine here).
    controller_cpu: f64,
    peak_mib: f64,
}

async fn agent_sync(
    dir: &Path,
    manifests: &Path,
    root: &Path,
    cache: Cache,
) -> anyhow::Result<Sync> {
    let data = tempfile::tempdir_in(dir)?;
    let (controller, url) = fixture::controller(manifests, data.path(), &[])?;
    let controller_cpu0 = fixture::cpu_time(controller.pid())?;
    // The controller has read its manifests; the cache is dropped after, so only the agent's
    // reads are cold.
    cache.prepare();
    let start = Instant::now();
    let agent = fixture::agent(&url, "bench", root)?;
    fixture::wait_in_sync(&url, "bench", Duration::from_secs(600)).await?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = fixture::cpu_time(agent.pid())?.as_secs_f64();
    let peak_mib = fixture::memory(agent.pid())?.peak as f64 / 1024.0;
    let controller_cpu = (fixture::cpu_time(controller.pid())? - controller_cpu0).as_secs_f64();
    Ok(Sync {
        wall,
        cpu,
        controller_cpu,
        peak_mib,
    })
}

pub(crate) async fn run(
    sizes: &[usize],
    caches: &[Cache],
    runs: usize,
    idle: Duration,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "openssl is not installed: it is this benchmark's floor"
    );
    let mut results = Vec::new();
    for &n in sizes {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        let paths = fixture::tree_in(&root, n, (n / 1000).max(1), PER_DIR)?;
        let bytes: u64 = paths
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()))
            .sum::<Result<u64, _>>()?;
        let mb = bytes as f64 / 1e6;
        let manifests = tmp.path().join("manifests");
        std::fs::create_dir_all(&manifests)?;
        write_manifests(&manifests, &root, &paths)?;
        let dirs = paths.len().div_ceil(PER_DIR);
        for &cache in caches {
            if !cache.prepare() {
                println!(
                    "sync: {} files: a cold cache needs root (/proc/sys/vm/drop_caches): skipped",
                    paths.len()
                );
                continue;
            }
            // Warm: once of each first, so both read from memory.
            if cache == Cache::Warm {
                scan::openssl(&paths)?;
                agent_sync(tmp.path(), &manifests, &root, cache).await?;
            }
            let (mut floor, mut wall, mut cpu, mut peak, mut ccpu) =
                (vec![], vec![], vec![], vec![], vec![]);
            for _ in 0..runs {
                cache.prepare();
                floor.push(scan::openssl(&paths)?);
                let s = agent_sync(tmp.path(), &manifests, &root, cache).await?;
                wall.push(s.wall);
                cpu.push(s.cpu);
                peak.push(s.peak_mib);
                ccpu.push(s.controller_cpu);
            }
            let (floor, wall) = (fixture::median(floor), fixture::median(wall));
            let (cpu, peak) = (fixture::median(cpu), fixture::median(peak));
            let ccpu = fixture::median(ccpu);
            println!(
                "sync: {} files ({mb:.0} MB, {dirs} exclusive directories), {} cache: agent start to in sync {:.0} ms ({:.0} MB/s, CPU {:.0} ms, peak RSS {peak:.1} MiB; the controller's CPU {:.0} ms); openssl dgst -sha256 {:.0} ms ({:.0} MB/s): {:.2}x the floor",
                paths.len(),
                cache.name(),
                wall * 1e3,
                mb / wall,
                cpu * 1e3,
                ccpu * 1e3,
                floor * 1e3,
                mb / floor,
                wall / floor,
            );
            results.push(json!({
                "files": paths.len(),
                "megabytes": mb,
                "exclusive_dirs": dirs,
                "cache": cache.name(),
                "runs": runs,
                "agent_to_in_sync_ms": wall * 1e3,
                "agent_cpu_ms": cpu * 1e3,
                "agent_peak_rss_mib": peak,
                "controller_cpu_ms": ccpu * 1e3,
                "openssl_ms": floor * 1e3,
                "ratio_to_openssl": wall / floor,
            }));
        }
        if !idle.is_zero() {
            results.push(rest(tmp.path(), &manifests, &root, paths.len(), idle).await?);
        }
    }
    Ok(json!({ "results": results }))
}

/// The agent at rest once in sync: RSS, and CPU over `idle`.
async fn rest(
    dir: &Path,
    manifests: &Path,
    root: &Path,
    files: usize,
    idle: Duration,
) -> anyhow::Result<Value> {
    let data = tempfile::tempdir_in(dir)?;
    let (_controller, url) = fixture::controller(manifests, data.path(), &[])?;
    let agent = fixture::agent(&url, "bench", root)?;
    fixture::wait_in_sync(&url, "bench", Duration::from_secs(600)).await?;
    let (m, cpu) = fixture::at_rest(agent.pid(), idle).await?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "sync: {files} files, at rest {idle:?} after: RSS {:.1} MiB = {:.1} own + {:.1} binary and libraries; peak {:.1}; CPU {} ms",
        mib(m.rss),
        mib(m.anon),
        mib(m.file),
        mib(m.peak),
        cpu.as_millis()
    );
    Ok(json!({
        "files": files,
        "at_rest_s": idle.as_secs_f64(),
        "rss_mib": mib(m.rss),
        "rss_anon_mib": mib(m.anon),
        "rss_file_mib": mib(m.file),
        "peak_rss_mib": mib(m.peak),
        "idle_cpu_ms": cpu.as_millis() as u64,
    }))
}
