//! Baselines on the query API: how a group's hosts differ (`plumb diverge`) and the manifests
//! that would declare their state (`plumb baseline accept`), both ways.

use plumb_proto::v1;

use crate::baseline::{Divergence, Tally, Variant, Variants};
use crate::fleet::Accepted;
use crate::key::Key;

pub(crate) fn divergence_to_proto(d: &Divergence) -> v1::Divergence {
    v1::Divergence {
        group: d.group.clone(),
        resource: d.key.to_string(),
        reference: d.reference.clone().unwrap_or_default(),
        declared_at: d.declared_at.clone(),
        aspects: d
            .aspects
            .iter()
            .map(|a| v1::AspectVariants {
                aspect: a.aspect.clone(),
                variants: a
                    .variants
                    .iter()
                    .map(|v| v1::Variant {
                        value: v.value.clone(),
                        hosts: v.hosts.clone(),
                    })
                    .collect(),
            })
            .collect(),
        standard: d
            .standard
            .iter()
            .map(|(aspect, tally)| {
                let mut s = v1::Standard {
                    aspect: aspect.clone(),
                    ..Default::default()
                };
                match tally {
                    Tally::Majority(value) => {
                        s.majority = true;
                        s.value = value.clone();
                    }
                    Tally::Alone => s.alone = true,
                    Tally::None(counts) => s.counts = counts.iter().map(|&n| n as u64).collect(),
                }
                s
            })
            .collect(),
        unreadable: d
            .unreadable
            .iter()
            .map(|(host, why)| v1::UnreadableHost {
                host: host.clone(),
                why: why.clone(),
            })
            .collect(),
        unreported: d.unreported.clone(),
    }
}

pub(crate) fn divergence_from_proto(d: v1::Divergence) -> Divergence {
    Divergence {
        group: d.group,
        // A resource that names no key (a newer controller's) reads as a path of that name.
        key: Key::parse_resource(&d.resource).unwrap_or_else(|| Key::file(&d.resource)),
        reference: Some(d.reference).filter(|r| !r.is_empty()),
        declared_at: d.declared_at,
        aspects: d
            .aspects
            .into_iter()
            .map(|a| Variants {
                aspect: a.aspect,
                variants: a
                    .variants
                    .into_iter()
                    .map(|v| Variant {
                        value: v.value,
                        hosts: v.hosts,
                    })
                    .collect(),
            })
            .collect(),
        standard: d
            .standard
            .into_iter()
            .map(|s| {
                let tally = if s.majority {
                    Tally::Majority(s.value)
                } else if s.alone {
                    Tally::Alone
                } else {
                    Tally::None(s.counts.iter().map(|&n| n as usize).collect())
                };
                (s.aspect, tally)
            })
            .collect(),
        unreadable: d.unreadable.into_iter().map(|u| (u.host, u.why)).collect(),
        unreported: d.unreported,
    }
}

pub(crate) fn accepted_to_proto(a: &Accepted) -> v1::AcceptedBaseline {
    v1::AcceptedBaseline {
        group: a.group.clone(),
        manifest: a.manifest.clone(),
        undecided: a.undecided.clone(),
    }
}

pub(crate) fn accepted_from_proto(a: v1::AcceptedBaseline) -> Accepted {
    Accepted {
        group: a.group,
        manifest: a.manifest,
        undecided: a.undecided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_divergence_and_an_accepted_group_cross_the_query_api_unchanged() {
        for standard in [
            vec![("type".to_owned(), Tally::Majority("file".into()))],
            vec![("type".to_owned(), Tally::Alone)],
            vec![
                ("type".to_owned(), Tally::Majority("file".into())),
                ("sha256".to_owned(), Tally::None(vec![2, 2])),
            ],
        ] {
            let d = Divergence {
                group: "web".into(),
                key: Key::package("nginx"),
                reference: Some("web-1".into()),
                declared_at: "web.yaml:3".into(),
                aspects: vec![Variants {
                    aspect: "version".into(),
                    variants: vec![Variant {
                        value: "1.22 (amd64)".into(),
                        hosts: vec!["web-1".into(), "web-2".into()],
                    }],
                }],
                standard,
                unreadable: vec![("web-3".into(), "unreadable: gone".into())],
                unreported: vec!["web-4".into()],
            };
            assert_eq!(divergence_from_proto(divergence_to_proto(&d)), d);
        }
        let a = Accepted {
            group: "web".into(),
            manifest: "name: \"web\"\n".into(),
            undecided: vec!["file:/etc/x: no majority".into()],
        };
        assert_eq!(accepted_from_proto(accepted_to_proto(&a)), a);
    }
}
