//! Time as the controller records it: milliseconds since the epoch (UTC), read from a clock
//! that tests can replace, and written as RFC 3339.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of time; the fleet's is replaceable so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds since the epoch as RFC 3339 (UTC), to the second or the millisecond; `None`
/// for "never" (0 or less).
/// A time as a person gives it: RFC 3339 (`2026-11-01T00:00:00Z`), a date (`2026-11-01`, its
/// midnight UTC), or a duration ago (`7d`); in milliseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let full = if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    let t = match humantime::parse_rfc3339_weak(&full) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(s).map_err(|_| {
                format!("invalid time {s:?}; hint: RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01) or a duration ago (7d)")
            })?;
            std::time::SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| format!("{s} ago is before the epoch"))?
        }
    };
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

pub fn rfc3339(ms: i64, millis: bool) -> Option<String> {
    if ms <= 0 {
        return None;
    }
    let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
    Some(if millis {
        humantime::format_rfc3339_millis(t).to_string()
    } else {
        humantime::format_rfc3339_seconds(t).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_utc_and_never_is_none() {
        assert_eq!(rfc3339(0, false), None);
        assert_eq!(
            rfc3339(1_764_000_000_123, false).as_deref(),
            Some("2025-11-24T16:00:00Z")
        );
        assert_eq!(
            rfc3339(1_764_000_000_123, true).as_deref(),
            Some("2025-11-24T16:00:00.123Z")
        );
    }
}
