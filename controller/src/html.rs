//! Pure: HTML made safe, for every page plumb renders (the console's, `plumb report`'s). Every
//! text that reaches a page goes through `esc` (host ids, file names, values and reasons come
//! from hosts and people, and may be hostile); every value put in a URL through `pct`.

use std::fmt::Write as _;

/// Text or an attribute value, escaped for HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value percent-encoded for a URL's path segment or query (only unreserved characters are
/// kept as they are).
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
