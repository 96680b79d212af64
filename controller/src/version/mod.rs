//! Package versions: each manager's own ordering, and the constraints manifests declare
//! (`">= 1:9.2p1"`, `">= 1.2, < 2"`). Pure.

mod apk;
mod dpkg;
mod pacman;
mod rpm;

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::problem::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Dpkg,
    Rpm,
    Apk,
    Pacman,
}

impl Manager {
    pub const ALL: [Manager; 4] = [Manager::Dpkg, Manager::Rpm, Manager::Apk, Manager::Pacman];

    pub fn as_str(self) -> &'static str {
        match self {
            Manager::Dpkg => "dpkg",
            Manager::Rpm => "rpm",
            Manager::Apk => "apk",
            Manager::Pacman => "pacman",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version that is not written as its package manager writes versions: what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidVersion(pub String);

/// `[epoch:]rest` of a trimmed, non-empty version without white space: (version, epoch, rest).
/// Shared by dpkg's and rpm's formats.
fn split_epoch(text: &str) -> Result<(&str, u64, &str), InvalidVersion> {
    let v = text.trim();
    if v.is_empty() {
        return Err(InvalidVersion("empty version".into()));
    }
    if v.contains(char::is_whitespace) {
        return Err(InvalidVersion(format!(
            "version {v:?} contains white space"
        )));
    }
    match v.split_once(':') {
        Some((e, rest)) => {
            let epoch = e
                .parse::<u64>()
                .ok()
                .filter(|_| e.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| InvalidVersion(format!("epoch in {v:?} is not a number")))?;
            Ok((v, epoch, rest))
        }
        None => Ok((v, 0, v)),
    }
}

/// One step of rpmvercmp, which pacman's vercmp derives from: the run of digits or of letters
/// at `a[*i..]` (its first byte decides which) against the run of the same kind at `b[*j..]`.
/// Both indices move past their runs. The order, if the runs decide it; `None` if they are
/// equal and the comparison goes on.
fn compare_run(a: &[u8], i: &mut usize, b: &[u8], j: &mut usize) -> Option<Ordering> {
    let numeric = a[*i].is_ascii_digit();
    let class = |c: u8| {
        if numeric {
            c.is_ascii_digit()
        } else {
            c.is_ascii_alphabetic()
        }
    };
    let (si, sj) = (*i, *j);
    while *i < a.len() && class(a[*i]) {
        *i += 1;
    }
    while *j < b.len() && class(b[*j]) {
        *j += 1;
    }
    let (mut x, mut y) = (&a[si..*i], &b[sj..*j]);
    if y.is_empty() {
        // Runs of different kinds: a number is newer than letters.
        return Some(if numeric {
            Ordering::Greater
        } else {
            Ordering::Less
        });
    }
    if numeric {
        while x.first() == Some(&b'0') {
            x = &x[1..];
        }
        while y.first() == Some(&b'0') {
            y = &y[1..];
        }
        if x.len() != y.len() {
            return Some(x.len().cmp(&y.len()));
        }
    }
    Some(x.cmp(y)).filter(|c| c.is_ne())
}

/// Checks that `version` is well formed for `manager`.
pub fn validate(manager: Manager, version: &str) -> Result<(), InvalidVersion> {
    match manager {
        Manager::Dpkg => dpkg::parse(version).map(drop),
        Manager::Rpm => rpm::parse(version).map(drop),
        Manager::Apk => apk::validate(version),
        Manager::Pacman => pacman::validate(version),
    }
}

/// Orders two versions by `manager`'s rules.
pub fn compare(manager: Manager, a: &str, b: &str) -> Result<Ordering, InvalidVersion> {
    match manager {
        Manager::Dpkg => Ok(dpkg::compare(&dpkg::parse(a)?, &dpkg::parse(b)?)),
        Manager::Rpm => Ok(rpm::compare(&rpm::parse(a)?, &rpm::parse(b)?)),
        Manager::Apk => apk::compare(a, b),
        Manager::Pacman => pacman::compare(a, b),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }
}

/// One `OP VERSION` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub op: Op,
    pub version: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.version)
    }
}

/// Parses `">= 1.2, < 2"`: terms separated by commas, all of which must hold.
pub fn parse_constraints(text: &str) -> Result<Vec<Constraint>, Problem> {
    let mut out = Vec::new();
    for term in text.split(',') {
        let term = term.trim();
        let (op, rest) = [
            ("==", Op::Eq),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ]
        .into_iter()
        .find_map(|(p, op)| term.strip_prefix(p).map(|rest| (op, rest)))
        .ok_or_else(|| {
            Problem::new(format!("invalid version constraint {term:?}"))
                .hint("write present, absent, or e.g. \">= 1.2, < 2\"")
        })?;
        let version = rest.trim();
        if version.is_empty() || version.contains(char::is_whitespace) {
            return Err(Problem::new(format!(
                "invalid version in constraint {term:?}"
            )));
        }
        out.push(Constraint {
            op,
            version: version.to_owned(),
        });
    }
    Ok(out)
}

/// Whether `installed` satisfies every constraint, by `manager`'s rules.
pub fn satisfies(
    manager: Manager,
    installed: &str,
    constraints: &[Constraint],
) -> Result<bool, InvalidVersion> {
    for c in constraints {
        if !c.op.holds(compare(manager, installed, &c.version)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn display_constraints(constraints: &[Constraint]) -> String {
    constraints
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
