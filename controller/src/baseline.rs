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
                    o.error.as_deref().unwrap_or("unknown error")
                ));
            }
            let mut out = vec![("type", o.kind.to_string())];
            let owner = |name: &Option<std::sync::Arc<str>>, id: u32| {
                name.as_deref()
                    .map_or_else(|| id.to_string(), str::to_owned)
            };
            match o.kind {
                Kind::Absent => return Ok(out),
                Kind::Symlink => out.push(("target", o.link_target.clone().unwrap_or_default())),
                Kind::File => match &o.sha256 {
                    Some(d) => out.push(("sha256", d.to_hex())),
                    None => {
                        return Err(format!(
                            "unreadable: {}",
                            o.error.as_deref().unwrap_or("no digest")
                        ));
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

/// One group's hosts that reported one key, tallied once: each host is then judged against
/// it without looking at the others again.
pub struct Group<'a> {
    baseline: &'a Baseline,
    key: &'a Key,
    verdict: Standard,
}

/// What a host is judged against.
enum Standard {
    /// The reference host's aspects; `None` if it has not reported the key (or cannot read it).
    Reference(Option<Vec<(&'static str, String)>>),
    /// The tally of the type over every readable host, then each aspect's over the hosts of
    /// the majority's type, if there is one.
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
    fn of<'v>(values: impl Iterator<Item = &'v str>) -> Self {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        let mut total = 0;
        for v in values {
            total += 1;
            match counts.iter_mut().find(|(w, _)| *w == v) {
                Some((_, n)) => *n += 1,
                None => counts.push((v, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        match counts.first() {
            _ if total < 2 => Tally::Alone,
            Some(&(value, n)) if n * 2 > total => Tally::Majority(value.to_owned()),
            _ => Tally::None(counts.iter().map(|c| c.1).collect()),
        }
    }
}

impl<'a> Group<'a> {
    /// `members`: every host of the group that reported the key, the judged among them.
    pub fn new(baseline: &'a Baseline, key: &'a Key, members: &[(&str, &Observation)]) -> Self {
        let readable = members
            .iter()
            .filter_map(|(host, o)| Some((*host, aspects(o).ok()?)));
        let verdict = match &baseline.reference {
            Some(reference) => Standard::Reference(
                readable
                    .into_iter()
                    .find(|(h, _)| h == reference)
                    .map(|(_, a)| a),
            ),
            None => {
                let readable: Vec<Vec<(&'static str, String)>> = readable.map(|(_, a)| a).collect();
                let types = Tally::of(readable.iter().map(|a| a[0].1.as_str()));
                let mut tallies = Vec::new();
                if let Tally::Majority(t) = &types {
                    let alike: Vec<&Vec<(&'static str, String)>> =
                        readable.iter().filter(|a| &a[0].1 == t).collect();
                    for (i, (aspect, _)) in alike[0].iter().enumerate().skip(1) {
                        tallies.push((*aspect, Tally::of(alike.iter().map(|a| a[i].1.as_str()))));
                    }
                }
                let first = readable.first().map_or("type", |a| a[0].0);
                tallies.insert(0, (first, types));
                Standard::Majority(tallies)
            }
        };
        Self {
            baseline,
            key,
            verdict,
        }
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
