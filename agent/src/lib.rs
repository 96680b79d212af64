//! plumb's agent: observes the files a controller's plan declares and streams their state.
//!
//! The agent never evaluates policy: it reports what it sees (attributes, digests, which line
//! patterns match) and the controller decides what is drift. File content never leaves the host.

pub mod attribute;
pub mod capture;
/// The command line of `plumb-agent`.
pub mod cli;
pub mod collect;
pub mod config;
pub mod message;
pub mod path_set;
pub mod root;
mod session;
pub mod watch;
/// The agent's side of plumb.v1; public so that the load generator (`plumb-bench scale`)
/// speaks exactly what agents say.
pub mod wire;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use root::Root;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// e.g. `http://127.0.0.1:7700`; several, comma-separated, are tried in turn.
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
    /// Paths whose content is never sent, whatever a plan allows (globs, `*` matches anything).
    pub deny_content: Vec<String>,
    /// Mutual TLS towards the controller (an `https://` URL).
    pub tls: Option<plumb_common::tls::ClientTls>,
    /// Notified to observe every path again now (the binary wires SIGHUP to it).
    pub rescan_now: std::sync::Arc<tokio::sync::Notify>,
    /// How long a file still being written (data seen, not yet closed) is waited for before
    /// it is observed anyway. A complete change (a close after writing, a rename, a removal,
    /// new attributes) is observed at once.
    pub coalesce: Duration,
    /// A state message the controller has not acknowledged (stored) for this long, with no
    /// acknowledgement in between, makes the agent send its whole state again.
    pub ack_deadline: Duration,
    /// Who made each change: off, or fanotify.
    pub attribution: attribute::Source,
    /// With attribution, also send the writer's command line (never for sensitive or
    /// deny-listed paths): it may hold secrets.
    pub attribution_command_lines: bool,
}

impl AgentConfig {
    /// The controllers to report to, in the order they are tried.
    pub fn controller_urls(&self) -> Vec<String> {
        self.controller
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }

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
            deny_content: DEFAULT_DENY.iter().map(|s| s.to_string()).collect(),
            coalesce: Duration::from_millis(50),
            ack_deadline: Duration::from_secs(120),
            attribution: attribute::Source::Off,
            attribution_command_lines: false,
        }
    }
}

/// Content no plan can ask for: password hashes and private keys.
pub const DEFAULT_DENY: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssl/private/*",
    "/etc/ssh/ssh_host_*_key",
    "/root/.ssh/*",
];

/// Whether `path` matches a deny-list glob (`*` matches any run of characters, `/` included).
pub fn denied(deny: &[String], path: &str) -> bool {
    deny.iter()
        .any(|g| glob_match(g.as_bytes(), path.as_bytes()))
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob_match(rest, &s[1..]),
    }
}

const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Runs the agent until `shutdown`: connects, streams, and reconnects with exponential backoff
/// and jitter whenever the stream is lost.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut endpoints = Vec::new();
    for url in cfg.controller_urls() {
        let mut endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("invalid controller URL {url:?}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if let Some(tls) = &cfg.tls {
            endpoint = tls.apply(endpoint)?;
        }
        endpoints.push((url, endpoint));
    }
    anyhow::ensure!(
        !endpoints.is_empty(),
        "no controller URL in {:?}",
        cfg.controller
    );
    tracing::info!(controller = %cfg.controller, host_id = %cfg.host_id, "agent starting");
    // Once for the agent's life: a change made while it reconnects is still named.
    let attribution = attribute::Attribution::start(
        cfg.attribution,
        &cfg.root,
        cfg.attribution_command_lines,
        cfg.deny_content.clone(),
    );
    let mut backoff = BACKOFF_FIRST;
    // Which controller is tried next: the next one after each failure, round the list.
    let mut next = 0;
    loop {
        let mut planned = false;
        let (url, endpoint) = &endpoints[next % endpoints.len()];
        next += 1;
        let result = match endpoint.connect().await {
            Ok(channel) => session::run(&cfg, channel, &shutdown, &mut planned, &attribution).await,
            Err(e) => Err(anyhow::Error::new(e).context("cannot connect")),
        };
        match result {
            Ok(session::Ended::Shutdown) => return Ok(()),
            Ok(session::Ended::GoAway(reason)) => {
                // Not a failure: the controller rebalances its streams. The next controller
                // given (or the same address, which a load balancer may send elsewhere), on
                // a new connection, without waiting.
                backoff = BACKOFF_FIRST;
                let then = &endpoints[next % endpoints.len()].0;
                tracing::info!(controller = %url, reason, next = %then, "the controller asked for a new stream; connecting again");
            }
            Err(e) => {
                if planned {
                    backoff = BACKOFF_FIRST;
                }
                let delay = jitter(backoff);
                let then = &endpoints[next % endpoints.len()].0;
                tracing::warn!(controller = %url, error = format!("{e:#}"), retry_in = ?delay, next = %then, "lost the controller");
                plumb_common::systemd::status(&format!(
                    "cannot reach {url} ({e:#}); trying {then} in {delay:.1?}"
                ));
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
    fn the_default_deny_list() {
        let deny: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
        for path in [
            "/etc/shadow",
            "/etc/ssl/private/server.key",
            "/etc/ssh/ssh_host_ed25519_key",
            "/root/.ssh/id_rsa",
        ] {
            assert!(denied(&deny, path), "{path}");
        }
        for path in [
            "/etc/passwd",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssl/certs/ca.pem",
            "/etc/shadow.d",
        ] {
            assert!(!denied(&deny, path), "{path}");
        }
    }

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
