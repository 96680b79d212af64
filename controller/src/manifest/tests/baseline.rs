//! `baseline:`: what it compares, how its mistakes are placed, and how it meets the rest of
//! the set (values declared for a host win; one key, one baseline).

use super::*;

const WEB: &str = "name: web
hosts: [\"web-*\"]
baseline:
  reference: web-1
  files:
    - /etc/nginx/nginx.conf
    - \"/etc/app.conf\"
  packages: [nginx]
";

#[test]
fn a_baseline_parses_into_what_it_compares() {
    let m = ok(WEB);
    let b = m.baseline.as_deref().expect("a baseline");
    assert_eq!(
        (
            b.manifest.as_str(),
            b.reference.as_deref(),
            b.declared_at.to_string()
        ),
        ("web", Some("web-1"), "m.yaml:3".to_owned())
    );
    assert_eq!(
        b.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        [
            "file:/etc/nginx/nginx.conf",
            "file:/etc/app.conf",
            "package:nginx"
        ]
    );
    let majority = ok("name: web\nhosts: [\"*\"]\nbaseline:\n  files: [/etc/a]\n");
    assert_eq!(majority.baseline.expect("a baseline").reference, None);
}

#[test]
fn baseline_mistakes_are_placed_and_explained() {
    assert_eq!(
        errors(
            "name: web\nhosts: [\"web-*\"]\nbaseline:\n  reference: db-1\n  files:\n    - /etc/nginx/[ab].conf\n    - etc/relative\n    - /etc/a\n    - /etc/a\n  packages:\n    - \"bad name\"\n"
        ),
        [
            "m.yaml:3:1: the baseline's reference db-1 is not among the hosts this manifest selects\n  hint: the reference is one of the group it is compared with",
            "m.yaml:6:7: /etc/nginx/[ab].conf: `[` is not a glob plumb reads\n  hint: write * and ? within a name, ** for any depth",
            "m.yaml:7:7: \"etc/relative\" is not a normalized absolute path\n  hint: write it like /etc/app/app.conf (no trailing slash, no . or ..)",
            "m.yaml:8:7: /etc/a is listed twice in the baseline",
            "m.yaml:11:7: invalid package name \"bad name\"\n  hint: names use letters, digits, '.', '_', '+', '-'",
        ]
    );
    assert_eq!(
        errors("name: web\nhosts: [\"*\"]\nbaseline: {}\n"),
        [
            "m.yaml:3:1: the baseline compares nothing\n  hint: list the paths (files:) and packages (packages:) the hosts should have alike"
        ]
    );
    assert_eq!(
        errors("name: web\nhosts: [\"*\"]\nbaseline:\n  majority: true\n  files: [/etc/a]\n"),
        [
            "m.yaml:4:3: baseline: unknown field `majority`, expected one of `reference`, `files`, `packages`\n  hint: check the spelling; the fields a manifest takes are listed in README.md"
        ]
    );
}

#[test]
fn a_value_declared_for_a_host_wins_over_its_baseline() {
    let web = manifest("web.yaml", WEB);
    let pinned = manifest(
        "pinned.yaml",
        "name: pinned\nhosts: [\"web-9\"]\nfiles:\n  /etc/app.conf:\n    mode: \"0600\"\n",
    );
    let set = ManifestSet::new(vec![web, pinned]).expect("valid");
    let identity = |id: &str| HostIdentity {
        host_id: id.into(),
        ..Default::default()
    };
    let compared = |id: &str| -> Vec<String> {
        set.desired_for(&identity(id))
            .baselines
            .keys()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        compared("web-2"),
        [
            "file:/etc/app.conf",
            "file:/etc/nginx/nginx.conf",
            "package:nginx"
        ]
    );
    assert_eq!(
        compared("web-9"),
        ["file:/etc/nginx/nginx.conf", "package:nginx"],
        "declared with a value for web-9: judged by it"
    );
    let desired = set.desired_for(&identity("web-9"));
    assert!(desired.contains_key(&Key::file("/etc/nginx/nginx.conf")));
    assert_eq!(
        crate::plan::requests(&desired)
            .iter()
            .map(|r| (r.path.as_str(), r.hash))
            .collect::<Vec<_>>(),
        [("/etc/app.conf", false), ("/etc/nginx/nginx.conf", true)],
        "compared paths are hashed; declared ones as their declaration needs"
    );
    assert_eq!(
        crate::plan::packages(&desired),
        [("nginx".to_owned(), false)]
    );
}

#[test]
fn one_key_in_two_baselines_for_a_possible_common_host_is_rejected() {
    let web = manifest("web.yaml", WEB);
    let all = manifest(
        "all.yaml",
        "name: all\nhosts: [\"*\"]\nbaseline:\n  files:\n    - /etc/app.conf\n",
    );
    let errs = ManifestSet::new(vec![web.clone(), all]).expect_err("twice");
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "web.yaml:3: file:/etc/app.conf is compared by this baseline and by all's at all.yaml:3, and both manifests may select the same host\n  hint: compare it in one baseline, or make the manifests' hosts/labels disjoint"
        ]
    );
    let db = manifest(
        "db.yaml",
        "name: db\nhosts: [\"db-*\"]\nbaseline:\n  files:\n    - /etc/app.conf\n",
    );
    assert!(ManifestSet::new(vec![web, db]).is_ok(), "disjoint groups");
}

/// A path a baseline compares, in a directory another manifest declares exclusive, is no
/// undeclared entry of it.
#[test]
fn a_compared_path_is_declared_for_an_exclusive_directory() {
    let web = manifest(
        "web.yaml",
        "name: web\nhosts: [\"web-*\"]\nbaseline:\n  files:\n    - /etc/app.d/app.conf\n",
    );
    let strict = manifest(
        "strict.yaml",
        "name: strict\nhosts: [\"*\"]\nfiles:\n  /etc/app.d:\n    exclusive: true\n",
    );
    let set = ManifestSet::new(vec![web, strict]).expect("valid");
    let desired = set.desired_for(&HostIdentity {
        host_id: "web-1".into(),
        ..Default::default()
    });
    let listed = crate::drift::Observed {
        kind: crate::drift::Kind::Directory,
        resolved_kind: crate::drift::Kind::Directory,
        mode: 0o40755,
        uid: 0,
        gid: 0,
        owner: None,
        group: None,
        sha256: None,
        more: crate::drift::More {
            entries: vec!["app.conf".into(), "stray.conf".into()],
            entries_total: 2,
            ..Default::default()
        }
        .boxed(),
    };
    let items = crate::drift::evaluate(&desired.files["/etc/app.d"], &listed, &desired);
    assert_eq!(
        items
            .iter()
            .map(|d| d.resource.as_str())
            .collect::<Vec<_>>(),
        ["file:/etc/app.d/stray.conf"]
    );
}

/// A baseline's globs: every path they match on a host is compared there (but a path
/// declared with values), the agent is asked to expand them, with the manifest's ignores.
#[test]
fn a_baseline_glob_compares_what_it_matches() {
    let web = manifest(
        "web.yaml",
        "name: web\nhosts: [\"web-*\"]\nignore: [\"*.swp\", \"/etc/ssh/ssh_host_*\"]\nbaseline:\n  files:\n    - /etc/nginx/**\n    - /etc/ssh/*\n",
    );
    let b = web.baseline.clone().expect("baseline");
    assert_eq!(b.keys().count(), 0, "globs only");
    assert_eq!(
        b.globs().collect::<Vec<_>>(),
        ["/etc/nginx/**", "/etc/ssh/*"]
    );
    let pinned = manifest(
        "pinned.yaml",
        "name: pinned\nhosts: [\"web-1\"]\nfiles:\n  /etc/nginx/nginx.conf:\n    mode: \"0640\"\n",
    );
    let set = ManifestSet::new(vec![web, pinned]).expect("valid");
    let desired = set.desired_for(&HostIdentity {
        host_id: "web-1".into(),
        ..Default::default()
    });
    let compared = |p: &str| desired.compared(&Key::file(p)).map(|b| b.manifest.clone());
    assert_eq!(compared("/etc/nginx/sites/default"), Some("web".into()));
    assert_eq!(compared("/etc/ssh/sshd_config"), Some("web".into()));
    assert_eq!(compared("/etc/ssh/sub/x"), None, "* is one name");
    assert_eq!(
        compared("/etc/nginx/nginx.conf"),
        None,
        "declared with values here"
    );
    assert!(desired.contains_key(&Key::file("/etc/nginx/mime.types")));
    let globs: Vec<(String, bool, Vec<String>)> = crate::plan::requests(&desired)
        .into_iter()
        .filter(|r| r.expand)
        .map(|r| (r.path, r.hash, r.ignore))
        .collect();
    let ignores = vec!["*.swp".to_owned(), "/etc/ssh/ssh_host_*".to_owned()];
    assert_eq!(
        globs,
        [
            ("/etc/nginx/**".to_owned(), true, ignores.clone()),
            ("/etc/ssh/*".to_owned(), true, ignores)
        ]
    );
}
