//! `plumb serve` and `plumb install`: the controller's options merged from flags, environment
//! and `controller.yaml`, checked, and run; and the service `install` writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use plumb_common::cli::exit;
use plumb_common::systemd;

use super::output::emit;
use super::{InstallArgs, ServeArgs, shutdown_on_signal};
use crate::config::ControllerFile;
use crate::server::{self, ServeConfig};

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
        store: args.store.or(file.store),
        audit_key: args.audit_key.or(file.audit_key),
        heartbeat_interval: args.heartbeat_interval.or(file.heartbeat_interval),
        max_connection_age: args.max_connection_age.or(file.max_connection_age),
        max_connection_age_grace: args
            .max_connection_age_grace
            .or(file.max_connection_age_grace),
        tls: (tls != Default::default()).then_some(tls),
        metrics_listen: args.metrics_listen.or(file.metrics_listen),
        max_connections: args.max_connections.or(file.max_connections),
        insecure_plaintext: args.insecure_plaintext || file.insecure_plaintext,
        log_format: file.log_format,
        webhooks: file.webhooks,
        web: match (args.web_listen, file.web) {
            (None, web) => web,
            (Some(listen), web) => Some(crate::server::console::WebFile {
                listen: Some(listen),
                ..web.unwrap_or_default()
            }),
        },
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
    let store = merged
        .store
        .as_deref()
        .map(crate::store::Location::parse)
        .transpose()
        .map_err(|e| {
            plumb_common::cli::UsageError(format!(
                "{e}\nhint: --store postgres://plumb@db.example/plumb (or PLUMB_STORE, or `store:` in {source}); leave it out for SQLite in the data directory"
            ))
        })?;
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
    let max_connection_age = match (merged.max_connection_age, merged.max_connection_age_grace) {
        (Some(age), grace) if age >= Duration::from_secs(1) => Some(crate::fleet::ConnectionAge {
            age,
            grace: grace.unwrap_or(Duration::from_secs(30)),
        }),
        (Some(age), _) => {
            return Err(plumb_common::cli::UsageError(format!(
                "a maximum connection age of {} would close every stream as it opens\nhint: give at least 1s; an hour or more rebalances without costing the agents rescans",
                humantime::format_duration(age)
            ))
            .into());
        }
        (None, Some(_)) => {
            return Err(plumb_common::cli::UsageError(format!(
                "a grace period needs a maximum connection age\nhint: give --max-connection-age (or `max_connection_age:` in {source}) as well"
            ))
            .into());
        }
        (None, None) => None,
    };
    for (i, hook) in merged.webhooks.iter().enumerate() {
        hook.validate(&format!("{source}: webhooks[{i}]"))?;
    }
    let web = match merged.web {
        Some(w) => match w.listen {
            Some(listen) => Some(server::console::WebConfig {
                listen,
                session: w.session.unwrap_or(server::console::DEFAULT_SESSION),
                proxy: w.proxy,
            }),
            None => {
                return Err(plumb_common::cli::UsageError(format!(
                    "the console's settings name no address to listen on\nhint: give --web-listen ADDR, or `web: {{listen: ADDR}}` in {source}"
                ))
                .into());
            }
        },
        None => None,
    };
    Ok(ServeConfig {
        web,
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
        store,
        heartbeat_interval: merged.heartbeat_interval.unwrap_or(Duration::from_secs(5)),
        max_connection_age,
    })
}

pub(super) async fn serve(
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
    if let Some(w) = &running.web_url {
        eprintln!("plumb: console on {w}");
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
pub(super) fn controller_service(
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
    if let Some(web) = args.web_listen
        && !web.ip().is_loopback()
        && tls.is_none()
    {
        anyhow::bail!(
            "a console on {web} needs TLS: anyone who reached it would be admin\nhint: give --tls-cert, --tls-key and --tls-ca, or a loopback address behind an authenticating proxy (`web: proxy:` in the controller.yaml it writes)"
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
        web: args
            .web_listen
            .map(|listen| crate::server::console::WebFile {
                listen: Some(listen),
                ..Default::default()
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_age(age: Option<&str>, grace: Option<&str>) -> anyhow::Result<ServeConfig> {
        let d = |s: &str| humantime::parse_duration(s).expect("a duration");
        let file = ControllerFile {
            manifests: Some("/m".into()),
            data: Some("/d".into()),
            max_connection_age: age.map(d),
            max_connection_age_grace: grace.map(d),
            ..Default::default()
        };
        serve_config(file, "controller.yaml")
    }

    #[test]
    fn a_maximum_connection_age_is_checked_and_its_grace_defaults_to_30_s() {
        let cfg = with_age(Some("1h"), None).expect("valid");
        assert_eq!(
            cfg.max_connection_age,
            Some(crate::fleet::ConnectionAge {
                age: Duration::from_secs(3600),
                grace: Duration::from_secs(30),
            })
        );
        assert_eq!(
            with_age(None, None).expect("valid").max_connection_age,
            None
        );
        let e = with_age(None, Some("10s"))
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("a grace period needs a maximum connection age"),
            "{e}"
        );
        assert!(
            e.contains("`max_connection_age:` in controller.yaml"),
            "{e}"
        );
        let e = with_age(Some("100ms"), None)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("would close every stream as it opens"), "{e}");
    }
}
