//! `AgentService.Connect`: one bidirectional stream per agent. The first message must be a
//! Hello; after it, the stream's messages become fleet commands, and the fleet's messages for
//! this agent become the response stream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use plumb_proto::v1::{self, agent_message::Msg, agent_service_server::AgentService};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::identity::{Auth, Peer};
use super::wire;
use crate::fleet::{
    AGENT_QUEUE, Command, FleetError, FleetHandle, Heartbeats, Report, ToAgent, Turn,
};

/// An agent must introduce itself this quickly.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct AgentApi {
    pub(crate) fleet: FleetHandle,
    pub(crate) auth: Auth,
}

type OutStream = Pin<Box<dyn Stream<Item = Result<v1::ControllerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentApi {
    type ConnectStream = OutStream;

    async fn connect(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<OutStream>, Status> {
        let peer = request.remote_addr();
        let identity = self.auth.peer(&request)?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))??;
        let Some(v1::AgentMessage {
            msg: Some(Msg::Hello(hello)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message must be a Hello",
            ));
        };
        let plan_parts = hello.protocol_version >= plumb_proto::PLAN_PARTS_SINCE;
        let info = wire::hello_from_proto(hello).map_err(|e| {
            tracing::warn!(?peer, error = %e, "rejected a Hello");
            Status::invalid_argument(e.to_string())
        })?;
        // An agent certificate can only ever report for its own host.
        match identity {
            None => {}
            Some(Peer::Agent(certified)) if certified == info.host_id => {}
            Some(other) => {
                tracing::warn!(?peer, certificate = ?other, claimed = %info.host_id, "refused an agent: its certificate is not for the host it claims");
                return Err(Status::permission_denied(format!(
                    "this certificate may not report for host {:?}",
                    info.host_id
                )));
            }
        }
        let host_id = info.host_id.clone();
        let (out_tx, out_rx) = mpsc::channel(AGENT_QUEUE);
        // The stream answers heartbeats itself; weak, so that the fleet dropping its sender
        // still ends the response stream.
        let answer = out_tx.downgrade();
        let heartbeats = Arc::new(Heartbeats::default());
        let conn = self
            .fleet
            .connect(
                info,
                out_tx,
                heartbeats.clone(),
                self.auth == Auth::MutualTls,
            )
            .await
            .inspect_err(|refused| {
                if matches!(refused, FleetError::StreamTaken { .. }) {
                    tracing::warn!(?peer, host = %host_id, "refused a second stream for a live host (a possible impostor)");
                }
            })?;

        let fleet = self.fleet.clone();
        tokio::spawn(async move {
            let edge = Edge {
                conn,
                heartbeats,
                answer,
            };
            let why = forward(&fleet, &edge, &mut inbound).await;
            tracing::info!(host = %host_id, why, "agent stream ended");
            let _ = fleet.send(Command::Disconnected { conn }).await;
        });
        let out = ToWire {
            queue: ReceiverStream::new(out_rx),
            sending: None,
            plan_parts,
        };
        Ok(Response::new(Box::pin(out)))
    }
}

/// A stream's queue as its agent is sent it: each `ToAgent` as one message, or several (a
/// plan in parts), converted as they go.
struct ToWire {
    queue: ReceiverStream<ToAgent>,
    /// The rest of what the last `ToAgent` became.
    sending: Option<wire::Sent>,
    /// Whether the agent takes plans in parts.
    plan_parts: bool,
}

impl Stream for ToWire {
    type Item = Result<v1::ControllerMessage, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(next) = self.sending.as_mut().and_then(Iterator::next) {
            return std::task::Poll::Ready(Some(Ok(next)));
        }
        self.sending = None;
        let plan_parts = self.plan_parts;
        match std::task::ready!(Pin::new(&mut self.queue).poll_next(cx)) {
            Some(m) => {
                let mut sent = wire::to_agent_proto(m, plan_parts);
                let first = sent.next();
                self.sending = Some(sent);
                std::task::Poll::Ready(first.map(Ok))
            }
            None => std::task::Poll::Ready(None),
        }
    }
}

/// State messages one stream may have waiting in the fleet's queue: one being handled, one
/// decoded and ready. A flood from one host delays every other host by at most this many of
/// its messages, however fast it sends.
const TURNS_PER_STREAM: usize = 2;

/// One stream as its own task holds it.
struct Edge {
    conn: u64,
    /// Its agent's heartbeats, counted for the fleet's tick.
    heartbeats: Arc<Heartbeats>,
    /// Where a heartbeat is answered.
    answer: mpsc::WeakSender<ToAgent>,
}

impl Edge {
    /// A heartbeat is counted, and answered if the fleet thread is at work: a controller
    /// whose fleet is stuck falls silent, and its agents move on.
    fn heard(&self, fleet: &FleetHandle) {
        self.heartbeats.heard();
        if fleet.alive()
            && let Some(out) = self.answer.upgrade()
        {
            let _ = out.try_send(ToAgent::Heartbeat {
                at_ms: crate::fleet::now_ms(),
            });
        }
    }
}

/// Turns the agent's messages into fleet commands until the stream ends or misbehaves;
/// heartbeats stay at the edge (`fleet/pulse.rs`).
async fn forward(
    fleet: &FleetHandle,
    edge: &Edge,
    inbound: &mut Streaming<v1::AgentMessage>,
) -> String {
    let conn = edge.conn;
    let turns = Arc::new(tokio::sync::Semaphore::new(TURNS_PER_STREAM));
    loop {
        let msg = match inbound.message().await {
            Ok(Some(v1::AgentMessage {
                msg: Some(Msg::Heartbeat(_)),
            })) => {
                edge.heard(fleet);
                continue;
            }
            Ok(Some(v1::AgentMessage { msg: Some(msg) })) => msg,
            Ok(Some(_)) => return "empty message".into(),
            Ok(None) => return "closed by the agent".into(),
            Err(status) => return format!("error: {}", status.message()),
        };
        let turn = if matches!(msg, Msg::Snapshot(_) | Msg::Delta(_)) {
            Turn::take(&turns).await
        } else {
            Turn::default()
        };
        let cmd = match command(conn, msg, turn) {
            Ok(cmd) => cmd,
            Err(why) => return why.to_string(),
        };
        if fleet.send(cmd).await.is_err() {
            return "controller shutting down".into();
        }
    }
}

/// Why an agent's stream is ended after its Hello.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error("a second Hello")]
    SecondHello,
    /// What the stream's task handles itself, never a fleet command.
    #[error("{0} is handled at the edge")]
    NotHere(&'static str),
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        source: wire::Malformed,
    },
}

/// What one agent message after the Hello asks of the fleet, checked at the edge: `Err` (a
/// second Hello, malformed states) ends the stream with the reason. `turn` is the stream's
/// place in the fleet's queue, for a state message.
pub(super) fn command(conn: u64, msg: Msg, turn: Turn) -> Result<Command, Refused> {
    let malformed = |what| move |source| Refused::Malformed { what, source };
    Ok(match msg {
        Msg::Hello(_) => return Err(Refused::SecondHello),
        Msg::Heartbeat(_) => return Err(Refused::NotHere("a heartbeat")),
        Msg::ContentReply(r) => Command::Content {
            conn,
            id: r.id,
            result: if r.refused.is_empty() {
                Ok(r.content)
            } else {
                Err(r.refused)
            },
        },
        Msg::Coverage(c) => Command::Coverage {
            conn,
            coverage: wire::coverage_from_proto(c).map_err(malformed("coverage"))?,
        },
        Msg::Snapshot(s) => match states(s.states, s.packages) {
            Ok(states) => Command::State {
                conn,
                report: if s.more {
                    Report::SnapshotPart
                } else {
                    Report::Snapshot
                },
                generation: s.plan_generation,
                seq: s.seq,
                states,
                turn,
            },
            Err(e) => return Err(malformed("snapshot")(e)),
        },
        Msg::Delta(d) => match states(d.states, d.packages) {
            Ok(states) => Command::State {
                conn,
                report: Report::Delta,
                generation: d.plan_generation,
                seq: d.seq,
                states,
                turn,
            },
            Err(e) => return Err(malformed("delta")(e)),
        },
    })
}

fn states(
    files: Vec<v1::PathState>,
    packages: Vec<v1::PackageState>,
) -> Result<Vec<crate::fleet::Stated>, wire::Malformed> {
    files
        .into_iter()
        .map(wire::state_from_proto)
        .chain(packages.into_iter().map(wire::package_from_proto))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_heartbeat_is_counted_and_answered_only_while_the_fleet_is_at_work() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a: {}\n";
        // A fleet is taken for stuck after one heartbeat interval (at least two seconds)
        // without a command; this one gets no ticks, so it goes quiet 2 s after its last.
        let (fleet, thread) = crate::fleet::for_test(dir.path(), manifest, Duration::from_secs(2))
            .spawn()
            .expect("spawn");
        let runtime = crate::fleet::test_runtime();
        runtime.block_on(async {
            let (out, mut rx) = mpsc::channel(8);
            let edge = Edge {
                conn: 0,
                heartbeats: Arc::new(Heartbeats::default()),
                answer: out.downgrade(),
            };
            let info = crate::model::HostInfo {
                host_id: "h".into(),
                ..Default::default()
            };
            fleet
                .connect(info, out, edge.heartbeats.clone(), false)
                .await
                .expect("accepted");
            assert!(matches!(rx.recv().await, Some(ToAgent::Plan { .. })));

            edge.heard(&fleet);
            assert!(
                matches!(rx.try_recv(), Ok(ToAgent::Heartbeat { .. })),
                "answered while the fleet is at work"
            );

            let deadline = Instant::now() + Duration::from_secs(10);
            while fleet.alive() {
                assert!(Instant::now() < deadline, "the fleet never went quiet");
                tokio::task::yield_now().await;
            }
            edge.heard(&fleet);
            assert!(
                rx.try_recv().is_err(),
                "a fleet that handles nothing is not vouched for"
            );

            fleet.overview().await.expect("the fleet answers");
            edge.heard(&fleet);
            assert!(matches!(rx.try_recv(), Ok(ToAgent::Heartbeat { .. })));
            // Every heartbeat counts for the fleet's tick, answered or not.
            assert_eq!(edge.heartbeats.count(), 3);
            fleet.send(Command::Shutdown).await.expect("shutdown");
        });
        thread.join().expect("the fleet thread did not panic");
    }
}
