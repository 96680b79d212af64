//! Detection latency: a write to a declared file, then the drift event on the query service's
//! `WatchDrift` stream, as an operator's `plumb drift --follow` would see it. Each change flips
//! the file between its declared content (a `resolved` event) and another (an `opened` event);
//! the clock starts just before the write (in place) or the rename (rename-save).

use std::path::Path;
use std::time::{Duration, Instant};

use plumb_proto::v1;
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;

use crate::fixture;

/// Declared files besides the one written: the agent watches a realistic plan.
const OTHERS: usize = 99;

#[derive(Clone, Copy)]
enum Write {
    InPlace,
    RenameSave,
}

fn write(kind: Write, path: &Path, content: &[u8]) -> anyhow::Result<Instant> {
    match kind {
        Write::InPlace => {
            let t0 = Instant::now();
            std::fs::write(path, content)?;
            Ok(t0)
        }
        Write::RenameSave => {
            let tmp = path.with_extension("tmp~");
            std::fs::write(&tmp, content)?;
            let t0 = Instant::now();
            std::fs::rename(&tmp, path)?;
            Ok(t0)
        }
    }
}

fn report(name: &str, mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let q = |x| fixture::quantile(&ms, x);
    println!(
        "latency: {name}: {} changes: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        q(0.5),
        q(0.95),
        q(0.99),
        q(1.0)
    );
    json!({"changes": ms.len(), "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99), "max_ms": q(1.0)})
}

pub(crate) async fn run(changes: usize) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root");
    let paths = fixture::tree(&root, OTHERS + 1, 0)?;
    let target = paths[0].clone();
    let declared = format!("file:/{}", target.strip_prefix(&root)?.display());
    let desired = std::fs::read(&target)?;
    let mut other = desired.clone();
    other.extend_from_slice(b"\n# changed by hand\n");
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("bench.yaml"),
        fixture::manifest(&root, &paths)?,
    )?;
    let (_controller, url) = fixture::controller(&manifests, &tmp.path().join("data"), &[])?;
    let _agent = fixture::agent(&url, "bench", &root)?;
    fixture::wait_in_sync(&url, "bench", Duration::from_secs(120)).await?;

    let mut client = fixture::query(&url).await?;
    let mut events = client
        .watch_drift(v1::WatchDriftRequest {
            hosts: vec!["bench".into()],
        })
        .await?
        .into_inner();
    let mut results = serde_json::Map::new();
    for (name, kind) in [
        ("in_place", Write::InPlace),
        ("rename_save", Write::RenameSave),
    ] {
        let mut ms = Vec::with_capacity(changes);
        for i in 0..changes {
            let (content, want) = if i % 2 == 0 {
                (&other, v1::DriftEventKind::Opened)
            } else {
                (&desired, v1::DriftEventKind::Resolved)
            };
            let t0 = write(kind, &target, content)?;
            loop {
                let event = tokio::time::timeout(Duration::from_secs(10), events.next())
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("no drift event within 10 s (change {i}, {name})")
                    })?
                    .ok_or_else(|| anyhow::anyhow!("the drift watch ended"))??;
                let ours = event.item.as_ref().is_some_and(|d| d.resource == declared);
                if ours && event.kind == want as i32 {
                    ms.push(t0.elapsed().as_secs_f64() * 1e3);
                    break;
                }
            }
        }
        // End in sync for the next kind of write.
        if changes % 2 == 1 {
            write(kind, &target, &desired)?;
            fixture::wait_in_sync(&url, "bench", Duration::from_secs(10)).await?;
        }
        results.insert(name.into(), report(name, ms));
    }
    Ok(Value::Object(results))
}
