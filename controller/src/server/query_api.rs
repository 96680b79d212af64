//! `QueryService`: what the CLI (or grpcurl, through reflection) asks the controller.

use std::pin::Pin;

use plumb_proto::v1::{self, query_service_server::QueryService};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::identity::Auth;
use super::scope::{self, Seen};
use super::wire;
use crate::fleet::{AckRequest, FleetHandle, Read};
use crate::key::Key;
use crate::model::EventKind;
use crate::role::{Action, Person};
use crate::store::LogQuery;

const DEFAULT_HISTORY: u32 = 1000;
/// How long an agent has to send a file's content for a diff.
pub(super) const DIFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_HISTORY: u32 = 100_000;

pub(crate) struct QueryApi {
    pub(crate) fleet: FleetHandle,
    pub(crate) auth: Auth,
    /// Said with every answer (e.g. listening without TLS).
    pub(crate) warnings: Vec<String>,
}

impl QueryApi {
    /// Refuses a request about a host outside the person's scope as about one that does not
    /// exist.
    async fn in_scope(&self, person: &Person, host: &str) -> Result<Seen, Status> {
        let seen = Seen::of(&self.fleet, &person.scope).await?;
        if seen.host(host) {
            Ok(seen)
        } else {
            Err(Status::not_found(format!(
                "no host {host:?} is known to this controller"
            )))
        }
    }

    /// Change windows approve changes fleet-wide: not for a person limited to some hosts.
    fn fleet_wide(person: &Person) -> Result<(), Status> {
        if person.scope.whole() {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{person} is limited to {}: change windows are for those who see the whole fleet",
                person.scope.describe()
            )))
        }
    }

    /// The hosts a request may see: as they are now (`at_ms` 0), or as they stood at `at_ms`
    /// (`moment`, for those who may read the log; `what` names the read). Hosts outside the
    /// person's scope do not exist for them.
    async fn hosts_for<T>(
        &self,
        request: &Request<T>,
        at_ms: i64,
        what: &str,
    ) -> Result<crate::fleet::Overview, Status> {
        if at_ms != 0 {
            let person = self.auth.person(request, Action::ReadLog)?;
            return self.moment(&person, at_ms, what).await;
        }
        let person = self.auth.person(request, Action::Read)?;
        let mut overview = self.fleet.overview().await?;
        overview
            .hosts
            .retain(|h| person.scope.sees(&h.info.host_id, &h.info.labels));
        overview.warnings = self.warnings_with(&overview);
        Ok(overview)
    }

    /// The fleet as it stood at `at_ms`, for a person who may read the log: rebuilt from it,
    /// and recorded as a read of it (`what`) before it is shown.
    async fn moment(
        &self,
        person: &Person,
        at_ms: i64,
        what: &str,
    ) -> Result<crate::fleet::Overview, Status> {
        let now = crate::clock::now_ms();
        if at_ms > now {
            return Err(Status::invalid_argument(format!(
                "{} is in the future: the log can only say what stood until now",
                crate::clock::rfc3339(at_ms, true).unwrap_or_else(|| at_ms.to_string())
            )));
        }
        let (mut overview, _) = self.fleet.moment(at_ms).await?;
        overview
            .hosts
            .retain(|h| person.scope.sees(&h.info.host_id, &h.info.labels));
        self.fleet
            .record_read(Read {
                kind: EventKind::LogRead,
                resource: "audit-log".into(),
                by: person.to_string(),
                what: format!(
                    "{what} as at {}",
                    crate::clock::rfc3339(at_ms, true).unwrap_or_default()
                ),
            })
            .await?;
        overview.warnings = self.warnings_with(&overview);
        Ok(overview)
    }

    /// The controller's own warnings, then the fleet's (the store cannot write).
    fn warnings_with(&self, overview: &crate::fleet::Overview) -> Vec<String> {
        self.warnings
            .iter()
            .chain(&overview.warnings)
            .cloned()
            .collect()
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::DriftEvent, Status>> + Send>>;

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn list_hosts(
        &self,
        request: Request<v1::ListHostsRequest>,
    ) -> Result<Response<v1::ListHostsResponse>, Status> {
        let at_ms = request.get_ref().at_ms;
        let overview = self.hosts_for(&request, at_ms, "the hosts").await?;
        Ok(Response::new(v1::ListHostsResponse {
            hosts: overview
                .hosts
                .into_iter()
                .map(wire::host_to_proto)
                .collect(),
            warnings: overview.warnings,
            manifest_errors: overview
                .manifest_errors
                .into_iter()
                .map(|message| v1::ManifestError { message })
                .collect(),
        }))
    }

    async fn get_drift(
        &self,
        request: Request<v1::GetDriftRequest>,
    ) -> Result<Response<v1::GetDriftResponse>, Status> {
        let at_ms = request.get_ref().at_ms;
        let overview = self.hosts_for(&request, at_ms, "the drift").await?;
        let wanted = request.into_inner().hosts;
        let (hosts, errors, warnings) =
            (overview.hosts, overview.manifest_errors, overview.warnings);
        if let Some(missing) = wanted
            .iter()
            .find(|w| !hosts.iter().any(|h| &h.info.host_id == *w))
        {
            return Err(Status::not_found(format!(
                "no host {missing:?} is known to this controller"
            )));
        }
        let hosts = hosts
            .into_iter()
            .filter(|h| wanted.is_empty() || wanted.contains(&h.info.host_id))
            .map(|h| v1::HostDrift {
                acks: h.acks.iter().map(wire::ack_to_proto).collect(),
                drift: h.drift.iter().map(wire::drift_to_proto).collect(),
                host: Some(wire::host_to_proto(h)),
            })
            .collect();
        Ok(Response::new(v1::GetDriftResponse {
            hosts,
            manifest_errors: errors
                .into_iter()
                .map(|message| v1::ManifestError { message })
                .collect(),
            warnings,
        }))
    }

    type WatchDriftStream = EventStream;

    async fn watch_drift(
        &self,
        request: Request<v1::WatchDriftRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let person = self.auth.person(&request, Action::Read)?;
        let hosts = request.into_inner().hosts;
        let mut seen = Seen::of(&self.fleet, &person.scope).await?;
        let (current, mut rx) = self.fleet.follow(hosts.clone()).await?;
        let fleet = self.fleet.clone();
        let stream = async_stream(move |tx| async move {
            for e in current.iter().filter(|e| seen.event(e)) {
                if tx.send(Ok(wire::event_to_proto(e))).await.is_err() {
                    return;
                }
            }
            loop {
                let item = match rx.recv().await {
                    Ok(e)
                        if (hosts.is_empty() || hosts.contains(&e.host_id))
                            && seen.follows(&fleet, &e).await =>
                    {
                        Ok(wire::event_to_proto(&e))
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => Err(Status::data_loss(format!(
                        "this follower fell {n} events behind; reconnect to get the current drift"
                    ))),
                    Err(RecvError::Closed) => return,
                };
                let fatal = item.is_err();
                if tx.send(item).await.is_err() || fatal {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_history(
        &self,
        request: Request<v1::GetHistoryRequest>,
    ) -> Result<Response<v1::GetHistoryResponse>, Status> {
        let person = self.auth.person(&request, Action::ReadLog)?;
        let r = request.into_inner();
        let limit = match r.limit {
            0 => DEFAULT_HISTORY,
            n => n.min(MAX_HISTORY),
        };
        let host = (!r.host_id.is_empty()).then_some(r.host_id);
        let kind = match r.kind.as_str() {
            "" => None,
            k => Some(EventKind::parse(k).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "no event is called {k:?}; the kinds are those `plumb history` shows, e.g. opened, resolved, acknowledged, content_read"
                ))
            })?),
        };
        let before = (r.before > 0).then_some(r.before);
        let since_ms = (r.since_ms != 0).then_some(r.since_ms);
        let until_ms = (r.until_ms != 0).then_some(r.until_ms);
        if let (Some(a), Some(b)) = (since_ms, until_ms)
            && a >= b
        {
            return Err(Status::invalid_argument(
                "the period's start must be before its end",
            ));
        }
        let when = |ms: Option<i64>| {
            ms.and_then(|m| crate::clock::rfc3339(m, true))
                .unwrap_or_else(|| "-".into())
        };
        let what = format!(
            "{limit} entries{}{}{}{}",
            if since_ms.is_some() || until_ms.is_some() {
                format!(" from {} to {}", when(since_ms), when(until_ms))
            } else {
                String::new()
            },
            host.as_deref()
                .map(|h| format!(" of {h}"))
                .unwrap_or_default(),
            kind.map(|k| format!(", {k} only")).unwrap_or_default(),
            before
                .map(|b| format!(", before entry {b}"))
                .unwrap_or_else(|| ", the latest".into()),
        );
        let seen = match &host {
            Some(h) => self.in_scope(&person, h).await?,
            None => Seen::of(&self.fleet, &person.scope).await?,
        };
        let q = LogQuery {
            host,
            kind,
            before,
            since_ms,
            until_ms,
            limit,
        };
        let (events, head, _) = scope::log_page(&self.fleet, &seen, q).await?;
        self.fleet
            .record_read(Read {
                kind: EventKind::LogRead,
                resource: "audit-log".into(),
                by: person.to_string(),
                what,
            })
            .await?;
        Ok(Response::new(v1::GetHistoryResponse {
            events: events.iter().map(wire::event_to_proto).collect(),
            audit_head: Some(v1::AuditHead {
                entry: head.last_id,
                hash: head.hash,
                signature: head.signature,
                public_key: head.public_key,
            }),
        }))
    }

    async fn get_diff(
        &self,
        request: Request<v1::GetDiffRequest>,
    ) -> Result<Response<v1::GetDiffResponse>, Status> {
        let person = self.auth.person(&request, Action::ReadContent)?;
        let r = request.into_inner();
        self.in_scope(&person, &r.host_id).await?;
        let (host, path) = (r.host_id.clone(), r.path.clone());
        let content = tokio::time::timeout(DIFF_TIMEOUT, self.fleet.diff(host, path))
            .await
            .map_err(|_| {
                Status::deadline_exceeded("the agent did not send the content in time")
            })??;
        let identical = content.desired.as_slice() == content.actual.as_slice();
        self.fleet
            .record_read(Read {
                kind: EventKind::ContentRead,
                resource: format!("{}:{}", r.host_id, r.path),
                by: person.to_string(),
                what: if identical {
                    "a diff: identical".into()
                } else {
                    "a diff of desired and actual content".into()
                },
            })
            .await?;
        let diff = if identical {
            String::new()
        } else {
            unified_diff(&r.path, &content.desired, &content.actual)
        };
        Ok(Response::new(v1::GetDiffResponse { diff, identical }))
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::Acknowledgement>, Status> {
        let person = self.auth.person(&request, Action::Acknowledge)?;
        let r = request.into_inner();
        self.in_scope(&person, &r.host_id).await?;
        let by = person.name;
        if r.reason.trim().is_empty() {
            return Err(Status::invalid_argument(
                "an acknowledgement needs a reason",
            ));
        }
        let req = AckRequest {
            host: r.host_id,
            resource: r.resource,
            reason: r.reason,
            by,
            expires_ms: (r.expires_ms > 0).then_some(r.expires_ms),
        };
        let ack = self.fleet.acknowledge(req).await?;
        Ok(Response::new(wire::ack_to_proto(&ack)))
    }

    async fn revoke_ack(
        &self,
        request: Request<v1::RevokeAckRequest>,
    ) -> Result<Response<v1::RevokeAckResponse>, Status> {
        let person = self.auth.person(&request, Action::Acknowledge)?;
        let r = request.into_inner();
        self.in_scope(&person, &r.host_id).await?;
        self.fleet
            .revoke_ack(r.host_id, r.resource, person.name)
            .await?;
        Ok(Response::new(v1::RevokeAckResponse {}))
    }

    async fn open_change(
        &self,
        request: Request<v1::OpenChangeRequest>,
    ) -> Result<Response<v1::ChangeWindow>, Status> {
        let person = self.auth.person(&request, Action::ManageChanges)?;
        Self::fleet_wide(&person)?;
        let by = person.name;
        let r = request.into_inner();
        if r.reason.trim().is_empty() {
            return Err(Status::invalid_argument(
                "a change window needs a reason (what the change is)",
            ));
        }
        let window = crate::window::ChangeWindow {
            ticket: r.ticket,
            scope: wire::scope_from_proto(r.scope),
            // The fleet's clock decides what "now" is.
            from_ms: r.from_ms,
            until_ms: if r.duration_ms > 0 { 0 } else { r.until_ms },
            opened_by: by,
            reason: r.reason,
            closed: None,
            ended: false,
        };
        let w = self
            .fleet
            .open_window(window, (r.duration_ms > 0).then_some(r.duration_ms))
            .await?;
        Ok(Response::new(wire::window_to_proto(&w)))
    }

    async fn close_change(
        &self,
        request: Request<v1::CloseChangeRequest>,
    ) -> Result<Response<v1::ChangeWindow>, Status> {
        let person = self.auth.person(&request, Action::ManageChanges)?;
        Self::fleet_wide(&person)?;
        let by = person.name;
        let ticket = request.into_inner().ticket;
        let w = self.fleet.close_window(ticket, by).await?;
        Ok(Response::new(wire::window_to_proto(&w)))
    }

    async fn list_changes(
        &self,
        request: Request<v1::ListChangesRequest>,
    ) -> Result<Response<v1::ListChangesResponse>, Status> {
        self.auth.person(&request, Action::Read)?;
        let windows = self.fleet.windows().await?;
        Ok(Response::new(v1::ListChangesResponse {
            changes: windows.iter().map(wire::window_to_proto).collect(),
        }))
    }

    async fn diverge(
        &self,
        request: Request<v1::DivergeRequest>,
    ) -> Result<Response<v1::DivergeResponse>, Status> {
        let person = self.auth.person(&request, Action::Read)?;
        let seen = Seen::of(&self.fleet, &person.scope).await?;
        let r = request.into_inner();
        let key = match r.resource.as_str() {
            "" => None,
            text => Some(Key::parse_resource(text).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{text:?} names no path or package (write /etc/x, file:/etc/x or package:NAME)"
                ))
            })?),
        };
        let selector = Some(r.selector).filter(|s| !s.is_empty());
        let groups = self.fleet.diverge(selector, key).await?;
        Ok(Response::new(v1::DivergeResponse {
            // A person who sees only some hosts sees only the groups made of them.
            groups: groups
                .iter()
                .filter(|d| d.hosts().all(|h| seen.host(h)))
                .map(wire::divergence_to_proto)
                .collect(),
        }))
    }

    async fn accept_baseline(
        &self,
        request: Request<v1::AcceptBaselineRequest>,
    ) -> Result<Response<v1::AcceptBaselineResponse>, Status> {
        let person = self.auth.person(&request, Action::Read)?;
        let seen = Seen::of(&self.fleet, &person.scope).await?;
        let r = request.into_inner();
        let from = Some(r.from).filter(|f| !f.is_empty());
        if !seen.whole() {
            // What a group's majority is depends on hosts such a person may not see.
            return Err(Status::permission_denied(
                "a baseline's state is read from every host of its group: it takes a person who sees the whole fleet",
            ));
        }
        let groups = self.fleet.accept(r.selector, from).await?;
        Ok(Response::new(v1::AcceptBaselineResponse {
            groups: groups.iter().map(wire::accepted_to_proto).collect(),
        }))
    }

    async fn list_acks(
        &self,
        request: Request<v1::ListAcksRequest>,
    ) -> Result<Response<v1::ListAcksResponse>, Status> {
        let person = self.auth.person(&request, Action::Read)?;
        let seen = Seen::of(&self.fleet, &person.scope).await?;
        let acks = self.fleet.acks().await?;
        Ok(Response::new(v1::ListAcksResponse {
            acks: acks
                .iter()
                .filter(|a| seen.host(&a.host_id))
                .map(wire::ack_to_proto)
                .collect(),
        }))
    }
}

/// A response stream fed by a task through a small bounded channel (a slow follower makes the
/// task wait; the broadcast behind it reports the lag).
fn async_stream<F, Fut>(body: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<v1::DriftEvent, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Desired against actual, as `diff -u` prints it; binary content only says that it differs.
pub(super) fn unified_diff(path: &str, desired: &[u8], actual: &[u8]) -> String {
    match (std::str::from_utf8(desired), std::str::from_utf8(actual)) {
        (Ok(a), Ok(b)) => similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{path} (desired)"), &format!("{path} (actual)"))
            .to_string(),
        _ => format!(
            "binary content differs: desired sha256 {}, actual sha256 {}\n",
            crate::digest::hex_sha256(desired),
            crate::digest::hex_sha256(actual)
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unified_diffs() {
        let d = super::unified_diff("/etc/a", b"a=1\nb=2\n", b"a=1\nb=3\n");
        assert_eq!(
            d,
            "--- /etc/a (desired)\n+++ /etc/a (actual)\n@@ -1,2 +1,2 @@\n a=1\n-b=2\n+b=3\n"
        );
        assert!(
            super::unified_diff("/bin", b"\xff", b"\xfe").starts_with("binary content differs")
        );
    }
}
