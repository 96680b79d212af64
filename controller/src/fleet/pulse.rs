//! Heartbeats answered at the edge. An agent's heartbeat used to be a trip through the
//! fleet's queue and back (a wake-up of the fleet thread for each, 20,000 a second at 100,000
//! agents, every five seconds each). Now the stream's own task counts it and answers it, and
//! the fleet reads the counts once a tick. What a heartbeat proves stays the same both ways:
//! a host is offline after three intervals without one (`tick.rs`), and an agent hears back
//! only while the fleet thread is at work (`Pulse`), so a controller whose fleet is stuck
//! still falls silent and its agents move on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many heartbeats one stream's agent has sent: written by the stream's task, read by the
/// fleet's tick.
#[derive(Debug, Default)]
pub struct Heartbeats(AtomicU64);

impl Heartbeats {
    pub fn heard(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// When the fleet thread last handled a command: streams answer heartbeats only while it is
/// recent.
#[derive(Debug)]
pub struct Pulse {
    epoch: Instant,
    /// Milliseconds since `epoch`.
    beat_ms: AtomicU64,
    /// How long the fleet may go without a command and still be taken for alive.
    within: Duration,
}

impl Pulse {
    pub(super) fn new(within: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            beat_ms: AtomicU64::new(0),
            within,
        }
    }

    /// The fleet thread is at work.
    pub(super) fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the fleet thread has handled a command within its allowance.
    pub fn alive(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        now.saturating_sub(self.beat_ms.load(Ordering::Relaxed)) <= self.within.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulse_is_alive_only_within_its_allowance_of_the_last_beat() {
        let pulse = Pulse::new(Duration::from_millis(50));
        pulse.beat();
        assert!(pulse.alive());
        let deadline = Instant::now() + Duration::from_secs(5);
        while pulse.alive() {
            assert!(
                Instant::now() < deadline,
                "still alive long after its allowance"
            );
            std::thread::yield_now();
        }
        pulse.beat();
        assert!(pulse.alive(), "a beat brings it back");
    }

    #[test]
    fn heartbeats_are_counted() {
        let h = Heartbeats::default();
        h.heard();
        h.heard();
        assert_eq!(h.count(), 2);
    }
}
