//! The fleet's tick (every second): the log's head said, waiting writes retried, expired
//! acknowledgements ended, silent streams closed, last-seen times written.

use std::time::{Duration, Instant};

use super::{Fleet, HEAD_PUBLISHED_EVERY, MISSED_HEARTBEATS, SEEN_WRITE_EVERY_MS};
use crate::model::EventKind;
use crate::store::{StoreError, Write};

impl Fleet {
    pub(super) fn tick(&mut self) -> Result<(), StoreError> {
        if self.head_published_at.elapsed() >= HEAD_PUBLISHED_EVERY {
            self.publish_head();
        }
        if self.writes.failing.is_some() {
            self.flush_writes();
            self.step_aside();
        }
        // On a shared store one controller expires acknowledgements, for every host.
        let expired = if self.singleton {
            self.acks.take_expired(self.now())
        } else {
            Vec::new()
        };
        for ack in expired {
            tracing::info!(host = %ack.host_id, resource = %ack.resource, "acknowledgement expired; the drift counts again");
            let at_ms = self.now();
            self.write(
                Some(Write::DropAck {
                    ack,
                    at_ms,
                    kind: EventKind::AckExpired,
                }),
                None,
            );
        }
        self.end_windows();
        // Agents that never answered a content request: give up (the caller has timed out).
        self.pending_content
            .retain(|_, p| p.since.elapsed() < Duration::from_secs(30));
        self.expire_brokered();
        self.count_heartbeats();
        let limit = self.heartbeat_interval * MISSED_HEARTBEATS;
        let silent: Vec<u64> = self
            .hosts
            .values()
            .filter_map(|h| {
                h.conn
                    .as_ref()
                    .filter(|c| c.last_heard.elapsed() > limit)
                    .map(|c| c.id)
            })
            .collect();
        for conn in silent {
            self.disconnected(conn, "missed heartbeats")?;
        }
        self.retire_old_streams()?;
        self.moved_nowhere();
        let seen: Vec<(String, i64)> = self
            .hosts
            .values()
            .filter(|h| {
                h.conn.is_some() && h.last_seen_ms - h.seen_stored_ms >= SEEN_WRITE_EVERY_MS
            })
            .map(|h| (h.info.host_id.clone(), h.last_seen_ms))
            .collect();
        if !seen.is_empty() {
            let refs: Vec<(&str, i64)> = seen.iter().map(|(h, t)| (h.as_str(), *t)).collect();
            if self.touch(&refs) {
                for (id, at) in &seen {
                    if let Some(h) = self.hosts.get_mut(id) {
                        h.seen_stored_ms = *at;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every stream whose agent sent a heartbeat since the last tick was heard from now: its
    /// host's last-seen time is the tick's (at most a second late; stored every 30 s).
    fn count_heartbeats(&mut self) {
        let now = self.now();
        for host in self.hosts.values_mut() {
            let Some(c) = host.conn.as_mut() else {
                continue;
            };
            let count = c.heartbeats.count();
            if count != c.counted {
                c.counted = count;
                c.last_heard = Instant::now();
                host.last_seen_ms = now;
            }
        }
    }
}
