//! Writing to the store: at once when it can, otherwise kept in order behind the writes
//! already waiting (`writes.rs`), their agent messages acknowledged only once stored; and what
//! every write is told to (followers, webhooks, the log's head).

use std::time::Instant;

use super::writes::Pending;
use super::{Fleet, FleetError, ToAgent, rfc3339};
use crate::model::{DriftRecord, Event, EventKind};
use crate::store::{StoreError, Write};

impl Fleet {
    /// Makes `write` now, or keeps it behind the writes already waiting; the agent message
    /// `ack` names is acknowledged once it is in the store, never before. Followers hear of
    /// its events at once either way (with id 0 while they wait for the store).
    pub(super) fn write(&mut self, write: Option<Write>, ack: Option<(u64, u64)>) {
        if self.writes.pending.is_empty() {
            let started = Instant::now();
            let result = match &write {
                Some(w) => self.store.apply(w),
                None => Ok(Vec::new()),
            };
            match result {
                Ok(events) => {
                    if write.is_some() {
                        self.counters.store.observe(started.elapsed().as_secs_f64());
                    }
                    if self.writes.failing.is_some() {
                        // Nothing was waiting: the failure was a touch, now past.
                        self.recovered();
                    }
                    for e in events {
                        self.publish(e);
                    }
                    self.send_ack(ack);
                    return;
                }
                Err(StoreError::Fenced { host }) => {
                    // Not a failure: the host is another controller's now, and so is writing
                    // what its agent says.
                    self.fenced(&host);
                    return;
                }
                Err(StoreError::AlreadyEnded { .. }) => {
                    // Not a failure: another controller ended it, and said so in the log.
                    self.reload_acks();
                    self.reload_windows();
                    return;
                }
                Err(e) => {
                    self.writes.failed(self.now(), &e);
                    self.store_ok
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        if let Some(w) = &write {
            for e in w.events() {
                self.publish(e);
            }
        }
        if self.writes.pending.len() >= self.max_pending {
            // Not kept, and not acknowledged: the host is read again once the store writes.
            if let Some(w) = &write {
                self.writes.lose(w.host_id(), self.now());
            }
        } else {
            self.writes.keep(Pending { write, ack });
        }
        // Behind what waits, so the streams' ends are written after it.
        self.step_aside();
    }

    /// Makes the waiting writes, in order, as far as the store lets them.
    pub(super) fn flush_writes(&mut self) {
        while let Some(p) = self.writes.pending.front() {
            if let Some(w) = &p.write {
                match self.store.apply(w) {
                    Ok(_) => {}
                    Err(StoreError::Fenced { host }) => {
                        // Taken by another controller meanwhile: what it waited to say is
                        // that controller's to say now.
                        self.writes.pending.pop_front();
                        self.fenced(&host);
                        continue;
                    }
                    Err(StoreError::AlreadyEnded { .. }) => {
                        // Ended meanwhile by another controller, which logged it.
                        self.writes.pending.pop_front();
                        self.reload_acks();
                        self.reload_windows();
                        continue;
                    }
                    Err(e) => {
                        self.writes.failed(self.now(), &e);
                        return;
                    }
                }
            }
            if let Some(p) = self.writes.pending.pop_front() {
                self.send_ack(p.ack);
            }
        }
        if self.writes.failing.is_some() {
            self.recovered();
        }
    }

    /// The store writes again and nothing waits: say so in the log itself, and read again the
    /// hosts whose writes could not be kept.
    pub(super) fn recovered(&mut self) {
        let Some((since, error)) = self.writes.failing.take() else {
            return;
        };
        let now = self.now();
        let lost: Vec<String> = std::mem::take(&mut self.writes.lost).into_keys().collect();
        let summary = format!(
            "the store could not write from {} to {} ({error}); {} write(s) were made late, in order; {} could not be kept{}",
            rfc3339(since, false).unwrap_or_default(),
            rfc3339(now, false).unwrap_or_default(),
            self.writes.delayed,
            self.writes.dropped,
            if lost.is_empty() {
                String::new()
            } else {
                format!(", so these hosts were read again: {}", lost.join(", "))
            }
        );
        let record = DriftRecord {
            resource: "store".into(),
            attribute: "writes".into(),
            expected: "written when they happen".into(),
            actual: summary.clone(),
            since_ms: since,
            declared_at: String::new(),
            evidence: Default::default(),
        };
        match self
            .store
            .log("", now, EventKind::StoreOutage, Some(&record))
        {
            Ok(event) => self.publish(event),
            Err(e) => {
                self.writes.failing = Some((since, error));
                self.writes.failed(now, &e);
                self.writes.lost = lost.into_iter().map(|h| (h, since)).collect();
                return;
            }
        }
        tracing::warn!(%summary, "the store writes again");
        self.writes.delayed = 0;
        self.writes.dropped = 0;
        self.store_ok
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for host in lost {
            self.reread(&host);
        }
    }

    /// Forgets what the fleet holds of a host beyond its store (writes were dropped), and asks
    /// its agent for everything again: the snapshot is then judged against what the log says,
    /// so every difference is recorded, now.
    pub(super) fn reread(&mut self, host_id: &str) {
        self.load_stored(host_id);
        // A new plan makes the agent send everything again.
        self.send_plan(host_id);
    }

    /// Takes a host's drift and observations from the store, for what the store says to be
    /// what the agent's next snapshot is judged against.
    pub(super) fn load_stored(&mut self, host_id: &str) {
        let stored = self
            .store
            .load_drift(host_id)
            .and_then(|d| Ok((d, self.store.load_observations(host_id)?)));
        let Some(host) = self.hosts.get_mut(host_id) else {
            return;
        };
        match stored {
            Ok((drift, observed)) => {
                host.drift.clear();
                for (origin, record) in drift {
                    host.drift.entry(origin).or_default().push(record);
                }
                host.observed_anew(observed);
            }
            Err(e) => {
                tracing::error!(host = host_id, error = %e, "cannot read back what the store holds of a host")
            }
        }
    }

    /// A write for `host_id` was refused: another controller holds its stream now.
    fn fenced(&mut self, host_id: &str) {
        self.let_go(host_id, &crate::store::Holder::Other(String::new()));
        self.mirror(host_id);
    }

    /// On a shared store that cannot be written, this controller claims nothing: it closes
    /// its agents' streams (they move to a controller that can write, or come back and are
    /// refused until this one can) rather than hold changes only it knows of.
    pub(super) fn step_aside(&mut self) {
        if !self.shared || self.writes.failing.is_none() {
            return;
        }
        // Taken out at once: each end writes (behind what waits), which comes back here.
        let conns: Vec<(u64, String)> = self.conn_host.drain().collect();
        if conns.is_empty() {
            return;
        }
        tracing::warn!(
            streams = conns.len(),
            "the shared store cannot be written: closing the agents' streams so they move to another controller"
        );
        for (conn, host) in conns {
            self.stream_ended(host, conn, "the store cannot be written");
        }
    }

    pub(super) fn send_ack(&self, ack: Option<(u64, u64)>) {
        let Some((conn, seq)) = ack else { return };
        let out = self
            .conn_host
            .get(&conn)
            .and_then(|id| self.hosts.get(id))
            .and_then(|h| h.conn.as_ref())
            .filter(|c| c.id == conn);
        if let Some(c) = out {
            let _ = c.out.try_send(ToAgent::Ack { seq });
        }
    }

    /// Last-seen times: not events, so not kept when they cannot be written (they are written
    /// again later), but a failure still says the store cannot write.
    pub(super) fn touch(&mut self, seen: &[(&str, i64)]) -> bool {
        match self.store.touch_hosts(seen) {
            Ok(()) => true,
            Err(e) => {
                self.writes.failed(self.now(), &e);
                self.store_ok
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }

    /// Tells followers and webhooks, and counts the event. Webhooks get the log's head with an
    /// event the store holds (a copy of the head outside the store, for `audit verify --head`).
    /// On a shared store, followers hear it from the store's tail instead, in the log's order
    /// with every other controller's (`shared.rs`).
    pub(super) fn publish(&mut self, event: Event) {
        *self.counters.events.entry(event.kind.as_str()).or_default() += 1;
        if !self.shared {
            self.count_trend(&event);
        }
        if let Some(hooks) = &self.webhooks {
            let head = self.store.head();
            let stored = event.id > 0 && head.last_id >= event.id;
            hooks.send(&event, stored.then_some(head));
        }
        if !self.shared {
            let _ = self.events.send(event);
        }
    }

    /// Says where the event log's head is, in the controller's own log: a copy outside the
    /// store, for `plumb audit verify --head` to hold the store to later.
    pub(super) fn publish_head(&mut self) {
        let head = self.store.head();
        if head.last_id == self.head_published {
            return;
        }
        self.head_published = head.last_id;
        self.head_published_at = Instant::now();
        tracing::info!(
            entry = head.last_id,
            hash = %head.hash,
            signature = %head.signature,
            public_key = %head.public_key,
            "audit head"
        );
    }

    /// An operator's change is not kept for later: it is refused while the store cannot write.
    pub(super) fn refuse_while_failing(&self) -> Result<(), FleetError> {
        match self.writes.warning() {
            Some(w) => Err(FleetError::StoreWaiting(w)),
            None => Ok(()),
        }
    }

    pub(super) fn cannot_write(&mut self, e: StoreError) -> FleetError {
        self.writes.failed(self.now(), &e);
        self.store_ok
            .store(false, std::sync::atomic::Ordering::Relaxed);
        FleetError::StoreCannotWrite(e)
    }
}
