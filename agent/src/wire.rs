//! Conversions between plumb.v1 wire types and the agent's own types; the only place that
//! knows both.

use plumb_proto::v1;

use crate::collect::facts::Facts;
use crate::collect::files::{Kind, Matcher, Observation, Request, Requests};
use crate::collect::packages::{PackageObservation, PackageRequest};

/// A plan, validated: every path absolute and every pattern compiled.
#[derive(Debug)]
pub struct Plan {
    pub generation: u64,
    pub heartbeat_interval_secs: u32,
    pub requests: Requests,
    pub packages: Vec<PackageRequest>,
}

/// Paths per plan the agent accepts; a plan beyond this is refused as malformed.
const MAX_PLAN_PATHS: usize = 100_000;

pub fn plan_from_proto(p: v1::Plan) -> Result<Plan, String> {
    if p.paths.len() > MAX_PLAN_PATHS {
        return Err(format!(
            "plan has {} paths, more than the {MAX_PLAN_PATHS} accepted",
            p.paths.len()
        ));
    }
    let mut requests = Vec::with_capacity(p.paths.len());
    for spec in p.paths {
        if !spec.path.starts_with('/') || spec.path.split('/').any(|c| c == "..") {
            return Err(format!(
                "plan path {:?} is not a normalized absolute path",
                spec.path
            ));
        }
        if let Err(e) = plumb_proto::names::unescape(&spec.path) {
            return Err(format!(
                "plan path {:?} is not a canonical name: {e}",
                spec.path
            ));
        }
        let contains = spec
            .contains
            .iter()
            .map(|m| Matcher::new(&m.pattern, m.regex))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("plan pattern for {} does not compile: {e}", spec.path))?;
        requests.push(Request {
            path: spec.path.into_boxed_str(),
            hash: spec.hash,
            contains,
            list_entries: spec.list_entries,
            allow_content: spec.allow_content,
        });
    }
    let mut packages = Vec::with_capacity(p.packages.len());
    for req in p.packages {
        let valid = !req.name.is_empty()
            && req.name.len() <= 256
            && req
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
        if !valid {
            return Err(format!("plan package name {:?} is malformed", req.name));
        }
        packages.push(PackageRequest {
            name: req.name,
            verify_files: req.verify_files,
        });
    }
    Ok(Plan {
        packages,
        generation: p.generation,
        heartbeat_interval_secs: p.heartbeat_interval_secs,
        requests: Requests::new(requests),
    })
}

pub fn package_to_proto(o: &PackageObservation) -> v1::PackageState {
    v1::PackageState {
        name: o.name.clone(),
        instances: o
            .instances
            .iter()
            .map(|i| v1::PackageInstance {
                manager: i.manager.to_owned(),
                arch: i.arch.clone(),
                version: i.version.clone(),
                state: i.state.clone(),
            })
            .collect(),
        error: o.error.clone().unwrap_or_default(),
        problems: o
            .problems
            .iter()
            .map(|p| v1::FileProblem {
                path: p.path.clone(),
                expected: p.expected.clone(),
                actual: p.actual.clone(),
            })
            .collect(),
    }
}

pub fn state_to_proto(o: &Observation) -> v1::PathState {
    v1::PathState {
        path: o.path.clone(),
        kind: kind_to_proto(o.kind) as i32,
        link_target: o.link_target.clone().unwrap_or_default(),
        resolved_kind: kind_to_proto(o.resolved_kind) as i32,
        mode: o.mode,
        uid: o.uid,
        gid: o.gid,
        owner: o.owner.clone().unwrap_or_default(),
        group: o.group.clone().unwrap_or_default(),
        size: o.size,
        sha256: o.sha256.clone().unwrap_or_default(),
        contains: o.contains.clone(),
        entries: o.entries.clone(),
        entries_total: o.entries_total,
        error: o.error.clone().unwrap_or_default(),
    }
}

fn kind_to_proto(k: Kind) -> v1::FileKind {
    match k {
        Kind::Absent => v1::FileKind::Absent,
        Kind::File => v1::FileKind::File,
        Kind::Directory => v1::FileKind::Directory,
        Kind::Symlink => v1::FileKind::Symlink,
        Kind::Other => v1::FileKind::Other,
        Kind::Unreadable => v1::FileKind::Unreadable,
    }
}

pub fn hello(
    host_id: &str,
    labels: &std::collections::BTreeMap<String, String>,
    facts: &Facts,
) -> v1::Hello {
    v1::Hello {
        host_id: host_id.to_owned(),
        hostname: facts.hostname.clone(),
        labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        facts: Some(v1::Facts {
            os_name: facts.os_name.clone(),
            os_version: facts.os_version.clone(),
            kernel_version: facts.kernel_version.clone(),
            arch: facts.arch.clone(),
            cpus: facts.cpus,
            memory_bytes: facts.memory_bytes,
            os_id: facts.os_id.clone(),
        }),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: plumb_proto::PROTOCOL_VERSION,
    }
}
