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

use super::Fleet;
use super::agents::Cause;
use crate::baseline::Group;
use crate::drift::{DriftItem, Observation};
use crate::key::Key;
use crate::manifest::Baseline;

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
