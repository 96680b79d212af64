//! Directories listed in summary: more undeclared entries than an agent lists, which the
//! controller shows as one drift item with a count. A runaway process filling such a
//! directory changes its listing hundreds of times a second while the drift stays the same,
//! and each listing sent would be one more event in the audit log (once 130 a second, with
//! the other hosts' changes waiting behind them). So a listing that changed in its entries
//! only is sent at most once per `HOLD`; anything else about the directory (its mode, owner,
//! type, readability) and a move into or out of summary go at once.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::time::Duration;

use tokio::time::Instant;

/// The longest a summarised directory's new listing waits.
pub(super) const HOLD: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(super) struct Summaries {
    /// By the path's index in the plan: when its last summary was sent, and a fingerprint of
    /// everything in it but the entries.
    sent: HashMap<usize, (Instant, NonZeroU64)>,
}

impl Summaries {
    /// Until when the observation of path `i` waits, if it does. `rest` is the fingerprint
    /// of the observation without its entries when it is a summary, `None` when it is not.
    pub(super) fn hold(&self, i: usize, rest: Option<NonZeroU64>, now: Instant) -> Option<Instant> {
        let (at, sent_rest) = self.sent.get(&i)?;
        let until = *at + HOLD;
        (rest == Some(*sent_rest) && now < until).then_some(until)
    }

    /// Notes that the observation of path `i` was sent at `now`.
    pub(super) fn sent(&mut self, i: usize, rest: Option<NonZeroU64>, now: Instant) {
        match rest {
            Some(rest) => {
                self.sent.insert(i, (now, rest));
            }
            None => {
                self.sent.remove(&i);
            }
        }
    }

    /// A new plan (the indices change) or everything sent again.
    pub(super) fn clear(&mut self) {
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(n)
    }

    #[test]
    fn a_first_summary_goes_at_once_and_a_new_listing_waits_for_the_hold() {
        let t0 = Instant::now();
        let mut s = Summaries::default();
        assert_eq!(s.hold(3, fp(7), t0), None, "nothing sent yet");
        s.sent(3, fp(7), t0);
        let soon = t0 + Duration::from_millis(10);
        assert_eq!(s.hold(3, fp(7), soon), Some(t0 + HOLD));
        assert_eq!(s.hold(4, fp(7), soon), None, "another path");
        assert_eq!(s.hold(3, fp(7), t0 + HOLD), None, "the hold is over");
    }

    #[test]
    fn anything_else_about_the_directory_goes_at_once() {
        let t0 = Instant::now();
        let mut s = Summaries::default();
        s.sent(3, fp(7), t0);
        let soon = t0 + Duration::from_millis(10);
        assert_eq!(s.hold(3, fp(8), soon), None, "its mode or owner changed");
        assert_eq!(s.hold(3, None, soon), None, "no longer a summary");
    }

    #[test]
    fn leaving_summary_forgets_it() {
        let t0 = Instant::now();
        let mut s = Summaries::default();
        s.sent(3, fp(7), t0);
        s.sent(3, None, t0);
        assert_eq!(s.hold(3, fp(7), t0), None);
        s.sent(3, fp(7), t0);
        s.clear();
        assert_eq!(s.hold(3, fp(7), t0), None);
    }
}
