//! What every benchmark needs: the release binaries, generated trees and manifests, a
//! controller and an agent as real processes, and their resource use from /proc.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use plumb_proto::v1;

/// The release binaries next to this one, built first if need be.
pub(crate) fn bin(name: &str) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        // What `cargo run` tells the program it runs is not the user's: ring's build script
        // reads CARGO_MANIFEST_DIR, and with it set everything above ring was built again,
        // and again by the next `cargo run` without it (3 minutes each with fat LTO).
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let from_run = [
                "CARGO_MANIFEST_",
                "CARGO_PKG_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| key.starts_with(p))
                || key == "CARGO_PRIMARY_PACKAGE";
            if from_run {
                build.env_remove(&*key);
            }
        }
        let status = build
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "plumb-controller",
                "-p",
                "plumb-agent",
                // With this package too, features are unified as for `cargo run -p
                // plumb-bench`: nothing is built again for the other's features.
                "-p",
                "plumb-bench",
                "--bins",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err("building the release binaries failed".into());
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
    });
    match dir {
        Ok(d) => Ok(d.join(name)),
        Err(e) => bail!("{e}"),
    }
}

/// A small deterministic generator (xorshift64*): the same tree on every run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Log-uniform between `lo` and `hi`: as many small files as large ones per octave.
    pub(crate) fn size(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (l + (h - l) * u).exp() as u64
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `n` files of 200 B to 64 KiB (log-uniform) plus `big` files of 1 MiB, 100 to a directory,
/// under `root`; returns their absolute paths.
pub(crate) fn tree(root: &Path, n: usize, big: usize) -> anyhow::Result<Vec<PathBuf>> {
    tree_in(root, n, big, 100)
}

/// `tree` with `per_dir` files to a directory.
pub(crate) fn tree_in(
    root: &Path,
    n: usize,
    big: usize,
    per_dir: usize,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut rng = Rng::new(n as u64 * 7919 + big as u64);
    let mut paths = Vec::with_capacity(n + big);
    for i in 0..n + big {
        let dir = root.join(format!("d{:04}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let size = if i < n {
            rng.size(200, 64 << 10)
        } else {
            1 << 20
        };
        let mut content = vec![0u8; size as usize];
        rng.fill(&mut content);
        let path = dir.join(format!("f{i:05}.conf"));
        std::fs::write(&path, &content)?;
        paths.push(path);
    }
    Ok(paths)
}

/// A manifest declaring each of `paths` (as seen by an agent with `--root root`) by its
/// digest, which `sha256sum` computes: the benchmark does not trust plumb's own hashing.
pub(crate) fn manifest(root: &Path, paths: &[PathBuf]) -> anyhow::Result<String> {
    manifest_with(root, paths, "")
}

/// Like `manifest`, with `extra` (e.g. `    mode: "0644"\n`) added to every declaration.
pub(crate) fn manifest_with(root: &Path, paths: &[PathBuf], extra: &str) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::from("name: bench\nhosts: [\"*\"]\nfiles:\n");
    for chunk in paths.chunks(1000) {
        let run = Command::new("sha256sum").args(chunk).output()?;
        anyhow::ensure!(run.status.success(), "sha256sum failed");
        let text = String::from_utf8_lossy(&run.stdout);
        for (p, line) in chunk.iter().zip(text.lines()) {
            let digest = line.split_whitespace().next().unwrap_or_default();
            let declared = Path::new("/").join(p.strip_prefix(root)?);
            writeln!(
                out,
                "  {}:\n    sha256: {digest}\n{extra}",
                declared.display()
            )?;
        }
    }
    Ok(out)
}

/// A child process, killed when dropped.
pub(crate) struct Proc {
    pub(crate) child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A command for one of the release binaries, run under the tool `var` names if it is set: a
/// profiler, e.g. `PLUMB_BENCH_AGENT_WRAPPER="heaptrack -o /tmp/agent"` (the RSS a benchmark
/// then prints is the wrapper's).
fn wrapped(binary: &str, var: &str) -> anyhow::Result<Command> {
    Ok(wrap(&bin(binary)?, var))
}

/// A command for `program`, run under the tool `var` names if it is set.
pub(crate) fn wrap(program: &Path, var: &str) -> Command {
    let wrapper = std::env::var(var).unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// `plumb serve` on a free loopback port; returns it and its URL. A profiler can wrap it:
/// `PLUMB_BENCH_CONTROLLER_WRAPPER`.
pub(crate) fn controller(
    manifests: &Path,
    data: &Path,
    extra: &[&str],
) -> anyhow::Result<(Proc, String)> {
    let mut child = wrapped("plumb", "PLUMB_BENCH_CONTROLLER_WRAPPER")?
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--heartbeat-interval",
            "5s",
            "--manifests",
        ])
        .arg(manifests)
        .arg("--data")
        .arg(data)
        .args(extra)
        // PLUMB_BENCH_AGENT_LOG=info shows what the agent did when.
        .env(
            "RUST_LOG",
            std::env::var("PLUMB_BENCH_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start plumb serve")?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // PLUMB_BENCH_LOG=1 echoes the controller's warnings, to see why a run went wrong.
    let echo = std::env::var_os("PLUMB_BENCH_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("controller: {line}");
            }
            if let Some(addr) = line.strip_prefix("plumb: listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let proc = Proc { child };
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .context("the controller did not start listening")?;
    Ok((proc, format!("http://{addr}")))
}

/// `plumb-agent run` reading under `root`.
pub(crate) fn agent(url: &str, host: &str, root: &Path) -> anyhow::Result<Proc> {
    agent_with(url, host, root, &[])
}

/// `agent`, with more arguments for `run`.
pub(crate) fn agent_with(
    url: &str,
    host: &str,
    root: &Path,
    extra: &[&str],
) -> anyhow::Result<Proc> {
    let child = wrapped("plumb-agent", "PLUMB_BENCH_AGENT_WRAPPER")?
        .args(["run", "--controller", url, "--host-id", host, "--root"])
        .arg(root)
        .args(extra)
        // PLUMB_BENCH_AGENT_LOG=info shows what the agent did when.
        .env(
            "RUST_LOG",
            std::env::var("PLUMB_BENCH_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start plumb-agent")?;
    Ok(Proc { child })
}

pub(crate) async fn query(
    url: &str,
) -> anyhow::Result<v1::query_service_client::QueryServiceClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(v1::query_service_client::QueryServiceClient::new(channel)
        .max_decoding_message_size(256 << 20))
}

/// Waits until `host` is in sync; returns how long that took.
pub(crate) async fn wait_in_sync(
    url: &str,
    host: &str,
    limit: Duration,
) -> anyhow::Result<Duration> {
    wait_for(url, host, &[v1::HostStatus::InSync], limit).await
}

/// Waits until `host` has one of `statuses`; returns how long that took.
pub(crate) async fn wait_for(
    url: &str,
    host: &str,
    statuses: &[v1::HostStatus],
    limit: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut client = query(url).await?;
    loop {
        let hosts = client
            .list_hosts(v1::ListHostsRequest::default())
            .await?
            .into_inner();
        if hosts
            .hosts
            .iter()
            .any(|h| h.host_id == host && statuses.iter().any(|s| h.status == *s as i32))
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{host} not {statuses:?} after {limit:?}");
        }
        // What the wait adds to what it measures: half of this on average (at 20 ms, 5% of a
        // 200 ms sync). A listing of the one host the benches wait for costs the controller
        // microseconds.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Resident memory of a process, in KiB.
pub(crate) struct Memory {
    /// VmRSS: everything resident.
    pub(crate) rss: u64,
    /// VmHWM: the peak of `rss`.
    pub(crate) peak: u64,
    /// RssAnon: the process's own memory (heap, stacks).
    pub(crate) anon: u64,
    /// RssFile: pages of the binary and libraries, shared with the page cache.
    pub(crate) file: u64,
}

pub(crate) fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    })
}

/// A process left alone for `idle`: its memory then, and the CPU it used meanwhile.
pub(crate) async fn at_rest(pid: u32, idle: Duration) -> anyhow::Result<(Memory, Duration)> {
    let cpu0 = cpu_time(pid)?;
    tokio::time::sleep(idle).await;
    let cpu = cpu_time(pid)?.saturating_sub(cpu0);
    Ok((memory(pid)?, cpu))
}

/// CPU time used so far (user + system).
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Duration::from_millis(ticks * 1000 / clock_ticks()))
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The median of several runs.
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
