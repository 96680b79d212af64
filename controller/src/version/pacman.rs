//! pacman version ordering (`vercmp`): `[epoch:]version[-pkgrel]`, each part compared with
//! alpm's variant of rpmvercmp (no `~`/`^`; a longer separator run sorts later; a trailing
//! letter run is a pre-release: `1.0a` < `1.0`).

use std::cmp::Ordering;

use super::{InvalidVersion, compare_run};

pub(crate) fn validate(v: &str) -> Result<(), InvalidVersion> {
    let v = v.trim();
    if v.is_empty() || v.contains(char::is_whitespace) {
        return Err(InvalidVersion(format!("{v:?} is not a pacman version")));
    }
    Ok(())
}

fn parse_evr(v: &str) -> (&str, &str, Option<&str>) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (e, rest),
        _ => ("0", v),
    };
    match rest.rsplit_once('-') {
        Some((version, release)) => (epoch, version, Some(release)),
        None => (epoch, rest, None),
    }
}

pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, InvalidVersion> {
    validate(a)?;
    validate(b)?;
    let (a, b) = (a.trim(), b.trim());
    if a == b {
        return Ok(Ordering::Equal);
    }
    let (ea, va, ra) = parse_evr(a);
    let (eb, vb, rb) = parse_evr(b);
    Ok(segments(ea, eb)
        .then_with(|| segments(va, vb))
        .then_with(|| match (ra, rb) {
            (Some(x), Some(y)) => segments(x, y),
            _ => Ordering::Equal,
        }))
}

fn segments(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (si, sj) = (i, j);
        while i < a.len() && !a[i].is_ascii_alphanumeric() {
            i += 1;
        }
        while j < b.len() && !b[j].is_ascii_alphanumeric() {
            j += 1;
        }
        if i >= a.len() || j >= b.len() {
            break;
        }
        // Different separator runs decide on their own: "2___a" after "2_a".
        if i - si != j - sj {
            return (i - si).cmp(&(j - sj));
        }
        if let Some(decided) = compare_run(a, &mut i, b, &mut j) {
            return decided;
        }
    }
    let (rest_a, rest_b) = (a.get(i).copied(), b.get(j).copied());
    match (rest_a, rest_b) {
        (None, None) => Ordering::Equal,
        // A remaining letter run never beats the end of the other version.
        (None, Some(c)) if !c.is_ascii_alphabetic() => Ordering::Less,
        (Some(c), _) if c.is_ascii_alphabetic() => Ordering::Less,
        _ => Ordering::Greater,
    }
}
