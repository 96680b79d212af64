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

/// Documented apk orderings (apk-tools' own version test data), as (a, expected, b).
const APK_CASES: &[(&str, char, &str)] = &[
    ("2.34", '>', "0.1.0_alpha"),
    ("0.1.0_alpha", '=', "0.1.0_alpha"),
    ("0.1.0_alpha", '<', "0.1.3_alpha"),
    ("0.1.0_alpha2", '>', "0.1.0_alpha"),
    ("2.2.39-r1", '>', "1.0.4-r3"),
    ("1.0.4-r3", '<', "1.0.4-r4"),
    ("1.1", '>', "1.1_alpha1"),
    ("1.2.1", '>', "1.2"),
    ("1.2", '<', "1.3_alpha"),
    ("1.3_alpha2", '<', "1.3_alpha3"),
    ("0.7.0", '<', "0.8_beta1"),
    ("3.10.18-r1", '>', "2.3.0b-r1"),
    ("2.3.0b-r1", '<', "2.3.0b-r2"),
    ("0.12.3", '>', "0.12"),
    ("0.12", '<', "0.13_beta1"),
    ("1.2.11", '<', "1.2.12.1"),
    ("0.2.0-r1", '<', "3.1_p16"),
    ("3.1_p16", '<', "3.1_p17"),
    ("1.06-r6", '<', "006"),
    ("1.2.2-r1", '>', "1.2.2"),
    ("9.3.4-r2", '>', "9.3.4"),
    ("3.9.8-r5", '>', "2.01.01_alpha10"),
    ("1.0", '>', "0.99.3.20040818"),
    ("1.00_beta2", '>', "0.9.2"),
    ("4.2.52_p2-r1", '<', "4.2.52_p4-r2"),
    ("2.18.3-r10", '>', "1.05-r18"),
    ("20060720", '>', "3.0.20060720"),
    ("2.5.1-r8", '<', "2.5.1a-r1"),
    ("1.3.5-r10", '>', "1.3.5-r8"),
    ("20040401", '>', "2.0.0_rc3-r1"),
    ("3.0.0-r2", '<', "021109-r3"),
    ("3.9_pre20060124", '>', "0.01"),
    ("1.1.7", '<', "6b-r7"),
    ("0.10.0", '<', "0.10.1_rc1"),
    ("2.0.2", '>', "1.1a"),
    ("1.1a", '<', "1.3a"),
    ("1.0-r1", '>', "0.15.1b"),
    ("0.15.1b-r2", '>', "0.15.1b"),
    ("22.7.3-r1", '>', "22.7"),
    ("2.1_pre20", '<', "2.1_pre26"),
    ("2.10.1", '>', "02.08.01b"),
    ("3.81", '>', "1.6d"),
    ("1.2.07.8", '<', "1.2.12.04"),
    ("1.07-r1", '<', "1.07.5"),
    ("0.1_pre20060810", '<', "0.1_pre20060817"),
    ("3.3.17", '>', "0.59s-r11"),
    ("4.20", '>', "0.20070118"),
    ("0.20070118", '<', "0.20070207_rc1"),
    ("4.5_p1-r1", '>', "4.5_p1"),
    ("0.9.8c-r1", '<', "0.9.8d"),
    ("2.2.3-r2", '<', "013"),
    ("1.7", '<', "1.7b"),
    ("1.8.5", '<', "1.8.5_p2"),
    ("2.9.11_pre20051101-r3", '>', "2.9.11_pre20051101"),
    ("1.6.8_p12-r1", '>', "1.6.8_p9-r2"),
    ("0.9.28-r2", '<', "0.9.28.1"),
    ("104-r11", '>', "104-r9"),
    ("5.52-r1", '>', "1.2.5_rc2"),
    ("20040406-r1", '>', "2.12r-r4"),
    ("7.0.17", '<', "7.0.174"),
    ("1.3-r0", '<', "1.3.1-r0"),
    ("1.3_pre1-r1", '<', "1.3.2"),
    ("1.0_p10-r0", '>', "1.0_p9-r0"),
    ("0.1.0_alpha_pre2", '<', "0.1.0_alpha"),
    (
        "1.0.0_pre20191002222144-r0",
        '<',
        "1.0.0_pre20210530193627-r0",
    ),
    ("1.0", '<', "1.0_cvs"),
    ("1.0_cvs", '<', "1.0_git"),
    ("1.0_hg", '<', "1.0_p"),
];

fn order(c: char) -> Ordering {
    match c {
        '<' => Ordering::Less,
        '=' => Ordering::Equal,
        _ => Ordering::Greater,
    }
}

#[test]
fn apk_order_matches_apk_tools_cases() {
    for (a, op, b) in APK_CASES {
        assert_eq!(compare(Manager::Apk, a, b), Ok(order(*op)), "{a} {op} {b}");
        assert_eq!(
            compare(Manager::Apk, b, a),
            Ok(order(*op).reverse()),
            "{b} vs {a}"
        );
    }
    for bad in ["", "1.0-2", "1.0_foo", "a1", "1.0bc"] {
        assert!(
            validate(Manager::Apk, bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

/// pacman's vercmp test suite, as (a, b, expected).
const PACMAN_CASES: &[(&str, &str, i8)] = &[
    ("1.5.0", "1.5.0", 0),
    ("1.5.1", "1.5.0", 1),
    ("1.5.1", "1.5", 1),
    ("1.5.0-1", "1.5.0-1", 0),
    ("1.5.0-1", "1.5.0-2", -1),
    ("1.5.0-1", "1.5.1-1", -1),
    ("1.5.0-2", "1.5.1-1", -1),
    ("1.5-1", "1.5.1-1", -1),
    ("1.5-2", "1.5.1-1", -1),
    ("1.5-2", "1.5.1-2", -1),
    ("1.5", "1.5-1", 0),
    ("1.5-1", "1.5", 0),
    ("1.1-1", "1.1", 0),
    ("1.0-1", "1.1", -1),
    ("1.1-1", "1.0", 1),
    ("1.5b-1", "1.5-1", -1),
    ("1.5b", "1.5", -1),
    ("1.5b-1", "1.5", -1),
    ("1.5b", "1.5.1", -1),
    ("1.0a", "1.0alpha", -1),
    ("1.0alpha", "1.0b", -1),
    ("1.0b", "1.0beta", -1),
    ("1.0beta", "1.0rc", -1),
    ("1.0rc", "1.0", -1),
    ("1.5.a", "1.5", 1),
    ("1.5.b", "1.5.a", 1),
    ("1.5.1", "1.5.b", 1),
    ("1.5.b-1", "1.5.b", 0),
    ("1.5-1", "1.5.b", -1),
    ("2.0", "2_0", 0),
    ("2.0_a", "2_0.a", 0),
    ("2.0a", "2.0.a", -1),
    ("2___a", "2_a", 1),
    ("0:1.0", "0:1.0", 0),
    ("0:1.0", "0:1.1", -1),
    ("1:1.0", "0:1.0", 1),
    ("1:1.0", "0:1.1", 1),
    ("1:1.0", "2:1.1", -1),
    ("1:1.0", "0:1.0-1", 1),
    ("1:1.0-1", "0:1.1-1", 1),
    ("0:1.0", "1.0", 0),
    ("0:1.0", "1.1", -1),
    ("0:1.1", "1.0", 1),
    ("1:1.0", "1.0", 1),
    ("1:1.0", "1.1", 1),
    ("1:1.1", "1.1", 1),
];

#[test]
fn pacman_order_matches_vercmp_cases() {
    for (a, b, want) in PACMAN_CASES {
        assert_eq!(
            compare(Manager::Pacman, a, b),
            Ok(want.cmp(&0)),
            "vercmp {a} {b}"
        );
        assert_eq!(
            compare(Manager::Pacman, b, a),
            Ok(want.cmp(&0).reverse()),
            "vercmp {b} {a}"
        );
    }
}
