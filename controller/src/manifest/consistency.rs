//! What a set of manifests must agree on, beyond each being valid: unique names, one
//! declaration of a path or package for a host, nothing declared below what cannot have
//! entries, one baseline for a key, and plans an agent accepts.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Diagnostic, FileDecl, FileType, Manifest, PackageDecl};
use crate::key::Key;

/// Every disagreement among `manifests` (sorted by file), each with where it is.
pub(super) fn check(manifests: &[Manifest]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut seen: BTreeMap<&str, &Manifest> = BTreeMap::new();
    for m in manifests {
        if let Some(first) = seen.insert(&m.name, m) {
            errors.push(
                Diagnostic::at(
                    &m.file,
                    None,
                    format!(
                        "manifest name {:?} is already used by {}",
                        m.name, first.file
                    ),
                )
                .with_hint("give every manifest its own name"),
            );
        }
    }
    // Each manifest's files by path and packages by name, looked up from every other it may
    // overlap (a walk of one's files for each of the other's took 9 s over ten manifests of
    // 10,000 paths).
    let by_path: Vec<HashMap<&str, &FileDecl>> = manifests
        .iter()
        .map(|m| m.files.iter().map(|d| (d.path.as_str(), d)).collect())
        .collect();
    let by_name: Vec<HashMap<&str, &PackageDecl>> = manifests
        .iter()
        .map(|m| m.packages.iter().map(|d| (d.name.as_str(), d)).collect())
        .collect();
    for (i, a) in manifests.iter().enumerate() {
        for (j, b) in manifests.iter().enumerate().skip(i + 1) {
            if !a.may_overlap(b) {
                continue;
            }
            let files = a.files.iter().filter_map(|da| {
                let db = by_path[j].get(da.path.as_str())?;
                (da.spec != db.spec).then_some((da.path.as_str(), &da.declared_at, &db.declared_at))
            });
            let packages = a.packages.iter().filter_map(|pa| {
                let pb = by_name[j].get(pa.name.as_str())?;
                (pa.spec != pb.spec).then_some((pa.name.as_str(), &pa.declared_at, &pb.declared_at))
            });
            for (what, first, second) in files.chain(packages) {
                errors.push(Diagnostic {
                    file: second.file.clone(),
                    line: Some(second.line),
                    column: None,
                    message: format!(
                        "{what} is declared differently here and at {first}, and both manifests may select the same host"
                    ),
                    hint: Some("declare it once, or make the manifests' hosts/labels disjoint".into()),
                });
            }
        }
    }
    errors.extend(contradictions(manifests));
    errors.extend(compared_twice(manifests));
    errors.extend(too_many_for_a_plan(
        manifests,
        plumb_proto::MAX_PLAN_ENTRIES,
    ));
    errors
}

/// A path or package two baselines compare, in manifests that may select the same host: the
/// host would be in two groups for it, and no one answer would say which it should be like.
fn compared_twice(manifests: &[Manifest]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    for (i, a) in manifests.iter().enumerate() {
        let Some(first) = &a.baseline else { continue };
        for b in &manifests[i + 1..] {
            let Some(second) = b.baseline.as_ref().filter(|_| a.may_overlap(b)) else {
                continue;
            };
            let theirs: HashSet<Key> = first.keys().collect();
            for key in second.keys().filter(|k| theirs.contains(k)) {
                errors.push(Diagnostic {
                    file: second.declared_at.file.clone(),
                    line: Some(second.declared_at.line),
                    column: None,
                    message: format!(
                        "{key} is compared by this baseline and by {}'s at {}, and both manifests may select the same host",
                        a.name, first.declared_at
                    ),
                    hint: Some("compare it in one baseline, or make the manifests' hosts/labels disjoint".into()),
                });
            }
        }
    }
    errors
}

/// Manifests that could send one host a plan naming more than `max` paths, or packages, than
/// an agent accepts (`MAX_PLAN_ENTRIES`): the agent would refuse every plan, and the host would
/// never be in sync. Counted for each manifest with every other that may select the same host.
pub(super) fn too_many_for_a_plan(manifests: &[Manifest], max: usize) -> Vec<Diagnostic> {
    let paths = names(manifests, |m| {
        let compared = m.baseline.iter().flat_map(|b| &b.files);
        m.files.iter().map(|d| &d.path).chain(compared)
    });
    let packages = names(manifests, |m| {
        let compared = m.baseline.iter().flat_map(|b| &b.packages);
        m.packages.iter().map(|d| &d.name).chain(compared)
    });
    let mut errors = Vec::new();
    for (what, names) in [("paths", paths), ("packages", packages)] {
        // All of them together at most: no host's plan can name more.
        if names.iter().map(Vec::len).sum::<usize>() <= max {
            continue;
        }
        for (i, m) in manifests.iter().enumerate() {
            let together = manifests
                .iter()
                .enumerate()
                .filter(|&(j, other)| j == i || m.may_overlap(other))
                .map(|(j, _)| &names[j]);
            let n = distinct(together);
            if n > max {
                errors.push(
                    Diagnostic::at(
                        &m.file,
                        None,
                        format!(
                            "this manifest and those that may select the same host name {n} {what}, more than the {max} an agent accepts in one plan"
                        ),
                    )
                    .with_hint("declare a directory `exclusive: true` rather than each file in it, or make the manifests' hosts/labels disjoint"),
                );
            }
        }
    }
    errors
}

/// Each manifest's names, as `of` lists them.
fn names<'a, I>(manifests: &'a [Manifest], of: impl Fn(&'a Manifest) -> I) -> Vec<Vec<&'a str>>
where
    I: Iterator<Item = &'a String>,
{
    manifests
        .iter()
        .map(|m| of(m).map(String::as_str).collect())
        .collect()
}

/// How many names the lists hold, each counted once.
fn distinct<'a>(lists: impl Iterator<Item = &'a Vec<&'a str>>) -> usize {
    let mut seen = HashSet::new();
    lists.flatten().filter(|name| seen.insert(*name)).count()
}

/// Paths declared below a path that cannot have entries (declared absent, or a file), by
/// manifests that may select the same host: no host can ever satisfy both, so one of them
/// would be drift forever, or hide drift.
fn contradictions(manifests: &[Manifest]) -> Vec<Diagnostic> {
    let mut all: Vec<(&str, usize, &FileDecl)> = manifests
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.files.iter().map(move |d| (d.path.as_str(), i, d)))
        .collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut errors = Vec::new();
    for &(path, i, decl) in &all {
        let leaf = if decl.spec.absent {
            "declared absent"
        } else if decl.spec.kind == Some(FileType::File) {
            "declared a file"
        } else {
            continue;
        };
        let below = format!("{path}/");
        let start = all.partition_point(|(p, ..)| *p < below.as_str());
        for &(child, j, child_decl) in all[start..]
            .iter()
            .take_while(|(p, ..)| p.starts_with(&below))
        {
            if i != j && !manifests[i].may_overlap(&manifests[j]) {
                continue;
            }
            errors.push(Diagnostic {
                file: child_decl.declared_at.file.clone(),
                line: Some(child_decl.declared_at.line),
                column: None,
                message: format!(
                    "{child} is declared below {path}, which is {leaf} at {}: no host can have both",
                    decl.declared_at
                ),
                hint: Some(format!("drop one of the two, or declare {path} a directory")),
            });
        }
    }
    errors
}
