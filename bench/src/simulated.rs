//! A simulated agent for the load benchmarks: it speaks plumb.v1 with the agent's own message
//! code (`plumb_agent::wire`), with observations made up rather than read from disk, so that one
//! process can be thousands of agents.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plumb_agent::collect::facts::Facts;
use plumb_agent::collect::files::{Kind, Observation};
use plumb_agent::message::{Hello, Incoming, Outgoing, Plan, Report};
use plumb_agent::wire;
use plumb_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use crate::fixture;

/// Digests a declared file flips between: the declared one (in sync) and another (drift).
pub(crate) const IN_SYNC: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const DRIFTED: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn observation(path: &str, sha256: &str) -> Observation {
    Observation {
        path: path.to_owned(),
        kind: Kind::File,
        link_target: None,
        resolved_kind: Kind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        owner: Some("root".into()),
        group: Some("root".into()),
        size: 512,
        sha256: Some(sha256.to_owned()),
        contains: Vec::new(),
        entries: Vec::new(),
        entries_total: 0,
        error: None,
    }
}

/// One file of one host flips to `drifted` (or back).
pub(crate) struct Change {
    pub(crate) file: usize,
    pub(crate) drifted: bool,
}

/// One simulated agent: Hello, a Snapshot of its plan (in sync but for the files told to
/// drift), then Deltas as told and heartbeats, reading everything the controller sends. Given
/// several controllers, it starts at `first` and moves to the next when its stream is lost, as
/// the real agent does (after a pause of 125 to 250 ms), and says in `resynced` when a
/// controller it moved to acknowledged its snapshot. With one, a lost stream ends it.
pub(crate) async fn agent(
    channels: Vec<tonic::transport::Channel>,
    first: usize,
    host: String,
    facts: Arc<Facts>,
    mut changes: mpsc::Receiver<Change>,
    connected: Arc<AtomicUsize>,
    resynced: Arc<std::sync::Mutex<Vec<Instant>>>,
) -> anyhow::Result<()> {
    let mut drifted: std::collections::BTreeSet<usize> = Default::default();
    let mut at = first;
    let mut moved = false;
    loop {
        let channel = channels[at % channels.len()].clone();
        let session = Session {
            host: &host,
            facts: &facts,
            connected: (!moved).then_some(&connected),
            resynced: moved.then_some(&resynced),
        };
        match session.run(channel, &mut changes, &mut drifted).await {
            Ok(()) => return Ok(()),
            Err(e) if channels.len() == 1 => return Err(e),
            Err(_) => {
                at += 1;
                moved = true;
                let seed = host
                    .bytes()
                    .fold(at as u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
                let pause = 125 + fixture::Rng::new(seed).next() % 125;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}

/// One stream of a simulated agent.
struct Session<'a> {
    host: &'a str,
    facts: &'a Facts,
    /// Counted once the stream is open (an agent's first).
    connected: Option<&'a AtomicUsize>,
    /// Told when its snapshot is acknowledged (a stream after a move).
    resynced: Option<&'a std::sync::Mutex<Vec<Instant>>>,
}

impl Session<'_> {
    /// Until the controller ends the stream (`Err`), or the agent is no longer told changes.
    async fn run(
        self,
        channel: tonic::transport::Channel,
        changes: &mut mpsc::Receiver<Change>,
        drifted: &mut std::collections::BTreeSet<usize>,
    ) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel(16);
        tx.send(Outgoing::Hello(Hello {
            host_id: self.host.to_owned(),
            labels: BTreeMap::new(),
            facts: self.facts.clone(),
        }))
        .await?;
        let mut inbound = v1::agent_service_client::AgentServiceClient::new(channel)
            .connect(ReceiverStream::new(rx).map(wire::outgoing_to_proto))
            .await?
            .into_inner();
        if let Some(c) = self.connected {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let mut seq = 0;
        let mut snapshot_seq = None;
        let mut plan: Option<Plan> = None;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
        let mut edge = wire::Inbound::default();
        let digest = |drifted: &std::collections::BTreeSet<usize>, f: usize| {
            if drifted.contains(&f) {
                DRIFTED
            } else {
                IN_SYNC
            }
        };
        loop {
            tokio::select! {
                m = inbound.message() => {
                    let m = m?.ok_or_else(|| anyhow::anyhow!("the controller ended the stream"))?;
                    let Some(m) = edge.read(m)? else { continue };
                    match m {
                        Incoming::Plan(p) => {
                            if p.heartbeat_interval_secs > 0 {
                                heartbeat = tokio::time::interval(Duration::from_secs(p.heartbeat_interval_secs.into()));
                            }
                            let files = p.requests.iter().enumerate()
                                .map(|(f, r)| observation(r.path, digest(drifted, f)))
                                .collect();
                            let report = Report { generation: p.generation, seq: 0, files, packages: Vec::new(), who: Default::default() };
                            // In parts of a bounded size, as the agent sends it.
                            let parts = wire::split(report, plumb_proto::REPORT_BYTES);
                            let count = parts.len();
                            for (i, mut report) in parts.into_iter().enumerate() {
                                seq += 1;
                                report.seq = seq;
                                tx.send(Outgoing::Snapshot { report, more: i + 1 < count }).await?;
                            }
                            snapshot_seq = Some(seq);
                            plan = Some(p);
                        }
                        Incoming::Ack { seq: acked } => {
                            if let (Some(r), Some(s)) = (self.resynced, snapshot_seq)
                                && acked >= s
                            {
                                r.lock().expect("lock").push(Instant::now());
                                snapshot_seq = None;
                            }
                        }
                        Incoming::GoAway(_) => anyhow::bail!("asked to go"),
                        _ => {}
                    }
                }
                c = changes.recv() => {
                    let Some(c) = c else { return Ok(()) };
                    if c.drifted { drifted.insert(c.file); } else { drifted.remove(&c.file); }
                    let Some(p) = &plan else { continue };
                    let Some(r) = p.requests.get(c.file) else { continue };
                    seq += 1;
                    let file = observation(r.path, digest(drifted, c.file));
                    tx.send(Outgoing::Delta(Report { generation: p.generation, seq, files: vec![file], packages: Vec::new(), who: Default::default() })).await?;
                }
                _ = heartbeat.tick() => {
                    tx.send(Outgoing::Heartbeat { sent_at_ms: 0 }).await?;
                }
            }
        }
    }
}
