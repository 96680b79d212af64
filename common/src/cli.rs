//! Command-line plumbing both binaries (`plumb-agent` and `plumb`) share: exit codes, logging,
//! argument parsing that keeps exit code 2 for drift, sizes, `k=v` labels, client TLS options.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Exit codes, as documented in README.md.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const DRIFT: i32 = 2;
    pub const USAGE: i32 = 64;
}

/// Logs go to stderr (stdout is for data); `RUST_LOG` overrides the default level; colour only
/// on a terminal and never with `NO_COLOR`.
/// How logs are written.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

pub fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(color).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}

/// A required option given nowhere (flag, environment or configuration file): exits 64 like a
/// usage error clap finds itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error that ends a command.
pub fn error_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<UsageError>().is_some() {
        exit::USAGE
    } else {
        exit::ERROR
    }
}

/// Parses arguments with clap, but exits 64 on a usage error (clap's own 2 means drift here);
/// `--help` and `--version` still print and exit 0.
pub fn parse_args<T: clap::Parser>() -> T {
    parse_args_from(std::env::args_os())
}

/// `parse_args`, from given arguments (the program name first).
pub fn parse_args_from<T, I>(args: I) -> T
where
    T: clap::Parser,
    I: IntoIterator<Item = std::ffi::OsString>,
{
    match T::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    }
}

/// A byte count: `1048576`, `512K`, `64M`, `1G` (binary units; `KiB`/`MiB`/`GiB` too).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {s:?}; e.g. 512K, 64M"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} in {s:?}; use K, M or G")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Mutual TLS options of a client (the agent, the CLI).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// The CA certificate that signed the controller's (enables TLS; use an https:// URL).
    #[arg(long, env = "PLUMB_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// This client's certificate (from `plumb certs issue`).
    #[arg(long, env = "PLUMB_CERT", value_name = "FILE", requires = "ca")]
    pub cert: Option<std::path::PathBuf>,
    /// This client's private key.
    #[arg(long, env = "PLUMB_KEY", value_name = "FILE", requires = "ca")]
    pub key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    pub fn load(&self) -> anyhow::Result<Option<crate::tls::ClientTls>> {
        match &self.ca {
            None => Ok(None),
            Some(ca) => {
                crate::tls::ClientTls::load(ca, self.cert.as_deref(), self.key.as_deref()).map(Some)
            }
        }
    }
}

/// `key=value`, for `--label`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {s:?}"))?;
    let valid = |x: &str| {
        !x.is_empty()
            && x.len() <= 128
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
    };
    if !valid(k) || !(v.is_empty() || valid(v)) {
        return Err(format!(
            "invalid label {s:?}: use letters, digits, '.', '_', '-', '/'"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

pub fn labels(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::parse_label;

    #[test]
    fn byte_sizes() {
        assert_eq!(super::parse_bytes("512K"), Ok(512 * 1024));
        assert_eq!(super::parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(super::parse_bytes("1000"), Ok(1000));
        assert!(super::parse_bytes("1T").is_err());
        assert!(super::parse_bytes("fast").is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(parse_label("role=web"), Ok(("role".into(), "web".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), "".into())));
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("=x").is_err());
        assert!(parse_label("a b=c").is_err());
    }
}
