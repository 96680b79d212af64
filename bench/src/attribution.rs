//! Attribution: how often the writer of a change is named, and what naming it costs. The
//! agent watches 100 declared files, once without attribution and once with `--attribution
//! fanotify`; each time a declared file is changed N times by `sed -i` (a short-lived writer
//! that renames into place) and N times by a shell writing in place (`sh -c 'printf … > f'`,
//! gone as soon as it has written). For each drift event on the query service's watch: was a
//! process named, or unknown (and why); the detection latency; the agent's CPU over the
//! changes and its RSS at rest before and after. Needs root (fanotify needs CAP_SYS_ADMIN).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use plumb_proto::v1;
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;

use crate::fixture;

/// Declared files besides the one changed.
const OTHERS: usize = 99;

#[derive(Clone, Copy)]
enum Writer {
    SedInPlace,
    ShellWrite,
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::SedInPlace => "sed -i",
            Writer::ShellWrite => "sh -c 'printf > f'",
        }
    }

    /// Changes `path` from `from` to `to` (one line each) the way this writer does.
    fn change(self, path: &Path, from: &str, to: &str) -> anyhow::Result<Instant> {
        let mut cmd = match self {
            Writer::SedInPlace => {
                let mut c = Command::new("sed");
                c.arg("-i").arg(format!("s/^{from}$/{to}/")).arg(path);
                c
            }
            Writer::ShellWrite => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("printf '%s\\n' {to} > '{}'", path.display()));
                c
            }
        };
        let t0 = Instant::now();
        let status = cmd.status()?;
        anyhow::ensure!(status.success(), "{} failed", self.name());
        Ok(t0)
    }
}

pub(crate) async fn run(changes: usize) -> anyhow::Result<Value> {
    if !std::fs::read_to_string("/proc/self/status")?
        .lines()
        .any(|l| l.starts_with("Uid:\t0\t"))
    {
        println!("attribution: needs root (fanotify needs CAP_SYS_ADMIN): left out");
        return Ok(json!({"left_out": "needs root"}));
    }
    let mut results = serde_json::Map::new();
    for mode in ["off", "fanotify"] {
        results.insert(mode.into(), measure(mode, changes).await?);
    }
    Ok(Value::Object(results))
}

async fn measure(mode: &str, changes: usize) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root");
    let paths = fixture::tree(&root, OTHERS, 0)?;
    let target = root.join("etc/bench-target.conf");
    std::fs::create_dir_all(target.parent().expect("a parent"))?;
    std::fs::write(&target, "a=1\n")?;
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let mut manifest = fixture::manifest(&root, &paths)?;
    manifest.push_str("  /etc/bench-target.conf:\n    content: \"a=1\\n\"\n");
    std::fs::write(manifests.join("bench.yaml"), manifest)?;
    let (_controller, url) = fixture::controller(&manifests, &tmp.path().join("data"), &[])?;
    let agent = fixture::agent_with(&url, "bench", &root, &["--attribution", mode])?;
    fixture::wait_in_sync(&url, "bench", Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest_before = fixture::memory(agent.pid())?.rss;

    let mut client = fixture::query(&url).await?;
    let mut events = client
        .watch_drift(v1::WatchDriftRequest {
            hosts: vec!["bench".into()],
        })
        .await?
        .into_inner();
    let mut out = serde_json::Map::new();
    let mib = |kib: u64| kib as f64 / 1024.0;
    for writer in [Writer::SedInPlace, Writer::ShellWrite] {
        let cpu0 = fixture::cpu_time(agent.pid())?;
        let started = Instant::now();
        let (mut named, mut unknown) = (0usize, BTreeMap::<String, usize>::new());
        let mut ms = Vec::with_capacity(changes);
        for i in 0..changes {
            let (from, to, want) = if i % 2 == 0 {
                ("a=1", "a=2", v1::DriftEventKind::Opened)
            } else {
                ("a=2", "a=1", v1::DriftEventKind::Resolved)
            };
            let t0 = writer.change(&target, from, to)?;
            loop {
                let event = tokio::time::timeout(Duration::from_secs(10), events.next())
                    .await
                    .map_err(|_| anyhow::anyhow!("no drift event within 10 s (change {i})"))?
                    .ok_or_else(|| anyhow::anyhow!("the drift watch ended"))??;
                let Some(item) = event
                    .item
                    .filter(|d| d.resource == "file:/etc/bench-target.conf")
                else {
                    continue;
                };
                if event.kind != want as i32 {
                    continue;
                }
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
                match item.evidence.and_then(|e| e.who).and_then(|w| w.who) {
                    Some(v1::who::Who::Process(_)) => named += 1,
                    Some(v1::who::Who::Unknown(why)) => {
                        // "…exited…; it ran /usr/bin/sed": counted by the reason alone.
                        let why = why.split(';').next().unwrap_or_default().to_owned();
                        *unknown.entry(why).or_default() += 1;
                    }
                    Some(v1::who::Who::Package(_)) => {
                        *unknown.entry("a package transaction".into()).or_default() += 1
                    }
                    None => *unknown.entry("(nothing said)".into()).or_default() += 1,
                }
                break;
            }
        }
        let took = started.elapsed();
        let cpu = fixture::cpu_time(agent.pid())?.saturating_sub(cpu0);
        ms.sort_by(f64::total_cmp);
        let q = |x| fixture::quantile(&ms, x);
        let rate = named as f64 / changes as f64 * 100.0;
        println!(
            "attribution {mode}: {}: {changes} changes in {:.1} s: {named} named ({rate:.1}%), unknown {unknown:?}; detection p50 {:.2} ms, p99 {:.2} ms; agent CPU {} ms ({:.1}% of a core)",
            writer.name(),
            took.as_secs_f64(),
            q(0.5),
            q(0.99),
            cpu.as_millis(),
            cpu.as_secs_f64() / took.as_secs_f64() * 100.0
        );
        out.insert(
            writer.name().into(),
            json!({
                "changes": changes, "named": named, "named_percent": rate, "unknown": unknown,
                "p50_ms": q(0.5), "p99_ms": q(0.99), "seconds": took.as_secs_f64(),
                "agent_cpu_ms": cpu.as_millis() as u64,
            }),
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = fixture::memory(agent.pid())?;
    println!(
        "attribution {mode}: agent RSS at rest {:.1} MiB before the changes, {:.1} MiB after, peak {:.1} MiB",
        mib(rest_before),
        mib(m.rss),
        mib(m.peak)
    );
    out.insert("rss_rest_before_mib".into(), json!(mib(rest_before)));
    out.insert("rss_rest_after_mib".into(), json!(mib(m.rss)));
    out.insert("rss_peak_mib".into(), json!(mib(m.peak)));
    Ok(Value::Object(out))
}
