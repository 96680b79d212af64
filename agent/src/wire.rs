//! Conversions between plumb.v1 wire types and the agent's own types; the only place that
//! knows both. The session speaks [`Outgoing`] and [`Incoming`]; the stream converts at its edge.

use std::collections::BTreeMap;

use plumb_proto::names::NotCanonical;
use plumb_proto::v1::{self, agent_message::Msg as Out, controller_message::Msg as In};

use crate::attribute::Who;
use crate::collect::facts::Facts;
use crate::collect::files::{Kind, Matcher, Observation, Request, Requests};
use crate::collect::packages::{PackageObservation, PackageRequest};
use crate::message::{Coverage, Hello, Incoming, Outgoing, Plan, Report};

/// Paths per plan the agent accepts; a plan beyond this is refused as malformed.
const MAX_PLAN_PATHS: usize = 100_000;

/// Why a message from the controller was refused rather than trusted.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    #[error("plan has {0} paths, more than the {MAX_PLAN_PATHS} accepted")]
    TooManyPaths(usize),
    #[error("plan has {0} packages, more than the {MAX_PLAN_PATHS} accepted")]
    TooManyPackages(usize),
    #[error("plan path {0:?} is not a normalized absolute path")]
    NotAbsolute(String),
    #[error("plan path {path:?} is not a canonical name: {source}")]
    NotCanonical { path: String, source: NotCanonical },
    #[error("plan pattern for {path} does not compile: {source}")]
    Pattern { path: String, source: regex::Error },
    #[error("plan package name {0:?} is malformed")]
    PackageName(String),
    #[error("plan ignore pattern {pattern:?} for {path} is malformed")]
    Ignore { path: String, pattern: String },
    #[error("plan glob {0:?} is malformed, or one too many")]
    Glob(String),
}

/// Globs a plan may ask the agent to expand, at most.
const MAX_GLOBS: usize = 256;

/// Ignore patterns per listed directory, and the length of each, at most.
const MAX_IGNORES: usize = 256;
const MAX_IGNORE_LEN: usize = 1024;

/// The controller's messages as the session takes them: a plan's parts kept until the last is
/// in (protocol 3).
#[derive(Debug, Default)]
pub struct Inbound {
    /// The parts of a plan so far, as one.
    plan: Option<v1::Plan>,
}

impl Inbound {
    /// `m` in the agent's terms; `None` while a plan's parts are still coming.
    pub fn read(&mut self, m: v1::ControllerMessage) -> Result<Option<Incoming>, Malformed> {
        match m.msg {
            Some(In::Plan(part)) => match self.plan_part(part)? {
                Some(plan) => Ok(Some(Incoming::Plan(plan_from_proto(plan)?))),
                None => Ok(None),
            },
            msg => incoming_from_proto(v1::ControllerMessage { msg }).map(Some),
        }
    }

    /// The whole plan once its last part is in. A part of another generation than those kept
    /// starts anew: the controller planned again, and sends the new plan whole.
    fn plan_part(&mut self, part: v1::Plan) -> Result<Option<v1::Plan>, Malformed> {
        let plan = match self.plan.take() {
            Some(mut kept) if kept.generation == part.generation => {
                kept.paths.extend(part.paths);
                kept.packages.extend(part.packages);
                kept.heartbeat_interval_secs = part.heartbeat_interval_secs;
                kept.more = part.more;
                kept
            }
            _ => part,
        };
        // Bounded as a whole plan is, before it is all in.
        if plan.paths.len() > MAX_PLAN_PATHS {
            return Err(Malformed::TooManyPaths(plan.paths.len()));
        }
        if plan.packages.len() > MAX_PLAN_PATHS {
            return Err(Malformed::TooManyPackages(plan.packages.len()));
        }
        if plan.more {
            self.plan = Some(plan);
            return Ok(None);
        }
        Ok(Some(plan))
    }
}

/// A message from the controller in the agent's terms, a plan taken whole. A message this
/// agent does not know (from a newer controller) reads as a heartbeat: it proves the
/// controller alive.
pub fn incoming_from_proto(m: v1::ControllerMessage) -> Result<Incoming, Malformed> {
    Ok(match m.msg {
        Some(In::Plan(plan)) => Incoming::Plan(plan_from_proto(plan)?),
        Some(In::Ack(ack)) => Incoming::Ack { seq: ack.seq },
        Some(In::ContentRequest(req)) => Incoming::ContentRequest {
            id: req.id,
            path: req.path,
            max_bytes: req.max_bytes,
        },
        Some(In::GoAway(g)) => Incoming::GoAway(g.reason),
        Some(In::Heartbeat(_)) | None => Incoming::Heartbeat,
    })
}

/// A message to the controller, as sent. Takes the message by value: the observations move
/// into the wire types instead of being copied.
pub fn outgoing_to_proto(m: Outgoing) -> v1::AgentMessage {
    let msg = match m {
        Outgoing::Hello(h) => Out::Hello(hello_to_proto(h)),
        Outgoing::Snapshot { report, more } => {
            let (plan_generation, seq, states, packages) = report_to_proto(report);
            Out::Snapshot(v1::Snapshot {
                plan_generation,
                seq,
                states,
                packages,
                more,
            })
        }
        Outgoing::Delta(report) => {
            let (plan_generation, seq, states, packages) = report_to_proto(report);
            Out::Delta(v1::Delta {
                plan_generation,
                seq,
                states,
                packages,
            })
        }
        Outgoing::Coverage(c) => Out::Coverage(coverage_to_proto(c)),
        Outgoing::Content { id, reply } => {
            let (content, refused) = match reply {
                Ok(bytes) => (bytes, String::new()),
                Err(why) => (Vec::new(), why),
            };
            Out::ContentReply(v1::ContentReply {
                id,
                content,
                refused,
            })
        }
        Outgoing::Heartbeat { sent_at_ms } => Out::Heartbeat(v1::Heartbeat { sent_at_ms }),
    };
    v1::AgentMessage { msg: Some(msg) }
}

/// `r` as consecutive reports of at most `budget` bytes of states each, as sent: its files in
/// order, then its packages, each with who changed it. A state larger than `budget` goes alone;
/// there is always at least one report (an empty snapshot is still a snapshot). Each keeps
/// `r`'s generation and seq: the caller numbers them.
///
/// Small messages keep small what both ends hold per stream: tonic's decoding buffer grows to
/// the largest message and h2's read buffer to the largest frame, and neither gives the room
/// back. A controller holds one of each per agent.
pub fn split(r: Report, budget: usize) -> Vec<Report> {
    let Report {
        generation,
        seq,
        files,
        packages,
        mut who,
    } = r;
    let empty = || Report {
        generation,
        seq,
        files: Vec::new(),
        packages: Vec::new(),
        who: BTreeMap::new(),
    };
    let mut parts = Vec::new();
    let mut part = empty();
    let mut used = 0;
    // Room for one more state of `len` bytes, or a new part first.
    let mut room = |part: &mut Report, len: usize| {
        if used > 0 && used + len > budget {
            parts.push(std::mem::replace(part, empty()));
            used = 0;
        }
        used += len;
    };
    for o in files {
        let w = who.remove_entry(&o.path);
        let len = framed_len(&v1::PathState {
            who: w.as_ref().map(|(_, w)| Box::new(who_to_proto(w.clone()))),
            ..state_to_proto(o.clone())
        });
        room(&mut part, len);
        part.who.extend(w);
        part.files.push(o);
    }
    for p in packages {
        let w = who.remove_entry(&p.name);
        let len = framed_len(&v1::PackageState {
            who: w.as_ref().map(|(_, w)| Box::new(who_to_proto(w.clone()))),
            ..package_to_proto(&p)
        });
        room(&mut part, len);
        part.who.extend(w);
        part.packages.push(p);
    }
    parts.push(part);
    parts
}

/// What `m` takes as a repeated field of its message: tag, length and itself.
fn framed_len(m: &impl prost::Message) -> usize {
    let len = m.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

fn report_to_proto(r: Report) -> (u64, u64, Vec<v1::PathState>, Vec<v1::PackageState>) {
    let mut who = r.who;
    let mut with_who = |name: &str| who.remove(name).map(|w| Box::new(who_to_proto(w)));
    let files = r
        .files
        .into_iter()
        .map(|o| {
            let who = with_who(&o.path);
            v1::PathState {
                who,
                ..state_to_proto(o)
            }
        })
        .collect();
    let packages = r
        .packages
        .iter()
        .map(|p| v1::PackageState {
            who: with_who(&p.name),
            ..package_to_proto(p)
        })
        .collect();
    (r.generation, r.seq, files, packages)
}

fn who_to_proto(w: Who) -> v1::Who {
    let who = match w {
        Who::Process(p) => v1::who::Who::Process(v1::ProcessIdentity {
            origin: p.origin,
            action: p.action,
            pid: p.pid,
            name: p.name,
            exe: p.exe,
            uid: p.uid,
            user: p.user,
            login_uid: p.login_uid,
            login_user: p.login_user,
            session: p.session,
            tty: p.tty,
            unit: p.unit,
            container: p.container,
            parents: p.parents,
            command_line: p.command_line,
        }),
        Who::Package(t) => v1::who::Who::Package(v1::PackageTransaction {
            manager: t.manager,
            started: t.started,
            user: t.user,
            uid: t.uid,
            command: t.command,
            action: t.action,
        }),
        Who::Unknown(why) => v1::who::Who::Unknown(why),
    };
    v1::Who { who: Some(who) }
}

fn coverage_to_proto(c: Coverage) -> v1::Coverage {
    v1::Coverage {
        watches: saturate(c.watches),
        watch_limit: c.watch_limit.map_or(0, saturate),
        polled: c.polled,
        watch_errors: c.watch_errors,
        overflows: c.overflows,
        last_full_scan_ms: c.last_full_scan_ms,
        poll_interval_secs: c.poll_interval.as_secs().try_into().unwrap_or(u32::MAX),
        attribution: c.attribution,
    }
}

fn saturate(n: usize) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

pub fn plan_from_proto(p: v1::Plan) -> Result<Plan, Malformed> {
    if p.paths.len() > MAX_PLAN_PATHS {
        return Err(Malformed::TooManyPaths(p.paths.len()));
    }
    let mut requests = Vec::with_capacity(p.paths.len());
    let mut globs = Vec::new();
    for spec in p.paths {
        if spec.expand && (spec.path.contains('[') || globs.len() >= MAX_GLOBS) {
            return Err(Malformed::Glob(spec.path));
        }
        if !spec.path.starts_with('/') || spec.path.split('/').any(|c| c == "..") {
            return Err(Malformed::NotAbsolute(spec.path));
        }
        if let Err(source) = plumb_proto::names::unescape(&spec.path) {
            return Err(Malformed::NotCanonical {
                path: spec.path,
                source,
            });
        }
        if let Some(bad) = spec.ignore.iter().enumerate().find(|(i, g)| {
            *i >= MAX_IGNORES
                || g.is_empty()
                || g.len() > MAX_IGNORE_LEN
                || (g.contains('/') && !g.starts_with('/') && !g.starts_with("**/"))
        }) {
            return Err(Malformed::Ignore {
                pattern: bad.1.clone(),
                path: spec.path,
            });
        }
        let contains = match spec
            .contains
            .iter()
            .map(|m| Matcher::new(&m.pattern, m.regex))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(contains) => contains,
            Err(source) => {
                return Err(Malformed::Pattern {
                    path: spec.path,
                    source,
                });
            }
        };
        let expand = spec.expand;
        let request = Request {
            path: spec.path.into_boxed_str(),
            hash: spec.hash,
            contains,
            list_entries: spec.list_entries,
            allow_content: spec.allow_content,
            sensitive: spec.sensitive,
            ignore: crate::collect::files::Ignore::new(
                spec.ignore
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
            ),
        };
        if expand {
            globs.push(request);
        } else {
            requests.push(request);
        }
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
            return Err(Malformed::PackageName(req.name));
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
        globs,
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
        who: None,
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

pub fn state_to_proto(o: Observation) -> v1::PathState {
    v1::PathState {
        path: o.path,
        kind: kind_to_proto(o.kind) as i32,
        link_target: o.link_target.unwrap_or_default(),
        resolved_kind: kind_to_proto(o.resolved_kind) as i32,
        mode: o.mode,
        uid: o.uid,
        gid: o.gid,
        owner: o.owner.unwrap_or_default(),
        group: o.group.unwrap_or_default(),
        size: o.size,
        sha256: o.sha256.unwrap_or_default(),
        contains: o.contains,
        entries: o.entries,
        entries_total: o.entries_total,
        error: o.error.unwrap_or_default(),
        who: None,
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

fn hello_to_proto(h: Hello) -> v1::Hello {
    let Facts {
        hostname,
        os_id,
        os_name,
        os_version,
        kernel_version,
        arch,
        cpus,
        memory_bytes,
    } = h.facts;
    v1::Hello {
        host_id: h.host_id,
        hostname,
        labels: h.labels.into_iter().collect(),
        facts: Some(v1::Facts {
            os_name,
            os_version,
            kernel_version,
            arch,
            cpus,
            memory_bytes,
            os_id,
        }),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: plumb_proto::PROTOCOL_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn plan_of(paths: &[&str], packages: &[&str]) -> v1::Plan {
        v1::Plan {
            generation: 3,
            paths: paths
                .iter()
                .map(|p| v1::PathSpec {
                    path: (*p).into(),
                    hash: true,
                    ..Default::default()
                })
                .collect(),
            packages: packages
                .iter()
                .map(|n| v1::PackageRequest {
                    name: (*n).into(),
                    verify_files: false,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_plan_is_taken_sorted_and_once_per_path() {
        let plan = plan_from_proto(plan_of(&["/etc/b", "/etc/a", "/etc/b"], &["nginx"]))
            .expect("a good plan");
        assert_eq!(plan.generation, 3);
        assert_eq!(plan.requests.len(), 2);
        assert_eq!(plan.requests.index("/etc/a"), Some(0));
        assert_eq!(plan.packages[0].name, "nginx");
    }

    #[test]
    fn malformed_plans_are_refused_with_the_reason() {
        let refused = |paths: &[&str], packages: &[&str]| {
            plan_from_proto(plan_of(paths, packages))
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(&["etc/passwd"], &[]),
            "plan path \"etc/passwd\" is not a normalized absolute path"
        );
        assert_eq!(
            refused(&["/etc/../root"], &[]),
            "plan path \"/etc/../root\" is not a normalized absolute path"
        );
        assert!(
            refused(&["/etc/a\\"], &[])
                .starts_with("plan path \"/etc/a\\\\\" is not a canonical name: "),
            "{}",
            refused(&["/etc/a\\"], &[])
        );
        assert_eq!(
            refused(&[], &["nginx; rm -rf /"]),
            "plan package name \"nginx; rm -rf /\" is malformed"
        );
        let mut bad_regex = plan_of(&["/etc/a"], &[]);
        bad_regex.paths[0].contains.push(v1::LineMatcher {
            pattern: "(".into(),
            regex: true,
        });
        let err = plan_from_proto(bad_regex).expect_err("refused");
        assert!(matches!(err, Malformed::Pattern { .. }), "{err}");
        for pattern in ["etc/*.swp", ""] {
            let mut bad_ignore = plan_of(&["/etc/a"], &[]);
            bad_ignore.paths[0].list_entries = true;
            bad_ignore.paths[0].ignore.push(pattern.into());
            let err = plan_from_proto(bad_ignore).expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!("plan ignore pattern {pattern:?} for /etc/a is malformed")
            );
        }
        // A glob to expand is kept apart from the paths; one this agent cannot read is refused.
        let mut globbed = plan_of(&["/etc/a", "/etc/nginx/**"], &[]);
        globbed.paths[1].expand = true;
        let plan = plan_from_proto(globbed.clone()).expect("a plan");
        assert_eq!(plan.requests.len(), 1);
        assert_eq!(
            plan.globs.iter().map(|g| &*g.path).collect::<Vec<_>>(),
            ["/etc/nginx/**"]
        );
        globbed.paths[1].path = "/etc/[ab].conf".into();
        assert_eq!(
            plan_from_proto(globbed).expect_err("refused").to_string(),
            "plan glob \"/etc/[ab].conf\" is malformed, or one too many"
        );
        let many: Vec<String> = (0..=MAX_PLAN_PATHS).map(|i| format!("/p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            refused(&many, &[]),
            "plan has 100001 paths, more than the 100000 accepted"
        );
    }

    #[test]
    fn outgoing_messages_carry_every_field_onto_the_wire() {
        let coverage = Coverage {
            watches: 12,
            watch_limit: None,
            polled: vec!["/etc/x".into()],
            watch_errors: vec!["/etc: too many".into()],
            overflows: 2,
            last_full_scan_ms: 99,
            poll_interval: Duration::from_secs(2),
            attribution: "off: not asked for".into(),
        };
        let Some(Out::Coverage(c)) = outgoing_to_proto(Outgoing::Coverage(coverage)).msg else {
            panic!("not a coverage");
        };
        assert_eq!(
            (c.watches, c.watch_limit, c.overflows, c.last_full_scan_ms),
            (12, 0, 2, 99)
        );
        assert_eq!((c.polled.len(), c.watch_errors.len()), (1, 1));
        assert_eq!(c.poll_interval_secs, 2);
        assert_eq!(c.attribution, "off: not asked for");

        let refused = Outgoing::Content {
            id: 5,
            reply: Err("denied".into()),
        };
        let Some(Out::ContentReply(r)) = outgoing_to_proto(refused).msg else {
            panic!("not a content reply");
        };
        assert_eq!(
            (r.id, r.content.is_empty(), r.refused.as_str()),
            (5, true, "denied")
        );

        let package = |name: &str| PackageObservation {
            name: name.into(),
            instances: Vec::new(),
            error: None,
            problems: Vec::new(),
        };
        let writer = crate::attribute::Identity {
            origin: "manual".into(),
            pid: 42,
            uid: Some(0),
            login_uid: Some(1000),
            login_user: "alice".into(),
            ..Default::default()
        };
        let report = Report {
            generation: 4,
            seq: 9,
            files: Vec::new(),
            packages: vec![package("nginx"), package("curl")],
            who: [("nginx".to_owned(), Who::Process(writer.clone()))].into(),
        };
        let Some(Out::Snapshot(s)) =
            outgoing_to_proto(Outgoing::Snapshot { report, more: true }).msg
        else {
            panic!("not a snapshot");
        };
        assert_eq!((s.plan_generation, s.seq, s.more), (4, 9, true));
        let Some(v1::who::Who::Process(p)) = s.packages[0].who.clone().and_then(|w| w.who) else {
            panic!("nginx carries who changed it: {:?}", s.packages[0]);
        };
        assert_eq!(
            (p.pid, p.uid, p.login_uid, p.login_user.as_str()),
            (42, Some(0), Some(1000), "alice")
        );
        assert_eq!(s.packages[1].who, None, "curl has none");
    }

    #[test]
    fn a_message_this_agent_does_not_know_reads_as_a_heartbeat() {
        let m = incoming_from_proto(v1::ControllerMessage { msg: None }).expect("taken");
        assert!(matches!(m, Incoming::Heartbeat));
        let m = incoming_from_proto(v1::ControllerMessage {
            msg: Some(In::Ack(v1::Ack { seq: 41 })),
        })
        .expect("taken");
        assert!(matches!(m, Incoming::Ack { seq: 41 }));
    }

    fn file(path: &str) -> Observation {
        Observation {
            path: path.into(),
            kind: Kind::File,
            link_target: None,
            resolved_kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            owner: Some("root".into()),
            group: Some("root".into()),
            size: 10,
            sha256: Some("ab".repeat(32)),
            contains: Vec::new(),
            entries: Vec::new(),
            entries_total: 0,
            error: None,
        }
    }

    fn states_sent(r: &Report) -> usize {
        let (_, _, states, packages) = report_to_proto(r.clone());
        states.iter().map(framed_len).sum::<usize>()
            + packages.iter().map(framed_len).sum::<usize>()
    }

    #[test]
    fn a_report_splits_into_bounded_parts_in_order_with_who_beside_its_item() {
        let files: Vec<Observation> = (0..100).map(|i| file(&format!("/etc/f{i:03}"))).collect();
        let mut huge = file("/etc/huge");
        huge.entries = (0..100)
            .map(|i| format!("entry-with-a-long-name-{i:05}"))
            .collect();
        let mut all = files.clone();
        all.insert(50, huge);
        let package = |name: &str| PackageObservation {
            name: name.into(),
            instances: Vec::new(),
            error: None,
            problems: Vec::new(),
        };
        let writer = Who::Process(crate::attribute::Identity {
            origin: "manual".into(),
            pid: 7,
            ..Default::default()
        });
        let report = Report {
            generation: 3,
            seq: 11,
            files: all.clone(),
            packages: vec![package("curl"), package("nginx")],
            who: [
                ("/etc/f099".to_owned(), writer.clone()),
                ("nginx".to_owned(), writer.clone()),
            ]
            .into(),
        };
        let budget = 1024;
        let whole = states_sent(&report);
        let parts = split(report, budget);

        assert!(
            parts.len() >= whole / budget,
            "{} parts for {whole} bytes",
            parts.len()
        );
        for p in &parts {
            assert_eq!((p.generation, p.seq), (3, 11));
            let alone = p.files.len() == 1 && p.files[0].path == "/etc/huge";
            assert!(
                states_sent(p) <= budget || alone,
                "{} bytes: {:?}",
                states_sent(p),
                p.files.iter().map(|o| &o.path).collect::<Vec<_>>()
            );
        }
        assert!(
            parts
                .iter()
                .any(|p| p.files.len() == 1 && p.files[0].path == "/etc/huge"),
            "a state over the budget goes alone"
        );
        let files: Vec<&Observation> = parts.iter().flat_map(|p| &p.files).collect();
        assert_eq!(
            files,
            all.iter().collect::<Vec<_>>(),
            "every file once, in order"
        );
        let names: Vec<&str> = parts
            .iter()
            .flat_map(|p| &p.packages)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["curl", "nginx"]);
        for p in &parts {
            for name in p.who.keys() {
                assert!(
                    p.files.iter().any(|o| &o.path == name)
                        || p.packages.iter().any(|k| &k.name == name),
                    "{name}'s writer travels with it"
                );
            }
        }
        assert_eq!(parts.iter().map(|p| p.who.len()).sum::<usize>(), 2);

        let empty = Report {
            generation: 3,
            seq: 12,
            files: Vec::new(),
            packages: Vec::new(),
            who: BTreeMap::new(),
        };
        assert_eq!(
            split(empty.clone(), budget),
            vec![empty],
            "an empty report is still sent"
        );
    }

    fn plan_part(generation: u64, paths: &[&str], more: bool) -> v1::ControllerMessage {
        v1::ControllerMessage {
            msg: Some(In::Plan(v1::Plan {
                generation,
                heartbeat_interval_secs: 5,
                paths: paths
                    .iter()
                    .map(|p| v1::PathSpec {
                        path: (*p).into(),
                        hash: true,
                        ..Default::default()
                    })
                    .collect(),
                packages: Vec::new(),
                more,
            })),
        }
    }

    fn planned(m: Option<Incoming>) -> Vec<String> {
        match m {
            Some(Incoming::Plan(p)) => p.requests.iter().map(|r| r.path.to_string()).collect(),
            other => panic!("expected a whole plan, got {other:?}"),
        }
    }

    #[test]
    fn a_plan_in_parts_is_taken_once_its_last_part_is_in() {
        let mut edge = Inbound::default();
        let read = |edge: &mut Inbound, m| edge.read(m).expect("taken");
        assert!(read(&mut edge, plan_part(4, &["/etc/a", "/etc/b"], true)).is_none());
        // Other messages pass between parts.
        let ack = v1::ControllerMessage {
            msg: Some(In::Ack(v1::Ack { seq: 2 })),
        };
        assert!(matches!(
            read(&mut edge, ack),
            Some(Incoming::Ack { seq: 2 })
        ));
        assert!(read(&mut edge, plan_part(4, &["/etc/c"], true)).is_none());
        let whole = read(&mut edge, plan_part(4, &["/etc/d"], false));
        assert_eq!(planned(whole), ["/etc/a", "/etc/b", "/etc/c", "/etc/d"]);

        // A part of another generation starts anew: the first plan's parts are dropped.
        assert!(read(&mut edge, plan_part(5, &["/etc/old"], true)).is_none());
        let whole = read(&mut edge, plan_part(6, &["/etc/new"], false));
        assert_eq!(planned(whole), ["/etc/new"]);

        // A plan whole (an older controller's, or a small one) is one message.
        let whole = read(&mut edge, plan_part(7, &["/etc/x"], false));
        assert_eq!(planned(whole), ["/etc/x"]);
    }

    #[test]
    fn a_plan_in_parts_is_bounded_before_it_is_all_in() {
        let mut edge = Inbound::default();
        let many: Vec<String> = (0..=MAX_PLAN_PATHS / 2).map(|i| format!("/p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(
            edge.read(plan_part(1, &many, true))
                .expect("taken")
                .is_none()
        );
        let e = edge.read(plan_part(1, &many, true)).expect_err("refused");
        assert!(
            matches!(e, Malformed::TooManyPaths(n) if n > MAX_PLAN_PATHS),
            "{e}"
        );
    }
}
