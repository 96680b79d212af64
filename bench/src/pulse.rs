//! The floors under the controller's heartbeats and its memory per agent, two servers that
//! hold one connection per agent and hear a heartbeat from each every interval, answering it
//! or not, on tokio's default runtime as the controller's:
//! - `tcp`: a bare TCP server (no TLS, HTTP/2, gRPC or plumb) reading a small message; its
//!   CPU per message is what any server pays here for one message on a connection of its
//!   own (the kernel's receive, a wake-up, a read, and a write when answered);
//! - `grpc`: plumb's own `AgentService` on tonic, as the controller serves it (a task per
//!   stream reading it, the answer through a queue to the response stream), but nothing
//!   behind it: a Hello, then heartbeats. What plumb's controller costs beyond it is plumb's.
//!
//! Beside `scale` (plumb's controller at rest: heartbeats only), they tell what plumb adds and
//! how far down a heartbeat, and an agent's memory, can go with one connection per agent.
//!
//! The server is this binary again (`pulse-serve`), so that its CPU and memory are its own
//! (`PLUMB_BENCH_PULSE_WRAPPER` runs it under a profiler); the connections share the
//! machine's two cores with it, as `scale`'s simulated agents do.

use std::io::BufRead as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plumb_proto::v1;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::fixture::{self, Proc};

/// About a heartbeat's size on the wire (an HTTP/2 DATA frame of a gRPC message of a few
/// bytes).
const MESSAGE: usize = 24;

/// Which server: a bare TCP one, or plumb's agent service on tonic with nothing behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    Tcp,
    Grpc,
}

/// `pulse-serve`: answers on a free loopback port, printed on the first line, until killed.
pub(crate) fn serve(kind: Kind, answer: bool) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        match kind {
            Kind::Tcp => loop {
                let (mut stream, _) = listener.accept().await?;
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if answer && stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            },
            Kind::Grpc => {
                let service = v1::agent_service_server::AgentServiceServer::new(Bare { answer });
                tonic::transport::Server::builder()
                    // As the controller's.
                    .http2_keepalive_interval(Some(Duration::from_secs(30)))
                    .add_service(service)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await?;
                Ok(())
            }
        }
    })
}

/// plumb's agent service with nothing behind it.
struct Bare {
    answer: bool,
}

type Answers = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<v1::ControllerMessage, tonic::Status>> + Send>,
>;

#[tonic::async_trait]
impl v1::agent_service_server::AgentService for Bare {
    type ConnectStream = Answers;

    async fn connect(
        &self,
        request: tonic::Request<tonic::Streaming<v1::AgentMessage>>,
    ) -> Result<tonic::Response<Answers>, tonic::Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let answer = self.answer;
        // As the controller's edge: a task reads the stream, answers go through the queue.
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if answer && matches!(m.msg, Some(v1::agent_message::Msg::Heartbeat(_))) {
                    let beat = v1::ControllerMessage {
                        msg: Some(v1::controller_message::Msg::Heartbeat(v1::Heartbeat {
                            sent_at_ms: 1,
                        })),
                    };
                    let _ = tx.try_send(Ok(beat));
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

pub(crate) async fn run(
    kinds: &[Kind],
    connections: usize,
    intervals: &[Duration],
    duration: Duration,
) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &kind in kinds {
        for &interval in intervals {
            for answer in [false, true] {
                results.push(measure(kind, connections, interval, answer, duration).await?);
            }
        }
    }
    Ok(json!({ "results": results }))
}

/// `pulse-serve`, started; its port.
fn server(kind: Kind, answer: bool) -> anyhow::Result<(Proc, u16)> {
    // A profiler can wrap it: `PLUMB_BENCH_PULSE_WRAPPER="heaptrack -o /tmp/pulse"`.
    let mut command = fixture::wrap(&std::env::current_exe()?, "PLUMB_BENCH_PULSE_WRAPPER");
    command
        .args(["pulse-serve", "--kind", kind.name()])
        .stdout(std::process::Stdio::piped());
    if answer {
        command.arg("--answer");
    }
    let mut server = Proc {
        child: command.spawn()?,
    };
    // The first line that is a port (a profiler wrapping it may print before it).
    let stdout = server.child.stdout.take();
    let port = std::io::BufReader::new(stdout.ok_or_else(|| anyhow::anyhow!("no stdout"))?)
        .lines()
        .take(20)
        .find_map(|line| line.ok()?.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("pulse-serve did not say its port"))?;
    Ok((server, port))
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Grpc => "grpc",
        }
    }
}

/// One connection to `port` sending a heartbeat every `interval` from `start` on, counted in
/// `sent`, reading whatever comes back; its task.
async fn connection(
    kind: Kind,
    port: u16,
    i: usize,
    start: tokio::time::Instant,
    interval: Duration,
    answer: bool,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    let mut tick = tokio::time::interval_at(start, interval);
    Ok(match kind {
        Kind::Tcp => {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            Box::pin(async move {
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
            })
        }
        Kind::Grpc => {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let hello = v1::AgentMessage {
                msg: Some(v1::agent_message::Msg::Hello(v1::Hello {
                    host_id: format!("load-{i:05}"),
                    protocol_version: plumb_proto::PROTOCOL_VERSION,
                    ..Default::default()
                })),
            };
            tx.send(hello).await?;
            let mut inbound = v1::agent_service_client::AgentServiceClient::new(channel)
                .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            Box::pin(async move {
                let beat = v1::AgentMessage {
                    msg: Some(v1::agent_message::Msg::Heartbeat(v1::Heartbeat {
                        sent_at_ms: 1,
                    })),
                };
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if tx.send(beat.clone()).await.is_err() {
                                return;
                            }
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        m = inbound.message() => if !matches!(m, Ok(Some(_))) {
                            return;
                        }
                    }
                }
            })
        }
    })
}

async fn measure(
    kind: Kind,
    connections: usize,
    interval: Duration,
    answer: bool,
    duration: Duration,
) -> anyhow::Result<Value> {
    let (server, port) = server(kind, answer)?;
    let alone = fixture::memory(server.pid())?.rss;
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = fixture::Rng::new(7);
    for i in 0..connections {
        // Each connection at its own phase of the interval, as agents started at random.
        let phase = Duration::from_nanos(rng.next() % interval.as_nanos().max(1) as u64);
        let start = tokio::time::Instant::now() + phase;
        tasks.spawn(connection(kind, port, i, start, interval, answer, sent.clone()).await?);
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
    let per_connection = rss.saturating_sub(alone) as f64 / connections.max(1) as f64;
    println!(
        "pulse: {} server, {connections} connections, a heartbeat each every {interval:?}{}: {rate:.0} a second; the server's CPU {:.1}% of a core ({per_message_us:.1} µs a heartbeat); RSS {:.0} MiB ({per_connection:.1} KiB a connection)",
        kind.name(),
        if answer { ", answered" } else { "" },
        share * 100.0,
        rss as f64 / 1024.0,
    );
    Ok(json!({
        "server": kind.name(),
        "connections": connections,
        "interval_ms": interval.as_millis() as u64,
        "answered": answer,
        "messages_per_s": rate,
        "server_cpu_share": share,
        "server_cpu_us_per_message": per_message_us,
        "server_rss_kib": rss,
        "server_rss_kib_per_connection": per_connection,
    }))
}
