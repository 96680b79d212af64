//! Pure: the console's pages as HTML, from the fleet's answers. Everything from a host or a
//! person is escaped (`esc`); links carry values through `pct`. The part of a page that
//! updates by itself is `<section id="live">`, which the script fetches again (`?part=live`)
//! when an event arrives.

use std::fmt::Write as _;

mod host;
mod log;

pub(crate) use host::{diff, host, host_live, manifest};
pub(crate) use log::{Verified, history, report};

use super::chart;
use super::html::{ago, esc, pct, query, when};
use crate::fleet::console::{DriftFilter, DriftPage, DriftRow, Summary};
use crate::model::HostStatus;
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
         <span class=\"who\" title=\"your role\">{} · {}{}</span>\
         <span id=\"live-state\" class=\"live\" title=\"updates as events arrive\">connecting</span></header>\
         <main>{body}</main></body></html>",
        esc(v.csrf),
        esc(title),
        u8::from(v.may(Action::ReadLog)),
        esc(&v.person.name),
        v.person.role,
        if v.person.scope.whole() {
            String::new()
        } else {
            format!(" · {}", esc(&v.person.scope.describe()))
        },
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

pub(super) fn status_badge(s: HostStatus) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(s),
        s.as_str().replace('_', " ")
    )
}

pub(super) fn host_link(id: &str) -> String {
    format!("<a href=\"/hosts/{}\">{}</a>", pct(id), esc(id))
}

/// A link to the manifest line that declares an item (`file:line`, the file under the
/// manifest directory), shown relative to the directory.
pub(super) fn declared_link(v: &Viewer<'_>, declared_at: &str) -> String {
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
pub(super) fn value(s: &str) -> String {
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
pub(super) fn drift_table(
    v: &Viewer<'_>,
    rows: &[DriftRow],
    host_column: bool,
    back: &str,
) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DriftRecord;
    use crate::role::Role;

    fn row(i: usize) -> DriftRow {
        DriftRow {
            host: format!("web-{i}"),
            status: HostStatus::Drifted,
            record: DriftRecord {
                resource: "file:/etc/<x>".into(),
                attribute: "mode".into(),
                expected: "0644".into(),
                actual: "0666".into(),
                since_ms: 1,
                declared_at: "/srv/m/web.yaml:3".into(),
                evidence: Default::default(),
            },
            ack: None,
        }
    }

    #[test]
    fn the_drift_page_pages_and_escapes() {
        let person = Person {
            name: "vic".into(),
            role: Role::Viewer,
            scope: Default::default(),
        };
        let v = Viewer {
            person: &person,
            csrf: "t",
            manifests: "/srv/m",
        };
        let f = DriftFilter {
            host: "web-*".into(),
            offset: 100,
            limit: 100,
            ..DriftFilter::default()
        };
        let page = DriftPage {
            rows: (100..200).map(row).collect(),
            total: 250,
        };
        let html = drift_live(&v, &f, &page);
        assert!(
            html.contains("250</span> items match; showing 101–200."),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"/drift?host=web-%2A\">← newer</a>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"/drift?host=web-%2A&offset=200\" rel=\"next\">older →</a>"),
            "{html}"
        );
        assert!(html.contains("file:/etc/&lt;x&gt;") && !html.contains("<x>"));
        assert!(html.contains("<a href=\"/manifests/web.yaml#L3\">web.yaml:3</a>"));
        assert!(!html.contains("/actions/ack"), "a viewer gets no form");
        let last = DriftPage {
            rows: (200..250).map(row).collect(),
            total: 250,
        };
        let html = drift_live(&v, &DriftFilter { offset: 200, ..f }, &last);
        assert!(!html.contains("older →"), "the last page");
    }
}
