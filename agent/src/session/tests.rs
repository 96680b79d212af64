//! The session's logic driven through its own messages: a plan goes in on a channel, reports
//! come out on another. No tonic, no controller; real files and a real watcher on a temp dir.

use std::time::Duration;

use plumb_proto::REPORT_BYTES;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::{Ended, PART, converse};
use crate::AgentConfig;
use crate::collect::files::{Kind, Request, Requests};
use crate::message::{Incoming, Outgoing, Plan, Report};
use crate::root::Root;
use crate::wire;

/// How long a test waits for a message it expects before it fails.
const DEADLINE: Duration = Duration::from_secs(10);

struct Session {
    to_agent: mpsc::Sender<anyhow::Result<Incoming>>,
    from_agent: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
    ended: tokio::task::JoinHandle<anyhow::Result<Ended>>,
    dir: tempfile::TempDir,
}

impl Session {
    fn start(configure: impl FnOnce(&mut AgentConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        let mut cfg = AgentConfig::new("http://unused.invalid");
        cfg.root = Root::new(Some(dir.path().to_owned()));
        configure(&mut cfg);
        let (to_agent, inbound) = mpsc::channel(8);
        let (out, from_agent) = mpsc::channel(super::OUTBOUND);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let ended = tokio::spawn(async move {
            let mut planned = false;
            converse(
                &cfg,
                ReceiverStream::new(inbound),
                out,
                &token,
                &mut planned,
                crate::attribute::Attribution::off("not asked for"),
            )
            .await
        });
        Self {
            to_agent,
            from_agent,
            shutdown,
            ended,
            dir,
        }
    }

    fn write(&self, path: &str, content: &str) {
        std::fs::write(self.dir.path().join(path.trim_start_matches('/')), content)
            .expect("write a file under the root");
    }

    async fn tell(&self, msg: Incoming) {
        self.to_agent
            .send(Ok(msg))
            .await
            .expect("the session listens");
    }

    /// The next message but heartbeats, which come on their own clock.
    async fn next(&mut self) -> Outgoing {
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.from_agent.recv())
                .await
                .expect("the session said nothing before the deadline")
                .expect("the session ended");
            if !matches!(msg, Outgoing::Heartbeat { .. }) {
                return msg;
            }
        }
    }

    async fn snapshot_part(&mut self) -> (Report, bool) {
        match self.next().await {
            Outgoing::Snapshot { report, more } => (report, more),
            other => panic!("expected a snapshot part, got {other:?}"),
        }
    }
}

fn plan(generation: u64, paths: &[(&str, bool)]) -> Plan {
    Plan {
        generation,
        heartbeat_interval_secs: 0,
        globs: Vec::new(),
        requests: Requests::new(
            paths
                .iter()
                .map(|&(path, allow_content)| Request {
                    path: path.into(),
                    hash: true,
                    contains: Default::default(),
                    list_entries: false,
                    allow_content,
                    sensitive: false,
                    ignore: Default::default(),
                })
                .collect(),
        ),
        packages: Vec::new(),
    }
}

#[tokio::test]
async fn a_plan_is_answered_with_a_snapshot_in_parts_of_bounded_size_then_the_coverage() {
    let mut s = Session::start(|_| {});
    s.write("/etc/present.conf", "x = 1\n");
    let mut paths: Vec<String> = (0..PART).map(|i| format!("/etc/absent{i:04}")).collect();
    paths.push("/etc/present.conf".into());
    let declared: Vec<(&str, bool)> = paths.iter().map(|p| (p.as_str(), false)).collect();
    s.tell(Incoming::Plan(plan(7, &declared))).await;

    let mut parts = Vec::new();
    loop {
        let (part, more) = s.snapshot_part().await;
        let sent = prost::Message::encoded_len(&wire::outgoing_to_proto(Outgoing::Snapshot {
            report: part.clone(),
            more,
        }));
        // The states, and the part's own generation, seq and `more`.
        assert!(
            sent <= REPORT_BYTES + 32,
            "part {} is {sent} bytes as sent",
            parts.len()
        );
        parts.push(part);
        if !more {
            break;
        }
    }
    let seqs: Vec<u64> = parts.iter().map(|p| p.seq).collect();
    assert_eq!(
        seqs,
        (1..=parts.len() as u64).collect::<Vec<_>>(),
        "each its own seq"
    );
    assert!(parts.iter().all(|p| p.generation == 7));
    let all: Vec<_> = parts.iter().flat_map(|p| &p.files).collect();
    assert_eq!(
        all.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(),
        paths,
        "every declared path once, in the plan's order"
    );
    // 257 paths of about 30 bytes each: more parts than the 256-path observation batches.
    assert!(parts.len() > 2, "{} parts", parts.len());
    let present = all
        .iter()
        .find(|o| o.path == "/etc/present.conf")
        .expect("the present file is in the snapshot");
    assert_eq!(present.kind, Kind::File);
    assert!(present.sha256.is_some());
    assert!(
        all.iter()
            .filter(|o| o.path != "/etc/present.conf")
            .all(|o| o.kind == Kind::Absent)
    );
    match s.next().await {
        Outgoing::Coverage(c) => {
            assert!(c.watches > 0, "{c:?}");
            assert!(c.polled.is_empty(), "{c:?}");
        }
        other => panic!("expected the coverage, got {other:?}"),
    }
    s.shutdown.cancel();
    let ended = s.ended.await.expect("the session task");
    assert_eq!(ended.expect("a clean end"), Ended::Shutdown);
}

#[tokio::test]
async fn after_the_snapshot_only_what_changed_is_sent() {
    let mut s = Session::start(|_| {});
    s.write("/etc/a.conf", "a\n");
    s.write("/etc/b.conf", "b\n");
    s.tell(Incoming::Plan(plan(
        1,
        &[("/etc/a.conf", false), ("/etc/b.conf", false)],
    )))
    .await;
    let (snapshot, _) = s.snapshot_part().await;
    let before = snapshot
        .files
        .iter()
        .find(|o| o.path == "/etc/a.conf")
        .expect("a.conf is in the snapshot")
        .sha256
        .clone();
    assert!(matches!(s.next().await, Outgoing::Coverage(_)));

    s.write("/etc/a.conf", "a, changed\n");
    match s.next().await {
        Outgoing::Delta(report) => {
            assert_eq!(report.seq, 2);
            let paths: Vec<&str> = report.files.iter().map(|o| o.path.as_str()).collect();
            assert_eq!(paths, ["/etc/a.conf"], "only the changed file");
            assert_ne!(report.files[0].sha256, before);
        }
        other => panic!("expected a delta, got {other:?}"),
    }
}

#[tokio::test]
async fn content_goes_only_where_the_plan_allows_it_and_the_deny_list_does_not_forbid_it() {
    let mut s = Session::start(|_| {});
    s.write("/etc/allowed.conf", "shown\n");
    s.write("/etc/hidden.conf", "not shown\n");
    s.write("/etc/shadow", "root:secret\n");
    s.tell(Incoming::Plan(plan(
        1,
        &[
            ("/etc/allowed.conf", true),
            ("/etc/hidden.conf", false),
            ("/etc/shadow", true),
        ],
    )))
    .await;
    s.snapshot_part().await;
    assert!(matches!(s.next().await, Outgoing::Coverage(_)));

    for (id, path) in [
        (1, "/etc/allowed.conf"),
        (2, "/etc/hidden.conf"),
        (3, "/etc/shadow"),
        (4, "/etc/undeclared.conf"),
    ] {
        s.tell(Incoming::ContentRequest {
            id,
            path: path.into(),
            max_bytes: 1024,
        })
        .await;
        let Outgoing::Content { id: got, reply } = s.next().await else {
            panic!("expected a content reply for {path}");
        };
        assert_eq!(got, id);
        match id {
            1 => assert_eq!(reply.expect("content allowed"), b"shown\n"),
            2 | 4 => assert!(
                reply
                    .expect_err("refused")
                    .contains("the plan does not allow"),
                "{path}"
            ),
            _ => assert!(
                reply.expect_err("refused").contains("local deny list"),
                "{path}"
            ),
        }
    }
}

#[tokio::test]
async fn state_the_controller_does_not_acknowledge_is_sent_again_in_whole() {
    let mut s = Session::start(|cfg| cfg.ack_deadline = Duration::ZERO);
    s.write("/etc/a.conf", "a\n");
    let mut p = plan(1, &[("/etc/a.conf", false), ("/etc/b.conf", false)]);
    p.heartbeat_interval_secs = 1;
    s.tell(Incoming::Plan(p)).await;
    let (snapshot, _) = s.snapshot_part().await;
    assert_eq!(snapshot.seq, 1);
    assert!(matches!(s.next().await, Outgoing::Coverage(_)));
    // No acknowledgement comes: at the next heartbeat the whole state goes again.
    match s.next().await {
        Outgoing::Delta(report) => {
            assert_eq!(report.seq, 2);
            assert_eq!(report.files, snapshot.files, "everything, unchanged");
        }
        other => panic!("expected the state again, got {other:?}"),
    }
}

#[tokio::test]
async fn the_session_ends_with_an_error_when_the_controller_closes_or_sends_garbage() {
    let s = Session::start(|_| {});
    drop(s.to_agent);
    let err = s
        .ended
        .await
        .expect("the session task")
        .expect_err("an error");
    assert!(format!("{err:#}").contains("closed the stream"), "{err:#}");

    // A plan whose path climbs out of the root, as the stream's edge converts it.
    let s = Session::start(|_| {});
    let plan = plumb_proto::v1::Plan {
        generation: 1,
        paths: vec![plumb_proto::v1::PathSpec {
            path: "/etc/../root/.ssh/id_rsa".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let msg = plumb_proto::v1::ControllerMessage {
        msg: Some(plumb_proto::v1::controller_message::Msg::Plan(plan)),
    };
    s.to_agent
        .send(
            super::incoming(&mut crate::wire::Inbound::default(), Ok(msg))
                .map(|m| m.expect("a whole plan")),
        )
        .await
        .expect("the session listens");
    let err = s
        .ended
        .await
        .expect("the session task")
        .expect_err("an error");
    assert_eq!(
        format!("{err:#}"),
        "rejected a malformed message from the controller: plan path \"/etc/../root/.ssh/id_rsa\" is not a normalized absolute path"
    );
}

#[tokio::test]
async fn a_go_away_ends_the_session_so_the_agent_connects_again() {
    let mut s = Session::start(|_| {});
    s.write("/etc/a.conf", "a\n");
    s.tell(Incoming::Plan(plan(1, &[("/etc/a.conf", false)])))
        .await;
    let _ = s.snapshot_part().await;
    s.tell(Incoming::GoAway("too old".into())).await;
    let ended = s.ended.await.expect("the session task");
    assert_eq!(
        ended.expect("not a failure"),
        Ended::GoAway("too old".into())
    );
}

/// A glob of the plan: its matches are observed as paths (what it ignores left out), and a
/// path that comes to match later, in a directory made later too, is observed and sent.
#[tokio::test]
async fn a_glob_observes_its_matches_and_each_path_that_comes_to_match() {
    let mut s = Session::start(|_| {});
    std::fs::create_dir_all(s.dir.path().join("etc/app.d/sub")).expect("mkdir");
    s.write("/etc/app.d/a.conf", "a\n");
    s.write("/etc/app.d/sub/b.conf", "b\n");
    s.write("/etc/app.d/.a.conf.swp", "editor\n");
    let mut p = plan(1, &[]);
    p.globs = vec![Request {
        path: "/etc/app.d/**".into(),
        hash: true,
        contains: Default::default(),
        list_entries: false,
        allow_content: false,
        sensitive: false,
        ignore: crate::collect::files::Ignore::new(vec!["*.swp".into()]),
    }];
    s.tell(Incoming::Plan(p)).await;
    let (snapshot, _) = s.snapshot_part().await;
    let paths: Vec<&str> = snapshot.files.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, ["/etc/app.d/a.conf", "/etc/app.d/sub/b.conf"]);
    assert!(
        snapshot.files.iter().all(|o| o.sha256.is_some()),
        "hashed, as the glob asks"
    );
    assert!(matches!(s.next().await, Outgoing::Coverage(_)));

    std::fs::create_dir_all(s.dir.path().join("etc/app.d/new/deeper")).expect("mkdir");
    s.write("/etc/app.d/new/deeper/c.conf", "c\n");
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|p: &String| p == "/etc/app.d/new/deeper/c.conf")
    {
        match s.next().await {
            Outgoing::Delta(report) => {
                seen.extend(report.files.iter().map(|o| o.path.clone()));
            }
            Outgoing::Coverage(_) => {}
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    assert!(
        !seen.iter().any(|p| p.ends_with(".swp")),
        "ignored: {seen:?}"
    );
}
