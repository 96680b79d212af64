//! One manifest's YAML: parsed into the raw structs (`raw.rs`), then each declaration checked
//! and turned into the validated types of `mod.rs`, every mistake a `Diagnostic` with its
//! file:line:column and, where there is one, a hint.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::locate::{self, KeyPositions, key_position, section_position, unquoted_modes};
use super::raw::{RawBaseline, RawFile, RawManifest, RawPackage};
use super::{
    Baseline, Diagnostic, FileDecl, FileSpec, FileType, Glob, Location, MAX_MANIFEST_BYTES,
    Manifest, PackageDecl, PackageSpec, Want,
};
use crate::digest::Digest;
use crate::problem::Problem;
use crate::version;

/// Parses and validates one manifest. `read_source` returns the bytes of a `source:` file,
/// given as written (relative to the manifest's folder).
pub fn parse(
    file: &str,
    text: &str,
    read_source: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<Manifest, Vec<Diagnostic>> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(vec![Diagnostic::at(
            file,
            None,
            format!("manifest is larger than {} MiB", MAX_MANIFEST_BYTES >> 20),
        )]);
    }
    let raw: RawManifest =
        serde_yaml::from_str(text).map_err(|e| vec![yaml_diagnostic(file, &e)])?;
    let mut errors: Vec<Diagnostic> = unquoted_modes(text)
        .into_iter()
        .map(|pos| {
            Diagnostic::at(file, Some(pos), "mode must be a quoted string").with_hint(
                "quote the mode, e.g. mode: \"0644\" (YAML 1.1 tools read 0644 as the number 420)",
            )
        })
        .collect();
    let top = |key: &str| Some(section_position(text, key));

    if raw.name.trim().is_empty() {
        errors.push(Diagnostic::at(file, top("name"), "name cannot be empty"));
    }
    let mut hosts = Vec::new();
    for h in &raw.hosts {
        match Glob::new(h) {
            Ok(g) => hosts.push(g),
            Err(e) => errors.push(Diagnostic::at(file, top("hosts"), e)),
        }
    }
    let mut facts = BTreeMap::new();
    let wanted = [
        ("os", &raw.facts.os),
        ("os_version", &raw.facts.os_version),
        ("arch", &raw.facts.arch),
    ];
    for (key, value) in wanted {
        if let Some(v) = value {
            match Glob::new(v) {
                Ok(g) => {
                    facts.insert(key.to_owned(), g);
                }
                Err(e) => errors.push(Diagnostic::at(
                    file,
                    Some(key_position(text, "facts", key)),
                    e,
                )),
            }
        }
    }
    if raw.hosts.is_empty() && raw.labels.is_empty() && facts.is_empty() {
        errors.push(
            Diagnostic::at(
                file,
                None,
                "manifest selects no hosts: it has neither `hosts`, `labels` nor `facts`",
            )
            .with_hint("add hosts: [\"*\"] to select every host"),
        );
    }

    let manifest_ignores = check_ignores(&raw, &mut errors, |e| {
        Diagnostic::at(file, top("ignore"), e)
    });
    let mut files = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let written = KeyPositions::of(text, "files");
    for (path, raw_file) in raw.files.0 {
        if let Some(error) = duplicate(file, text, "files", &path, &mut seen) {
            errors.push(error);
            continue;
        }
        let pos = written.get(&path);
        let at = |problem: Problem| Diagnostic::at(file, Some(pos), problem);
        match validate_file(&path, raw_file.unwrap_or_default(), read_source) {
            Ok(mut spec) => {
                if spec.exclusive {
                    let applies = manifest_ignores
                        .iter()
                        .filter(|g| could_match_below(g, &path));
                    spec.ignore.extend(applies.cloned());
                }
                files.push(FileDecl {
                    path,
                    spec,
                    declared_at: Location {
                        file: file.to_owned(),
                        line: pos.line,
                    },
                })
            }
            Err(messages) => errors.extend(messages.into_iter().map(at)),
        }
    }
    let mut packages = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let written = KeyPositions::of(text, "packages");
    for (name, raw_package) in raw.packages.0 {
        if let Some(error) = duplicate(file, text, "packages", &name, &mut seen) {
            errors.push(error);
            continue;
        }
        let pos = written.get(&name);
        match validate_package(&name, raw_package) {
            Ok(spec) => packages.push(PackageDecl {
                name,
                spec,
                declared_at: Location {
                    file: file.to_owned(),
                    line: pos.line,
                },
            }),
            Err(message) => errors.push(Diagnostic::at(file, Some(pos), message)),
        }
    }

    let baseline = raw.baseline.map(|b| {
        let at = Location {
            file: file.to_owned(),
            line: section_position(text, "baseline").line,
        };
        let ignore = manifest_ignores.clone();
        validate_baseline(b, &raw.name, &hosts, ignore, at, &mut |value, problem| {
            let pos = locate::item_position(text, "baseline", value)
                .unwrap_or_else(|| section_position(text, "baseline"));
            errors.push(Diagnostic::at(file, Some(pos), problem));
        })
    });

    if errors.is_empty() {
        Ok(Manifest {
            name: raw.name,
            file: file.to_owned(),
            hosts,
            labels: raw.labels,
            facts,
            files,
            packages,
            baseline: baseline.map(Arc::new),
        })
    } else {
        errors.sort_by_key(|d| (d.line, d.column));
        Err(errors)
    }
}

/// An error if `key` was already written under `section` (counted in `seen`), placed at this
/// second (or later) writing and naming the first.
fn duplicate(
    file: &str,
    text: &str,
    section: &str,
    key: &str,
    seen: &mut HashMap<String, usize>,
) -> Option<Diagnostic> {
    let times = seen.entry(key.to_owned()).or_insert(0);
    *times += 1;
    if *times == 1 {
        return None;
    }
    let first = key_position(text, section, key);
    let here = locate::nth_key_position(text, section, key, *times - 1);
    Some(
        Diagnostic::at(
            file,
            here,
            format!(
                "{key} is declared twice in this manifest (first at line {})",
                first.line
            ),
        )
        .with_hint("declare it once: YAML would keep only the last, silently"),
    )
}

fn yaml_diagnostic(file: &str, e: &serde_yaml::Error) -> Diagnostic {
    let pos = e.location().map(|l| locate::Pos {
        line: l.line(),
        column: l.column(),
    });
    let text = e.to_string();
    // serde_yaml appends " at line L column C"; the location is shown in front instead.
    let is_location = |rest: &str| {
        rest.split_once(" column ").is_some_and(|(l, c)| {
            [l, c]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let message = match text.rfind(" at line ") {
        Some(i) if pos.is_some() && is_location(&text[i + 9..]) => text[..i].to_owned(),
        _ => text,
    };
    let mut d = Diagnostic::at(file, pos, Problem::from_serde(&message));
    if d.hint.is_none() && d.message.contains("unknown field") {
        d.hint =
            Some("check the spelling; the fields a manifest takes are listed in README.md".into());
    }
    d
}

/// Cross-field rules for one path. Returns every problem found.
fn validate_file(
    path: &str,
    raw: RawFile,
    read_source: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<FileSpec, Vec<Problem>> {
    let mut errors: Vec<Problem> = Vec::new();
    if let Err(e) = check_path(path) {
        errors.push(e);
    }
    if raw.absent {
        let mut others = Vec::new();
        let fields = [
            ("type", raw.kind.is_some()),
            ("sha256", raw.sha256.is_some()),
            ("content", raw.content.is_some()),
            ("source", raw.source.is_some()),
            ("mode", raw.mode.is_some()),
            ("owner", raw.owner.is_some()),
            ("group", raw.group.is_some()),
            ("target", raw.target.is_some()),
            ("contains", !raw.contains.is_empty()),
            ("exclusive", raw.exclusive),
        ];
        for (name, set) in fields {
            if set {
                others.push(name);
            }
        }
        if !others.is_empty() {
            errors.push(Problem::new(format!(
                "{path}: `absent: true` cannot be combined with {}",
                others.join(", ")
            )));
        }
    }

    let content_fields: Vec<&str> = [
        ("sha256", raw.sha256.is_some()),
        ("content", raw.content.is_some()),
        ("source", raw.source.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect();
    if content_fields.len() > 1 {
        errors.push(
            Problem::new(format!(
                "{path}: give only one of sha256, content and source (found {})",
                content_fields.join(", ")
            ))
            .hint("they all declare the content"),
        );
    }
    let mut sha256 = raw.sha256.map(|s| s.0);
    let mut desired_content = None;
    if let Some(content) = &raw.content {
        sha256 = Some(Digest::of(content.as_bytes()));
        desired_content = Some(content.as_bytes().to_vec());
    }
    if let Some(source) = &raw.source {
        match read_source(source) {
            Ok(bytes) => {
                sha256 = Some(Digest::of(&bytes));
                desired_content = Some(bytes);
            }
            Err(e) => errors.push(
                Problem::new(format!("{path}: cannot read source {source:?}: {e}"))
                    .hint("source is relative to the manifest's folder"),
            ),
        }
    }

    let implied: Vec<(FileType, &str)> = [
        (FileType::File, "sha256/content/source", sha256.is_some()),
        (FileType::File, "contains", !raw.contains.is_empty()),
        (FileType::Symlink, "target", raw.target.is_some()),
        (FileType::Directory, "exclusive", raw.exclusive),
    ]
    .into_iter()
    .filter_map(|(t, why, set)| set.then_some((t, why)))
    .collect();
    let mut kind = raw.kind;
    for (t, why) in &implied {
        match kind {
            None => kind = Some(*t),
            Some(k) if k != *t => {
                errors.push(Problem::new(format!(
                    "{path}: {why} applies to a {}, but the path is declared a {}",
                    t.as_str(),
                    k.as_str()
                )));
                break;
            }
            Some(_) => {}
        }
    }
    if !raw.ignore.is_empty() && !raw.exclusive {
        errors.push(
            Problem::new(format!(
                "{path}: ignore applies to the entries of an exclusive directory"
            ))
            .hint("add exclusive: true, or drop ignore"),
        );
    }
    for g in &raw.ignore {
        if g.trim().is_empty() || g.contains('/') {
            errors.push(
                Problem::new(format!(
                    "{path}: ignore {g:?} is not a name of the directory's entries"
                ))
                .hint("write names such as *.swp or *.dpkg-*; path globs go in the manifest's top-level ignore"),
            );
        }
    }
    if raw.target.as_deref() == Some("") {
        errors.push(Problem::new(format!("{path}: target cannot be empty")));
    }
    if raw.diff && raw.sensitive {
        errors.push(
            Problem::new(format!("{path}: a sensitive file cannot allow a diff"))
                .hint("drop diff: true, its content must stay home"),
        );
    } else if raw.diff && desired_content.is_none() && raw.source.is_none() {
        // (A source that could not be read has its own error above.)
        errors.push(
            Problem::new(format!("{path}: diff: true needs the desired content"))
                .hint("declare content or source"),
        );
    }
    if errors.is_empty() {
        Ok(FileSpec {
            absent: raw.absent,
            kind,
            sha256,
            mode: raw.mode,
            owner: raw.owner,
            group: raw.group,
            target: raw.target,
            contains: raw.contains,
            exclusive: raw.exclusive,
            diff: raw.diff,
            sensitive: raw.sensitive,
            ignore: raw.ignore,
            desired_content: desired_content.filter(|_| raw.diff).map(Arc::new),
        })
    } else {
        Err(errors)
    }
}

/// The manifest's own `ignore:` patterns, checked: a name glob (no `/`) or an absolute path
/// glob, each able to match an entry of one of the manifest's exclusive directories.
fn check_ignores(
    raw: &RawManifest,
    errors: &mut Vec<Diagnostic>,
    at: impl Fn(Problem) -> Diagnostic,
) -> Vec<String> {
    let exclusive: Vec<&str> = raw
        .files
        .0
        .iter()
        .filter(|(_, f)| f.as_ref().is_some_and(|f| f.exclusive))
        .map(|(p, _)| p.as_str())
        .collect();
    // A baseline's globs take the manifest's ignores too (per-host files among their matches).
    let globbed = raw
        .baseline
        .as_ref()
        .is_some_and(|b| b.files.iter().any(|p| super::is_glob(p)));
    let mut kept = Vec::new();
    for g in &raw.ignore {
        let problem = if g.trim().is_empty() {
            Some(Problem::new("an ignore pattern cannot be empty"))
        } else if g.contains('/') && !g.starts_with('/') && !g.starts_with("**/") {
            Some(
                Problem::new(format!(
                    "ignore {g:?}: a path pattern must be absolute or begin with **/"
                ))
                .hint("write /etc/**/*.swp or **/__pycache__/** for paths, or *.swp for a name anywhere"),
            )
        } else if globbed {
            None
        } else if exclusive.is_empty() {
            Some(
                Problem::new(format!(
                    "ignore {g:?} can never match: this manifest declares no exclusive directory"
                ))
                .hint("ignore applies to the entries of exclusive directories (exclusive: true) and to the matches of a baseline's globs"),
            )
        } else if !exclusive.iter().any(|d| could_match_below(g, d)) {
            Some(
                Problem::new(format!(
                    "ignore {g:?} can never match: it names no entry of this manifest's exclusive directories ({})",
                    exclusive.join(", ")
                ))
                .hint("an exclusive directory's own entries are what is listed; deeper paths are declared on their own"),
            )
        } else {
            None
        };
        match problem {
            Some(p) => errors.push(at(p)),
            None => kept.push(g.clone()),
        }
    }
    kept
}

/// Whether ignore pattern `glob` can match an entry of directory `dir`: a name glob always
/// can; a path glob when some `dir/NAME` fits it.
pub(crate) fn could_match_below(glob: &str, dir: &str) -> bool {
    if !glob.contains('/') {
        return true;
    }
    let g: Vec<&str> = glob.split('/').filter(|s| !s.is_empty()).collect();
    let mut s: Vec<Option<&str>> = dir.split('/').filter(|s| !s.is_empty()).map(Some).collect();
    s.push(None);
    fits(&g, &s)
}

/// `g` against names where `None` is any name at all.
fn fits(g: &[&str], s: &[Option<&str>]) -> bool {
    match g.split_first() {
        None => s.is_empty(),
        Some((&"**", rest)) => (0..=s.len()).any(|i| fits(rest, &s[i..])),
        Some((first, rest)) => s.split_first().is_some_and(|(name, tail)| {
            name.is_none_or(|n| plumb_common::glob::name_matches(first, n)) && fits(rest, tail)
        }),
    }
}

/// A manifest's `baseline:`, each problem given to `error` with the value it is about (a path,
/// a package, the reference; `""` for the whole).
fn validate_baseline(
    raw: RawBaseline,
    manifest: &str,
    hosts: &[Glob],
    ignore: Vec<String>,
    declared_at: Location,
    error: &mut dyn FnMut(&str, Problem),
) -> Baseline {
    if raw.files.is_empty() && raw.packages.is_empty() {
        error(
            "",
            Problem::new("the baseline compares nothing").hint(
                "list the paths (files:) and packages (packages:) the hosts should have alike",
            ),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for path in &raw.files {
        if !seen.insert(path) {
            error(
                path,
                Problem::new(format!("{path} is listed twice in the baseline")),
            );
        } else if path.contains('[') {
            error(
                path,
                Problem::new(format!("{path}: `[` is not a glob plumb reads"))
                    .hint("write * and ? within a name, ** for any depth"),
            );
        } else if let Err(e) = check_path(path) {
            error(path, e);
        }
    }
    for name in &raw.packages {
        if !seen.insert(name) {
            error(
                name,
                Problem::new(format!("package {name} is listed twice in the baseline")),
            );
        } else if let Err(e) = check_package_name(name) {
            error(name, e);
        }
    }
    if let Some(reference) = &raw.reference {
        if reference.trim().is_empty() {
            error(
                "",
                Problem::new("the baseline's reference cannot be empty")
                    .hint("name a host, or leave reference out to compare with the majority"),
            );
        } else if !hosts.is_empty() && !hosts.iter().any(|g| g.matches(reference)) {
            error(
                "",
                Problem::new(format!(
                    "the baseline's reference {reference} is not among the hosts this manifest selects"
                ))
                .hint("the reference is one of the group it is compared with"),
            );
        }
    }
    Baseline {
        manifest: manifest.to_owned(),
        reference: raw.reference,
        files: raw.files,
        packages: raw.packages,
        ignore,
        declared_at,
    }
}

fn check_package_name(name: &str) -> Result<(), Problem> {
    let valid_name = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if valid_name {
        Ok(())
    } else {
        Err(Problem::new(format!("invalid package name {name:?}"))
            .hint("names use letters, digits, '.', '_', '+', '-'"))
    }
}

fn validate_package(name: &str, raw: RawPackage) -> Result<PackageSpec, Problem> {
    check_package_name(name)?;
    if let (Some(manager), Want::Versions(constraints)) = (raw.manager, &raw.want) {
        for c in constraints {
            version::validate(manager, &c.version).map_err(|e| {
                Problem::new(format!("package {name}: {e}"))
                    .hint(format!("versions are written as {manager} writes them"))
            })?;
        }
    }
    if raw.arch.as_deref() == Some("") {
        return Err(Problem::new(format!(
            "package {name}: arch cannot be empty"
        )));
    }
    Ok(PackageSpec {
        want: raw.want,
        manager: raw.manager,
        arch: raw.arch,
        verify_files: raw.verify_files,
    })
}

fn check_path(path: &str) -> Result<(), Problem> {
    let normal = path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && !path.contains('\0');
    if !normal {
        return Err(
            Problem::new(format!("{path:?} is not a normalized absolute path"))
                .hint("write it like /etc/app/app.conf (no trailing slash, no . or ..)"),
        );
    }
    // Names are bytes; a path is written in the one text form agents report them in.
    plumb_proto::names::unescape(path).map(|_| ()).map_err(|e| {
        Problem::new(format!("{path:?} is not a path as plumb writes names: {e}")).hint(
            "a backslash is written \\\\ and a byte that is not UTF-8 as \\xHH (lower-case), e.g. /etc/ex.d/evil\\xff",
        )
    })
}
