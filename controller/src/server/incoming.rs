//! The controller's accepted connections, guarded: at most so many at once (each is a file
//! descriptor; a flood of idle ones once starved the store and the queries), and each must
//! begin speaking (an HTTP/2 preface, a TLS ClientHello) within a deadline or be closed.
//! Nagle's algorithm is off on every one (see `TCP_NODELAY` below).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes a connection must send before the deadline: an HTTP/2 client's preface alone is 24,
/// a TLS ClientHello more.
const FIRST_BYTES: usize = 24;
/// File descriptors kept free of connections (the store, watches, webhooks, the metrics port).
const RESERVED_FDS: usize = 256;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// At most this many connections at once; more are closed as they come.
    pub(crate) max_connections: usize,
    /// A connection that has not begun speaking by then is closed.
    pub(crate) first_bytes_within: Duration,
}

/// What the open-files limit leaves for connections: its soft value less a reserve.
pub(crate) fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(1024);
    soft.saturating_sub(RESERVED_FDS).max(32)
}

/// Accepts from `listener` until `shutdown`, as a stream of guarded connections for tonic.
pub(crate) fn incoming(
    listener: TcpListener,
    limits: Limits,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<Guarded>> {
    // The server takes connections as fast as they come; a few in hand are plenty.
    let (tx, rx) = mpsc::channel(16);
    let places = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        let mut refused = 0u64;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => {
                    // No new connections; the stream stays open until the server lets go of
                    // it, so that it ends by its graceful shutdown, not by running dry.
                    drop(listener);
                    tx.closed().await;
                    return;
                }
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to be given back.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(place) = places.clone().try_acquire_owned() else {
                refused += 1;
                if refused.is_power_of_two() {
                    tracing::warn!(
                        max = limits.max_connections,
                        refused,
                        "connection limit reached; closing new connections (--max-connections)"
                    );
                }
                drop(stream);
                continue;
            };
            // TCP_NODELAY: the builder's `tcp_nodelay` does not apply to connections of our
            // own, and without it a small message written while the previous one is
            // unacknowledged waits for the peer's delayed ACK: 40 ms on Linux, about one drift
            // event in a thousand in the latency benchmark.
            let _ = stream.set_nodelay(true);
            let guarded = Guarded {
                inner: stream,
                _place: place,
                deadline: Some(Box::pin(tokio::time::sleep(limits.first_bytes_within))),
                received: 0,
            };
            if tx.send(Ok(guarded)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// An accepted connection holding one of the places; reads fail once the deadline passes
/// before it has sent `FIRST_BYTES`, which makes the server close it.
pub(crate) struct Guarded {
    inner: TcpStream,
    _place: OwnedSemaphorePermit,
    deadline: Option<Pin<Box<Sleep>>>,
    received: usize,
}

impl Guarded {
    #[cfg(test)]
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.received += buf.filled().len() - before;
                if this.received >= FIRST_BYTES {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection sent nothing in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use tokio_stream::StreamExt as _;

    use super::*;

    async fn listen(limits: Limits) -> (std::net::SocketAddr, ReceiverStream<io::Result<Guarded>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (addr, incoming(listener, limits, CancellationToken::new()))
    }

    #[tokio::test]
    async fn accepted_connections_send_small_messages_at_once() {
        let (addr, mut incoming) = listen(Limits {
            max_connections: 4,
            first_bytes_within: Duration::from_secs(10),
        })
        .await;
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(
            accepted.stream().nodelay().expect("nodelay"),
            "Nagle is off"
        );
    }

    // Regression (issue 12, weak): idle connections that never spoke were kept forever, and
    // with 450 of them and a low open-file limit, queries stopped.
    #[tokio::test]
    async fn a_connection_that_says_nothing_is_closed_and_at_most_so_many_are_held() {
        let (addr, mut incoming) = listen(Limits {
            max_connections: 2,
            first_bytes_within: Duration::from_millis(200),
        })
        .await;
        let idle = std::net::TcpStream::connect(addr).expect("connect");
        let mut accepted = incoming.next().await.expect("one").expect("accepted");
        let mut buf = [0u8; 8];
        let started = std::time::Instant::now();
        let e = tokio::io::AsyncReadExt::read(&mut accepted, &mut buf)
            .await
            .expect_err("the deadline ends it");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(accepted);
        drop(idle);

        // Two held; a third is closed as it comes, and the held ones keep working.
        let _a = std::net::TcpStream::connect(addr).expect("connect");
        let _b = std::net::TcpStream::connect(addr).expect("connect");
        let held = [
            incoming.next().await.expect("a").expect("accepted"),
            incoming.next().await.expect("b").expect("accepted"),
        ];
        let third = tokio::task::spawn_blocking(move || {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut b = [0u8; 1];
            c.read(&mut b)
        })
        .await
        .expect("join");
        assert!(
            matches!(third, Ok(0))
                || third
                    .as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "closed at once: {third:?}"
        );
        drop(held);
    }
}
