//! Pure: the event log's pages: history (with the chain's verification) and the report.

use std::fmt::Write as _;

use super::super::chart;
use super::super::html::{esc, query, when};
use super::{Viewer, host_link, value};
use crate::model::{Event, EventKind};

/// Events as a table (newest first); `id` is the log table the script adds live entries to.
pub(super) fn event_table(events: &[Event], host_column: bool, live_host: Option<&str>) -> String {
    let mut out = format!(
        "<table class=\"log\" id=\"log\"{}{}><thead><tr><th>entry</th><th>at</th>{}<th>event</th><th>resource</th><th>attribute</th><th>expected</th><th>actual</th><th>who</th><th>authorised</th></tr></thead><tbody>",
        live_host
            .map(|h| format!(" data-host=\"{}\"", esc(h)))
            .unwrap_or_default(),
        if host_column {
            " data-host-column=\"1\""
        } else {
            ""
        },
        if host_column { "<th>host</th>" } else { "" },
    );
    for e in events {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td>",
            e.kind,
            e.id,
            when(e.at_ms)
        );
        if host_column {
            let _ = write!(
                out,
                "<td>{}</td>",
                if e.host_id.is_empty() {
                    "<span class=\"quiet\">controller</span>".to_owned()
                } else {
                    host_link(&e.host_id)
                }
            );
        }
        let _ = write!(out, "<td>{}</td>", e.kind);
        match &e.item {
            Some(d) => {
                let who = match e.kind {
                    EventKind::Resolved => d
                        .evidence
                        .resolution
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| d.evidence.who_line()),
                    _ => d.evidence.who_line(),
                };
                let _ = write!(
                    out,
                    "<td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                    esc(&d.resource),
                    esc(&d.attribute),
                    value(&d.expected),
                    value(&d.actual),
                    esc(&who),
                    esc(&d.evidence.authorisation_cell())
                );
            }
            None => out.push_str("<td></td><td></td><td></td><td></td><td></td><td></td>"),
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// What the history page shows of the chain's verification.
pub(crate) enum Verified {
    Never,
    Running,
    Done {
        at_ms: i64,
        intact: bool,
        entries: usize,
        head_id: i64,
        signature: String,
        problems: Vec<String>,
    },
}

/// The history page: filter, the chain's verification, a page of the log.
pub(crate) fn history(
    v: &Viewer<'_>,
    host: &str,
    kind: &str,
    events: &[Event],
    older: Option<i64>,
    live: bool,
    verified: &Verified,
) -> String {
    let kinds = ALL_KINDS
        .iter()
        .map(|k| {
            let on = if *k == kind { " selected" } else { "" };
            format!("<option{on}>{k}</option>")
        })
        .collect::<String>();
    let mut out = format!(
        "<h1>History</h1><form class=\"filter\" method=\"get\" action=\"/history\">\
         <label>host <input name=\"host\" value=\"{}\" placeholder=\"exact host id\"></label>\
         <label>event <select name=\"kind\"><option value=\"\">any</option>{kinds}</select></label>\
         <button>filter</button></form>",
        esc(host)
    );
    out.push_str("<section class=\"verify\"><h2>The chain</h2>");
    match verified {
        Verified::Never => out.push_str("<p>Not verified since the controller started.</p>"),
        Verified::Running => out.push_str("<p>Verifying…</p>"),
        Verified::Done {
            at_ms,
            intact,
            entries,
            head_id,
            signature,
            problems,
        } => {
            let _ = write!(
                out,
                "<p id=\"chain-status\" class=\"{}\">{} at {}: {entries} entries through entry {head_id}, head signature {}.</p>",
                if *intact { "ok" } else { "problem" },
                if *intact { "Intact" } else { "NOT INTACT" },
                when(*at_ms),
                esc(signature)
            );
            if !problems.is_empty() {
                out.push_str("<ul>");
                for p in problems.iter().take(100) {
                    let _ = write!(out, "<li class=\"problem\">{}</li>", esc(p));
                }
                out.push_str("</ul>");
            }
        }
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/history/verify\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button>verify the chain now</button></form></section>",
        esc(v.csrf)
    );
    let _ = write!(
        out,
        "<h2>Entries</h2><p class=\"quiet\">Newest first{}; each page you read is recorded in the log.</p>",
        if live {
            ", new entries appear as they are made"
        } else {
            ""
        }
    );
    let mut table = event_table(events, true, None);
    if !live {
        table = table.replacen(" id=\"log\"", "", 1);
    }
    out.push_str(&table);
    out.push_str("<nav class=\"pager\">");
    if !live {
        let _ = write!(
            out,
            "<a href=\"/history{}\">← newest</a>",
            query(&[("host", host.to_owned()), ("kind", kind.to_owned())])
        );
    }
    if let Some(before) = older {
        let _ = write!(
            out,
            "<a href=\"/history{}\" rel=\"next\">older →</a>",
            query(&[
                ("host", host.to_owned()),
                ("kind", kind.to_owned()),
                ("before", before.to_string())
            ])
        );
    }
    out.push_str("</nav>");
    out
}

const ALL_KINDS: [&str; 17] = [
    "opened",
    "changed",
    "resolved",
    "acknowledged",
    "ack_revoked",
    "ack_expired",
    "host_online",
    "host_offline",
    "manifests_accepted",
    "manifests_rejected",
    "change_opened",
    "change_closed",
    "change_ended",
    "content_read",
    "log_read",
    "store_outage",
    "log_created",
];

/// The report page: its period, figures, charts, incidents, and downloads.
pub(crate) fn report(r: &crate::report::Report, since: &str, until: &str) -> String {
    let (by_host, by_origin) = crate::report::unauthorised_counts(r);
    let unauthorised = r.incidents.iter().filter(|i| i.unauthorised()).count();
    let resolved = r
        .incidents
        .iter()
        .filter(|i| i.resolved_ms.is_some())
        .count();
    let downloads = ["json", "csv", "html"]
        .iter()
        .map(|f| {
            format!(
                "<a href=\"/report.{f}{}\" download>{}</a>",
                query(&[("since", since.to_owned()), ("until", until.to_owned())]),
                f.to_uppercase()
            )
        })
        .collect::<Vec<_>>()
        .join(" · ");
    let mut per_day: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
    for i in &r.incidents {
        if i.opened_ms >= r.since_ms {
            per_day
                .entry(i.opened_ms.div_euclid(86_400_000) * 86_400_000)
                .or_default()
                .0 += 1;
        }
        if let Some(done) = i.resolved_ms {
            per_day
                .entry(done.div_euclid(86_400_000) * 86_400_000)
                .or_default()
                .1 += 1;
        }
    }
    // Every day of the period (its last 31), those without incidents too.
    let day = |ms: i64| ms.div_euclid(86_400_000) * 86_400_000;
    let last = day(r.until_ms - 1);
    let first = day(r.since_ms).max(last - 30 * 86_400_000);
    let days: Vec<(i64, u64, u64)> = (0..=((last - first) / 86_400_000))
        .map(|i| {
            let d = first + i * 86_400_000;
            let (o, c) = per_day.get(&d).copied().unwrap_or_default();
            (d, o, c)
        })
        .collect();
    let top = |m: std::collections::BTreeMap<&str, usize>| {
        let mut v: Vec<(String, usize)> = m.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(12);
        v
    };
    let mut out = format!(
        "<h1>Report</h1><form class=\"filter\" method=\"get\" action=\"/report\">\
         <label>since <input name=\"since\" value=\"{}\" placeholder=\"2026-12-01 or 7d\"></label>\
         <label>until <input name=\"until\" value=\"{}\" placeholder=\"now\"></label><button>show</button></form>\
         <p>Download: {downloads}</p><div class=\"cards\"><span class=\"card\"><b>{}</b> incidents</span>\
         <span class=\"card\"><b>{unauthorised}</b> unauthorised</span><span class=\"card\"><b>{resolved}</b> resolved</span>\
         <span class=\"card\"><b>{}</b> mean time to resolve</span><span class=\"card\"><b>{}/{}</b> hosts in sync now</span></div>\
         <h2>Incidents opened and resolved per day</h2>{}\
         <h2>Unauthorised changes by origin</h2>{}<h2>Unauthorised changes by host</h2>{}",
        esc(since),
        esc(until),
        r.incidents.len(),
        r.mttr_seconds()
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.0} s")),
        r.hosts_in_sync,
        r.hosts,
        chart::daily_bars("incidents per day", &days, ["opened", "resolved"]),
        chart::bars("unauthorised by origin", &top(by_origin)),
        chart::bars("unauthorised by host", &top(by_host)),
    );
    out.push_str("<h2>Incidents</h2><table><thead><tr><th>host</th><th>resource</th><th>attribute</th><th>opened</th><th>resolved</th><th>who</th><th>authorised</th><th>resolution</th></tr></thead><tbody>");
    for i in r.incidents.iter().take(500) {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if i.unauthorised() {
                "unauthorised"
            } else {
                "authorised"
            },
            host_link(&i.host),
            esc(&i.resource),
            esc(&i.attribute),
            when(i.opened_ms),
            i.resolved_ms.map_or_else(|| "open".to_owned(), when),
            esc(&i
                .who
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string)),
            esc(&match &i.authorisation {
                Some(crate::evidence::Authorisation::Authorised { change }) => change.clone(),
                Some(_) => "unauthorised".to_owned(),
                None => "-".to_owned(),
            }),
            esc(i.resolution.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    if r.incidents.len() > 500 {
        let _ = write!(
            out,
            "<p>The first 500 of {}; the downloads hold them all.</p>",
            r.incidents.len()
        );
    }
    out
}
