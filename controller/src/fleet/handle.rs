//! How the rest of the controller talks to the fleet thread: the `Command`s it handles, the
//! typed `FleetHandle` methods that send them and wait for the answer, and `FleetError`, why
//! an answer is a refusal.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::metrics::Metrics;
use crate::drift::Observation;
use crate::evidence::Who;
use crate::key::Key;
use crate::manifest::{Diagnostic, ManifestSet};
use crate::model::{Ack, Coverage, Event, HostInfo, HostView};
use crate::plan::PathRequest;
use crate::store::{Head, StoreError};
use crate::window::ChangeWindow;

/// What the controller sends an agent, before conversion to the wire. Small: each stream's
/// queue holds room for 32 of them from its start.
#[derive(Debug, Clone)]
pub enum ToAgent {
    Plan(Box<AgentPlan>),
    Ack {
        seq: u64,
    },
    /// The answer to an agent's heartbeat, so the agent knows the controller is alive.
    Heartbeat {
        at_ms: i64,
    },
    /// For an operator's diff of a file the manifest allows it for.
    ContentRequest {
        id: u64,
        path: Box<str>,
        max_bytes: u64,
    },
    /// End this stream and connect again at once: it is older than the maximum age.
    GoAway {
        reason: String,
    },
}

const _: () = assert!(std::mem::size_of::<ToAgent>() <= 40);

/// What an agent is to observe, and how often it says it is alive.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    pub generation: u64,
    pub paths: Vec<PathRequest>,
    /// (name, verify its files)
    pub packages: Vec<(String, bool)>,
    pub heartbeat_interval: Duration,
}

/// What an operator asks to acknowledge.
/// What an agent says of one path or package: its key, what it observed, and who made the
/// change it shows, where the agent can tell.
pub type Stated = (Key, Observation, Option<Who>);

/// A read the audit log keeps: who read what, when (`EventKind::ContentRead` or `LogRead`).
/// It is the controller's own entry (no host): on a shared store the controller that answers
/// a diff need not be the one holding the host, and only that one writes the host's entries.
#[derive(Debug, Clone)]
pub struct Read {
    pub kind: crate::model::EventKind,
    /// What was read: `HOST:PATH` for a file's content, "audit-log" for the log.
    pub resource: String,
    /// Who, with their role: "alice (operator)".
    pub by: String,
    /// What was shown or asked for.
    pub what: String,
}

pub struct AckRequest {
    pub host: String,
    pub resource: String,
    pub reason: String,
    /// The operator's name (from the certificate), or "local".
    pub by: String,
    pub expires_ms: Option<i64>,
}

/// Largest file a diff is made of.
pub const DIFF_MAX_BYTES: u64 = 256 * 1024;

/// Desired and actual content of a file, for a diff.
pub struct DiffContent {
    pub desired: Arc<Vec<u8>>,
    pub actual: Vec<u8>,
}

/// What an agent's state message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Only what changed since the agent's last message.
    Delta,
    /// A part of a snapshot whose last part is still to come: kept, not yet evaluated.
    SnapshotPart,
    /// A whole snapshot, or its last part: every declared path is evaluated.
    Snapshot,
}

pub enum Command {
    /// What the store's tail heard of the other controllers (a shared store).
    Store(crate::store::Heard),
    Connect {
        info: HostInfo,
        out: mpsc::Sender<ToAgent>,
        /// Counted by the stream's task, read at each tick.
        heartbeats: Arc<super::Heartbeats>,
        /// Whether a new stream for a host replaces its live one: under mutual TLS, where the
        /// certificate proves who connects. Without TLS anyone may claim any host id, so the
        /// live stream is kept and the newcomer refused.
        takeover: bool,
        reply: oneshot::Sender<Result<u64, FleetError>>,
    },
    State {
        conn: u64,
        report: Report,
        generation: u64,
        seq: u64,
        states: Vec<Stated>,
        /// Held until the fleet has handled the message (see `Turn`).
        turn: Turn,
    },
    Coverage {
        conn: u64,
        coverage: Coverage,
    },
    Disconnected {
        conn: u64,
    },
    /// A (re)load of the manifest directory; `source` is its git commit, or its folder.
    Manifests {
        result: Result<ManifestSet, Vec<Diagnostic>>,
        source: String,
    },
    Tick,
    Hosts {
        reply: oneshot::Sender<Overview>,
    },
    Follow {
        hosts: Vec<String>,
        reply: oneshot::Sender<(Vec<Event>, broadcast::Receiver<Event>)>,
    },
    History {
        host: Option<String>,
        limit: u32,
        /// The events, and the log's head when they were read.
        reply: oneshot::Sender<Result<(Vec<Event>, Head), FleetError>>,
    },
    /// The content of a declared file, where policy allows, for `plumb diff`.
    Diff {
        host: String,
        path: String,
        reply: oneshot::Sender<Result<DiffContent, FleetError>>,
    },
    Ack {
        req: AckRequest,
        reply: oneshot::Sender<Result<Ack, FleetError>>,
    },
    RevokeAck {
        host: String,
        resource: String,
        /// Who revokes it (recorded in the `ack_revoked` entry).
        by: String,
        reply: oneshot::Sender<Result<(), FleetError>>,
    },
    ListAcks {
        reply: oneshot::Sender<Vec<Ack>>,
    },
    /// Opens a change window (`from_ms` 0: now), until its `until_ms` or for `for_ms` from
    /// its start.
    OpenWindow {
        window: ChangeWindow,
        for_ms: Option<i64>,
        reply: oneshot::Sender<Result<ChangeWindow, FleetError>>,
    },
    CloseWindow {
        ticket: String,
        /// The operator's name, or "local".
        by: String,
        reply: oneshot::Sender<Result<ChangeWindow, FleetError>>,
    },
    ListWindows {
        reply: oneshot::Sender<Vec<ChangeWindow>>,
    },
    /// How the hosts of baseline groups differ (`plumb diverge`): the groups `selector`
    /// names (a manifest, or a glob on their hosts' ids; every group if none), on `key`
    /// alone if given.
    Diverge {
        selector: Option<String>,
        key: Option<Key>,
        reply: oneshot::Sender<Result<Vec<crate::baseline::Divergence>, FleetError>>,
    },
    /// The groups `selector` names as manifests with values (`plumb baseline accept`): their
    /// majority's state, or host `from`'s.
    Accept {
        selector: String,
        from: Option<String>,
        reply: oneshot::Sender<Result<Vec<super::Accepted>, FleetError>>,
    },
    /// The console's overview.
    Summary {
        scope: crate::role::Scope,
        reply: oneshot::Sender<Result<super::console::Summary, FleetError>>,
    },
    /// The ids of the hosts a scope sees.
    Visible {
        scope: crate::role::Scope,
        reply: oneshot::Sender<std::collections::HashSet<String>>,
    },
    /// A page of open drift under a filter.
    DriftPage {
        filter: super::console::DriftFilter,
        reply: oneshot::Sender<super::console::DriftPage>,
    },
    HostDetail {
        host: String,
        scope: crate::role::Scope,
        reply: oneshot::Sender<Result<super::console::HostDetail, FleetError>>,
    },
    /// A page of the event log, and the head when it was read.
    LogPage {
        query: crate::store::LogQuery,
        reply: oneshot::Sender<Result<(Vec<Event>, Head), FleetError>>,
    },
    /// The hosts as they stood at a moment, rebuilt from the log, and the head when read.
    Moment {
        at_ms: i64,
        reply: oneshot::Sender<Result<(Overview, Head), FleetError>>,
    },
    /// A person read content or the log: recorded before they are shown it.
    RecordRead {
        read: Read,
        reply: oneshot::Sender<Result<(), FleetError>>,
    },
    /// Answered at once: the fleet thread is alive (the systemd watchdog asks).
    Ping {
        reply: oneshot::Sender<()>,
    },
    /// The fleet's figures, for `/metrics`.
    Metrics {
        reply: oneshot::Sender<Metrics>,
    },
    /// An agent's answer to a content request.
    Content {
        conn: u64,
        id: u64,
        result: Result<Vec<u8>, String>,
    },
    Shutdown,
}

/// One of the few places a stream may hold in the fleet's queue; given back once its message
/// is handled. A host that sends as fast as it can then waits its turn, instead of filling the
/// queue every other host's messages wait in.
#[derive(Debug, Default)]
pub struct Turn(
    #[allow(dead_code, reason = "held, never read")] Option<tokio::sync::OwnedSemaphorePermit>,
);

impl Turn {
    /// Waits for one of `places`.
    pub async fn take(places: &Arc<tokio::sync::Semaphore>) -> Self {
        Self(places.clone().acquire_owned().await.ok())
    }
}

/// The fleet as the query API shows it.
#[derive(Debug, Clone)]
pub struct Overview {
    pub hosts: Vec<HostView>,
    /// Non-empty while a manifest change is rejected (the last good set stays in force).
    pub manifest_errors: Vec<String>,
    /// What is wrong with the controller itself (the store cannot write).
    pub warnings: Vec<String>,
}

/// Cheap to clone; every method is a message to the fleet thread.
#[derive(Clone)]
pub struct FleetHandle {
    pub(super) tx: mpsc::Sender<Command>,
    /// Whether the fleet thread is at work, for streams answering heartbeats.
    pub(super) pulse: Arc<super::Pulse>,
}

/// Why the fleet refused a request or could not answer it. `server/` turns it into a gRPC
/// status, in one place; the message is for the operator who asked.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("no host {0:?} is known to this controller")]
    UnknownHost(String),
    #[error("{path} is not declared for {host}")]
    NotDeclared { host: String, path: String },
    /// The manifest keeps this file's content on its host (sensitive, or no `diff: true`).
    #[error("{0}")]
    ContentWithheld(String),
    #[error("{0} is offline; a diff needs the agent")]
    Offline(String),
    /// On a shared store: the controller holding the host's stream could not give the
    /// content (its word, or why it gave none).
    #[error("controller {controller}, which holds {host}'s stream: {message}")]
    Holder {
        host: String,
        controller: String,
        message: String,
    },
    #[error("{0} is not reading its stream")]
    NotReading(String),
    /// The agent would not or could not send the content (its deny list, the size limit).
    #[error("{0}")]
    Agent(String),
    #[error("{host} has no open drift on {resource}")]
    NoOpenDrift { host: String, resource: String },
    #[error("no acknowledgement for {resource} on {host}")]
    NoAck { host: String, resource: String },
    #[error("the expiry is in the past")]
    ExpiryInPast,
    /// No baseline group is what was asked for (its name or a host of it; a key it compares).
    #[error("{0}")]
    NoBaseline(String),
    /// A change window that cannot be opened or closed as asked, and why.
    #[error("{0}")]
    BadWindow(String),
    /// Without TLS a host id proves nothing: the live stream is kept, the newcomer refused.
    #[error(
        "host {host:?} already has a live stream (connected {since}); without TLS the first is kept. \
         If this is the real agent, it is let in once the other stream ends or misses three heartbeats"
    )]
    StreamTaken { host: String, since: String },
    /// Writes wait for the store: an operator's change is refused, not kept for later.
    #[error("{0}; try again once it writes")]
    StoreWaiting(String),
    #[error("the store cannot write ({0}); nothing was changed")]
    StoreCannotWrite(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the controller is shutting down")]
    Stopped,
}

impl FleetHandle {
    /// Whether the fleet thread is at work: a stream answers its agent's heartbeats only
    /// then (`pulse.rs`).
    pub fn alive(&self) -> bool {
        self.pulse.alive()
    }

    pub async fn send(&self, cmd: Command) -> Result<(), FleetError> {
        self.tx.send(cmd).await.map_err(|_| FleetError::Stopped)
    }

    /// Sends unless the queue is full (a tick: the next one comes soon).
    /// Sends from a thread outside the runtime, waiting for room; false once the fleet is gone.
    pub fn blocking_send(&self, cmd: Command) -> bool {
        self.tx.blocking_send(cmd).is_ok()
    }

    pub fn try_send(&self, cmd: Command) {
        let _ = self.tx.try_send(cmd);
    }

    /// Sends the command `make` builds around a reply channel, and waits for the reply.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, FleetError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| FleetError::Stopped)
    }

    /// A new stream for a host: its connection id, or why it is refused.
    pub async fn connect(
        &self,
        info: HostInfo,
        out: mpsc::Sender<ToAgent>,
        heartbeats: Arc<super::Heartbeats>,
        takeover: bool,
    ) -> Result<u64, FleetError> {
        self.ask(|reply| Command::Connect {
            info,
            out,
            heartbeats,
            takeover,
            reply,
        })
        .await?
    }

    pub async fn overview(&self) -> Result<Overview, FleetError> {
        self.ask(|reply| Command::Hosts { reply }).await
    }

    /// The current drift of these hosts (all if empty) as `opened` events, and every event
    /// from then on: nothing falls between the two.
    pub async fn follow(
        &self,
        hosts: Vec<String>,
    ) -> Result<(Vec<Event>, broadcast::Receiver<Event>), FleetError> {
        self.ask(|reply| Command::Follow { hosts, reply }).await
    }

    /// The most recent events first, and the log's head when they were read.
    pub async fn history(
        &self,
        host: Option<String>,
        limit: u32,
    ) -> Result<(Vec<Event>, Head), FleetError> {
        self.ask(|reply| Command::History { host, limit, reply })
            .await?
    }

    /// Desired and actual content of a declared file, where its manifest allows a diff.
    pub async fn diff(&self, host: String, path: String) -> Result<DiffContent, FleetError> {
        self.ask(|reply| Command::Diff { host, path, reply })
            .await?
    }

    pub async fn acknowledge(&self, req: AckRequest) -> Result<Ack, FleetError> {
        self.ask(|reply| Command::Ack { req, reply }).await?
    }

    pub async fn revoke_ack(
        &self,
        host: String,
        resource: String,
        by: String,
    ) -> Result<(), FleetError> {
        self.ask(|reply| Command::RevokeAck {
            host,
            resource,
            by,
            reply,
        })
        .await?
    }

    pub async fn acks(&self) -> Result<Vec<Ack>, FleetError> {
        self.ask(|reply| Command::ListAcks { reply }).await
    }

    pub async fn open_window(
        &self,
        window: ChangeWindow,
        for_ms: Option<i64>,
    ) -> Result<ChangeWindow, FleetError> {
        self.ask(|reply| Command::OpenWindow {
            window,
            for_ms,
            reply,
        })
        .await?
    }

    pub async fn close_window(
        &self,
        ticket: String,
        by: String,
    ) -> Result<ChangeWindow, FleetError> {
        self.ask(|reply| Command::CloseWindow { ticket, by, reply })
            .await?
    }

    pub async fn windows(&self) -> Result<Vec<ChangeWindow>, FleetError> {
        self.ask(|reply| Command::ListWindows { reply }).await
    }

    pub async fn diverge(
        &self,
        selector: Option<String>,
        key: Option<Key>,
    ) -> Result<Vec<crate::baseline::Divergence>, FleetError> {
        self.ask(|reply| Command::Diverge {
            selector,
            key,
            reply,
        })
        .await?
    }

    pub async fn accept(
        &self,
        selector: String,
        from: Option<String>,
    ) -> Result<Vec<super::Accepted>, FleetError> {
        self.ask(|reply| Command::Accept {
            selector,
            from,
            reply,
        })
        .await?
    }

    pub async fn summary(
        &self,
        scope: crate::role::Scope,
    ) -> Result<super::console::Summary, FleetError> {
        self.ask(|reply| Command::Summary { scope, reply }).await?
    }

    pub async fn visible(
        &self,
        scope: crate::role::Scope,
    ) -> Result<std::collections::HashSet<String>, FleetError> {
        self.ask(|reply| Command::Visible { scope, reply }).await
    }

    pub async fn drift_page(
        &self,
        filter: super::console::DriftFilter,
    ) -> Result<super::console::DriftPage, FleetError> {
        self.ask(|reply| Command::DriftPage { filter, reply }).await
    }

    pub async fn host_detail(
        &self,
        host: String,
        scope: crate::role::Scope,
    ) -> Result<super::console::HostDetail, FleetError> {
        self.ask(|reply| Command::HostDetail { host, scope, reply })
            .await?
    }

    pub async fn log_page(
        &self,
        query: crate::store::LogQuery,
    ) -> Result<(Vec<Event>, Head), FleetError> {
        self.ask(|reply| Command::LogPage { query, reply }).await?
    }

    /// The hosts as they stood at `at_ms` (`crate::moment`): those known by then, each with
    /// its status, drift and acknowledgements then and its identity as known now; the
    /// warnings say what the log cannot tell. With the log's head when it was read.
    pub async fn moment(&self, at_ms: i64) -> Result<(Overview, Head), FleetError> {
        self.ask(|reply| Command::Moment { at_ms, reply }).await?
    }

    /// Records a read in the event log; refused (and nothing is to be shown) when the store
    /// cannot write it.
    pub async fn record_read(&self, read: Read) -> Result<(), FleetError> {
        self.ask(|reply| Command::RecordRead { read, reply })
            .await?
    }

    pub async fn metrics(&self) -> Result<Metrics, FleetError> {
        self.ask(|reply| Command::Metrics { reply }).await
    }

    /// Answers once the fleet thread has handled everything sent before.
    pub async fn ping(&self) -> Result<(), FleetError> {
        self.ask(|reply| Command::Ping { reply }).await
    }
}
