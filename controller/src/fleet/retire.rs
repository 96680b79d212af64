//! The maximum connection age: streams older than it (each with its own jitter, so streams
//! opened together do not all go together) are asked to go (`GoAway`), and closed after the
//! grace period if they have not. The agent connects again at once, to the next controller it
//! was given or through a load balancer to whichever it picks, so long-lived streams spread
//! over controllers added since. A host whose stream was retired is not offline for it: only
//! if it connects nowhere within three heartbeats is it marked so.

use std::hash::BuildHasher as _;
use std::time::{Duration, Instant};

use super::host::Host;
use super::{Fleet, ToAgent};
use crate::model::EventKind;
use crate::store::{StoreError, Write};

/// `--max-connection-age` and its grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAge {
    pub age: Duration,
    pub grace: Duration,
}

impl ConnectionAge {
    /// This stream's own age limit: 90% to 110% of the maximum.
    pub(super) fn jittered(&self) -> Duration {
        let r = std::collections::hash_map::RandomState::new().hash_one(Instant::now()) % 1000;
        self.age * 9 / 10 + self.age * (r as u32) / 5000
    }
}

impl ConnectionAge {
    /// Asks `host`'s stream to go if it is past its age; the stream to close, if it was asked
    /// longer ago than the grace or cannot be asked. Called for each host on the tick's walk.
    pub(super) fn retire(&self, host: &mut Host, now: Instant) -> Option<u64> {
        let conn = host.conn.as_mut()?;
        match conn.asked_to_go {
            None if conn.retire_at.is_some_and(|at| now >= at) => {
                let reason = format!(
                    "the stream is older than this controller's maximum connection age ({})",
                    humantime::format_duration(self.age)
                );
                if conn.out.try_send(ToAgent::GoAway { reason }).is_ok() {
                    tracing::info!(host = %host.info.host_id, "stream past the maximum connection age; asked the agent to connect again");
                    conn.asked_to_go = Some(now);
                    None
                } else {
                    Some(conn.id)
                }
            }
            Some(at) if now.duration_since(at) >= self.grace => Some(conn.id),
            _ => None,
        }
    }
}

/// Whether `host`, its stream retired, has connected nowhere within `limit` (three
/// heartbeats): then it is offline, and no longer on its way. Called for each host on the
/// tick's walk.
pub(super) fn moved_nowhere(host: &mut Host, limit: Duration) -> bool {
    if host.conn.is_some() || host.moving_since.is_none_or(|t| t.elapsed() <= limit) {
        return false;
    }
    host.moving_since = None;
    // Claimed elsewhere meanwhile: that controller holds it, online.
    host.remote.is_none()
}

impl Fleet {
    /// Streams past their age and grace closed.
    pub(super) fn close_retired(&mut self, close: Vec<u64>) -> Result<(), StoreError> {
        for conn in close {
            self.disconnected(conn, "past the maximum connection age and its grace period")?;
        }
        Ok(())
    }

    /// Hosts whose retired streams connected nowhere: offline, said in the log.
    pub(super) fn offline_after_moving(&mut self, gone: Vec<String>) {
        for host_id in gone {
            tracing::warn!(host = %host_id, "a retired stream's agent did not connect again; offline");
            let at_ms = self.now();
            self.write(
                Some(Write::Log {
                    host_id,
                    at_ms,
                    kind: EventKind::HostOffline,
                    item: None,
                }),
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stream_goes_within_a_tenth_of_the_maximum_age() {
        let limit = ConnectionAge {
            age: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
        };
        let ages: Vec<Duration> = (0..200).map(|_| limit.jittered()).collect();
        assert!(
            ages.iter()
                .all(|a| *a >= Duration::from_secs(3240) && *a <= Duration::from_secs(3960)),
            "{ages:?}"
        );
        let (min, max) = (ages.iter().min(), ages.iter().max());
        assert!(
            max.zip(min)
                .is_some_and(|(max, min)| *max - *min > Duration::from_secs(60)),
            "streams opened together go at different times: {min:?}..{max:?}"
        );
    }
}
