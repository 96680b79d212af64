//! The web console (`--web-listen`): server-rendered pages over the fleet, live through
//! server-sent events, with actions for those whose role allows them.
//!
//! Who is asking comes, in this order, from the header an authenticating reverse proxy sets
//! (only from the proxy addresses configured), from the client certificate the browser
//! presents (the operator's, with its role; the same CA as the CLI's), or, on a plaintext
//! loopback listener without a proxy configured, is the local admin as for the CLI. Each page
//! and action is allowed by role (`crate::role`), as the gRPC API allows them.
//!
//! Hardening: every value is escaped (`html.rs`); a strict Content-Security-Policy allows
//! scripts and styles from the console itself only; actions are POSTs carrying the session's
//! CSRF token, refused cross-site; sessions (a cookie naming the token) expire.

mod actions;
mod auth;
mod chart;
mod html;
mod pages;
mod session;
mod views;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::pages::Verified;
use self::session::Sessions;
use super::TlsFiles;
use super::identity::{Peer, peer_of};
use crate::fleet::FleetHandle;
use crate::manifest::glob::Glob;
use crate::role::{Role, Scope, Selector};
use crate::store::Location;

/// Drift rows per page.
const PAGE_ROWS: usize = 100;
/// Log entries per page, and on a host's timeline.
const LOG_ROWS: u32 = 100;
const TIMELINE_ROWS: u32 = 50;
/// How long a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// `web:` in controller.yaml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebFile {
    /// Where the console listens (`--web-listen`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// How long a console session lasts [default: 8h]; a form from an older one is refused.
    #[serde(
        default,
        with = "plumb_common::config::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub session: Option<Duration>,
    /// An authenticating reverse proxy (oauth2-proxy and the like) in front of the console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyAuth>,
}

/// The proxy's word on who the person is, trusted from its addresses only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyAuth {
    /// The proxy's addresses: a request from any other carries no identity in its headers.
    pub trusted: Vec<IpAddr>,
    /// The header naming the user [default: X-Forwarded-User].
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// The header listing the user's groups, comma-separated [default: X-Forwarded-Groups].
    #[serde(default = "default_groups_header")]
    pub groups_header: String,
    /// Group → role; a person in several groups has the greatest of their roles.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// The role of a person in none of those groups; without it they are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_role: Option<Role>,
    /// Group → the hosts its people may see. A person sees the hosts of every group of
    /// theirs with a role or a scope; a group with a role and no scope: every host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scopes: BTreeMap<String, ScopeFile>,
}

/// A group's hosts: ids matching any of `hosts` (none: any id) with all of `labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ScopeFile {
    fn selector(&self) -> Result<Selector, String> {
        Ok(Selector {
            hosts: self
                .hosts
                .iter()
                .map(|g| Glob::new(g).map_err(|p| format!("{g:?}: {p}")))
                .collect::<Result<_, _>>()?,
            labels: self.labels.clone(),
        })
    }
}

impl ProxyAuth {
    /// Checks every group's scope (at start, so a bad glob is said then, not per request).
    pub fn check(&self) -> Result<(), String> {
        for (group, scope) in &self.scopes {
            scope
                .selector()
                .map_err(|e| format!("web.proxy.scopes.{group}: {e}"))?;
        }
        Ok(())
    }

    /// The hosts a person in `groups` sees.
    fn scope_of(&self, groups: &[&str]) -> Scope {
        let mut selectors = Vec::new();
        for g in groups {
            match self.scopes.get(*g) {
                Some(s) => selectors.extend(s.selector().ok()),
                None if self.roles.contains_key(*g) => return Scope::default(),
                None => {}
            }
        }
        Scope { selectors }
    }
}

fn default_user_header() -> String {
    "X-Forwarded-User".to_owned()
}

fn default_groups_header() -> String {
    "X-Forwarded-Groups".to_owned()
}

/// The console's settings, as `plumb serve` resolved them.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub session: Duration,
    pub proxy: Option<ProxyAuth>,
}

pub const DEFAULT_SESSION: Duration = Duration::from_secs(8 * 3600);

/// What a request's connection says about who is on the other end.
#[derive(Debug, Clone)]
struct Conn {
    remote: IpAddr,
    /// The client certificate's identity, on a TLS listener that was given one.
    cert: Option<Peer>,
}

struct Console {
    fleet: FleetHandle,
    tls: bool,
    proxy: Option<ProxyAuth>,
    sessions: Mutex<Sessions>,
    manifests: PathBuf,
    store: Location,
    audit_key: PathBuf,
    verified: Mutex<Verified>,
}

/// Starts the console on its own listener; returns its address.
pub(crate) async fn serve(
    cfg: WebConfig,
    tls: Option<&TlsFiles>,
    fleet: FleetHandle,
    manifests: PathBuf,
    store: Location,
    audit_key: PathBuf,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    if tls.is_none() && !cfg.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the console on {} without TLS: anyone who can reach it would be admin\n\
             hint: give the controller --tls-cert, --tls-key and --tls-ca (the console then asks browsers for operator certificates), \
             or listen on loopback behind an authenticating proxy (web.proxy in controller.yaml)",
            cfg.listen
        );
    }
    if let Some(proxy) = &cfg.proxy {
        proxy.check().map_err(anyhow::Error::msg)?;
    }
    let acceptor = tls.map(acceptor).transpose()?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {} for the console", cfg.listen))?;
    let addr = listener.local_addr()?;
    let console = Arc::new(Console {
        fleet,
        tls: acceptor.is_some(),
        proxy: cfg.proxy,
        sessions: Mutex::new(Sessions::new(cfg.session)),
        manifests,
        store,
        audit_key,
        verified: Mutex::new(Verified::Never),
    });
    let app = router(console);
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "console: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (app, acceptor, stop) = (app.clone(), acceptor.clone(), shutdown.clone());
            tokio::spawn(async move {
                let remote = remote.ip();
                match acceptor {
                    None => {
                        let conn = Conn { remote, cert: None };
                        connection(stream, app.layer(Extension(conn)), stop).await
                    }
                    Some(acceptor) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let cert = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| peer_of(c.as_ref()));
                        let conn = Conn { remote, cert };
                        connection(tls, app.layer(Extension(conn)), stop).await
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Serves one connection's requests until it closes or the controller stops: HTTP/2 where the
/// browser chose it (over TLS), so the live stream of every open page shares one connection;
/// else HTTP/1.1, where a browser keeps six connections to a server.
async fn connection<IO>(io: IO, app: Router, stop: CancellationToken)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Some(HANDSHAKE));
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
}

/// TLS with the controller's certificate; a client certificate from the CA is asked for but
/// not required (a proxy, or a person without one, is then told how to sign in).
fn acceptor(tls: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(tls.ca.as_bytes()) {
        roots
            .add(c.context("the CA certificate does not parse")?)
            .context("the CA certificate is not usable")?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .context("cannot check client certificates against the CA")?;
    let certs = CertificateDer::pem_slice_iter(tls.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the controller's certificate does not parse")?;
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes())
        .context("the controller's key does not parse")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the controller's certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(views::overview))
        .route("/drift", get(views::drift))
        .route("/hosts/{id}", get(views::host))
        .route("/hosts/{id}/diff", get(views::diff))
        .route("/history", get(views::history))
        .route("/history/verify", post(actions::verify))
        .route("/report", get(views::report_page))
        .route("/report.{format}", get(views::report_download))
        .route("/manifests/{*file}", get(views::manifest))
        .route("/events", get(views::events))
        .route("/actions/ack", post(actions::acknowledge))
        .route("/actions/revoke", post(actions::revoke))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .layer(axum::middleware::map_response(harden))
        .with_state(console)
}

/// Headers on every answer: what the browser may load and run, and that nothing is cached.
async fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not "no-referrer": browsers then send `Origin: null` with forms, which the CSRF check
    // refuses. Same-origin requests only carry it.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/console.js"),
    )
        .into_response()
}
