//! Package databases: this machine's real one, and synthetic ones under a temp root, including
//! one caught mid-rewrite.

use std::fs;

use super::*;

const STATUS: &str = "Package: openssh-server
Status: install ok installed
Architecture: amd64
Version: 1:9.2p1-2+deb12u3
Description: secure shell server
 multi-line description

Package: telnet
Status: deinstall ok config-files
Architecture: amd64
Version: 0.17+2.4-2

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9

Package: nginx
Status: hold ok installed
Architecture: amd64
Version: 1.22.1-9

Package: curl
Status: install ok half-configured
Architecture: amd64
Version: 7.88.1-10

";

fn root_with(status: &str) -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("var/lib/dpkg/updates")).expect("mkdir");
    fs::write(dir.path().join("var/lib/dpkg/status"), status).expect("write");
    let root = Root::new(Some(dir.path().to_path_buf()));
    (dir, root)
}

fn settled(root: &Root) -> Inventory {
    match read(root) {
        Read::Settled(inv) => inv,
        Read::Unsettled(why) => panic!("unsettled: {why}"),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn request(name: &str, verify_files: bool) -> PackageRequest {
    PackageRequest {
        name: name.into(),
        verify_files,
    }
}

fn versions(inv: &Inventory, name: &str) -> Vec<(String, String, String)> {
    inv.observe(&Root::new(None), &[request(name, false)])[0]
        .instances
        .iter()
        .map(|i| (i.arch.clone(), i.version.clone(), i.state.clone()))
        .collect()
}

fn v(arch: &str, version: &str, state: &str) -> (String, String, String) {
    (arch.into(), version.into(), state.into())
}

#[test]
fn installed_held_multiarch_removed_and_transitional() {
    let (_dir, root) = root_with(STATUS);
    let inv = settled(&root);
    assert_eq!(
        versions(&inv, "openssh-server"),
        [v("amd64", "1:9.2p1-2+deb12u3", "installed")]
    );
    assert_eq!(
        versions(&inv, "telnet"),
        [],
        "config-files only: not installed"
    );
    assert_eq!(
        versions(&inv, "libc6"),
        [
            v("amd64", "2.36-9", "installed"),
            v("i386", "2.36-9", "installed")
        ]
    );
    assert_eq!(
        versions(&inv, "nginx"),
        [v("amd64", "1.22.1-9", "installed")],
        "held is installed"
    );
    assert_eq!(
        versions(&inv, "curl"),
        [v("amd64", "7.88.1-10", "half-configured")]
    );
    assert_eq!(versions(&inv, "never-heard-of"), []);
    assert_eq!(
        inv.transitional(&names(&["curl", "nginx"])),
        ["curl (half-configured)"]
    );
    assert_eq!(
        databases(&root),
        [
            ("/var/lib/dpkg/status", false),
            ("/var/lib/dpkg/updates", true),
            ("/var/lib/dpkg/diversions", false)
        ]
    );
}

#[test]
fn a_database_caught_mid_rewrite_is_unsettled_not_empty() {
    // A writer that is not atomic, stopped in the middle of a stanza.
    let cut = &STATUS[..STATUS.find("Version: 2.36-9").expect("marker") + 5];
    let (_dir, root) = root_with(cut);
    assert!(
        matches!(read(&root), Read::Unsettled(_)),
        "a partial file must not read as packages gone"
    );

    let (_dir, root) = root_with("Package: x\nArchitecture: amd64\n\n");
    assert!(
        matches!(read(&root), Read::Unsettled(_)),
        "a stanza without Status is not trusted"
    );
}

#[test]
fn the_journal_overrides_the_status_file_in_order() {
    let (dir, root) = root_with(STATUS);
    let updates = dir.path().join("var/lib/dpkg/updates");
    fs::write(updates.join("0000"), "Package: openssh-server\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 1:9.3p1-1\n").expect("write");
    fs::write(updates.join("0001"), "Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.3p1-1\n").expect("write");
    fs::write(updates.join("tmp.i"), "garbage").expect("write");
    let inv = settled(&root);
    assert_eq!(
        versions(&inv, "openssh-server"),
        [v("amd64", "1:9.3p1-1", "installed")]
    );

    fs::write(updates.join("0002"), "Package: openssh-server\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1:9.3p1-1\n").expect("write");
    assert_eq!(
        versions(&settled(&root), "openssh-server"),
        [],
        "removed in the journal"
    );
}

#[test]
fn no_package_manager_means_nothing_installed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Root::new(Some(dir.path().to_path_buf()));
    assert!(databases(&root).is_empty());
    assert_eq!(versions(&settled(&root), "bash"), []);
}

/// This machine's own dpkg database agrees with dpkg-query.
#[test]
fn reads_this_machines_dpkg_database() {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "dpkg"])
        .output()
        .expect("dpkg-query");
    let want = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!want.is_empty(), "dpkg-query knows dpkg's own version");
    let inv = settled(&Root::new(None));
    let got = versions(&inv, "dpkg");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, want);
    assert_eq!(got[0].2, "installed");
    assert!(inv.all().len() > 100, "a Debian machine has many packages");
}

fn md5(content: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn owned_files_and_conffiles_are_checked_against_the_record() {
    let conf = "hello=1\n";
    let status = format!(
        "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\nConffiles:\n /etc/hello.conf {}\n /etc/old.conf 0123456789abcdef0123456789abcdef obsolete\n\n",
        md5(conf)
    );
    let (dir, root) = root_with(&status);
    let files = [
        ("usr/bin/hello", "#!/bin/sh\necho hi\n"),
        ("usr/share/doc/hello/README", "docs\n"),
    ];
    let mut sums = String::new();
    for (path, content) in files {
        fs::create_dir_all(dir.path().join(path).parent().expect("parent")).expect("mkdir");
        fs::write(dir.path().join(path), content).expect("write");
        sums.push_str(&format!("{}  {path}\n", md5(content)));
    }
    fs::create_dir_all(dir.path().join("var/lib/dpkg/info")).expect("mkdir");
    fs::write(dir.path().join("var/lib/dpkg/info/hello.md5sums"), sums).expect("write");
    fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    fs::write(dir.path().join("etc/hello.conf"), conf).expect("write");

    let problems = |root: &Root| {
        settled(root).observe(root, &[request("hello", true)])[0]
            .problems
            .clone()
    };
    assert_eq!(problems(&root), [], "an intact package has no problems");
    assert_eq!(
        settled(&root)
            .observe_owned(&root, &[request("hello", true)])
            .1
            .iter()
            .collect::<Vec<_>>(),
        [
            "/etc/hello.conf",
            "/usr/bin/hello",
            "/usr/share/doc/hello/README"
        ]
    );

    fs::write(dir.path().join("usr/bin/hello"), "#!/bin/sh\nrm -rf /\n").expect("tamper");
    fs::remove_file(dir.path().join("usr/share/doc/hello/README")).expect("rm");
    fs::write(dir.path().join("etc/hello.conf"), "hello=2\n").expect("edit conffile");
    let found: Vec<(String, String, String)> = problems(&root)
        .into_iter()
        .map(|p| (p.path, p.expected, p.actual))
        .collect();
    assert_eq!(
        found,
        [
            (
                "/usr/bin/hello".into(),
                format!("md5 {}", md5("#!/bin/sh\necho hi\n")),
                format!("md5 {}", md5("#!/bin/sh\nrm -rf /\n"))
            ),
            (
                "/usr/share/doc/hello/README".into(),
                format!("md5 {}", md5("docs\n")),
                "missing".into()
            ),
            (
                "/etc/hello.conf".into(),
                format!("md5 {}", md5(conf)),
                format!("md5 {}", md5("hello=2\n"))
            ),
        ]
    );
    assert!(
        settled(&root).observe(&root, &[request("hello", false)])[0]
            .problems
            .is_empty(),
        "only when asked"
    );
}

/// Where a package put a file, something else may stand: a FIFO (opened for reading it would
/// block the scan thread for good), a directory. Each is reported for what it is, and the
/// package's other files are still checked.
#[test]
fn what_stands_where_a_file_should_is_reported_not_waited_on() {
    let status =
        "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n";
    let (dir, root) = root_with(status);
    let mut sums = String::new();
    for (path, content) in [
        ("usr/bin/fifo", "a"),
        ("usr/bin/dir", "b"),
        ("usr/bin/ok", "c"),
    ] {
        fs::create_dir_all(dir.path().join("usr/bin")).expect("mkdir");
        fs::write(dir.path().join(path), content).expect("write");
        sums.push_str(&format!("{}  {path}\n", md5(content)));
    }
    fs::create_dir_all(dir.path().join("var/lib/dpkg/info")).expect("mkdir");
    fs::write(dir.path().join("var/lib/dpkg/info/hello.md5sums"), sums).expect("write");
    fs::remove_file(dir.path().join("usr/bin/fifo")).expect("rm");
    nix::unistd::mkfifo(
        &dir.path().join("usr/bin/fifo"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .expect("mkfifo");
    fs::remove_file(dir.path().join("usr/bin/dir")).expect("rm");
    fs::create_dir(dir.path().join("usr/bin/dir")).expect("mkdir");
    fs::write(dir.path().join("usr/bin/ok"), "changed").expect("tamper");

    // A watchdog, not a wait for anything: the check blocked on the FIFO before.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let got = settled(&root).observe(&root, &[request("hello", true)]);
        let _ = tx.send(got);
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("verification returns with a FIFO among the package's files");
    let found: Vec<(String, String)> = got[0]
        .problems
        .iter()
        .map(|p| (p.path.clone(), p.actual.clone()))
        .collect();
    assert_eq!(
        found,
        [
            ("/usr/bin/fifo".into(), "a FIFO, not a regular file".into()),
            (
                "/usr/bin/dir".into(),
                "a directory, not a regular file".into()
            ),
            ("/usr/bin/ok".into(), format!("md5 {}", md5("changed"))),
        ]
    );
}

/// Packages are checked side by side, each by whichever thread takes it: every package's
/// problems stay its own, and the observations come back in the order they were asked for.
#[test]
fn many_packages_checked_side_by_side_keep_their_own_problems_in_order() {
    let names: Vec<String> = (0..40).map(|i| format!("pkg{i:02}")).collect();
    let status: String = names
        .iter()
        .map(|n| {
            format!("Package: {n}\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n")
        })
        .collect();
    let (dir, root) = root_with(&status);
    fs::create_dir_all(dir.path().join("var/lib/dpkg/info")).expect("mkdir");
    for n in &names {
        let mut sums = String::new();
        for f in ["a", "b", "c"] {
            let path = format!("usr/share/{n}/{f}");
            fs::create_dir_all(dir.path().join(&path).parent().expect("parent")).expect("mkdir");
            fs::write(dir.path().join(&path), format!("{n} {f}")).expect("write");
            sums.push_str(&format!("{}  {path}\n", md5(&format!("{n} {f}"))));
        }
        fs::write(
            dir.path().join(format!("var/lib/dpkg/info/{n}.md5sums")),
            sums,
        )
        .expect("write");
    }
    // Every third package has its file b changed.
    let tampered: Vec<&String> = names.iter().step_by(3).collect();
    for n in &tampered {
        fs::write(dir.path().join(format!("usr/share/{n}/b")), "changed").expect("tamper");
    }
    // Asked for in reverse, with one not installed and one not verified among them.
    let mut requests: Vec<PackageRequest> = names.iter().rev().map(|n| request(n, true)).collect();
    requests.insert(5, request("absent", true));
    requests.push(request("pkg01", false));

    let (observations, owned) = settled(&root).observe_owned(&root, &requests);
    let asked: Vec<&str> = requests.iter().map(|r| r.name.as_str()).collect();
    let got: Vec<&str> = observations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(got, asked);
    for (o, r) in observations.iter().zip(&requests) {
        let want: Vec<String> = if r.verify_files && tampered.contains(&&r.name) {
            vec![format!("/usr/share/{}/b", r.name)]
        } else {
            Vec::new()
        };
        let paths: Vec<String> = o.problems.iter().map(|p| p.path.clone()).collect();
        assert_eq!(paths, want, "{}", r.name);
    }
    assert_eq!(owned.len(), 40 * 3);
    assert!(owned.contains("/usr/share/pkg39/c"));
}

fn empty_root() -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Root::new(Some(dir.path().to_path_buf()));
    (dir, root)
}

#[test]
fn apk_database() {
    let (dir, root) = empty_root();
    fs::create_dir_all(dir.path().join("lib/apk/db")).expect("mkdir");
    let installed = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nT:the musl c library\n\nC:Q1def=\nP:busybox\nV:1.36.1-r5\nA:x86_64\nF:bin\nR:busybox\n\n";
    fs::write(dir.path().join("lib/apk/db/installed"), installed).expect("write");
    let inv = settled(&root);
    assert_eq!(
        versions(&inv, "musl"),
        [v("x86_64", "1.2.4-r2", "installed")]
    );
    assert_eq!(
        versions(&inv, "busybox"),
        [v("x86_64", "1.36.1-r5", "installed")]
    );
    assert_eq!(
        inv.observe(&root, &[request("musl", false)])[0].instances[0].manager,
        "apk"
    );
    assert_eq!(databases(&root), [("/lib/apk/db/installed", false)]);

    // Cut short while being written.
    fs::write(
        dir.path().join("lib/apk/db/installed"),
        &installed[..installed.len() - 20],
    )
    .expect("write");
    assert!(matches!(read(&root), Read::Unsettled(_)));
}

#[test]
fn pacman_database() {
    let (dir, root) = empty_root();
    let local = dir.path().join("var/lib/pacman/local");
    fs::create_dir_all(local.join("bash-5.2.015-1")).expect("mkdir");
    fs::write(local.join("ALPM_DB_VERSION"), "9\n").expect("write");
    fs::write(
        local.join("bash-5.2.015-1/desc"),
        "%NAME%\nbash\n\n%VERSION%\n5.2.015-1\n\n%BASE%\nbash\n\n%ARCH%\nx86_64\n\n",
    )
    .expect("write");
    let inv = settled(&root);
    assert_eq!(
        versions(&inv, "bash"),
        [v("x86_64", "5.2.015-1", "installed")]
    );
    assert_eq!(
        databases(&root),
        [
            ("/var/lib/pacman/local", true),
            ("/var/lib/pacman/db.lck", false)
        ]
    );

    // During a transaction pacman holds its lock, and a new package folder may lack its desc.
    fs::write(dir.path().join("var/lib/pacman/db.lck"), "").expect("lock");
    assert!(matches!(read(&root), Read::Unsettled(_)));
    fs::remove_file(dir.path().join("var/lib/pacman/db.lck")).expect("unlock");
    fs::create_dir_all(local.join("zsh-5.9-4")).expect("mkdir");
    assert!(
        matches!(read(&root), Read::Unsettled(_)),
        "a folder without desc is not a package gone"
    );
}

// Regression (issue 12, item 11): `/usr/bin/pg_config`, which postgresql-common diverts, read as
// drift of libpq-dev on a real host; dash's `/bin/sh`, perf and vim divert files too. Diverted
// files are checked where dpkg put them, as debsums does.
#[test]
fn diverted_files_are_checked_where_dpkg_put_them() {
    let status = "Package: libpq-dev\nStatus: install ok installed\nArchitecture: amd64\nVersion: 15.1-1\n\nPackage: postgresql-common\nStatus: install ok installed\nArchitecture: all\nVersion: 248\n\n";
    let (dir, root) = root_with(status);
    let write = |path: &str, content: &str| {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        fs::write(full, content).expect("write");
    };
    // libpq-dev ships /usr/bin/pg_config; postgresql-common diverts it and puts its own there.
    write("usr/bin/pg_config", "#!/usr/bin/perl wrapper\n");
    write("usr/bin/pg_config.libpq-dev", "ELF libpq's pg_config\n");
    write(
        "var/lib/dpkg/info/libpq-dev:amd64.md5sums",
        &format!("{}  usr/bin/pg_config\n", md5("ELF libpq's pg_config\n")),
    );
    write(
        "var/lib/dpkg/info/postgresql-common.md5sums",
        &format!("{}  usr/bin/pg_config\n", md5("#!/usr/bin/perl wrapper\n")),
    );
    write(
        "var/lib/dpkg/diversions",
        "/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\npostgresql-common\n",
    );
    let check = |name: &str| {
        let (obs, owned) = settled(&root).observe_owned(&root, &[request(name, true)]);
        (obs[0].problems.clone(), owned.iter().collect::<Vec<_>>())
    };
    assert_eq!(
        check("libpq-dev"),
        (vec![], vec!["/usr/bin/pg_config.libpq-dev".to_owned()]),
        "the diverted file is checked (and watched) where it is"
    );
    assert_eq!(
        check("postgresql-common"),
        (vec![], vec!["/usr/bin/pg_config".to_owned()]),
        "the diverting package's own file stays in place"
    );
    // Tampering is still found, at the diverted location.
    write("usr/bin/pg_config.libpq-dev", "tampered\n");
    let (problems, _) = check("libpq-dev");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "/usr/bin/pg_config.libpq-dev");

    // A broken diversions file is said, not guessed around.
    write("var/lib/dpkg/diversions", "/usr/bin/pg_config\n");
    let obs = settled(&root).observe(&root, &[request("libpq-dev", true)]);
    assert!(
        obs[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("diversions is malformed")),
        "{:?}",
        obs[0].error
    );
}
