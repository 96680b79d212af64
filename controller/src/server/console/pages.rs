//! Pure: the console's pages as HTML, from the fleet's answers. Everything from a host or a
//! person is escaped (`esc`); links carry values through `pct`. The part of a page that
//! updates by itself is `<section id="live">`, which the script fetches again (`?part=live`)
//! when an event arrives.

use std::fmt::Write as _;

use super::chart;
use super::html::{ago, esc, pct, query, when};
use crate::fleet::console::{DriftFilter, DriftPage, DriftRow, HostDetail, Summary};
use crate::model::{Event, EventKind, HostStatus};
use crate::role::{Action, Person};

/// Who is looking, and the token their forms carry.
pub(crate) struct Viewer<'a> {
    pub(crate) person: &'a Person,
    pub(crate) csrf: &'a str,
    /// The controller's manifest directory, as declarations name their files.
    pub(crate) manifests: &'a str,
}

impl Viewer<'_> {
    fn may(&self, a: Action) -> bool {
        self.person.role.may(a)
    }
}

/// A whole page around `body`.
pub(crate) fn layout(v: &Viewer<'_>, page: &str, title: &str, body: &str) -> String {
    let nav = [
        ("overview", "/", "Overview"),
        ("drift", "/drift", "Drift"),
        ("history", "/history", "History"),
        ("report", "/report", "Report"),
    ]
    .iter()
    .filter(|(id, ..)| v.may(Action::ReadLog) || !matches!(*id, "history" | "report"))
    .map(|(id, href, label)| {
        let current = if *id == page {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    })
    .collect::<String>();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf-token\" content=\"{}\">\
         <title>{} · plumb</title><link rel=\"stylesheet\" href=\"/static/console.css\">\
         <script src=\"/static/console.js\" defer></script></head>\
         <body data-page=\"{page}\" data-log=\"{}\"><header><a class=\"brand\" href=\"/\">plumb</a><nav>{nav}</nav>\
         <span class=\"who\" title=\"your role\">{} · {}</span>\
         <span id=\"live-state\" class=\"live\" title=\"updates as events arrive\">connecting</span></header>\
         <main>{body}</main></body></html>",
        esc(v.csrf),
        esc(title),
        u8::from(v.may(Action::ReadLog)),
        esc(&v.person.name),
        v.person.role,
    )
}

/// A refusal or an error, as a page.
pub(crate) fn problem(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · plumb</title>\
         <link rel=\"stylesheet\" href=\"/static/console.css\"></head><body><main>\
         <h1>{t}</h1><p class=\"problem\">{m}</p><p><a href=\"/\">Overview</a></p></main></body></html>",
        t = esc(title),
        m = esc(message)
    )
}

fn status_class(s: HostStatus) -> &'static str {
    s.as_str()
}

fn status_badge(s: HostStatus) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(s),
        s.as_str().replace('_', " ")
    )
}

fn host_link(id: &str) -> String {
    format!("<a href=\"/hosts/{}\">{}</a>", pct(id), esc(id))
}

/// A link to the manifest line that declares an item (`file:line`, the file under the
/// manifest directory), shown relative to the directory.
fn declared_link(v: &Viewer<'_>, declared_at: &str) -> String {
    let Some((file, line)) = declared_at
        .rsplit_once(':')
        .filter(|(f, l)| l.parse::<u32>().is_ok() && !f.is_empty())
    else {
        return esc(declared_at);
    };
    let dir = v.manifests.trim_end_matches('/');
    let relative = match file.strip_prefix(dir) {
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        _ if !file.starts_with('/') => file,
        _ => return esc(declared_at),
    };
    format!(
        "<a href=\"/manifests/{}#L{line}\">{}:{line}</a>",
        relative.split('/').map(pct).collect::<Vec<_>>().join("/"),
        esc(relative)
    )
}

/// A value for a table cell: digests shortened (the whole in the tooltip).
fn value(s: &str) -> String {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("<code title=\"{s}\">{}…</code>", &s[..12])
    } else {
        format!("<code>{}</code>", esc(s))
    }
}

/// The overview: all of it is live.
pub(crate) fn overview(v: &Viewer<'_>, s: &Summary) -> String {
    format!(
        "<h1>Overview</h1><section id=\"live\">{}</section>",
        overview_live(v, s)
    )
}

pub(crate) fn overview_live(v: &Viewer<'_>, s: &Summary) -> String {
    let mut out = String::new();
    for w in &s.warnings {
        let _ = write!(out, "<p class=\"problem\">{}</p>", esc(w));
    }
    let parts: Vec<(&str, &str, usize)> = s
        .by_status
        .iter()
        .map(|(st, n)| (label(*st), status_class(*st), *n))
        .collect();
    let _ = write!(
        out,
        "<div class=\"cards\">\
         <a class=\"card\" href=\"/drift?unauthorised=1\"><b id=\"unauthorised-count\">{}</b> unauthorised drift</a>\
         <a class=\"card\" href=\"/drift\"><b id=\"drift-count\">{}</b> open drift items</a>\
         <a class=\"card\" href=\"/drift?acknowledged=yes\"><b>{}</b> acknowledged</a>\
         <span class=\"card\"><b id=\"host-count\">{}</b> hosts</span></div>\
         <h2>Hosts by status</h2>{}",
        s.unauthorised_open,
        s.drift_open,
        s.acknowledged_open,
        s.hosts,
        chart::stacked("hosts by status", &parts)
    );
    out.push_str("<h2>Unauthorised drift, newest first</h2>");
    if s.top_unauthorised.is_empty() {
        out.push_str(
            "<p class=\"quiet\">None: every open item was approved by a change window.</p>",
        );
    } else {
        out.push_str(&drift_table(v, &s.top_unauthorised, false, "/"));
        if s.unauthorised_open > s.top_unauthorised.len() {
            let _ = write!(
                out,
                "<p><a href=\"/drift?unauthorised=1\">All {} unauthorised items</a></p>",
                s.unauthorised_open
            );
        }
    }
    let _ = write!(
        out,
        "<h2>Drift opened and resolved, last {} days</h2>{}",
        s.trend.len(),
        chart::daily_bars("drift per day", &s.trend, ["opened", "resolved"])
    );
    out.push_str("<h2>Hosts not heard from lately</h2>");
    if s.stale.is_empty() {
        out.push_str(
            "<p class=\"quiet\">None: every agent was heard from within three heartbeats.</p>",
        );
    } else {
        out.push_str("<table><thead><tr><th>host</th><th>last seen</th></tr></thead><tbody>");
        for (id, seen) in &s.stale {
            let _ = write!(
                out,
                "<tr><td>{}</td><td title=\"{}\">{}</td></tr>",
                host_link(id),
                when(*seen),
                ago(s.now_ms, *seen)
            );
        }
        out.push_str("</tbody></table>");
        if s.stale_total > s.stale.len() {
            let _ = write!(out, "<p>and {} more</p>", s.stale_total - s.stale.len());
        }
    }
    out.push_str("<h2>Manifest changes</h2>");
    if s.manifest_errors.is_empty() {
        out.push_str(
            "<p class=\"quiet\">The manifests in force were accepted; none is rejected.</p>",
        );
    } else {
        out.push_str("<p class=\"problem\">A manifest change was rejected; the last good set stays in force:</p><ul>");
        for e in &s.manifest_errors {
            let _ = write!(out, "<li><code>{}</code></li>", esc(e));
        }
        out.push_str("</ul>");
    }
    out
}

fn label(s: HostStatus) -> &'static str {
    match s {
        HostStatus::InSync => "in sync",
        HostStatus::Drifted => "drifted",
        HostStatus::Offline => "offline",
        HostStatus::Unknown => "unknown",
        HostStatus::Degraded => "degraded",
    }
}

/// Drift rows; with `host` each row names its host. Those who may acknowledge get a form per
/// row (or a revoke button for an acknowledged one), returning to `back`.
fn drift_table(v: &Viewer<'_>, rows: &[DriftRow], host_column: bool, back: &str) -> String {
    let act = v.may(Action::Acknowledge);
    let mut out = String::from("<table class=\"drift\"><thead><tr>");
    if host_column {
        out.push_str("<th>host</th>");
    }
    out.push_str("<th>resource</th><th>attribute</th><th>expected</th><th>actual</th><th>since</th><th>who</th><th>authorised</th><th>declared at</th><th>acknowledged</th>");
    if act {
        out.push_str("<th>action</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        let d = &r.record;
        let unauthorised = d.evidence.unauthorised();
        let _ = write!(
            out,
            "<tr class=\"{}\" data-host=\"{}\" data-resource=\"{}\">",
            if unauthorised {
                "unauthorised"
            } else {
                "authorised"
            },
            esc(&r.host),
            esc(&d.resource)
        );
        if host_column {
            let _ = write!(out, "<td>{}</td>", host_link(&r.host));
        }
        let _ = write!(
            out,
            "<td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&d.resource),
            esc(&d.attribute),
            value(&d.expected),
            value(&d.actual),
            when(d.since_ms),
            esc(&d.evidence.who_line()),
            esc(&d.evidence.authorisation_cell()),
            declared_link(v, &d.declared_at),
        );
        match &r.ack {
            Some(a) => {
                let until = a.expires_ms.map_or_else(|| "no expiry".to_owned(), when);
                let _ = write!(
                    out,
                    "<td class=\"acked\">by {}: {} (until {})</td>",
                    esc(&a.by),
                    esc(&a.reason),
                    esc(&until)
                );
            }
            None => out.push_str("<td>no</td>"),
        }
        if act {
            out.push_str("<td>");
            out.push_str(&ack_form(v, &r.host, &d.resource, r.ack.is_some(), back));
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn ack_form(v: &Viewer<'_>, host: &str, resource: &str, acked: bool, back: &str) -> String {
    let hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"host\" value=\"{}\">\
         <input type=\"hidden\" name=\"resource\" value=\"{}\"><input type=\"hidden\" name=\"back\" value=\"{}\">",
        esc(v.csrf),
        esc(host),
        esc(resource),
        esc(back)
    );
    if acked {
        format!(
            "<form method=\"post\" action=\"/actions/revoke\" class=\"inline\">{hidden}<button>revoke</button></form>"
        )
    } else {
        format!(
            "<form method=\"post\" action=\"/actions/ack\" class=\"inline ack\">{hidden}\
             <input name=\"reason\" required placeholder=\"reason\" aria-label=\"reason\">\
             <select name=\"expires\" aria-label=\"expires\"><option value=\"\">no expiry</option>\
             <option value=\"1h\">1 hour</option><option value=\"1d\">1 day</option><option value=\"7d\" selected>7 days</option>\
             <option value=\"30d\">30 days</option></select><button>acknowledge</button></form>"
        )
    }
}

/// The drift page: its filter, then the live table and its pager.
pub(crate) fn drift(v: &Viewer<'_>, f: &DriftFilter, page: &DriftPage) -> String {
    let sel = |want: Option<bool>| {
        [("", "any"), ("yes", "yes"), ("no", "no")]
            .iter()
            .map(|(val, text)| {
                let on = match (want, *val) {
                    (None, "") | (Some(true), "yes") | (Some(false), "no") => " selected",
                    _ => "",
                };
                format!("<option value=\"{val}\"{on}>{text}</option>")
            })
            .collect::<String>()
    };
    format!(
        "<h1>Drift</h1><form class=\"filter\" method=\"get\" action=\"/drift\">\
         <label>host <input name=\"host\" value=\"{}\" placeholder=\"web-* or part of a name\"></label>\
         <label>label <input name=\"label\" value=\"{}\" placeholder=\"role=web\"></label>\
         <label>manifest <input name=\"manifest\" value=\"{}\" placeholder=\"web.yaml\"></label>\
         <label>resource <input name=\"resource\" value=\"{}\" placeholder=\"file:/etc/nginx\"></label>\
         <label>attribute <input name=\"attribute\" value=\"{}\" placeholder=\"sha256\"></label>\
         <label>acknowledged <select name=\"acknowledged\">{}</select></label>\
         <label><input type=\"checkbox\" name=\"unauthorised\" value=\"1\"{}> unauthorised only</label>\
         <button>filter</button></form><section id=\"live\">{}</section>",
        esc(&f.host),
        esc(&f.label),
        esc(&f.manifest),
        esc(&f.resource),
        esc(&f.attribute),
        sel(f.acknowledged),
        if f.unauthorised_only { " checked" } else { "" },
        drift_live(v, f, page)
    )
}

pub(crate) fn drift_query(f: &DriftFilter, offset: usize) -> String {
    query(&[
        ("host", f.host.clone()),
        ("label", f.label.clone()),
        ("manifest", f.manifest.clone()),
        ("resource", f.resource.clone()),
        ("attribute", f.attribute.clone()),
        (
            "acknowledged",
            match f.acknowledged {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => String::new(),
            },
        ),
        (
            "unauthorised",
            if f.unauthorised_only {
                "1".into()
            } else {
                String::new()
            },
        ),
        (
            "offset",
            if offset > 0 {
                offset.to_string()
            } else {
                String::new()
            },
        ),
    ])
}

pub(crate) fn drift_live(v: &Viewer<'_>, f: &DriftFilter, page: &DriftPage) -> String {
    let mut out = String::new();
    let first = if page.total == 0 { 0 } else { f.offset + 1 };
    let last = f.offset + page.rows.len();
    let _ = write!(
        out,
        "<p class=\"count\"><span id=\"drift-total\">{}</span> {} match; showing {first}–{last}.</p>",
        page.total,
        if page.total == 1 { "item" } else { "items" }
    );
    if page.rows.is_empty() {
        out.push_str("<p class=\"quiet\">No open drift matches.</p>");
    } else {
        let back = format!("/drift{}", drift_query(f, f.offset));
        out.push_str(&drift_table(v, &page.rows, true, &back));
    }
    out.push_str("<nav class=\"pager\">");
    if f.offset > 0 {
        let _ = write!(
            out,
            "<a href=\"/drift{}\">← newer</a>",
            drift_query(f, f.offset.saturating_sub(f.limit))
        );
    }
    if last < page.total {
        let _ = write!(
            out,
            "<a href=\"/drift{}\" rel=\"next\">older →</a>",
            drift_query(f, last)
        );
    }
    out.push_str("</nav>");
    out
}

/// A host's page: the live part (status, facts, coverage, drift), diffs, and its timeline
/// where the viewer may read the log (`timeline`: `None` otherwise).
pub(crate) fn host(v: &Viewer<'_>, h: &HostDetail, timeline: Option<&[Event]>) -> String {
    let id = &h.view.info.host_id;
    let mut out = format!(
        "<h1>{}</h1><section id=\"live\">{}</section>",
        esc(id),
        host_live(v, h)
    );
    if !h.diffable.is_empty() {
        out.push_str("<h2>Diffs</h2>");
        if v.may(Action::ReadContent) {
            out.push_str("<p class=\"quiet\">Desired against actual content, fetched from the agent; each diff is recorded in the event log with your name.</p><ul>");
            for p in &h.diffable {
                let _ = write!(
                    out,
                    "<li><a href=\"/hosts/{}/diff{}\">{}</a></li>",
                    pct(id),
                    query(&[("path", p.clone())]),
                    esc(p)
                );
            }
            out.push_str("</ul>");
        } else {
            let _ = write!(
                out,
                "<p class=\"quiet\">{} files allow a diff; reading content needs {}.</p>",
                h.diffable.len(),
                Action::ReadContent.roles()
            );
        }
    }
    out.push_str("<h2>Timeline</h2>");
    match timeline {
        Some(events) => {
            let _ = write!(
                out,
                "<p class=\"quiet\">The last {} entries of the event log for this host (this read is recorded).</p>",
                events.len()
            );
            out.push_str(&event_table(events, false, Some(id)));
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"quiet\">The event log needs {}.</p>",
                Action::ReadLog.roles()
            );
        }
    }
    out
}

pub(crate) fn host_live(v: &Viewer<'_>, h: &HostDetail) -> String {
    let view = &h.view;
    let i = &view.info;
    let f = &i.facts;
    let mut out = format!(
        "<p>{} last seen <span title=\"{}\">{}</span>{}</p><dl class=\"facts\">\
         <dt>hostname</dt><dd>{}</dd><dt>os</dt><dd>{} {}</dd><dt>kernel</dt><dd>{}</dd>\
         <dt>arch</dt><dd>{}</dd><dt>cpus</dt><dd>{}</dd><dt>memory</dt><dd>{} MiB</dd><dt>agent</dt><dd>{}</dd>\
         <dt>labels</dt><dd>{}</dd><dt>manifests</dt><dd>{}</dd></dl>",
        status_badge(view.status),
        when(view.last_seen_ms),
        ago(h.now_ms, view.last_seen_ms),
        view.controller
            .as_ref()
            .map(|c| format!(", its stream held by controller <code>{}</code>", esc(c)))
            .unwrap_or_default(),
        esc(&i.hostname),
        esc(&f.os_name),
        esc(&f.os_version),
        esc(&f.kernel_version),
        esc(&f.arch),
        f.cpus,
        f.memory_bytes >> 20,
        esc(&i.agent_version),
        i.labels
            .iter()
            .map(|(k, v)| format!("<code>{}={}</code>", esc(k), esc(v)))
            .collect::<Vec<_>>()
            .join(" "),
        view.manifests
            .iter()
            .map(|m| esc(m))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push_str("<h2>Coverage</h2>");
    match &view.coverage {
        Some(c) => {
            let _ = write!(
                out,
                "<dl class=\"facts\"><dt>watched directories</dt><dd>{}{}</dd>\
                 <dt>polled paths</dt><dd>{}</dd><dt>event queue overflows</dt><dd>{}</dd>\
                 <dt>last full scan</dt><dd>{}</dd><dt>attribution</dt><dd>{}</dd></dl>",
                c.watches,
                if c.watch_limit > 0 {
                    format!(" of a limit of {}", c.watch_limit)
                } else {
                    String::new()
                },
                if c.polled.is_empty() {
                    "none".to_owned()
                } else {
                    format!(
                        "{} (degraded): {}",
                        c.polled.len(),
                        c.polled
                            .iter()
                            .take(50)
                            .map(|p| format!("<code>{}</code>", esc(p)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                },
                c.overflows,
                when(c.last_full_scan_ms),
                esc(if c.attribution.is_empty() {
                    "not said"
                } else {
                    &c.attribution
                }),
            );
            for e in c.watch_errors.iter().take(20) {
                let _ = write!(out, "<p class=\"problem\">{}</p>", esc(e));
            }
        }
        None => out.push_str("<p class=\"quiet\">Not reported yet.</p>"),
    }
    out.push_str("<h2>Open drift</h2>");
    if view.drift.is_empty() {
        out.push_str("<p class=\"quiet\">None.</p>");
    } else {
        let rows: Vec<DriftRow> = view
            .drift
            .iter()
            .map(|d| DriftRow {
                host: i.host_id.clone(),
                status: view.status,
                record: d.clone(),
                ack: view.acks.iter().find(|a| a.resource == d.resource).cloned(),
            })
            .collect();
        out.push_str(&drift_table(
            v,
            &rows,
            false,
            &format!("/hosts/{}", pct(&i.host_id)),
        ));
    }
    out
}

/// Events as a table (newest first); `id` is the log table the script adds live entries to.
fn event_table(events: &[Event], host_column: bool, live_host: Option<&str>) -> String {
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

/// A manifest file with numbered lines, each an anchor (`#L12`).
pub(crate) fn manifest(file: &str, text: &str) -> String {
    let mut out = format!("<h1>{}</h1><table class=\"source\"><tbody>", esc(file));
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let _ = write!(
            out,
            "<tr id=\"L{n}\"><td class=\"ln\"><a href=\"#L{n}\">{n}</a></td><td><code>{}</code></td></tr>",
            esc(line)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A diff as `plumb diff` prints it, coloured by line.
pub(crate) fn diff(host: &str, path: &str, diff: &str, identical: bool) -> String {
    let mut out = format!(
        "<h1>{} on {}</h1><p class=\"quiet\">This read is recorded in the event log with your name.</p>",
        esc(path),
        host_link(host)
    );
    if identical {
        out.push_str("<p>The content is as declared.</p>");
        return out;
    }
    out.push_str("<pre class=\"diff\">");
    for line in diff.lines() {
        let class = match line.as_bytes().first() {
            Some(b'+') => "add",
            Some(b'-') => "del",
            Some(b'@') => "hunk",
            _ => "ctx",
        };
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", esc(line));
    }
    out.push_str("</pre>");
    out
}
