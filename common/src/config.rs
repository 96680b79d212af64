//! Configuration files (YAML) for both daemons. Every option of `plumb-agent run` and
//! `plumb serve` can live in a file; a flag beats its environment variable, which beats the
//! file, which beats the built-in default. Unknown keys are errors (a typo must not silently
//! leave a default in force), reported as file:line:column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Reads a YAML configuration file. An empty file is the default configuration.
pub fn read<T: DeserializeOwned + Default>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the configuration {}: {e}", path.display()))?;
    parse(&text, path)
}

/// Parses configuration text; errors name `path:line:column`.
pub fn parse<T: DeserializeOwned + Default>(text: &str, path: &Path) -> anyhow::Result<T> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(T::default());
    }
    serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        // serde_yaml appends " at line L column C" itself; the location is already in front.
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        anyhow::anyhow!("{}{at}: {message}", path.display())
    })
}

/// The configuration file given with `--config`, or `default` when that file exists.
pub fn locate(given: Option<PathBuf>, default: &str) -> Option<PathBuf> {
    given.or_else(|| {
        let p = PathBuf::from(default);
        p.is_file().then_some(p)
    })
}

/// Durations written as in the flags: `10m`, `2s`, `1h 30m`.
pub mod duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {text:?} ({e}); e.g. 10m, 2s"))
        })
    }
}

/// A duration that always has a value (a default when absent).
pub mod duration_required {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        duration::deserialize(d)?.ok_or_else(|| serde::de::Error::custom("a duration is required"))
    }
}

/// Byte counts written as in the flags: `20M`, `512K`.
pub mod bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Size {
            Number(u64),
            Text(String),
        }
        match Size::deserialize(d)? {
            Size::Number(n) => Ok(Some(n)),
            Size::Text(t) => crate::cli::parse_bytes(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Mutual TLS files of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default, with = "duration")]
        every: Option<Duration>,
        #[serde(default, with = "bytes")]
        size: Option<u64>,
        tls: Option<TlsFile>,
    }

    fn sample(text: &str) -> anyhow::Result<Sample> {
        parse(text, Path::new("sample.yaml"))
    }

    #[test]
    fn durations_sizes_and_tls_files_parse() {
        let s = sample("every: 1h 30m\nsize: 20M\ntls: {ca: /ca.pem}\n").expect("valid");
        assert_eq!(s.every, Some(Duration::from_secs(5400)));
        assert_eq!(s.size, Some(20 << 20));
        assert_eq!(s.tls.and_then(|t| t.ca), Some(PathBuf::from("/ca.pem")));
        assert_eq!(sample("size: 4096\n").expect("valid").size, Some(4096));
    }

    #[test]
    fn an_empty_or_commented_file_is_the_default() {
        assert_eq!(sample("").expect("valid"), Sample::default());
        assert_eq!(sample("# nothing\n\n").expect("valid"), Sample::default());
    }

    #[test]
    fn mistakes_are_located_without_serde_yamls_own_suffix() {
        let e = sample("every: 2s\nevry: 3s\n")
            .expect_err("an error")
            .to_string();
        assert!(
            e.starts_with("sample.yaml:2:1: unknown field `evry`"),
            "{e}"
        );
        assert!(!e.contains(" at line "), "{e}");
        let e = sample("every: soon\n").expect_err("an error").to_string();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
        let e = sample("size: 1T\n").expect_err("an error").to_string();
        assert!(e.contains("unknown unit"), "{e}");
    }
}
