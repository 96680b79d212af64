//! Debian version comparison, as `dpkg --compare-versions` does it (deb-version(7)):
//! `[epoch:]upstream[-revision]`, compared epoch numerically, then upstream and revision
//! with dpkg's `verrevcmp` (`~` sorts before everything, even the end of the string).

use std::cmp::Ordering;

use super::InvalidVersion;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DebVersion<'a> {
    epoch: u64,
    upstream: &'a str,
    revision: &'a str,
}

pub(crate) fn parse(text: &str) -> Result<DebVersion<'_>, InvalidVersion> {
    let (v, epoch, rest) = super::split_epoch(text)?;
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    if rest.ends_with('-') {
        return Err(InvalidVersion(format!("revision in {v:?} is empty")));
    }
    if upstream.is_empty() {
        return Err(InvalidVersion(format!(
            "version {v:?} has nothing after the epoch"
        )));
    }
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(InvalidVersion(format!(
            "version {v:?} does not start with a digit"
        )));
    }
    let upstream_ok = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
    let revision_ok = |c: char| c.is_ascii_alphanumeric() || ".+~".contains(c);
    if !upstream.chars().all(upstream_ok) || !revision.chars().all(revision_ok) {
        return Err(InvalidVersion(format!(
            "version {v:?} contains a character dpkg does not allow"
        )));
    }
    if upstream.contains(':') && !v.contains(':') {
        return Err(InvalidVersion(format!(
            "version {v:?} has a colon but no epoch"
        )));
    }
    Ok(DebVersion {
        epoch,
        upstream,
        revision,
    })
}

pub(crate) fn compare(a: &DebVersion<'_>, b: &DebVersion<'_>) -> Ordering {
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream, b.upstream))
        .then_with(|| verrevcmp(a.revision, b.revision))
}

/// The weight of a non-digit character: `~` lowest, then the end of the string, then letters,
/// then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}
