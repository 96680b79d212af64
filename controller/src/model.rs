//! The controller's own types for hosts, drift records and events: what the fleet keeps, the
//! store persists and the query API returns (converted to wire types in `server::wire`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::evidence::Evidence;
use crate::manifest::HostIdentity;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// os-release `ID`, e.g. "debian".
    #[serde(default)]
    pub os_id: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// What an agent said about itself in its Hello.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub host_id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub facts: HostFacts,
    pub agent_version: String,
}

impl HostInfo {
    /// What manifests select on: the host id, its labels, and the facts `os`, `os_version`
    /// and `arch`.
    pub fn identity(&self) -> HostIdentity {
        let f = &self.facts;
        let facts = [
            ("os", &f.os_id),
            ("os_version", &f.os_version),
            ("arch", &f.arch),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
        HostIdentity {
            host_id: self.host_id.clone(),
            labels: self.labels.clone(),
            facts,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    InSync,
    Drifted,
    Offline,
    Unknown,
    /// In sync as far as the agent can tell, but some declared paths are not watched.
    Degraded,
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::InSync => "in_sync",
            HostStatus::Drifted => "drifted",
            HostStatus::Offline => "offline",
            HostStatus::Unknown => "unknown",
            HostStatus::Degraded => "degraded",
        }
    }
}

/// An open drift item, or the one an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRecord {
    pub resource: String,
    pub attribute: String,
    pub expected: String,
    pub actual: String,
    pub since_ms: i64,
    pub declared_at: String,
    /// Who made the change and whether it was authorised (open items and their events), how
    /// it was put right (resolved events). Not part of what the item says about the host:
    /// two records alike but for their evidence are the same drift.
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Opened,
    Resolved,
    Changed,
    HostOnline,
    HostOffline,
    /// A new manifest set is in force (`declared_at`: its git commit, or its folder).
    ManifestsAccepted,
    /// A manifest change was rejected; the last good set stays in force.
    ManifestsRejected,
    /// An operator acknowledged a resource's drift (`expected`: who, `actual`: why).
    Acknowledged,
    AckRevoked,
    /// An acknowledgement ran out: the drift counts again.
    AckExpired,
    /// The first entry of every log: an emptied log never passes for a new one.
    LogCreated,
    /// The store could not write for a while (a full disk): what was delayed, what was lost.
    StoreOutage,
    /// A change window was opened (resource `change:TICKET`, `expected` its scope, `actual`
    /// why, `since_ms` its end, `declared_at` who opened it).
    ChangeOpened,
    /// A change window was closed before its end (`declared_at` who closed it).
    ChangeClosed,
    /// A change window ended (`actual` says what it authorised that is still drifted).
    ChangeEnded,
    /// A person read a file's content through a diff (`resource` `HOST:PATH`, `expected` who
    /// and their role, `actual` what was shown). Reads are the controller's own entries.
    ContentRead,
    /// A person read the event log (`resource` "audit-log", `expected` who and their role,
    /// `actual` what they asked for).
    LogRead,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Resolved => "resolved",
            EventKind::Changed => "changed",
            EventKind::HostOnline => "host_online",
            EventKind::HostOffline => "host_offline",
            EventKind::ManifestsAccepted => "manifests_accepted",
            EventKind::ManifestsRejected => "manifests_rejected",
            EventKind::Acknowledged => "acknowledged",
            EventKind::AckRevoked => "ack_revoked",
            EventKind::AckExpired => "ack_expired",
            EventKind::LogCreated => "log_created",
            EventKind::StoreOutage => "store_outage",
            EventKind::ChangeOpened => "change_opened",
            EventKind::ChangeClosed => "change_closed",
            EventKind::ChangeEnded => "change_ended",
            EventKind::ContentRead => "content_read",
            EventKind::LogRead => "log_read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Opened,
            Self::Resolved,
            Self::Changed,
            Self::HostOnline,
            Self::HostOffline,
            Self::ManifestsAccepted,
            Self::ManifestsRejected,
            Self::Acknowledged,
            Self::AckRevoked,
            Self::AckExpired,
            Self::LogCreated,
            Self::StoreOutage,
            Self::ChangeOpened,
            Self::ChangeClosed,
            Self::ChangeEnded,
            Self::ContentRead,
            Self::LogRead,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the append-only event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub at_ms: i64,
    pub host_id: String,
    pub kind: EventKind,
    pub item: Option<DriftRecord>,
}

/// How well an agent observes its plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub watches: u32,
    pub watch_limit: u32,
    /// Declared paths polled because their directory could not be watched.
    pub polled: Vec<String>,
    pub watch_errors: Vec<String>,
    pub overflows: u64,
    pub last_full_scan_ms: i64,
    /// When coverage last became degraded.
    pub degraded_since_ms: Option<i64>,
    /// Who made changes, and how the agent can tell: `fanotify`, or `off: ` and why; empty
    /// from an agent that does not say.
    pub attribution: String,
}

impl Coverage {
    pub fn degraded(&self) -> bool {
        !self.polled.is_empty() || !self.watch_errors.is_empty()
    }
}

/// An operator's acknowledgement of a resource's drift: still shown, no longer failing
/// `plumb drift`, until it expires or is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub host_id: String,
    /// e.g. `file:/etc/motd`
    pub resource: String,
    pub reason: String,
    /// The operator (from the certificate), or "local" without TLS.
    pub by: String,
    pub at_ms: i64,
    pub expires_ms: Option<i64>,
}

impl Ack {
    pub fn active(&self, now_ms: i64) -> bool {
        self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// A host as the query API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    pub info: HostInfo,
    pub status: HostStatus,
    pub last_seen_ms: i64,
    pub drift: Vec<DriftRecord>,
    pub manifests: Vec<String>,
    pub coverage: Option<Coverage>,
    /// Acknowledgements in force for this host's resources.
    pub acks: Vec<Ack>,
    /// The controller holding its stream (its id), where several share the store; `None`
    /// where the store is one controller's, or no controller holds it.
    pub controller: Option<String>,
}
