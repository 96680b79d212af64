//! Globs a plan asks the agent to expand (`PathSpec.expand`): every file and symlink under the
//! root a glob matches, and the directories a walk for them enters, which the session
//! watches so that a path that comes to match is seen. Symlinked directories are not entered
//! (a link is a match of its own, or nothing).

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt as _;

use plumb_common::glob;

use super::files::Request;
use crate::root::Root;

/// Matches of one glob observed, at most; past it, the rest are said to be left out.
pub const MAX_MATCHES: usize = 10_000;

/// What the plan's globs match now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expanded {
    /// Each match, with the index of the glob that matched it (its request says how to
    /// observe it).
    pub paths: Vec<(String, usize)>,
    /// The directories the walks entered (and each glob's base, where it exists).
    pub dirs: BTreeSet<String>,
    /// Globs with more than `MAX_MATCHES` matches: what is said instead of the rest.
    pub over: Vec<String>,
}

/// The matches of every glob of `globs` (their paths are globs) under `root`, leaving out
/// what a glob's ignore patterns name.
pub fn expand(root: &Root, globs: &[Request]) -> Expanded {
    let mut out = Expanded::default();
    let mut seen = BTreeSet::new();
    for (index, g) in globs.iter().enumerate() {
        let pattern = &*g.path;
        let ignored = |path: &str, name: &str| {
            g.ignore.iter().any(|i| {
                if i.contains('/') {
                    glob::path_matches(i, path)
                } else {
                    glob::name_matches(i, name)
                }
            })
        };
        let mut count = 0;
        let mut stack = vec![glob::base(pattern)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(root.host_path(&dir)) else {
                continue;
            };
            out.dirs.insert(dir.clone());
            let mut names: Vec<(String, std::fs::FileType)> = entries
                .flatten()
                .filter_map(|e| {
                    let name = plumb_proto::names::escape(e.file_name().as_bytes());
                    Some((name, e.file_type().ok()?))
                })
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, kind) in names {
                let path = if dir == "/" {
                    format!("/{name}")
                } else {
                    format!("{dir}/{name}")
                };
                if ignored(&path, &name) {
                    continue;
                }
                if kind.is_dir() {
                    if glob::may_lead_below(pattern, &path) {
                        stack.push(path);
                    }
                } else if glob::path_matches(pattern, &path) {
                    if count == MAX_MATCHES {
                        out.over.push(format!(
                            "{pattern}: more than {MAX_MATCHES} paths match; the rest are not observed"
                        ));
                        stack.clear();
                        break;
                    }
                    count += 1;
                    if seen.insert(path.clone()) {
                        out.paths.push((path, index));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::files::Ignore;

    fn glob_request(path: &str, ignore: &[&str]) -> Request {
        Request {
            path: path.into(),
            hash: true,
            contains: Default::default(),
            list_entries: false,
            allow_content: false,
            sensitive: false,
            ignore: Ignore::new(ignore.iter().map(|i| (*i).into()).collect()),
        }
    }

    #[test]
    fn a_glob_matches_files_and_links_below_its_base_and_leaves_out_what_it_ignores() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let at = |p: &str| tmp.path().join(p.trim_start_matches('/'));
        for dir in ["etc/nginx/sites", "etc/nginx/conf.d/deep", "etc/other"] {
            std::fs::create_dir_all(at(dir)).expect("mkdir");
        }
        for file in [
            "etc/nginx/nginx.conf",
            "etc/nginx/sites/a.conf",
            "etc/nginx/conf.d/deep/b.conf",
            "etc/nginx/conf.d/x.swp",
            "etc/other/c.conf",
        ] {
            std::fs::write(at(file), "x").expect("write");
        }
        std::os::unix::fs::symlink("a.conf", at("etc/nginx/sites/default")).expect("symlink");
        let root = Root::new(Some(tmp.path().to_owned()));
        let e = expand(
            &root,
            &[
                glob_request("/etc/nginx/**", &["*.swp"]),
                glob_request("/etc/*/c.conf", &[]),
            ],
        );
        let paths: Vec<(&str, usize)> = e.paths.iter().map(|(p, i)| (p.as_str(), *i)).collect();
        assert_eq!(
            paths,
            [
                ("/etc/nginx/nginx.conf", 0),
                ("/etc/nginx/sites/a.conf", 0),
                ("/etc/nginx/sites/default", 0),
                ("/etc/nginx/conf.d/deep/b.conf", 0),
                ("/etc/other/c.conf", 1),
            ]
        );
        assert_eq!(
            e.dirs.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "/etc",
                "/etc/nginx",
                "/etc/nginx/conf.d",
                "/etc/nginx/conf.d/deep",
                "/etc/nginx/sites",
                "/etc/other"
            ]
        );
        assert!(e.over.is_empty());
    }

    #[test]
    fn past_the_most_matches_a_glob_says_so() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("var/many");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..=MAX_MATCHES {
            std::fs::File::create(dir.join(format!("f{i:05}"))).expect("create");
        }
        let root = Root::new(Some(tmp.path().to_owned()));
        let e = expand(&root, &[glob_request("/var/many/*", &[])]);
        assert_eq!(e.paths.len(), MAX_MATCHES);
        assert_eq!(
            e.over,
            ["/var/many/*: more than 10000 paths match; the rest are not observed"]
        );
    }
}
