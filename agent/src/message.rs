//! What an agent and its controller say to each other, in the agent's own types. The session
//! speaks only these; `wire` turns them into plumb.v1 and back at the stream's edge.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::attribute::Who;
use crate::collect::facts::Facts;
use crate::collect::files::{Observation, Requests};
use crate::collect::packages::{PackageObservation, PackageRequest};

/// A message to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Who this host is; the first message of every stream.
    Hello(Hello),
    /// One part of the whole state under a plan; `more` is set on every part but the last.
    Snapshot {
        report: Report,
        more: bool,
    },
    /// What changed since the last report.
    Delta(Report),
    /// How well the plan is observed; sent when it changes.
    Coverage(Coverage),
    /// A file's content for an operator's diff, or why it is not sent.
    Content {
        id: u64,
        reply: Result<Vec<u8>, String>,
    },
    Heartbeat {
        sent_at_ms: i64,
    },
}

/// The first message of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub host_id: String,
    pub labels: BTreeMap<String, String>,
    pub facts: Facts,
}

/// Observations under one plan generation, numbered so that the controller can acknowledge
/// what it stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub generation: u64,
    pub seq: u64,
    pub files: Vec<Observation>,
    pub packages: Vec<PackageObservation>,
    /// Who made the changes shown, by path (files) or name (packages); only where known or
    /// where attribution is on (then an unknown writer says why).
    pub who: BTreeMap<String, Who>,
}

/// How well the plan is observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Directories watched.
    pub watches: usize,
    /// At most this many may be watched, if limited.
    pub watch_limit: Option<usize>,
    /// Declared paths that cannot be watched and are polled instead.
    pub polled: Vec<String>,
    /// Why watches failed, one line per directory.
    pub watch_errors: Vec<String>,
    /// Event losses since the session started.
    pub overflows: u64,
    pub last_full_scan_ms: i64,
    pub poll_interval: Duration,
    /// `fanotify`, or `off: ` and why.
    pub attribution: String,
}

/// A plan, validated: every path absolute and every pattern compiled.
#[derive(Debug)]
pub struct Plan {
    pub generation: u64,
    pub heartbeat_interval_secs: u32,
    pub requests: Requests,
    /// Globs to expand on this host (`PathSpec.expand`): each match is observed as its own
    /// path, as the glob's request says.
    pub globs: Vec<crate::collect::files::Request>,
    pub packages: Vec<PackageRequest>,
}

/// A message from the controller.
#[derive(Debug)]
pub enum Incoming {
    /// What to observe, validated.
    Plan(Plan),
    /// Everything up to `seq` is stored.
    Ack {
        seq: u64,
    },
    /// An operator asks for a file's content (for a diff).
    ContentRequest {
        id: u64,
        path: String,
        max_bytes: u64,
    },
    /// The controller asks for a new stream now (its maximum connection age), and says why.
    GoAway(String),
    Heartbeat,
}
