//! Version ordering checked against the real `dpkg --compare-versions` and rpm's own test cases.

use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

/// Families dpkg gets wrong in naive implementations: epochs, `~`, `+`, letters against digits,
/// leading zeros, empty and missing revisions.
const TRICKY: &[&str] = &[
    "0",
    "0:0",
    "1",
    "1.0",
    "1.0-0",
    "1.0-1",
    "1.0-1.1",
    "1.0-1+b1",
    "1.0-1~bpo1",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0~~",
    "1.0~~a",
    "1.0~",
    "1.0+",
    "1.0+dfsg",
    "1.0+dfsg-1",
    "1.0a",
    "1.0.a",
    "1.0.0",
    "1.00",
    "1.01",
    "1.1",
    "1.10",
    "1.9",
    "1:0.1",
    "1:1.0",
    "2:0",
    "10",
    "9",
    "1.0-a",
    "1.0-A",
    "1.0-10",
    "1.0-9",
    "1.0-0.1",
    "1.2.3-4ubuntu1",
    "1.2.3-4ubuntu1.1",
    "2.30-12+deb12u1",
    "2.30-12",
    "7.88.1-10+deb12u5",
    "1:9.2p1-2+deb12u3",
    "1:9.2p1-2",
    "9.2p1",
    "0.9",
    "0.10",
    "1.0.1~git20200101",
    "1.0.1",
    "3.0~beta-1",
    "3.0-1",
    "1.0-1~",
    "1.0-1~~",
    "1.0-1a",
    "1.0-1.",
    "1.0+~",
    "1.0~+",
    "5:1",
    "1.0-0ubuntu0",
    "0.0.0",
    "00:1.0",
    "1.0-00",
];

fn dpkg_versions_on_this_machine() -> Vec<String> {
    let status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap_or_default();
    let mut versions: Vec<String> = status
        .lines()
        .filter_map(|l| l.strip_prefix("Version: "))
        .map(str::to_owned)
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// Asks the real dpkg about every pair, in one shell.
fn dpkg_orders(pairs: &[(String, String)]) -> Vec<Ordering> {
    let script = r#"while read -r a b; do
        if dpkg --compare-versions "$a" lt "$b"; then echo '<';
        elif dpkg --compare-versions "$a" eq "$b"; then echo '=';
        else echo '>'; fi
    done"#;
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sh");
    let mut input = String::new();
    for (a, b) in pairs {
        input.push_str(&format!("{a} {b}\n"));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("dpkg answers");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| match l {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            _ => Ordering::Greater,
        })
        .collect()
}

#[test]
fn dpkg_order_matches_the_real_dpkg() {
    let real = dpkg_versions_on_this_machine();
    assert!(
        real.len() > 100,
        "expected this Debian machine's package versions in /var/lib/dpkg/status"
    );
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (i, a) in TRICKY.iter().enumerate() {
        for b in &TRICKY[i..] {
            pairs.push((a.to_string(), b.to_string()));
        }
    }
    // Real versions against neighbours near and far in sorted order, and against the tricky set.
    for (i, a) in real.iter().enumerate() {
        for step in [1, 7, 61] {
            if let Some(b) = real.get((i + step) % real.len()) {
                pairs.push((a.clone(), b.clone()));
            }
        }
        pairs.push((a.clone(), TRICKY[i % TRICKY.len()].to_string()));
    }
    assert!(pairs.len() > 2000, "{} pairs", pairs.len());
    let want = dpkg_orders(&pairs);
    assert_eq!(want.len(), pairs.len(), "dpkg answered every pair");
    let mismatches: Vec<_> = pairs
        .iter()
        .zip(&want)
        .filter_map(|((a, b), w)| {
            let got = compare(Manager::Dpkg, a, b);
            (got.as_ref() != Ok(w)).then(|| format!("{a} vs {b}: dpkg {w:?}, plumb {got:?}"))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} pairs differ:\n{}",
        mismatches.len(),
        pairs.len(),
        mismatches.join("\n")
    );
}

#[test]
fn dpkg_rejects_malformed_versions() {
    for bad in ["", "a1.0", "1.0 2", "x:1.0", "1.0-", "1:", "1.0_1", "-1"] {
        assert!(
            validate(Manager::Dpkg, bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

/// rpm's own test suite (tests/rpmvercmp.at), as (a, b, expected order).
const RPM_CASES: &[(&str, &str, i8)] = &[
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("8", "xyz.4", 1),
    ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1),
    ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1),
    ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1),
    ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("20101122", "20101121", 1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("2_0", "2.0", 0),
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("a_", "a+", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("_a", "+a", 0),
    ("+_", "+_", 0),
    ("_+", "+_", 0),
    ("_+", "_+", 0),
    ("+", "_", 0),
    ("_", "+", 0),
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1),
    ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
];

#[test]
fn rpmvercmp_matches_rpms_test_suite() {
    for (a, b, want) in RPM_CASES {
        let want = want.cmp(&0);
        assert_eq!(rpm::rpmvercmp(a, b), want, "rpmvercmp({a}, {b})");
    }
}

#[test]
fn rpm_epoch_version_release() {
    let cases = [
        ("1:1.0-1", "2.0-1", Ordering::Greater),
        ("0:1.0-1", "1.0-1", Ordering::Equal),
        ("1.0-1", "1.0-2", Ordering::Less),
        ("1.0", "1.0-2", Ordering::Equal), // a release is compared only when both have one
        ("1.0-1.el9", "1.0-1.el9_2", Ordering::Less),
    ];
    for (a, b, want) in cases {
        assert_eq!(compare(Manager::Rpm, a, b), Ok(want), "{a} vs {b}");
    }
}

#[test]
fn constraints() {
    let c = parse_constraints(">= 1.2, < 2").expect("valid");
    assert_eq!(display_constraints(&c), ">= 1.2, < 2");
    let cases = [
        ("1.2", true),
        ("1.10", true),
        ("1.2~rc1", false),
        ("2.0", false),
        ("1:1.0", false),
        ("2~beta", true),
    ];
    for (installed, want) in cases {
        assert_eq!(
            satisfies(Manager::Dpkg, installed, &c),
            Ok(want),
            "{installed} in {}",
            display_constraints(&c)
        );
    }
    assert_eq!(
        satisfies(
            Manager::Dpkg,
            "1:9.2p1-2",
            &parse_constraints(">= 1:9.2p1").expect("valid")
        ),
        Ok(true)
    );
    assert_eq!(
        satisfies(
            Manager::Dpkg,
            "2.0",
            &parse_constraints("!= 2.0").expect("valid")
        ),
        Ok(false)
    );
    assert_eq!(
        satisfies(
            Manager::Dpkg,
            "2.0-1",
            &parse_constraints("= 2.0-1").expect("valid")
        ),
        Ok(true)
    );
    assert_eq!(
        satisfies(
            Manager::Rpm,
            "2.0-1",
            &parse_constraints("== 2.0").expect("valid")
        ),
        Ok(true)
    );
    for bad in ["", "1.2", "~> 1.2", ">=", ">= 1.2 3", ">= 1,"] {
        assert!(
            parse_constraints(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}
