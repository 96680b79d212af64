//! Baselines on the fleet: each key a baseline compares is judged among the hosts of its
//! group (`baseline::Group`), so one host's change can open, change or resolve its peers'
//! drift. Each group's observations are counted as they move (`counts`, `recount`), and a
//! host is judged against those counts without reading its peers; when a move changes what
//! the group stands for (its majority, a tie's counts, the reference's state), every other
//! host of it is judged again (`Cause::Peers`), those whose verdict moved recorded. A new
//! manifest set counts and judges every group once every host has its new desired state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::agents::Cause;
use super::{Fleet, FleetError};
use crate::baseline::accept;
use crate::baseline::{Counts, Divergence, Group};
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
        self.members_of(manifest, key)
            .into_iter()
            .filter_map(|(host, observed)| Some((host, observed?)))
            .collect()
    }

    /// The counts of `manifest`'s group on `key` (empty while nothing is counted).
    fn counts_of(&self, manifest: &str, key: &Key) -> &Counts {
        static NONE: std::sync::LazyLock<Counts> = std::sync::LazyLock::new(Counts::default);
        self.counts
            .get(manifest)
            .and_then(|c| c.get(key))
            .unwrap_or(&NONE)
    }

    /// Every group's counts made again from the observations held: the groups themselves
    /// may have changed (a new manifest set, a host selected otherwise).
    pub(super) fn count_all(&mut self) {
        self.counts.clear();
        for host in self.hosts.values() {
            for (key, observed) in host.observed.iter() {
                if let Some(baseline) = host.desired.compared(key) {
                    counted(&mut self.counts, &baseline.manifest, key).add(
                        baseline,
                        &host.info.host_id,
                        observed,
                    );
                }
            }
        }
    }

    /// `host_id`'s observations of compared keys moved (each with what it observed before):
    /// its groups' counts follow, and a group whose standard moved is to be judged again. A
    /// glob's match the group has never had is absent from the hosts that have reported
    /// all their globs' matches without it.
    pub(super) fn recount(
        &mut self,
        host_id: &str,
        moved: Vec<(Arc<Baseline>, Key, Option<Observation>)>,
    ) {
        for (baseline, key, old) in moved {
            let fresh = !self
                .counts
                .get(&baseline.manifest)
                .is_some_and(|c| c.contains_key(&key));
            if fresh && !baseline.keys().any(|k| k == key) {
                self.absent_elsewhere(host_id, &baseline, &key);
            }
            let Some(new) = self.hosts.get(host_id).and_then(|h| h.observed.get(&key)) else {
                continue;
            };
            let counts = counted(&mut self.counts, &baseline.manifest, &key);
            let before = counts.standard(&baseline);
            if let Some(old) = &old {
                counts.remove(&baseline, host_id, old);
            }
            counts.add(&baseline, host_id, new);
            if counts.standard(&baseline) != before {
                self.regroup
                    .insert((baseline.manifest.clone(), key), baseline);
            }
        }
    }

    /// `host_id` has reported all its globs' matches (its snapshot is whole): a match it
    /// held from before and did not report now is gone, and a path its groups' globs matched
    /// on other hosts and not here is absent here (both then among its keys to evaluate).
    pub(super) fn absent_here(&mut self, host_id: &str) {
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        if host.desired.baseline_globs.is_empty() {
            return;
        }
        let reported = std::mem::take(&mut host.globbed);
        let mut gone: Vec<(Arc<Baseline>, Key)> = Vec::new();
        for (key, observed) in host.observed.iter() {
            let Some(b) = host.desired.compared(key) else {
                continue;
            };
            let globbed = !host.desired.baselines.contains_key(key);
            if globbed && !reported.contains(key) && !observed.is_absent() {
                gone.push((b.clone(), key.clone()));
            }
        }
        for (_, b) in &host.desired.baseline_globs {
            let Some(known) = self.counts.get(&b.manifest) else {
                continue;
            };
            for key in known.keys() {
                if !host.observed.contains_key(key)
                    && host
                        .desired
                        .compared(key)
                        .is_some_and(|c| c.manifest == b.manifest)
                {
                    gone.push((b.clone(), key.clone()));
                }
            }
        }
        let mut moved = Vec::with_capacity(gone.len());
        for (b, key) in gone {
            let old = host.observed.insert(key.clone(), Observation::absent());
            host.observed.mark_unstored(&key);
            moved.push((b, key, old));
        }
        self.recount(host_id, moved);
    }

    /// `key`, a glob's match, was first reported in `baseline`'s group by `reporter`: each
    /// other host of the group streaming now whose snapshot is whole lacks it, and is counted
    /// absent. An offline host is not: what it has now is not known (it is unreported until
    /// its next snapshot).
    fn absent_elsewhere(&mut self, reporter: &str, baseline: &Baseline, key: &Key) {
        let counts = counted(&mut self.counts, &baseline.manifest, key);
        for (id, host) in self.hosts.iter_mut() {
            let member = host
                .desired
                .compared(key)
                .is_some_and(|b| b.manifest == baseline.manifest);
            let whole = host.conn.is_some() && host.evaluated;
            if id != reporter && member && whole && !host.observed.contains_key(key) {
                let observed = Observation::absent();
                counts.add(baseline, id, &observed);
                host.observed.insert(key.clone(), observed);
                host.observed.mark_unstored(key);
            }
        }
    }

    /// The drift of each of `keys` a baseline compares for `host_id`, against its group as
    /// it stands.
    pub(super) fn judge_among_peers<'k>(
        &self,
        host_id: &str,
        keys: impl Iterator<Item = &'k Key>,
    ) -> HashMap<Key, Vec<DriftItem>> {
        let Some(host) = self
            .hosts
            .get(host_id)
            .filter(|h| h.desired.has_baselines())
        else {
            return HashMap::new(); // most hosts: nothing compared with peers
        };
        keys.filter_map(|key| {
            let baseline = host.desired.compared(key)?;
            let own = host.observed.get(key)?;
            let counts = self.counts_of(&baseline.manifest, key);
            let judged = Group::of(baseline, key, counts).judge(host_id, own);
            Some((key.clone(), judged))
        })
        .collect()
    }

    /// The groups whose standard moved since they were last judged: every host of them
    /// judged again (those whose verdict did not move are left as they are).
    pub(super) fn judge_moved_groups(&mut self) {
        while let Some(((_, key), baseline)) = self.regroup.pop_first() {
            self.judge_group(&baseline, &key, &Cause::Peers);
        }
    }

    /// Every group counted and judged again: a new manifest set is in force
    /// (`Cause::Manifests`), or a host came back selected otherwise (`Cause::Peers`).
    pub(super) fn judge_every_group(&mut self, cause: &Cause) {
        self.count_all();
        self.regroup.clear();
        let mut groups: BTreeMap<(String, Key), Arc<Baseline>> = BTreeMap::new();
        // A key no host has observed has no one to judge.
        for host in self.hosts.values() {
            for key in host.observed.keys() {
                if let Some(baseline) = host.desired.compared(key) {
                    groups
                        .entry((baseline.manifest.clone(), key.clone()))
                        .or_insert_with(|| baseline.clone());
                }
            }
        }
        for ((_, key), baseline) in groups {
            self.judge_group(&baseline, &key, cause);
        }
    }

    /// Each host of `baseline`'s group for `key` judged and its drift recorded where it
    /// moved. A host streaming its snapshot for a new plan is left to it.
    fn judge_group(&mut self, baseline: &Baseline, key: &Key, cause: &Cause) {
        let group = Group::of(baseline, key, self.counts_of(&baseline.manifest, key));
        let verdicts: Vec<(String, Vec<DriftItem>)> = self
            .group_of(&baseline.manifest, key)
            .iter()
            .filter_map(|(host, observed)| {
                let h = &self.hosts[*host];
                if h.conn.is_some() && !h.evaluated {
                    return None;
                }
                let judged = group.judge(host, observed);
                let open = h.drift.get(key).map_or(&[][..], Vec::as_slice);
                (!as_open(&judged, open)).then(|| (host.to_string(), judged))
            })
            .collect();
        for (host, items) in verdicts {
            let judged = HashMap::from([(key.clone(), items)]);
            self.evaluate_judged(&host, [key], judged, None, cause);
        }
    }

    /// The hosts of `manifest`'s group for `key`, each with what it observed of it, if it has.
    fn members_of(&self, manifest: &str, key: &Key) -> Vec<(&str, Option<&Observation>)> {
        self.hosts
            .values()
            .filter(|h| {
                h.desired
                    .compared(key)
                    .is_some_and(|b| b.manifest == manifest)
            })
            .map(|h| (h.info.host_id.as_str(), h.observed.get(key)))
            .collect()
    }

    /// What `baseline` compares: its keys by name, and what its globs matched on its hosts.
    fn keys_of(&self, baseline: &Baseline) -> Vec<Key> {
        // A glob's match gone from every host is no longer worth a line.
        let found = self
            .counts
            .get(&baseline.manifest)
            .into_iter()
            .flat_map(|c| c.iter().filter(|(_, n)| !n.only_absent()).map(|(k, _)| k));
        let all: std::collections::BTreeSet<Key> = baseline.keys().chain(found.cloned()).collect();
        all.into_iter().collect()
    }

    /// The baselines `selector` names, by their manifest's name or by a glob matching one of
    /// their hosts; every one with hosts if `None`.
    fn baselines_named(&self, selector: Option<&str>) -> Result<Vec<Arc<Baseline>>, FleetError> {
        let mut all: BTreeMap<&str, (Arc<Baseline>, Vec<&str>)> = BTreeMap::new();
        for host in self.hosts.values() {
            let globbed = host.desired.baseline_globs.iter().map(|(_, b)| b);
            for baseline in host.desired.baselines.values().chain(globbed) {
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
            for k in self
                .keys_of(&baseline)
                .into_iter()
                .filter(|k| key.is_none_or(|want| want == k))
            {
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
                        .compared(k)
                        .is_some_and(|b| b.manifest == baseline.manifest)
                })
            };
            let keys = self.keys_of(&baseline);
            if !keys.iter().any(&in_group) {
                continue;
            }
            let mut decided = Vec::new();
            for key in keys {
                if !in_group(&key) {
                    // Declared with a value for that host: not its to say.
                    continue;
                }
                // Declared with values for a host this manifest selects: the accepted
                // manifest would declare it a second time, differently, for that host.
                if let Some(pinned) = self.hosts.values().find(|h| {
                    h.desired.manifests.contains(&baseline.manifest)
                        && h.desired.compared(&key).is_none()
                }) {
                    let why = format!(
                        "declared with values for {} by another manifest; left to that declaration",
                        pinned.info.host_id
                    );
                    decided.push((key.clone(), accept::Decided::Undecided(why)));
                    continue;
                }
                let group = Group::of(&baseline, &key, self.counts_of(&baseline.manifest, &key));
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

/// Whether `judged` is what is open already (so judging again would change nothing).
fn as_open(judged: &[DriftItem], open: &[crate::model::DriftRecord]) -> bool {
    judged.len() == open.len()
        && judged.iter().all(|j| {
            open.iter().any(|o| {
                (&o.resource, &o.attribute, &o.expected, &o.actual)
                    == (&j.resource, &j.attribute, &j.expected, &j.actual)
            })
        })
}

/// `manifest`'s counts on `key`, made if there are none yet.
fn counted<'a>(
    counts: &'a mut HashMap<String, HashMap<Key, Counts>>,
    manifest: &str,
    key: &Key,
) -> &'a mut Counts {
    counts
        .entry(manifest.to_owned())
        .or_default()
        .entry(key.clone())
        .or_default()
}
