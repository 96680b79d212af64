//! The controller process: loads manifests, opens the store, starts the fleet thread, serves
//! the agent and query APIs (plus gRPC health and reflection) on one port, and reloads
//! manifests when their directory changes.

mod agent_api;
pub mod console;
#[cfg(test)]
mod hostile;
mod identity;
mod incoming;
pub mod metrics;
mod query_api;
mod reload;
pub(crate) mod scope;
mod status;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use plumb_proto::v1;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fleet::{Command, Fleet};
use crate::manifest::load::load;
use crate::store::AuditKey;

/// Where the controller listens unless told otherwise (loopback: anything else needs TLS).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// Largest message accepted from any peer; a Snapshot of 100,000 paths fits.
const MAX_MESSAGE: usize = 64 << 20;
/// Opens the store, signing with the audit key (made if missing). A database that cannot be
/// reached yet is said, in the log and to systemd, and tried again with backoff until it can
/// or the controller is stopped; one that refuses (a wrong password, no such database, a newer
/// schema) is an error at once.
async fn open_store(
    location: crate::store::Location,
    key_path: std::path::PathBuf,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Box<dyn crate::store::Store>, Option<crate::store::Tail>)> {
    const FIRST: Duration = Duration::from_millis(250);
    const CAP: Duration = Duration::from_secs(30);
    let mut delay = FIRST;
    if let Some(caveat) = location.caveat() {
        tracing::warn!("{caveat}");
    }
    loop {
        let (location, key_path) = (location.clone(), key_path.clone());
        let opened = tokio::task::spawn_blocking(move || {
            let (key, made) = AuditKey::load_or_create(&key_path)?;
            if made {
                tracing::warn!(key = %key_path.display(), public_key = %key.public_hex(), "made a new audit key; keep a copy of its public half (.pub) where the controller's host cannot change it");
            }
            location.open(key)
        })
        .await?;
        match opened {
            Ok(store) => return Ok(store),
            Err(e) if e.unreachable() => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reach the store; trying again");
                plumb_common::systemd::status(&format!(
                    "cannot reach the store ({e}); trying again in {delay:?}"
                ));
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("stopped before the store could be reached: {e}"),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(CAP);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How long a graceful shutdown may take before connections are dropped.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub manifests: PathBuf,
    pub data: PathBuf,
    /// Where the state is kept; `None`: SQLite in `data`.
    pub store: Option<crate::store::Location>,
    /// The key that signs the event log's head; made there if missing.
    pub audit_key: PathBuf,
    /// How often agents send heartbeats; three missed ones make a host offline.
    pub heartbeat_interval: Duration,
    /// Notified to reload the manifests now (the binary wires SIGHUP to it).
    pub reload_now: std::sync::Arc<tokio::sync::Notify>,
    /// Mutual TLS; without it the controller listens on loopback only, unless
    /// `insecure_plaintext` says otherwise.
    pub tls: Option<TlsFiles>,
    pub insecure_plaintext: bool,
    /// Where to serve Prometheus metrics (`/metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Where drift events are POSTed.
    pub webhooks: Vec<crate::webhook::WebhookConfig>,
    /// At most this many connections at once [default: what the open-files limit leaves].
    pub max_connections: Option<usize>,
    /// A connection that has sent nothing by then is closed.
    pub handshake_timeout: Duration,
    /// Agents' streams older than this are asked to go (`--max-connection-age`).
    pub max_connection_age: Option<crate::fleet::ConnectionAge>,
    /// The web console, if it is served.
    pub web: Option<console::WebConfig>,
}

/// How long a new connection may take to begin speaking.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// PEM contents for mutual TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
    /// The CA that signs agents' and operators' certificates.
    pub ca: String,
}

/// A controller that is listening.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// The console's URL, where it is served.
    pub web_url: Option<String>,
    fleet: crate::fleet::FleetHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Whether the fleet thread (evaluation and the store) answers.
    pub fn alive(
        &self,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + 'static {
        let fleet = self.fleet.clone();
        move || {
            let fleet = fleet.clone();
            Box::pin(async move { fleet.ping().await.is_ok() })
        }
    }

    /// Waits until the controller has stopped (after `shutdown` is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("controller task failed")?
    }
}

/// Starts the controller; returns once it listens. A broken manifest set at start is an error:
/// there is no last good set to fall back on yet.
pub async fn start(cfg: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let exposed = !cfg.listen.ip().is_loopback();
    if cfg.tls.is_none() && exposed && !cfg.insecure_plaintext {
        anyhow::bail!(
            "refusing to listen on {} without TLS: anyone who can reach it could report as any host and read the fleet\n\
             hint: give --tls-cert, --tls-key and --tls-ca (`plumb certs` makes them), or --insecure-plaintext to accept the risk",
            cfg.listen
        );
    }
    let mut warnings = Vec::new();
    if cfg.tls.is_none() && exposed {
        let w = format!(
            "the controller listens on {} without TLS (--insecure-plaintext)",
            cfg.listen
        );
        tracing::warn!("{w}");
        warnings.push(w);
    }
    let auth = if cfg.tls.is_some() {
        identity::Auth::MutualTls
    } else {
        identity::Auth::Plaintext
    };
    let dir = cfg.manifests.clone();
    let loaded = tokio::time::timeout(
        reload::RELOAD_DEADLINE,
        tokio::task::spawn_blocking(move || load(&dir)),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "reading the manifests in {} did not finish within {:?}",
            cfg.manifests.display(),
            reload::RELOAD_DEADLINE
        )
    })??;
    let sources = loaded.sources;
    let manifests: crate::manifest::ManifestSet = loaded.result.map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow!(
            "the manifests in {} are not valid:\n{}\nhint: `plumb manifests check {}` lists the same errors",
            cfg.manifests.display(),
            list.join("\n"),
            cfg.manifests.display()
        )
    })?;
    tracing::info!(dir = %cfg.manifests.display(), manifests = manifests.manifests().len(), "manifests loaded");
    let initial = manifests.clone();

    // Without a store named, SQLite in the data directory.
    let location = cfg
        .store
        .clone()
        .unwrap_or_else(|| crate::store::Location::Sqlite(cfg.data.clone()));
    let heartbeat = cfg.heartbeat_interval;
    let webhooks = crate::webhook::start(cfg.webhooks.clone(), shutdown.clone())?;
    let key_path = cfg.audit_key.clone();
    let max_age = cfg.max_connection_age;
    let (store, tail) = open_store(location, key_path, &shutdown).await?;
    if let Some(id) = store.controller_id() {
        tracing::info!(
            controller_id = id,
            "on a shared store, as this id (the `owner` of the hosts it holds)"
        );
    }
    let fleet = tokio::task::spawn_blocking(move || -> anyhow::Result<Fleet> {
        Ok(Fleet::new(store, manifests, heartbeat)?
            .with_webhooks(webhooks)
            .with_max_age(max_age))
    })
    .await??;
    let store_ok = fleet.store_ok();
    let (fleet, fleet_thread) = fleet.spawn().context("cannot start the fleet thread")?;
    if let Some(tail) = tail {
        // A controller whose beat stops for as long as an agent may miss heartbeats has
        // stopped; the tail ends with the fleet.
        let stopped_after = heartbeat * crate::fleet::MISSED_HEARTBEATS;
        let fleet = fleet.clone();
        std::thread::Builder::new()
            .name("plumb-store-tail".into())
            .spawn(move || {
                tail.run(stopped_after, |heard| {
                    fleet.blocking_send(Command::Store(heard))
                })
            })
            .context("cannot start the store's tail")?;
    }
    // The set in force at start goes into the event log, with its git commit.
    let source = crate::manifest::load::source_of(&cfg.manifests);
    let _ = fleet
        .send(Command::Manifests {
            result: Ok(initial),
            source,
        })
        .await;

    let metrics_addr = match cfg.metrics {
        Some(a) => Some(metrics::serve(a, fleet.clone(), shutdown.clone()).await?),
        None => None,
    };
    let web_url = match cfg.web.clone() {
        Some(web) => {
            let store = cfg
                .store
                .clone()
                .unwrap_or_else(|| crate::store::Location::Sqlite(cfg.data.clone()));
            let addr = console::serve(
                web,
                cfg.tls.as_ref(),
                fleet.clone(),
                cfg.manifests.clone(),
                store,
                cfg.audit_key.clone(),
                shutdown.clone(),
            )
            .await?;
            let scheme = if cfg.tls.is_some() { "https" } else { "http" };
            Some(format!("{scheme}://{addr}/"))
        }
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;

    reload::watch(
        cfg.manifests.clone(),
        fleet.clone(),
        shutdown.clone(),
        cfg.reload_now.clone(),
        &sources,
    )?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<v1::query_service_server::QueryServiceServer<query_api::QueryApi>>()
        .await;
    health
        .set_serving::<v1::agent_service_server::AgentServiceServer<agent_api::AgentApi>>()
        .await;
    let ticker = {
        let fleet = fleet.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            let mut writable = true;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => fleet.try_send(Command::Tick),
                }
                // A controller that cannot store what it hears says so to whoever checks its
                // health (load balancers, monitoring) and to systemd.
                let now = store_ok.load(std::sync::atomic::Ordering::Relaxed);
                if now != writable {
                    writable = now;
                    let status = if now {
                        tonic_health::ServingStatus::Serving
                    } else {
                        tonic_health::ServingStatus::NotServing
                    };
                    health.set_service_status("", status).await;
                    health
                        .set_service_status("plumb.v1.AgentService", status)
                        .await;
                    health
                        .set_service_status("plumb.v1.QueryService", status)
                        .await;
                    plumb_common::systemd::status(if now {
                        "serving; the store writes again"
                    } else {
                        "the store cannot write: changes wait in memory"
                    });
                }
            }
        })
    };
    // Reflection in both versions, as grpc-go serves it: v1 for current clients, v1alpha for
    // the many stock ones that still speak only that (grpcio-reflection, Postman, Evans, older
    // grpcurl).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("cannot build the reflection service (v1alpha)")?;
    let reflection = reflection()
        .build_v1()
        .context("cannot build the reflection service")?;
    let agent_service = v1::agent_service_server::AgentServiceServer::new(agent_api::AgentApi {
        fleet: fleet.clone(),
        auth,
    })
    .max_decoding_message_size(MAX_MESSAGE);
    let query_service = v1::query_service_server::QueryServiceServer::new(query_api::QueryApi {
        fleet: fleet.clone(),
        auth,
        warnings,
    })
    .max_decoding_message_size(MAX_MESSAGE);

    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &cfg.tls {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        // Client certificates are required: the CA's, and nothing else.
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&tls.cert, &tls.key))
            .client_ca_root(Certificate::from_pem(&tls.ca));
        builder = builder
            .tls_config(config)
            .context("invalid TLS configuration")?;
    }
    let router = builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(agent_service)
        .add_service(query_service);

    let limits = incoming::Limits {
        max_connections: cfg
            .max_connections
            .unwrap_or_else(incoming::default_max_connections),
        first_bytes_within: cfg.handshake_timeout,
    };
    tracing::debug!(
        max_connections = limits.max_connections,
        "accepting connections"
    );
    let handle = fleet.clone();
    let task = tokio::spawn(async move {
        let stop = shutdown.clone();
        let fleet_for_stop = fleet.clone();
        let graceful = async move {
            stop.cancelled().await;
            // Ending the fleet ends every agent stream and follower, so draining can finish.
            let _ = fleet_for_stop.send(Command::Shutdown).await;
        };
        let connections = incoming::incoming(listener, limits, shutdown.clone());
        let mut serve = Box::pin(router.serve_with_incoming_shutdown(connections, graceful));
        let result = tokio::select! {
            r = &mut serve => r.map_err(anyhow::Error::from),
            _ = async { shutdown.cancelled().await; tokio::time::sleep(DRAIN).await } => {
                tracing::warn!("drain deadline passed; dropping remaining connections");
                Ok(())
            }
        };
        // The services hold the fleet too: they go with the server. And the fleet is told to
        // stop whichever way the server ended, or joining it would wait forever.
        drop(serve);
        ticker.abort();
        let _ = fleet.send(Command::Shutdown).await;
        drop(fleet);
        let _ = tokio::task::spawn_blocking(move || fleet_thread.join()).await;
        tracing::info!("controller stopped");
        result
    });
    Ok(Running {
        addr,
        metrics_addr,
        web_url,
        fleet: handle,
        task,
    })
}
