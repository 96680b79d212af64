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

mod chart;
mod html;
mod pages;
mod session;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Extension, Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{self, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::pages::{Verified, Viewer};
use self::session::Sessions;
use super::TlsFiles;
use super::identity::{Peer, peer_of};
use crate::fleet::console::DriftFilter;
use crate::fleet::{AckRequest, FleetHandle, Read};
use crate::model::EventKind;
use crate::role::{Action, Person, Role};
use crate::store::{Location, LogQuery};

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

/// Serves one connection's requests (HTTP/1.1) until it closes or the controller stops.
async fn connection<IO>(io: IO, app: Router, stop: CancellationToken)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Some(HANDSHAKE))
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/drift", get(drift))
        .route("/hosts/{id}", get(host))
        .route("/hosts/{id}/diff", get(diff))
        .route("/history", get(history))
        .route("/history/verify", post(verify))
        .route("/report", get(report_page))
        .route("/report.{format}", get(report_download))
        .route("/manifests/{*file}", get(manifest))
        .route("/events", get(events))
        .route("/actions/ack", post(acknowledge))
        .route("/actions/revoke", post(revoke))
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

/// A refusal or an error, answered as a page that says why.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            pages::problem(self.title, &self.message),
        )
            .into_response()
    }
}

fn problem(status: StatusCode, title: &'static str, message: &str) -> Refused {
    Refused {
        status,
        title,
        message: message.to_owned(),
    }
}

fn fleet_problem(e: crate::fleet::FleetError) -> Refused {
    use crate::fleet::FleetError as E;
    let status = match &e {
        E::UnknownHost(_) | E::NotDeclared { .. } | E::NoOpenDrift { .. } | E::NoAck { .. } => {
            StatusCode::NOT_FOUND
        }
        E::ContentWithheld(_) => StatusCode::FORBIDDEN,
        E::ExpiryInPast | E::BadWindow(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    problem(status, "Not done", &e.to_string())
}

/// The person behind a request, or the page that says why there is none.
fn person(console: &Console, conn: &Conn, headers: &HeaderMap) -> Result<Person, Refused> {
    if let Some(proxy) = &console.proxy
        && proxy.trusted.contains(&conn.remote)
    {
        let user = headers
            .get(proxy.user_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let Some(user) = user else {
            return Err(problem(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                &format!(
                    "the proxy sent no {} header: sign in through it",
                    proxy.user_header
                ),
            ));
        };
        let groups = headers
            .get(proxy.groups_header.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let role = groups
            .split(',')
            .filter_map(|g| proxy.roles.get(g.trim()).copied())
            .max()
            .or(proxy.default_role);
        return match role {
            Some(role) => Ok(Person {
                name: user.to_owned(),
                role,
            }),
            None => Err(problem(
                StatusCode::FORBIDDEN,
                "No role",
                &format!(
                    "{user} is in no group that has a role here (web.proxy.roles in controller.yaml)"
                ),
            )),
        };
    }
    match &conn.cert {
        Some(Peer::Operator(p)) => Ok(p.clone()),
        Some(_) => Err(problem(
            StatusCode::FORBIDDEN,
            "Not an operator",
            "only operator certificates may use the console",
        )),
        None if !console.tls && console.proxy.is_none() => Ok(Person::local()),
        None => Err(problem(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            if console.tls {
                "present your operator certificate: import it into the browser as PKCS#12 \
                 (see `plumb certs issue --help`), or come through the authenticating proxy"
            } else {
                "come through the authenticating proxy"
            },
        )),
    }
}

/// A page's person and session: the token forms carry, and the cookie to set for a new one.
struct Visit {
    person: Person,
    csrf: String,
    cookie: Option<String>,
    manifests: String,
}

impl Visit {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            person: &self.person,
            csrf: &self.csrf,
            manifests: &self.manifests,
        }
    }

    fn allow(&self, action: Action) -> Result<(), Refused> {
        self.person
            .allow(action)
            .map_err(|r| problem(StatusCode::FORBIDDEN, "Not allowed", &r.to_string()))
    }

    /// An HTML answer, setting the session's cookie where it is new.
    fn page(self, body: String) -> Response {
        let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
        if let Some(c) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            r.headers_mut().insert(header::SET_COOKIE, c);
        }
        r
    }
}

fn visit(console: &Console, conn: &Conn, headers: &HeaderMap) -> Result<Visit, Refused> {
    let person = person(console, conn, headers)?;
    let token = session::cookie(headers);
    let mut sessions = console.sessions.lock().unwrap_or_else(|p| p.into_inner());
    let (csrf, new) = sessions.enter(token.as_deref(), &person, crate::clock::now_ms());
    Ok(Visit {
        person,
        cookie: new.map(|token| session::set_cookie(&token, console.tls)),
        csrf,
        manifests: console.manifests.display().to_string(),
    })
}

/// An action's checks: a person whose session is current, its token, and a same-origin form.
fn act(
    console: &Console,
    conn: &Conn,
    headers: &HeaderMap,
    csrf: &str,
    action: Action,
) -> Result<Person, Refused> {
    let person = person(console, conn, headers)?;
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "a form from another site was refused",
        ));
    }
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let scheme = if console.tls { "https" } else { "http" };
        if origin != format!("{scheme}://{host}") {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "Refused",
                "a form from another origin was refused",
            ));
        }
    }
    let token = session::cookie(headers);
    let sessions = console.sessions.lock().unwrap_or_else(|p| p.into_inner());
    if !sessions.check(token.as_deref(), &person, csrf, crate::clock::now_ms()) {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "Session expired",
            "your session expired or this form is not from it: reload the page and try again",
        ));
    }
    drop(sessions);
    person
        .allow(action)
        .map_err(|r| problem(StatusCode::FORBIDDEN, "Not allowed", &r.to_string()))?;
    Ok(person)
}

#[derive(Deserialize, Default)]
struct Part {
    #[serde(default)]
    part: String,
}

async fn overview(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(p): Query<Part>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let s = c.fleet.summary().await.map_err(fleet_problem)?;
    let body = if p.part == "live" {
        pages::overview_live(&v.viewer(), &s)
    } else {
        pages::layout(
            &v.viewer(),
            "overview",
            "Overview",
            &pages::overview(&v.viewer(), &s),
        )
    };
    Ok(v.page(body))
}

#[derive(Deserialize, Default)]
struct DriftQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    manifest: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    attribute: String,
    #[serde(default)]
    acknowledged: String,
    #[serde(default)]
    unauthorised: String,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    part: String,
}

async fn drift(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<DriftQuery>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let filter = DriftFilter {
        host: q.host,
        label: q.label,
        manifest: q.manifest,
        resource: q.resource,
        attribute: q.attribute,
        acknowledged: match q.acknowledged.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        unauthorised_only: !q.unauthorised.is_empty(),
        offset: q.offset,
        limit: PAGE_ROWS,
    };
    let page = c
        .fleet
        .drift_page(filter.clone())
        .await
        .map_err(fleet_problem)?;
    let body = if q.part == "live" {
        pages::drift_live(&v.viewer(), &filter, &page)
    } else {
        pages::layout(
            &v.viewer(),
            "drift",
            "Drift",
            &pages::drift(&v.viewer(), &filter, &page),
        )
    };
    Ok(v.page(body))
}

async fn host(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(p): Query<Part>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let detail = c
        .fleet
        .host_detail(id.clone())
        .await
        .map_err(fleet_problem)?;
    if p.part == "live" {
        let body = pages::host_live(&v.viewer(), &detail);
        return Ok(v.page(body));
    }
    let timeline = if v.person.role.may(Action::ReadLog) {
        let q = LogQuery {
            host: Some(id.clone()),
            limit: TIMELINE_ROWS,
            ..LogQuery::default()
        };
        Some(
            c.read_log(&v.person, q, format!("the timeline of {id} in the console"))
                .await?,
        )
    } else {
        None
    };
    let body = pages::layout(
        &v.viewer(),
        "host",
        &id,
        &pages::host(&v.viewer(), &detail, timeline.as_deref()),
    );
    Ok(v.page(body))
}

impl Console {
    /// A page of the log, recorded as read by `person` first (refused when it cannot be).
    async fn read_log(
        &self,
        person: &Person,
        q: LogQuery,
        what: String,
    ) -> Result<Vec<crate::model::Event>, Refused> {
        let (events, _) = self.fleet.log_page(q).await.map_err(fleet_problem)?;
        self.fleet
            .record_read(Read {
                kind: EventKind::LogRead,
                resource: "audit-log".into(),
                by: person.to_string(),
                what,
            })
            .await
            .map_err(fleet_problem)?;
        Ok(events)
    }
}

#[derive(Deserialize)]
struct DiffQuery {
    path: String,
}

async fn diff(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadContent)?;
    let asked = tokio::time::timeout(
        super::query_api::DIFF_TIMEOUT,
        c.fleet.diff(id.clone(), q.path.clone()),
    )
    .await;
    let content = match asked {
        Err(_) => {
            return Err(problem(
                StatusCode::GATEWAY_TIMEOUT,
                "No content",
                "the agent did not send the content in time",
            ));
        }
        Ok(Err(e)) => return Err(fleet_problem(e)),
        Ok(Ok(content)) => content,
    };
    let identical = content.desired.as_slice() == content.actual.as_slice();
    let recorded = c
        .fleet
        .record_read(Read {
            kind: EventKind::ContentRead,
            resource: format!("{id}:{}", q.path),
            by: v.person.to_string(),
            what: "a diff in the console".into(),
        })
        .await;
    recorded.map_err(fleet_problem)?;
    let text = if identical {
        String::new()
    } else {
        super::query_api::unified_diff(&q.path, &content.desired, &content.actual)
    };
    let body = pages::layout(
        &v.viewer(),
        "host",
        &format!("{} on {id}", q.path),
        &pages::diff(&id, &q.path, &text, identical),
    );
    Ok(v.page(body))
}

#[derive(Deserialize, Default)]
struct HistoryQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    kind: String,
    before: Option<i64>,
}

async fn history(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadLog)?;
    let kind = match q.kind.as_str() {
        "" => None,
        k => match EventKind::parse(k) {
            Some(k) => Some(k),
            None => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "Unknown event",
                    &format!("no event is called {k:?}"),
                ));
            }
        },
    };
    let query = LogQuery {
        host: (!q.host.is_empty()).then(|| q.host.clone()),
        kind,
        before: q.before,
        limit: LOG_ROWS,
    };
    let what = format!(
        "the history page in the console{}{}{}",
        if q.host.is_empty() {
            String::new()
        } else {
            format!(", host {}", q.host)
        },
        if q.kind.is_empty() {
            String::new()
        } else {
            format!(", {} entries", q.kind)
        },
        q.before
            .map(|b| format!(", before entry {b}"))
            .unwrap_or_else(|| ", with live entries".into())
    );
    let events = c.read_log(&v.person, query, what).await?;
    let older = (events.len() == LOG_ROWS as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    let body = {
        let verified = c.verified.lock().unwrap_or_else(|p| p.into_inner());
        pages::layout(
            &v.viewer(),
            "history",
            "History",
            &pages::history(
                &v.viewer(),
                &q.host,
                &q.kind,
                &events,
                older,
                q.before.is_none(),
                &verified,
            ),
        )
    };
    Ok(v.page(body))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Verifies the chain as `plumb audit verify` would, from a connection of its own (the fleet
/// thread is not held up), against the audit key's public half.
async fn verify(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Refused> {
    let person = act(&c, &conn, &headers, &f.csrf, Action::ReadLog)?;
    *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = Verified::Running;
    let (store, key) = (c.store.clone(), c.audit_key.clone());
    let outcome = tokio::task::spawn_blocking(move || verify_store(&store, &key)).await;
    let done = match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = Verified::Never;
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not verified",
                &format!("the chain could not be read: {e}"),
            ));
        }
        Err(e) => {
            *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = Verified::Never;
            return Err(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not verified",
                &e.to_string(),
            ));
        }
    };
    tracing::info!(by = %person, "the chain was verified from the console");
    *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = done;
    Ok(Redirect::to("/history").into_response())
}

fn verify_store(store: &Location, audit_key: &Path) -> anyhow::Result<Verified> {
    use crate::store::{PostgresStore, Signature, SqliteStore, Trusted};
    let public_key = std::fs::read_to_string(crate::store::public_path(audit_key))
        .ok()
        .map(|t| t.trim().to_ascii_lowercase());
    let trusted = Trusted {
        public_key,
        published: Vec::new(),
    };
    let v = match store {
        Location::Sqlite(dir) => SqliteStore::verify_dir(dir, &trusted)?,
        Location::Postgres(url) => PostgresStore::verify_url(url, &trusted)?,
    };
    let signature = match &v.signature {
        Signature::Valid(_) => "valid",
        Signature::Invalid => "INVALID",
        Signature::Unchecked => "unchecked (no public key)",
    };
    Ok(Verified::Done {
        at_ms: crate::clock::now_ms(),
        intact: v.problems.is_empty() && !matches!(v.signature, Signature::Invalid),
        entries: v.entries,
        head_id: v.head_id,
        signature: signature.to_owned(),
        problems: v.problems,
    })
}

#[derive(Deserialize, Default)]
struct Period {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

impl Period {
    /// The period in ms: `since` 7 days ago and `until` now unless given.
    fn resolve(&self) -> Result<(i64, i64), String> {
        let since = match self.since.trim() {
            "" => crate::clock::now_ms() - 7 * 86_400_000,
            s => crate::clock::parse_time(s)?,
        };
        let until = match self.until.trim() {
            "" => crate::clock::now_ms() + 1,
            s => crate::clock::parse_time(s)?,
        };
        if since >= until {
            return Err("since must be before until".into());
        }
        Ok((since, until))
    }
}

/// The report for a period, its log read recorded.
async fn build_report(
    c: &Console,
    person: &Person,
    p: &Period,
) -> Result<crate::report::Report, Refused> {
    let (since, until) = p
        .resolve()
        .map_err(|e| problem(StatusCode::BAD_REQUEST, "Bad period", &e))?;
    let (events, head) = c
        .fleet
        .history(None, 100_000)
        .await
        .map_err(fleet_problem)?;
    let hosts = c.fleet.overview().await.map_err(fleet_problem)?.hosts;
    c.fleet
        .record_read(Read {
            kind: EventKind::LogRead,
            resource: "audit-log".into(),
            by: person.to_string(),
            what: format!(
                "a report from {} to {} in the console",
                html::when(since),
                html::when(until)
            ),
        })
        .await
        .map_err(fleet_problem)?;
    let mut r = crate::report::build(events, since, until, &hosts);
    r.audit_head = Some(head);
    Ok(r)
}

async fn report_page(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadLog)?;
    let r = build_report(&c, &v.person, &p).await?;
    let body = pages::layout(
        &v.viewer(),
        "report",
        "Report",
        &pages::report(&r, &p.since, &p.until),
    );
    Ok(v.page(body))
}

async fn report_download(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(format): UrlPath<String>,
    Query(p): Query<Period>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadLog)?;
    let (ty, render): (&str, fn(&crate::report::Report) -> String) = match format.as_str() {
        "json" => ("application/json", |r| {
            serde_json::to_string_pretty(&crate::report::json(r)).unwrap_or_default() + "\n"
        }),
        "csv" => ("text/csv; charset=utf-8", crate::report::csv),
        "html" => ("text/html; charset=utf-8", crate::report::html),
        other => {
            return Err(problem(
                StatusCode::NOT_FOUND,
                "No such format",
                &format!("reports come as json, csv or html, not {other:?}"),
            ));
        }
    };
    let r = build_report(&c, &v.person, &p).await?;
    Ok((
        [
            (header::CONTENT_TYPE, ty.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"plumb-report.{format}\""),
            ),
        ],
        render(&r),
    )
        .into_response())
}

/// A manifest file of the controller's directory, with numbered lines to link to.
async fn manifest(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(file): UrlPath<String>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let dir = c.manifests.clone();
    let name = file.clone();
    let read = tokio::task::spawn_blocking(move || read_manifest(&dir, &name)).await;
    match read {
        Ok(Ok(text)) => {
            let body = pages::layout(
                &v.viewer(),
                "manifest",
                &file,
                &pages::manifest(&file, &text),
            );
            Ok(v.page(body))
        }
        Ok(Err(e)) => Err(problem(StatusCode::NOT_FOUND, "No such manifest", &e)),
        Err(e) => Err(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not read",
            &e.to_string(),
        )),
    }
}

/// Reads `name` beneath `dir` only: a YAML file, no `..`, no symlink out, at most 4 MiB.
fn read_manifest(dir: &Path, name: &str) -> Result<String, String> {
    let bad = || format!("{name:?} is not a manifest of this controller");
    let parts: Vec<&str> = name.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
        || !(name.ends_with(".yaml") || name.ends_with(".yml"))
    {
        return Err(bad());
    }
    let base = dir.canonicalize().map_err(|_| bad())?;
    let path = base.join(name).canonicalize().map_err(|_| bad())?;
    let meta = std::fs::metadata(&path).map_err(|_| bad())?;
    if !path.starts_with(&base) || !meta.is_file() || meta.len() > 4 << 20 {
        return Err(bad());
    }
    std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))
}

/// Events as they happen: the full entry to those who may read the log, else its kind and
/// host; `reload` when this follower fell behind.
async fn events(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let person = person(&c, &conn, &headers)?;
    let full = person.role.may(Action::ReadLog);
    let rx = match c.fleet.follow(Vec::new()).await {
        Ok((_, rx)) => rx,
        Err(e) => return Err(fleet_problem(e)),
    };
    use tokio_stream::StreamExt as _;
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).map(move |item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok(e) => {
                let data = if full {
                    crate::json::event(&e)
                } else {
                    serde_json::json!({"event": e.kind.as_str(), "host": e.host_id})
                };
                sse::Event::default().data(data.to_string())
            }
            Err(_) => sse::Event::default().event("reload").data("behind"),
        })
    });
    Ok(Sse::new(stream)
        .keep_alive(sse::KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize)]
struct AckForm {
    #[serde(default)]
    csrf: String,
    host: String,
    resource: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    back: String,
}

/// Where to go after an action: a page of the console, never elsewhere.
fn back_to(back: &str) -> String {
    if back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') {
        back.to_owned()
    } else {
        "/drift".to_owned()
    }
}

async fn acknowledge(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Form(f): Form<AckForm>,
) -> Result<Response, Refused> {
    let person = act(&c, &conn, &headers, &f.csrf, Action::Acknowledge)?;
    if f.reason.trim().is_empty() {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Not acknowledged",
            "an acknowledgement needs a reason",
        ));
    }
    let expires_ms = match f.expires.trim() {
        "" => None,
        d => match humantime::parse_duration(d) {
            Ok(d) => Some(crate::clock::now_ms() + d.as_millis() as i64),
            Err(_) => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "Not acknowledged",
                    &format!("invalid expiry {d:?}: a duration such as 4h or 7d"),
                ));
            }
        },
    };
    let req = AckRequest {
        host: f.host,
        resource: f.resource,
        reason: f.reason,
        by: person.name,
        expires_ms,
    };
    c.fleet.acknowledge(req).await.map_err(fleet_problem)?;
    Ok(Redirect::to(&back_to(&f.back)).into_response())
}

async fn revoke(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Form(f): Form<AckForm>,
) -> Result<Response, Refused> {
    let person = act(&c, &conn, &headers, &f.csrf, Action::Acknowledge)?;
    c.fleet
        .revoke_ack(f.host, f.resource, person.name)
        .await
        .map_err(fleet_problem)?;
    Ok(Redirect::to(&back_to(&f.back)).into_response())
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
