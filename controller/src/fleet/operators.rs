//! What operators ask of the fleet that changes or reaches a host: a diff (brokered through
//! the agent, where policy allows), acknowledgements and their end.

use std::time::Instant;

use tokio::sync::oneshot;

use super::{AckRequest, DIFF_MAX_BYTES, DiffContent, Fleet, FleetError, PendingContent, ToAgent};
use crate::model::{Ack, EventKind};
use crate::store::Write;

impl Fleet {
    /// Checks the manifest's policy for a diff and asks the agent for the content; the agent
    /// checks its own deny list again.
    pub(super) fn diff(
        &mut self,
        host_id: &str,
        path: &str,
        reply: oneshot::Sender<Result<DiffContent, FleetError>>,
    ) {
        let Some(host) = self.hosts.get(host_id) else {
            let _ = reply.send(Err(FleetError::UnknownHost(host_id.to_owned())));
            return;
        };
        let Some(decl) = host.desired.files.get(path) else {
            let _ = reply.send(Err(FleetError::NotDeclared {
                host: host_id.to_owned(),
                path: path.to_owned(),
            }));
            return;
        };
        let why_not = if decl.spec.sensitive {
            Some(format!(
                "{path} is declared sensitive ({}): its content never leaves the host",
                decl.declared_at
            ))
        } else if !decl.spec.diff {
            Some(format!(
                "{path} is not declared with diff: true ({}); its content stays on the host",
                decl.declared_at
            ))
        } else {
            None
        };
        if let Some(why) = why_not {
            let _ = reply.send(Err(FleetError::ContentWithheld(why)));
            return;
        }
        if let (None, Some(controller)) = (&host.conn, &host.remote) {
            let _ = reply.send(Err(FleetError::Elsewhere {
                host: host_id.to_owned(),
                controller: controller.clone(),
            }));
            return;
        }
        let (Some(desired), Some(conn)) = (decl.spec.desired_content.clone(), host.conn.as_ref())
        else {
            let _ = reply.send(Err(FleetError::Offline(host_id.to_owned())));
            return;
        };
        let id = self.next_content;
        self.next_content += 1;
        let request = ToAgent::ContentRequest {
            id,
            path: path.to_owned(),
            max_bytes: DIFF_MAX_BYTES,
        };
        if conn.out.try_send(request).is_err() {
            let _ = reply.send(Err(FleetError::NotReading(host_id.to_owned())));
            return;
        }
        self.pending_content.insert(
            id,
            PendingContent {
                conn: conn.id,
                desired,
                since: Instant::now(),
                reply,
            },
        );
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
    pub(super) fn revoke_now(&mut self, host: &str, resource: &str) -> Result<(), FleetError> {
        self.refuse_while_failing()?;
        let Some(ack) = self.acks.remove(host, resource) else {
            return Err(FleetError::NoAck {
                host: host.to_owned(),
                resource: resource.to_owned(),
            });
        };
        match self.store.drop_ack(&ack, self.now(), EventKind::AckRevoked) {
            Ok(event) => {
                self.publish(event);
                Ok(())
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
            let _ = p.reply.send(
                result
                    .map(|actual| DiffContent {
                        desired: p.desired,
                        actual,
                    })
                    .map_err(FleetError::Agent),
            );
        }
    }
}
