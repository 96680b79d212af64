//! Observation of real files in a temp dir used as the agent's `--root`.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::*;

/// A request for `path` that asks nothing more of it (the `requests` tests use it too).
pub(super) fn req(path: &str) -> Request {
    Request {
        path: path.into(),
        hash: false,
        contains: Default::default(),
        list_entries: false,
        allow_content: false,
        sensitive: false,
        ignore: Default::default(),
    }
}

fn setup() -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("etc")).expect("etc");
    let root = Root::new(Some(dir.path().to_path_buf()));
    (dir, root)
}

fn write(dir: &Path, rel: &str, content: &[u8]) {
    fs::write(dir.join(rel), content).expect("write");
}

fn look(root: &Root, r: &Request) -> Observation {
    observe(root, r.as_ref(), &IdNames::default(), &Requests::default())
}

#[test]
fn file_attributes_and_digest() {
    let (dir, root) = setup();
    write(dir.path(), "etc/motd", b"hello\n");
    fs::set_permissions(
        dir.path().join("etc/motd"),
        fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    let o = look(
        &root,
        &Request {
            hash: true,
            ..req("/etc/motd")
        },
    );
    assert_eq!((o.kind, o.resolved_kind), (Kind::File, Kind::File));
    assert_eq!(o.mode & 0o7777, 0o640);
    assert_eq!(o.size, 6);
    // `printf 'hello\n' | sha256sum`
    assert_eq!(
        o.sha256.as_deref(),
        Some("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
    );
    assert_eq!(o.error, None);

    let unhashed = look(&root, &req("/etc/motd"));
    assert_eq!(
        unhashed.sha256, None,
        "content is hashed only when the plan asks"
    );
}

#[test]
fn absent_and_below_a_file_are_absent() {
    let (dir, root) = setup();
    write(dir.path(), "etc/file", b"x");
    assert_eq!(look(&root, &req("/etc/nope")).kind, Kind::Absent);
    assert_eq!(look(&root, &req("/etc/file/below")).kind, Kind::Absent);
}

#[test]
fn line_patterns_literal_regex_and_long_lines() {
    let (dir, root) = setup();
    // As long as a line may be and still be matched whole (longer: see
    // `a_line_too_long_to_match_leaves_its_patterns_unverifiable`).
    let long = "y".repeat(MAX_LINE);
    let text = format!(
        "# comment\n  PermitRootLogin no  \nPasswordAuthentication   no\n{long}\nlast line without newline"
    );
    write(dir.path(), "etc/sshd_config", text.as_bytes());
    let m = |p: &str, re: bool| Matcher::new(p, re).expect("valid");
    let r = Request {
        contains: vec![
            m("PermitRootLogin no", false),
            m(r"^PasswordAuthentication\s+no", true),
            m("X11Forwarding yes", false),
            m("last line without newline", false),
            m("^y{100}$", true),
            m("PermitRootLogin", false),
        ]
        .into_iter()
        .collect(),
        hash: true,
        ..req("/etc/sshd_config")
    };
    let o = look(&root, &r);
    assert_eq!(o.contains, [true, true, false, true, false, false]);
    let expect = format!("{:x}", Sha256::digest(text.as_bytes()));
    assert_eq!(
        o.sha256.as_deref(),
        Some(expect.as_str()),
        "the digest covers every byte while lines are matched"
    );
}

#[test]
fn symlinks_resolve_inside_the_root() {
    let (dir, root) = setup();
    fs::create_dir_all(dir.path().join("usr/share/zoneinfo")).expect("mkdir");
    write(dir.path(), "usr/share/zoneinfo/UTC", b"TZif");
    symlink("/usr/share/zoneinfo/UTC", dir.path().join("etc/localtime")).expect("symlink");
    let o = look(
        &root,
        &Request {
            hash: true,
            ..req("/etc/localtime")
        },
    );
    assert_eq!((o.kind, o.resolved_kind), (Kind::Symlink, Kind::File));
    assert_eq!(o.link_target.as_deref(), Some("/usr/share/zoneinfo/UTC"));
    assert_eq!(
        o.size, 4,
        "attributes are those of the target inside the root"
    );
    assert!(o.sha256.is_some());

    symlink("missing", dir.path().join("etc/dangling")).expect("symlink");
    let o = look(&root, &req("/etc/dangling"));
    assert_eq!((o.kind, o.resolved_kind), (Kind::Symlink, Kind::Absent));

    symlink("loop-b", dir.path().join("etc/loop-a")).expect("symlink");
    symlink("loop-a", dir.path().join("etc/loop-b")).expect("symlink");
    let o = look(&root, &req("/etc/loop-a"));
    assert_eq!(o.resolved_kind, Kind::Unreadable);
    assert_eq!(
        o.error.as_deref(),
        Some("too many levels of symbolic links")
    );
}

#[test]
fn directory_entries_only_when_asked() {
    let (dir, root) = setup();
    fs::create_dir_all(dir.path().join("etc/sudoers.d")).expect("mkdir");
    write(dir.path(), "etc/sudoers.d/b", b"");
    write(dir.path(), "etc/sudoers.d/a", b"");
    let o = look(
        &root,
        &Request {
            list_entries: true,
            ..req("/etc/sudoers.d")
        },
    );
    assert_eq!(o.kind, Kind::Directory);
    assert_eq!(
        (o.entries, o.entries_total),
        (vec!["a".to_owned(), "b".into()], 2)
    );
    assert!(look(&root, &req("/etc/sudoers.d")).entries.is_empty());
}

#[test]
fn a_listed_directory_reports_only_entries_that_lead_to_no_declared_path() {
    let (dir, root) = setup();
    fs::create_dir_all(dir.path().join("etc/d/sub")).expect("mkdir");
    for name in ["known", "rogue", "sub/deep", "zz"] {
        write(dir.path(), &format!("etc/d/{name}"), b"");
    }
    let listed = Request {
        list_entries: true,
        ..req("/etc/d")
    };
    let plan = Requests::new(vec![
        listed.clone(),
        req("/etc/d/known"),
        req("/etc/d/sub/deep"),
    ]);
    let o = observe(&root, listed.as_ref(), &IdNames::default(), &plan);
    assert_eq!(
        (o.entries, o.entries_total),
        (vec!["rogue".to_owned(), "zz".into()], 2)
    );
}

#[test]
fn ignored_entries_are_neither_listed_nor_counted_and_a_declared_one_still_counts_as_declared() {
    let (dir, root) = setup();
    fs::create_dir_all(dir.path().join("etc/d")).expect("mkdir");
    for i in 0..150 {
        write(dir.path(), &format!("etc/d/v{i:03}.swp"), b"");
    }
    fs::create_dir_all(dir.path().join("etc/d/__pycache__")).expect("mkdir");
    for name in ["passwd-", "ld.so.cache", "rogue", "kept.swp"] {
        write(dir.path(), &format!("etc/d/{name}"), b"");
    }
    let listed = Request {
        list_entries: true,
        ignore: Ignore::new(vec![
            "*.swp".into(),
            "*-".into(),
            "/etc/d/ld.so.*".into(),
            "**/__pycache__/**".into(),
        ]),
        ..req("/etc/d")
    };
    // kept.swp is declared: the plan wins over an ignore (it is neither listed nor
    // undeclared, as any declared entry).
    let plan = Requests::new(vec![listed.clone(), req("/etc/d/kept.swp")]);
    let o = observe(&root, listed.as_ref(), &IdNames::default(), &plan);
    assert_eq!(
        (o.entries, o.entries_total),
        (vec!["rogue".to_owned()], 1),
        "150 ignored names do not crowd out the one that matters"
    );
}

#[test]
fn a_fifo_is_reported_and_never_opened() {
    let (dir, root) = setup();
    let fifo = dir.path().join("etc/fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    // Opening a FIFO for reading would block this test forever.
    let o = look(
        &root,
        &Request {
            hash: true,
            ..req("/etc/fifo")
        },
    );
    assert_eq!(o.kind, Kind::Other);
    assert_eq!(o.sha256, None);
}

#[test]
fn user_and_group_names_come_from_the_root() {
    let (dir, root) = setup();
    write(
        dir.path(),
        "etc/passwd",
        format!(
            "someone:x:{}:0::/:/bin/sh\n",
            fs::metadata(dir.path()).expect("meta").uid()
        )
        .as_bytes(),
    );
    write(dir.path(), "etc/x", b"");
    let o = observe(
        &root,
        req("/etc/x").as_ref(),
        &IdNames::load(&root),
        &Requests::default(),
    );
    assert_eq!(o.owner.as_deref(), Some("someone"));
}

#[test]
fn a_large_file_is_hashed_in_chunks_like_sha256sum() {
    let (dir, root) = setup();
    // Not a multiple of the read size, with lines straddling chunk boundaries.
    let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc\n";
    let content: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(3 * READ_CHUNK * 7 + 13)
        .collect();
    write(dir.path(), "etc/big", &content);
    let r = Request {
        hash: true,
        contains: vec![
            Matcher::new(
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc",
                false,
            )
            .expect("valid"),
        ]
        .into_iter()
        .collect(),
        ..req("/etc/big")
    };
    let o = look(&root, &r);
    let out = std::process::Command::new("sha256sum")
        .arg(dir.path().join("etc/big"))
        .output()
        .expect("run sha256sum");
    let want = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned);
    assert_eq!(o.sha256, want);
    assert_eq!(o.contains, [true]);
}

/// Hostile trees: a huge (sparse) file, a directory of 100,000 entries, a device. None of them
/// hangs the agent; memory stays bounded by construction (fixed read buffer, capped lines).
#[test]
fn huge_files_huge_directories_and_devices() {
    let (dir, root) = setup();
    let huge = fs::File::create(dir.path().join("etc/huge")).expect("create");
    huge.set_len(64 << 20).expect("sparse 64 MiB");
    let r = Request {
        hash: true,
        contains: [Matcher::new("never", false).expect("valid")]
            .into_iter()
            .collect(),
        ..req("/etc/huge")
    };
    let o = look(&root, &r);
    // One 64 MiB line (zeros): read in bounded memory, and said to be uncheckable.
    assert_eq!((o.size, o.contains.as_slice()), (64 << 20, [].as_slice()));
    assert!(
        o.error
            .as_deref()
            .is_some_and(|e| e.starts_with("unverifiable: line 1 is longer than")),
        "{:?}",
        o.error
    );
    assert_eq!(o.sha256.as_deref().map(str::len), Some(64));

    let many = dir.path().join("etc/many");
    fs::create_dir_all(&many).expect("mkdir");
    for i in 0..100_000 {
        fs::File::create(many.join(format!("e{i}"))).expect("create");
    }
    let o = look(
        &root,
        &Request {
            list_entries: true,
            ..req("/etc/many")
        },
    );
    // Regression (issue 12, item 1): every name went into every message, and a host churning
    // an exclusive directory froze the controller. The first names and a count go instead.
    assert_eq!(o.entries.len(), plumb_proto::MAX_LISTED_ENTRIES);
    assert_eq!(o.entries_total, 100_000);
    let mut first: Vec<String> = (0..100_000).map(|i| format!("e{i}")).collect();
    first.sort();
    first.truncate(plumb_proto::MAX_LISTED_ENTRIES);
    assert_eq!(o.entries, first, "the first names in byte order");

    let dev = observe(
        &Root::new(None),
        Request {
            hash: true,
            ..req("/dev/null")
        }
        .as_ref(),
        &IdNames::default(),
        &Requests::default(),
    );
    assert_eq!(
        (dev.kind, dev.sha256),
        (Kind::Other, None),
        "a device is reported, never read"
    );
}

// Regression (issue 12, item 7): 70,000 spaces then `X11Forwarding yes` passed both
// `!X11Forwarding yes` and `!/X11Forwarding/`: lines were matched on their first 64 KiB.
#[test]
fn a_line_too_long_to_match_leaves_its_patterns_unverifiable() {
    let (dir, root) = setup();
    let mut content = b"PermitRootLogin no\n".to_vec();
    content.extend(std::iter::repeat_n(b' ', 70_000));
    content.extend(b"X11Forwarding yes\n");
    write(dir.path(), "etc/sshd_config", &content);
    let r = |patterns: &[(&str, bool)]| Request {
        hash: true,
        contains: patterns
            .iter()
            .map(|(p, regex)| Matcher::new(p, *regex).expect("valid"))
            .collect(),
        ..req("/etc/sshd_config")
    };
    let o = look(
        &root,
        &r(&[("X11Forwarding yes", false), ("X11Forwarding", true)]),
    );
    assert!(o.contains.is_empty(), "no answer claimed: {:?}", o.contains);
    assert_eq!(
        o.error.as_deref(),
        Some("unverifiable: line 2 is longer than 65536 bytes, so line patterns cannot be checked")
    );
    assert!(o.sha256.is_some(), "the digest does not depend on lines");
    // Patterns all found elsewhere are certain, long line or not.
    let o = look(&root, &r(&[("PermitRootLogin no", false)]));
    assert_eq!((o.contains.as_slice(), o.error), ([true].as_slice(), None));
}

#[test]
fn observed_on_several_threads_as_on_one_in_the_order_asked() {
    let (dir, root) = setup();
    let mut requests = Vec::new();
    for i in 0..200 {
        // Sizes from empty to past one read chunk, so threads finish out of order.
        let content = vec![b'x'; (i * 997) % (3 * READ_CHUNK)];
        write(dir.path(), &format!("etc/f{i:03}"), &content);
        let mut r = req(&format!("/etc/f{i:03}"));
        r.hash = true;
        requests.push(r);
    }
    requests.push(req("/etc/absent"));
    let plan = Requests::new(requests);
    let names = IdNames::default();
    // Not sorted, one position asked twice and one past the plan (left out).
    let mut which: Vec<usize> = (0..plan.len()).rev().collect();
    which.insert(7, 3);
    which.push(plan.len() + 5);
    let one = observe_on(1, &root, &plan, &which, &names);
    assert_eq!(one.len(), which.len() - 1);
    let positions: Vec<usize> = one.iter().map(|(i, _)| *i).collect();
    assert_eq!(positions, which[..which.len() - 1]);
    for (i, o) in &one {
        let r = plan.get(*i).expect("in the plan").to_request();
        assert_eq!(*o, look(&root, &r), "{}", r.path);
    }
    for threads in [2, 3, 64] {
        assert_eq!(
            observe_on(threads, &root, &plan, &which, &names),
            one,
            "{threads} threads"
        );
    }
    assert!(observe_on(4, &root, &plan, &[], &names).is_empty());
}
