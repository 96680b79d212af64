//! Pure: `plumb report` and the console's report page: drift incidents over a period, from the event log. Building the report is
//! pure (events in, incidents out); rendering gives JSON, CSV, or one self-contained HTML page.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::evidence::{Authorisation, Who};
use crate::html::esc;
use crate::model::{Event, EventKind, HostStatus, HostView};
use crate::store::Head;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Csv,
    /// One self-contained page to open in a browser.
    Html,
}

/// One drift from opened to resolved (or still open).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incident {
    pub(crate) host: String,
    pub(crate) resource: String,
    pub(crate) attribute: String,
    pub(crate) expected: String,
    pub(crate) actual: String,
    pub(crate) declared_at: String,
    pub(crate) opened_ms: i64,
    pub(crate) resolved_ms: Option<i64>,
    /// "by WHO: WHY" of an acknowledgement given while it was open.
    pub(crate) acknowledged: Option<String>,
    /// Who made it (its latest change), where known.
    pub(crate) who: Option<Who>,
    /// Whether a change window authorised it (its latest change); `None` before
    /// authorisation existed.
    pub(crate) authorisation: Option<Authorisation>,
    /// How it resolved, and by whom where known.
    pub(crate) resolution: Option<String>,
}

impl Incident {
    /// Unauthorised: no change window covered it (drift from before windows existed counts).
    pub(crate) fn unauthorised(&self) -> bool {
        !matches!(self.authorisation, Some(Authorisation::Authorised { .. }))
    }

    /// One word for where it came from (`unknown` where nothing says).
    pub(crate) fn origin(&self) -> &str {
        self.who.as_ref().map_or("unknown", Who::origin)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub(crate) since_ms: i64,
    pub(crate) until_ms: i64,
    pub(crate) incidents: Vec<Incident>,
    pub(crate) hosts: usize,
    pub(crate) hosts_in_sync: usize,
    /// The event log's head the report was read at: keep it, and `plumb audit verify --head`
    /// proves later that the log still holds what the report was made from.
    pub(crate) audit_head: Option<Head>,
}

impl Report {
    /// Mean time to resolve, over the incidents resolved in the period.
    pub(crate) fn mttr_seconds(&self) -> Option<f64> {
        let done: Vec<i64> = self
            .incidents
            .iter()
            .filter_map(|i| Some(i.resolved_ms? - i.opened_ms))
            .collect();
        (!done.is_empty()).then(|| done.iter().sum::<i64>() as f64 / done.len() as f64 / 1000.0)
    }
}

/// Incidents that overlap `[since, until)`: those open at its start (`at_start`, the hosts
/// as they stood then, `crate::moment`), and those the period's entries (`events`, in any
/// order) open; each followed through the entries to its end or the period's.
pub(crate) fn build(
    at_start: &[HostView],
    mut events: Vec<Event>,
    since_ms: i64,
    until_ms: i64,
    hosts: &[HostView],
) -> Report {
    events.sort_by_key(|e| e.id);
    let mut open: BTreeMap<(String, String, String), Incident> = BTreeMap::new();
    for h in at_start {
        for d in &h.drift {
            let ack = h.acks.iter().find(|a| a.resource == d.resource);
            open.insert(
                (
                    h.info.host_id.clone(),
                    d.resource.clone(),
                    d.attribute.clone(),
                ),
                Incident {
                    host: h.info.host_id.clone(),
                    resource: d.resource.clone(),
                    attribute: d.attribute.clone(),
                    expected: d.expected.clone(),
                    actual: d.actual.clone(),
                    declared_at: d.declared_at.clone(),
                    opened_ms: d.since_ms,
                    resolved_ms: None,
                    acknowledged: ack.map(|a| format!("by {}: {}", a.by, a.reason)),
                    who: d.evidence.who.clone(),
                    authorisation: d.evidence.authorisation.clone(),
                    resolution: None,
                },
            );
        }
    }
    let mut done: Vec<Incident> = Vec::new();
    for e in &events {
        let Some(item) = &e.item else { continue };
        let key = (
            e.host_id.clone(),
            item.resource.clone(),
            item.attribute.clone(),
        );
        match e.kind {
            EventKind::Opened => {
                open.insert(
                    key,
                    Incident {
                        host: e.host_id.clone(),
                        resource: item.resource.clone(),
                        attribute: item.attribute.clone(),
                        expected: item.expected.clone(),
                        actual: item.actual.clone(),
                        declared_at: item.declared_at.clone(),
                        opened_ms: e.at_ms,
                        resolved_ms: None,
                        acknowledged: None,
                        who: item.evidence.who.clone(),
                        authorisation: item.evidence.authorisation.clone(),
                        resolution: None,
                    },
                );
            }
            EventKind::Changed => {
                if let Some(i) = open.get_mut(&key) {
                    i.actual = item.actual.clone();
                    if item.evidence.who.is_some() {
                        i.who = item.evidence.who.clone();
                    }
                    if item.evidence.authorisation.is_some() {
                        i.authorisation = item.evidence.authorisation.clone();
                    }
                }
            }
            EventKind::Resolved => {
                if let Some(mut i) = open.remove(&key) {
                    i.resolved_ms = Some(e.at_ms);
                    let ev = &item.evidence;
                    i.resolution = ev.resolution.as_ref().map(|r| match &ev.who {
                        Some(who) => format!("{r}, by {who}"),
                        None => r.to_string(),
                    });
                    done.push(i);
                }
            }
            EventKind::Acknowledged => {
                for i in open
                    .values_mut()
                    .filter(|i| i.host == e.host_id && i.resource == item.resource)
                {
                    i.acknowledged = Some(format!("by {}: {}", item.expected, item.actual));
                }
            }
            _ => {}
        }
    }
    done.extend(open.into_values());
    let mut incidents: Vec<Incident> = done
        .into_iter()
        .filter(|i| i.opened_ms < until_ms && i.resolved_ms.is_none_or(|r| r > since_ms))
        .collect();
    incidents.sort_by(|a, b| {
        (&a.host, a.opened_ms, &a.resource).cmp(&(&b.host, b.opened_ms, &b.resource))
    });
    Report {
        since_ms,
        until_ms,
        incidents,
        hosts: hosts.len(),
        hosts_in_sync: hosts
            .iter()
            .filter(|h| h.status == HostStatus::InSync)
            .count(),
        audit_head: None,
    }
}

/// The head as `crate::json` has it, with the command that checks the log against it.
fn head_json(h: &Head) -> Value {
    let mut v = crate::json::head(h);
    v["verify"] = json!(format!(
        "plumb audit verify --data DIR --public-key {} --head {}:{}",
        h.public_key, h.last_id, h.hash
    ));
    v
}

fn duration(i: &Incident) -> Option<f64> {
    Some((i.resolved_ms? - i.opened_ms) as f64 / 1000.0)
}

/// Unauthorised incidents counted per host and per origin: the numbers an operations lead
/// is asked for.
pub(crate) fn unauthorised_counts(r: &Report) -> (BTreeMap<&str, usize>, BTreeMap<&str, usize>) {
    let (mut by_host, mut by_origin) = (BTreeMap::new(), BTreeMap::new());
    for i in r.incidents.iter().filter(|i| i.unauthorised()) {
        *by_host.entry(i.host.as_str()).or_default() += 1;
        *by_origin.entry(i.origin()).or_default() += 1;
    }
    (by_host, by_origin)
}

pub(crate) fn json(r: &Report) -> Value {
    let mut by_host: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for i in &r.incidents {
        by_host.entry(&i.host).or_default().push(json!({
            "resource": i.resource, "attribute": i.attribute, "expected": i.expected, "actual": i.actual,
            "opened": rfc3339(i.opened_ms, true), "resolved": i.resolved_ms.and_then(|m| rfc3339(m, true)),
            "duration_seconds": duration(i), "acknowledged": i.acknowledged, "declared_at": i.declared_at,
            "origin": i.origin(), "who": i.who.as_ref().map(ToString::to_string),
            "authorised": i.authorisation.as_ref().map(|a| matches!(a, Authorisation::Authorised { .. })),
            "change": match &i.authorisation { Some(Authorisation::Authorised { change }) => Some(change), _ => None },
            "resolution": i.resolution,
        }));
    }
    let (unauthorised_by_host, unauthorised_by_origin) = unauthorised_counts(r);
    json!({
        "since": rfc3339(r.since_ms, true),
        "until": rfc3339(r.until_ms, true),
        "summary": {
            "hosts": r.hosts,
            "hosts_in_sync": r.hosts_in_sync,
            "incidents": r.incidents.len(),
            "resolved": r.incidents.iter().filter(|i| i.resolved_ms.is_some()).count(),
            "mean_time_to_resolve_seconds": r.mttr_seconds(),
            "unauthorised": r.incidents.iter().filter(|i| i.unauthorised()).count(),
            "unauthorised_by_host": unauthorised_by_host,
            "unauthorised_by_origin": unauthorised_by_origin,
        },
        "hosts": by_host.into_iter().map(|(h, i)| json!({"host": h, "incidents": i})).collect::<Vec<_>>(),
        "audit_head": r.audit_head.as_ref().map(head_json),
    })
}

const COLUMNS: [&str; 15] = [
    "host",
    "resource",
    "attribute",
    "expected",
    "actual",
    "opened",
    "resolved",
    "duration_seconds",
    "acknowledged",
    "declared_at",
    "origin",
    "who",
    "authorised",
    "change",
    "resolution",
];

fn row(i: &Incident) -> [String; 15] {
    [
        i.host.clone(),
        i.resource.clone(),
        i.attribute.clone(),
        i.expected.clone(),
        i.actual.clone(),
        rfc3339(i.opened_ms, false).unwrap_or_default(),
        i.resolved_ms
            .and_then(|m| rfc3339(m, false))
            .unwrap_or_default(),
        duration(i).map(|d| format!("{d:.3}")).unwrap_or_default(),
        i.acknowledged.clone().unwrap_or_default(),
        i.declared_at.clone(),
        i.origin().to_owned(),
        i.who.as_ref().map(ToString::to_string).unwrap_or_default(),
        match &i.authorisation {
            Some(Authorisation::Authorised { .. }) => "yes".into(),
            Some(Authorisation::Unauthorised) => "no".into(),
            None => String::new(),
        },
        match &i.authorisation {
            Some(Authorisation::Authorised { change }) => change.clone(),
            _ => String::new(),
        },
        i.resolution.clone().unwrap_or_default(),
    ]
}

/// RFC 4180: fields with commas, quotes or line breaks are quoted, quotes doubled.
pub(crate) fn csv(r: &Report) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_owned()
        }
    };
    let mut out = COLUMNS.join(",") + "\r\n";
    for i in &r.incidents {
        out.push_str(
            &row(i)
                .iter()
                .map(|f| field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// One self-contained page: inline style, no scripts, nothing fetched.
pub(crate) fn html(r: &Report) -> String {
    let period = format!(
        "{} to {}",
        rfc3339(r.since_ms, false).unwrap_or_else(|| "the beginning".into()),
        rfc3339(r.until_ms, false).unwrap_or_default()
    );
    let mttr = r
        .mttr_seconds()
        .map_or("n/a".into(), |s| format!("{s:.1} s"));
    let (by_host, by_origin) = unauthorised_counts(r);
    let counts = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, n)| format!("<tr><td>{}</td><td>{n}</td></tr>", esc(k)))
            .collect::<String>()
    };
    let unauthorised = format!(
        "<h2>Unauthorised changes: {}</h2>\n<table class=\"summary\"><tr><th>Host</th><th>Count</th></tr>{}</table>\n\
         <table class=\"summary\"><tr><th>Origin</th><th>Count</th></tr>{}</table>\n",
        r.incidents.iter().filter(|i| i.unauthorised()).count(),
        counts(&by_host),
        counts(&by_origin)
    );
    let mut rows = String::new();
    for i in &r.incidents {
        rows.push_str("<tr>");
        for f in row(i) {
            rows.push_str(&format!("<td>{}</td>", esc(&f)));
        }
        rows.push_str("</tr>\n");
    }
    let head: String = COLUMNS
        .iter()
        .map(|c| format!("<th>{}</th>", esc(&c.replace('_', " "))))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>plumb drift report</title>\n\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;font-size:0.9em}}\
         th,td{{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}\
         .summary td{{border:none;padding:0.1em 1em 0.1em 0}}</style></head>\n<body>\n<h1>Drift report</h1>\n<p>{}</p>\n\
         <table class=\"summary\"><tr><td>Hosts</td><td>{}</td></tr><tr><td>Hosts in sync now</td><td>{}</td></tr>\
         <tr><td>Incidents</td><td>{}</td></tr><tr><td>Mean time to resolve</td><td>{}</td></tr></table>\n\
         {unauthorised}<h2>Incidents</h2>\n<table>\n<tr>{head}</tr>\n{rows}</table>\n{}</body></html>\n",
        esc(&period),
        r.hosts,
        r.hosts_in_sync,
        r.incidents.len(),
        esc(&mttr),
        r.audit_head.as_ref().map_or(String::new(), |h| format!(
            "<p>Event log head when this report was made: entry {}, hash <code>{}</code>, signed by <code>{}</code>.</p>\n",
            h.last_id,
            esc(&h.hash),
            esc(&h.public_key)
        )),
    )
}

#[cfg(test)]
mod tests;
