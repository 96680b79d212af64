//! `plumb diverge`: which hosts of a group hold which variant of each compared aspect.

use super::{Group, Tally, aspects};
use crate::drift::Observation;
use crate::key::Key;
use crate::manifest::Baseline;

/// How one group's hosts stand on one compared key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The manifest whose baseline it is.
    pub group: String,
    pub key: Key,
    /// The reference host, if the group is compared with one.
    pub reference: Option<String>,
    pub declared_at: String,
    /// Each aspect (type first) with its variants, most hosts first.
    pub aspects: Vec<Variants>,
    /// What the group is compared with, aspect by aspect, as judging has it (`Group`).
    pub standard: Vec<(String, Tally)>,
    /// Hosts whose observation cannot be read, and why: they do not vote.
    pub unreadable: Vec<(String, String)>,
    /// Hosts of the group that have not reported the key yet.
    pub unreported: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variants {
    pub aspect: String,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub value: String,
    /// In order of their ids.
    pub hosts: Vec<String>,
}

impl Divergence {
    /// The group's hosts on `key`: `members` every host of the group, with what it observed
    /// of the key if it has.
    pub fn of(baseline: &Baseline, key: &Key, members: &[(&str, Option<&Observation>)]) -> Self {
        let reported: Vec<(&str, &Observation)> = members
            .iter()
            .filter_map(|(h, o)| Some((*h, (*o)?)))
            .collect();
        let standard = Group::new(baseline, key, &reported)
            .tallies()
            .into_iter()
            .map(|(a, t)| (a.to_owned(), t))
            .collect();
        let mut aspects_seen: Vec<Variants> = Vec::new();
        let mut unreadable = Vec::new();
        let mut sorted = reported.clone();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (host, observed) in sorted {
            match aspects(observed) {
                Err(why) => unreadable.push((host.to_owned(), why)),
                Ok(list) => {
                    for (aspect, value) in list {
                        let at = match aspects_seen.iter().position(|v| v.aspect == aspect) {
                            Some(i) => i,
                            None => {
                                aspects_seen.push(Variants {
                                    aspect: aspect.to_owned(),
                                    variants: Vec::new(),
                                });
                                aspects_seen.len() - 1
                            }
                        };
                        let variants = &mut aspects_seen[at].variants;
                        match variants.iter_mut().find(|v| v.value == value) {
                            Some(v) => v.hosts.push(host.to_owned()),
                            None => variants.push(Variant {
                                value,
                                hosts: vec![host.to_owned()],
                            }),
                        }
                    }
                }
            }
        }
        for v in &mut aspects_seen {
            v.variants.sort_by(|a, b| {
                b.hosts
                    .len()
                    .cmp(&a.hosts.len())
                    .then(a.value.cmp(&b.value))
            });
        }
        let mut unreported: Vec<String> = members
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|(h, _)| (*h).to_owned())
            .collect();
        unreported.sort();
        Self {
            group: baseline.manifest.clone(),
            key: key.clone(),
            reference: baseline.reference.clone(),
            declared_at: baseline.declared_at.to_string(),
            aspects: aspects_seen,
            standard,
            unreadable,
            unreported,
        }
    }

    /// Every host of the group named in it.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.aspects
            .iter()
            .flat_map(|a| a.variants.iter().flat_map(|v| v.hosts.iter()))
            .chain(self.unreadable.iter().map(|(h, _)| h))
            .chain(&self.unreported)
            .map(String::as_str)
    }

    /// Whether every host that reported it is alike.
    pub fn alike(&self) -> bool {
        self.unreadable.is_empty() && self.aspects.iter().all(|a| a.variants.len() <= 1)
    }
}
