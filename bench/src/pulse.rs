//! The floor under the controller's heartbeats: a bare TCP server (no TLS, HTTP/2, gRPC or
//! plumb; tokio's default runtime, as the controller's) that reads one small message per
//! connection every interval and, with an answer, writes one back. Its CPU per message is
//! what any server pays for a message on its own connection here: the kernel's receive, a
//! wake-up, a read (and a write). Beside `scale`'s CPU at rest (plumb's heartbeats at 5 s),
//! it tells what plumb adds and how far down a heartbeat per agent can go.
//!
//! The server is this binary again (`pulse-serve`), so that its CPU is its own; the
//! connections share the machine's two cores with it, as `scale`'s simulated agents do.

use std::io::BufRead as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::fixture::{self, Proc};

/// About a heartbeat's size on the wire (an HTTP/2 DATA frame of a gRPC message of a few
/// bytes).
const MESSAGE: usize = 24;

/// `pulse-serve`: answers on a free loopback port, printed on the first line, until killed.
pub(crate) fn serve(answer: bool) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    if answer && stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

pub(crate) async fn run(
    connections: usize,
    intervals: &[Duration],
    duration: Duration,
) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &interval in intervals {
        for answer in [false, true] {
            results.push(measure(connections, interval, answer, duration).await?);
        }
    }
    Ok(json!({ "results": results }))
}

async fn measure(
    connections: usize,
    interval: Duration,
    answer: bool,
    duration: Duration,
) -> anyhow::Result<Value> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .arg("pulse-serve")
        .stdout(std::process::Stdio::piped());
    if answer {
        command.arg("--answer");
    }
    let mut server = Proc {
        child: command.spawn()?,
    };
    let mut first = String::new();
    let stdout = server.child.stdout.take();
    std::io::BufReader::new(stdout.ok_or_else(|| anyhow::anyhow!("no stdout"))?)
        .read_line(&mut first)?;
    let port: u16 = first
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("pulse-serve said {first:?}: {e}"))?;

    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = fixture::Rng::new(7);
    for _ in 0..connections {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        // Each connection at its own phase of the interval, as agents started at random.
        let phase = Duration::from_nanos(rng.next() % interval.as_nanos().max(1) as u64);
        let sent = sent.clone();
        tasks.spawn(async move {
            let start = tokio::time::Instant::now() + phase;
            let mut tick = tokio::time::interval_at(start, interval);
            let mut buf = [7u8; MESSAGE];
            loop {
                tick.tick().await;
                if stream.write_all(&buf).await.is_err()
                    || (answer && stream.read_exact(&mut buf).await.is_err())
                {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // One interval for every connection to have sent once, then the measure.
    tokio::time::sleep(interval).await;
    let (cpu0, sent0) = (
        fixture::cpu_time(server.pid())?,
        sent.load(Ordering::Relaxed),
    );
    tokio::time::sleep(duration).await;
    let cpu = fixture::cpu_time(server.pid())?.saturating_sub(cpu0);
    let messages = sent.load(Ordering::Relaxed) - sent0;
    let rss = fixture::memory(server.pid())?.rss;
    tasks.abort_all();
    drop(server);

    let share = cpu.as_secs_f64() / duration.as_secs_f64();
    let per_message_us = cpu.as_secs_f64() * 1e6 / messages.max(1) as f64;
    let rate = messages as f64 / duration.as_secs_f64();
    println!(
        "pulse: {connections} connections, a message each every {interval:?}{}: {rate:.0} messages/s; the bare server's CPU {:.1}% of a core ({per_message_us:.1} µs a message), RSS {:.0} MiB",
        if answer { ", answered" } else { "" },
        share * 100.0,
        rss as f64 / 1024.0,
    );
    Ok(json!({
        "connections": connections,
        "interval_ms": interval.as_millis() as u64,
        "answered": answer,
        "messages_per_s": rate,
        "server_cpu_share": share,
        "server_cpu_us_per_message": per_message_us,
        "server_rss_kib": rss,
    }))
}
