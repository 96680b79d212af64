//! The query commands (`plumb hosts`, `drift`, `history`, `ack`, `report`, `diff`): ask a
//! running controller, read its answer back into model types at once (`server::wire`), and
//! print it through `render.rs`.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use plumb_common::cli::exit;
use plumb_proto::v1::{self, query_service_client::QueryServiceClient};
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

use super::QueryArgs;
use super::output::{Format, emit, emit_json};
use super::render::{self, pretty};
use crate::model::{Event, HostView};
use crate::server::wire;

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

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn warn_manifest_errors(errors: &[String]) {
    if !errors.is_empty() {
        eprintln!(
            "warning: the latest manifest change was rejected; the last good set stays in force:"
        );
        for e in errors {
            eprintln!("  {}", e.replace('\n', "\n  "));
        }
    }
}

fn messages(errors: Vec<v1::ManifestError>) -> Vec<String> {
    errors.into_iter().map(|e| e.message).collect()
}

fn events(events: Vec<v1::DriftEvent>) -> anyhow::Result<Vec<Event>> {
    events
        .into_iter()
        .map(|e| wire::event_from_proto(e).map_err(anyhow::Error::from))
        .collect()
}

/// `--at TIME` as milliseconds since the epoch, 0 for now (what the API takes).
fn moment(at: Option<&str>) -> anyhow::Result<i64> {
    at.map_or(Ok(0), parse_time)
}

pub(super) async fn hosts(
    q: &QueryArgs,
    at: Option<String>,
    format: Format,
) -> anyhow::Result<i32> {
    let at_ms = moment(at.as_deref())?;
    let resp = client(&q.conn)
        .await?
        .list_hosts(v1::ListHostsRequest { at_ms })
        .await
        .map_err(status_error)?
        .into_inner();
    let errors = messages(resp.manifest_errors);
    warn(&resp.warnings);
    warn_manifest_errors(&errors);
    let hosts: Vec<(HostView, usize)> = resp.hosts.into_iter().map(wire::host_from_proto).collect();
    match format {
        Format::Json => emit_json(&render::hosts_json(&hosts, &errors, &resp.warnings))?,
        Format::Table if hosts.is_empty() && at.is_some() => {
            eprintln!("no host had connected by then")
        }
        Format::Table if hosts.is_empty() => eprintln!(
            "no hosts yet: start an agent with `plumb-agent run --controller {}`",
            q.conn.controller
        ),
        Format::Table => emit(&render::hosts_table(&hosts))?,
    }
    Ok(exit::OK)
}

/// Which drift `plumb drift` asks for, and what fails it.
pub(super) struct Wanted {
    pub(super) hosts: Vec<String>,
    pub(super) unauthorised: bool,
    pub(super) fail_on: super::FailOn,
    /// `--at`: as it stood then.
    pub(super) at: Option<String>,
}

pub(super) async fn drift(q: &QueryArgs, wanted: Wanted, format: Format) -> anyhow::Result<i32> {
    let Wanted {
        hosts,
        unauthorised,
        fail_on,
        at,
    } = wanted;
    let at_ms = moment(at.as_deref())?;
    let resp = client(&q.conn)
        .await?
        .get_drift(v1::GetDriftRequest { hosts, at_ms })
        .await
        .map_err(status_error)?
        .into_inner();
    let errors = messages(resp.manifest_errors);
    warn(&resp.warnings);
    warn_manifest_errors(&errors);
    let mut hosts: Vec<HostView> = resp
        .hosts
        .into_iter()
        .map(wire::host_drift_from_proto)
        .collect();
    if unauthorised {
        for h in &mut hosts {
            h.drift.retain(|d| d.evidence.unauthorised());
        }
    }
    warn(&render::degraded_warnings(&hosts));
    // Acknowledged drift is shown but does not fail the command; nor, if asked, authorised.
    let drifted = render::failing_drift(&hosts, fail_on == super::FailOn::Unauthorised);
    match format {
        Format::Json => emit_json(&render::drift_json(&hosts, &errors, &resp.warnings))?,
        Format::Table if hosts.is_empty() && at.is_some() => {
            eprintln!("no host had connected by then")
        }
        Format::Table if hosts.is_empty() => eprintln!("no hosts yet"),
        Format::Table => emit(&render::drift_table(&hosts))?,
    }
    Ok(if drifted { exit::DRIFT } else { exit::OK })
}

/// Prints the current drift as `opened` events, then every event as it happens, until the
/// controller goes away or the user interrupts.
pub(super) async fn follow(
    q: &QueryArgs,
    hosts: Vec<String>,
    unauthorised: bool,
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
        let e = wire::event_from_proto(e)?;
        if unauthorised && !crate::json::unauthorised_drift_event(&e) {
            continue;
        }
        let line = match format {
            Format::Json => serde_json::to_string(&crate::json::event(&e))? + "\n",
            Format::Table => render::event_line(&e),
        };
        if !super::output::write_out(&line)? {
            return Ok(exit::OK);
        }
    }
}

/// Which entries `plumb history` asks for.
pub(super) struct Page {
    pub(super) host: Option<String>,
    pub(super) limit: u32,
    pub(super) before: Option<i64>,
    pub(super) kind: Option<String>,
    /// `--between FROM TO`: none, or both.
    pub(super) between: Vec<String>,
}

pub(super) async fn history(q: &QueryArgs, page: Page, format: Format) -> anyhow::Result<i32> {
    let Page {
        host,
        limit,
        before,
        kind,
        between,
    } = page;
    let (since_ms, until_ms) = match between.as_slice() {
        [from, to] => (parse_time(from)?, parse_time(to)?),
        _ => (0, 0),
    };
    anyhow::ensure!(
        between.is_empty() || since_ms < until_ms,
        "--between FROM TO: {} is not before {}",
        between[0],
        between[1]
    );
    let resp = client(&q.conn)
        .await?
        .get_history(v1::GetHistoryRequest {
            host_id: host.unwrap_or_default(),
            limit,
            before: before.unwrap_or(0),
            kind: kind.unwrap_or_default(),
            since_ms,
            until_ms,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let events = events(resp.events)?;
    match format {
        Format::Json => emit_json(&render::history_json(&events))?,
        Format::Table if events.is_empty() => eprintln!("no events"),
        Format::Table => {
            emit(&render::history_table(&events))?;
            if let Some(last) = events.last().filter(|_| events.len() == limit as usize) {
                let period = match between.as_slice() {
                    [from, to] => format!(" --between {from} {to}"),
                    _ => String::new(),
                };
                eprintln!("older entries: plumb history{period} --before {}", last.id);
            }
        }
    }
    Ok(exit::OK)
}

pub(super) async fn ack(args: super::AckArgs) -> anyhow::Result<i32> {
    use super::AckAction;
    match args.action {
        Some(AckAction::List { query }) => {
            let acks: Vec<_> = client(&query.conn)
                .await?
                .list_acks(v1::ListAcksRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .acks
                .into_iter()
                .map(wire::ack_from_proto)
                .collect();
            match query.output {
                Format::Json => emit_json(&render::acks_json(&acks))?,
                Format::Table if acks.is_empty() => eprintln!("no acknowledgements"),
                Format::Table => emit(&render::acks_table(&acks))?,
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
            let ack = wire::ack_from_proto(ack);
            match args.query.output {
                Format::Json => emit_json(&crate::json::ack(&ack))?,
                Format::Table => eprintln!("{}", render::acknowledged(&ack)),
            }
            Ok(exit::OK)
        }
    }
}

/// Milliseconds since the epoch for RFC 3339 or a duration ago.
fn parse_time(s: &str) -> anyhow::Result<i64> {
    crate::clock::parse_time(s).map_err(|e| anyhow!(e))
}

/// How many entries `plumb report` reads at a time (the controller's most per answer).
const REPORT_PAGE: u32 = 100_000;

pub(super) async fn report(
    conn: &super::ConnArgs,
    since: Option<String>,
    until: Option<String>,
    format: crate::report::ReportFormat,
) -> anyhow::Result<i32> {
    use crate::report::{self as r, ReportFormat};
    let since_ms = since.as_deref().map(parse_time).transpose()?.unwrap_or(0);
    let until_ms = match until.as_deref() {
        Some(t) => parse_time(t)?,
        None => crate::clock::now_ms() + 1,
    };
    anyhow::ensure!(since_ms < until_ms, "--since must be before --until");
    let mut c = client(conn).await?;
    // Drift open when the period began, as it stood then (nothing stood before the epoch).
    let at_start: Vec<HostView> = if since_ms > 0 {
        c.get_drift(v1::GetDriftRequest {
            hosts: Vec::new(),
            at_ms: since_ms,
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .hosts
        .into_iter()
        .map(wire::host_drift_from_proto)
        .collect()
    } else {
        Vec::new()
    };
    // Every entry of the period, newest first, page after page.
    let (mut period, mut head, mut before) = (Vec::new(), None, 0);
    loop {
        let page = c
            .get_history(v1::GetHistoryRequest {
                limit: REPORT_PAGE,
                before,
                since_ms,
                until_ms,
                ..Default::default()
            })
            .await
            .map_err(status_error)?
            .into_inner();
        head = head.or(page.audit_head);
        let full = page.events.len() == REPORT_PAGE as usize;
        before = page.events.last().map_or(0, |e| e.id);
        period.extend(events(page.events)?);
        if !full {
            break;
        }
    }
    let hosts: Vec<HostView> = c
        .list_hosts(v1::ListHostsRequest { at_ms: 0 })
        .await
        .map_err(status_error)?
        .into_inner()
        .hosts
        .into_iter()
        .map(|h| wire::host_from_proto(h).0)
        .collect();
    let mut report = r::build(&at_start, period, since_ms, until_ms, &hosts);
    report.audit_head = head.map(wire::head_from_proto);
    emit(&match format {
        ReportFormat::Json => pretty(&r::json(&report)),
        ReportFormat::Csv => r::csv(&report),
        ReportFormat::Html => r::html(&report),
    })?;
    Ok(exit::OK)
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
        Format::Json => emit_json(&json!({
            "host": host, "path": path, "identical": resp.identical, "diff": resp.diff,
        }))?,
        Format::Table if resp.identical => eprintln!("{path} on {host} is as declared"),
        Format::Table => emit(&resp.diff)?,
    }
    Ok(if resp.identical {
        exit::OK
    } else {
        exit::DRIFT
    })
}

pub(super) fn status_error(s: tonic::Status) -> anyhow::Error {
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
            "the connection to the controller failed ({}: {})\nhint: a TLS controller needs an operator certificate its CA signed and still valid (--cert/--key, from `plumb certs issue operator NAME --role ROLE`)",
            s.code(),
            s.message()
        ),
        _ => anyhow!("the controller answered {:?}: {}", s.code(), s.message()),
    }
}
