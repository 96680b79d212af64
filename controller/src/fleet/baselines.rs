//! Baselines on the fleet: each key a baseline compares is judged among the hosts of its
//! group (`baseline::Group`), so one host's change can open, change or resolve its peers'
//! drift. A host's own evaluation judges it against the group as it stands; when what it
//! observed of a compared key moves, every other host of the group is judged again
//! (`Cause::Peers`); a new manifest set judges every group once every host has its new
//! desired state.
//!
//! Cost: a moved key reads the whole fleet for its group and judges each member once, so a
//! group of N hosts costs O(fleet + N) per moved key (fine at hundreds of hosts; not yet
//! measured beyond, see issue 17's note).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::agents::Cause;
use super::{Fleet, FleetError};
use crate::baseline::accept;
use crate::baseline::{Divergence, Group};
use crate::drift::{DriftItem, Observation};
use crate::key::Key;
use crate::manifest::{Baseline, Glob};

/// One group as a manifest with values (`plumb baseline accept`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The manifest whose baseline it is.
    pub group: String,
    /// The manifest, YAML.
    pub manifest: String,
    /// What was left out, and why (`file:/etc/x: no majority for its sha256: …`).
    pub undecided: Vec<String>,
}

impl Fleet {
    /// The hosts of `manifest`'s group that observed `key`, with what they observed.
    fn group_of(&self, manifest: &str, key: &Key) -> Vec<(&str, &Observation)> {
        self.hosts
            .values()
            .filter(|h| {
                h.desired
                    .baselines
                    .get(key)
                    .is_some_and(|b| b.manifest == manifest)
            })
            .filter_map(|h| Some((h.info.host_id.as_str(), h.observed.get(key)?)))
            .collect()
    }

    /// The drift of each of `keys` a baseline compares for `host_id`, against its group as
    /// it stands.
    pub(super) fn judge_among_peers(
        &self,
        host_id: &str,
        keys: &[Key],
    ) -> HashMap<Key, Vec<DriftItem>> {
        let Some(host) = self.hosts.get(host_id) else {
            return HashMap::new();
        };
        keys.iter()
            .filter_map(|key| {
                let baseline = host.desired.baselines.get(key)?;
                let own = host.observed.get(key)?;
                let members = self.group_of(&baseline.manifest, key);
                let judged = Group::new(baseline, key, &members).judge(host_id, own);
                Some((key.clone(), judged))
            })
            .collect()
    }

    /// What `host_id` observed of `keys` moved: the other hosts of their groups are judged
    /// again.
    pub(super) fn peers_moved(&mut self, host_id: &str, keys: &[Key]) {
        for key in keys {
            let Some(baseline) = self
                .hosts
                .get(host_id)
                .and_then(|h| h.desired.baselines.get(key).cloned())
            else {
                continue;
            };
            self.judge_group(&baseline, key, Some(host_id), &Cause::Peers);
        }
    }

    /// Every group judged again: a new manifest set is in force.
    pub(super) fn judge_every_group(&mut self) {
        let mut groups: BTreeMap<(String, Key), Arc<Baseline>> = BTreeMap::new();
        for host in self.hosts.values() {
            for (key, baseline) in &host.desired.baselines {
                groups
                    .entry((baseline.manifest.clone(), key.clone()))
                    .or_insert_with(|| baseline.clone());
            }
        }
        for ((_, key), baseline) in groups {
            self.judge_group(&baseline, &key, None, &Cause::Manifests);
        }
    }

    /// Each host of `baseline`'s group for `key` but `except`, judged and its drift recorded.
    fn judge_group(&mut self, baseline: &Baseline, key: &Key, except: Option<&str>, cause: &Cause) {
        let verdicts: Vec<(String, Vec<DriftItem>)> = {
            let members = self.group_of(&baseline.manifest, key);
            let group = Group::new(baseline, key, &members);
            members
                .iter()
                .filter(|(host, _)| Some(*host) != except)
                .map(|(host, observed)| (host.to_string(), group.judge(host, observed)))
                .collect()
        };
        for (host, items) in verdicts {
            let judged = HashMap::from([(key.clone(), items)]);
            self.evaluate_judged(&host, std::slice::from_ref(key), judged, None, cause);
        }
    }
}

impl Fleet {
    /// The hosts of `manifest`'s group for `key`, each with what it observed of it, if it has.
    fn members_of(&self, manifest: &str, key: &Key) -> Vec<(&str, Option<&Observation>)> {
        self.hosts
            .values()
            .filter(|h| {
                h.desired
                    .baselines
                    .get(key)
                    .is_some_and(|b| b.manifest == manifest)
            })
            .map(|h| (h.info.host_id.as_str(), h.observed.get(key)))
            .collect()
    }

    /// The baselines `selector` names, by their manifest's name or by a glob matching one of
    /// their hosts; every one with hosts if `None`.
    fn baselines_named(&self, selector: Option<&str>) -> Result<Vec<Arc<Baseline>>, FleetError> {
        let mut all: BTreeMap<&str, (Arc<Baseline>, Vec<&str>)> = BTreeMap::new();
        for host in self.hosts.values() {
            for baseline in host.desired.baselines.values() {
                let (_, hosts) = all
                    .entry(baseline.manifest.as_str())
                    .or_insert_with(|| (baseline.clone(), Vec::new()));
                if hosts.last() != Some(&host.info.host_id.as_str()) {
                    hosts.push(&host.info.host_id);
                }
            }
        }
        let Some(selector) = selector else {
            return Ok(all.into_values().map(|(b, _)| b).collect());
        };
        let glob = Glob::new(selector).ok();
        let named: Vec<Arc<Baseline>> = all
            .into_iter()
            .filter(|(name, (_, hosts))| {
                *name == selector
                    || glob
                        .as_ref()
                        .is_some_and(|g| hosts.iter().any(|h| g.matches(h)))
            })
            .map(|(_, (b, _))| b)
            .collect();
        if named.is_empty() {
            return Err(FleetError::NoBaseline(format!(
                "no baseline is named {selector:?} or compares a host it matches"
            )));
        }
        Ok(named)
    }

    /// `plumb diverge`: the groups `selector` names, key by key (`key` alone if given).
    pub(super) fn diverge(
        &self,
        selector: Option<&str>,
        key: Option<&Key>,
    ) -> Result<Vec<Divergence>, FleetError> {
        let mut out = Vec::new();
        for baseline in self.baselines_named(selector)? {
            for k in baseline.keys().filter(|k| key.is_none_or(|want| want == k)) {
                let members = self.members_of(&baseline.manifest, &k);
                if !members.is_empty() {
                    out.push(Divergence::of(&baseline, &k, &members));
                }
            }
        }
        match key {
            Some(key) if out.is_empty() => Err(FleetError::NoBaseline(format!(
                "no baseline{} compares {key}",
                selector.map_or(String::new(), |s| format!(" of {s}"))
            ))),
            _ => Ok(out),
        }
    }

    /// `plumb baseline accept`: each group `selector` names as a manifest with values, what
    /// its majority (or reference) has, or with `from` what that host has.
    pub(super) fn accept(
        &self,
        selector: &str,
        from: Option<&str>,
    ) -> Result<Vec<Accepted>, FleetError> {
        if let Some(host) = from
            && !self.hosts.contains_key(host)
        {
            return Err(FleetError::UnknownHost(host.to_owned()));
        }
        let mut out = Vec::new();
        for baseline in self.baselines_named(Some(selector))? {
            let Some(manifest) = self
                .manifests
                .manifests()
                .iter()
                .find(|m| m.name == baseline.manifest)
            else {
                continue;
            };
            let in_group = |k: &Key| {
                from.is_none_or(|host| {
                    self.hosts[host]
                        .desired
                        .baselines
                        .get(k)
                        .is_some_and(|b| b.manifest == baseline.manifest)
                })
            };
            if !baseline.keys().any(|k| in_group(&k)) {
                continue;
            }
            let mut decided = Vec::new();
            for key in baseline.keys() {
                if !in_group(&key) {
                    // Declared with a value for that host: not its to say.
                    continue;
                }
                let members = self.members_of(&baseline.manifest, &key);
                let reported: Vec<(&str, &Observation)> = members
                    .iter()
                    .filter_map(|(h, o)| Some((*h, (*o)?)))
                    .collect();
                let group = Group::new(&baseline, &key, &reported);
                let host = from.map(|h| (h, self.hosts[h].observed.get(&key)));
                decided.push((key.clone(), accept::decide(&group, host)));
            }
            let whose = match from {
                Some(host) => format!("what {host} has"),
                None => match &baseline.reference {
                    Some(reference) => format!("what its reference {reference} has"),
                    None => "what most of its hosts have".to_owned(),
                },
            };
            let (yaml, undecided) = accept::manifest(manifest, &decided, &whose);
            out.push(Accepted {
                group: baseline.manifest.clone(),
                manifest: yaml,
                undecided,
            });
        }
        if out.is_empty() {
            return Err(FleetError::NoBaseline(format!(
                "{} is in no baseline {selector:?} names",
                from.unwrap_or("no host")
            )));
        }
        Ok(out)
    }
}
