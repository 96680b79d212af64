//! Scan throughput: the agent's own observation code (what its initial scan and rescans run,
//! on `--scan-threads` threads; here on each of `--threads`) over a generated tree, against `sha256sum` over the
//! same files in the same run. The page cache is warm for both: this measures hashing and
//! file handling, not the disk. `openssl dgst -sha256` runs too, where installed: Debian's
//! coreutils `sha256sum` does not use the CPU's SHA extensions, OpenSSL does, so it is the
//! harder baseline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use plumb_agent::collect::IdCache;
use plumb_agent::collect::files::{Request, Requests, observe_many, set_scan_threads};
use plumb_agent::root::Root;
use serde_json::{Value, json};

use crate::fixture;

/// Four 1 MiB files in every tree, as the issue asks ("a few of 1 MiB").
const BIG: usize = 4;

/// Seconds for `program args...` over every path, in batches of 1,000 arguments.
fn baseline(program: &str, args: &[&str], paths: &[PathBuf]) -> anyhow::Result<f64> {
    let start = Instant::now();
    for chunk in paths.chunks(1000) {
        let out = Command::new(program).args(args).args(chunk).output()?;
        anyhow::ensure!(out.status.success(), "{program} failed");
    }
    Ok(start.elapsed().as_secs_f64())
}

fn sha256sum(paths: &[PathBuf]) -> anyhow::Result<f64> {
    baseline("sha256sum", &[], paths)
}

/// Seconds for `openssl dgst -sha256` over every path: one core, with the CPU's SHA extensions.
pub(crate) fn openssl(paths: &[PathBuf]) -> anyhow::Result<f64> {
    baseline("openssl", &["dgst", "-sha256"], paths)
}

pub(crate) fn has_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn plumb(root: &Path, paths: &[PathBuf]) -> anyhow::Result<f64> {
    let agent_root = Root::new(Some(root.to_path_buf()));
    let requests: Vec<Request> = paths
        .iter()
        .map(|p| {
            Ok(Request {
                path: Path::new("/")
                    .join(p.strip_prefix(root)?)
                    .display()
                    .to_string()
                    .into(),
                hash: true,
                contains: Default::default(),
                list_entries: false,
                allow_content: false,
                sensitive: false,
                ignore: Default::default(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let plan = Requests::new(requests);
    let start = Instant::now();
    let names = IdCache::default().get(&agent_root);
    let which: Vec<usize> = (0..plan.len()).collect();
    let hashed = observe_many(&agent_root, &plan, &which, &names)
        .iter()
        .filter(|(_, o)| o.sha256.is_some())
        .count();
    let took = start.elapsed().as_secs_f64();
    anyhow::ensure!(hashed == plan.len(), "only {hashed} files hashed");
    Ok(took)
}

pub(crate) fn run(sizes: &[usize], runs: usize, threads: &[usize]) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &n in sizes {
        let tmp = tempfile::tempdir()?;
        let paths = fixture::tree(tmp.path(), n, BIG)?;
        let bytes: u64 = paths
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()))
            .sum::<Result<u64, _>>()?;
        // Warm the cache (and the binaries) once.
        let with_openssl = has_openssl();
        sha256sum(&paths)?;
        plumb(tmp.path(), &paths)?;
        let (mut ours, mut theirs, mut ssl) =
            (vec![Vec::new(); threads.len()], Vec::new(), Vec::new());
        for _ in 0..runs {
            theirs.push(sha256sum(&paths)?);
            if with_openssl {
                ssl.push(openssl(&paths)?);
            }
            for (&t, ours) in threads.iter().zip(&mut ours) {
                set_scan_threads(t);
                ours.push(plumb(tmp.path(), &paths)?);
            }
        }
        let theirs = fixture::median(theirs);
        let ssl = with_openssl.then(|| fixture::median(ssl));
        let mb = bytes as f64 / 1e6;
        println!(
            "scan: {} files, {mb:.0} MB: sha256sum {:.0} ms ({:.0} MB/s)",
            paths.len(),
            theirs * 1e3,
            mb / theirs,
        );
        match ssl {
            Some(ssl) => println!(
                "scan: {} files: openssl dgst -sha256 {:.0} ms ({:.0} MB/s), one core",
                paths.len(),
                ssl * 1e3,
                mb / ssl,
            ),
            None => println!("scan: openssl not installed; no OpenSSL baseline"),
        }
        for (&t, ours) in threads.iter().zip(ours) {
            let ours = fixture::median(ours);
            let vs_ssl = ssl.map_or(String::new(), |ssl| {
                format!(", {:.0}% of openssl", ssl / ours * 100.0)
            });
            println!(
                "scan: {} files, {t} thread{}: plumb {:.0} ms ({:.0} MB/s): {:.0}% of sha256sum{vs_ssl}",
                paths.len(),
                if t == 1 { "" } else { "s" },
                ours * 1e3,
                mb / ours,
                theirs / ours * 100.0,
            );
            results.push(json!({
                "files": paths.len(),
                "megabytes": mb,
                "threads": t,
                "plumb_ms": ours * 1e3,
                "sha256sum_ms": theirs * 1e3,
                "plumb_mb_s": mb / ours,
                "sha256sum_mb_s": mb / theirs,
                "ratio": theirs / ours,
                "openssl_ms": ssl.map(|s| s * 1e3),
                "openssl_mb_s": ssl.map(|s| mb / s),
                "ratio_openssl": ssl.map(|s| s / ours),
            }));
        }
    }
    Ok(json!({ "runs_per_size": runs, "results": results }))
}
