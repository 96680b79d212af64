//! plumb's JSON contract: how the model's hosts, drift, events and acknowledgements read as
//! JSON, in one place. `-o json`, `plumb drift --follow`, webhooks and (later) the console
//! all render through here, so a field cannot change in one and not the others; the snapshot
//! tests in `cli/snapshots.rs` hold the shapes still. Times are RFC 3339 with milliseconds,
//! "never" is `null`.

use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::evidence::{Authorisation, Evidence, Resolution, Who};
use crate::model::{Ack, Coverage, DriftRecord, Event, HostView};
use crate::store::Head;
use crate::window::ChangeWindow;

/// A host as `plumb hosts -o json` lists it; `drift_count` is its open drift (a listing does
/// not carry the items themselves). Serialised straight from the model, not through a `Value`
/// (a fleet's listing would build a map for every host): fields in the order of their names,
/// as every object built with `json!` has them.
pub fn host(h: &HostView, drift_count: usize) -> HostJson<'_> {
    let f = &h.info.facts;
    HostJson {
        agent_version: &h.info.agent_version,
        controller: h.controller.as_deref(),
        coverage: h.coverage.as_ref().map(coverage),
        drift_count,
        host: &h.info.host_id,
        hostname: &h.info.hostname,
        labels: &h.info.labels,
        last_seen: rfc3339(h.last_seen_ms, true),
        manifests: &h.manifests,
        os: OsJson {
            arch: &f.arch,
            id: &f.os_id,
            kernel: &f.kernel_version,
            name: &f.os_name,
            version: &f.os_version,
        },
        status: h.status.as_str(),
    }
}

/// See `host`.
#[derive(Debug, serde::Serialize)]
pub struct HostJson<'a> {
    agent_version: &'a str,
    controller: Option<&'a str>,
    coverage: Option<CoverageJson<'a>>,
    drift_count: usize,
    host: &'a str,
    hostname: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
    last_seen: Option<String>,
    manifests: &'a [String],
    os: OsJson<'a>,
    status: &'a str,
}

#[derive(Debug, serde::Serialize)]
struct OsJson<'a> {
    arch: &'a str,
    id: &'a str,
    kernel: &'a str,
    name: &'a str,
    version: &'a str,
}

/// How well a host's agent observes its plan.
pub fn coverage(c: &Coverage) -> CoverageJson<'_> {
    CoverageJson {
        attribution: (!c.attribution.is_empty()).then_some(&c.attribution),
        degraded_since: c.degraded_since_ms.and_then(|m| rfc3339(m, true)),
        last_full_scan: rfc3339(c.last_full_scan_ms, true),
        overflows: c.overflows,
        polled: &c.polled,
        watch_errors: &c.watch_errors,
        watch_limit: (c.watch_limit > 0).then_some(c.watch_limit),
        watches: c.watches,
    }
}

/// See `coverage`.
#[derive(Debug, serde::Serialize)]
pub struct CoverageJson<'a> {
    attribution: Option<&'a str>,
    degraded_since: Option<String>,
    last_full_scan: Option<String>,
    overflows: u64,
    polled: &'a [String],
    watch_errors: &'a [String],
    watch_limit: Option<u32>,
    watches: u32,
}

/// A host with its open drift, each item with the acknowledgement that covers it (or `null`),
/// as `plumb drift -o json` shows it.
pub fn host_drift(h: &HostView) -> HostDriftJson<'_> {
    HostDriftJson {
        drift: h
            .drift
            .iter()
            .map(|d| {
                let mut v = drift(d);
                v["acknowledged"] = acknowledgement_of(h, d).map_or(Value::Null, ack);
                v
            })
            .collect(),
        host: &h.info.host_id,
        last_seen: rfc3339(h.last_seen_ms, true),
        status: h.status.as_str(),
    }
}

/// See `host_drift`: serialised straight from the model, as `host` is.
#[derive(Debug, serde::Serialize)]
pub struct HostDriftJson<'a> {
    drift: Vec<Value>,
    host: &'a str,
    last_seen: Option<String>,
    status: &'a str,
}

/// The acknowledgement in force for this drift item's resource, if any.
pub fn acknowledgement_of<'a>(h: &'a HostView, d: &DriftRecord) -> Option<&'a Ack> {
    h.acks.iter().find(|a| a.resource == d.resource)
}

/// One drift item, with its evidence (`who`, `origin`, `authorised`, `change`,
/// `resolution`; `null` where nothing is known).
pub fn drift(d: &DriftRecord) -> Value {
    let mut v = json!({
        "resource": d.resource,
        "attribute": d.attribute,
        "expected": d.expected,
        "actual": d.actual,
        "since": rfc3339(d.since_ms, true),
        "declared_at": d.declared_at,
    });
    if let Some(map) = v.as_object_mut() {
        map.extend(evidence(&d.evidence));
    }
    v
}

/// Who made a change, whether it was authorised, how it resolved: `origin` is the one word a
/// report groups by; `authorised` is `null` for drift recorded before authorisation existed.
pub fn evidence(e: &Evidence) -> serde_json::Map<String, Value> {
    let who = e.who.as_ref().map(|w| match w {
        Who::Process(p) => json!({
            "origin": p.origin, "action": p.action, "pid": p.pid, "process": p.name,
            "exe": p.exe, "user": p.user, "uid": p.uid, "login_user": p.login_user,
            "login_uid": p.login_uid, "session": p.session, "tty": p.tty, "unit": p.unit,
            "container": p.container, "parents": p.parents,
            "command_line": (!p.command_line.is_empty()).then_some(&p.command_line),
            "text": w.to_string(),
        }),
        Who::Package(t) => json!({
            "origin": t.manager, "package_manager": t.manager, "started": t.started,
            "user": t.user, "uid": t.uid, "command": t.command, "action": t.action,
            "text": w.to_string(),
        }),
        Who::Unknown(why) => json!({"origin": "unknown", "unknown": why, "text": w.to_string()}),
    });
    let (authorised, change) = match &e.authorisation {
        Some(Authorisation::Authorised { change }) => (Some(true), Some(change.as_str())),
        Some(Authorisation::Unauthorised) => (Some(false), None),
        None => (None, None),
    };
    let resolution = e.resolution.as_ref().map(|r| match r {
        Resolution::Reverted => json!({"how": "reverted", "text": r.to_string()}),
        Resolution::ManifestChanged { commit } => {
            json!({"how": "manifest_changed", "commit": commit, "text": r.to_string()})
        }
        Resolution::PackageChanged => json!({"how": "package_changed", "text": r.to_string()}),
        Resolution::PeersChanged => json!({"how": "peers_changed", "text": r.to_string()}),
    });
    let mut map = serde_json::Map::new();
    map.insert(
        "origin".into(),
        e.who
            .as_ref()
            .map(Who::origin)
            .map_or(Value::Null, Value::from),
    );
    map.insert("who".into(), who.unwrap_or(Value::Null));
    map.insert(
        "authorised".into(),
        authorised.map_or(Value::Null, Value::from),
    );
    map.insert("change".into(), change.map_or(Value::Null, Value::from));
    map.insert("resolution".into(), resolution.unwrap_or(Value::Null));
    map
}

/// One event of the log: its id, when, which host, what happened, and the item's fields.
/// `id` is 0 for an event the store has not written yet.
pub fn event(e: &Event) -> Value {
    let mut v = json!({"id": e.id, "at": rfc3339(e.at_ms, true), "host": e.host_id, "event": e.kind.as_str()});
    if let (Some(d), Some(map)) = (&e.item, v.as_object_mut())
        && let Value::Object(item) = drift(d)
    {
        map.extend(item);
    }
    v
}

/// Whether an event is about drift no change window authorised (opened, changed, resolved):
/// what `--unauthorised` followers and `unauthorised_only` webhooks hear.
pub fn unauthorised_drift_event(e: &Event) -> bool {
    use crate::model::EventKind;
    matches!(
        e.kind,
        EventKind::Opened | EventKind::Changed | EventKind::Resolved
    ) && e.item.as_ref().is_some_and(|d| d.evidence.unauthorised())
}

/// A change window as `plumb change list -o json` shows it.
pub fn window(w: &ChangeWindow) -> Value {
    json!({
        "ticket": w.ticket,
        "hosts": w.scope.hosts, "labels": w.scope.labels, "paths": w.scope.paths,
        "packages": w.scope.packages, "scope": w.scope_text(),
        "from": rfc3339(w.from_ms, true), "until": rfc3339(w.until_ms, true),
        "opened_by": w.opened_by, "reason": w.reason,
        "closed": w.closed.as_ref().and_then(|(at, _)| rfc3339(*at, true)),
        "closed_by": w.closed.as_ref().map(|(_, by)| by),
        "ended": w.ended,
    })
}

/// An acknowledgement; `expires` is `null` until revoked.
pub fn ack(a: &Ack) -> Value {
    json!({
        "host": a.host_id, "resource": a.resource, "reason": a.reason, "by": a.by,
        "at": rfc3339(a.at_ms, true), "expires": a.expires_ms.and_then(|m| rfc3339(m, true)),
    })
}

/// The event log's head: a copy to keep for `plumb audit verify --head ENTRY:HASH`.
pub fn head(h: &Head) -> Value {
    json!({
        "entry": h.last_id, "hash": h.hash, "signature": h.signature, "public_key": h.public_key,
    })
}

/// How one baseline group's hosts stand on one key, as `plumb diverge -o json` shows it.
pub fn divergence(d: &crate::baseline::Divergence) -> Value {
    use crate::baseline::Tally;
    json!({
        "group": d.group, "resource": d.key.to_string(), "reference": d.reference,
        "declared_at": d.declared_at, "alike": d.alike(),
        "aspects": d.aspects.iter().map(|a| {
            let standard = d.standard.iter().find(|(s, _)| *s == a.aspect).map(|(_, t)| t);
            json!({
                "aspect": a.aspect,
                "standard": match standard {
                    Some(Tally::Majority(v)) => json!({"value": v}),
                    Some(Tally::Alone) => json!({"none": "one host only has reported it"}),
                    Some(Tally::None(counts)) => json!({"none": "no majority", "counts": counts}),
                    None => Value::Null,
                },
                "variants": a.variants.iter().map(|v| json!({"value": v.value, "hosts": v.hosts})).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
        "unreadable": d.unreadable.iter().map(|(h, why)| json!({"host": h, "why": why})).collect::<Vec<_>>(),
        "unreported": d.unreported,
    })
}
