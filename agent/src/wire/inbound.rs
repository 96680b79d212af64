//! The controller's messages in the agent's terms: each checked, a plan's parts kept until the
//! last is in, a malformed message refused with the reason rather than trusted.

use plumb_proto::MAX_PLAN_ENTRIES;
use plumb_proto::names::NotCanonical;
use plumb_proto::v1::{self, controller_message::Msg as In};

use crate::collect::files::{Matcher, Rare, Request, RequestsBuilder};
use crate::collect::packages::PackageRequest;
use crate::message::{Incoming, Plan};

/// Why a message from the controller was refused rather than trusted.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    #[error("plan has {0} paths, more than the {MAX_PLAN_ENTRIES} accepted")]
    TooManyPaths(usize),
    #[error("plan has {0} packages, more than the {MAX_PLAN_ENTRIES} accepted")]
    TooManyPackages(usize),
    #[error("plan's paths are more than 4 GiB of text (at a path of {0} bytes)")]
    TooLong(usize),
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

/// The controller's messages as the session takes them: a plan's parts taken as they come
/// (protocol 3), and kept until the last is in.
#[derive(Debug, Default)]
pub struct Inbound {
    /// The plan so far.
    plan: Option<Partial>,
}

impl Inbound {
    /// `m` in the agent's terms; `None` while a plan's parts are still coming. A message this
    /// agent does not know (from a newer controller) reads as a heartbeat: it proves the
    /// controller alive.
    pub fn read(&mut self, m: v1::ControllerMessage) -> Result<Option<Incoming>, Malformed> {
        Ok(Some(match m.msg {
            Some(In::Plan(part)) => return self.plan_part(part),
            Some(In::Ack(ack)) => Incoming::Ack { seq: ack.seq },
            Some(In::ContentRequest(req)) => Incoming::ContentRequest {
                id: req.id,
                path: req.path,
                max_bytes: req.max_bytes,
            },
            Some(In::GoAway(g)) => Incoming::GoAway(g.reason),
            Some(In::Heartbeat(_)) | None => Incoming::Heartbeat,
        }))
    }

    /// The whole plan once its last part is in. A part of another generation than those kept
    /// starts anew: the controller planned again, and sends the new plan whole.
    fn plan_part(&mut self, part: v1::Plan) -> Result<Option<Incoming>, Malformed> {
        let mut plan = match self.plan.take() {
            Some(kept) if kept.generation == part.generation => kept,
            _ => Partial::new(part.generation),
        };
        let more = part.more;
        plan.take(part)?;
        if more {
            self.plan = Some(plan);
            return Ok(None);
        }
        Ok(Some(Incoming::Plan(plan.finish())))
    }
}

/// A plan's parts so far, each checked and in the agent's terms as it came: the wire's
/// messages are not kept (at 100,000 paths they were 10 MB more at the agent's peak).
#[derive(Debug)]
struct Partial {
    generation: u64,
    heartbeat_interval_secs: u32,
    requests: RequestsBuilder,
    globs: Vec<Request>,
    packages: Vec<PackageRequest>,
}

impl Partial {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            heartbeat_interval_secs: 0,
            requests: RequestsBuilder::new(),
            globs: Vec::new(),
            packages: Vec::new(),
        }
    }

    /// Checks and takes one part, the plan bounded as a whole before it is all in.
    fn take(&mut self, part: v1::Plan) -> Result<(), Malformed> {
        let paths = self.requests.len() + self.globs.len() + part.paths.len();
        if paths > MAX_PLAN_ENTRIES {
            return Err(Malformed::TooManyPaths(paths));
        }
        let packages = self.packages.len() + part.packages.len();
        if packages > MAX_PLAN_ENTRIES {
            return Err(Malformed::TooManyPackages(packages));
        }
        self.heartbeat_interval_secs = part.heartbeat_interval_secs;
        for spec in part.paths {
            let expand = spec.expand;
            if expand && (spec.path.contains('[') || self.globs.len() >= MAX_GLOBS) {
                return Err(Malformed::Glob(spec.path));
            }
            if !expand && !self.requests.fits(&spec.path) {
                return Err(Malformed::TooLong(spec.path.len()));
            }
            let request = request_from_proto(spec)?;
            if expand {
                self.globs.push(request);
            } else {
                self.requests.push(request);
            }
        }
        for req in part.packages {
            self.packages.push(package_from_proto(req)?);
        }
        Ok(())
    }

    fn finish(self) -> Plan {
        Plan {
            packages: self.packages,
            generation: self.generation,
            heartbeat_interval_secs: self.heartbeat_interval_secs,
            requests: self.requests.build(),
            globs: self.globs,
        }
    }
}

fn request_from_proto(spec: v1::PathSpec) -> Result<Request, Malformed> {
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
        .collect::<Result<Rare<_>, _>>()
    {
        Ok(contains) => contains,
        Err(source) => {
            return Err(Malformed::Pattern {
                path: spec.path,
                source,
            });
        }
    };
    Ok(Request {
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
    })
}

fn package_from_proto(req: v1::PackageRequest) -> Result<PackageRequest, Malformed> {
    let valid = !req.name.is_empty()
        && req.name.len() <= 256
        && req
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if !valid {
        return Err(Malformed::PackageName(req.name));
    }
    Ok(PackageRequest {
        name: req.name,
        verify_files: req.verify_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan sent in one message, in the agent's terms.
    fn plan_from_proto(p: v1::Plan) -> Result<Plan, Malformed> {
        let mut plan = Partial::new(p.generation);
        plan.take(p)?;
        Ok(plan.finish())
    }

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
        let many: Vec<String> = (0..=MAX_PLAN_ENTRIES).map(|i| format!("/p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            refused(&many, &[]),
            "plan has 1000001 paths, more than the 1000000 accepted"
        );
    }

    #[test]
    fn a_message_this_agent_does_not_know_reads_as_a_heartbeat() {
        let mut inbound = Inbound::default();
        let m = inbound.read(v1::ControllerMessage { msg: None });
        assert!(matches!(m, Ok(Some(Incoming::Heartbeat))), "{m:?}");
        let m = inbound.read(v1::ControllerMessage {
            msg: Some(In::Ack(v1::Ack { seq: 41 })),
        });
        assert!(matches!(m, Ok(Some(Incoming::Ack { seq: 41 }))), "{m:?}");
    }

    fn plan_part(generation: u64, paths: &[&str], more: bool) -> v1::ControllerMessage {
        v1::ControllerMessage {
            msg: Some(In::Plan(v1::Plan {
                generation,
                heartbeat_interval_secs: 5,
                more,
                ..plan_of(paths, &[])
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
        let many: Vec<String> = (0..=MAX_PLAN_ENTRIES / 2)
            .map(|i| format!("/p{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(
            edge.read(plan_part(1, &many, true))
                .expect("taken")
                .is_none()
        );
        let e = edge.read(plan_part(1, &many, true)).expect_err("refused");
        assert!(
            matches!(e, Malformed::TooManyPaths(n) if n > MAX_PLAN_ENTRIES),
            "{e}"
        );
    }
}
