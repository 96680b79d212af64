//! plumb's agent: observes the files a controller's plan declares and streams their state.
//!
//! The agent never evaluates policy: it reports what it sees (attributes, digests, which line
//! patterns match) and the controller decides what is drift. File content never leaves the host.

pub mod capture;
pub mod cli;
pub mod collect;
pub mod root;
mod session;
pub mod tls;
pub mod watch;
mod wire;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use root::Root;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// e.g. `http://127.0.0.1:7700`
    pub controller: String,
    pub host_id: String,
    pub labels: BTreeMap<String, String>,
    pub root: Root,
    /// Full rescan period: the safety net under the watches.
    pub rescan_interval: Duration,
    /// How often paths that could not be watched are observed instead.
    pub poll_interval: Duration,
    /// At most this many directories are watched; the rest is polled.
    pub max_watches: Option<usize>,
    /// Mutual TLS towards the controller (an `https://` URL).
    pub tls: Option<tls::ClientTls>,
    /// Notified to observe every path again now (the binary wires SIGHUP to it).
    pub rescan_now: std::sync::Arc<tokio::sync::Notify>,
    /// How long changes are gathered before they are observed and sent.
    pub coalesce: Duration,
}

impl AgentConfig {
    pub fn new(controller: impl Into<String>) -> Self {
        Self {
            controller: controller.into(),
            host_id: collect::facts::hostname(),
            labels: BTreeMap::new(),
            root: Root::new(None),
            rescan_interval: Duration::from_secs(600),
            poll_interval: Duration::from_secs(2),
            max_watches: None,
            rescan_now: Default::default(),
            tls: None,
            coalesce: Duration::from_millis(5),
        }
    }
}

const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Runs the agent until `shutdown`: connects, streams, and reconnects with exponential backoff
/// and jitter whenever the stream is lost.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut endpoint = Endpoint::from_shared(cfg.controller.clone())
        .with_context(|| format!("invalid controller URL {:?}", cfg.controller))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if let Some(tls) = &cfg.tls {
        endpoint = tls.apply(endpoint)?;
    }
    tracing::info!(controller = %cfg.controller, host_id = %cfg.host_id, "agent starting");
    let mut backoff = BACKOFF_FIRST;
    loop {
        let mut planned = false;
        let result = match endpoint.connect().await {
            Ok(channel) => session::run(&cfg, channel, &shutdown, &mut planned).await,
            Err(e) => Err(anyhow::Error::new(e).context("cannot connect")),
        };
        match result {
            Ok(session::Ended::Shutdown) => return Ok(()),
            Err(e) => {
                if planned {
                    backoff = BACKOFF_FIRST;
                }
                let delay = jitter(backoff);
                tracing::warn!(error = format!("{e:#}"), retry_in = ?delay, "lost the controller");
                backoff = (backoff * 2).min(BACKOFF_CAP);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// 50% to 100% of `d`, so that a fleet cut off together does not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let r = RandomState::new().hash_one(session::now_ms()) % 1000;
    d / 2 + d * (r as u32) / 2000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10));
            assert!(
                j >= Duration::from_secs(5) && j <= Duration::from_secs(10),
                "{j:?}"
            );
        }
    }
}
