//! The web console with a big fleet: N simulated agents of M files on one controller (SQLite),
//! some of them drifted by random changes, then each page asked for over loopback HTTP, many
//! times: the median and the 99th percentile of the time from request to the whole answer
//! (the server's rendering, plus a loopback round trip), and the page's size.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixture;
use crate::scale::{SimulatedFleet, Site, manifest};

/// One GET as a local admin would (the console on a plain loopback listener); the body's size.
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<usize> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    anyhow::ensure!(
        body.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    Ok(body.len())
}

pub(crate) async fn run(
    agents: usize,
    files: usize,
    drifted: u32,
    runs: usize,
) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("load.yaml"), manifest(files))?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let web: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let site = Site {
        store: None,
        controllers: 1,
        extra: vec!["--web-listen".into(), web.to_string()],
    };
    let mut fleet = SimulatedFleet::start(
        &manifests,
        &tmp.path().join("data"),
        agents,
        1,
        files,
        &site,
    )
    .await?;
    // Drift on random hosts: `drifted` changes a second for 5 s.
    let c = fleet.changes(drifted, Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pages = [
        ("overview", "/".to_owned()),
        ("drift, first page", "/drift".to_owned()),
        ("drift, page 10", "/drift?offset=900".to_owned()),
        (
            "drift, filtered",
            "/drift?host=load-000*&attribute=sha256".to_owned(),
        ),
        ("host", "/hosts/load-00042".to_owned()),
    ];
    let mut results = Vec::new();
    for (name, path) in pages {
        let mut times = Vec::with_capacity(runs);
        let mut size = 0;
        for _ in 0..runs {
            let start = Instant::now();
            size = tokio::task::spawn_blocking({
                let path = path.clone();
                move || get(web, &path)
            })
            .await??;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let (p50, p99) = (
            fixture::quantile(&times, 0.5),
            fixture::quantile(&times, 0.99),
        );
        println!(
            "console: {agents} hosts x {files} files, {} changes made: {name} ({path}) p50 {p50:.1} ms, p99 {p99:.1} ms, {} KiB",
            c.total,
            size / 1024
        );
        results
            .push(json!({"page": name, "path": path, "p50_ms": p50, "p99_ms": p99, "bytes": size}));
    }
    drop(fleet);
    Ok(json!({"agents": agents, "files_per_agent": files, "changes": c.total, "pages": results}))
}
