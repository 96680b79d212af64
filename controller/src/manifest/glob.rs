//! Hostname globs (`*` any run of characters, `?` one character): matching, and whether two
//! globs can match a common name (used to find manifests that may select the same host).

use std::collections::HashSet;

use crate::problem::Problem;

/// A validated host glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    chars: Vec<char>,
}

impl Glob {
    pub fn new(text: &str) -> Result<Self, Problem> {
        if text.is_empty() {
            return Err(Problem::new("a host glob cannot be empty"));
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(Problem::new(format!("a host glob cannot contain {c:?}")));
        }
        Ok(Self {
            text: text.to_owned(),
            chars: text.chars().collect(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, name: &str) -> bool {
        plumb_common::glob::wildcard(&self.chars, name)
    }

    /// Whether some name is matched by both globs.
    pub fn intersects(&self, other: &Glob) -> bool {
        let mut seen = HashSet::new();
        intersect(&self.chars, &other.chars, 0, 0, &mut seen)
    }
}

/// Depth-first search over pairs of positions; `seen` bounds the work to |a|·|b| states.
fn intersect(
    a: &[char],
    b: &[char],
    i: usize,
    j: usize,
    seen: &mut HashSet<(usize, usize)>,
) -> bool {
    if !seen.insert((i, j)) {
        return false;
    }
    match (a.get(i), b.get(j)) {
        (None, None) => true,
        (Some('*'), _) if intersect(a, b, i + 1, j, seen) => true,
        (_, Some('*')) if intersect(a, b, i, j + 1, seen) => true,
        // `*` consumes one character that the other side produces.
        (Some('*'), Some(_)) if b[j] != '*' && intersect(a, b, i, j + 1, seen) => true,
        (Some(_), Some('*')) if a[i] != '*' && intersect(a, b, i + 1, j, seen) => true,
        (Some(&x), Some(&y)) if x != '*' && y != '*' => {
            (x == '?' || y == '?' || x == y) && intersect(a, b, i + 1, j + 1, seen)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn g(s: &str) -> Glob {
        Glob::new(s).expect("valid glob")
    }

    #[test]
    fn matching() {
        let cases = [
            ("web-*", "web-1", true),
            ("web-*", "web-", true),
            ("web-*", "db-1", false),
            ("*", "anything", true),
            ("w?b", "web", true),
            ("w?b", "weeb", false),
            ("*-prod-*", "eu-prod-7", true),
            ("*-prod-*", "eu-test-7", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("exact", "exact", true),
            ("exact", "exact2", false),
        ];
        for (glob, name, want) in cases {
            assert_eq!(g(glob).matches(name), want, "{glob} vs {name}");
        }
    }

    #[test]
    fn intersection() {
        let cases = [
            ("web-*", "db-*", false),
            ("web-*", "*-1", true),
            ("web-*", "web-1", true),
            ("web-1", "web-2", false),
            ("*", "db-1", true),
            ("a?c", "ab*", true),
            ("a?c", "abd", false),
            ("*x", "*y", false),
            ("x*", "*y", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(g(a).intersects(&g(b)), want, "{a} ∩ {b}");
            assert_eq!(g(b).intersects(&g(a)), want, "{b} ∩ {a}");
        }
    }

    #[test]
    fn rejects_empty_and_spaces() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("web 1").is_err());
    }
}
