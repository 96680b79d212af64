//! `plumb baseline accept`: a group's current state (its majority's, or one host's) written as
//! the manifest that declares it with values, ready to review and commit in place of the
//! baseline. What cannot be decided (no majority, a host that has not reported or cannot read
//! it, a kind no manifest declares) is left out and said, in the manifest as a comment and to
//! the caller.

use std::fmt::Write as _;

use super::{Group, Tally, aspects};
use crate::drift::Observation;
use crate::key::Key;
use crate::manifest::Manifest;

/// What one compared key is to be declared as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Its aspects, type (or version) first.
    Values(Vec<(&'static str, String)>),
    /// Why it is left out.
    Undecided(String),
}

/// The key as the group stands: its majority's (or its reference's) aspects, or with `from`
/// the host's own (`from`: the host and what it observed, if it has).
pub fn decide(group: &Group, from: Option<(&str, Option<&Observation>)>) -> Decided {
    if let Some((host, observed)) = from {
        return match observed.map(aspects) {
            None => Decided::Undecided(format!("{host} has not reported it")),
            Some(Err(why)) => Decided::Undecided(format!("{host} cannot read it: {why}")),
            Some(Ok(values)) => Decided::Values(values),
        };
    }
    let tallies = group.tallies();
    if tallies.is_empty() {
        let reference = group
            .baseline
            .reference
            .as_deref()
            .unwrap_or("the reference");
        return Decided::Undecided(format!("{reference} has not reported it"));
    }
    let mut values = Vec::new();
    for (aspect, tally) in tallies {
        match tally {
            Tally::Majority(value) => values.push((aspect, value)),
            Tally::Alone => {
                return Decided::Undecided("no majority: one host only has reported it".to_owned());
            }
            Tally::None(counts) => {
                let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
                return Decided::Undecided(format!(
                    "no majority for its {aspect}: {} variants held by {} hosts",
                    counts.len(),
                    counts.join(", ")
                ));
            }
        }
    }
    Decided::Values(values)
}

/// The manifest `m` would be with its baseline's keys declared as `decided` says; `whose`
/// says whose state it is, for the header. Returns the YAML and what was left out.
pub fn manifest(m: &Manifest, decided: &[(Key, Decided)], whose: &str) -> (String, Vec<String>) {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {}'s baseline ({}) as values: {whose}.",
        m.name,
        m.baseline
            .as_ref()
            .map_or(String::new(), |b| b.declared_at.to_string())
    );
    let _ = writeln!(out, "# Review it, then commit it in place of the baseline.");
    let _ = writeln!(out, "name: {}", q(&m.name));
    if !m.hosts.is_empty() {
        let hosts: Vec<String> = m.hosts.iter().map(|g| q(g.as_str())).collect();
        let _ = writeln!(out, "hosts: [{}]", hosts.join(", "));
    }
    if !m.labels.is_empty() {
        let _ = writeln!(out, "labels:");
        for (k, v) in &m.labels {
            let _ = writeln!(out, "  {}: {}", q(k), q(v));
        }
    }
    if !m.facts.is_empty() {
        let _ = writeln!(out, "facts:");
        for (k, g) in &m.facts {
            let _ = writeln!(out, "  {k}: {}", q(g.as_str()));
        }
    }
    let mut undecided = Vec::new();
    let (mut files, mut packages) = (String::new(), String::new());
    for (key, decision) in decided {
        let values = match decision {
            Decided::Values(values) => values,
            Decided::Undecided(why) => {
                undecided.push(format!("{key}: {why}"));
                continue;
            }
        };
        let of = |aspect: &str| {
            values
                .iter()
                .find(|(a, _)| *a == aspect)
                .map(|(_, v)| v.as_str())
        };
        match key {
            Key::File(path) => {
                let lines: Vec<String> = match of("type") {
                    Some("absent") => vec!["absent: true".into()],
                    Some("symlink") => vec![format!("target: {}", q(of("target").unwrap_or("")))],
                    Some(kind @ ("file" | "directory")) => {
                        let mut lines = Vec::new();
                        if kind == "directory" {
                            lines.push("type: directory".into());
                        }
                        if let Some(d) = of("sha256") {
                            lines.push(format!("sha256: {}", q(d)));
                        }
                        for aspect in ["mode", "owner", "group"] {
                            if let Some(v) = of(aspect) {
                                lines.push(format!("{aspect}: {}", q(v)));
                            }
                        }
                        lines
                    }
                    kind => {
                        undecided.push(format!(
                            "{key}: a {} cannot be declared",
                            kind.unwrap_or("path of no known type")
                        ));
                        continue;
                    }
                };
                let _ = writeln!(files, "  {}:", q(path));
                for line in lines {
                    let _ = writeln!(files, "    {line}");
                }
            }
            Key::Package(name) => {
                let want = match of("version") {
                    Some("absent") => "absent".to_owned(),
                    Some(v) if !v.contains(", ") => {
                        let version = v.rsplit_once(" (").map_or(v, |(v, _)| v);
                        format!("= {version}")
                    }
                    // Several instances (architectures): present, as one cannot say more.
                    _ => "present".to_owned(),
                };
                let _ = writeln!(packages, "  {}: {}", q(name), q(&want));
            }
        }
    }
    if !files.is_empty() {
        let _ = write!(out, "files:\n{files}");
    }
    if !packages.is_empty() {
        let _ = write!(out, "packages:\n{packages}");
    }
    if !undecided.is_empty() {
        let _ = writeln!(out, "# Left out, not decided:");
        for u in &undecided {
            let _ = writeln!(out, "#   {u}");
        }
    }
    (out, undecided)
}
