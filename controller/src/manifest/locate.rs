//! Finds where a key under a top-level section is written, so that rules checked after
//! deserialization (and drift items) can point at `file:line:column`.
//!
//! serde_yaml locates syntax, type and unknown-field errors itself but exposes no spans for
//! values that parsed fine; block-style manifests (what people write) are scanned here. A key
//! written in flow style (`files: {/etc/x: {}}`) falls back to the section's own line.

use std::collections::HashMap;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// The position of `key` directly under the top-level `section:`, else of the section itself,
/// else line 1. For many keys of one section, `KeyPositions` reads the text once.
pub(crate) fn key_position(text: &str, section: &str, key: &str) -> Pos {
    KeyPositions::of(text, section).get(key)
}

/// The position of the top-level `section:`, else line 1.
pub(crate) fn section_position(text: &str, section: &str) -> Pos {
    KeyPositions::of(text, section).section
}

/// Where each key directly under the top-level `section:` is first written, read in one
/// pass: `key_position` for every key without reading the text again for each (checking a
/// manifest of 10,000 paths that way took 3 s).
pub(crate) struct KeyPositions<'a> {
    /// The section's own position, else line 1.
    section: Pos,
    keys: HashMap<&'a str, Pos>,
}

impl<'a> KeyPositions<'a> {
    pub(crate) fn of(text: &'a str, section: &str) -> Self {
        let mut section_pos = None;
        let mut child_indent = None;
        let mut keys = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent == 0 {
                if section_pos.is_some() {
                    break; // the next top-level key ends the section
                }
                if trimmed
                    .strip_prefix(section)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
                {
                    section_pos = Some(Pos {
                        line: index + 1,
                        column: 1,
                    });
                }
                continue;
            }
            if section_pos.is_none() || indent != *child_indent.get_or_insert(indent) {
                continue;
            }
            if let Some(key) = key_of(trimmed) {
                keys.entry(key).or_insert(Pos {
                    line: index + 1,
                    column: indent + 1,
                });
            }
        }
        Self {
            section: section_pos.unwrap_or(Pos { line: 1, column: 1 }),
            keys,
        }
    }

    /// Where `key` is written, else the section, else line 1.
    pub(crate) fn get(&self, key: &str) -> Pos {
        self.keys.get(key).copied().unwrap_or(self.section)
    }
}

/// The position of the `n`th (0-based) time `key` is written directly under `section:`, if
/// it is written that often in block style.
pub(crate) fn nth_key_position(text: &str, section: &str, key: &str, n: usize) -> Option<Pos> {
    let mut seen = 0;
    let mut in_section = false;
    let mut child_indent = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            in_section = trimmed
                .strip_prefix(section)
                .is_some_and(|r| r.trim_start().starts_with(':'));
            continue;
        }
        if !in_section || indent != *child_indent.get_or_insert(indent) {
            continue;
        }
        if key_of(trimmed) == Some(key) {
            if seen == n {
                return Some(Pos {
                    line: index + 1,
                    column: indent + 1,
                });
            }
            seen += 1;
        }
    }
    None
}

/// The position of the list item `value` (`- value`, quoted or not) at any depth under the
/// top-level `section:`, if it is written in block style; the column is the value's.
pub(crate) fn item_position(text: &str, section: &str, value: &str) -> Option<Pos> {
    let mut in_section = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            in_section = trimmed
                .strip_prefix(section)
                .is_some_and(|r| r.trim_start().starts_with(':'));
            continue;
        }
        let Some(item) = trimmed.strip_prefix("- ") else {
            continue;
        };
        let written = item.split(" #").next().unwrap_or("").trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| written.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(written);
        if in_section && unquoted == value {
            return Some(Pos {
                line: index + 1,
                column: line.len() - item.len() + 1,
            });
        }
    }
    None
}

/// Positions of `mode:` values written as plain (unquoted) numbers. serde_yaml hands `0644`
/// to the deserializer as the string "0644", indistinguishable from the quoted form, but other
/// YAML tools read it as the decimal 420; plumb insists on quotes so every tool agrees.
pub(crate) fn unquoted_modes(text: &str) -> Vec<Pos> {
    let mut found = Vec::new();
    let mut block_indent: Option<usize> = None; // inside a `|` or `>` block scalar
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(parent) = block_indent {
            if trimmed.is_empty() || indent > parent {
                continue;
            }
            block_indent = None;
        }
        let code = trimmed.split(" #").next().unwrap_or("").trim_end();
        if code.ends_with('|')
            || code.ends_with('>')
            || code.contains(": |")
            || code.contains(": >")
        {
            block_indent = Some(indent);
        }
        let mut from = 0;
        while let Some(i) = line[from..].find("mode:") {
            let start = from + i;
            from = start + 5;
            let before = line[..start].trim_end();
            let is_key = before.is_empty()
                || before.ends_with('{')
                || before.ends_with(',')
                || before.ends_with('-');
            let value = line[from..].trim_start();
            if is_key && value.starts_with(|c: char| c.is_ascii_digit()) {
                found.push(Pos {
                    line: index + 1,
                    column: line.len() - value.len() + 1,
                });
            }
        }
    }
    found
}

/// The key of a `key: value` line, unquoted.
fn key_of(trimmed: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(rest) = trimmed.strip_prefix(quote) {
            let end = rest.find(quote)?;
            return rest[end + 1..]
                .trim_start()
                .starts_with(':')
                .then(|| &rest[..end]);
        }
    }
    // A plain key ends at the first ": " or a ':' that ends the line.
    let end = trimmed
        .find(": ")
        .or_else(|| trimmed.strip_suffix(':').map(|k| k.len()))?;
    Some(trimmed[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name: x\nhosts: [\"*\"]\nfiles:\n  # a comment\n  /etc/motd:\n    content: hi\n  \"/etc/a b\":\n    mode: \"0644\"\n  /etc/c: {}\nlabels: {}\n";

    #[test]
    fn finds_plain_quoted_and_inline_keys() {
        assert_eq!(
            key_position(DOC, "files", "/etc/motd"),
            Pos { line: 5, column: 3 }
        );
        assert_eq!(
            key_position(DOC, "files", "/etc/a b"),
            Pos { line: 7, column: 3 }
        );
        assert_eq!(
            key_position(DOC, "files", "/etc/c"),
            Pos { line: 9, column: 3 }
        );
    }

    #[test]
    fn keys_read_in_one_pass_are_where_each_is_first_written_directly_under_its_section() {
        let text = "files:\n  /etc/a:\n    mode: \"0644\"\n  /etc/b: {}\n  /etc/a: {}\npackages:\n  /etc/b: {}\n";
        let files = KeyPositions::of(text, "files");
        assert_eq!(
            files.get("/etc/a"),
            Pos { line: 2, column: 3 },
            "the first of two"
        );
        assert_eq!(
            files.get("/etc/b"),
            Pos { line: 4, column: 3 },
            "not the next section's"
        );
        assert_eq!(
            files.get("mode"),
            Pos { line: 1, column: 1 },
            "not a key's own keys"
        );
        assert_eq!(files.get("/etc/b"), key_position(text, "files", "/etc/b"));
        assert_eq!(
            KeyPositions::of(text, "packages").get("/etc/b"),
            Pos { line: 7, column: 3 }
        );
    }

    #[test]
    fn falls_back_to_the_section_then_the_top() {
        assert_eq!(
            key_position(DOC, "files", "/nope"),
            Pos { line: 3, column: 1 }
        );
        assert_eq!(
            key_position(DOC, "packages", "x"),
            Pos { line: 1, column: 1 }
        );
    }

    #[test]
    fn finds_unquoted_modes_outside_block_scalars() {
        let doc = "files:\n  /a:\n    mode: 0644\n  /b: {mode: 755, owner: x}\n  /c:\n    mode: \"0644\"\n  /d:\n    content: |\n      mode: 0644\n    mode: 600 # comment\n";
        assert_eq!(
            unquoted_modes(doc),
            [
                Pos {
                    line: 3,
                    column: 11
                },
                Pos {
                    line: 4,
                    column: 14
                },
                Pos {
                    line: 10,
                    column: 11
                }
            ]
        );
    }

    #[test]
    fn ignores_nested_keys_with_the_same_name() {
        let doc = "files:\n  /etc/a:\n    content: x\n  content:\n    absent: true\n";
        assert_eq!(
            key_position(doc, "files", "content"),
            Pos { line: 4, column: 3 }
        );
    }
}
