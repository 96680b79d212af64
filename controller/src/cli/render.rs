//! What the query commands print, from model types: tables for people, JSON documents for
//! scripts (each item through `crate::json`, the one contract). Pure, so the snapshot tests
//! in `snapshots.rs` see exactly what a user sees.

use serde_json::{Value, json};

use super::output::{cell, rfc3339, table};
use crate::json;
use crate::model::{Ack, Event, HostStatus, HostView};

/// Indented JSON with a final newline.
pub(crate) fn pretty(v: &(impl serde::Serialize + ?Sized)) -> String {
    let mut text = Vec::new();
    super::output::write_json(&mut text, v).expect("writing to memory");
    String::from_utf8(text).expect("JSON is UTF-8")
}

/// `plumb hosts -o json`.
pub(crate) fn hosts_json<'a>(
    hosts: &'a [(HostView, usize)],
    manifest_errors: &'a [String],
    warnings: &'a [String],
) -> Listing<'a, json::HostJson<'a>> {
    Listing {
        hosts: hosts.iter().map(|(h, n)| json::host(h, *n)).collect(),
        manifest_errors,
        warnings,
    }
}

/// What `plumb hosts -o json` and `plumb drift -o json` print: each host as `T`, serialised
/// as it is (no map built per host), and what the controller has to say about its manifests.
#[derive(serde::Serialize)]
pub(crate) struct Listing<'a, T> {
    hosts: Vec<T>,
    manifest_errors: &'a [String],
    warnings: &'a [String],
}

/// `plumb hosts`.
pub(crate) fn hosts_table(hosts: &[(HostView, usize)]) -> String {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|(h, drift_count)| {
            let f = &h.info.facts;
            vec![
                h.info.host_id.clone(),
                h.status.as_str().into(),
                drift_count.to_string(),
                rfc3339(h.last_seen_ms, false).unwrap_or_else(|| "never".into()),
                format!("{} {}", f.os_name, f.os_version).trim().to_owned(),
                coverage_summary(h),
                h.manifests.join(","),
            ]
        })
        .collect();
    table(
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
    )
}

/// One line for a person: what is not watched, and since when.
pub(crate) fn coverage_summary(h: &HostView) -> String {
    match &h.coverage {
        None => "-".into(),
        Some(c) if c.polled.is_empty() && c.watch_errors.is_empty() => {
            format!("{} watches", c.watches)
        }
        Some(c) => format!(
            "{} polled since {}",
            c.polled.len(),
            c.degraded_since_ms
                .and_then(|m| rfc3339(m, false))
                .unwrap_or_else(|| "?".into())
        ),
    }
}

/// Whether any host has drift no acknowledgement covers, and (`only_unauthorised`) no change
/// window authorised: `plumb drift` then exits 2.
pub(crate) fn failing_drift(hosts: &[HostView], only_unauthorised: bool) -> bool {
    hosts.iter().any(|h| {
        h.drift.iter().any(|d| {
            json::acknowledgement_of(h, d).is_none()
                && (!only_unauthorised || d.evidence.unauthorised())
        })
    })
}

/// `plumb drift -o json`.
pub(crate) fn drift_json<'a>(
    hosts: &'a [HostView],
    manifest_errors: &'a [String],
    warnings: &'a [String],
) -> Listing<'a, json::HostDriftJson<'a>> {
    Listing {
        hosts: hosts.iter().map(json::host_drift).collect(),
        manifest_errors,
        warnings,
    }
}

/// `plumb drift`: a row per drift item, and a row for each host without any.
pub(crate) fn drift_table(hosts: &[HostView]) -> String {
    let mut rows = Vec::new();
    for h in hosts {
        if h.drift.is_empty() {
            rows.push(vec![h.info.host_id.clone(), h.status.as_str().into()]);
        }
        for d in &h.drift {
            rows.push(vec![
                h.info.host_id.clone(),
                h.status.as_str().into(),
                cell(&d.resource),
                cell(&d.attribute),
                cell(&d.expected),
                cell(&d.actual),
                rfc3339(d.since_ms, false).unwrap_or_default(),
                d.declared_at.clone(),
                cell(&d.evidence.who_line()),
                d.evidence.authorisation_cell(),
                json::acknowledgement_of(h, d)
                    .map(|a| format!("by {}", a.by))
                    .unwrap_or_default(),
            ]);
        }
    }
    table(
        &[
            "HOST",
            "STATUS",
            "RESOURCE",
            "ATTRIBUTE",
            "EXPECTED",
            "ACTUAL",
            "SINCE",
            "DECLARED AT",
            "WHO",
            "CHANGE",
            "ACK",
        ],
        &rows,
    )
}

/// Degraded hosts are not known to be in sync: said next to any answer about drift.
pub(crate) fn degraded_warnings<'a>(hosts: impl IntoIterator<Item = &'a HostView>) -> Vec<String> {
    hosts
        .into_iter()
        .filter(|h| h.status == HostStatus::Degraded)
        .map(|h| {
            format!(
                "host {} is degraded: {}; see `plumb hosts -o json`",
                h.info.host_id,
                coverage_summary(h)
            )
        })
        .collect()
}

/// One event as `plumb drift --follow` prints it for a person.
pub(crate) fn event_line(e: &Event) -> String {
    let at = rfc3339(e.at_ms, false).unwrap_or_default();
    match &e.item {
        Some(d) => format!(
            "{at}  {:<8}  {}  {}  {}  expected {}, actual {}  ({}){}\n",
            e.kind.as_str(),
            e.host_id,
            cell(&d.resource),
            cell(&d.attribute),
            cell(&d.expected),
            cell(&d.actual),
            d.declared_at,
            evidence_suffix(&d.evidence)
        ),
        None => format!("{at}  {:<8}  {}\n", e.kind.as_str(), e.host_id),
    }
}

/// What a `--follow` line adds of an event's evidence: `  by WHO`, `  [unauthorised]` or
/// `  [CHG-1]`, `  resolved: HOW`; nothing for what is not known.
fn evidence_suffix(e: &crate::evidence::Evidence) -> String {
    let mut s = String::new();
    if let Some(r) = &e.resolution {
        s.push_str(&format!("  {r}"));
    }
    if let Some(who) = &e.who {
        s.push_str(&format!("  by {}", cell(&who.to_string())));
    }
    if e.authorisation.is_some() {
        s.push_str(&format!("  [{}]", e.authorisation_cell()));
    }
    s
}

/// `plumb history -o json`.
pub(crate) fn history_json(events: &[Event]) -> Value {
    json!({"events": events.iter().map(json::event).collect::<Vec<_>>()})
}

/// `plumb history`.
pub(crate) fn history_table(events: &[Event]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let item = |f: fn(&crate::model::DriftRecord) -> &str| {
                e.item.as_ref().map(|d| cell(f(d))).unwrap_or_default()
            };
            vec![
                rfc3339(e.at_ms, false).unwrap_or_default(),
                if e.host_id.is_empty() {
                    "(controller)".into()
                } else {
                    e.host_id.clone()
                },
                e.kind.as_str().into(),
                item(|d| &d.resource),
                item(|d| &d.attribute),
                item(|d| &d.expected),
                item(|d| &d.actual),
                e.item
                    .as_ref()
                    .map(|d| match &d.evidence.resolution {
                        Some(r) if d.evidence.who.is_some() => {
                            cell(&format!("{r}, by {}", d.evidence.who_line()))
                        }
                        Some(r) => r.to_string(),
                        None => cell(&d.evidence.who_line()),
                    })
                    .unwrap_or_default(),
                e.item
                    .as_ref()
                    .map(|d| d.evidence.authorisation_cell())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "AT",
            "HOST",
            "EVENT",
            "RESOURCE",
            "ATTRIBUTE",
            "EXPECTED",
            "ACTUAL",
            "WHO",
            "CHANGE",
        ],
        &rows,
    )
}

/// `plumb ack list -o json`.
pub(crate) fn acks_json(acks: &[Ack]) -> Value {
    json!({"acks": acks.iter().map(json::ack).collect::<Vec<_>>()})
}

/// `plumb ack list`.
pub(crate) fn acks_table(acks: &[Ack]) -> String {
    let rows: Vec<Vec<String>> = acks
        .iter()
        .map(|a| {
            vec![
                a.host_id.clone(),
                cell(&a.resource),
                a.by.clone(),
                until(a),
                cell(&a.reason),
            ]
        })
        .collect();
    table(&["HOST", "RESOURCE", "BY", "EXPIRES", "REASON"], &rows)
}

fn until(a: &Ack) -> String {
    a.expires_ms
        .and_then(|m| rfc3339(m, false))
        .unwrap_or_else(|| "until revoked".into())
}

/// What `plumb ack` says once the controller has recorded it.
pub(crate) fn acknowledged(a: &Ack) -> String {
    format!(
        "acknowledged {} on {} ({}), {}",
        a.resource,
        a.host_id,
        a.by,
        a.expires_ms
            .and_then(|m| rfc3339(m, false))
            .map_or("until revoked".into(), |t| format!("until {t}"))
    )
}

/// Hosts named in a table cell: the first ten, then how many more.
fn some_hosts(hosts: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = hosts
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if hosts.len() > SHOWN {
        text.push_str(&format!(" and {} more", hosts.len() - SHOWN));
    }
    text
}

/// `plumb diverge`: one row per variant of each aspect; the variant hosts are compared with
/// (the majority's, the reference's) by its count alone, every other with its hosts.
pub(crate) fn divergences_table(list: &[crate::baseline::Divergence]) -> String {
    use crate::baseline::Tally;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for d in list {
        let lead =
            |rows: &mut Vec<Vec<String>>, aspect: &str, value: String, n: usize, who: String| {
                rows.push(vec![
                    d.group.clone(),
                    d.key.to_string(),
                    aspect.to_owned(),
                    value,
                    n.to_string(),
                    who,
                ]);
            };
        for a in &d.aspects {
            let standard = d
                .standard
                .iter()
                .find(|(s, _)| *s == a.aspect)
                .map(|(_, t)| t);
            for v in &a.variants {
                let who = match standard {
                    Some(Tally::Majority(m)) if *m == v.value => match &d.reference {
                        Some(r) => format!("as the reference {r}"),
                        None => "the majority".to_owned(),
                    },
                    Some(Tally::None(_)) => format!("no majority: {}", some_hosts(&v.hosts)),
                    _ => some_hosts(&v.hosts),
                };
                lead(&mut rows, &a.aspect, cell(&v.value), v.hosts.len(), who);
            }
        }
        for (host, why) in &d.unreadable {
            lead(&mut rows, "unreadable", cell(why), 1, host.clone());
        }
        if !d.unreported.is_empty() {
            lead(
                &mut rows,
                "unreported",
                "-".into(),
                d.unreported.len(),
                some_hosts(&d.unreported),
            );
        }
    }
    table(
        &["GROUP", "RESOURCE", "ASPECT", "VALUE", "N", "HOSTS"],
        &rows,
    )
}
