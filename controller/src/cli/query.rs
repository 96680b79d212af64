//! `plumb hosts`, `plumb drift`, `plumb history`: ask a running controller and print.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use plumb_proto::v1::{self, query_service_client::QueryServiceClient};
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

use super::output::{Format, cell, emit, rfc3339, table};
use plumb_common::cli::exit;

use super::QueryArgs;

pub(super) async fn client(q: &super::ConnArgs) -> anyhow::Result<QueryServiceClient<Channel>> {
    let url = q.controller.as_str();
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| {
            format!("invalid controller URL {url:?}; hint: e.g. http://127.0.0.1:7700")
        })?
        .connect_timeout(Duration::from_secs(3));
    match q.tls.load()? {
        Some(tls) => endpoint = tls.apply(endpoint)?,
        None if url.starts_with("https://") => {
            anyhow::bail!(
                "{url} is https: give --ca (and --cert/--key), or PLUMB_CA/PLUMB_CERT/PLUMB_KEY"
            )
        }
        None => {}
    }
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow!(
            "cannot reach the controller at {url}: {}\nhint: start one with `plumb dev` or `plumb serve`, or point --controller (PLUMB_CONTROLLER) at it",
            source_chain(&e)
        )
    })?;
    Ok(QueryServiceClient::new(channel).max_decoding_message_size(256 << 20))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

fn status_name(s: i32) -> &'static str {
    match v1::HostStatus::try_from(s) {
        Ok(v1::HostStatus::InSync) => "in_sync",
        Ok(v1::HostStatus::Drifted) => "drifted",
        Ok(v1::HostStatus::Offline) => "offline",
        Ok(v1::HostStatus::Degraded) => "degraded",
        _ => "unknown",
    }
}

fn event_name(k: i32) -> &'static str {
    match v1::DriftEventKind::try_from(k) {
        Ok(v1::DriftEventKind::Opened) => "opened",
        Ok(v1::DriftEventKind::Resolved) => "resolved",
        Ok(v1::DriftEventKind::Changed) => "changed",
        Ok(v1::DriftEventKind::HostOnline) => "host_online",
        Ok(v1::DriftEventKind::HostOffline) => "host_offline",
        Ok(v1::DriftEventKind::ManifestsAccepted) => "manifests_accepted",
        Ok(v1::DriftEventKind::ManifestsRejected) => "manifests_rejected",
        Ok(v1::DriftEventKind::Acknowledged) => "acknowledged",
        Ok(v1::DriftEventKind::AckRevoked) => "ack_revoked",
        Ok(v1::DriftEventKind::AckExpired) => "ack_expired",
        Ok(v1::DriftEventKind::LogCreated) => "log_created",
        Ok(v1::DriftEventKind::StoreOutage) => "store_outage",
        _ => "unknown",
    }
}

fn warn_controller(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn warn_manifest_errors(errors: &[v1::ManifestError]) {
    if !errors.is_empty() {
        eprintln!(
            "warning: the latest manifest change was rejected; the last good set stays in force:"
        );
        for e in errors {
            eprintln!("  {}", e.message.replace('\n', "\n  "));
        }
    }
}

fn host_json(h: &v1::Host) -> Value {
    json!({
        "host": h.host_id,
        "hostname": h.hostname,
        "status": status_name(h.status),
        "last_seen": rfc3339(h.last_seen_ms, true),
        "drift_count": h.drift_count,
        "labels": h.labels,
        "os": {"id": h.os_id, "name": h.os_name, "version": h.os_version, "kernel": h.kernel_version, "arch": h.arch},
        "agent_version": h.agent_version,
        "manifests": h.manifests,
        "coverage": h.coverage.as_ref().map(coverage_json),
    })
}

fn coverage_json(c: &v1::HostCoverage) -> Value {
    json!({
        "watches": c.watches,
        "watch_limit": (c.watch_limit > 0).then_some(c.watch_limit),
        "polled": c.polled,
        "watch_errors": c.watch_errors,
        "overflows": c.overflows,
        "last_full_scan": rfc3339(c.last_full_scan_ms, true),
        "degraded_since": rfc3339(c.degraded_since_ms, true),
    })
}

/// One line for a person: what is not watched, and since when.
fn coverage_summary(h: &v1::Host) -> String {
    match &h.coverage {
        None => "-".into(),
        Some(c) if c.polled.is_empty() && c.watch_errors.is_empty() => {
            format!("{} watches", c.watches)
        }
        Some(c) => format!(
            "{} polled since {}",
            c.polled.len(),
            rfc3339(c.degraded_since_ms, false).unwrap_or_else(|| "?".into())
        ),
    }
}

/// Degraded hosts are not known to be in sync: say so next to any answer about drift.
fn warn_degraded(hosts: &[&v1::Host]) {
    for h in hosts
        .iter()
        .filter(|h| h.status == v1::HostStatus::Degraded as i32)
    {
        eprintln!(
            "warning: host {} is degraded: {}; see `plumb hosts -o json`",
            h.host_id,
            coverage_summary(h)
        );
    }
}

fn drift_json(d: &v1::DriftItem) -> Value {
    json!({
        "resource": d.resource,
        "attribute": d.attribute,
        "expected": d.expected,
        "actual": d.actual,
        "since": rfc3339(d.since_ms, true),
        "declared_at": d.declared_at,
    })
}

pub(crate) fn event_json(e: &v1::DriftEvent) -> Value {
    let mut v = json!({"id": e.id, "at": rfc3339(e.at_ms, true), "host": e.host_id, "event": event_name(e.kind)});
    if let (Some(d), Some(map)) = (&e.item, v.as_object_mut())
        && let Value::Object(item) = drift_json(d)
    {
        map.extend(item);
    }
    v
}

fn errors_json(errors: &[v1::ManifestError]) -> Value {
    Value::from(errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>())
}

fn pretty(v: &Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

pub(super) async fn hosts(q: &QueryArgs, format: Format) -> anyhow::Result<i32> {
    let resp = client(&q.conn)
        .await?
        .list_hosts(v1::ListHostsRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    warn_controller(&resp.warnings);
    warn_manifest_errors(&resp.manifest_errors);
    match format {
        Format::Json => emit(&pretty(&json!({
            "hosts": resp.hosts.iter().map(host_json).collect::<Vec<_>>(),
            "manifest_errors": errors_json(&resp.manifest_errors),
            "warnings": resp.warnings,
        }))?)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = resp
                .hosts
                .iter()
                .map(|h| {
                    vec![
                        h.host_id.clone(),
                        status_name(h.status).into(),
                        h.drift_count.to_string(),
                        rfc3339(h.last_seen_ms, false).unwrap_or_else(|| "never".into()),
                        format!("{} {}", h.os_name, h.os_version).trim().to_owned(),
                        coverage_summary(h),
                        h.manifests.join(","),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!(
                    "no hosts yet: start an agent with `plumb-agent run --controller {}`",
                    q.conn.controller
                );
            } else {
                emit(&table(
                    &[
                        "HOST",
                        "STATUS",
                        "DRIFT",
                        "LAST SEEN",
                        "OS",
                        "COVERAGE",
                        "MANIFESTS",
                    ],
                    &rows,
                ))?;
            }
        }
    }
    Ok(exit::OK)
}

pub(super) async fn drift(
    q: &QueryArgs,
    hosts: Vec<String>,
    format: Format,
) -> anyhow::Result<i32> {
    let resp = client(&q.conn)
        .await?
        .get_drift(v1::GetDriftRequest { hosts })
        .await
        .map_err(status_error)?
        .into_inner();
    warn_controller(&resp.warnings);
    warn_manifest_errors(&resp.manifest_errors);
    let hosts: Vec<&v1::Host> = resp.hosts.iter().filter_map(|h| h.host.as_ref()).collect();
    warn_degraded(&hosts);
    // Acknowledged drift is shown but does not fail the command.
    let ack_of = |hd: &v1::HostDrift, d: &v1::DriftItem| {
        hd.acks.iter().find(|a| a.resource == d.resource).cloned()
    };
    let drifted = resp
        .hosts
        .iter()
        .any(|hd| hd.drift.iter().any(|d| ack_of(hd, d).is_none()));
    match format {
        Format::Json => {
            let hosts: Vec<Value> = resp
                .hosts
                .iter()
                .map(|hd| {
                    let h = hd.host.clone().unwrap_or_default();
                    json!({
                        "host": h.host_id,
                        "status": status_name(h.status),
                        "last_seen": rfc3339(h.last_seen_ms, true),
                        "drift": hd.drift.iter().map(|d| {
                            let mut v = drift_json(d);
                            v["acknowledged"] = ack_of(hd, d).as_ref().map_or(Value::Null, ack_json);
                            v
                        }).collect::<Vec<_>>(),
                    })
                })
                .collect();
            emit(&pretty(
                &json!({"hosts": hosts, "manifest_errors": errors_json(&resp.manifest_errors), "warnings": resp.warnings}),
            )?)?;
        }
        Format::Table => {
            let mut rows = Vec::new();
            for hd in &resp.hosts {
                let h = hd.host.clone().unwrap_or_default();
                if hd.drift.is_empty() {
                    rows.push(vec![h.host_id.clone(), status_name(h.status).into()]);
                }
                for d in &hd.drift {
                    rows.push(vec![
                        h.host_id.clone(),
                        status_name(h.status).into(),
                        cell(&d.resource),
                        cell(&d.attribute),
                        cell(&d.expected),
                        cell(&d.actual),
                        rfc3339(d.since_ms, false).unwrap_or_default(),
                        d.declared_at.clone(),
                        ack_of(hd, d)
                            .map(|a| format!("by {}", a.by))
                            .unwrap_or_default(),
                    ]);
                }
            }
            if rows.is_empty() {
                eprintln!("no hosts yet");
            } else {
                emit(&table(
                    &[
                        "HOST",
                        "STATUS",
                        "RESOURCE",
                        "ATTRIBUTE",
                        "EXPECTED",
                        "ACTUAL",
                        "SINCE",
                        "DECLARED AT",
                        "ACK",
                    ],
                    &rows,
                ))?;
            }
        }
    }
    Ok(if drifted { exit::DRIFT } else { exit::OK })
}

/// Prints the current drift as `opened` events, then every event as it happens, until the
/// controller goes away or the user interrupts.
pub(super) async fn follow(
    q: &QueryArgs,
    hosts: Vec<String>,
    format: Format,
) -> anyhow::Result<i32> {
    let mut stream = client(&q.conn)
        .await?
        .watch_drift(v1::WatchDriftRequest { hosts })
        .await
        .map_err(status_error)?
        .into_inner();
    // `plumb drift --follow | head -1`: once the reader is gone, so is the follower, whether
    // it finds out by a failed write or while waiting for the next event.
    let gone = super::output::reader_gone();
    tokio::pin!(gone);
    loop {
        let next = tokio::select! {
            _ = &mut gone => return Ok(exit::OK),
            next = stream.message() => next.map_err(status_error)?,
        };
        let Some(e) = next else {
            return Err(anyhow!("the controller closed the stream"));
        };
        let line = match format {
            Format::Json => serde_json::to_string(&event_json(&e))? + "\n",
            Format::Table => event_line(&e),
        };
        if !super::output::write_out(&line)? {
            return Ok(exit::OK);
        }
    }
}

fn event_line(e: &v1::DriftEvent) -> String {
    let at = rfc3339(e.at_ms, false).unwrap_or_default();
    match &e.item {
        Some(d) => format!(
            "{at}  {:<8}  {}  {}  {}  expected {}, actual {}  ({})\n",
            event_name(e.kind),
            e.host_id,
            cell(&d.resource),
            cell(&d.attribute),
            cell(&d.expected),
            cell(&d.actual),
            d.declared_at
        ),
        None => format!("{at}  {:<8}  {}\n", event_name(e.kind), e.host_id),
    }
}

pub(super) async fn history(
    q: &QueryArgs,
    host: Option<String>,
    limit: u32,
    format: Format,
) -> anyhow::Result<i32> {
    let resp = client(&q.conn)
        .await?
        .get_history(v1::GetHistoryRequest {
            host_id: host.unwrap_or_default(),
            limit,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    match format {
        Format::Json => emit(&pretty(
            &json!({"events": resp.events.iter().map(event_json).collect::<Vec<_>>()}),
        )?)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = resp
                .events
                .iter()
                .map(|e| {
                    let d = e.item.clone().unwrap_or_default();
                    vec![
                        rfc3339(e.at_ms, false).unwrap_or_default(),
                        if e.host_id.is_empty() {
                            "(controller)".into()
                        } else {
                            e.host_id.clone()
                        },
                        event_name(e.kind).into(),
                        cell(&d.resource),
                        cell(&d.attribute),
                        cell(&d.expected),
                        cell(&d.actual),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("no events yet");
            } else {
                emit(&table(
                    &[
                        "AT",
                        "HOST",
                        "EVENT",
                        "RESOURCE",
                        "ATTRIBUTE",
                        "EXPECTED",
                        "ACTUAL",
                    ],
                    &rows,
                ))?;
            }
        }
    }
    Ok(exit::OK)
}

pub(super) async fn ack(args: super::AckArgs) -> anyhow::Result<i32> {
    use super::AckAction;
    match args.action {
        Some(AckAction::List { query }) => {
            let acks = client(&query.conn)
                .await?
                .list_acks(v1::ListAcksRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .acks;
            match query.output {
                Format::Json => emit(&pretty(
                    &json!({"acks": acks.iter().map(ack_json).collect::<Vec<_>>()}),
                )?)?,
                Format::Table if acks.is_empty() => eprintln!("no acknowledgements"),
                Format::Table => {
                    let rows: Vec<Vec<String>> = acks
                        .iter()
                        .map(|a| {
                            vec![
                                a.host_id.clone(),
                                cell(&a.resource),
                                a.by.clone(),
                                rfc3339(a.expires_ms, false)
                                    .unwrap_or_else(|| "until revoked".into()),
                                cell(&a.reason),
                            ]
                        })
                        .collect();
                    emit(&table(
                        &["HOST", "RESOURCE", "BY", "EXPIRES", "REASON"],
                        &rows,
                    ))?;
                }
            }
            Ok(exit::OK)
        }
        Some(AckAction::Revoke {
            host,
            resource,
            query,
        }) => {
            client(&query.conn)
                .await?
                .revoke_ack(v1::RevokeAckRequest {
                    host_id: host.clone(),
                    resource: resource.clone(),
                })
                .await
                .map_err(status_error)?;
            eprintln!("revoked the acknowledgement of {resource} on {host}");
            Ok(exit::OK)
        }
        None => {
            let (host, resource) = (
                args.host.unwrap_or_default(),
                args.resource.unwrap_or_default(),
            );
            let expires_ms = match args.expires {
                Some(d) => std::time::SystemTime::now()
                    .checked_add(d)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |t| t.as_millis() as i64),
                None => 0,
            };
            let ack = client(&args.query.conn)
                .await?
                .acknowledge(v1::AcknowledgeRequest {
                    host_id: host,
                    resource,
                    reason: args.reason.unwrap_or_default(),
                    expires_ms,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            match args.query.output {
                Format::Json => emit(&pretty(&ack_json(&ack))?)?,
                Format::Table => eprintln!(
                    "acknowledged {} on {} ({}), {}",
                    ack.resource,
                    ack.host_id,
                    ack.by,
                    rfc3339(ack.expires_ms, false)
                        .map_or("until revoked".into(), |t| format!("until {t}"))
                ),
            }
            Ok(exit::OK)
        }
    }
}

/// Milliseconds since the epoch for RFC 3339 or a duration ago.
fn parse_time(s: &str) -> anyhow::Result<i64> {
    let t = match humantime::parse_rfc3339_weak(s) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(s)
                .map_err(|_| anyhow!("invalid time {s:?}; hint: RFC 3339 (2026-11-01T00:00:00Z) or a duration ago (7d)"))?;
            std::time::SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| anyhow!("{s} ago is before the epoch"))?
        }
    };
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

pub(super) async fn report(
    conn: &super::ConnArgs,
    since: Option<String>,
    until: Option<String>,
    format: super::report::ReportFormat,
) -> anyhow::Result<i32> {
    use super::report::{self as r, ReportFormat};
    let since_ms = since.as_deref().map(parse_time).transpose()?.unwrap_or(0);
    let until_ms = match until.as_deref() {
        Some(t) => parse_time(t)?,
        None => crate::clock::now_ms() + 1,
    };
    anyhow::ensure!(since_ms < until_ms, "--since must be before --until");
    let mut c = client(conn).await?;
    let history = c
        .get_history(v1::GetHistoryRequest {
            host_id: String::new(),
            limit: 100_000,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let hosts = c
        .list_hosts(v1::ListHostsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .hosts;
    let mut report = r::build(history.events, since_ms, until_ms, &hosts);
    report.audit_head = history.audit_head;
    emit(&match format {
        ReportFormat::Json => pretty(&r::json(&report))?,
        ReportFormat::Csv => r::csv(&report),
        ReportFormat::Html => r::html(&report),
    })?;
    Ok(exit::OK)
}

fn ack_json(a: &v1::Acknowledgement) -> Value {
    json!({
        "host": a.host_id, "resource": a.resource, "reason": a.reason, "by": a.by,
        "at": rfc3339(a.at_ms, true), "expires": rfc3339(a.expires_ms, true),
    })
}

pub(super) async fn diff(
    q: &QueryArgs,
    host: &str,
    path: &str,
    format: Format,
) -> anyhow::Result<i32> {
    let resp = client(&q.conn)
        .await?
        .get_diff(v1::GetDiffRequest {
            host_id: host.to_owned(),
            path: path.to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    match format {
        Format::Json => emit(&pretty(&json!({
            "host": host, "path": path, "identical": resp.identical, "diff": resp.diff,
        }))?)?,
        Format::Table if resp.identical => eprintln!("{path} on {host} is as declared"),
        Format::Table => emit(&resp.diff)?,
    }
    Ok(if resp.identical {
        exit::OK
    } else {
        exit::DRIFT
    })
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    match s.code() {
        // The controller's refusals say what is wrong in words meant for the operator.
        tonic::Code::NotFound
        | tonic::Code::InvalidArgument
        | tonic::Code::PermissionDenied
        | tonic::Code::FailedPrecondition
        | tonic::Code::AlreadyExists
        | tonic::Code::DeadlineExceeded => anyhow!("{}", s.message()),
        // A TLS controller drops a client without an acceptable certificate during the handshake.
        tonic::Code::Unavailable if !s.message().contains("transport") => {
            anyhow!("the controller is unavailable: {}", s.message())
        }
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Unavailable => anyhow!(
            "the connection to the controller failed ({}: {})\nhint: a TLS controller needs an operator certificate its CA signed and still valid (--cert/--key, from `plumb certs issue operator NAME`)",
            s.code(),
            s.message()
        ),
        _ => anyhow!("the controller answered {:?}: {}", s.code(), s.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event kind the protocol defines has a name in the CLI's output.
    #[test]
    fn every_event_kind_is_named() {
        for k in 1..=10 {
            assert!(v1::DriftEventKind::try_from(k).is_ok(), "kind {k} exists");
            assert_ne!(event_name(k), "unknown", "kind {k}");
        }
    }
}
