//! Reading the controller's stream as it comes, whatever the session is doing.
//!
//! The session handles one message at a time, and a plan's snapshot keeps it busy for as long
//! as the scan takes, while the controller acknowledges every part it stores: thousands of
//! small messages. Left unread, each waits in h2 as a frame (h2's table of them never
//! shrinks: about 1 MiB for the ~3,000 parts of 100,000 paths), and past about 10,000 small
//! frames unread h2 takes the peer for an attacker and ends the connection
//! (`ENHANCE_YOUR_CALM`, "too_many_data_frames"): a host of a few hundred thousand paths would
//! never finish its first snapshot. So a task reads ahead: acknowledgements (cumulative) and
//! heartbeats (proof of life) are folded into the latest of each while the session is busy;
//! every other message reaches the session in order, the task holding at most one while it
//! waits for room, and reading no further than that.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt as _};

use crate::message::Incoming;

/// Messages the session has not yet taken.
const ROOM: usize = 4;

/// The controller's messages, read ahead of the session by a task that ends when this is
/// dropped.
pub struct ReadAhead {
    rx: mpsc::Receiver<anyhow::Result<Incoming>>,
    task: JoinHandle<()>,
}

impl ReadAhead {
    pub fn new<S>(inbound: S) -> Self
    where
        S: Stream<Item = anyhow::Result<Incoming>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(ROOM);
        Self {
            rx,
            task: tokio::spawn(read(inbound, tx)),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for ReadAhead {
    type Item = anyhow::Result<Incoming>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// What was folded while the session was busy.
#[derive(Default)]
struct Folded {
    ack: Option<u64>,
    heartbeat: bool,
}

impl Folded {
    /// Folds `msg` in if it can be; gives it back if not.
    fn fold(&mut self, msg: anyhow::Result<Incoming>) -> Option<anyhow::Result<Incoming>> {
        match msg {
            Ok(Incoming::Ack { seq }) => self.ack = Some(self.ack.map_or(seq, |a| a.max(seq))),
            Ok(Incoming::Heartbeat) => self.heartbeat = true,
            other => return Some(other),
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.ack.is_none() && !self.heartbeat
    }

    /// The next folded message to deliver, if any: the acknowledgement first.
    fn take(&mut self) -> Option<Incoming> {
        if let Some(seq) = self.ack.take() {
            Some(Incoming::Ack { seq })
        } else {
            std::mem::take(&mut self.heartbeat).then_some(Incoming::Heartbeat)
        }
    }
}

async fn read<S>(inbound: S, tx: mpsc::Sender<anyhow::Result<Incoming>>)
where
    S: Stream<Item = anyhow::Result<Incoming>>,
{
    let mut inbound = std::pin::pin!(inbound);
    let mut folded = Folded::default();
    // A message that cannot be folded, waiting for room.
    let mut held: Option<anyhow::Result<Incoming>> = None;
    let mut ended = false;
    loop {
        if ended && held.is_none() && folded.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            permit = tx.reserve(), if held.is_some() || !folded.is_empty() => {
                // The session is gone: so is the stream.
                let Ok(permit) = permit else { return };
                match held.take() {
                    Some(msg) => permit.send(msg),
                    None => permit.send(Ok(folded.take().expect("something was folded"))),
                }
            }
            msg = inbound.next(), if !ended => {
                let Some(msg) = msg else {
                    ended = true;
                    continue;
                };
                // A malformed message ends the session: nothing after it is read.
                ended = msg.is_err();
                let Some(msg) = folded.fold(msg) else { continue };
                if let Some(first) = held.replace(msg) {
                    // Two waiting that cannot be folded: read no further until the session
                    // takes the first (h2's flow control then holds the controller back).
                    if tx.send(first).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::wrappers::ReceiverStream;

    use super::*;

    fn content(id: u64) -> Incoming {
        Incoming::ContentRequest {
            id,
            path: "/etc/motd".into(),
            max_bytes: 1,
        }
    }

    /// What a stream of `Incoming` shows in a test: its kind and number.
    fn shown(m: &anyhow::Result<Incoming>) -> String {
        match m {
            Ok(Incoming::Ack { seq }) => format!("ack {seq}"),
            Ok(Incoming::Heartbeat) => "heartbeat".into(),
            Ok(Incoming::ContentRequest { id, .. }) => format!("content {id}"),
            Ok(Incoming::GoAway(why)) => format!("goaway {why}"),
            Ok(Incoming::Plan(_)) => "plan".into(),
            Err(e) => format!("error {e}"),
        }
    }

    #[tokio::test]
    async fn acknowledgements_are_read_while_the_session_is_busy_and_it_gets_the_latest() {
        const N: u64 = 50_000;
        // The controller's side: room for one message, so the sender finishes only if every
        // message but the last is read while the session reads nothing.
        let (tx, rx) = mpsc::channel(1);
        let mut ahead = ReadAhead::new(ReceiverStream::new(rx));
        let controller = tokio::spawn(async move {
            let send = |m| tx.send(Ok(m));
            for seq in 1..=N {
                send(Incoming::Ack { seq }).await.expect("read");
            }
            send(Incoming::Heartbeat).await.expect("read");
            send(content(7)).await.expect("read");
            for seq in N + 1..=2 * N {
                send(Incoming::Ack { seq }).await.expect("read");
                send(Incoming::Heartbeat).await.expect("read");
            }
            send(Incoming::GoAway("moving".into())).await.expect("read");
        });
        tokio::time::timeout(Duration::from_secs(60), controller)
            .await
            .expect("the controller's messages were read though the session was busy")
            .expect("the controller's task");

        let mut seen = Vec::new();
        while let Some(m) = ahead.next().await {
            seen.push(shown(&m));
        }
        // Every message that cannot be folded, in order; of the 100,000 acknowledgements and
        // 50,001 heartbeats, the few the session had room for and then the latest of each.
        let unfolded: Vec<&String> = seen
            .iter()
            .filter(|s| !s.starts_with("ack") && *s != "heartbeat")
            .collect();
        assert_eq!(unfolded, ["content 7", "goaway moving"], "{seen:?}");
        assert!(seen.len() <= ROOM + 4, "folded: {seen:?}");
        let acks: Vec<u64> = seen
            .iter()
            .filter_map(|s| s.strip_prefix("ack ")?.parse().ok())
            .collect();
        assert!(acks.is_sorted(), "{acks:?}");
        assert_eq!(acks.last(), Some(&(2 * N)), "{seen:?}");
        let content_at = seen
            .iter()
            .position(|s| s == "content 7")
            .expect("the request arrived");
        assert!(
            seen[content_at..].iter().any(|s| s == "heartbeat"),
            "the heartbeats after the request still reach the session: {seen:?}"
        );
    }

    #[tokio::test]
    async fn messages_that_cannot_be_folded_arrive_in_order_and_nothing_is_read_after_an_error() {
        let inbound = tokio_stream::iter([
            Ok(content(1)),
            Ok(Incoming::Ack { seq: 3 }),
            Ok(content(2)),
            Ok(content(3)),
            Err(anyhow::anyhow!("malformed")),
            Ok(content(4)),
        ]);
        let seen: Vec<String> = ReadAhead::new(inbound).map(|m| shown(&m)).collect().await;
        let unfolded: Vec<&String> = seen.iter().filter(|s| !s.starts_with("ack")).collect();
        assert_eq!(
            unfolded,
            ["content 1", "content 2", "content 3", "error malformed"]
        );
        assert!(seen.contains(&"ack 3".to_string()), "{seen:?}");
    }

    #[tokio::test]
    async fn dropping_it_stops_reading_the_controllers_stream() {
        let (tx, rx) = mpsc::channel::<anyhow::Result<Incoming>>(1);
        let ahead = ReadAhead::new(ReceiverStream::new(rx));
        tx.send(Ok(Incoming::Heartbeat)).await.expect("read");
        drop(ahead);
        tokio::time::timeout(Duration::from_secs(60), tx.closed())
            .await
            .expect("the task reading the stream ended with the session");
    }
}
