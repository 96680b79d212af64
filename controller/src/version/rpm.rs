//! RPM version comparison: `[epoch:]version[-release]` compared as rpm's `rpmvercmp` does,
//! including `~` (sorts before everything) and `^` (sorts after the end, before anything else).
//! Also the core of pacman's `vercmp`, which shares the algorithm.

use std::cmp::Ordering;

use super::{InvalidVersion, compare_run};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evr<'a> {
    epoch: u64,
    version: &'a str,
    release: Option<&'a str>,
}

pub(crate) fn parse(text: &str) -> Result<Evr<'_>, InvalidVersion> {
    let (v, epoch, rest) = super::split_epoch(text)?;
    let (version, release) = match rest.rsplit_once('-') {
        Some((ver, rel)) => (ver, Some(rel)),
        None => (rest, None),
    };
    if version.is_empty() || release == Some("") {
        return Err(InvalidVersion(format!(
            "version {v:?} has an empty version or release"
        )));
    }
    Ok(Evr {
        epoch,
        version,
        release,
    })
}

/// rpm's `rpmevrCmp`: a release is compared only when both sides have one.
pub(crate) fn compare(a: &Evr<'_>, b: &Evr<'_>) -> Ordering {
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| rpmvercmp(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            _ => Ordering::Equal,
        })
}

pub(crate) fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            match (ca, cb) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {}
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca.is_none() || cb.is_none() {
            break;
        }
        if let Some(decided) = compare_run(a, &mut i, b, &mut j) {
            return decided;
        }
    }
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (true, _) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}
