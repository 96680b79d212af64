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
