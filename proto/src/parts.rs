//! Messages of a bounded size: a run of entries (states, a plan's paths) cut into messages of
//! about `REPORT_BYTES` each, as both ends send them.

/// Counts the bytes of the message being filled, and says when the next entry must start a
/// new one.
#[derive(Debug)]
pub struct Parts {
    budget: usize,
    used: usize,
}

impl Parts {
    /// Messages of at most `budget` bytes of entries, but for an entry larger than that alone.
    pub fn new(budget: usize) -> Self {
        Self { budget, used: 0 }
    }

    /// Counts `entry`, as a repeated field of its message (tag, length and itself); `true` if
    /// it must start a new message: the one being filled holds something and would pass the
    /// budget with it.
    pub fn starts_anew(&mut self, entry: &impl prost::Message) -> bool {
        let len = entry.encoded_len();
        let framed = 1 + prost::length_delimiter_len(len) + len;
        let anew = self.used > 0 && self.used + framed > self.budget;
        if anew {
            self.used = 0;
        }
        self.used += framed;
        anew
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    fn path(len: usize) -> v1::PathSpec {
        v1::PathSpec {
            path: "/".repeat(len),
            ..Default::default()
        }
    }

    #[test]
    fn entries_fill_a_message_up_to_the_budget_and_a_large_one_goes_alone() {
        // A path of 98 bytes takes 100 as an entry (tag, length, the string's own tag and length).
        assert_eq!(prost::Message::encoded_len(&path(98)), 100);
        let mut parts = Parts::new(300);
        let starts: Vec<bool> = [98, 98, 98, 98, 500, 98, 98]
            .into_iter()
            .map(|n| parts.starts_anew(&path(n)))
            .collect();
        // 102 bytes framed each: two fit in 300, the third starts anew; the large one alone.
        assert_eq!(starts, [false, false, true, false, true, true, false]);
    }
}
