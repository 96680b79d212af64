//! Pure: what the console's pages need beyond `crate::html` (escaping): query strings and
//! times as a person reads them.

pub(crate) use crate::html::{esc, pct};

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
