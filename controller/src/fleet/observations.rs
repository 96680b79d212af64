//! What a host's agent last reported, by key. A controller holds one of these per host, and
//! each host of a fleet reports the same keys as its peers: so a slot per key of the host's
//! desired state, in the order of that state's key list (one list shared by every host the
//! state is for), rather than a hash table of its own key strings. Keys outside the list (the
//! paths a baseline's globs matched, keys read back from the store and no longer declared)
//! are kept beside it. At 100 paths a host, 8.8 KiB instead of about 19.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::drift::Observation;
use crate::key::Key;

// A slot costs what an observation does.
const _: () =
    assert!(std::mem::size_of::<Option<Observation>>() == std::mem::size_of::<Observation>());

#[derive(Debug)]
pub(super) struct Observations {
    /// The keys with a slot, sorted and without duplicates.
    keys: Arc<[Key]>,
    /// One per key of `keys`, or none at all until one of them is observed.
    slots: Box<[Option<Observation>]>,
    /// The observations of keys not in `keys`.
    others: BTreeMap<Key, Observation>,
}

impl Observations {
    /// None yet, with a slot for each of `keys` (sorted, without duplicates) once one is
    /// observed.
    pub(super) fn new(keys: Arc<[Key]>) -> Self {
        debug_assert!(keys.is_sorted_by(|a, b| a < b), "keys sorted, once each");
        Self {
            keys,
            slots: Box::default(),
            others: BTreeMap::new(),
        }
    }

    fn slot(&self, key: &Key) -> Option<usize> {
        self.keys.binary_search(key).ok()
    }

    pub(super) fn get(&self, key: &Key) -> Option<&Observation> {
        match self.slot(key) {
            Some(i) => self.slots.get(i)?.as_ref(),
            None => self.others.get(key),
        }
    }

    pub(super) fn contains_key(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    /// Keeps `observation` for `key`; returns the one it replaces.
    pub(super) fn insert(&mut self, key: Key, observation: Observation) -> Option<Observation> {
        match self.slot(&key) {
            Some(i) => {
                if self.slots.is_empty() {
                    self.slots = std::iter::repeat_with(|| None)
                        .take(self.keys.len())
                        .collect();
                }
                self.slots[i].replace(observation)
            }
            None => self.others.insert(key, observation),
        }
    }

    /// Every observation with its key: those with a slot in key order, then the others in
    /// key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &Observation)> {
        self.keys
            .iter()
            .zip(self.slots.iter())
            .filter_map(|(k, o)| Some((k, o.as_ref()?)))
            .chain(self.others.iter())
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.iter().map(|(k, _)| k)
    }

    /// Keeps only the observations of the keys `keep` says yes to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        for (k, o) in self.keys.iter().zip(self.slots.iter_mut()) {
            if o.is_some() && !keep(k) {
                *o = None;
            }
        }
        if self.slots.iter().all(Option::is_none) {
            self.slots = Box::default();
        }
        self.others.retain(|k, _| keep(k));
    }

    /// The same observations with a slot for each of `keys` instead (a host's new desired
    /// state): what had a slot and has none now is kept beside them, and the other way round.
    pub(super) fn rebase(&mut self, keys: Arc<[Key]>) {
        if Arc::ptr_eq(&keys, &self.keys) {
            return;
        }
        let old = std::mem::replace(self, Self::new(keys));
        self.extend(old.into_pairs());
    }

    fn into_pairs(self) -> impl Iterator<Item = (Key, Observation)> {
        let Self {
            keys,
            slots,
            others,
        } = self;
        let slotted: Vec<(Key, Observation)> = keys
            .iter()
            .zip(slots.into_vec())
            .filter_map(|(k, o)| Some((k.clone(), o?)))
            .collect();
        slotted.into_iter().chain(others)
    }
}

impl Extend<(Key, Observation)> for Observations {
    fn extend<I: IntoIterator<Item = (Key, Observation)>>(&mut self, iter: I) {
        for (k, o) in iter {
            self.insert(k, o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Arc<[Key]> {
        let mut k: Vec<Key> = names.iter().map(|n| Key::file(n)).collect();
        k.sort();
        k.into()
    }

    fn seen(n: u32) -> Observation {
        let mut o = Observation::absent();
        if let Observation::File(f) = &mut o {
            f.mode = n;
        }
        o
    }

    fn listed(o: &Observations) -> Vec<(String, Observation)> {
        o.iter().map(|(k, o)| (k.to_string(), o.clone())).collect()
    }

    #[test]
    fn observations_are_a_map_whether_their_key_has_a_slot_or_not() {
        let mut o = Observations::new(keys(&["/etc/b", "/etc/a", "/etc/c"]));
        assert_eq!(o.get(&Key::file("/etc/a")), None);
        assert!(
            o.slots.is_empty(),
            "no room taken before anything is observed"
        );
        assert_eq!(o.insert(Key::file("/etc/b"), seen(1)), None);
        assert_eq!(
            o.insert(Key::file("/etc/z"), seen(2)),
            None,
            "globbed: no slot"
        );
        assert_eq!(o.insert(Key::file("/etc/b"), seen(3)), Some(seen(1)));
        assert_eq!(o.insert(Key::package("nginx"), seen(4)), None);
        assert_eq!(o.get(&Key::file("/etc/b")), Some(&seen(3)));
        assert_eq!(o.get(&Key::file("/etc/z")), Some(&seen(2)));
        assert!(o.contains_key(&Key::package("nginx")));
        assert!(
            !o.contains_key(&Key::file("/etc/a")),
            "a slot not yet filled"
        );
        assert_eq!(
            listed(&o),
            [
                ("file:/etc/b".to_owned(), seen(3)),
                ("file:/etc/z".to_owned(), seen(2)),
                ("package:nginx".to_owned(), seen(4)),
            ]
        );

        o.retain(|k| *k != Key::file("/etc/z") && *k != Key::file("/etc/b"));
        assert_eq!(listed(&o), [("package:nginx".to_owned(), seen(4))]);
        assert!(
            o.slots.is_empty(),
            "room given back once every slot is empty"
        );
    }

    #[test]
    fn a_new_key_list_keeps_every_observation() {
        let mut o = Observations::new(keys(&["/etc/a", "/etc/b"]));
        o.extend([
            (Key::file("/etc/a"), seen(1)),
            (Key::file("/etc/b"), seen(2)),
            (Key::file("/etc/g"), seen(3)),
        ]);
        let before = listed(&o);
        // `/etc/a` loses its slot, `/etc/g` gains one.
        o.rebase(keys(&["/etc/b", "/etc/g", "/etc/n"]));
        assert_eq!(o.others.len(), 1, "{o:?}");
        assert!(o.others.contains_key(&Key::file("/etc/a")));
        let mut after = listed(&o);
        after.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(after, before);
        assert_eq!(o.get(&Key::file("/etc/n")), None);
    }
}
