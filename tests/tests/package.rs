//! The Debian packages: `cargo deb` (cargo-deb, installed by `.ci/run`) builds both from the
//! metadata in agent/ and controller/Cargo.toml, with their binary and systemd unit.

use std::path::Path;
use std::process::Command;

use plumb_tests::bin;

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds the package of `crate_name` from the debug binaries into `out`; returns its path.
fn build_deb(crate_name: &str, out: &Path) -> std::path::PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Fast: the debug binaries the tests already built, stripped, gzip instead of xz.
    let built = Command::new(cargo())
        .args([
            "deb",
            "-p",
            crate_name,
            "--no-build",
            "--profile",
            "dev",
            "--strip",
        ])
        .args(["--fast", "--quiet", "--output"])
        .arg(out)
        .current_dir(&workspace)
        .output()
        .expect("run cargo deb");
    assert!(
        built.status.success(),
        "cargo deb -p {crate_name}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let path = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    assert!(path.ends_with(".deb"), "cargo deb printed {path:?}");
    path.into()
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_debian_packages_hold_the_binaries_and_their_units() {
    let available = Command::new(cargo())
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !plumb_tests::have_or_skip(
        available,
        "cargo-deb (`cargo install cargo-deb`; .ci/run installs it)",
    ) {
        return;
    }
    // The binaries must exist before packaging.
    assert!(bin("plumb").is_file() && bin("plumb-agent").is_file());
    let tmp = tempfile::tempdir().expect("temp dir");
    for (crate_name, package, binary, unit) in [
        (
            "plumb-agent",
            "plumb-agent",
            "plumb-agent",
            "plumb-agent.service",
        ),
        (
            "plumb-controller",
            "plumb",
            "plumb",
            "plumb-controller.service",
        ),
    ] {
        let deb = build_deb(crate_name, tmp.path());
        let listing = dpkg_deb(&["-c"], &deb);
        let has = |path: &str| {
            listing
                .lines()
                .any(|l| l.split_whitespace().last() == Some(path))
        };
        let bin_line = format!("./usr/bin/{binary}");
        assert!(has(&bin_line), "{package} lacks {bin_line}:\n{listing}");
        let unit_path = format!("./usr/lib/systemd/system/{unit}");
        assert!(has(&unit_path), "{package} lacks {unit_path}:\n{listing}");
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(&bin_line)),
            "{bin_line} is not executable:\n{listing}"
        );

        let info = dpkg_deb(&["-f"], &deb);
        assert!(info.contains(&format!("Package: {package}\n")), "{info}");
        // The packaged unit is the one `install` writes, for /usr/bin.
        let control = tmp.path().join(format!("{package}-control"));
        let out = Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(&control)
            .status()
            .expect("dpkg-deb -e");
        assert!(out.success());
        let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
        assert!(
            postinst.contains(&format!("deb-systemd-helper update-state {unit}")),
            "{postinst}"
        );
        let extracted = tmp.path().join(format!("{package}-files"));
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&extracted)
            .status()
            .expect("dpkg-deb -x");
        assert!(out.success());
        let packaged = std::fs::read_to_string(extracted.join(&unit_path[2..])).expect("unit");
        assert!(
            packaged.contains(&format!("ExecStart=/usr/bin/{binary} ")),
            "{packaged}"
        );
        assert!(packaged.contains("Type=notify"), "{packaged}");
    }
}
