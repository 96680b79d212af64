//! Whole-host package verification: every package installed on this machine declared with
//! `verify_files: true` (each owned file against dpkg's md5, as `debsums` does), an agent
//! reading this machine's own root, and the time from its start until its host is evaluated
//! (in sync or drifted: files a machine changed are its own business here). Beside it, the
//! floor: `md5sum -c` over the same md5sums on one core. With a warm and (as root) a cold
//! page cache, for each `--threads` (the agent's `--scan-threads`); then the agent at rest.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plumb_proto::v1;
use serde_json::{Value, json};

use crate::fixture;
use crate::sync::Cache;

/// Installed packages (dpkg), by name.
fn installed() -> anyhow::Result<Vec<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev} ${Package}\\n"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "dpkg-query failed: is this a Debian host?"
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ii "))
        .map(|n| n.trim().to_owned())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every md5sums file's lines: what `md5sum -c` checks, relative to `/`.
fn md5sums() -> anyhow::Result<(Vec<u8>, usize)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/var/lib/dpkg/info")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md5sums") {
            all.extend(std::fs::read(&path)?);
        }
    }
    let lines = all.iter().filter(|&&b| b == b'\n').count();
    Ok((all, lines))
}

/// Seconds for `md5sum -c --quiet` over every owned file, run from `/`: one core.
fn floor(sums: &[u8]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut child = Command::new("md5sum")
        .args(["-c", "--quiet"])
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .map(|mut i| i.write_all(sums))
        .transpose()?;
    // Files this machine changed or removed fail the check: the time is what counts.
    child.wait()?;
    Ok(start.elapsed().as_secs_f64())
}

pub(crate) async fn run(
    caches: &[Cache],
    threads: &[usize],
    idle: Duration,
) -> anyhow::Result<Value> {
    let names = installed()?;
    let (sums, owned) = md5sums()?;
    let tmp = tempfile::tempdir()?;
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let mut text = String::from("name: packages\nhosts: [\"*\"]\npackages:\n");
    for n in &names {
        writeln!(text, "  {n}: {{version: present, verify_files: true}}")?;
    }
    std::fs::write(manifests.join("packages.yaml"), text)?;
    let evaluated = [v1::HostStatus::InSync, v1::HostStatus::Drifted];
    let mut results = Vec::new();
    for &cache in caches {
        if !cache.prepare() {
            println!("packages: a cold cache needs root (/proc/sys/vm/drop_caches): skipped");
            continue;
        }
        if cache == Cache::Warm {
            floor(&sums)?;
        }
        cache.prepare();
        let floor_s = floor(&sums)?;
        for &t in threads {
            let data = tempfile::tempdir_in(tmp.path())?;
            let (controller, url) = fixture::controller(&manifests, data.path(), &[])?;
            let cpu0 = fixture::cpu_time(controller.pid())?;
            cache.prepare();
            let start = Instant::now();
            let agent = fixture::agent_with(
                &url,
                "bench",
                std::path::Path::new("/"),
                &["--scan-threads", &t.to_string()],
            )?;
            fixture::wait_for(&url, "bench", &evaluated, Duration::from_secs(900)).await?;
            let wall = start.elapsed().as_secs_f64();
            let cpu = fixture::cpu_time(agent.pid())?.as_secs_f64();
            let controller_cpu = (fixture::cpu_time(controller.pid())? - cpu0).as_secs_f64();
            let rest = if idle.is_zero() {
                None
            } else {
                Some(fixture::at_rest(agent.pid(), idle).await?.0)
            };
            let rest_text = rest.as_ref().map_or(String::new(), |m| {
                format!(
                    "; at rest {idle:?} after: RSS {:.1} MiB ({:.1} own)",
                    m.rss as f64 / 1024.0,
                    m.anon as f64 / 1024.0
                )
            });
            println!(
                "packages: {} packages, {owned} owned files, {} cache, {t} scan thread{}: agent start to evaluated {:.1} s (CPU {:.1} s; the controller's {:.1} s); md5sum -c {:.1} s: {:.2}x the floor{rest_text}",
                names.len(),
                cache.name(),
                if t == 1 { "" } else { "s" },
                wall,
                cpu,
                controller_cpu,
                floor_s,
                wall / floor_s,
            );
            results.push(json!({
                "packages": names.len(),
                "owned_files": owned,
                "cache": cache.name(),
                "scan_threads": t,
                "agent_to_evaluated_s": wall,
                "agent_cpu_s": cpu,
                "controller_cpu_s": controller_cpu,
                "md5sum_s": floor_s,
                "ratio_to_md5sum": wall / floor_s,
                "rest_rss_mib": rest.as_ref().map(|m| m.rss as f64 / 1024.0),
                "rest_rss_anon_mib": rest.as_ref().map(|m| m.anon as f64 / 1024.0),
            }));
        }
    }
    Ok(json!({ "results": results }))
}
