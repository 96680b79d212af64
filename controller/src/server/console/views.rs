//! The console's pages: each allowed by role, reads of the log and of content recorded first,
//! and the live events stream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{self, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{Refused, fleet_problem, person, problem, visit};
use super::{Conn, Console, LOG_ROWS, PAGE_ROWS, TIMELINE_ROWS, html, pages};
use crate::fleet::Read;
use crate::fleet::console::DriftFilter;
use crate::model::EventKind;
use crate::role::{Action, Person};
use crate::server::scope::{self, Seen};
use crate::store::LogQuery;

#[derive(Deserialize, Default)]
pub(super) struct Part {
    #[serde(default)]
    part: String,
}

pub(super) async fn overview(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(p): Query<Part>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let s = c
        .fleet
        .summary(v.person.scope.clone())
        .await
        .map_err(fleet_problem)?;
    let body = if p.part == "live" {
        pages::overview_live(&v.viewer(), &s)
    } else {
        pages::layout(
            &v.viewer(),
            "overview",
            "Overview",
            &pages::overview(&v.viewer(), &s),
        )
    };
    Ok(v.page(body))
}

#[derive(Deserialize, Default)]
pub(super) struct DriftQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    manifest: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    attribute: String,
    #[serde(default)]
    acknowledged: String,
    #[serde(default)]
    unauthorised: String,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    part: String,
}

pub(super) async fn drift(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<DriftQuery>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let filter = DriftFilter {
        host: q.host,
        label: q.label,
        manifest: q.manifest,
        resource: q.resource,
        attribute: q.attribute,
        acknowledged: match q.acknowledged.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        unauthorised_only: !q.unauthorised.is_empty(),
        offset: q.offset,
        limit: PAGE_ROWS,
        scope: v.person.scope.clone(),
    };
    let page = c
        .fleet
        .drift_page(filter.clone())
        .await
        .map_err(fleet_problem)?;
    let body = if q.part == "live" {
        pages::drift_live(&v.viewer(), &filter, &page)
    } else {
        pages::layout(
            &v.viewer(),
            "drift",
            "Drift",
            &pages::drift(&v.viewer(), &filter, &page),
        )
    };
    Ok(v.page(body))
}

pub(super) async fn host(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(p): Query<Part>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let detail = c
        .fleet
        .host_detail(id.clone(), v.person.scope.clone())
        .await
        .map_err(fleet_problem)?;
    if p.part == "live" {
        let body = pages::host_live(&v.viewer(), &detail);
        return Ok(v.page(body));
    }
    let timeline = if v.person.role.may(Action::ReadLog) {
        let q = LogQuery {
            host: Some(id.clone()),
            limit: TIMELINE_ROWS,
            ..LogQuery::default()
        };
        let what = format!("the timeline of {id} in the console");
        Some(c.read_log(&v.person, q, what).await?.0)
    } else {
        None
    };
    let body = pages::layout(
        &v.viewer(),
        "host",
        &id,
        &pages::host(&v.viewer(), &detail, timeline.as_deref()),
    );
    Ok(v.page(body))
}

impl Console {
    /// Refuses a host outside `person`'s scope as one that does not exist.
    pub(super) async fn in_scope(&self, person: &Person, host: &str) -> Result<(), Refused> {
        let seen = Seen::of(&self.fleet, &person.scope)
            .await
            .map_err(fleet_problem)?;
        if seen.host(host) {
            Ok(())
        } else {
            Err(fleet_problem(crate::fleet::FleetError::UnknownHost(
                host.to_owned(),
            )))
        }
    }

    /// A page of the log, of the entries `person` sees, and the id the next page goes on
    /// before; recorded as read by them (refused when it cannot be).
    async fn read_log(
        &self,
        person: &Person,
        q: LogQuery,
        what: String,
    ) -> Result<(Vec<crate::model::Event>, Option<i64>), Refused> {
        let seen = Seen::of(&self.fleet, &person.scope)
            .await
            .map_err(fleet_problem)?;
        let (events, _, next) = scope::log_page(&self.fleet, &seen, q)
            .await
            .map_err(fleet_problem)?;
        self.fleet
            .record_read(Read {
                kind: EventKind::LogRead,
                resource: "audit-log".into(),
                by: person.to_string(),
                what,
            })
            .await
            .map_err(fleet_problem)?;
        Ok((events, next))
    }
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    path: String,
}

pub(super) async fn diff(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadContent)?;
    c.in_scope(&v.person, &id).await?;
    let asked = tokio::time::timeout(
        crate::server::query_api::DIFF_TIMEOUT,
        c.fleet.diff(id.clone(), q.path.clone()),
    )
    .await;
    let content = match asked {
        Err(_) => {
            return Err(problem(
                StatusCode::GATEWAY_TIMEOUT,
                "No content",
                "the agent did not send the content in time",
            ));
        }
        Ok(Err(e)) => return Err(fleet_problem(e)),
        Ok(Ok(content)) => content,
    };
    let identical = content.desired.as_slice() == content.actual.as_slice();
    let recorded = c
        .fleet
        .record_read(Read {
            kind: EventKind::ContentRead,
            resource: format!("{id}:{}", q.path),
            by: v.person.to_string(),
            what: "a diff in the console".into(),
        })
        .await;
    recorded.map_err(fleet_problem)?;
    let text = if identical {
        String::new()
    } else {
        crate::server::query_api::unified_diff(&q.path, &content.desired, &content.actual)
    };
    let body = pages::layout(
        &v.viewer(),
        "host",
        &format!("{} on {id}", q.path),
        &pages::diff(&id, &q.path, &text, identical),
    );
    Ok(v.page(body))
}

#[derive(Deserialize, Default)]
pub(super) struct HistoryQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    kind: String,
    before: Option<i64>,
}

pub(super) async fn history(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadLog)?;
    let kind = match q.kind.as_str() {
        "" => None,
        k => match EventKind::parse(k) {
            Some(k) => Some(k),
            None => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "Unknown event",
                    &format!("no event is called {k:?}"),
                ));
            }
        },
    };
    let query = LogQuery {
        host: (!q.host.is_empty()).then(|| q.host.clone()),
        kind,
        before: q.before,
        limit: LOG_ROWS,
        ..LogQuery::default()
    };
    let what = format!(
        "the history page in the console{}{}{}",
        if q.host.is_empty() {
            String::new()
        } else {
            format!(", host {}", q.host)
        },
        if q.kind.is_empty() {
            String::new()
        } else {
            format!(", {} entries", q.kind)
        },
        q.before
            .map(|b| format!(", before entry {b}"))
            .unwrap_or_else(|| ", with live entries".into())
    );
    let (events, older) = c.read_log(&v.person, query, what).await?;
    let body = {
        let verified = c.verified.lock().unwrap_or_else(|p| p.into_inner());
        pages::layout(
            &v.viewer(),
            "history",
            "History",
            &pages::history(
                &v.viewer(),
                &q.host,
                &q.kind,
                &events,
                older,
                q.before.is_none(),
                &verified,
            ),
        )
    };
    Ok(v.page(body))
}

#[derive(Deserialize, Default)]
pub(super) struct Period {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

impl Period {
    /// The period in ms: `since` 7 days ago and `until` now unless given.
    fn resolve(&self) -> Result<(i64, i64), String> {
        let since = match self.since.trim() {
            "" => crate::clock::now_ms() - 7 * 86_400_000,
            s => crate::clock::parse_time(s)?,
        };
        let until = match self.until.trim() {
            "" => crate::clock::now_ms() + 1,
            s => crate::clock::parse_time(s)?,
        };
        if since >= until {
            return Err("since must be before until".into());
        }
        Ok((since, until))
    }
}

/// The report for a period, its log read recorded.
async fn build_report(
    c: &Console,
    person: &Person,
    p: &Period,
) -> Result<crate::report::Report, Refused> {
    let (since, until) = p
        .resolve()
        .map_err(|e| problem(StatusCode::BAD_REQUEST, "Bad period", &e))?;
    let seen = Seen::of(&c.fleet, &person.scope)
        .await
        .map_err(fleet_problem)?;
    // Drift open when the period began, as it stood then; then every entry of the period.
    let (mut at_start, _) = c.fleet.moment(since).await.map_err(fleet_problem)?;
    at_start.hosts.retain(|h| seen.host(&h.info.host_id));
    let (mut events, mut head, mut before) = (Vec::new(), None, None);
    loop {
        let q = LogQuery {
            since_ms: Some(since),
            until_ms: Some(until),
            before,
            limit: 100_000,
            ..LogQuery::default()
        };
        let (page, at, next) = scope::log_page(&c.fleet, &seen, q)
            .await
            .map_err(fleet_problem)?;
        events.extend(page);
        head = head.or(Some(at));
        before = next;
        if before.is_none() {
            break;
        }
    }
    let mut hosts = c.fleet.overview().await.map_err(fleet_problem)?.hosts;
    hosts.retain(|h| seen.host(&h.info.host_id));
    c.fleet
        .record_read(Read {
            kind: EventKind::LogRead,
            resource: "audit-log".into(),
            by: person.to_string(),
            what: format!(
                "a report from {} to {} in the console",
                html::when(since),
                html::when(until)
            ),
        })
        .await
        .map_err(fleet_problem)?;
    let mut r = crate::report::build(&at_start.hosts, events, since, until, &hosts);
    r.audit_head = head;
    Ok(r)
}

pub(super) async fn report_page(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadLog)?;
    let r = build_report(&c, &v.person, &p).await?;
    let body = pages::layout(
        &v.viewer(),
        "report",
        "Report",
        &pages::report(&r, &p.since, &p.until),
    );
    Ok(v.page(body))
}

pub(super) async fn report_download(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(format): UrlPath<String>,
    Query(p): Query<Period>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    v.allow(Action::ReadLog)?;
    let (ty, render): (&str, fn(&crate::report::Report) -> String) = match format.as_str() {
        "json" => ("application/json", |r| {
            serde_json::to_string_pretty(&crate::report::json(r)).unwrap_or_default() + "\n"
        }),
        "csv" => ("text/csv; charset=utf-8", crate::report::csv),
        "html" => ("text/html; charset=utf-8", crate::report::html),
        other => {
            return Err(problem(
                StatusCode::NOT_FOUND,
                "No such format",
                &format!("reports come as json, csv or html, not {other:?}"),
            ));
        }
    };
    let r = build_report(&c, &v.person, &p).await?;
    Ok((
        [
            (header::CONTENT_TYPE, ty.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"plumb-report.{format}\""),
            ),
        ],
        render(&r),
    )
        .into_response())
}

/// A manifest file of the controller's directory, with numbered lines to link to.
pub(super) async fn manifest(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    UrlPath(file): UrlPath<String>,
) -> Result<Response, Refused> {
    let v = visit(&c, &conn, &headers)?;
    let dir = c.manifests.clone();
    let name = file.clone();
    let read = tokio::task::spawn_blocking(move || read_manifest(&dir, &name)).await;
    match read {
        Ok(Ok(text)) => {
            let body = pages::layout(
                &v.viewer(),
                "manifest",
                &file,
                &pages::manifest(&file, &text),
            );
            Ok(v.page(body))
        }
        Ok(Err(e)) => Err(problem(StatusCode::NOT_FOUND, "No such manifest", &e)),
        Err(e) => Err(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not read",
            &e.to_string(),
        )),
    }
}

/// Reads `name` beneath `dir` only: a YAML file, no `..`, no symlink out, at most 4 MiB.
fn read_manifest(dir: &Path, name: &str) -> Result<String, String> {
    let bad = || format!("{name:?} is not a manifest of this controller");
    let parts: Vec<&str> = name.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
        || !(name.ends_with(".yaml") || name.ends_with(".yml"))
    {
        return Err(bad());
    }
    let base = dir.canonicalize().map_err(|_| bad())?;
    let path = base.join(name).canonicalize().map_err(|_| bad())?;
    let meta = std::fs::metadata(&path).map_err(|_| bad())?;
    if !path.starts_with(&base) || !meta.is_file() || meta.len() > 4 << 20 {
        return Err(bad());
    }
    std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))
}

/// Events as they happen: the full entry to those who may read the log, else its kind and
/// host; `reload` when this follower fell behind.
pub(super) async fn events(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let person = person(&c, &conn, &headers)?;
    let full = person.role.may(Action::ReadLog);
    let mut seen = Seen::of(&c.fleet, &person.scope)
        .await
        .map_err(fleet_problem)?;
    let (_, mut rx) = c.fleet.follow(Vec::new()).await.map_err(fleet_problem)?;
    let (tx, out) = tokio::sync::mpsc::channel::<Result<sse::Event, std::convert::Infallible>>(16);
    let fleet = c.fleet.clone();
    tokio::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) if !seen.follows(&fleet, &e).await => continue,
                Ok(e) => {
                    let data = if full {
                        crate::json::event(&e)
                    } else {
                        serde_json::json!({"event": e.kind.as_str(), "host": e.host_id})
                    };
                    sse::Event::default().data(data.to_string())
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    sse::Event::default().event("reload").data("behind")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    Ok(Sse::new(stream)
        .keep_alive(sse::KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
