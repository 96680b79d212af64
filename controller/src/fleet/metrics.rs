//! What the fleet counts, as plain values. The fleet fills `Metrics` when asked;
//! `server/metrics.rs` renders it for Prometheus.

use std::collections::BTreeMap;

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// A latency histogram, cumulative as Prometheus has it: each bucket counts the observations
/// at or under its bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (c, le) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= le {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// (upper bound, observations at or under it), in increasing order.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        BUCKETS.into_iter().zip(self.counts.iter().copied())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// The fleet's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Hosts by status, every status present (zero where none).
    pub hosts: BTreeMap<&'static str, u64>,
    pub drift_open: u64,
    pub agent_streams: u64,
    pub acknowledgements: u64,
    /// False while changes wait in memory for the store (agents not acknowledged).
    pub store_writable: bool,
    pub store_pending_writes: u64,
    pub store_write_failures_total: u64,
    pub store_dropped_writes_total: u64,
    /// Events recorded since the controller started, by kind.
    pub events_total: BTreeMap<&'static str, u64>,
    /// Time to evaluate and record one agent message.
    pub evaluation_seconds: Histogram,
    /// Time of one store transaction recording drift.
    pub store_seconds: Histogram,
    /// Per webhook, in the order of the configuration.
    pub webhooks: Vec<crate::webhook::Counts>,
}

/// What the fleet thread counts as it goes.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) events: BTreeMap<&'static str, u64>,
    pub(super) evaluation: Histogram,
    pub(super) store: Histogram,
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn a_histogram_is_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.0002);
        h.observe(0.003);
        let b: Vec<(f64, u64)> = h.buckets().collect();
        assert_eq!(b[0], (0.0001, 0));
        assert_eq!(b[1], (0.00025, 1));
        assert_eq!(b[5], (0.005, 2));
        assert_eq!(b[9], (1.0, 2));
        assert_eq!(h.count(), 2);
        assert!((h.sum() - 0.0032).abs() < 1e-12);
    }
}
