//! Webhooks: drift events POSTed to HTTP(S) endpoints, as plumb's JSON or a Slack-compatible
//! message. Evaluation never waits for them: the fleet thread hands each event to a bounded
//! queue (`try_send`), and each webhook has its own worker that delivers in order, retrying
//! with exponential backoff. A queue that overflows (an endpoint down for a long time) drops
//! the newest events and says so in the log; the event log keeps every event regardless.
//!
//! Each stored event goes out with the event log's head as it stood once the event was
//! written (entry, hash, signature): the receiver keeps copies of the head outside the store,
//! which `plumb audit verify --head ENTRY:HASH` later holds the log to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::{Event, EventKind};
use crate::store::Head;

/// Events waiting for one webhook; beyond this they are dropped (and logged).
const QUEUE: usize = 10_000;
/// The longest wait between two attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// One webhook, from the controller's configuration (`webhooks:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (http:// or https://; the system's CA store is trusted).
    pub url: String,
    /// `json` (plumb's event, as `plumb drift --follow -o json` prints it) or `slack`.
    #[serde(default)]
    pub format: Format,
    /// Which events: `opened`, `resolved` and `change_ended` by default; also `changed`,
    /// `acknowledged`, `ack_revoked`, `ack_expired`, `host_online`, `host_offline`,
    /// `manifests_accepted`, `manifests_rejected`, `change_opened`, `change_closed`.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// Only drift no change window authorised (of `opened`, `changed` and `resolved`);
    /// other kinds of event as `events` says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unauthorised_only: bool,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How long one attempt may take [default: 10s].
    #[serde(
        default = "default_timeout",
        with = "plumb_common::config::duration_required"
    )]
    pub timeout: Duration,
    /// The wait before the first retry, doubled after each failure up to 5 minutes
    /// [default: 1s].
    #[serde(
        default = "default_backoff",
        with = "plumb_common::config::duration_required"
    )]
    pub backoff: Duration,
    /// Attempts per event before it is given up (logged) [default: 10].
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_events() -> Vec<EventKind> {
    vec![
        EventKind::Opened,
        EventKind::Resolved,
        EventKind::ChangeEnded,
    ]
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_attempts() -> u32 {
    10
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Slack,
}

impl WebhookConfig {
    /// Checks what serde cannot; `at` names the entry (`webhooks[0]`).
    pub fn validate(&self, at: &str) -> anyhow::Result<()> {
        let uri: hyper::Uri = self
            .url
            .parse()
            .with_context(|| format!("{at}: invalid url {:?}", self.url))?;
        anyhow::ensure!(
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some(),
            "{at}: url {:?} must be http:// or https:// with a host",
            self.url
        );
        anyhow::ensure!(self.attempts >= 1, "{at}: attempts must be at least 1");
        anyhow::ensure!(!self.events.is_empty(), "{at}: events is empty");
        for (k, v) in &self.headers {
            hyper::header::HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("{at}: invalid header name {k:?}"))?;
            hyper::header::HeaderValue::from_str(v)
                .with_context(|| format!("{at}: invalid value for header {k:?}"))?;
        }
        Ok(())
    }
}

/// plumb's JSON for an event: what `plumb drift --follow -o json` prints for it (the same
/// function makes both), and `audit_head`, the event log's head once the event was stored
/// (absent for an event the store has not written yet). `id` is the event's id in the log: a
/// receiver that sees it twice (a retry after a lost answer) can drop the second.
pub fn event_json(e: &Event, head: Option<&Head>) -> Value {
    let mut v = crate::json::event(e);
    if let (Some(h), Some(map)) = (head, v.as_object_mut()) {
        map.insert("audit_head".into(), crate::json::head(h));
    }
    v
}

/// A Slack incoming-webhook message (also understood by Mattermost and Rocket.Chat).
pub fn slack_json(e: &Event) -> Value {
    let what = match e.kind {
        EventKind::Opened => ":warning: drift opened",
        EventKind::Resolved => ":white_check_mark: drift resolved",
        EventKind::Changed => ":warning: drift changed",
        EventKind::Acknowledged => ":memo: drift acknowledged",
        EventKind::AckRevoked => ":memo: acknowledgement revoked",
        EventKind::AckExpired => ":hourglass: acknowledgement expired",
        EventKind::LogCreated => ":ledger: event log created",
        EventKind::StoreOutage => ":floppy_disk: the store could not write for a while",
        EventKind::HostOnline => ":large_green_circle: host online",
        EventKind::HostOffline => ":red_circle: host offline",
        EventKind::ManifestsAccepted => ":scroll: manifests accepted",
        EventKind::ManifestsRejected => ":x: manifests rejected",
        EventKind::ChangeOpened => ":unlock: change window opened",
        EventKind::ChangeClosed => ":lock: change window closed early",
        EventKind::ChangeEnded => ":lock: change window ended",
        EventKind::ContentRead => ":eyes: file content read",
        EventKind::LogRead => ":eyes: event log read",
    };
    // Slack's mrkdwn: escape &, <, > and keep values in code spans.
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('`', "'")
    };
    let mut text = format!("{what} on *{}*", esc(&e.host_id));
    if let Some(d) = &e.item {
        text.push_str(&format!(": `{}`", esc(&d.resource)));
        if !d.attribute.is_empty() {
            text.push_str(&format!(
                " {}: expected `{}`, actual `{}`",
                esc(&d.attribute),
                esc(&d.expected),
                esc(&d.actual)
            ));
        }
        if !d.declared_at.is_empty() {
            text.push_str(&format!(" (declared at {})", esc(&d.declared_at)));
        }
        let e = &d.evidence;
        if let Some(r) = &e.resolution {
            text.push_str(&format!(", {}", esc(&r.to_string())));
        }
        if let Some(who) = &e.who {
            text.push_str(&format!(", by `{}`", esc(&who.to_string())));
        }
        match &e.authorisation {
            Some(crate::evidence::Authorisation::Unauthorised) => text.push_str(" *unauthorised*"),
            Some(crate::evidence::Authorisation::Authorised { change }) => {
                text.push_str(&format!(", authorised by {}", esc(change)))
            }
            None => {}
        }
    }
    json!({ "text": text })
}

/// What happened to the events of one webhook, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    /// Refused with a 4xx, or failed every attempt.
    failed: AtomicU64,
    /// Never attempted: the queue was full.
    dropped: AtomicU64,
}

/// What the fleet holds to hand events to the webhooks.
#[derive(Clone)]
pub struct Sink {
    queues: Vec<Queue>,
}

#[derive(Clone)]
struct Queue {
    kinds: Vec<EventKind>,
    unauthorised_only: bool,
    tx: mpsc::Sender<(Event, Option<Head>)>,
    counters: Arc<Counters>,
}

impl Sink {
    /// Queues the event, with the log's head once it was stored (`None` if it is not stored
    /// yet), for every webhook that wants it; never waits.
    pub fn send(&self, event: &Event, head: Option<&Head>) {
        for q in &self.queues {
            let drift = matches!(
                event.kind,
                EventKind::Opened | EventKind::Changed | EventKind::Resolved
            );
            let wanted = q.kinds.contains(&event.kind)
                && !(q.unauthorised_only && drift && !crate::json::unauthorised_drift_event(event));
            if wanted
                && let Err(mpsc::error::TrySendError::Full(_)) =
                    q.tx.try_send((event.clone(), head.cloned()))
            {
                q.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event = event.id,
                    "webhook queue full ({QUEUE} events): event dropped for that webhook"
                );
            }
        }
    }

    /// What happened to each webhook's events so far, in the order of the configuration.
    pub fn counts(&self) -> Vec<Counts> {
        self.queues
            .iter()
            .map(|q| {
                let c = &q.counters;
                Counts {
                    delivered: c.delivered.load(Ordering::Relaxed),
                    retried: c.retried.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// One webhook's `Counters` at a moment, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub retried: u64,
    /// Refused with a 4xx, or failed every attempt.
    pub failed: u64,
    /// Never attempted: the queue was full.
    pub dropped: u64,
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client() -> anyhow::Result<Client> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .context("cannot load the system's CA certificates for webhooks")?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// Starts one worker per webhook; `None` when there are none.
pub fn start(
    webhooks: Vec<WebhookConfig>,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<Sink>> {
    if webhooks.is_empty() {
        return Ok(None);
    }
    let client = client()?;
    let mut queues = Vec::new();
    for hook in webhooks {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        queues.push(Queue {
            kinds: hook.events.clone(),
            unauthorised_only: hook.unauthorised_only,
            tx,
            counters: counters.clone(),
        });
        tokio::spawn(worker(hook, client.clone(), rx, counters, shutdown.clone()));
    }
    Ok(Some(Sink { queues }))
}

/// The URL without its path and query: Slack's secret is in the path, and it stays out of logs.
fn redacted(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(u) => format!(
            "{}://{}/…",
            u.scheme_str().unwrap_or("?"),
            u.authority().map(|a| a.as_str()).unwrap_or("?")
        ),
        Err(_) => "(invalid url)".into(),
    }
}

async fn worker(
    hook: WebhookConfig,
    client: Client,
    mut rx: mpsc::Receiver<(Event, Option<Head>)>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) {
    let target = redacted(&hook.url);
    loop {
        let (event, head) = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        let body = match hook.format {
            Format::Json => event_json(&event, head.as_ref()),
            Format::Slack => slack_json(&event),
        }
        .to_string();
        let mut wait = hook.backoff;
        for attempt in 1..=hook.attempts {
            match post(&client, &hook, &body).await {
                Ok(()) => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(webhook = %target, event = event.id, attempt, "webhook delivered");
                    break;
                }
                Err(Failure::Permanent(why)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(webhook = %target, event = event.id, error = %why, "webhook refused the event; not retrying");
                    break;
                }
                Err(Failure::Retry(why, after)) if attempt < hook.attempts => {
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                    let delay = after.unwrap_or(wait).min(BACKOFF_CAP);
                    tracing::warn!(webhook = %target, event = event.id, attempt, error = %why, retry_in = ?delay, "webhook delivery failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    wait = (wait * 2).min(BACKOFF_CAP);
                }
                Err(Failure::Retry(why, _)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(webhook = %target, event = event.id, attempts = hook.attempts, error = %why, "webhook delivery failed; giving the event up");
                }
            }
        }
    }
}

enum Failure {
    /// Worth another attempt (network, timeout, 5xx, 408, 429), maybe after a given delay.
    Retry(String, Option<Duration>),
    /// The endpoint rejected the request itself (other 4xx): retrying cannot help.
    Permanent(String),
}

async fn post(client: &Client, hook: &WebhookConfig, body: &str) -> Result<(), Failure> {
    let mut req = hyper::Request::post(&hook.url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("plumb/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in &hook.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| Failure::Permanent(e.to_string()))?;
    let resp = match tokio::time::timeout(hook.timeout, client.request(req)).await {
        Err(_) => {
            return Err(Failure::Retry(
                format!("no answer within {:?}", hook.timeout),
                None,
            ));
        }
        Ok(Err(e)) => return Err(Failure::Retry(format!("{e:#}"), None)),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the answer so the connection can be reused; its content does not matter.
    let _ = tokio::time::timeout(hook.timeout, resp.into_body().collect()).await;
    if status.is_success() {
        Ok(())
    } else if status.is_server_error()
        || status == hyper::StatusCode::TOO_MANY_REQUESTS
        || status == hyper::StatusCode::REQUEST_TIMEOUT
    {
        Err(Failure::Retry(format!("HTTP {status}"), retry_after))
    } else {
        Err(Failure::Permanent(format!("HTTP {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DriftRecord;

    fn event(kind: EventKind) -> Event {
        Event {
            id: 7,
            at_ms: 1_764_000_000_000,
            host_id: "web-01".into(),
            kind,
            item: Some(DriftRecord {
                resource: "file:/etc/motd".into(),
                attribute: "sha256".into(),
                expected: "ab<c>".into(),
                actual: "def".into(),
                since_ms: 1_764_000_000_000,
                declared_at: "app.yaml:3".into(),
                evidence: Default::default(),
            }),
        }
    }

    #[test]
    fn json_is_the_follow_shape() {
        let v = event_json(&event(EventKind::Opened), None);
        assert_eq!(v["id"], 7);
        assert_eq!(v["event"], "opened");
        assert_eq!(v["host"], "web-01");
        assert_eq!(v["resource"], "file:/etc/motd");
        assert_eq!(v["expected"], "ab<c>");
        assert_eq!(v["at"], "2025-11-24T16:00:00.000Z");
        assert!(v.get("audit_head").is_none(), "not stored: no head");
        let head = Head {
            last_id: 8,
            hash: "3f2a".into(),
            signature: "5ig".into(),
            public_key: "4b".into(),
        };
        let v = event_json(&event(EventKind::Opened), Some(&head));
        assert_eq!(
            v["audit_head"],
            json!({"entry": 8, "hash": "3f2a", "signature": "5ig", "public_key": "4b"})
        );
    }

    #[test]
    fn slack_text_is_escaped() {
        let v = slack_json(&event(EventKind::Resolved));
        assert_eq!(
            v["text"],
            ":white_check_mark: drift resolved on *web-01*: `file:/etc/motd` sha256: expected `ab&lt;c&gt;`, actual `def` (declared at app.yaml:3)"
        );
    }

    #[test]
    fn slack_text_says_who_how_and_whether_authorised() {
        use crate::evidence::{Authorisation, Evidence, Process, Resolution, Who};
        let mut e = event(EventKind::Opened);
        let who = Who::Process(Box::new(Process {
            origin: "manual".into(),
            name: "vim<".into(),
            uid: Some(0),
            user: "root".into(),
            login_uid: Some(1000),
            login_user: "alice".into(),
            ..Default::default()
        }));
        if let Some(d) = e.item.as_mut() {
            d.evidence = Evidence {
                who: Some(who.clone()),
                authorisation: Some(Authorisation::Unauthorised),
                resolution: None,
            };
        }
        assert!(
            slack_json(&e)["text"]
                .as_str()
                .is_some_and(|t| t.ends_with(", by `alice as root: vim&lt;` *unauthorised*")),
            "{}",
            slack_json(&e)["text"]
        );
        let mut r = event(EventKind::Resolved);
        if let Some(d) = r.item.as_mut() {
            d.evidence = Evidence {
                who: Some(who),
                authorisation: Some(Authorisation::Authorised {
                    change: "CHG-1".into(),
                }),
                resolution: Some(Resolution::Reverted),
            };
        }
        assert!(
            slack_json(&r)["text"].as_str().is_some_and(|t| t.ends_with(
                ", reverted on the host, by `alice as root: vim&lt;`, authorised by CHG-1"
            )),
            "{}",
            slack_json(&r)["text"]
        );
        let ended = Event {
            kind: EventKind::ChangeEnded,
            ..event(EventKind::Opened)
        };
        assert!(
            slack_json(&ended)["text"]
                .as_str()
                .is_some_and(|t| t.starts_with(":lock: change window ended")),
            "{}",
            slack_json(&ended)["text"]
        );
    }

    #[test]
    fn configuration_defaults_and_checks() {
        let hook: WebhookConfig =
            serde_yaml::from_str("url: https://hooks.example/T/B/secret\n").expect("valid");
        assert_eq!(hook.format, Format::Json);
        assert_eq!(
            hook.events,
            [
                EventKind::Opened,
                EventKind::Resolved,
                EventKind::ChangeEnded
            ]
        );
        assert!(!hook.unauthorised_only);
        assert_eq!(hook.timeout, Duration::from_secs(10));
        assert_eq!(hook.attempts, 10);
        hook.validate("webhooks[0]").expect("valid");
        let bad: WebhookConfig = serde_yaml::from_str("url: ftp://x/\n").expect("parses");
        assert!(bad.validate("webhooks[0]").is_err());
        assert!(serde_yaml::from_str::<WebhookConfig>("url: http://x/\nevents: [nope]\n").is_err());
        assert_eq!(
            redacted("https://hooks.slack.com/services/T/B/secret"),
            "https://hooks.slack.com/…"
        );
    }
}
