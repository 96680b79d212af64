//! Pure: a host's page (facts, coverage, drift, diffs, timeline), a diff, a manifest file.

use std::fmt::Write as _;

use super::super::html::{ago, esc, pct, query, when};
use super::log::event_table;
use super::{Viewer, drift_table, host_link, status_badge};
use crate::fleet::console::{DriftRow, HostDetail};
use crate::model::Event;
use crate::role::Action;

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
        if h.drift_total > rows.len() {
            let _ = write!(
                out,
                "<p>The first {} of {} items; <a href=\"/drift{}\">the drift page</a> pages through them all.</p>",
                rows.len(),
                h.drift_total,
                query(&[("host", i.host_id.clone())])
            );
        }
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
