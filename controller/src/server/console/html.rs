//! Pure: HTML made safe. Every text that reaches a page goes through `esc` (host ids, file
//! names, values and reasons come from hosts and people, and may be hostile); every value put
//! in a URL through `pct`.

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

/// A query string from its pairs, leaving out empty values: `?a=1&b=x%20y`.
pub(crate) fn query(pairs: &[(&str, String)]) -> String {
    let kept: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// A time as the console shows it: RFC 3339 to the second, UTC; "never" for none.
pub(crate) fn when(ms: i64) -> String {
    crate::clock::rfc3339(ms, false).unwrap_or_else(|| "never".to_owned())
}

/// How long ago, in the largest unit that fits ("3 min ago").
pub(crate) fn ago(now_ms: i64, ms: i64) -> String {
    if ms <= 0 {
        return "never".to_owned();
    }
    let s = (now_ms - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_inert() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(pct("web 1/../x?&="), "web%201%2F..%2Fx%3F%26%3D");
        assert_eq!(
            query(&[("host", "a b".into()), ("kind", String::new())]),
            "?host=a%20b"
        );
        assert_eq!(ago(10_000_000, 10_000_000 - 125_000), "2 min ago");
    }
}
