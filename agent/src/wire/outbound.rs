//! The agent's messages as sent: observations moved into the wire types, and reports split
//! into messages of a bounded size.

use std::collections::BTreeMap;

use plumb_proto::parts::Parts;
use plumb_proto::v1::{self, agent_message::Msg as Out};

use crate::attribute::Who;
use crate::collect::facts::Facts;
use crate::collect::files::{Kind, Observation};
use crate::collect::packages::PackageObservation;
use crate::message::{Coverage, Hello, Outgoing, Report};

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
    let mut sizes = Parts::new(budget);
    for o in files {
        let w = who.remove_entry(&o.path);
        let state = v1::PathState {
            who: w.as_ref().map(|(_, w)| Box::new(who_to_proto(w.clone()))),
            ..state_to_proto(o.clone())
        };
        if sizes.starts_anew(&state) {
            parts.push(std::mem::replace(&mut part, empty()));
        }
        part.who.extend(w);
        part.files.push(o);
    }
    for p in packages {
        let w = who.remove_entry(&p.name);
        let state = v1::PackageState {
            who: w.as_ref().map(|(_, w)| Box::new(who_to_proto(w.clone()))),
            ..package_to_proto(&p)
        };
        if sizes.starts_anew(&state) {
            parts.push(std::mem::replace(&mut part, empty()));
        }
        part.who.extend(w);
        part.packages.push(p);
    }
    parts.push(part);
    parts
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

fn package_to_proto(o: &PackageObservation) -> v1::PackageState {
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

fn state_to_proto(o: Observation) -> v1::PathState {
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

    fn package(name: &str) -> PackageObservation {
        PackageObservation {
            name: name.into(),
            instances: Vec::new(),
            error: None,
            problems: Vec::new(),
        }
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
        // Each as a repeated field of its message: tag, length and itself.
        let framed = |len: usize| 1 + prost::length_delimiter_len(len) + len;
        states
            .iter()
            .map(|s| framed(prost::Message::encoded_len(s)))
            .sum::<usize>()
            + packages
                .iter()
                .map(|p| framed(prost::Message::encoded_len(p)))
                .sum::<usize>()
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
}
