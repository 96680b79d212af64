use super::*;
use crate::digest::Digest;
use crate::drift::{Installed, Observed, ObservedPackage};
use crate::manifest::Location;
use crate::version::Manager;

fn baseline(reference: Option<&str>) -> Baseline {
    Baseline {
        manifest: "web".into(),
        reference: reference.map(str::to_owned),
        files: vec!["/etc/app.conf".into()],
        packages: vec!["nginx".into()],
        ignore: vec![],
        declared_at: Location {
            file: "web.yaml".into(),
            line: 3,
        },
    }
}

fn file(content: &str) -> Observation {
    Observation::File(Observed {
        kind: Kind::File,
        resolved_kind: Kind::File,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        owner: Some("root".into()),
        group: Some("root".into()),
        sha256: Some(Digest::of(content.as_bytes())),
        more: None,
    })
}

fn with(content: &str, f: impl FnOnce(&mut Observed)) -> Observation {
    let Observation::File(mut o) = file(content) else {
        unreachable!()
    };
    f(&mut o);
    Observation::File(o)
}

fn package(versions: &[&str]) -> Observation {
    Observation::Package(Box::new(ObservedPackage {
        instances: versions
            .iter()
            .map(|v| Installed {
                manager: Manager::Dpkg,
                arch: "amd64".into(),
                version: (*v).into(),
                state: "installed".into(),
            })
            .collect(),
        error: None,
        problems: vec![],
    }))
}

/// Each host of `hosts` judged in its group: (host, attribute, expected, actual).
fn judged(
    reference: Option<&str>,
    key: &Key,
    hosts: &[(&str, Observation)],
) -> Vec<(String, String, String, String)> {
    let b = baseline(reference);
    let members: Vec<(&str, &Observation)> = hosts.iter().map(|(h, o)| (*h, o)).collect();
    let group = Group::new(&b, key, &members);
    hosts
        .iter()
        .flat_map(|(h, o)| {
            group.judge(h, o).into_iter().map(|d| {
                assert_eq!(d.resource, key.to_string());
                assert_eq!(d.declared_at, "web.yaml:3");
                (h.to_string(), d.attribute, d.expected, d.actual)
            })
        })
        .collect()
}

fn row(
    host: &str,
    attribute: &str,
    expected: &str,
    actual: &str,
) -> (String, String, String, String) {
    (
        host.into(),
        attribute.into(),
        expected.into(),
        actual.into(),
    )
}

fn hex(content: &str) -> String {
    Digest::of(content.as_bytes()).to_hex()
}

#[test]
fn the_odd_one_out_of_ten_differs_from_the_majority() {
    let key = Key::file("/etc/app.conf");
    let mut hosts: Vec<(String, Observation)> = (1..=10)
        .map(|i| (format!("web-{i}"), file("listen 80\n")))
        .collect();
    hosts[6].1 = file("listen 8080\n");
    hosts[2].1 = with("listen 80\n", |o| o.mode = 0o100600);
    let hosts: Vec<(&str, Observation)> =
        hosts.iter().map(|(h, o)| (h.as_str(), o.clone())).collect();
    assert_eq!(
        judged(None, &key, &hosts),
        [
            row("web-3", "baseline.mode", "0644 (as most of web)", "0600"),
            row(
                "web-7",
                "baseline.sha256",
                &format!("{} (as most of web)", hex("listen 80\n")),
                &hex("listen 8080\n")
            ),
        ]
    );
}

#[test]
fn a_tie_is_said_and_never_guessed() {
    let key = Key::file("/etc/app.conf");
    let hosts = [
        ("a", file("x")),
        ("b", file("x")),
        ("c", file("y")),
        ("d", file("y")),
    ];
    let said = judged(None, &key, &hosts);
    assert_eq!(said.len(), 4, "every host of a tie is told: {said:?}");
    for (host, attribute, expected, _) in &said {
        assert_eq!(attribute, "baseline.sha256", "{host}");
        assert_eq!(
            expected,
            "a majority of web, and there is none: 2 variants held by 2, 2 hosts"
        );
    }
    // Three variants, none above half: no majority either, though one is the largest.
    let hosts = [
        ("a", file("x")),
        ("b", file("x")),
        ("c", file("y")),
        ("d", file("z")),
    ];
    assert_eq!(judged(None, &key, &hosts).len(), 4);
}

#[test]
fn one_host_alone_has_nothing_to_be_compared_with() {
    let key = Key::file("/etc/app.conf");
    assert_eq!(
        judged(None, &key, &[("a", file("x"))]),
        [row(
            "a",
            "baseline.type",
            "a majority of web, and there is none: no other host has reported it",
            "file"
        )]
    );
    // Two alike are a majority of two.
    assert!(judged(None, &key, &[("a", file("x")), ("b", file("x"))]).is_empty());
}

#[test]
fn a_missing_file_differs_by_its_type_alone() {
    let key = Key::file("/etc/app.conf");
    let absent = with("", |o| {
        o.kind = Kind::Absent;
        o.resolved_kind = Kind::Absent;
        o.sha256 = None;
    });
    let hosts = [("a", file("x")), ("b", file("x")), ("c", absent.clone())];
    assert_eq!(
        judged(None, &key, &hosts),
        [row("c", "baseline.type", "file (as most of web)", "absent")]
    );
    // Absent on most hosts: the one that has it is the odd one out.
    let hosts = [("a", absent.clone()), ("b", absent), ("c", file("x"))];
    assert_eq!(
        judged(None, &key, &hosts),
        [row("c", "baseline.type", "absent (as most of web)", "file")]
    );
}

#[test]
fn an_unreadable_host_says_so_and_does_not_vote() {
    let key = Key::file("/etc/app.conf");
    let unreadable = with("", |o| {
        o.kind = Kind::Unreadable;
        o.sha256 = None;
        o.more_mut().error = Some("permission denied".into());
    });
    let hosts = [
        ("a", file("x")),
        ("b", file("y")),
        ("c", file("y")),
        ("d", unreadable.clone()),
        ("e", unreadable),
    ];
    assert_eq!(
        judged(None, &key, &hosts),
        [
            row(
                "a",
                "baseline.sha256",
                &format!("{} (as most of web)", hex("y")),
                &hex("x")
            ),
            row(
                "d",
                "baseline.readable",
                "readable",
                "unreadable: permission denied"
            ),
            row(
                "e",
                "baseline.readable",
                "readable",
                "unreadable: permission denied"
            ),
        ]
    );
}

#[test]
fn against_a_reference_host_its_state_is_the_one() {
    let key = Key::file("/etc/app.conf");
    let hosts = [("a", file("x")), ("b", file("x")), ("ref", file("y"))];
    assert_eq!(
        judged(Some("ref"), &key, &hosts),
        [
            row(
                "a",
                "baseline.sha256",
                &format!("{} (as ref)", hex("y")),
                &hex("x")
            ),
            row(
                "b",
                "baseline.sha256",
                &format!("{} (as ref)", hex("y")),
                &hex("x")
            ),
        ],
        "the majority does not count"
    );
    // A reference that has not reported: every other host is told, never judged in sync.
    assert_eq!(
        judged(Some("ref"), &key, &hosts[..2]),
        [
            row(
                "a",
                "baseline.reference",
                "as ref",
                "ref has not reported it (or cannot read it)"
            ),
            row(
                "b",
                "baseline.reference",
                "as ref",
                "ref has not reported it (or cannot read it)"
            ),
        ]
    );
}

#[test]
fn packages_are_compared_by_their_installed_versions() {
    let key = Key::package("nginx");
    let hosts = [
        ("a", package(&["1.22.1-9"])),
        ("b", package(&["1.22.1-9"])),
        ("c", package(&["1.18.0-6"])),
        ("d", package(&[])),
        ("e", package(&["1.22.1-9"])),
    ];
    assert_eq!(
        judged(None, &key, &hosts),
        [
            row(
                "c",
                "baseline.version",
                "1.22.1-9 (amd64) (as most of web)",
                "1.18.0-6 (amd64)"
            ),
            row(
                "d",
                "baseline.version",
                "1.22.1-9 (amd64) (as most of web)",
                "absent"
            ),
        ]
    );
    let broken = Observation::Package(Box::new(ObservedPackage {
        instances: vec![],
        error: Some("dpkg status is unreadable".into()),
        problems: vec![],
    }));
    assert_eq!(
        aspects(&broken),
        Err("unreadable: dpkg status is unreadable".into())
    );
}

#[test]
fn divergence_names_the_hosts_of_each_variant() {
    let key = Key::file("/etc/app.conf");
    let b = baseline(None);
    let (x, y) = (file("x"), with("y", |o| o.mode = 0o100600));
    let unreadable = with("", |o| {
        o.kind = Kind::Unreadable;
        o.more_mut().error = Some("permission denied".into());
    });
    let members = [
        ("c", Some(&x)),
        ("a", Some(&x)),
        ("b", Some(&y)),
        ("d", Some(&unreadable)),
        ("e", None),
    ];
    let d = Divergence::of(&b, &key, &members);
    type Shown = (String, Vec<(String, Vec<String>)>);
    let shown: Vec<Shown> = d
        .aspects
        .iter()
        .map(|a| {
            (
                a.aspect.clone(),
                a.variants
                    .iter()
                    .map(|v| (v.value.clone(), v.hosts.clone()))
                    .collect(),
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|h| h.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shown,
        [
            ("type".into(), vec![("file".into(), s(&["a", "b", "c"]))]),
            (
                "sha256".into(),
                vec![(hex("x"), s(&["a", "c"])), (hex("y"), s(&["b"]))]
            ),
            (
                "mode".into(),
                vec![("0644".into(), s(&["a", "c"])), ("0600".into(), s(&["b"]))]
            ),
            ("owner".into(), vec![("root".into(), s(&["a", "b", "c"]))]),
            ("group".into(), vec![("root".into(), s(&["a", "b", "c"]))]),
        ]
    );
    assert_eq!(
        d.unreadable,
        [("d".into(), "unreadable: permission denied".into())]
    );
    assert_eq!(d.unreported, ["e"]);
    assert_eq!(d.standard[1], ("sha256".into(), Tally::Majority(hex("x"))));
    assert!(!d.alike());
    let mut hosts: Vec<&str> = d.hosts().collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts, ["a", "b", "c", "d", "e"]);
}

/// The manifest `accept` prints is one plumb reads, and it declares what the group has: a
/// host judged against it has no drift where it was alike, and what has no majority is left
/// out and said.
#[test]
fn an_accepted_group_is_a_manifest_of_what_its_majority_has() {
    use super::accept::{Decided, decide, manifest};
    let m = crate::manifest::parse(
        "web.yaml",
        "name: web\nhosts: [\"web-*\"]\nlabels: {role: web}\nbaseline:\n  files:\n    - /etc/app.conf\n    - /etc/gone\n    - /etc/tie\n  packages: [nginx, telnet]\n",
        &mut |_| Err("none".into()),
    )
    .expect("valid");
    let b = m.baseline.clone().expect("baseline");
    let absent = with("", |o| {
        o.kind = Kind::Absent;
        o.resolved_kind = Kind::Absent;
        o.sha256 = None;
    });
    let keys = [
        (
            Key::file("/etc/app.conf"),
            [file("x"), file("x"), file("y")],
        ),
        (
            Key::file("/etc/gone"),
            [absent.clone(), absent.clone(), file("z")],
        ),
        (Key::file("/etc/tie"), [file("p"), file("q"), file("r")]),
        (
            Key::package("nginx"),
            [
                package(&["1.22.1-9"]),
                package(&["1.22.1-9"]),
                package(&["1.18"]),
            ],
        ),
        (
            Key::package("telnet"),
            [package(&[]), package(&[]), package(&[])],
        ),
    ];
    let hosts = ["web-1", "web-2", "web-3"];
    let decided: Vec<(Key, Decided)> = keys
        .iter()
        .map(|(key, observed)| {
            let members: Vec<(&str, &Observation)> =
                hosts.iter().copied().zip(observed.iter()).collect();
            (key.clone(), decide(&Group::new(&b, key, &members), None))
        })
        .collect();
    let (yaml, left_out) = manifest(&m, &decided, "what most of its hosts have");
    assert_eq!(
        left_out,
        ["file:/etc/tie: no majority for its sha256: 3 variants held by 1, 1, 1 hosts"]
    );
    assert!(yaml.contains("#   file:/etc/tie: no majority"), "{yaml}");
    let accepted = crate::manifest::parse("accepted.yaml", &yaml, &mut |_| Err("none".into()))
        .unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    assert_eq!(
        (accepted.name.as_str(), accepted.baseline.is_none()),
        ("web", true)
    );
    assert_eq!(accepted.labels.get("role").map(String::as_str), Some("web"));
    let set = crate::manifest::ManifestSet::new(vec![accepted]).expect("a set");
    let desired = set.desired_for(&crate::manifest::HostIdentity {
        host_id: "web-1".into(),
        labels: [("role".to_owned(), "web".to_owned())].into(),
        ..Default::default()
    });
    // web-1 held what most hosts held everywhere: no drift against the accepted manifest.
    for (key, observed) in &keys {
        if key.name() == "/etc/tie" {
            assert!(!desired.contains_key(key), "left out");
            continue;
        }
        assert_eq!(
            crate::drift::evaluate_observation(&desired, key.name(), &observed[0]),
            [],
            "{key}\n{yaml}"
        );
        let odd = crate::drift::evaluate_observation(&desired, key.name(), &observed[2]);
        assert_eq!(
            odd.is_empty(),
            key.name() == "telnet",
            "web-3, the odd one out, drifts from it on {key}: {odd:?}"
        );
    }

    // One host's state instead: all of it, ties and all.
    let (key, observed) = &keys[2];
    let members: Vec<(&str, &Observation)> = hosts.iter().copied().zip(observed.iter()).collect();
    let group = Group::new(&b, key, &members);
    assert_eq!(
        decide(&group, Some(("web-2", Some(&observed[1])))),
        Decided::Values(aspects(&observed[1]).expect("readable"))
    );
    assert_eq!(
        decide(&group, Some(("web-9", None))),
        Decided::Undecided("web-9 has not reported it".into())
    );
}

/// Counts kept as observations move stand for what counting them afresh does, through
/// changes, a host that cannot read it, and the reference coming and going.
#[test]
fn counts_kept_as_hosts_move_equal_counts_made_afresh() {
    for reference in [None, Some("h2")] {
        let b = baseline(reference);
        let mut held: Vec<(String, Observation)> =
            (0..5).map(|i| (format!("h{i}"), file("x"))).collect();
        let mut kept = Counts::of(
            &b,
            &held
                .iter()
                .map(|(h, o)| (h.as_str(), o))
                .collect::<Vec<_>>(),
        );
        let unreadable = with("", |o| {
            o.kind = Kind::Unreadable;
            o.more_mut().error = Some("gone".into());
        });
        let moves = [
            (1, file("y")),
            (2, file("y")),
            (3, with("y", |o| o.mode = 0o100600)),
            (0, unreadable),
            (2, file("x")),
            (4, file("y")),
            (1, file("x")),
        ];
        for (i, new) in moves {
            kept.remove(&b, &held[i].0, &held[i].1);
            kept.add(&b, &held[i].0, &new);
            held[i].1 = new;
            let afresh = Counts::of(
                &b,
                &held
                    .iter()
                    .map(|(h, o)| (h.as_str(), o))
                    .collect::<Vec<_>>(),
            );
            assert_eq!(
                kept.standard(&b),
                afresh.standard(&b),
                "{reference:?}, after h{i}"
            );
        }
    }
}
