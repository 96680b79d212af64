//! Table-driven drift evaluation: (declaration, observation) -> expected drift, for every
//! attribute a manifest can declare.

use super::*;
use crate::manifest::{HostIdentity, ManifestSet, parse};
use crate::version::Manager;

fn desired(files_yaml: &str) -> std::sync::Arc<DesiredState> {
    let text = format!("name: t\nhosts: [\"*\"]\nfiles:\n{files_yaml}");
    let m = parse("t.yaml", &text, &mut |_| Err("no sources here".into())).expect("valid manifest");
    ManifestSet::new(vec![m])
        .expect("valid set")
        .desired_for(&HostIdentity {
            host_id: "h".into(),
            ..Default::default()
        })
}

fn file() -> Observed {
    Observed {
        kind: Kind::File,
        resolved_kind: Kind::File,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        owner: Some("root".into()),
        group: Some("root".into()),
        sha256: crate::drift::Digest::from_hex(&crate::digest::hex_sha256(b"hi\n")),
        more: None,
    }
}

fn with(f: impl FnOnce(&mut Observed)) -> Observed {
    let mut o = file();
    f(&mut o);
    o
}

/// (resource, attribute, expected, actual)
type Item = (String, String, String, String);

/// Evaluates the first declared path.
fn drift(files_yaml: &str, observed: Observed) -> Vec<Item> {
    let d = desired(files_yaml);
    let decl = d.files.values().next().expect("one declaration");
    evaluate(decl, &observed, &d)
        .into_iter()
        .map(|i| {
            assert_eq!(i.declared_at, "t.yaml:4");
            (i.resource, i.attribute, i.expected, i.actual)
        })
        .collect()
}

fn item(attribute: &str, expected: &str, actual: &str) -> Item {
    (
        "file:/etc/a".into(),
        attribute.into(),
        expected.into(),
        actual.into(),
    )
}

#[test]
fn each_attribute_in_sync_and_drifted() {
    let hi = crate::digest::hex_sha256(b"hi\n");
    let other = crate::digest::hex_sha256(b"other\n");
    let cases: Vec<(&str, Observed, Vec<Item>)> = vec![
        // presence
        ("  /etc/a: {}\n", file(), vec![]),
        (
            "  /etc/a: {}\n",
            with(|o| o.kind = Kind::Absent),
            vec![item("present", "present", "absent")],
        ),
        (
            "  /etc/a:\n    absent: true\n",
            with(|o| o.kind = Kind::Absent),
            vec![],
        ),
        (
            "  /etc/a:\n    absent: true\n",
            file(),
            vec![item("present", "absent", "file")],
        ),
        // content
        ("  /etc/a:\n    content: \"hi\\n\"\n", file(), vec![]),
        (
            "  /etc/a:\n    content: \"hi\\n\"\n",
            with(|o| o.sha256 = crate::drift::Digest::from_hex(&other)),
            vec![item("sha256", &hi, &other)],
        ),
        (
            "  /etc/a:\n    content: \"hi\\n\"\n",
            with(|o| {
                o.sha256 = None;
                o.more_mut().error = Some("permission denied".into())
            }),
            vec![item("sha256", &hi, "unreadable: permission denied")],
        ),
        // type
        (
            "  /etc/a:\n    content: \"hi\\n\"\n",
            with(|o| o.resolved_kind = Kind::Directory),
            vec![item("type", "file", "directory")],
        ),
        (
            "  /etc/a:\n    type: directory\n",
            with(|o| o.resolved_kind = Kind::Directory),
            vec![],
        ),
        // a symlink to a file satisfies a file declaration
        (
            "  /etc/a:\n    type: file\n",
            with(|o| o.kind = Kind::Symlink),
            vec![],
        ),
        // mode, owner, group
        ("  /etc/a:\n    mode: \"0644\"\n", file(), vec![]),
        (
            "  /etc/a:\n    mode: \"0600\"\n",
            file(),
            vec![item("mode", "0600", "0644")],
        ),
        (
            "  /etc/a:\n    mode: \"4755\"\n",
            with(|o| o.mode = 0o104755),
            vec![],
        ),
        ("  /etc/a:\n    owner: root\n", file(), vec![]),
        (
            "  /etc/a:\n    owner: root\n",
            with(|o| {
                o.uid = 1;
                o.owner = Some("daemon".into())
            }),
            vec![item("owner", "root", "daemon")],
        ),
        (
            "  /etc/a:\n    owner: root\n",
            with(|o| {
                o.uid = 4242;
                o.owner = None
            }),
            vec![item("owner", "root", "4242")],
        ),
        ("  /etc/a:\n    owner: 0\n", file(), vec![]),
        (
            "  /etc/a:\n    owner: 0\n",
            with(|o| {
                o.uid = 1;
                o.owner = Some("daemon".into())
            }),
            vec![item("owner", "0", "1")],
        ),
        (
            "  /etc/a:\n    group: adm\n",
            with(|o| {
                o.gid = 4;
                o.group = Some("adm".into())
            }),
            vec![],
        ),
        (
            "  /etc/a:\n    group: adm\n",
            file(),
            vec![item("group", "adm", "root")],
        ),
        // symlinks
        (
            "  /etc/a:\n    target: /usr/share/zoneinfo/UTC\n",
            with(|o| {
                o.kind = Kind::Symlink;
                o.more_mut().link_target = Some("/usr/share/zoneinfo/UTC".into())
            }),
            vec![],
        ),
        (
            "  /etc/a:\n    target: /usr/share/zoneinfo/UTC\n",
            with(|o| {
                o.kind = Kind::Symlink;
                o.more_mut().link_target = Some("/usr/share/zoneinfo/EST".into())
            }),
            vec![item(
                "target",
                "/usr/share/zoneinfo/UTC",
                "/usr/share/zoneinfo/EST",
            )],
        ),
        (
            "  /etc/a:\n    target: /x\n",
            file(),
            vec![item("type", "symlink", "file")],
        ),
        // contains: present, negated, unreadable
        (
            "  /etc/a:\n    contains: [\"A yes\", \"!B no\"]\n",
            with(|o| o.more_mut().contains = vec![true, false]),
            vec![],
        ),
        (
            "  /etc/a:\n    contains: [\"A yes\", \"!B no\"]\n",
            with(|o| o.more_mut().contains = vec![false, true]),
            vec![
                item("contains:A yes", "present", "absent"),
                item("contains:!B no", "absent", "present"),
            ],
        ),
        (
            "  /etc/a:\n    contains: [\"A yes\"]\n",
            with(|o| {
                o.more_mut().contains = vec![];
                o.more_mut().error = Some("permission denied".into())
            }),
            vec![item(
                "contains:A yes",
                "present",
                "unreadable: permission denied",
            )],
        ),
        // unreadable path
        (
            "  /etc/a:\n    mode: \"0644\"\n",
            with(|o| {
                o.kind = Kind::Unreadable;
                o.more_mut().error = Some("permission denied".into())
            }),
            vec![item(
                "readable",
                "readable",
                "unreadable: permission denied",
            )],
        ),
    ];
    for (yaml, observed, want) in cases {
        assert_eq!(
            drift(yaml, observed.clone()),
            want,
            "declared:\n{yaml}observed: {observed:?}"
        );
    }
}

#[test]
fn exclusive_directory_reports_undeclared_entries_only() {
    let d = desired("  /etc/a:\n    exclusive: true\n  /etc/a/known: {}\n  /etc/a/sub/deep: {}\n");
    let decl = &d.files["/etc/a"];
    let observed = with(|o| {
        o.kind = Kind::Directory;
        o.resolved_kind = Kind::Directory;
        o.more_mut().entries = vec!["known".into(), "rogue".into(), "sub".into()];
        o.more_mut().entries_total = 3;
    });
    let items: Vec<_> = evaluate(decl, &observed, &d)
        .into_iter()
        .map(|i| (i.resource, i.attribute, i.expected, i.actual))
        .collect();
    assert_eq!(
        items,
        [(
            "file:/etc/a/rogue".into(),
            "undeclared".into(),
            "absent (exclusive directory /etc/a)".into(),
            "present".into()
        ),]
    );
}

fn installed(version: &str) -> Installed {
    Installed {
        manager: Manager::Dpkg,
        arch: "amd64".into(),
        version: version.into(),
        state: "installed".into(),
    }
}

fn packages(list: Vec<Installed>) -> ObservedPackage {
    ObservedPackage {
        instances: list,
        error: None,
        problems: vec![],
    }
}

/// (expected, actual)
type Pair = (String, String);

/// Evaluates the one declared package.
fn package_drift(yaml: &str, observed: ObservedPackage) -> Vec<Pair> {
    let text = format!("name: t\nhosts: [\"*\"]\npackages:\n{yaml}");
    let m = parse("t.yaml", &text, &mut |_| Err("no sources".into())).expect("valid manifest");
    let d = ManifestSet::new(vec![m])
        .expect("valid set")
        .desired_for(&HostIdentity {
            host_id: "h".into(),
            ..Default::default()
        });
    let decl = d.packages.values().next().expect("one package");
    evaluate_package(decl, &observed)
        .into_iter()
        .map(|i| {
            assert_eq!(
                (
                    i.resource.as_str(),
                    i.attribute.as_str(),
                    i.declared_at.as_str()
                ),
                ("package:openssh-server", "version", "t.yaml:4")
            );
            (i.expected, i.actual)
        })
        .collect()
}

fn expect(expected: &str, actual: &str) -> Vec<Pair> {
    vec![(expected.into(), actual.into())]
}

#[test]
fn packages_present_absent_and_versions() {
    let mut i386 = installed("1:9.0p1-1");
    i386.arch = "i386".into();
    let mut half = installed("1:9.3p1-1");
    half.state = "half-configured".into();
    let mut rpm = installed("9.3p1-1.el9");
    rpm.manager = Manager::Rpm;
    let cases: Vec<(&str, ObservedPackage, Vec<Pair>)> = vec![
        (
            "  openssh-server: present\n",
            packages(vec![installed("1:9.2p1-2")]),
            vec![],
        ),
        (
            "  openssh-server: present\n",
            packages(vec![]),
            expect("present", "absent"),
        ),
        ("  openssh-server: absent\n", packages(vec![]), vec![]),
        (
            "  openssh-server: absent\n",
            packages(vec![installed("1:9.2p1-2")]),
            expect("absent", "1:9.2p1-2"),
        ),
        (
            "  openssh-server: \">= 1:9.2p1\"\n",
            packages(vec![installed("1:9.2p1-2")]),
            vec![],
        ),
        (
            "  openssh-server: \">= 1:9.2p1\"\n",
            packages(vec![installed("1:9.0p1-1")]),
            expect(">= 1:9.2p1", "1:9.0p1-1"),
        ),
        (
            "  openssh-server: \">= 1:9.2p1\"\n",
            packages(vec![]),
            expect(">= 1:9.2p1", "absent"),
        ),
        (
            "  openssh-server: \">= 1:9.2p1, < 1:10\"\n",
            packages(vec![installed("1:10.0p1-1")]),
            expect(">= 1:9.2p1, < 1:10", "1:10.0p1-1"),
        ),
        (
            "  openssh-server: \"!= 1:9.2p1-2\"\n",
            packages(vec![installed("1:9.2p1-2")]),
            expect("!= 1:9.2p1-2", "1:9.2p1-2"),
        ),
        // A transitional instance is present but never satisfies a version.
        (
            "  openssh-server: \">= 1:9.2p1\"\n",
            packages(vec![half.clone()]),
            expect(">= 1:9.2p1", "1:9.3p1-1 (half-configured)"),
        ),
        ("  openssh-server: present\n", packages(vec![half]), vec![]),
        // Architecture and manager filters.
        (
            "  openssh-server: {version: \">= 1:9.2p1\", arch: i386}\n",
            packages(vec![installed("1:9.2p1-2"), i386.clone()]),
            expect(">= 1:9.2p1", "1:9.0p1-1 (i386)"),
        ),
        (
            "  openssh-server: {version: \">= 1:9.2p1\", arch: amd64}\n",
            packages(vec![installed("1:9.2p1-2"), i386]),
            vec![],
        ),
        (
            "  openssh-server: {manager: dpkg}\n",
            packages(vec![rpm.clone()]),
            expect("present", "absent"),
        ),
        (
            "  openssh-server: {version: \">= 9.2\", manager: rpm}\n",
            packages(vec![rpm]),
            vec![],
        ),
        // The databases could not be read: say so, do not guess.
        (
            "  openssh-server: present\n",
            ObservedPackage {
                instances: vec![],
                error: Some("cannot read /var/lib/dpkg/status: permission denied".into()),
                problems: vec![],
            },
            expect(
                "present",
                "unknown: cannot read /var/lib/dpkg/status: permission denied",
            ),
        ),
    ];
    for (yaml, observed, want) in cases {
        assert_eq!(
            package_drift(yaml, observed.clone()),
            want,
            "declared:\n{yaml}observed: {observed:?}"
        );
    }
}

#[test]
fn owned_file_problems_are_drift_only_when_verified() {
    let tampered = ObservedPackage {
        instances: vec![installed("2.10-3")],
        error: None,
        problems: vec![
            FileProblem {
                path: "/usr/bin/hello".into(),
                expected: "md5 aaa".into(),
                actual: "md5 bbb".into(),
            },
            FileProblem {
                path: "/usr/share/doc/hello/README".into(),
                expected: "md5 ccc".into(),
                actual: "missing".into(),
            },
        ],
    };
    let d = |yaml: &str| {
        let text = format!("name: t\nhosts: [\"*\"]\npackages:\n{yaml}");
        let m = parse("t.yaml", &text, &mut |_| Err("no sources".into())).expect("valid manifest");
        ManifestSet::new(vec![m])
            .expect("valid set")
            .desired_for(&HostIdentity {
                host_id: "h".into(),
                ..Default::default()
            })
    };
    let verified = d("  hello: {version: present, verify_files: true}\n");
    let items: Vec<_> = evaluate_package(&verified.packages["hello"], &tampered)
        .into_iter()
        .map(|i| (i.resource, i.attribute, i.expected, i.actual))
        .collect();
    assert_eq!(
        items,
        [
            (
                "package:hello".into(),
                "file:/usr/bin/hello".into(),
                "md5 aaa".into(),
                "md5 bbb".into()
            ),
            (
                "package:hello".into(),
                "file:/usr/share/doc/hello/README".into(),
                "md5 ccc".into(),
                "missing".into()
            ),
        ]
    );
    let unverified = d("  hello: present\n");
    assert!(evaluate_package(&unverified.packages["hello"], &tampered).is_empty());
}

#[test]
fn digests_are_read_from_hex_in_either_case_and_written_lowercase() {
    use crate::drift::Digest;
    let hex = crate::digest::hex_sha256(b"hi\n");
    let d = Digest::from_hex(&hex).expect("valid");
    assert_eq!(d.to_hex(), hex);
    assert_eq!(Digest::from_hex(&hex.to_uppercase()), Some(d));
    assert_eq!(Digest::from_hex(&hex[1..]), None, "63 digits");
    assert_eq!(
        Digest::from_hex(&format!("{}g", &hex[1..])),
        None,
        "not hex"
    );
    // Stored as the hex string, as before digests were kept as bytes.
    let json = serde_json::to_string(&d).expect("serializes");
    assert_eq!(json, format!("\"{hex}\""));
    assert_eq!(serde_json::from_str::<Digest>(&json).expect("parses"), d);
}

// Regression (issue 12, item 1): 20,000 entries in an exclusive directory became 20,000 drift
// items, each looked up by a linear search, and one host froze the fleet for a minute.
#[test]
fn a_crowded_exclusive_directory_is_one_item_with_a_count_and_a_sample() {
    let d = desired("  /etc/a:\n    exclusive: true\n  /etc/a/known: {}\n");
    let decl = &d.files["/etc/a"];
    let names: Vec<String> = (0..MAX_UNDECLARED_ITEMS)
        .map(|i| format!("e{i:05}"))
        .collect();
    let observed = |total: u64| {
        with(|o| {
            o.kind = Kind::Directory;
            o.resolved_kind = Kind::Directory;
            o.more_mut().entries = names.clone();
            o.more_mut().entries_total = total;
        })
    };
    let items = evaluate(decl, &observed(MAX_UNDECLARED_ITEMS as u64), &d);
    assert_eq!(
        items.len(),
        MAX_UNDECLARED_ITEMS,
        "up to the limit, one item each"
    );

    let items: Vec<_> = evaluate(decl, &observed(100_000), &d)
        .into_iter()
        .map(|i| (i.resource, i.attribute, i.expected, i.actual))
        .collect();
    assert_eq!(
        items,
        [(
            "file:/etc/a".into(),
            "undeclared".into(),
            "no undeclared entries (exclusive directory /etc/a)".into(),
            "100000 undeclared entries, e.g. e00000, e00001, e00002, e00003, e00004, e00005, e00006, e00007, e00008, e00009, …".into()
        )]
    );
}

#[test]
fn a_package_with_very_many_changed_files_is_one_item() {
    let text = "name: t\nhosts: [\"*\"]\npackages:\n  big: {verify_files: true}\n";
    let m = parse("t.yaml", text, &mut |_| Err("none".into())).expect("valid");
    let d = ManifestSet::new(vec![m])
        .expect("set")
        .desired_for(&HostIdentity::default());
    let problems = |n: usize| ObservedPackage {
        instances: vec![Installed {
            manager: Manager::Dpkg,
            arch: "amd64".into(),
            version: "1".into(),
            state: "installed".into(),
        }],
        error: None,
        problems: (0..n)
            .map(|i| FileProblem {
                path: format!("/usr/share/big/{i}"),
                expected: "md5 x".into(),
                actual: "missing".into(),
            })
            .collect(),
    };
    let decl = &d.packages["big"];
    assert_eq!(
        evaluate_package(decl, &problems(MAX_PACKAGE_FILE_ITEMS)).len(),
        MAX_PACKAGE_FILE_ITEMS
    );
    let one = evaluate_package(decl, &problems(50_000));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].attribute, "files");
    assert!(
        one[0]
            .actual
            .starts_with("50000 files differ, e.g. /usr/share/big/0, "),
        "{}",
        one[0].actual
    );
}

// Regression (issue 12, item 6): an exclusive directory the agent could not list passed as
// in sync (no drift item; `plumb drift` exit 0).
#[test]
fn an_exclusive_directory_that_cannot_be_listed_is_drift() {
    let observed = with(|o| {
        o.kind = Kind::Directory;
        o.resolved_kind = Kind::Directory;
        o.more_mut().error = Some("cannot list entries: permission denied".into());
    });
    assert_eq!(
        drift("  /etc/a:\n    exclusive: true\n", observed),
        [item(
            "entries",
            "listed",
            "unreadable: cannot list entries: permission denied"
        )]
    );
}

// Regression (issue 12, weak): a symlink loop was reported as type `unreadable`, no reason.
#[test]
fn a_symlink_loop_says_why_it_cannot_be_read() {
    let observed = with(|o| {
        o.kind = Kind::Symlink;
        o.resolved_kind = Kind::Unreadable;
        o.more_mut().link_target = Some("loop-b".into());
        o.more_mut().error = Some("too many levels of symbolic links".into());
    });
    assert_eq!(
        drift("  /etc/a:\n    type: file\n", observed.clone()),
        [item(
            "readable",
            "readable",
            "unreadable: too many levels of symbolic links"
        )]
    );
    // Declared as the symlink itself: its target is what counts.
    assert_eq!(
        drift("  /etc/a:\n    target: loop-b\n", observed),
        Vec::<Item>::new()
    );
}

// Regression (issue 12, item 7): a line longer than the agent matches must not read as in sync.
#[test]
fn a_file_whose_patterns_could_not_be_checked_is_unverifiable_drift() {
    let observed = with(|o| {
        o.more_mut().contains = vec![];
        o.more_mut().error = Some("unverifiable: line 1 is longer than 65536 bytes".into());
    });
    assert_eq!(
        drift(
            "  /etc/a:\n    contains: [\"!X11Forwarding yes\"]\n",
            observed
        ),
        [item(
            "contains:!X11Forwarding yes",
            "absent",
            "unverifiable: line 1 is longer than 65536 bytes"
        )]
    );
}

// The boxed rest of an observation is one thing whether it is absent or empty: an agent's
// unchanged state must never read as a change (a store write, a drift re-evaluated).
#[test]
fn nothing_more_is_the_same_absent_or_empty() {
    let mut boxed_empty = file();
    boxed_empty.more = Some(Box::default());
    assert_eq!(boxed_empty, file());
    assert!(crate::drift::More::default().boxed().is_none());
    let listed = with(|o| o.more_mut().entries_total = 1);
    assert_ne!(listed, file());
    assert!(listed.more.is_some());
}

#[test]
fn user_and_group_names_are_shared() {
    let (a, b) = (super::intern("www-data"), super::intern("www-data"));
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(&*a, "www-data");
    assert!(!Arc::ptr_eq(&a, &super::intern("root")));
    // A name no account can have is kept with its observation alone, not in the shared set
    // (which would outlive the observation): the same text twice is two copies.
    let long = "x".repeat(257);
    let (c, d) = (super::intern(&long), super::intern(&long));
    assert_eq!(&*c, long);
    assert!(!Arc::ptr_eq(&c, &d));
    let longest = "y".repeat(256);
    assert!(Arc::ptr_eq(
        &super::intern(&longest),
        &super::intern(&longest)
    ));
}
