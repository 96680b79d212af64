//! What a plan asks of the paths it declares: a `Request` as it comes, and `Requests`, the
//! plan's paths held compactly for the agent's whole session.

use regex::bytes::{Regex, RegexBuilder};

/// Compiled size a plan's regex may take.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What the plan asks about one path.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: Box<str>,
    pub hash: bool,
    pub contains: Rare<Matcher>,
    pub list_entries: bool,
    /// The manifest allows this file's content to be sent for a diff.
    pub allow_content: bool,
    /// The manifest marks it sensitive: who changed it goes without a command line.
    pub sensitive: bool,
    /// Of a listed directory: entries never listed nor counted (name globs, or absolute path
    /// globs matched against the entry's path).
    pub ignore: Ignore,
}

/// A list most requests do not have (line patterns, ignore patterns), one pointer wide when
/// empty: a plan holds a request per declared path, and the agent stays small at 100,000.
#[derive(Debug, Clone)]
pub struct Rare<T>(Option<Box<Box<[T]>>>);

/// Ignore patterns: name globs, or absolute path globs.
pub type Ignore = Rare<Box<str>>;

impl<T> Rare<T> {
    pub fn new(items: Vec<T>) -> Self {
        Rare((!items.is_empty()).then(|| Box::new(items.into_boxed_slice())))
    }
}

impl<T> FromIterator<T> for Rare<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Self::new(items.into_iter().collect())
    }
}

impl<T> Default for Rare<T> {
    fn default() -> Self {
        Rare(None)
    }
}

impl<T> std::ops::Deref for Rare<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], |items| items)
    }
}

impl Request {
    /// This request as a plan's requests are read.
    pub fn as_ref(&self) -> RequestRef<'_> {
        RequestRef {
            path: &self.path,
            hash: self.hash,
            list_entries: self.list_entries,
            allow_content: self.allow_content,
            sensitive: self.sensitive,
            contains: &self.contains,
            ignore: &self.ignore,
        }
    }
}

/// What the plan asks about one path, as `Requests` keeps it beside the path's text: a bit
/// each, and whether the path has patterns (kept apart: few paths have any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Asks(u8);

impl Asks {
    const HASH: u8 = 1;
    const LIST_ENTRIES: u8 = 2;
    const ALLOW_CONTENT: u8 = 4;
    const SENSITIVE: u8 = 8;
    const PATTERNS: u8 = 16;

    fn of(r: &Request) -> Self {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        Asks(
            bit(r.hash, Self::HASH)
                | bit(r.list_entries, Self::LIST_ENTRIES)
                | bit(r.allow_content, Self::ALLOW_CONTENT)
                | bit(r.sensitive, Self::SENSITIVE)
                | bit(
                    !r.contains.is_empty() || !r.ignore.is_empty(),
                    Self::PATTERNS,
                ),
        )
    }

    fn has(self, b: u8) -> bool {
        self.0 & b != 0
    }
}

/// A path's line patterns and ignore patterns, for the few paths that have any.
#[derive(Debug, Clone)]
struct Patterns {
    contains: Rare<Matcher>,
    ignore: Ignore,
}

/// One request of a plan, read where it is kept.
#[derive(Debug, Clone, Copy)]
pub struct RequestRef<'a> {
    pub path: &'a str,
    pub hash: bool,
    pub list_entries: bool,
    pub allow_content: bool,
    pub sensitive: bool,
    pub contains: &'a [Matcher],
    pub ignore: &'a [Box<str>],
}

impl RequestRef<'_> {
    /// Whether the entry `name` of this (listed) directory is ignored.
    pub fn ignores(&self, name: &str) -> bool {
        self.ignore.iter().any(|g| {
            if g.contains('/') {
                plumb_common::glob::path_matches(g, &format!("{}/{name}", self.path))
            } else {
                plumb_common::glob::name_matches(g, name)
            }
        })
    }

    pub fn to_request(&self) -> Request {
        Request {
            path: self.path.into(),
            hash: self.hash,
            contains: Rare::new(self.contains.to_vec()),
            list_entries: self.list_entries,
            allow_content: self.allow_content,
            sensitive: self.sensitive,
            ignore: Rare::new(self.ignore.to_vec()),
        }
    }
}

/// The plan's paths, sorted and each once: the agent's only copy of what is declared, shared
/// by the session, its scans and the watcher, indexed for the per-path state kept beside it.
/// Every path's text is in one buffer, and what is asked of it (a byte) beside: at 100,000
/// paths a request of its own and a string for each path were 7 MB of an agent meant to
/// stay under 10 MiB; now about 5 bytes a path and its text.
#[derive(Debug, Default)]
pub struct Requests {
    text: Box<str>,
    /// Where each path ends in `text` (it starts where the one before ends).
    ends: Box<[u32]>,
    asks: Box<[Asks]>,
    /// The patterns of the paths that have any, by index, in order.
    patterns: Box<[(u32, Patterns)]>,
}

/// `Requests` being built, a path at a time.
#[derive(Debug)]
pub struct RequestsBuilder {
    text: String,
    ends: Vec<u32>,
    asks: Vec<Asks>,
    patterns: Vec<(u32, Patterns)>,
    /// The paths so far are in order and each once.
    sorted: bool,
}

impl Default for RequestsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestsBuilder {
    pub fn new() -> Self {
        Self {
            text: String::new(),
            ends: Vec::new(),
            asks: Vec::new(),
            patterns: Vec::new(),
            sorted: true,
        }
    }

    /// Whether `path` still fits: the paths' text is indexed by 32-bit offsets.
    pub fn fits(&self, path: &str) -> bool {
        self.text.len() + path.len() <= u32::MAX as usize
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Adds `r`; its path must fit (`fits`).
    pub fn push(&mut self, r: Request) {
        if let Some(last) = self.ends.len().checked_sub(1) {
            let start = last.checked_sub(1).map_or(0, |i| self.ends[i] as usize);
            self.sorted &= self.text[start..self.ends[last] as usize] < *r.path;
        }
        self.text.push_str(&r.path);
        self.ends
            .push(u32::try_from(self.text.len()).expect("checked by `fits`"));
        let asks = Asks::of(&r);
        if asks.has(Asks::PATTERNS) {
            let i = u32::try_from(self.asks.len()).expect("under 4 GiB of paths: fewer");
            self.patterns.push((
                i,
                Patterns {
                    contains: r.contains,
                    ignore: r.ignore,
                },
            ));
        }
        self.asks.push(asks);
    }

    /// Sorted by path, of two requests for one path the first kept. A plan comes sorted and
    /// each path once (the controller's are) and is then taken as it is, without a copy.
    pub fn build(self) -> Requests {
        let sorted = self.sorted;
        let built = Requests {
            text: self.text.into_boxed_str(),
            ends: self.ends.into_boxed_slice(),
            asks: self.asks.into_boxed_slice(),
            patterns: self.patterns.into_boxed_slice(),
        };
        if sorted {
            return built;
        }
        let unsorted = built;
        let mut order: Vec<usize> = (0..unsorted.len()).collect();
        order.sort_by(|&a, &b| unsorted.path(a).cmp(unsorted.path(b)));
        order.dedup_by(|later, first| unsorted.path(*later) == unsorted.path(*first));
        let mut sorted = RequestsBuilder::new();
        for i in order {
            sorted.push(unsorted.get(i).expect("in range").to_request());
        }
        sorted.build()
    }
}

impl Requests {
    /// The requests, sorted, each path once. Their paths must be under 4 GiB of text in all
    /// (a plan's are checked as they come: `RequestsBuilder::fits`).
    pub fn new(requests: Vec<Request>) -> Self {
        let mut b = RequestsBuilder::new();
        for r in requests {
            b.push(r);
        }
        b.build()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th path; panics out of range, as indexing does.
    pub fn path(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    pub fn get(&self, i: usize) -> Option<RequestRef<'_>> {
        let asks = *self.asks.get(i)?;
        let patterns = asks
            .has(Asks::PATTERNS)
            .then(|| {
                let at = self.patterns.binary_search_by_key(&i, |(j, _)| *j as usize);
                at.ok().map(|at| &self.patterns[at].1)
            })
            .flatten();
        Some(RequestRef {
            path: self.path(i),
            hash: asks.has(Asks::HASH),
            list_entries: asks.has(Asks::LIST_ENTRIES),
            allow_content: asks.has(Asks::ALLOW_CONTENT),
            sensitive: asks.has(Asks::SENSITIVE),
            contains: patterns.map_or(&[], |p| &p.contains),
            ignore: patterns.map_or(&[], |p| &p.ignore),
        })
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = RequestRef<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("in range"))
    }

    pub fn paths(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.path(i))
    }

    pub fn to_vec(&self) -> Vec<Request> {
        self.iter().map(|r| r.to_request()).collect()
    }

    /// The first index whose path is not before `path`.
    fn lower_bound(&self, path: &str) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.path(mid) < path {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The position of `path`, if declared: an index for per-path state kept beside this.
    pub fn index(&self, path: &str) -> Option<usize> {
        let i = self.lower_bound(path);
        (i < self.len() && self.path(i) == path).then_some(i)
    }

    pub fn find(&self, path: &str) -> Option<RequestRef<'_>> {
        self.get(self.index(path)?)
    }

    /// Whether entry `name` of directory `dir` is a path of the plan, or on the way to one.
    pub fn leads_to_declared(&self, dir: &str, name: &str) -> bool {
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        self.index(&path).is_some() || self.below(&path).next().is_some()
    }

    /// The declared paths strictly below directory `dir`.
    pub fn below<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let start = self.lower_bound(&prefix);
        (start..self.len())
            .map(|i| self.path(i))
            .take_while(move |p| p.starts_with(&prefix))
    }
}

/// A line pattern from the plan, ready to run.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Matches a line equal to this one, both trimmed of surrounding white space.
    Line(Vec<u8>),
    Regex(Regex),
}

impl Matcher {
    pub fn new(pattern: &str, regex: bool) -> Result<Self, regex::Error> {
        if regex {
            RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(Matcher::Regex)
        } else {
            Ok(Matcher::Line(pattern.trim().as_bytes().to_vec()))
        }
    }

    pub(super) fn matches(&self, line: &[u8]) -> bool {
        match self {
            Matcher::Line(want) => line.trim_ascii() == want.as_slice(),
            Matcher::Regex(re) => re.is_match(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::req;
    use super::*;

    /// A plan holds what is asked of each declared path beside the path's text: a byte, and a
    /// path's patterns apart (few have any); each read back as it was given.
    #[test]
    fn what_a_plan_holds_beside_each_path_is_a_byte_and_patterns_apart() {
        assert_eq!(std::mem::size_of::<Asks>(), 1);
        let m = |p: &str| Matcher::new(p, false).expect("valid");
        let given = vec![
            Request {
                hash: true,
                sensitive: true,
                ..req("/etc/a")
            },
            Request {
                list_entries: true,
                ignore: Ignore::new(vec!["*.swp".into()]),
                ..req("/etc/b")
            },
            Request {
                allow_content: true,
                ..req("/etc/c")
            },
            Request {
                contains: [m("x"), m("y")].into_iter().collect(),
                ..req("/etc/d")
            },
        ];
        // Given out of order: sorted, each keeps what was asked of it.
        let plan = Requests::new(given.iter().rev().cloned().collect());
        for want in &given {
            let want = want.as_ref();
            let got = plan.find(want.path).expect("declared");
            assert_eq!(
                (
                    got.path,
                    got.hash,
                    got.list_entries,
                    got.allow_content,
                    got.sensitive
                ),
                (
                    want.path,
                    want.hash,
                    want.list_entries,
                    want.allow_content,
                    want.sensitive
                )
            );
            assert_eq!(got.ignore, want.ignore, "{}", got.path);
            assert_eq!(got.contains.len(), want.contains.len(), "{}", got.path);
        }
    }

    /// Requests given in any order are read back sorted, each path once (the first request for
    /// it kept), and found by path; a plan's paths below a directory are those under it alone.
    #[test]
    fn requests_are_kept_sorted_once_per_path_and_found_by_path() {
        let asked = |path: &str, hash: bool| Request { hash, ..req(path) };
        let plan = Requests::new(vec![
            asked("/etc/b", true),
            asked("/etc/a/x", false),
            asked("/etc/a", true),
            asked("/etc/b", false),
            asked("/etc/ab", false),
        ]);
        assert_eq!(
            plan.paths().collect::<Vec<_>>(),
            ["/etc/a", "/etc/a/x", "/etc/ab", "/etc/b"]
        );
        assert!(
            plan.find("/etc/b").expect("declared").hash,
            "the first kept"
        );
        assert_eq!(plan.index("/etc/ab"), Some(2));
        assert_eq!(plan.index("/etc/aa"), None);
        assert_eq!(plan.below("/etc/a").collect::<Vec<_>>(), ["/etc/a/x"]);
        assert!(plan.leads_to_declared("/etc", "a") && !plan.leads_to_declared("/etc", "c"));
        let again = Requests::new(plan.to_vec());
        assert_eq!(
            again.paths().collect::<Vec<_>>(),
            plan.paths().collect::<Vec<_>>()
        );
        assert_eq!(Requests::default().index("/etc/a"), None);
    }
}
