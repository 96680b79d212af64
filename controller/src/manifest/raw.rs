//! The manifest as written: serde structs that mirror the YAML, with `deny_unknown_fields`.
//!
//! Leaf values (mode, digests, owners, line patterns) validate themselves while being
//! deserialized, so that serde_yaml attaches the line and column of the offending value to the
//! error. Rules that span fields are checked afterwards, in `super::validate`.

use std::collections::BTreeMap;
use std::fmt;

use regex::RegexBuilder;
use serde::Deserialize;

use crate::digest::Digest;
use crate::problem::Problem;
use crate::version::{self, Constraint, Manager};
use serde::de::{self, Deserializer, Visitor};

/// Upper bounds on what a manifest may ask the agent to do; keep hostile manifests cheap.
pub(crate) const MAX_PATTERN_LEN: usize = 4096;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) facts: RawFacts,
    #[serde(default)]
    pub(crate) files: Entries<Option<RawFile>>,
    #[serde(default)]
    pub(crate) packages: Entries<RawPackage>,
    /// Entries of this manifest's exclusive directories that are never drift: names
    /// (`*.swp`) or absolute path globs (`/etc/**/*.dpkg-*`).
    #[serde(default)]
    pub(crate) ignore: Vec<String>,
    /// Hosts that should be alike: what to compare among the hosts this manifest selects.
    pub(crate) baseline: Option<RawBaseline>,
}

/// `baseline:`: the paths and packages compared among the selected hosts, against the
/// majority or against one named host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBaseline {
    /// A host id: every other host is compared with it. Omitted: with the majority.
    pub(crate) reference: Option<String>,
    #[serde(default)]
    pub(crate) files: Vec<String>,
    #[serde(default)]
    pub(crate) packages: Vec<String>,
}

/// A mapping as written, every key kept in order: a key written twice is an error the parser
/// reports (a map type would keep the last silently, while locations pointed at the first).
#[derive(Debug)]
pub(crate) struct Entries<V>(pub(crate) Vec<(String, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Visit<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Entries<V>, E> {
                Ok(Entries(Vec::new())) // `files:` with nothing under it
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    entries.push((k, v));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// Globs on what the agent reports about its host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFacts {
    /// os-release `ID`: debian, ubuntu, rhel, alpine, arch...
    pub(crate) os: Option<String>,
    pub(crate) os_version: Option<String>,
    pub(crate) arch: Option<String>,
}

/// A package: `name: present | absent | "CONSTRAINTS"`, or the expanded
/// `name: {version: …, manager: …, arch: …}`.
#[derive(Debug)]
pub(crate) struct RawPackage {
    pub(crate) want: Want,
    pub(crate) manager: Option<Manager>,
    pub(crate) arch: Option<String>,
    pub(crate) verify_files: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackageLong {
    version: Option<Want>,
    manager: Option<Manager>,
    arch: Option<String>,
    #[serde(default)]
    verify_files: bool,
}

impl<'de> Deserialize<'de> for RawPackage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPackage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("present, absent, a version constraint, or {version, manager, arch}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawPackage, E> {
                let want = parse_want(s).map_err(Problem::into_serde)?;
                Ok(RawPackage {
                    want,
                    manager: None,
                    arch: None,
                    verify_files: false,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawPackage, A::Error> {
                let long = RawPackageLong::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawPackage {
                    want: long.version.unwrap_or(Want::Present),
                    manager: long.manager,
                    arch: long.arch,
                    verify_files: long.verify_files,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// What a manifest wants of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Present,
    Absent,
    /// Installed, at a version satisfying every constraint.
    Versions(Vec<Constraint>),
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Present => f.write_str("present"),
            Want::Absent => f.write_str("absent"),
            Want::Versions(c) => f.write_str(&version::display_constraints(c)),
        }
    }
}

impl<'de> Deserialize<'de> for Want {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(
            "present, absent, or a version constraint",
            parse_want,
        ))
    }
}

fn parse_want(s: &str) -> Result<Want, Problem> {
    match s.trim() {
        "present" | "installed" => Ok(Want::Present),
        "absent" | "removed" => Ok(Want::Absent),
        other => version::parse_constraints(other).map(Want::Versions),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    #[serde(default)]
    pub(crate) absent: bool,
    #[serde(rename = "type")]
    pub(crate) kind: Option<FileType>,
    pub(crate) sha256: Option<Sha256>,
    pub(crate) content: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) mode: Option<Mode>,
    pub(crate) owner: Option<Principal>,
    pub(crate) group: Option<Principal>,
    pub(crate) target: Option<String>,
    #[serde(default)]
    pub(crate) contains: Vec<LinePattern>,
    #[serde(default)]
    pub(crate) exclusive: bool,
    #[serde(default)]
    pub(crate) diff: bool,
    #[serde(default)]
    pub(crate) sensitive: bool,
    /// On an exclusive directory: names of its entries that are never drift.
    #[serde(default)]
    pub(crate) ignore: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Directory,
    Symlink,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
        }
    }
}

/// Permission bits, from a quoted octal string such as "0644" or "2755".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted octal mode such as \"0644\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                parse_mode(s).map_err(Problem::into_serde)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Mode, E> {
                Err(Problem::new(format!("mode must be a quoted string, got the number {n}"))
                    .hint("quote the mode, e.g. mode: \"0644\" (YAML 1.1 tools read 0644 as the number 420)")
                    .into_serde())
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Mode, E> {
                self.visit_u64(n.unsigned_abs())
            }
        }
        d.deserialize_any(V)
    }
}

pub(crate) fn parse_mode(s: &str) -> Result<Mode, Problem> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if !(3..=4).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(
            Problem::new(format!("invalid mode {s:?}: expected 3 or 4 octal digits"))
                .hint("e.g. mode: \"0644\""),
        );
    }
    u32::from_str_radix(digits, 8)
        .map(Mode)
        .map_err(|e| Problem::new(format!("invalid mode {s:?}: {e}")))
}

/// A SHA-256 digest, from 64 hex characters of either case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sha256(pub(crate) Digest);

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor("a SHA-256 digest in hex", |s: &str| {
            Digest::from_hex(s.trim()).map(Sha256).ok_or_else(|| {
                Problem::new(format!("invalid sha256 {s:?}: expected 64 hex characters"))
                    .hint("`sha256sum FILE` prints it")
            })
        }))
    }
}

/// Validates a string inside the visitor, where serde_yaml still knows the value's position
/// (an error raised after `String::deserialize` returns is placed at the enclosing key).
struct StrVisitor<F>(&'static str, F);

impl<T, F: FnOnce(&str) -> Result<T, Problem>> Visitor<'_> for StrVisitor<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        (self.1)(s).map_err(Problem::into_serde)
    }
}

/// A user or group, by name or by numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Id(u32),
    Name(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Id(id) => write!(f, "{id}"),
            Principal::Name(name) => f.write_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Principal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user or group name, or a numeric id")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Principal, E> {
                u32::try_from(n)
                    .map(Principal::Id)
                    .map_err(|_| E::custom(format!("id {n} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Principal, E> {
                Err(E::custom(format!("id {n} is out of range")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Principal, E> {
                if let Ok(id) = s.parse::<u32>() {
                    return Ok(Principal::Id(id));
                }
                let valid = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-$".contains(&b));
                if !valid {
                    return Err(E::custom(format!("invalid user or group name {s:?}")));
                }
                Ok(Principal::Name(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of `contains`: a literal line, `/regex/`, either negated with a leading `!`.
#[derive(Debug, Clone)]
pub struct LinePattern {
    /// As written in the manifest; names the drift attribute (`contains:<text>`).
    pub text: String,
    pub negated: bool,
    /// The literal line or the regular expression, without `!` and slashes.
    pub pattern: String,
    pub regex: bool,
}

impl PartialEq for LinePattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<'de> Deserialize<'de> for LinePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor("a line pattern", parse_line_pattern))
    }
}

pub(crate) fn parse_line_pattern(text: &str) -> Result<LinePattern, Problem> {
    if text.len() > MAX_PATTERN_LEN {
        return Err(Problem::new(format!(
            "pattern is longer than {MAX_PATTERN_LEN} bytes"
        )));
    }
    let (negated, body) = match text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let is_regex = body.len() >= 2 && body.starts_with('/') && body.ends_with('/');
    let pattern = if is_regex {
        &body[1..body.len() - 1]
    } else {
        body
    };
    if pattern.trim().is_empty() {
        return Err(Problem::new(format!("empty pattern {text:?}")));
    }
    if is_regex {
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                // regex's syntax errors draw a caret under the pattern; keep only the reason.
                let reason = e.to_string();
                let reason = reason
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ");
                Problem::new(format!("invalid regex in {text:?}: {reason}"))
                    .hint("a line pattern is /REGEX/ or a literal line")
            })?;
    }
    Ok(LinePattern {
        text: text.to_owned(),
        negated,
        pattern: pattern.to_owned(),
        regex: is_regex,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(Mode(0o644)));
        assert_eq!(parse_mode("644"), Ok(Mode(0o644)));
        assert_eq!(parse_mode("2755"), Ok(Mode(0o2755)));
        assert_eq!(Mode(0o600).to_string(), "0600");
        for bad in ["", "8", "0999", "12345", "rw-r--r--", "64"] {
            assert!(parse_mode(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn line_patterns() {
        let p = parse_line_pattern("PermitRootLogin no").expect("literal");
        assert!(!p.negated && !p.regex && p.pattern == "PermitRootLogin no");
        let p = parse_line_pattern("!X11Forwarding yes").expect("negated literal");
        assert!(p.negated && !p.regex && p.pattern == "X11Forwarding yes");
        let p = parse_line_pattern(r"/^PasswordAuthentication\s+no/").expect("regex");
        assert!(!p.negated && p.regex && p.pattern == r"^PasswordAuthentication\s+no");
        let p = parse_line_pattern("!/^Debug/").expect("negated regex");
        assert!(p.negated && p.regex && p.pattern == "^Debug");
        let p = parse_line_pattern("/").expect("a lone slash is a literal");
        assert!(!p.regex);
        assert!(parse_line_pattern("/a(b/").is_err());
        assert!(parse_line_pattern("!").is_err());
        assert!(parse_line_pattern(&"x".repeat(MAX_PATTERN_LEN + 1)).is_err());
    }
}
