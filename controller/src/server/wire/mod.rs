//! Conversions between plumb.v1 wire types and the controller's own types; the only place
//! that knows both. Everything an agent sends is validated here before the fleet sees it;
//! `query.rs` converts what the query API answers, both ways (the CLI reads answers back into
//! model types there).

use std::collections::BTreeMap;

use plumb_proto::parts::Parts;
use plumb_proto::v1;

use crate::drift::{FileProblem, Installed, Kind, More, Observation, Observed, ObservedPackage};
use crate::fleet::{AgentPlan, Stated, ToAgent};
use crate::key::Key;
use crate::model::{Coverage, HostFacts, HostInfo};
use crate::version::Manager;

mod baseline;
mod evidence;
mod query;
pub(crate) use baseline::*;
pub(crate) use evidence::{evidence_from_proto, evidence_to_proto};
pub(crate) use query::*;

/// Limits on what an agent may claim; beyond them a message is malformed.
const MAX_ID: usize = 253;
const MAX_LABELS: usize = 64;
const MAX_TEXT: usize = 4096;
/// Files of one package that differ from its record; a real package has fewer files.
const MAX_PACKAGE_PROBLEMS: usize = 100_000;

/// Why a message from an agent was refused rather than trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error(
        "agent speaks protocol version {agent}, this controller {} to {}",
        plumb_proto::OLDEST_PROTOCOL_VERSION,
        plumb_proto::PROTOCOL_VERSION
    )]
    Protocol { agent: u32 },
    #[error("invalid host id {0:?}: use letters, digits, '.', '_', '-', ':'")]
    HostId(String),
    #[error("more than {MAX_LABELS} labels")]
    TooManyLabels,
    #[error("a label, the hostname, a fact or the agent's version is too long")]
    TooLong,
    #[error("{path}: invalid {what} {value}")]
    Kind {
        path: String,
        what: &'static str,
        value: i32,
    },
    #[error("{0}: malformed sha256")]
    Sha256(String),
    #[error(
        "{path}: {count} entry names, more than the {} an agent sends",
        plumb_proto::MAX_LISTED_ENTRIES
    )]
    TooManyEntries { path: String, count: usize },
    #[error("{path}: entries_total {total} is less than the {count} names sent")]
    EntriesTotal {
        path: String,
        total: u64,
        count: usize,
    },
    #[error("malformed package name")]
    PackageName,
    #[error("package {package}: unknown manager {manager:?}")]
    Manager { package: String, manager: String },
    #[error(
        "package {package}: {count} file problems, more than the {MAX_PACKAGE_PROBLEMS} accepted"
    )]
    TooManyProblems { package: String, count: usize },
    #[error("coverage lists {polled} polled paths and {errors} watch errors, more than a plan has")]
    CoverageTooLong { polled: usize, errors: usize },
    #[error("a coverage entry is too long")]
    CoverageEntry,
    #[error("{0}: who made the change is said at too great a length")]
    Who(String),
}

pub(crate) fn hello_from_proto(h: v1::Hello) -> Result<HostInfo, Malformed> {
    if !(plumb_proto::OLDEST_PROTOCOL_VERSION..=plumb_proto::PROTOCOL_VERSION)
        .contains(&h.protocol_version)
    {
        return Err(Malformed::Protocol {
            agent: h.protocol_version,
        });
    }
    let valid_id = !h.host_id.is_empty()
        && h.host_id.len() <= MAX_ID
        && h.host_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if !valid_id {
        return Err(Malformed::HostId(h.host_id));
    }
    if h.labels.len() > MAX_LABELS {
        return Err(Malformed::TooManyLabels);
    }
    let f = h.facts.unwrap_or_default();
    // Each is stored with the host and shown wherever it is: bounded like any other text.
    let texts = [
        &h.hostname,
        &h.agent_version,
        &f.os_id,
        &f.os_name,
        &f.os_version,
        &f.kernel_version,
        &f.arch,
    ];
    let labels = h.labels.iter().flat_map(|(k, v)| [k, v]);
    if texts.into_iter().chain(labels).any(|s| s.len() > MAX_TEXT) {
        return Err(Malformed::TooLong);
    }
    Ok(HostInfo {
        host_id: h.host_id,
        hostname: h.hostname,
        labels: h.labels.into_iter().collect::<BTreeMap<_, _>>(),
        facts: HostFacts {
            os_id: f.os_id,
            os_name: f.os_name,
            os_version: f.os_version,
            kernel_version: f.kernel_version,
            arch: f.arch,
            cpus: f.cpus,
            memory_bytes: f.memory_bytes,
        },
        agent_version: h.agent_version,
    })
}

pub(crate) fn state_from_proto(s: v1::PathState) -> Result<Stated, Malformed> {
    let kind = |k: i32, what: &'static str| match v1::FileKind::try_from(k) {
        Ok(v1::FileKind::Absent) => Ok(Kind::Absent),
        Ok(v1::FileKind::File) => Ok(Kind::File),
        Ok(v1::FileKind::Directory) => Ok(Kind::Directory),
        Ok(v1::FileKind::Symlink) => Ok(Kind::Symlink),
        Ok(v1::FileKind::Other) => Ok(Kind::Other),
        Ok(v1::FileKind::Unreadable) => Ok(Kind::Unreadable),
        _ => Err(Malformed::Kind {
            path: s.path.clone(),
            what,
            value: k,
        }),
    };
    let some = |s: String| (!s.is_empty()).then_some(s);
    let who = evidence::who_from_agent(s.who.map(|w| *w), &s.path)?;
    let sha256 = match s.sha256.as_str() {
        "" => None,
        hex => Some(
            crate::drift::Digest::from_hex(hex).ok_or_else(|| Malformed::Sha256(s.path.clone()))?,
        ),
    };
    // Bounded whatever the host holds: an agent lists at most this many entry names.
    if s.entries.len() > plumb_proto::MAX_LISTED_ENTRIES {
        return Err(Malformed::TooManyEntries {
            count: s.entries.len(),
            path: s.path,
        });
    }
    if s.entries_total < s.entries.len() as u64 {
        return Err(Malformed::EntriesTotal {
            total: s.entries_total,
            count: s.entries.len(),
            path: s.path,
        });
    }
    let observed = Observed {
        kind: kind(s.kind, "kind")?,
        resolved_kind: kind(s.resolved_kind, "resolved kind")?,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        owner: some(s.owner).map(|n| crate::drift::intern(&n)),
        group: some(s.group).map(|n| crate::drift::intern(&n)),
        sha256,
        more: More {
            link_target: some(s.link_target),
            contains: s.contains,
            entries: s.entries,
            entries_total: s.entries_total,
            error: some(s.error),
        }
        .boxed(),
    };
    Ok((Key::File(s.path.into()), Observation::File(observed), who))
}

pub(crate) fn package_from_proto(p: v1::PackageState) -> Result<Stated, Malformed> {
    if p.name.is_empty() || p.name.len() > 256 {
        return Err(Malformed::PackageName);
    }
    let who = evidence::who_from_agent(p.who.map(|w| *w), &p.name)?;
    let instances = p
        .instances
        .into_iter()
        .map(|i| {
            let manager = Manager::parse(&i.manager).ok_or_else(|| Malformed::Manager {
                package: p.name.clone(),
                manager: i.manager.clone(),
            })?;
            Ok(Installed {
                manager,
                arch: i.arch,
                version: i.version,
                state: i.state,
            })
        })
        .collect::<Result<Vec<_>, Malformed>>()?;
    if p.problems.len() > MAX_PACKAGE_PROBLEMS {
        return Err(Malformed::TooManyProblems {
            count: p.problems.len(),
            package: p.name,
        });
    }
    let error = (!p.error.is_empty()).then_some(p.error);
    let problems = p
        .problems
        .into_iter()
        .map(|f| FileProblem {
            path: f.path,
            expected: f.expected,
            actual: f.actual,
        })
        .collect();
    Ok((
        Key::Package(p.name.into()),
        Observation::Package(Box::new(ObservedPackage {
            instances,
            error,
            problems,
        })),
        who,
    ))
}

pub(crate) fn coverage_from_proto(c: v1::Coverage) -> Result<Coverage, Malformed> {
    // A plan has at most 100,000 paths; a longer list is made up, and it is kept per host.
    const MAX_LISTED: usize = 100_000;
    if c.polled.len() > MAX_LISTED || c.watch_errors.len() > MAX_LISTED {
        return Err(Malformed::CoverageTooLong {
            polled: c.polled.len(),
            errors: c.watch_errors.len(),
        });
    }
    if c.polled
        .iter()
        .chain(&c.watch_errors)
        .chain([&c.attribution])
        .any(|s| s.len() > MAX_TEXT)
    {
        return Err(Malformed::CoverageEntry);
    }
    Ok(Coverage {
        watches: c.watches,
        watch_limit: c.watch_limit,
        polled: c.polled,
        watch_errors: c.watch_errors,
        overflows: c.overflows,
        last_full_scan_ms: c.last_full_scan_ms,
        degraded_since_ms: None,
        attribution: c.attribution,
    })
}

/// The messages one `ToAgent` becomes, in order.
pub(crate) type Sent = std::iter::Chain<
    std::vec::IntoIter<v1::ControllerMessage>,
    std::iter::Once<v1::ControllerMessage>,
>;

/// What the controller sends an agent, as sent: one message, or a plan in parts of about
/// `REPORT_BYTES` each where the agent takes them (`plan_parts`: protocol 3 and later).
pub(crate) fn to_agent_proto(m: ToAgent, plan_parts: bool) -> Sent {
    use v1::controller_message::Msg;
    let msg = match m {
        ToAgent::Plan(plan) => {
            let budget = if plan_parts {
                plumb_proto::REPORT_BYTES
            } else {
                usize::MAX
            };
            let (parts, last) = plan_to_proto(*plan, budget);
            let sent = |p| v1::ControllerMessage {
                msg: Some(Msg::Plan(p)),
            };
            let parts: Vec<_> = parts.into_iter().map(sent).collect();
            return parts.into_iter().chain(std::iter::once(sent(last)));
        }
        ToAgent::Ack { seq } => Msg::Ack(v1::Ack { seq }),
        ToAgent::Heartbeat { at_ms } => Msg::Heartbeat(v1::Heartbeat { sent_at_ms: at_ms }),
        ToAgent::ContentRequest {
            id,
            path,
            max_bytes,
        } => Msg::ContentRequest(v1::ContentRequest {
            id,
            path: path.into(),
            max_bytes,
        }),
        ToAgent::GoAway { reason } => Msg::GoAway(v1::GoAway { reason }),
    };
    Vec::new()
        .into_iter()
        .chain(std::iter::once(v1::ControllerMessage { msg: Some(msg) }))
}

/// A plan as parts of at most `budget` bytes of paths and packages each (one larger than that
/// goes alone), paths first: those that say `more`, and the last.
fn plan_to_proto(plan: AgentPlan, budget: usize) -> (Vec<v1::Plan>, v1::Plan) {
    let AgentPlan {
        generation,
        paths,
        packages,
        heartbeat_interval,
    } = plan;
    let part = || v1::Plan {
        generation,
        heartbeat_interval_secs: heartbeat_interval.as_secs().max(1) as u32,
        paths: Vec::new(),
        packages: Vec::new(),
        more: true,
    };
    let mut parts = Vec::new();
    let mut current = part();
    let mut sizes = Parts::new(budget);
    for p in paths {
        let spec = v1::PathSpec {
            path: p.path,
            hash: p.hash,
            contains: p
                .contains
                .into_iter()
                .map(|(pattern, regex)| v1::LineMatcher { pattern, regex })
                .collect(),
            list_entries: p.list_entries,
            allow_content: p.allow_content,
            sensitive: p.sensitive,
            ignore: p.ignore,
            expand: p.expand,
        };
        if sizes.starts_anew(&spec) {
            parts.push(std::mem::replace(&mut current, part()));
        }
        current.paths.push(spec);
    }
    for (name, verify_files) in packages {
        let request = v1::PackageRequest { name, verify_files };
        if sizes.starts_anew(&request) {
            parts.push(std::mem::replace(&mut current, part()));
        }
        current.packages.push(request);
    }
    current.more = false;
    (parts, current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> v1::Hello {
        v1::Hello {
            host_id: "web-1".into(),
            hostname: "web-1.example".into(),
            labels: [("env".to_string(), "prod".to_string())].into(),
            facts: Some(v1::Facts {
                os_id: "debian".into(),
                os_name: "Debian GNU/Linux".into(),
                ..Default::default()
            }),
            agent_version: "0.1.0".into(),
            protocol_version: plumb_proto::PROTOCOL_VERSION,
        }
    }

    /// Sets one of a hello's texts.
    type SetText = fn(&mut v1::Hello, String);

    fn facts(h: &mut v1::Hello) -> &mut v1::Facts {
        h.facts.get_or_insert_with(Default::default)
    }

    /// A hello's every text is bounded, each at the same length: at the bound it is taken,
    /// one byte over it is refused, whichever text it is.
    #[test]
    fn a_hellos_labels_and_texts_are_bounded() {
        let info = hello_from_proto(hello()).expect("a plain hello is taken");
        assert_eq!(info.facts.os_id, "debian");
        assert_eq!(info.labels.get("env").map(String::as_str), Some("prod"));

        let texts: [(&str, SetText); 9] = [
            ("hostname", |h, t| h.hostname = t),
            ("agent_version", |h, t| h.agent_version = t),
            ("os_id", |h, t| facts(h).os_id = t),
            ("os_name", |h, t| facts(h).os_name = t),
            ("os_version", |h, t| facts(h).os_version = t),
            ("kernel_version", |h, t| facts(h).kernel_version = t),
            ("arch", |h, t| facts(h).arch = t),
            ("a label's name", |h, t| {
                h.labels.insert(t, "v".into());
            }),
            ("a label's value", |h, t| {
                h.labels.insert("k".into(), t);
            }),
        ];
        for (what, set) in texts {
            let mut at = hello();
            set(&mut at, "x".repeat(MAX_TEXT));
            assert!(hello_from_proto(at).is_ok(), "{what} at the bound is taken");
            let mut over = hello();
            set(&mut over, "x".repeat(MAX_TEXT + 1));
            assert!(
                matches!(hello_from_proto(over), Err(Malformed::TooLong)),
                "{what} one byte over the bound is refused"
            );
        }

        let mut many = hello();
        many.labels = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(matches!(
            hello_from_proto(many),
            Err(Malformed::TooManyLabels)
        ));
        let mut enough = hello();
        enough.labels = (0..MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert_eq!(
            hello_from_proto(enough).expect("taken").labels.len(),
            MAX_LABELS
        );
    }
}
