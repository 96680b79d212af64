//! What a host's agent last reported, by key. A controller holds one of these per host, and
//! each host of a fleet reports the same keys as its peers: so a slot per key of the host's
//! desired state, in the order of that state's key list (one list shared by every host the
//! state is for), rather than a hash table of its own key strings. Keys outside the list (the
//! paths a baseline's globs matched, keys read back from the store and no longer declared)
//! are kept beside it. At 100 paths a host, 8.8 KiB instead of about 19.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
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
    /// Which observations differ from what the store holds (written at the key's next
    /// evaluation, or ahead of a large snapshot's last part): a bit per slot, none at all
    /// while every one is stored...
    unstored: Box<[u64]>,
    /// ...and the keys outside `keys` that do.
    unstored_others: BTreeSet<Key>,
    /// The slot last found: a walk in key order (a snapshot's parts, an evaluation) finds
    /// its next key there or just after, without a search.
    last: Cell<usize>,
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
            unstored: Box::default(),
            unstored_others: BTreeSet::new(),
            last: Cell::new(0),
        }
    }

    fn slot(&self, key: &Key) -> Option<usize> {
        let last = self.last.get();
        if self.keys.get(last) == Some(key) {
            return Some(last);
        }
        let found = if self.keys.get(last + 1) == Some(key) {
            Some(last + 1)
        } else {
            self.keys.binary_search(key).ok()
        };
        if let Some(i) = found {
            self.last.set(i);
        }
        found
    }

    /// Whether slot `i` is marked unstored.
    fn slot_unstored(&self, i: usize) -> bool {
        self.unstored
            .get(i / 64)
            .is_some_and(|word| word & (1 << (i % 64)) != 0)
    }

    /// Whether `key` has a slot: one of the keys this was made for.
    pub(super) fn has_slot(&self, key: &Key) -> bool {
        self.slot(key).is_some()
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

    /// Whether these are the slots of `keys`.
    pub(super) fn slotted_for(&self, keys: &Arc<[Key]>) -> bool {
        Arc::ptr_eq(&self.keys, keys)
    }

    /// Notes that the observation of `key` differs from what the store holds.
    pub(super) fn mark_unstored(&mut self, key: &Key) {
        match self.slot(key) {
            Some(i) => {
                if self.unstored.is_empty() {
                    self.unstored = vec![0; self.keys.len().div_ceil(64)].into();
                }
                self.unstored[i / 64] |= 1 << (i % 64);
            }
            None => {
                self.unstored_others.insert(key.clone());
            }
        }
    }

    /// Whether the observation of `key` differs from what the store holds; from now on it is
    /// taken to be stored.
    pub(super) fn take_unstored(&mut self, key: &Key) -> bool {
        match self.slot(key) {
            Some(i) => self.unstored.get_mut(i / 64).is_some_and(|word| {
                let bit = 1 << (i % 64);
                let was = *word & bit != 0;
                *word &= !bit;
                was
            }),
            None => self.unstored_others.remove(key),
        }
    }

    /// How many observations differ from what the store holds.
    pub(super) fn unstored_count(&self) -> usize {
        let slotted: u32 = self.unstored.iter().map(|w| w.count_ones()).sum();
        slotted as usize + self.unstored_others.len()
    }

    /// Each observation that differs from what the store holds, with its key (none: the key
    /// is no longer observed); from now on all are taken to be stored.
    pub(super) fn take_every_unstored(&mut self) -> Vec<(Key, Option<Observation>)> {
        let mut taken = Vec::with_capacity(self.unstored_count());
        for (w, word) in self.unstored.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let observation = self.slots.get(i).cloned().flatten();
                taken.push((self.keys[i].clone(), observation));
            }
        }
        for key in std::mem::take(&mut self.unstored_others) {
            let observation = self.others.get(&key).cloned();
            taken.push((key, observation));
        }
        self.unstored = Box::default();
        taken
    }

    /// Every observation is taken to be stored.
    pub(super) fn clear_unstored(&mut self) {
        self.unstored = Box::default();
        self.unstored_others.clear();
    }

    /// Gives back the room of the marks once every observation is stored (a snapshot marks
    /// every path; a host would otherwise keep that room for as long as it is known).
    pub(super) fn release_stored(&mut self) {
        if self.unstored.iter().all(|w| *w == 0) {
            self.unstored = Box::default();
        }
    }

    /// Keeps, of the observations of keys without a slot, only those `keep` says yes to.
    pub(super) fn retain_others(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        self.others.retain(|k, _| keep(k));
        let others = &self.others;
        self.unstored_others.retain(|k| others.contains_key(k));
    }

    /// The same observations, and what of them is unstored, with a slot for each of `keys`
    /// instead (a host's new desired state): what had a slot and has none now is kept beside
    /// them, and the other way round.
    pub(super) fn rebase(&mut self, keys: Arc<[Key]>) {
        if Arc::ptr_eq(&keys, &self.keys) {
            return;
        }
        let old = std::mem::replace(self, Self::new(keys));
        for (key, observation, unstored) in old.into_parts() {
            if unstored {
                self.mark_unstored(&key);
            }
            self.insert(key, observation);
        }
    }

    /// Each observation with its key and whether it is unstored.
    fn into_parts(mut self) -> Vec<(Key, Observation, bool)> {
        let slots = std::mem::take(&mut self.slots).into_vec();
        let mut parts: Vec<(Key, Observation, bool)> = slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, o)| Some((self.keys[i].clone(), o?, self.slot_unstored(i))))
            .collect();
        for (key, observation) in std::mem::take(&mut self.others) {
            let unstored = self.unstored_others.contains(&key);
            parts.push((key, observation, unstored));
        }
        parts
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

        o.retain_others(|k| *k != Key::file("/etc/z"));
        assert_eq!(
            listed(&o),
            [
                ("file:/etc/b".to_owned(), seen(3)),
                ("package:nginx".to_owned(), seen(4)),
            ]
        );
    }

    #[test]
    fn a_key_is_found_in_its_slot_whatever_order_it_is_asked_in() {
        let names: Vec<String> = (0..300).map(|i| format!("/etc/f{i:03}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut o = Observations::new(keys(&names));
        for (i, n) in names.iter().enumerate() {
            o.insert(Key::file(n), seen(i as u32));
        }
        let forwards = 0..names.len();
        let backwards = (0..names.len()).rev();
        let strided = (0..names.len()).map(|i| i * 37 % names.len());
        let twice = (0..names.len()).flat_map(|i| [i, i]);
        for i in forwards.chain(backwards).chain(strided).chain(twice) {
            assert_eq!(
                o.get(&Key::file(names[i])),
                Some(&seen(i as u32)),
                "{}",
                names[i]
            );
            assert!(o.has_slot(&Key::file(names[i])));
            assert_eq!(o.get(&Key::file(&format!("{}x", names[i]))), None);
            assert!(!o.has_slot(&Key::file(&format!("{}x", names[i]))));
        }
        assert!(!o.has_slot(&Key::file("/etc/z")));
    }

    #[test]
    fn what_is_unstored_is_marked_until_taken_and_follows_a_new_key_list() {
        let mut o = Observations::new(keys(&["/etc/a", "/etc/b", "/etc/c"]));
        o.extend([
            (Key::file("/etc/a"), seen(1)),
            (Key::file("/etc/b"), seen(2)),
            (Key::file("/etc/g"), seen(3)),
            (Key::file("/etc/h"), seen(4)),
        ]);
        assert!(!o.take_unstored(&Key::file("/etc/a")), "nothing marked yet");
        for k in ["/etc/a", "/etc/b", "/etc/g", "/etc/h"] {
            o.mark_unstored(&Key::file(k));
        }
        assert!(o.take_unstored(&Key::file("/etc/a")));
        assert!(!o.take_unstored(&Key::file("/etc/a")), "taken once");

        // `/etc/b` loses its slot, `/etc/g` gains one: both stay marked.
        o.rebase(keys(&["/etc/c", "/etc/g"]));
        assert!(o.take_unstored(&Key::file("/etc/b")));
        assert!(o.take_unstored(&Key::file("/etc/g")));
        assert!(!o.take_unstored(&Key::file("/etc/c")));

        // A key forgotten takes its mark with it.
        o.retain_others(|k| *k != Key::file("/etc/h"));
        assert!(!o.take_unstored(&Key::file("/etc/h")));

        o.mark_unstored(&Key::file("/etc/c"));
        o.mark_unstored(&Key::file("/etc/b"));
        assert_eq!(o.unstored_count(), 2);
        o.insert(Key::file("/etc/c"), seen(5));
        let taken = o.take_every_unstored();
        assert_eq!(
            taken,
            [
                (Key::file("/etc/c"), Some(seen(5))),
                (Key::file("/etc/b"), Some(seen(2))),
            ],
            "slotted first, then the others, each with what is observed now"
        );
        assert_eq!(o.unstored_count(), 0, "all taken");
        assert!(!o.take_unstored(&Key::file("/etc/c")));
        o.mark_unstored(&Key::file("/etc/c"));
        o.release_stored();
        assert!(!o.unstored.is_empty(), "a mark left keeps its room");
        o.clear_unstored();
        assert!(!o.take_unstored(&Key::file("/etc/c")));
        o.mark_unstored(&Key::file("/etc/g"));
        assert!(o.take_unstored(&Key::file("/etc/g")));
        o.release_stored();
        assert!(o.unstored.is_empty(), "no mark left: room given back");
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
