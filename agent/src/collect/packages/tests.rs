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

fn versions(inv: &Inventory, name: &str) -> Vec<(String, String, String)> {
    inv.observe(&names(&[name]))[0]
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
            ("/var/lib/dpkg/updates", true)
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
