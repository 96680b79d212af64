//! The operator CLI, `plumb`: argument definitions and dispatch. `main` only parses, sets up
//! logging and maps the result to an exit code.

pub mod output;
pub(crate) mod query;
mod render;
mod report;
#[cfg(test)]
mod snapshots;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Parser, Subcommand};
use plumb_common::cli::exit;
use plumb_common::systemd;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::ControllerFile;
use crate::manifest::load::load_dir;
use crate::server::{self, ServeConfig};
use output::{Format, emit};

pub const DEFAULT_CONTROLLER: &str = "http://127.0.0.1:7700";

/// plumb: configuration drift detection for a fleet.
///
/// Agents watch the files that YAML manifests declare for their host and stream what they see;
/// the controller compares it with the manifests and reports drift, with its history.
///
/// Exit codes: 0 in sync / success, 2 drift found, 1 error, 64 usage error.
#[derive(Parser)]
#[command(name = "plumb", version, propagate_version = true)]
pub struct Args {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format on stderr [default: text, or the configuration's `log_format`].
    #[arg(long, env = "PLUMB_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<plumb_common::cli::LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Try plumb on this machine: a controller and an agent in one process, on loopback, with
    /// the example manifests and a demo file tree to edit.
    Dev(crate::dev::DevArgs),
    /// Run the controller.
    Serve(ServeArgs),
    /// List the hosts the controller knows, with their status.
    Hosts(QueryArgs),
    /// Show drift: what differs from the manifests, on which host, since when (exit 2 if any).
    Drift {
        /// Only these hosts (host ids).
        hosts: Vec<String>,
        /// Keep printing drift events as they happen (JSON: one object per line).
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Show the event log: drift opened, changed and resolved, hosts online and offline.
    History {
        /// Only this host.
        host: Option<String>,
        /// At most this many events, most recent first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Show how a declared file differs from its desired content (exit 2 if it does). Only
    /// for files declared with `diff: true`; never for sensitive or deny-listed files.
    Diff {
        host: String,
        path: String,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Acknowledge a resource's drift: it stays visible but no longer fails `plumb drift`,
    /// until it expires, is revoked, or resolves. `plumb ack list`, `plumb ack revoke`.
    Ack(AckArgs),
    /// Drift incidents over a period, per host: opened, resolved, how long, acknowledged,
    /// declared where; with the hosts in sync and the mean time to resolve.
    Report {
        /// Start of the period: RFC 3339 (2026-11-01T00:00:00Z) or a duration ago (7d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// End of the period [default: now].
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[arg(short, long, value_enum, default_value = "json")]
        output: report::ReportFormat,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Install the controller as a systemd service: writes /etc/plumb/controller.yaml and a
    /// hardened unit (plumb-controller.service; store in /var/lib/plumb), then enables and
    /// starts it where systemd runs. Run as root; --dry-run shows the files first.
    Install(InstallArgs),
    /// Stop and disable the controller's service and remove its unit; --purge removes its
    /// configuration too (never the store).
    Uninstall {
        /// Remove /etc/plumb/controller.yaml as well.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        target: plumb_common::service::Target,
    },
    /// Work with manifest files.
    #[command(subcommand)]
    Manifests(ManifestsCommand),
    /// A private CA and the certificates for mutual TLS between agents, controller and CLI.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The tamper-evident event log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a shell completion script (e.g. `plumb completions bash > /etc/bash_completion.d/plumb`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `plumb man | man -l -`.
    Man,
}

#[derive(ClapArgs)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AckArgs {
    #[command(subcommand)]
    pub action: Option<AckAction>,
    /// The host.
    #[arg(required = true)]
    pub host: Option<String>,
    /// The resource, as `plumb drift` shows it (e.g. file:/etc/motd, package:nginx).
    #[arg(required = true)]
    pub resource: Option<String>,
    /// Why this drift is accepted (recorded with your name).
    #[arg(long, required = true)]
    pub reason: Option<String>,
    /// For how long (e.g. 7d, 12h); until revoked if not given.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub expires: Option<Duration>,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Subcommand)]
pub enum AckAction {
    /// List the acknowledgements in force.
    List {
        #[command(flatten)]
        query: QueryArgs,
    },
    /// End an acknowledgement now.
    Revoke {
        host: String,
        resource: String,
        #[command(flatten)]
        query: QueryArgs,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the event log in a controller's data directory: names any entry that was edited,
    /// removed, reordered or cut off (exit 1), checks the head's signature, and prints the head
    /// to keep a copy of elsewhere. Never writes to the store.
    Verify {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The audit key's public half (hex, or a file holding it), from a copy you trust
        /// [default: DATA/audit.key.pub, which whoever can write DATA could replace].
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// A head seen before, as ENTRY:HASH (from the controller's log or `plumb report`):
        /// the log must still hold it, unchanged. Repeat for several.
        #[arg(long, value_name = "ENTRY:HASH")]
        head: Vec<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Create the CA (ca.pem, ca-key.pem) in --dir.
    Init {
        #[arg(long, default_value = "plumb-pki", value_name = "DIR")]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a certificate: `agent HOST`, `operator NAME`, or `controller DNSNAME|IP...`.
    Issue {
        #[arg(value_enum)]
        kind: crate::certs::Kind,
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        #[arg(long, default_value = "plumb-pki", value_name = "DIR")]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 397)]
        days: u32,
        /// An explicit expiry date (YYYY-MM-DD) instead of --days.
        #[arg(long, value_name = "DATE")]
        not_after: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ManifestsCommand {
    /// Validate a manifest directory as the controller would; lists every error (exit 1).
    Check {
        dir: PathBuf,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(ClapArgs)]
pub struct QueryArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

/// How to reach the controller.
#[derive(ClapArgs)]
pub struct ConnArgs {
    /// The controller's URL.
    #[arg(long, env = "PLUMB_CONTROLLER", default_value = DEFAULT_CONTROLLER, value_name = "URL")]
    pub controller: String,
    #[command(flatten)]
    pub tls: plumb_common::cli::TlsArgs,
}

/// Every option can also come from the configuration file (same name, `_` for `-`; TLS files
/// under `tls:` as `cert`, `key`, `ca`) or a `PLUMB_*` environment variable; a flag beats the
/// variable, which beats the file.
#[derive(ClapArgs)]
pub struct ServeArgs {
    /// The configuration file [default: /etc/plumb/controller.yaml when it exists].
    #[arg(long, env = "PLUMB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, for agents and the CLI [default: 127.0.0.1:7700].
    #[arg(long, env = "PLUMB_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of manifests (*.yaml); watched and reloaded on change (required here or in
    /// the configuration).
    #[arg(long, env = "PLUMB_MANIFESTS", value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Directory for the store, created if missing (required here or in the configuration).
    #[arg(long, env = "PLUMB_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The key that signs the event log's head (Ed25519), made there if missing, with its
    /// public half beside it (FILE.pub) [default: DATA/audit.key]. Keep it where whoever can
    /// write the data directory cannot read it, and the public key with the auditors: then no
    /// one can rewrite the log without `plumb audit verify` showing it.
    #[arg(long, env = "PLUMB_AUDIT_KEY", value_name = "FILE")]
    pub audit_key: Option<PathBuf>,
    /// Hold at most this many connections (agents and queries) at once; more are closed as
    /// they come [default: the open-files limit less 256].
    #[arg(long, env = "PLUMB_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Close a connection that has sent nothing for this long after connecting (tests
    /// shorten it) [default: 10s].
    #[arg(long, hide = true, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Option<Duration>,
    /// How often agents send heartbeats; three missed ones make a host offline [default: 5s].
    #[arg(long, env = "PLUMB_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Option<Duration>,
    /// The controller's certificate (mutual TLS; with --tls-key and --tls-ca).
    #[arg(long, env = "PLUMB_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The controller's private key.
    #[arg(long, env = "PLUMB_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The CA whose agent and operator certificates are accepted.
    #[arg(long, env = "PLUMB_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "PLUMB_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Listen on a non-loopback address without TLS. Anyone who reaches it can report as any
    /// host and read the fleet.
    #[arg(long, env = "PLUMB_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// Check the configuration, print the options in force (file, environment and flags
    /// merged) as YAML, and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(ClapArgs)]
pub struct InstallArgs {
    /// Address to listen on [default: 127.0.0.1:7700]; any other needs TLS.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of manifests (created if missing).
    #[arg(long, value_name = "DIR", default_value = "/etc/plumb/manifests")]
    pub manifests: PathBuf,
    /// The controller's certificate (mutual TLS; with --tls-key and --tls-ca). The unit hands
    /// the TLS files to the service through systemd credentials, so they can stay root-only.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The controller's private key.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// The CA whose agent and operator certificates are accepted.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Listen on a non-loopback address without TLS.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// The binary the unit runs [default: this one].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    #[command(flatten)]
    pub target: plumb_common::service::Target,
}

/// Sets up logging, runs a command; returns the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let Args {
        verbose,
        log_format,
        command,
    } = args;
    // `serve` reads its configuration first: it may choose the log format.
    let mut serve_config = None;
    let mut file_format = None;
    if let Command::Serve(serve) = &command {
        let (path, file) = crate::config::load(serve.config.clone())?;
        file_format = file.log_format;
        serve_config = Some((path, file));
    }
    plumb_common::cli::init_logging(verbose, log_format.or(file_format).unwrap_or_default());
    let command = match command {
        Command::Manifests(ManifestsCommand::Check { dir, output }) => return check(&dir, output),
        Command::Certs(c) => return certs(c),
        Command::Audit(AuditCommand::Verify {
            data,
            public_key,
            head,
            output,
        }) => {
            return audit_verify(&data, public_key.as_deref(), &head, output);
        }
        Command::Install(args) => {
            let service = controller_service(Some(&args))?;
            plumb_common::service::install(&service, &args.target, &mut std::io::stdout().lock())?;
            return Ok(exit::OK);
        }
        Command::Uninstall { purge, target } => {
            let service = controller_service(None)?;
            plumb_common::service::uninstall(
                &service,
                &target,
                purge,
                &mut std::io::stdout().lock(),
            )?;
            return Ok(exit::OK);
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            let mut cmd = <Args as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "plumb", &mut out);
            emit(&String::from_utf8_lossy(&out))?;
            return Ok(exit::OK);
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Args as clap::CommandFactory>::command()).render(&mut out)?;
            emit(&String::from_utf8_lossy(&out))?;
            return Ok(exit::OK);
        }
        other => other,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async move {
        match command {
            Command::Dev(args) => crate::dev::run(args, shutdown_on_signal()).await,
            Command::Serve(args) => {
                let (path, file) = serve_config.unwrap_or_default();
                serve(args, path, file).await
            }
            Command::Hosts(q) => query::hosts(&q, q.output).await,
            Command::Drift {
                hosts,
                follow: true,
                query,
            } => query::follow(&query, hosts, query.output).await,
            Command::Drift {
                hosts,
                follow: false,
                query,
            } => query::drift(&query, hosts, query.output).await,
            Command::History { host, limit, query } => {
                query::history(&query, host, limit, query.output).await
            }
            Command::Diff { host, path, query } => {
                query::diff(&query, &host, &path, query.output).await
            }
            Command::Ack(args) => query::ack(args).await,
            Command::Report {
                since,
                until,
                output,
                conn,
            } => query::report(&conn, since, until, output).await,
            Command::Manifests(_)
            | Command::Install(_)
            | Command::Uninstall { .. }
            | Command::Certs(_)
            | Command::Audit(_)
            | Command::Completions { .. }
            | Command::Man => unreachable!("handled above"),
        }
    });
    // A blocking task that never returns (a read stuck on a hung file system) must not keep a
    // stopped controller alive: give them a moment, then exit anyway.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(plumb_common::signals::cancel_on_signal(token.clone()));
    token
}

/// The effective configuration: flags (and their environment variables) over the file.
fn merge(args: ServeArgs, file: ControllerFile) -> ControllerFile {
    let tls_file = file.tls.unwrap_or_default();
    let tls = crate::config::ServerTlsFile {
        cert: args.tls_cert.or(tls_file.cert),
        key: args.tls_key.or(tls_file.key),
        ca: args.tls_ca.or(tls_file.ca),
    };
    ControllerFile {
        listen: args.listen.or(file.listen),
        manifests: args.manifests.or(file.manifests),
        data: args.data.or(file.data),
        audit_key: args.audit_key.or(file.audit_key),
        heartbeat_interval: args.heartbeat_interval.or(file.heartbeat_interval),
        tls: (tls != Default::default()).then_some(tls),
        metrics_listen: args.metrics_listen.or(file.metrics_listen),
        max_connections: args.max_connections.or(file.max_connections),
        insecure_plaintext: args.insecure_plaintext || file.insecure_plaintext,
        log_format: file.log_format,
        webhooks: file.webhooks,
    }
}

/// Checks the effective configuration and reads the TLS files.
fn serve_config(merged: ControllerFile, source: &str) -> anyhow::Result<ServeConfig> {
    let required = |what: &str, key: &str, env: &str| {
        plumb_common::cli::UsageError(format!(
            "no {what}\nhint: give --{key} DIR, {env}, or `{key}:` in {source}"
        ))
    };
    let manifests = merged
        .manifests
        .ok_or_else(|| required("manifest directory", "manifests", "PLUMB_MANIFESTS"))?;
    let data = merged
        .data
        .ok_or_else(|| required("data directory", "data", "PLUMB_DATA"))?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let tls_file = merged.tls.unwrap_or_default();
    let tls = match (tls_file.cert, tls_file.key, tls_file.ca) {
        (Some(cert), Some(key), Some(ca)) => Some(server::TlsFiles {
            cert: read(&cert)?,
            key: read(&key)?,
            ca: read(&ca)?,
        }),
        (None, None, None) => None,
        _ => anyhow::bail!(
            "TLS needs the certificate, the key and the CA together\nhint: give --tls-cert, --tls-key and --tls-ca (or `tls: {{cert, key, ca}}` in {source})"
        ),
    };
    for (i, hook) in merged.webhooks.iter().enumerate() {
        hook.validate(&format!("{source}: webhooks[{i}]"))?;
    }
    Ok(ServeConfig {
        webhooks: merged.webhooks,
        tls,
        insecure_plaintext: merged.insecure_plaintext,
        metrics: merged.metrics_listen,
        reload_now: Default::default(),
        listen: merged
            .listen
            .unwrap_or_else(|| server::DEFAULT_LISTEN.parse().expect("a valid address")),
        audit_key: merged.audit_key.unwrap_or_else(|| data.join("audit.key")),
        max_connections: merged.max_connections,
        handshake_timeout: server::HANDSHAKE_TIMEOUT,
        manifests,
        data,
        heartbeat_interval: merged.heartbeat_interval.unwrap_or(Duration::from_secs(5)),
    })
}

async fn serve(
    args: ServeArgs,
    path: Option<PathBuf>,
    file: ControllerFile,
) -> anyhow::Result<i32> {
    let source = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| crate::config::CONTROLLER_CONFIG.to_owned());
    let print = args.print_config;
    let handshake_timeout = args.handshake_timeout;
    let merged = merge(args, file);
    let mut cfg = serve_config(merged.clone(), &source)?;
    cfg.handshake_timeout = handshake_timeout.unwrap_or(server::HANDSHAKE_TIMEOUT);
    if print {
        emit(&serde_yaml::to_string(&merged)?)?;
        return Ok(exit::OK);
    }
    if let Some(p) = &path {
        tracing::info!(config = %p.display(), "configuration read");
    }
    let shutdown = shutdown_on_signal();
    plumb_common::signals::notify_on_sighup(cfg.reload_now.clone());
    let running = server::start(cfg, shutdown.clone()).await?;
    // One line on stderr that scripts (and the end-to-end tests) can wait for.
    eprintln!("plumb: listening on {}", running.addr);
    if let Some(m) = running.metrics_addr {
        eprintln!("plumb: metrics on http://{m}/metrics");
    }
    systemd::ready(&format!("listening on {}", running.addr));
    systemd::watchdog(running.alive(), shutdown.clone());
    tokio::spawn(async move {
        shutdown.cancelled().await;
        systemd::stopping();
    });
    running.wait().await?;
    Ok(exit::OK)
}

/// The controller's unit and configuration file; without `args` (uninstall) only their paths
/// count.
fn controller_service(
    args: Option<&InstallArgs>,
) -> anyhow::Result<plumb_common::service::Service> {
    use plumb_common::service::{self, File};
    const UNIT: &str = include_str!("../../debian/plumb-controller.service");
    let name = "plumb-controller.service";
    let Some(args) = args else {
        return Ok(service::Service {
            unit: name.into(),
            files: vec![
                File {
                    path: crate::config::CONTROLLER_CONFIG.into(),
                    content: String::new(),
                    mode: 0o644,
                },
                File {
                    path: Path::new(service::UNIT_DIR).join(name),
                    content: String::new(),
                    mode: 0o644,
                },
            ],
            dirs: Vec::new(),
        });
    };
    let tls = match (&args.tls_cert, &args.tls_key, &args.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(crate::config::ServerTlsFile {
            cert: Some(service::existing_file(cert)?),
            key: Some(service::existing_file(key)?),
            ca: Some(service::existing_file(ca)?),
        }),
        _ => None,
    };
    if let Some(listen) = args.listen
        && !listen.ip().is_loopback()
        && tls.is_none()
        && !args.insecure_plaintext
    {
        anyhow::bail!(
            "a controller on {listen} needs TLS\nhint: give --tls-cert, --tls-key and --tls-ca (`plumb certs` makes them), or --insecure-plaintext"
        );
    }
    let manifests = std::path::absolute(&args.manifests)?;
    let file = ControllerFile {
        listen: args.listen,
        manifests: Some(manifests.clone()),
        data: Some("/var/lib/plumb".into()),
        tls: tls.clone(),
        metrics_listen: args.metrics_listen,
        insecure_plaintext: args.insecure_plaintext,
        ..ControllerFile::default()
    };
    let binary = service::binary(args.bin.as_deref())?;
    let mut unit = service::unit_for(UNIT, "/usr/bin/plumb", &binary);
    if let Some(tls) = &tls {
        // The service's dynamic user cannot read root's key: systemd hands it a copy.
        let mut credentials = String::new();
        let mut flags = String::new();
        for (id, path) in [
            ("tls-cert", &tls.cert),
            ("tls-key", &tls.key),
            ("tls-ca", &tls.ca),
        ] {
            if let Some(path) = path {
                credentials.push_str(&format!("LoadCredential={id}:{}\n", path.display()));
                flags.push_str(&format!(" --{id} ${{CREDENTIALS_DIRECTORY}}/{id}"));
            }
        }
        unit = unit
            .lines()
            .map(|l| match l.strip_prefix("ExecStart=") {
                Some(rest) => format!("{credentials}ExecStart={rest}{flags}\n"),
                None => format!("{l}\n"),
            })
            .collect();
    }
    Ok(service::Service {
        unit: name.into(),
        files: vec![
            File {
                path: crate::config::CONTROLLER_CONFIG.into(),
                content: file.render(),
                mode: 0o644,
            },
            File {
                path: Path::new(service::UNIT_DIR).join(name),
                content: unit,
                mode: 0o644,
            },
        ],
        dirs: vec![manifests],
    })
}

fn audit_verify(
    data: &Path,
    public_key: Option<&str>,
    heads: &[String],
    format: Format,
) -> anyhow::Result<i32> {
    use crate::store::{Signature, SqliteStore, Trusted};
    anyhow::ensure!(
        data.join("plumb.db").exists(),
        "{} holds no plumb store (plumb.db)",
        data.display()
    );
    let read_key = |given: &str| -> anyhow::Result<String> {
        let text = match std::fs::read_to_string(given) {
            Ok(t) => t,
            Err(_) => given.to_owned(),
        };
        Ok(text.trim().to_ascii_lowercase())
    };
    let (public_key, from) = match public_key {
        Some(k) => (Some(read_key(k)?), "given"),
        None => match std::fs::read_to_string(crate::store::public_path(&data.join("audit.key"))) {
            Ok(t) => (Some(t.trim().to_ascii_lowercase()), "data directory"),
            Err(_) => (None, "none"),
        },
    };
    let mut published = Vec::new();
    for h in heads {
        let parsed = h
            .split_once(':')
            .and_then(|(id, hash)| Some((id.parse::<i64>().ok()?, hash.trim().to_owned())));
        let Some(head) = parsed else {
            return Err(plumb_common::cli::UsageError(format!(
                "--head {h:?}: expected ENTRY:HASH, e.g. 1234:3f2a…"
            ))
            .into());
        };
        published.push(head);
    }
    let v = SqliteStore::verify_dir(
        data,
        &Trusted {
            public_key,
            published,
        },
    )?;
    let (signature, key) = match &v.signature {
        Signature::Valid(k) => ("valid", Some(k.as_str())),
        Signature::Invalid => ("invalid", None),
        Signature::Unchecked => ("unchecked", None),
    };
    match format {
        Format::Json => emit(
            &(serde_json::to_string_pretty(&json!({
                "intact": v.problems.is_empty(), "entries": v.entries,
                "head": {"entry": v.head_id, "hash": v.head},
                "signature": signature, "public_key": key, "key_from": from,
                "problems": v.problems,
            }))? + "\n"),
        )?,
        Format::Table if v.problems.is_empty() => {
            emit(&format!(
                "intact: {} entries, head {}:{}\n",
                v.entries, v.head_id, v.head
            ))?;
            match (&v.signature, from) {
                (Signature::Valid(k), "given") => emit(&format!("signed: by key {k}\n"))?,
                (Signature::Valid(k), _) => {
                    emit(&format!("signed: by key {k}\n"))?;
                    eprintln!(
                        "note: checked with the public key in {}; whoever can write there could replace it. \
                         Give --public-key from a copy you keep elsewhere",
                        data.display()
                    );
                }
                _ => eprintln!(
                    "note: the head's signature was not checked (no public key); give --public-key"
                ),
            }
        }
        Format::Table => {
            let text: String = v.problems.iter().map(|p| format!("{p}\n")).collect();
            emit(&text)?;
            eprintln!(
                "the event log was tampered with ({} problem(s) in {} entries)",
                v.problems.len(),
                v.entries
            );
        }
    }
    Ok(if v.problems.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}

fn certs(command: CertsCommand) -> anyhow::Result<i32> {
    let written = match command {
        CertsCommand::Init { dir, days } => crate::certs::init(&dir, days)?,
        CertsCommand::Issue {
            kind,
            names,
            dir,
            days,
            not_after,
        } => crate::certs::issue(&dir, kind, &names, days, not_after.as_deref())?,
    };
    let mut out = String::new();
    for w in &written {
        out.push_str(&format!(
            "wrote {}  ({}, mode 0600)\n",
            w.path.display(),
            w.what
        ));
    }
    emit(&out)?;
    Ok(exit::OK)
}

fn check(dir: &std::path::Path, format: Format) -> anyhow::Result<i32> {
    let result = load_dir(dir);
    match (&result, format) {
        (Ok(set), Format::Table) => {
            let files: usize = set.manifests().iter().map(|m| m.files.len()).sum();
            emit(&format!(
                "ok: {} manifests, {files} paths declared in {}\n",
                set.manifests().len(),
                dir.display()
            ))?;
        }
        (Err(errors), Format::Table) => {
            let text: String = errors.iter().map(|e| format!("{e}\n")).collect();
            emit(&text)?;
            eprintln!(
                "{} error{} in {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                dir.display()
            );
        }
        (Ok(set), Format::Json) => emit(
            &(serde_json::to_string_pretty(&json!({
                "ok": true,
                "manifests": set.manifests().iter().map(|m| json!({"name": m.name, "file": m.file, "paths": m.files.len()})).collect::<Vec<_>>(),
                "errors": [],
            }))? + "\n"),
        )?,
        (Err(errors), Format::Json) => emit(
            &(serde_json::to_string_pretty(&json!({
                "ok": false,
                "manifests": [],
                "errors": errors.iter().map(|e| json!({
                    "file": e.file, "line": e.line, "column": e.column, "message": e.message, "hint": e.hint,
                })).collect::<Vec<_>>(),
            }))? + "\n"),
        )?,
    }
    Ok(if result.is_ok() {
        exit::OK
    } else {
        exit::ERROR
    })
}
