//! Agent footprint: an agent watching N declared files, once in sync, left alone: its RSS and
//! CPU over the idle period; the time to its first sync; the binaries' sizes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixture;

pub(crate) async fn run(
    sizes: &[usize],
    idle: Duration,
    attribution: bool,
) -> anyhow::Result<Value> {
    let extra: &[&str] = if attribution {
        &["--attribution", "fanotify"]
    } else {
        &[]
    };
    let mut results = Vec::new();
    for &n in sizes {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        let paths = fixture::tree(&root, n, 0)?;
        let manifests = tmp.path().join("manifests");
        std::fs::create_dir_all(&manifests)?;
        std::fs::write(
            manifests.join("bench.yaml"),
            fixture::manifest(&root, &paths)?,
        )?;
        let (_controller, url) = fixture::controller(&manifests, &tmp.path().join("data"), &[])?;
        let agent = fixture::agent_with(&url, "bench", &root, extra)?;
        let synced = fixture::wait_in_sync(&url, "bench", Duration::from_secs(300)).await?;
        // Let the first scan's buffers be returned before measuring rest.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss0 = fixture::memory(agent.pid())?.rss;
        let (m, cpu) = fixture::at_rest(agent.pid(), idle).await?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "footprint: {n} files{}: first sync {:.2} s; idle {:?}: RSS {:.1} MiB = {:.1} own (heap, stacks) + {:.1} binary and libraries; at start {:.1}, peak {:.1}; CPU {} ms",
            if attribution { ", attribution on" } else { "" },
            synced.as_secs_f64(),
            idle,
            mib(m.rss),
            mib(m.anon),
            mib(m.file),
            mib(rss0),
            mib(m.peak),
            cpu.as_millis()
        );
        results.push(json!({
            "files": n,
            "attribution": attribution,
            "first_sync_s": synced.as_secs_f64(),
            "idle_s": idle.as_secs_f64(),
            "rss_mib": mib(m.rss),
            "rss_anon_mib": mib(m.anon),
            "rss_file_mib": mib(m.file),
            "peak_rss_mib": mib(m.peak),
            "idle_cpu_ms": cpu.as_millis() as u64,
        }));
    }
    let size = |name: &str| -> anyhow::Result<f64> {
        Ok(std::fs::metadata(fixture::bin(name)?)?.len() as f64 / (1 << 20) as f64)
    };
    let (agent_mib, plumb_mib) = (size("plumb-agent")?, size("plumb")?);
    println!("footprint: binaries: plumb-agent {agent_mib:.1} MiB, plumb {plumb_mib:.1} MiB");
    Ok(json!({
        "runs": results,
        "binary_mib": {"plumb-agent": agent_mib, "plumb": plumb_mib},
    }))
}
