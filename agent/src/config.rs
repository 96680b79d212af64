//! `/etc/plumb/agent.yaml`: the agent's configuration file, read with the shared reader
//! (`plumb_common::config`, file:line:column errors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plumb_common::cli::LogFormat;
use plumb_common::config::{TlsFile, bytes, duration};
use serde::{Deserialize, Serialize};

/// Where `plumb-agent install` writes the agent's configuration, and where `run` looks for it
/// when `--config` is not given.
pub const AGENT_CONFIG: &str = "/etc/plumb/agent.yaml";

/// `/etc/plumb/agent.yaml`: the options of `plumb-agent run`, same names with `_`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub rescan_interval: Option<Duration>,
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_watches: Option<usize>,
    #[serde(default, with = "bytes", skip_serializing_if = "Option::is_none")]
    pub scan_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_threads: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_content: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<crate::attribute::Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_command_lines: Option<bool>,
}

impl AgentFile {
    /// Checks what serde cannot: label syntax.
    pub fn validate(&self, path: &Path) -> anyhow::Result<()> {
        for (k, v) in &self.labels {
            plumb_common::cli::parse_label(&format!("{k}={v}"))
                .map_err(|e| anyhow::anyhow!("{}: labels: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The file as `plumb-agent install` writes it, with a header that says how it is used.
    pub fn render(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_default();
        format!(
            "# plumb-agent configuration; every key is the `plumb-agent run` flag of the same name\n\
             # (see `plumb-agent run --help`). Flags and PLUMB_* environment variables override it.\n\
             {body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_agent(text: &str) -> anyhow::Result<AgentFile> {
        plumb_common::config::parse(text, Path::new("agent.yaml"))
    }

    #[test]
    fn every_option_parses_and_round_trips() {
        let text = "controller: https://plumb.example:7700\nhost_id: web-01\nroot: /host\n\
                    labels: {role: web, tier: \"1\"}\nrescan_interval: 1h 30m\npoll_interval: 2s\n\
                    max_watches: 8000\nscan_rate: 20M\nscan_threads: 2\ndeny_content: [\"/etc/secret/*\"]\n\
                    tls: {ca: /etc/plumb/ca.pem, cert: /etc/plumb/agent.pem, key: /etc/plumb/agent-key.pem}\n\
                    log_format: json\n";
        let file = parse_agent(text).expect("valid");
        assert_eq!(file.rescan_interval, Some(Duration::from_secs(5400)));
        assert_eq!(file.scan_rate, Some(20 << 20));
        assert_eq!(file.scan_threads, Some(2));
        assert_eq!(file.labels["tier"], "1");
        assert_eq!(file.log_format, Some(LogFormat::Json));
        assert_eq!(
            file.tls.as_ref().expect("valid").key.as_deref(),
            Some(Path::new("/etc/plumb/agent-key.pem"))
        );
        let again = parse_agent(&file.render()).expect("valid");
        assert_eq!(again, file);
    }

    #[test]
    fn an_empty_or_commented_file_is_the_default() {
        assert_eq!(parse_agent("").expect("valid"), AgentFile::default());
        assert_eq!(
            parse_agent("# nothing\n\n").expect("valid"),
            AgentFile::default()
        );
    }

    #[test]
    fn mistakes_are_located() {
        let e = parse_agent("controller: http://x\ncontoller: http://y\n").expect_err("an error");
        let text = e.to_string();
        assert!(
            text.starts_with("agent.yaml:2:1: unknown field `contoller`"),
            "{text}"
        );
        let e = parse_agent("poll_interval: soon\n")
            .expect_err("an error")
            .to_string();
        assert!(e.starts_with("agent.yaml:1:"), "{e}");
        assert!(e.contains("invalid duration \"soon\""), "{e}");
        let e = parse_agent("scan_rate: 1T\n")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("unknown unit"), "{e}");
        let e = parse_agent("max_watches: many\n")
            .expect_err("an error")
            .to_string();
        assert!(e.starts_with("agent.yaml:1:14: "), "{e}");
        let file = parse_agent("labels: {\"a b\": c}\n").expect("valid");
        assert!(file.validate(Path::new("agent.yaml")).is_err());
    }
}
