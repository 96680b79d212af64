//! Table-driven tests of manifest parsing and validation: what parses into what, and every
//! error's message and location.

use std::collections::BTreeMap;

use super::*;
use crate::version::Manager;

fn sources() -> impl FnMut(&str) -> Result<Vec<u8>, String> {
    |name: &str| match name {
        "files/app.conf" => Ok(b"listen 80\n".to_vec()),
        _ => Err("No such file or directory (os error 2)".into()),
    }
}

fn ok(text: &str) -> Manifest {
    parse("m.yaml", text, &mut sources()).unwrap_or_else(|e| panic!("expected ok, got {e:#?}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse("m.yaml", text, &mut sources()) {
        Ok(m) => panic!("expected errors, parsed {m:#?}"),
        Err(e) => e.iter().map(|d| d.to_string()).collect(),
    }
}

fn spec(m: &Manifest, path: &str) -> FileSpec {
    m.files
        .iter()
        .find(|d| d.path == path)
        .map(|d| d.spec.clone())
        .expect("declared")
}

#[test]
fn parses_every_attribute() {
    let m = ok(r#"
name: web-baseline
hosts: ["web-*"]
labels: {role: web}
files:
  /etc/ssh/sshd_config:
    owner: root
    group: 0
    mode: "0600"
    contains:
      - "PermitRootLogin no"
      - "/^PasswordAuthentication\\s+no/"
      - "!X11Forwarding yes"
  /etc/app.conf:
    source: files/app.conf
  /etc/motd:
    content: "hi\n"
  /etc/pinned:
    sha256: "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
  /etc/telnetd.conf:
    absent: true
  /etc/sudoers.d:
    type: directory
    exclusive: true
  /etc/localtime:
    target: /usr/share/zoneinfo/UTC
  /etc/exists:
"#);
    assert_eq!(m.name, "web-baseline");
    assert_eq!(
        m.hosts.iter().map(Glob::as_str).collect::<Vec<_>>(),
        ["web-*"]
    );
    assert_eq!(m.labels, BTreeMap::from([("role".into(), "web".into())]));

    let sshd = spec(&m, "/etc/ssh/sshd_config");
    assert_eq!(sshd.kind, Some(FileType::File), "contains implies a file");
    assert_eq!(sshd.mode, Some(Mode(0o600)));
    assert_eq!(sshd.owner, Some(Principal::Name("root".into())));
    assert_eq!(sshd.group, Some(Principal::Id(0)));
    let pats: Vec<_> = sshd
        .contains
        .iter()
        .map(|p| (p.pattern.as_str(), p.regex, p.negated))
        .collect();
    assert_eq!(
        pats,
        [
            ("PermitRootLogin no", false, false),
            (r"^PasswordAuthentication\s+no", true, false),
            ("X11Forwarding yes", false, true)
        ]
    );

    assert_eq!(
        spec(&m, "/etc/app.conf").sha256,
        Some(Digest::of(b"listen 80\n"))
    );
    assert_eq!(spec(&m, "/etc/motd").sha256, Some(Digest::of(b"hi\n")));
    assert_eq!(
        spec(&m, "/etc/pinned")
            .sha256
            .map(|d| d.to_hex())
            .as_deref(),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        "digests are normalized to lower case"
    );
    let absent = spec(&m, "/etc/telnetd.conf");
    assert!(absent.absent && absent.kind.is_none());
    let dir = spec(&m, "/etc/sudoers.d");
    assert!(dir.exclusive && dir.kind == Some(FileType::Directory));
    let link = spec(&m, "/etc/localtime");
    assert_eq!(
        (link.kind, link.target.as_deref()),
        (Some(FileType::Symlink), Some("/usr/share/zoneinfo/UTC"))
    );
    let bare = spec(&m, "/etc/exists");
    assert_eq!(
        bare,
        FileSpec {
            absent: false,
            kind: None,
            sha256: None,
            mode: None,
            owner: None,
            group: None,
            target: None,
            contains: vec![],
            exclusive: false,
            diff: false,
            sensitive: false,
            ignore: vec![],
            desired_content: None,
        }
    );
}

#[test]
fn diff_policy_is_validated() {
    let m = ok(
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    content: \"a\\n\"\n    diff: true\n  /etc/b:\n    content: \"b\\n\"\n    sensitive: true\n",
    );
    assert_eq!(
        spec(&m, "/etc/a")
            .desired_content
            .as_deref()
            .map(Vec::as_slice),
        Some(b"a\n".as_slice()),
        "kept for the diff"
    );
    assert_eq!(
        spec(&m, "/etc/b").desired_content,
        None,
        "content is kept only where a diff is allowed"
    );
    assert_eq!(
        errors(
            "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    content: x\n    diff: true\n    sensitive: true\n  /etc/b:\n    mode: \"0644\"\n    diff: true\n"
        ),
        [
            "m.yaml:4:3: /etc/a: a sensitive file cannot allow a diff\n  hint: drop diff: true, its content must stay home",
            "m.yaml:8:3: /etc/b: diff: true needs the desired content\n  hint: declare content or source",
        ]
    );
}

#[test]
fn declarations_remember_their_line() {
    let m = ok("name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0644\"\n  /etc/b: {}\n");
    let at: Vec<_> = m
        .files
        .iter()
        .map(|d| (d.path.as_str(), d.declared_at.to_string()))
        .collect();
    assert_eq!(
        at,
        [
            ("/etc/a", "m.yaml:4".to_string()),
            ("/etc/b", "m.yaml:6".to_string())
        ]
    );
}

/// (manifest, every expected error as printed: `file:line:column: message` and hint lines)
const ERROR_CASES: &[(&str, &[&str])] = &[
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: 0644\n",
        &[
            "m.yaml:5:11: mode must be a quoted string\n  hint: quote the mode, e.g. mode: \"0644\" (YAML 1.1 tools read 0644 as the number 420)",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: 644\n",
        &[
            "m.yaml:5:11: files./etc/a.mode: mode must be a quoted string, got the number 644\n  hint: quote the mode, e.g. mode: \"0644\" (YAML 1.1 tools read 0644 as the number 420)",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0999\"\n",
        &[
            "m.yaml:5:11: files./etc/a.mode: invalid mode \"0999\": expected 3 or 4 octal digits\n  hint: e.g. mode: \"0644\"",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    onwer: root\n",
        &[
            "m.yaml:5:5: files./etc/a: unknown field `onwer`, expected one of `absent`, `type`, `sha256`, `content`, `source`, `mode`, `owner`, `group`, `target`, `contains`, `exclusive`, `diff`, `sensitive`, `ignore`\n  hint: check the spelling; the fields a manifest takes are listed in README.md",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    absent: yes please\n",
        &[
            "m.yaml:5:13: files./etc/a.absent: invalid type: string \"yes please\", expected a boolean",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    contains: [\"/a(b/\"]\n",
        &[
            "m.yaml:5:16: files./etc/a.contains[0]: invalid regex in \"/a(b/\": unclosed group\n  hint: a line pattern is /REGEX/ or a literal line",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    sha256: abc\n",
        &[
            "m.yaml:5:13: files./etc/a.sha256: invalid sha256 \"abc\": expected 64 hex characters\n  hint: `sha256sum FILE` prints it",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    source: files/missing.conf\n",
        &[
            "m.yaml:4:3: /etc/a: cannot read source \"files/missing.conf\": No such file or directory (os error 2)\n  hint: source is relative to the manifest's folder",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    content: x\n    source: files/app.conf\n",
        &[
            "m.yaml:4:3: /etc/a: give only one of sha256, content and source (found content, source)\n  hint: they all declare the content",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    absent: true\n    mode: \"0644\"\n",
        &["m.yaml:4:3: /etc/a: `absent: true` cannot be combined with mode"],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    type: directory\n    content: x\n",
        &[
            "m.yaml:4:3: /etc/a: sha256/content/source applies to a file, but the path is declared a directory",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    type: socket\n",
        &[
            "m.yaml:5:11: files./etc/a.type: unknown variant `socket`, expected one of `file`, `directory`, `symlink`",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  etc/a: {}\n  /etc/b/: {}\n",
        &[
            "m.yaml:4:3: \"etc/a\" is not a normalized absolute path\n  hint: write it like /etc/app/app.conf (no trailing slash, no . or ..)",
            "m.yaml:5:3: \"/etc/b/\" is not a normalized absolute path\n  hint: write it like /etc/app/app.conf (no trailing slash, no . or ..)",
        ],
    ),
    (
        "name: x\nfiles:\n  /etc/a: {}\n",
        &[
            "m.yaml: manifest selects no hosts: it has neither `hosts`, `labels` nor `facts`\n  hint: add hosts: [\"*\"] to select every host",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\nfiles:\n  /etc/a: {}\nservices:\n  nginx: running\n",
        &[
            "m.yaml:5:1: unknown field `services`, expected one of `name`, `hosts`, `labels`, `facts`, `files`, `packages`, `ignore`, `baseline`\n  hint: check the spelling; the fields a manifest takes are listed in README.md",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\npackages:\n  nginx: \"~> 1.2\"\n",
        &[
            "m.yaml:4:10: packages.nginx: invalid version constraint \"~> 1.2\"\n  hint: write present, absent, or e.g. \">= 1.2, < 2\"",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\npackages:\n  nginx: {version: \">= 1.2\", manger: dpkg}\n",
        &[
            "m.yaml:4:30: packages.nginx: unknown field `manger`, expected one of `version`, `manager`, `arch`, `verify_files`\n  hint: check the spelling; the fields a manifest takes are listed in README.md",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\npackages:\n  nginx: {manager: yum}\n",
        &[
            "m.yaml:4:20: packages.nginx.manager: unknown variant `yum`, expected one of `dpkg`, `rpm`, `apk`, `pacman`",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"]\npackages:\n  nginx: {version: \">= x1.2\", manager: dpkg}\n  \"bad name\": present\n",
        &[
            "m.yaml:4:3: package nginx: version \"x1.2\" does not start with a digit\n  hint: versions are written as dpkg writes them",
            "m.yaml:5:3: invalid package name \"bad name\"\n  hint: names use letters, digits, '.', '_', '+', '-'",
        ],
    ),
    (
        "name: x\nhosts: [\"*\"\nfiles: {}\n",
        &[
            "m.yaml:3:1: did not find expected ',' or ']' at line 3 column 1, while parsing a flow sequence",
        ],
    ),
    ("hosts: [\"*\"]\n", &["m.yaml:1:1: missing field `name`"]),
];

#[test]
fn errors_name_the_place_and_give_a_hint() {
    for (text, want) in ERROR_CASES {
        assert_eq!(errors(text), *want, "for manifest:\n{text}");
    }
}

fn manifest(file: &str, text: &str) -> Manifest {
    parse(file, text, &mut sources()).expect("valid manifest")
}

#[test]
fn conflicting_declarations_for_a_possible_common_host_are_rejected() {
    let web = manifest(
        "web.yaml",
        "name: web\nhosts: [\"web-*\"]\nfiles:\n  /etc/a:\n    mode: \"0644\"\n",
    );
    let all = manifest(
        "all.yaml",
        "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0600\"\n",
    );
    let errs = ManifestSet::new(vec![web.clone(), all]).expect_err("conflict");
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "web.yaml:4: /etc/a is declared differently here and at all.yaml:4, and both manifests may select the same host\n  hint: declare it once, or make the manifests' hosts/labels disjoint"
        ]
    );

    // Disjoint globs, contradicting labels, or identical declarations are fine.
    let db = manifest(
        "db.yaml",
        "name: db\nhosts: [\"db-*\"]\nfiles:\n  /etc/a:\n    mode: \"0600\"\n",
    );
    assert!(ManifestSet::new(vec![web.clone(), db]).is_ok());
    let lab_a = manifest(
        "a.yaml",
        "name: a\nlabels: {env: prod}\nfiles:\n  /etc/a:\n    mode: \"0600\"\n",
    );
    let lab_b = manifest(
        "b.yaml",
        "name: b\nlabels: {env: test}\nfiles:\n  /etc/a:\n    mode: \"0644\"\n",
    );
    assert!(ManifestSet::new(vec![lab_a, lab_b]).is_ok());
    let same = manifest(
        "same.yaml",
        "name: same\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0644\"\n",
    );
    assert!(ManifestSet::new(vec![web, same]).is_ok());
}

#[test]
fn manifests_that_could_plan_one_host_more_paths_than_an_agent_accepts_are_rejected() {
    let web = manifest(
        "web.yaml",
        "name: web\nhosts: [\"web-*\"]\nfiles:\n  /etc/a: {}\n  /etc/b: {}\npackages:\n  nginx: {}\n",
    );
    let all = manifest(
        "all.yaml",
        "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/a: {}\n  /etc/c: {}\nbaseline:\n  files: [/etc/d]\n",
    );
    let db = manifest(
        "db.yaml",
        "name: db\nhosts: [\"db-*\"]\nfiles:\n  /etc/x: {}\n  /etc/y: {}\n",
    );
    let messages = |max| {
        consistency::too_many_for_a_plan(&[web.clone(), all.clone(), db.clone()], max)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    // A web host is planned /etc/a (declared twice, counted once), b, c and d: four paths; a
    // db host x, y, a, c and d: five. all.yaml is counted with both web and db (each may
    // select a host it does: six), though none selects a host of both: the count is the most
    // its hosts could be planned, never less.
    assert_eq!(messages(6), Vec::<String>::new());
    let hint = "\n  hint: declare a directory `exclusive: true` rather than each file in it, or make the manifests' hosts/labels disjoint";
    assert_eq!(
        messages(4),
        [
            format!(
                "all.yaml: this manifest and those that may select the same host name 6 paths, more than the 4 an agent accepts in one plan{hint}"
            ),
            format!(
                "db.yaml: this manifest and those that may select the same host name 5 paths, more than the 4 an agent accepts in one plan{hint}"
            ),
        ]
    );
    assert_eq!(
        messages(0)
            .iter()
            .filter(|m| m.contains(" packages,"))
            .count(),
        2,
        "web's nginx, for web.yaml and all.yaml: {:?}",
        messages(0)
    );
}

#[test]
fn duplicate_names_are_rejected() {
    let a = manifest("a.yaml", "name: x\nhosts: [\"a\"]\n");
    let b = manifest("b.yaml", "name: x\nhosts: [\"b\"]\n");
    let errs = ManifestSet::new(vec![a, b]).expect_err("duplicate");
    assert_eq!(
        errs[0].to_string(),
        "b.yaml: manifest name \"x\" is already used by a.yaml\n  hint: give every manifest its own name"
    );
}

#[test]
fn selection_by_glob_and_labels() {
    let web = manifest(
        "web.yaml",
        "name: web\nhosts: [\"web-*\"]\nfiles:\n  /etc/web: {}\n",
    );
    let prod = manifest(
        "prod.yaml",
        "name: prod\nlabels: {env: prod}\nfiles:\n  /etc/prod: {}\n",
    );
    let both = manifest(
        "both.yaml",
        "name: both\nhosts: [\"web-*\"]\nlabels: {env: prod}\nfiles:\n  /etc/both: {}\n",
    );
    let debian = manifest(
        "debian.yaml",
        "name: debian\nfacts: {os: debian, os_version: \"12*\", arch: x86_64}\nfiles:\n  /etc/debian_version: {}\n",
    );
    let set = ManifestSet::new(vec![web, prod, both, debian]).expect("valid set");
    let host = |id: &str, env: Option<&str>| HostIdentity {
        host_id: id.into(),
        labels: env
            .map(|e| BTreeMap::from([("env".to_string(), e.to_string())]))
            .unwrap_or_default(),
        facts: BTreeMap::new(),
    };
    let on = |os: &str, version: &str| HostIdentity {
        facts: BTreeMap::from([
            ("os".to_string(), os.to_string()),
            ("os_version".to_string(), version.to_string()),
            ("arch".to_string(), "x86_64".to_string()),
        ]),
        ..host("db-1", None)
    };
    let cases = [
        (host("web-1", None), vec!["/etc/web"]),
        (
            host("web-1", Some("prod")),
            vec!["/etc/both", "/etc/prod", "/etc/web"],
        ),
        (host("db-1", Some("prod")), vec!["/etc/prod"]),
        (host("db-1", Some("test")), vec![]),
        (on("debian", "12"), vec!["/etc/debian_version"]),
        (on("debian", "11"), vec![]),
        (on("ubuntu", "12"), vec![]),
    ];
    for (h, want) in cases {
        let desired = set.desired_for(&h);
        assert_eq!(
            desired.files.keys().map(String::as_str).collect::<Vec<_>>(),
            want,
            "{h:?}"
        );
    }
}

#[test]
fn oversized_manifest_is_refused() {
    let huge = format!(
        "name: x\nhosts: [\"*\"]\n#{}\n",
        "x".repeat(MAX_MANIFEST_BYTES)
    );
    assert_eq!(errors(&huge), ["m.yaml: manifest is larger than 4 MiB"]);
}

#[test]
fn alias_bombs_are_rejected() {
    let mut text =
        String::from("name: x\nhosts: [\"*\"]\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("m.yaml"), "{errs:?}");
}

#[test]
fn packages_parse_in_both_forms() {
    let m = ok(
        "name: x\nhosts: [\"*\"]\npackages:\n  openssh-server: \">= 1:9.2p1\"\n  nginx: present\n  telnet: absent\n  curl: {version: \">= 7.88, < 8\", manager: dpkg, arch: amd64}\n  vim: {manager: rpm}\n",
    );
    let spec = |name: &str| {
        m.packages
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.spec.clone())
            .expect("declared")
    };
    assert_eq!(spec("openssh-server").want.to_string(), ">= 1:9.2p1");
    assert_eq!(spec("nginx").want, Want::Present);
    assert_eq!(spec("telnet").want, Want::Absent);
    let curl = spec("curl");
    assert_eq!(
        (curl.want.to_string(), curl.manager, curl.arch.as_deref()),
        (
            ">= 7.88, < 8".to_string(),
            Some(Manager::Dpkg),
            Some("amd64")
        )
    );
    assert_eq!(
        (spec("vim").want, spec("vim").manager),
        (Want::Present, Some(Manager::Rpm))
    );
    assert_eq!(
        m.packages
            .iter()
            .find(|p| p.name == "curl")
            .map(|p| p.declared_at.line),
        Some(7)
    );
}

#[test]
fn conflicting_package_declarations_are_rejected() {
    let a = manifest(
        "a.yaml",
        "name: a\nhosts: [\"*\"]\npackages:\n  nginx: present\n",
    );
    let b = manifest(
        "b.yaml",
        "name: b\nhosts: [\"web-*\"]\npackages:\n  nginx: absent\n",
    );
    let errs = ManifestSet::new(vec![a, b]).expect_err("conflict");
    assert_eq!(
        errs[0].to_string(),
        "b.yaml:4: nginx is declared differently here and at a.yaml:4, and both manifests may select the same host\n  hint: declare it once, or make the manifests' hosts/labels disjoint"
    );
}

#[test]
fn manifests_for_different_facts_do_not_conflict() {
    let debian = manifest(
        "d.yaml",
        "name: d\nfacts: {os: debian}\npackages:\n  openssh-server: present\n",
    );
    let alpine = manifest(
        "a.yaml",
        "name: a\nfacts: {os: alpine}\npackages:\n  openssh-server: absent\n",
    );
    assert!(ManifestSet::new(vec![debian.clone(), alpine]).is_ok());
    let any = manifest(
        "any.yaml",
        "name: any\nhosts: [\"*\"]\npackages:\n  openssh-server: absent\n",
    );
    assert!(
        ManifestSet::new(vec![debian, any]).is_err(),
        "a host-glob manifest may select a Debian host"
    );
    assert_eq!(
        errors("name: x\nfacts: {kernel: \"6.*\"}\n"),
        [
            "m.yaml:2:9: facts: unknown field `kernel`, expected one of `os`, `os_version`, `arch`\n  hint: check the spelling; the fields a manifest takes are listed in README.md"
        ]
    );
}

#[test]
fn hosts_selected_alike_share_one_desired_state() {
    let set = ManifestSet::new(vec![
        manifest(
            "all.yaml",
            "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    mode: \"0644\"\n",
        ),
        manifest(
            "web.yaml",
            "name: web\nhosts: [\"web-*\"]\nfiles:\n  /etc/nginx.conf:\n    mode: \"0644\"\n",
        ),
    ])
    .expect("valid");
    let host = |id: &str| HostIdentity {
        host_id: id.into(),
        labels: BTreeMap::new(),
        facts: BTreeMap::new(),
    };
    let (web1, web2, db) = (
        set.desired_for(&host("web-1")),
        set.desired_for(&host("web-2")),
        set.desired_for(&host("db-1")),
    );
    assert!(
        std::sync::Arc::ptr_eq(&web1, &web2),
        "one copy for both web hosts"
    );
    assert!(!std::sync::Arc::ptr_eq(&web1, &db));
    assert_eq!(web1.manifests, ["all", "web"]);
    assert_eq!(db.manifests, ["all"]);
    // So is the key list each host's observations are kept in: made once, sorted.
    assert!(std::sync::Arc::ptr_eq(&web1.key_list(), &web2.key_list()));
    assert_eq!(
        web1.key_list()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["file:/etc/motd", "file:/etc/nginx.conf"]
    );
    assert_eq!(db.key_list().len(), 1);
    // A set reloaded from the same manifests starts its own copies.
    let reloaded = ManifestSet::new(set.manifests().to_vec()).expect("valid");
    assert!(!std::sync::Arc::ptr_eq(
        &reloaded.desired_for(&host("web-1")),
        &web1
    ));
}

// Regression (issue 12, weak): a path written twice in one manifest was accepted, the last
// declaration won, and "declared at" named the first.
#[test]
fn a_path_or_package_written_twice_is_an_error_at_the_second() {
    let e = errors(
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    mode: \"0644\"\n  /etc/b: {}\n  /etc/a:\n    mode: \"0600\"\npackages:\n  nginx: present\n  nginx: absent\n",
    );
    assert_eq!(
        e,
        [
            "m.yaml:7:3: /etc/a is declared twice in this manifest (first at line 4)\n  hint: declare it once: YAML would keep only the last, silently",
            "m.yaml:11:3: nginx is declared twice in this manifest (first at line 10)\n  hint: declare it once: YAML would keep only the last, silently",
        ]
    );
}

// Regression (issue 12, weak): `/etc/app.conf: {absent: true}` together with `/etc/app.conf/x`
// was accepted: no host can satisfy both.
#[test]
fn a_path_below_an_absent_path_or_a_file_is_a_contradiction() {
    let one = manifest(
        "one.yaml",
        "name: one\nhosts: [\"*\"]\nfiles:\n  /etc/app.conf:\n    absent: true\n  /etc/app.conf/x: {}\n  /etc/motd:\n    content: \"hi\"\n",
    );
    let errs: Vec<String> = ManifestSet::new(vec![one])
        .expect_err("contradiction")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        [
            "one.yaml:6: /etc/app.conf/x is declared below /etc/app.conf, which is declared absent at one.yaml:4: no host can have both\n  hint: drop one of the two, or declare /etc/app.conf a directory"
        ]
    );

    // Across manifests that may select the same host; not across disjoint ones.
    let files = manifest(
        "files.yaml",
        "name: files\nhosts: [\"web-*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\"\n",
    );
    let below = |hosts: &str| {
        manifest(
            "below.yaml",
            &format!("name: below\nhosts: [\"{hosts}\"]\nfiles:\n  /etc/motd/part: {{}}\n"),
        )
    };
    let errs = ManifestSet::new(vec![files.clone(), below("web-1")]).expect_err("overlap");
    assert!(
        errs[0].to_string().contains("which is declared a file"),
        "{errs:?}"
    );
    assert!(ManifestSet::new(vec![files, below("db-*")]).is_ok());
}

#[test]
fn paths_are_written_in_the_one_form_agents_report_names_in() {
    let m = ok("name: m\nhosts: [\"*\"]\nfiles:\n  /etc/ex.d/evil\\xff: {}\n  '/etc/a\\\\b': {}\n");
    let paths: Vec<&str> = m.files.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["/etc/ex.d/evil\\xff", "/etc/a\\\\b"]);
    for bad in ["/etc/a\\b", "/etc/\\x41", "/etc/\\xFF"] {
        let e = errors(&format!(
            "name: m\nhosts: [\"*\"]\nfiles:\n  '{bad}': {{}}\n"
        ));
        assert!(
            e[0].contains("is not a path as plumb writes names"),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn ignores_join_their_exclusive_directories_and_mistakes_are_placed() {
    let m = ok(
        "name: x\nhosts: [\"*\"]\nignore: [\"*.swp\", \"/etc/sudoers.d/*~\", \"**/__pycache__/**\"]\nfiles:\n  /etc/sudoers.d:\n    exclusive: true\n    ignore: [\"*.dpkg-*\"]\n  /etc/cron.d:\n    exclusive: true\n",
    );
    assert_eq!(
        spec(&m, "/etc/sudoers.d").ignore,
        [
            "*.dpkg-*",
            "*.swp",
            "/etc/sudoers.d/*~",
            "**/__pycache__/**"
        ],
        "its own names, then the manifest's patterns that can reach it"
    );
    assert_eq!(
        spec(&m, "/etc/cron.d").ignore,
        ["*.swp", "**/__pycache__/**"]
    );
    assert!(super::validate::could_match_below(
        "/var/**/cache",
        "/var/lib"
    ));
    assert!(!super::validate::could_match_below("/etc/*/x", "/etc/a/b"));
    assert_eq!(
        errors(
            "name: x\nhosts: [\"*\"]\nignore: [\"/opt/*.swp\", \"etc/*\"]\nfiles:\n  /etc/d:\n    exclusive: true\n  /etc/f:\n    ignore: [\"a/b\"]\n"
        ),
        [
            "m.yaml:3:1: ignore \"/opt/*.swp\" can never match: it names no entry of this manifest's exclusive directories (/etc/d)\n  hint: an exclusive directory's own entries are what is listed; deeper paths are declared on their own",
            "m.yaml:3:1: ignore \"etc/*\": a path pattern must be absolute or begin with **/\n  hint: write /etc/**/*.swp or **/__pycache__/** for paths, or *.swp for a name anywhere",
            "m.yaml:7:3: /etc/f: ignore applies to the entries of an exclusive directory\n  hint: add exclusive: true, or drop ignore",
            "m.yaml:7:3: /etc/f: ignore \"a/b\" is not a name of the directory's entries\n  hint: write names such as *.swp or *.dpkg-*; path globs go in the manifest's top-level ignore",
        ]
    );
    assert_eq!(
        errors("name: x\nhosts: [\"*\"]\nignore: [\"*.swp\"]\n"),
        [
            "m.yaml:3:1: ignore \"*.swp\" can never match: this manifest declares no exclusive directory\n  hint: ignore applies to the entries of exclusive directories (exclusive: true) and to the matches of a baseline's globs"
        ]
    );
}

mod baseline;
