//! What operators ask of the fleet that changes or reaches a host: a diff (brokered through
//! the agent, where policy allows), acknowledgements and their end.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{
    AckRequest, DIFF_MAX_BYTES, DiffContent, Fleet, FleetError, PendingContent, Read, ToAgent,
};
use crate::model::{Ack, DriftRecord, EventKind};
use crate::store::{ContentAsk, StoreError, Write};

impl Fleet {
    /// Checks the manifest's policy for a diff and asks the agent for the content (the agent
    /// checks its own deny list again), or the controller holding its stream.
    pub(super) fn diff(
        &mut self,
        host_id: &str,
        path: &str,
        reply: oneshot::Sender<Result<DiffContent, FleetError>>,
    ) {
        let (desired, source) = match self.content_source(host_id, path) {
            Ok(found) => found,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        match source {
            Source::Agent(conn) => {
                self.request_content(host_id, path, conn, Waiter::Here { desired, reply })
            }
            Source::Elsewhere(controller) => {
                self.diff_elsewhere(host_id, path, controller, desired, reply)
            }
        }
    }

    /// Where a diff of `path` on `host_id` may come from, with the desired content, or why it
    /// may not be made.
    pub(super) fn content_source(
        &self,
        host_id: &str,
        path: &str,
    ) -> Result<(Arc<Vec<u8>>, Source), FleetError> {
        let Some(host) = self.hosts.get(host_id) else {
            return Err(FleetError::UnknownHost(host_id.to_owned()));
        };
        let Some(decl) = host.desired.files.get(path) else {
            return Err(FleetError::NotDeclared {
                host: host_id.to_owned(),
                path: path.to_owned(),
            });
        };
        if decl.spec.sensitive {
            return Err(FleetError::ContentWithheld(format!(
                "{path} is declared sensitive ({}): its content never leaves the host",
                decl.declared_at
            )));
        }
        let Some(desired) = decl.spec.desired_content.clone().filter(|_| decl.spec.diff) else {
            return Err(FleetError::ContentWithheld(format!(
                "{path} is not declared with diff: true ({}); its content stays on the host",
                decl.declared_at
            )));
        };
        match (&host.conn, &host.remote) {
            (Some(conn), _) => Ok((desired, Source::Agent(conn.id))),
            (None, Some(controller)) => Ok((desired, Source::Elsewhere(controller.clone()))),
            (None, None) => Err(FleetError::Offline(host_id.to_owned())),
        }
    }

    /// Asks the agent on stream `conn` for the content, for `waiter` (told at once if the
    /// request cannot be sent).
    pub(super) fn request_content(&mut self, host_id: &str, path: &str, conn: u64, waiter: Waiter) {
        let id = self.next_content;
        self.next_content += 1;
        // Another controller's limit, where smaller; never more than this one's.
        let max_bytes = match &waiter {
            Waiter::Broker(ask) => ask.max_bytes.min(DIFF_MAX_BYTES),
            Waiter::Here { .. } => DIFF_MAX_BYTES,
        };
        let request = ToAgent::ContentRequest {
            id,
            path: path.into(),
            max_bytes,
        };
        let sent = self
            .hosts
            .get(host_id)
            .and_then(|h| h.conn.as_ref())
            .filter(|c| c.id == conn)
            .is_some_and(|c| c.out.try_send(request).is_ok());
        if !sent {
            self.answer_content(waiter, Err(FleetError::NotReading(host_id.to_owned())));
            return;
        }
        self.pending_content.insert(
            id,
            PendingContent {
                conn,
                since: Instant::now(),
                waiter,
            },
        );
    }

    /// A person's read of content or of the log, in the event log before they see it.
    pub(super) fn record_read(&mut self, read: Read) -> Result<(), FleetError> {
        self.refuse_while_failing()?;
        let now = self.now();
        let record = DriftRecord {
            resource: read.resource,
            attribute: "read".into(),
            expected: read.by,
            actual: read.what,
            since_ms: now,
            declared_at: String::new(),
            evidence: Default::default(),
        };
        match self.store.log("", now, read.kind, Some(&record)) {
            Ok(event) => {
                self.publish(event);
                Ok(())
            }
            Err(e) => Err(self.cannot_write(e)),
        }
    }

    /// An operator's acknowledgement: made in the store at once, or refused.
    pub(super) fn acknowledge(&mut self, req: AckRequest) -> Result<Ack, FleetError> {
        self.refuse_while_failing()?;
        let Some(host) = self.hosts.get(&req.host) else {
            return Err(FleetError::UnknownHost(req.host));
        };
        if !host
            .drift
            .values()
            .flatten()
            .any(|d| d.resource == req.resource)
        {
            return Err(FleetError::NoOpenDrift {
                host: req.host,
                resource: req.resource,
            });
        }
        let now = self.now();
        if req.expires_ms.is_some_and(|e| e <= now) {
            return Err(FleetError::ExpiryInPast);
        }
        let ack = Ack {
            host_id: req.host,
            resource: req.resource,
            reason: req.reason,
            by: req.by,
            at_ms: now,
            expires_ms: req.expires_ms,
        };
        match self.store.put_ack(&ack) {
            Ok(event) => self.publish(event),
            Err(e) => return Err(self.cannot_write(e)),
        }
        self.acks.put(ack.clone());
        Ok(ack)
    }

    /// An operator's revocation: made in the store at once, or refused.
    /// Ends an acknowledgement at `by`'s word: its `ack_revoked` entry names them (`expected`)
    /// and keeps the acknowledgement's own reason.
    pub(super) fn revoke_now(
        &mut self,
        host: &str,
        resource: &str,
        by: String,
    ) -> Result<(), FleetError> {
        self.refuse_while_failing()?;
        let Some(ack) = self.acks.remove(host, resource) else {
            return Err(FleetError::NoAck {
                host: host.to_owned(),
                resource: resource.to_owned(),
            });
        };
        let revoked = Ack { by, ..ack.clone() };
        match self
            .store
            .drop_ack(&revoked, self.now(), EventKind::AckRevoked)
        {
            Ok(event) => {
                self.publish(event);
                Ok(())
            }
            Err(StoreError::AlreadyEnded { host, resource }) => {
                // Another controller ended it a moment ago (and logged it).
                self.reload_acks();
                Err(FleetError::NoAck { host, resource })
            }
            Err(e) => {
                self.acks.put(ack);
                Err(self.cannot_write(e))
            }
        }
    }

    /// An acknowledgement the fleet ends (its drift resolved, or it expired).
    pub(super) fn end_ack(&mut self, host: &str, resource: &str, kind: EventKind) {
        if let Some(ack) = self.acks.remove(host, resource) {
            let at_ms = self.now();
            self.write(Some(Write::DropAck { ack, at_ms, kind }), None);
        }
    }

    /// An acknowledgement covers the drift it was given for: once the resource has no open
    /// drift any more, it ends (a new drift there later is not pre-approved).
    pub(super) fn release_acks(&mut self, host_id: &str) {
        let Some(host) = self.hosts.get(host_id) else {
            return;
        };
        let done: Vec<String> = self
            .acks
            .of_host(host_id)
            .into_iter()
            .filter(|a| {
                !host
                    .drift
                    .values()
                    .flatten()
                    .any(|d| d.resource == a.resource)
            })
            .map(|a| a.resource)
            .collect();
        for resource in done {
            self.end_ack(host_id, &resource, EventKind::AckRevoked);
        }
    }

    /// An agent's answer to a content request, handed to the diff waiting for it.
    pub(super) fn content(&mut self, conn: u64, id: u64, result: Result<Vec<u8>, String>) {
        if let Some(p) = self.pending_content.remove(&id).filter(|p| p.conn == conn) {
            self.answer_content(p.waiter, result.map_err(FleetError::Agent));
        }
    }

    /// Gives a diff's waiter the content, or why there is none.
    pub(super) fn answer_content(&mut self, waiter: Waiter, result: Result<Vec<u8>, FleetError>) {
        match waiter {
            Waiter::Here { desired, reply } => {
                let _ = reply.send(result.map(|actual| DiffContent { desired, actual }));
            }
            Waiter::Broker(ask) => self.answer_broker(ask, result),
        }
    }
}

/// Where a diff's content comes from.
pub(super) enum Source {
    /// The agent on this stream, here.
    Agent(u64),
    /// The controller that holds the host's stream.
    Elsewhere(String),
}

/// Who waits for a content request's answer.
pub(super) enum Waiter {
    /// An operator on this controller, with the manifest's desired content.
    Here {
        desired: Arc<Vec<u8>>,
        reply: oneshot::Sender<Result<DiffContent, FleetError>>,
    },
    /// Another controller, through the store.
    Broker(ContentAsk),
}
