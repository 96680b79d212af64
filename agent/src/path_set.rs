//! A large set of paths held compactly: the files that packages own (90,000 and more on a
//! desktop-sized host), which the agent watches and looks up on every change it hears of.
//!
//! A `BTreeSet<String>` costs about 110 bytes a path of 64 (the string's own allocation, its
//! header and the tree's nodes), and the agent kept two. Here each directory's text is kept
//! once and each file's name once, in two buffers with their ends beside them: about
//! 30 bytes a path where a directory holds ten files, as in `/usr` (94,000 owned files:
//! 19 MB in two trees, 2.8 MB here).

/// A sorted, deduplicated set of paths, grouped by directory (the text up to and including
/// the last `/`). Immutable once built; share it with an `Arc`.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct PathSet {
    /// Every directory, in order, one after the other; `dir_ends[i]` is where the `i`th ends.
    dirs: String,
    dir_ends: Vec<u32>,
    /// The names in the `i`th directory are `firsts[i]..firsts[i + 1]` of `name_ends`.
    firsts: Vec<u32>,
    names: String,
    name_ends: Vec<u32>,
}

impl std::fmt::Debug for PathSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// `path` as (its directory, with the last `/`; its name).
fn split(path: &str) -> (&str, &str) {
    path.split_at(path.rfind('/').map_or(0, |i| i + 1))
}

fn end(len: usize) -> u32 {
    u32::try_from(len).expect("a path set holds under 4 GiB of text")
}

impl PathSet {
    /// The set of `paths`, given in any order; a path given twice is kept once.
    pub fn new<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> Self {
        let mut paths: Vec<S> = paths.into_iter().collect();
        paths.sort_unstable_by(|a, b| split(a.as_ref()).cmp(&split(b.as_ref())));
        paths.dedup_by(|a, b| a.as_ref() == b.as_ref());
        let mut set = Self::default();
        for p in &paths {
            let (dir, name) = split(p.as_ref());
            if set.dir_ends.is_empty() || set.dir(set.dir_ends.len() - 1) != dir {
                set.dirs.push_str(dir);
                set.dir_ends.push(end(set.dirs.len()));
                set.firsts.push(end(set.name_ends.len()));
            }
            set.names.push_str(name);
            set.name_ends.push(end(set.names.len()));
        }
        set.firsts.push(end(set.name_ends.len()));
        set.dirs.shrink_to_fit();
        set.dir_ends.shrink_to_fit();
        set.firsts.shrink_to_fit();
        set.names.shrink_to_fit();
        set.name_ends.shrink_to_fit();
        set
    }

    pub fn len(&self) -> usize {
        self.name_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.name_ends.is_empty()
    }

    /// The `i`th directory's text, ending in `/`.
    fn dir(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.dir_ends[i - 1] };
        &self.dirs[start as usize..self.dir_ends[i] as usize]
    }

    fn name(&self, j: usize) -> &str {
        let start = if j == 0 { 0 } else { self.name_ends[j - 1] };
        &self.names[start as usize..self.name_ends[j] as usize]
    }

    /// The indexes of the `i`th directory's names.
    fn names_of(&self, i: usize) -> std::ops::Range<usize> {
        self.firsts[i] as usize..self.firsts[i + 1] as usize
    }

    fn find_dir(&self, dir: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.dir_ends.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.dir(mid).cmp(dir) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn contains(&self, path: &str) -> bool {
        let (dir, name) = split(path);
        let Ok(i) = self.find_dir(dir) else {
            return false;
        };
        let names = self.names_of(i);
        let (mut lo, mut hi) = (names.start, names.end);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Each directory (without its last `/`, but `/` itself) with its names.
    pub fn dirs(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &str>)> {
        (0..self.dir_ends.len()).map(|i| {
            let dir = self.dir(i);
            let trimmed = if dir.len() > 1 {
                &dir[..dir.len() - 1]
            } else {
                dir
            };
            (trimmed, self.names_of(i).map(|j| self.name(j)))
        })
    }

    /// The paths of the `i`th directory.
    fn paths_of(&self, i: usize) -> impl Iterator<Item = String> + '_ {
        let dir = self.dir(i);
        self.names_of(i)
            .map(move |j| format!("{dir}{}", self.name(j)))
    }

    /// Every path, directory by directory.
    pub fn iter(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.dir_ends.len()).flat_map(|i| self.paths_of(i))
    }

    /// The paths directly in `dir`.
    pub fn in_dir<'a>(&'a self, dir: &str) -> impl Iterator<Item = String> + 'a {
        let found = self.find_dir(&format!("{}/", dir.trim_end_matches('/')));
        found.into_iter().flat_map(|i| self.paths_of(i))
    }

    /// Every path in `dir` or below it.
    pub fn below<'a>(&'a self, dir: &str) -> impl Iterator<Item = String> + 'a {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let start = self.find_dir(&prefix).unwrap_or_else(|i| i);
        (start..self.dir_ends.len())
            .take_while(move |&i| self.dir(i).starts_with(&prefix))
            .flat_map(|i| self.paths_of(i))
    }
}

/// Paths gathered one after another in one buffer, in no order, to build a `PathSet` from
/// without a string for each on the way.
#[derive(Default)]
pub struct PathList {
    text: String,
    ends: Vec<u32>,
}

impl PathList {
    pub fn push(&mut self, path: &str) {
        self.text.push_str(path);
        self.ends.push(end(self.text.len()));
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.text[start as usize..end as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const PATHS: &[&str] = &[
        "/usr/share/doc/a/copyright",
        "/usr/bin/ls",
        "/usr/share/doc/a/changelog.gz",
        "/usr/bin/cat",
        "/usr/share-x/f",
        "/etc/hosts",
        "/usr/bin/ls",
        "/top",
        "/usr/share/doc/a-b/x",
        "/usr/share/z",
    ];

    fn set() -> PathSet {
        PathSet::new(PATHS.iter().copied())
    }

    #[test]
    fn holds_each_path_once_and_nothing_else() {
        let s = set();
        let want: BTreeSet<String> = PATHS.iter().map(|p| p.to_string()).collect();
        let got: Vec<String> = s.iter().collect();
        assert_eq!(got.len(), want.len(), "{got:?}");
        assert_eq!(s.len(), want.len());
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
        for p in PATHS {
            assert!(s.contains(p), "{p}");
        }
        for p in [
            "/usr/bin",
            "/usr/bin/",
            "/usr/bin/l",
            "/usr/bin/lsx",
            "/usr/share/doc/a",
            "/etc/hosts/",
            "top",
            "/",
            "",
            "/usr/share/doc/b/copyright",
        ] {
            assert!(!s.contains(p), "{p}");
        }
        assert!(!PathSet::default().contains("/etc/hosts"));
        assert!(PathSet::default().is_empty());
    }

    #[test]
    fn below_a_directory_is_every_path_under_it_and_no_neighbour() {
        let s = set();
        let below = |d: &str| s.below(d).collect::<BTreeSet<String>>();
        let want = |ps: &[&str]| ps.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            below("/usr/share"),
            want(&[
                "/usr/share/doc/a/copyright",
                "/usr/share/doc/a/changelog.gz",
                "/usr/share/doc/a-b/x",
                "/usr/share/z",
            ])
        );
        assert_eq!(
            below("/usr/share/doc/a/"),
            want(&[
                "/usr/share/doc/a/copyright",
                "/usr/share/doc/a/changelog.gz"
            ])
        );
        assert_eq!(below("/"), want(PATHS));
        assert!(below("/usr/bin/ls").is_empty());
        assert!(below("/nowhere").is_empty());
    }

    #[test]
    fn directories_come_with_their_names() {
        let s = set();
        let dirs: Vec<(String, Vec<String>)> = s
            .dirs()
            .map(|(d, names)| (d.to_owned(), names.map(str::to_owned).collect()))
            .collect();
        assert!(dirs.contains(&("/".into(), vec!["top".into()])), "{dirs:?}");
        assert!(dirs.contains(&("/usr/bin".into(), vec!["cat".into(), "ls".into()])));
        assert_eq!(dirs.iter().map(|(_, n)| n.len()).sum::<usize>(), s.len());
    }

    #[test]
    fn built_in_any_order_the_sets_are_equal() {
        let mut reversed: Vec<&str> = PATHS.to_vec();
        reversed.reverse();
        assert_eq!(PathSet::new(reversed), set());
        assert_ne!(PathSet::new(["/etc/hosts"]), set());
    }
}
