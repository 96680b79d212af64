//! `/etc/plumb/controller.yaml`: the options of `plumb serve` in a file. Flags beat their
//! `PLUMB_*` environment variables, which beat the file, which beats the built-in defaults
//! (the same rules as the agent's; see `plumb_common::config`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plumb_common::config::duration;
use serde::{Deserialize, Serialize};

/// Where `plumb install` writes the controller's configuration, and where `plumb serve` looks
/// for it when `--config` is not given.
pub const CONTROLLER_CONFIG: &str = "/etc/plumb/controller.yaml";

/// The controller's certificate, key and the CA it accepts clients from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// postgres://USER@HOST/DB or sqlite:DIR [default: SQLite in `data`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The key that signs the event log's head [default: `audit.key` in the data directory].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_key: Option<PathBuf>,
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<Duration>,
    /// Streams older than this are asked to go, so they spread over controllers [default: never].
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub max_connection_age: Option<Duration>,
    /// How long a stream asked to go may stay [default: 30s].
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub max_connection_age_grace: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_plaintext: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<plumb_common::cli::LogFormat>,
    /// Where drift events are POSTed (only in the file: there is no flag for a list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<crate::webhook::WebhookConfig>,
    /// The web console: where it listens, its sessions, an authenticating proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<crate::server::console::WebFile>,
}

impl ControllerFile {
    /// The file as `plumb install` writes it, with a header that says how it is used.
    pub fn render(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_default();
        format!(
            "# plumb controller configuration; every key is the `plumb serve` flag of the same name\n\
             # (see `plumb serve --help`; TLS files under `tls:`). Flags and PLUMB_* environment\n\
             # variables override it.\n{body}"
        )
    }
}

/// Reads the configuration `plumb serve` should use, if any.
pub fn load(given: Option<PathBuf>) -> anyhow::Result<(Option<PathBuf>, ControllerFile)> {
    match plumb_common::config::locate(given, CONTROLLER_CONFIG) {
        Some(p) => {
            let file = plumb_common::config::read(&p)?;
            Ok((Some(p), file))
        }
        None => Ok((None, ControllerFile::default())),
    }
}

pub fn parse(text: &str, path: &Path) -> anyhow::Result<ControllerFile> {
    plumb_common::config::parse(text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_parses_and_round_trips() {
        let text = "listen: 0.0.0.0:7700\nmanifests: /etc/plumb/manifests\ndata: /var/lib/plumb\n\
                    heartbeat_interval: 10s\nmax_connection_age: 1h\nmax_connection_age_grace: 30s\ntls: {cert: /etc/plumb/controller.pem, key: /etc/plumb/controller-key.pem, ca: /etc/plumb/ca.pem}\n\
                    metrics_listen: 127.0.0.1:9700\ninsecure_plaintext: false\nlog_format: json\n";
        let file = parse(text, Path::new("controller.yaml")).expect("valid");
        assert_eq!(file.heartbeat_interval, Some(Duration::from_secs(10)));
        assert_eq!(file.max_connection_age, Some(Duration::from_secs(3600)));
        assert_eq!(file.max_connection_age_grace, Some(Duration::from_secs(30)));
        assert_eq!(file.listen, Some("0.0.0.0:7700".parse().expect("valid")));
        let again = parse(&file.render(), Path::new("x")).expect("valid");
        assert_eq!(again, file);
    }

    #[test]
    fn mistakes_are_located() {
        let e = parse("listen: everywhere\n", Path::new("controller.yaml"))
            .expect_err("an error")
            .to_string();
        assert!(e.starts_with("controller.yaml:1:9: "), "{e}");
        let e = parse("data: /x\ndatabase: /y\n", Path::new("controller.yaml"))
            .expect_err("an error")
            .to_string();
        assert!(
            e.starts_with("controller.yaml:2:1: unknown field `database`"),
            "{e}"
        );
    }
}
