//! Hosts that should be alike (a manifest's `baseline:`): each host's observation of a
//! compared path or package judged against its group's, the majority's or one reference
//! host's. Pure.
//!
//! What is compared is what the agents already send: a file's type, then (for a file) its
//! digest, (for a symlink) its target, and its mode, owner and group; a package's installed
//! versions. Content never leaves a host. A host whose observation cannot be read says so and
//! casts no vote. No majority (a tie, or no other host to compare with) is drift said as
//! such, never a guess either way.

pub mod accept;
mod variants;

pub use variants::{Divergence, Variant, Variants};

use std::collections::HashMap;

use crate::drift::{DriftItem, Kind, Observation};
use crate::key::Key;
use crate::manifest::Baseline;

/// The attribute of drift from a baseline begins with this (`baseline.sha256`), so that
/// reports tell it from drift against declared values.
pub const ATTRIBUTE: &str = "baseline";

/// What is compared of one observation, in the order judged: the type first, since nothing
/// after it means the same when the type differs. `Err` when it cannot be read.
pub fn aspects(observed: &Observation) -> Result<Vec<(&'static str, String)>, String> {
    match observed {
        Observation::File(o) => {
            if o.kind == Kind::Unreadable {
                return Err(format!(
                    "unreadable: {}",
                    o.error().unwrap_or("unknown error")
                ));
            }
            let mut out = vec![("type", o.kind.to_string())];
            let owner = |name: &Option<std::sync::Arc<str>>, id: u32| {
                name.as_deref()
                    .map_or_else(|| id.to_string(), str::to_owned)
            };
            match o.kind {
                Kind::Absent => return Ok(out),
                Kind::Symlink => {
                    out.push(("target", o.link_target().unwrap_or_default().to_owned()))
                }
                Kind::File => match &o.sha256 {
                    Some(d) => out.push(("sha256", d.to_hex())),
                    None => {
                        return Err(format!("unreadable: {}", o.error().unwrap_or("no digest")));
                    }
                },
                _ => {}
            }
            out.push(("mode", format!("{:04o}", o.mode & 0o7777)));
            out.push(("owner", owner(&o.owner, o.uid)));
            out.push(("group", owner(&o.group, o.gid)));
            Ok(out)
        }
        Observation::Package(p) => {
            if let Some(e) = &p.error {
                return Err(format!("unreadable: {e}"));
            }
            let mut versions: Vec<String> = p
                .instances
                .iter()
                .map(|i| format!("{} ({})", i.version, i.arch))
                .collect();
            versions.sort();
            versions.dedup();
            let version = if versions.is_empty() {
                "absent".to_owned()
            } else {
                versions.join(", ")
            };
            Ok(vec![("version", version)])
        }
    }
}

/// One group's hosts on one key, judged from their counts (`Counts`): each host is judged
/// without looking at the others again.
pub struct Group<'a> {
    baseline: &'a Baseline,
    key: &'a Key,
    verdict: Standard,
}

/// What a host is judged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standard {
    /// The reference host's aspects; `None` if it has not reported the key (or cannot read it).
    Reference(Option<Vec<(&'static str, String)>>),
    /// The tally of the type over every readable host, then each aspect's over the hosts of
    /// the majority's type, if there is one; in the order aspects are judged.
    Majority(Vec<(&'static str, Tally)>),
}

/// Of one aspect's values, what the group holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// The value more than half of the hosts hold.
    Majority(String),
    /// One host only reported it: nothing to compare with.
    Alone,
    /// No value is held by more than half: how many hold each, largest first.
    None(Vec<usize>),
}

impl Tally {
    /// From each value and how many hosts hold it.
    fn of<'v>(counts: impl Iterator<Item = (&'v str, usize)>) -> Self {
        let mut counts: Vec<(&str, usize)> = counts.filter(|(_, n)| *n > 0).collect();
        let total: usize = counts.iter().map(|c| c.1).sum();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        match counts.first() {
            _ if total < 2 => Tally::Alone,
            Some(&(value, n)) if n * 2 > total => Tally::Majority(value.to_owned()),
            _ => Tally::None(counts.iter().map(|c| c.1).collect()),
        }
    }
}

/// The order aspects are judged and shown in.
const ORDER: [&str; 7] = [
    "type", "version", "sha256", "target", "mode", "owner", "group",
];

fn rank(aspect: &str) -> usize {
    ORDER
        .iter()
        .position(|a| *a == aspect)
        .unwrap_or(ORDER.len())
}

/// What a group's readable hosts hold of one key, counted: kept up to date as observations
/// come and go (`add`, `remove`), so that what a host is judged against costs the number of
/// variants, not the number of hosts.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Hosts by their first aspect's value (a file's type, a package's versions).
    first: HashMap<String, usize>,
    /// By first aspect's value, each later aspect's values and how many hosts hold each.
    rest: HashMap<String, HashMap<&'static str, HashMap<String, usize>>>,
    /// The first aspect's name (`type`, `version`), once a host is counted.
    first_name: Option<&'static str>,
    /// The reference host's aspects, while it is counted.
    reference: Option<Vec<(&'static str, String)>>,
}

impl Counts {
    /// Every member's observation counted.
    pub fn of(baseline: &Baseline, members: &[(&str, &Observation)]) -> Self {
        let mut counts = Counts::default();
        for (host, observed) in members {
            counts.add(baseline, host, observed);
        }
        counts
    }

    /// `host`'s observation counted (nothing if it cannot be read: it casts no vote).
    pub fn add(&mut self, baseline: &Baseline, host: &str, observed: &Observation) {
        self.count(baseline, host, observed, true);
    }

    /// `host`'s observation, counted before, no longer counted.
    pub fn remove(&mut self, baseline: &Baseline, host: &str, observed: &Observation) {
        self.count(baseline, host, observed, false);
    }

    fn count(&mut self, baseline: &Baseline, host: &str, observed: &Observation, add: bool) {
        let Ok(aspects) = aspects(observed) else {
            return;
        };
        let bump = |n: &mut usize| {
            if add {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        if baseline.reference.as_deref() == Some(host) {
            self.reference = add.then(|| aspects.clone());
        }
        let (first_name, first) = &aspects[0];
        self.first_name = Some(first_name);
        bump(self.first.entry(first.clone()).or_default());
        let rest = self.rest.entry(first.clone()).or_default();
        for (aspect, value) in &aspects[1..] {
            bump(
                rest.entry(aspect)
                    .or_default()
                    .entry(value.clone())
                    .or_default(),
            );
        }
    }

    /// Whether every host counted has it absent (a glob's match gone from every host).
    pub fn only_absent(&self) -> bool {
        self.first.iter().all(|(v, n)| *n == 0 || v == "absent")
    }

    /// What a host of the group is judged against.
    pub fn standard(&self, baseline: &Baseline) -> Standard {
        if baseline.reference.is_some() {
            return Standard::Reference(self.reference.clone());
        }
        let first = Tally::of(self.first.iter().map(|(v, n)| (v.as_str(), *n)));
        let mut tallies = Vec::new();
        if let Tally::Majority(t) = &first
            && let Some(rest) = self.rest.get(t)
        {
            for (aspect, values) in rest {
                tallies.push((
                    *aspect,
                    Tally::of(values.iter().map(|(v, n)| (v.as_str(), *n))),
                ));
            }
        }
        tallies.sort_by_key(|(a, _)| rank(a));
        tallies.insert(0, (self.first_name.unwrap_or("type"), first));
        Standard::Majority(tallies)
    }
}

impl<'a> Group<'a> {
    /// `members`: every host of the group that reported the key, the judged among them.
    pub fn new(baseline: &'a Baseline, key: &'a Key, members: &[(&str, &Observation)]) -> Self {
        Self::of(baseline, key, &Counts::of(baseline, members))
    }

    /// The group as `counts` has it.
    pub fn of(baseline: &'a Baseline, key: &'a Key, counts: &Counts) -> Self {
        Self {
            baseline,
            key,
            verdict: counts.standard(baseline),
        }
    }

    /// What a host of the group is judged against.
    pub fn standard(&self) -> &Standard {
        &self.verdict
    }

    /// What the group holds of each aspect (compared with the majority), or the reference's.
    pub fn tallies(&self) -> Vec<(&'static str, Tally)> {
        match &self.verdict {
            Standard::Majority(t) => t.clone(),
            Standard::Reference(r) => r
                .iter()
                .flatten()
                .map(|(a, v)| (*a, Tally::Majority(v.clone())))
                .collect(),
        }
    }

    /// The drift of a host that observed `observed` against the group.
    pub fn judge(&self, host: &str, observed: &Observation) -> Vec<DriftItem> {
        let item = |aspect: &str, expected: String, actual: String| DriftItem {
            resource: self.key.to_string(),
            attribute: format!("{ATTRIBUTE}.{aspect}"),
            expected,
            actual,
            declared_at: self.baseline.declared_at.to_string(),
        };
        let own = match aspects(observed) {
            Ok(own) => own,
            Err(why) => return vec![item("readable", "readable".into(), why)],
        };
        let group = &self.baseline.manifest;
        let mut out = Vec::new();
        match &self.verdict {
            Standard::Reference(_) if self.baseline.reference.as_deref() == Some(host) => {}
            Standard::Reference(None) => {
                let reference = self.baseline.reference.as_deref().unwrap_or_default();
                out.push(item(
                    "reference",
                    format!("as {reference}"),
                    format!("{reference} has not reported it (or cannot read it)"),
                ));
            }
            Standard::Reference(Some(theirs)) => {
                let reference = self.baseline.reference.as_deref().unwrap_or_default();
                for (i, (aspect, mine)) in own.iter().enumerate() {
                    let Some((_, want)) = theirs.iter().find(|(a, _)| a == aspect) else {
                        continue;
                    };
                    if want != mine {
                        out.push(item(
                            aspect,
                            format!("{want} (as {reference})"),
                            mine.clone(),
                        ));
                        if i == 0 {
                            break; // another type: nothing after it compares
                        }
                    }
                }
            }
            Standard::Majority(tallies) => {
                // Past the type, this host is of the majority's type: its aspects are the
                // ones tallied.
                for (i, (aspect, mine)) in own.iter().enumerate() {
                    let Some((_, tally)) = tallies.iter().find(|(a, _)| a == aspect) else {
                        continue;
                    };
                    let expected = match tally {
                        Tally::Majority(value) if value == mine => continue,
                        Tally::Majority(value) => format!("{value} (as most of {group})"),
                        Tally::Alone => format!(
                            "a majority of {group}, and there is none: no other host has reported it"
                        ),
                        Tally::None(counts) => {
                            let counts: Vec<String> =
                                counts.iter().map(ToString::to_string).collect();
                            format!(
                                "a majority of {group}, and there is none: {} variants held by {} hosts",
                                counts.len(),
                                counts.join(", ")
                            )
                        }
                    };
                    out.push(item(aspect, expected, mine.clone()));
                    if i == 0 {
                        break; // another type: nothing after it compares
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
