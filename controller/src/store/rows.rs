//! The JSON that the `hosts.info` and `observations.state` columns hold, in SQLite and in
//! PostgreSQL alike, as the stores' own types. The model's types convert to and from them here, so a change to a core type (a new
//! field, a typed key, a different digest) changes what is on disk only where this file says
//! so, and stores written by earlier versions still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{HostState, Result, StoreError};
use crate::drift::{
    Digest, FileProblem, Installed, Kind, More, Observation, Observed, ObservedPackage,
};
use crate::key::Key;
use crate::model::{Coverage, HostFacts, HostInfo};
use crate::version::Manager;

#[derive(Serialize, Deserialize)]
pub(super) struct HostRow {
    host_id: String,
    hostname: String,
    labels: BTreeMap<String, String>,
    facts: FactsRow,
    agent_version: String,
}

#[derive(Serialize, Deserialize)]
struct FactsRow {
    #[serde(default)]
    os_id: String,
    os_name: String,
    os_version: String,
    kernel_version: String,
    arch: String,
    cpus: u32,
    memory_bytes: u64,
}

impl From<&HostInfo> for HostRow {
    fn from(h: &HostInfo) -> Self {
        let f = &h.facts;
        Self {
            host_id: h.host_id.clone(),
            hostname: h.hostname.clone(),
            labels: h.labels.clone(),
            facts: FactsRow {
                os_id: f.os_id.clone(),
                os_name: f.os_name.clone(),
                os_version: f.os_version.clone(),
                kernel_version: f.kernel_version.clone(),
                arch: f.arch.clone(),
                cpus: f.cpus,
                memory_bytes: f.memory_bytes,
            },
            agent_version: h.agent_version.clone(),
        }
    }
}

impl From<HostRow> for HostInfo {
    fn from(r: HostRow) -> Self {
        let f = r.facts;
        Self {
            host_id: r.host_id,
            hostname: r.hostname,
            labels: r.labels,
            facts: HostFacts {
                os_id: f.os_id,
                os_name: f.os_name,
                os_version: f.os_version,
                kernel_version: f.kernel_version,
                arch: f.arch,
                cpus: f.cpus,
                memory_bytes: f.memory_bytes,
            },
            agent_version: r.agent_version,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum ObservationRow {
    File(FileRow),
    Package(PackageRow),
}

#[derive(Serialize, Deserialize)]
pub(super) struct FileRow {
    kind: KindRow,
    link_target: Option<String>,
    resolved_kind: KindRow,
    mode: u32,
    uid: u32,
    gid: u32,
    owner: Option<String>,
    group: Option<String>,
    /// 64 hex digits.
    sha256: Option<String>,
    contains: Vec<bool>,
    entries: Vec<String>,
    /// Rows written before entries were capped lack it: then `entries` is all of them.
    #[serde(default)]
    entries_total: u64,
    error: Option<String>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindRow {
    Absent,
    File,
    Directory,
    Symlink,
    Other,
    Unreadable,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PackageRow {
    instances: Vec<InstalledRow>,
    error: Option<String>,
    problems: Vec<ProblemRow>,
}

#[derive(Serialize, Deserialize)]
struct InstalledRow {
    manager: ManagerRow,
    arch: String,
    version: String,
    state: String,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ManagerRow {
    Dpkg,
    Rpm,
    Apk,
    Pacman,
}

#[derive(Serialize, Deserialize)]
struct ProblemRow {
    path: String,
    expected: String,
    actual: String,
}

impl From<Kind> for KindRow {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Absent => Self::Absent,
            Kind::File => Self::File,
            Kind::Directory => Self::Directory,
            Kind::Symlink => Self::Symlink,
            Kind::Other => Self::Other,
            Kind::Unreadable => Self::Unreadable,
        }
    }
}

impl From<KindRow> for Kind {
    fn from(k: KindRow) -> Self {
        match k {
            KindRow::Absent => Self::Absent,
            KindRow::File => Self::File,
            KindRow::Directory => Self::Directory,
            KindRow::Symlink => Self::Symlink,
            KindRow::Other => Self::Other,
            KindRow::Unreadable => Self::Unreadable,
        }
    }
}

impl From<Manager> for ManagerRow {
    fn from(m: Manager) -> Self {
        match m {
            Manager::Dpkg => Self::Dpkg,
            Manager::Rpm => Self::Rpm,
            Manager::Apk => Self::Apk,
            Manager::Pacman => Self::Pacman,
        }
    }
}

impl From<ManagerRow> for Manager {
    fn from(m: ManagerRow) -> Self {
        match m {
            ManagerRow::Dpkg => Self::Dpkg,
            ManagerRow::Rpm => Self::Rpm,
            ManagerRow::Apk => Self::Apk,
            ManagerRow::Pacman => Self::Pacman,
        }
    }
}

impl From<&Observation> for ObservationRow {
    fn from(o: &Observation) -> Self {
        match o {
            Observation::File(f) => Self::File(FileRow {
                kind: f.kind.into(),
                link_target: f.link_target().map(str::to_owned),
                resolved_kind: f.resolved_kind.into(),
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
                owner: f.owner.as_deref().map(str::to_owned),
                group: f.group.as_deref().map(str::to_owned),
                sha256: f.sha256.map(|d| d.to_hex()),
                contains: f.more().contains.clone(),
                entries: f.more().entries.clone(),
                entries_total: f.more().entries_total,
                error: f.error().map(str::to_owned),
            }),
            Observation::Package(p) => Self::Package(PackageRow {
                instances: p
                    .instances
                    .iter()
                    .map(|i| InstalledRow {
                        manager: i.manager.into(),
                        arch: i.arch.clone(),
                        version: i.version.clone(),
                        state: i.state.clone(),
                    })
                    .collect(),
                error: p.error.clone(),
                problems: p
                    .problems
                    .iter()
                    .map(|f| ProblemRow {
                        path: f.path.clone(),
                        expected: f.expected.clone(),
                        actual: f.actual.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

/// An observation as a store read it back (`state` under key `path` for `host_id`): `Corrupt`
/// if it does not parse or is filed under a key of the other kind.
pub(super) fn observation(host_id: &str, path: &str, state: &str) -> Result<(Key, Observation)> {
    let corrupt = |why: &str| StoreError::Corrupt(format!("observation {host_id}:{path}: {why}"));
    let observed = serde_json::from_str::<ObservationRow>(state)
        .map_err(|e| e.to_string())
        .and_then(ObservationRow::into_observation)
        .map_err(|e| corrupt(&e))?;
    let key = Key::from_stored(path);
    let agrees = matches!(
        (&key, &observed),
        (Key::File(_), Observation::File(_)) | (Key::Package(_), Observation::Package(_))
    );
    if !agrees {
        return Err(corrupt("filed under a key of the other kind"));
    }
    Ok((key, observed))
}

impl ObservationRow {
    /// The observation, or why the row cannot be one.
    pub(super) fn into_observation(self) -> std::result::Result<Observation, String> {
        Ok(match self {
            Self::File(f) => Observation::File(Observed {
                kind: f.kind.into(),
                resolved_kind: f.resolved_kind.into(),
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
                owner: f.owner.as_deref().map(crate::drift::intern),
                group: f.group.as_deref().map(crate::drift::intern),
                sha256: f
                    .sha256
                    .map(|hex| Digest::from_hex(&hex).ok_or("not a sha256 digest"))
                    .transpose()?,
                more: More {
                    link_target: f.link_target,
                    contains: f.contains,
                    entries: f.entries,
                    entries_total: f.entries_total,
                    error: f.error,
                }
                .boxed(),
            }),
            Self::Package(p) => Observation::Package(Box::new(ObservedPackage {
                instances: p
                    .instances
                    .into_iter()
                    .map(|i| Installed {
                        manager: i.manager.into(),
                        arch: i.arch,
                        version: i.version,
                        state: i.state,
                    })
                    .collect(),
                error: p.error,
                problems: p
                    .problems
                    .into_iter()
                    .map(|f| FileProblem {
                        path: f.path,
                        expected: f.expected,
                        actual: f.actual,
                    })
                    .collect(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Rows as schema version 4 wrote them (through the model's own serde, before this
    /// module): they must read, and what is written now must be the same text.
    const FILE_ROW: &str = r#"{"type":"file","kind":"symlink","link_target":"/etc/b","resolved_kind":"file","mode":33188,"uid":0,"gid":4,"owner":"root","group":"adm","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","contains":[true,false],"entries":["x"],"entries_total":3,"error":null}"#;
    const PACKAGE_ROW: &str = r#"{"type":"package","instances":[{"manager":"dpkg","arch":"amd64","version":"1.2-1","state":"installed"}],"error":null,"problems":[{"path":"/usr/bin/x","expected":"md5 a","actual":"md5 b"}]}"#;
    const HOST_ROW: &str = r#"{"host_id":"web-1","hostname":"web-1.example","labels":{"role":"web"},"facts":{"os_id":"debian","os_name":"Debian GNU/Linux","os_version":"12","kernel_version":"6.1","arch":"x86_64","cpus":2,"memory_bytes":1024},"agent_version":"0.1.0"}"#;

    fn round_trip_observation(text: &str) -> Observation {
        let row: ObservationRow = serde_json::from_str(text).expect("reads");
        let observation = row.into_observation().expect("valid");
        let again = serde_json::to_string(&ObservationRow::from(&observation)).expect("writes");
        assert_eq!(again, text, "written as before");
        observation
    }

    #[test]
    fn rows_written_before_read_and_write_the_same() {
        match round_trip_observation(FILE_ROW) {
            Observation::File(f) => {
                assert_eq!(f.kind, Kind::Symlink);
                assert_eq!(f.owner.as_deref(), Some("root"));
                assert_eq!(f.more().entries_total, 3);
                assert!(f.sha256.is_some());
            }
            other => panic!("a file, not {other:?}"),
        }
        match round_trip_observation(PACKAGE_ROW) {
            Observation::Package(p) => {
                assert_eq!(p.instances[0].manager, Manager::Dpkg);
                assert_eq!(p.problems[0].path, "/usr/bin/x");
            }
            other => panic!("a package, not {other:?}"),
        }
        let row: HostRow = serde_json::from_str(HOST_ROW).expect("reads");
        let info = HostInfo::from(row);
        assert_eq!(info.facts.os_id, "debian");
        let again = serde_json::to_string(&HostRow::from(&info)).expect("writes");
        assert_eq!(again, HOST_ROW);
        assert_eq!(serde_json::to_string(&info).expect("model"), HOST_ROW);
    }

    #[test]
    fn older_rows_without_later_fields_read() {
        let old = r#"{"type":"file","kind":"directory","link_target":null,"resolved_kind":"directory","mode":16877,"uid":0,"gid":0,"owner":null,"group":null,"sha256":null,"contains":[],"entries":["a","b"],"error":null}"#;
        let row: ObservationRow = serde_json::from_str(old).expect("reads");
        match row.into_observation().expect("valid") {
            Observation::File(f) => assert_eq!(f.more().entries_total, 0),
            other => panic!("a file, not {other:?}"),
        }
        let host = r#"{"host_id":"h","hostname":"h","labels":{},"facts":{"os_name":"","os_version":"","kernel_version":"","arch":"","cpus":0,"memory_bytes":0},"agent_version":""}"#;
        let info = HostInfo::from(serde_json::from_str::<HostRow>(host).expect("reads"));
        assert_eq!(info.facts.os_id, "");
    }

    /// A controller restarted over a large store read one string per file for its owner and
    /// its group until the agents' snapshots replaced them: names read back are shared as
    /// names that arrive are.
    #[test]
    fn owner_and_group_names_read_back_are_shared() {
        let owner = |text: &str| match round_trip_observation(text) {
            Observation::File(f) => (f.owner.expect("owner"), f.group.expect("group")),
            other => panic!("a file, not {other:?}"),
        };
        let (a, adm) = owner(FILE_ROW);
        let (b, _) = owner(FILE_ROW);
        assert!(Arc::ptr_eq(&a, &b), "one copy of \"root\"");
        assert!(Arc::ptr_eq(&a, &crate::drift::intern("root")));
        assert!(!Arc::ptr_eq(&a, &adm));
    }

    #[test]
    fn a_digest_that_is_not_one_is_refused() {
        let bad = FILE_ROW.replace("9f86d081", "zz86d081");
        let row: ObservationRow = serde_json::from_str(&bad).expect("json");
        assert!(row.into_observation().is_err());
    }
}

/// What a shared store's `hosts.state` holds: the holder's word on a host beyond drift.
#[derive(Serialize, Deserialize)]
pub(super) struct StateRow {
    evaluated: bool,
    coverage: Option<CoverageRow>,
}

#[derive(Serialize, Deserialize)]
struct CoverageRow {
    watches: u32,
    watch_limit: u32,
    polled: Vec<String>,
    watch_errors: Vec<String>,
    overflows: u64,
    last_full_scan_ms: i64,
    degraded_since_ms: Option<i64>,
    /// Rows written before agents said it lack it.
    #[serde(default)]
    attribution: String,
}

impl From<&HostState> for StateRow {
    fn from(s: &HostState) -> Self {
        Self {
            evaluated: s.evaluated,
            coverage: s.coverage.as_ref().map(|c| CoverageRow {
                watches: c.watches,
                watch_limit: c.watch_limit,
                polled: c.polled.clone(),
                watch_errors: c.watch_errors.clone(),
                overflows: c.overflows,
                last_full_scan_ms: c.last_full_scan_ms,
                degraded_since_ms: c.degraded_since_ms,
                attribution: c.attribution.clone(),
            }),
        }
    }
}

impl From<StateRow> for HostState {
    fn from(r: StateRow) -> Self {
        Self {
            evaluated: r.evaluated,
            coverage: r.coverage.map(|c| Coverage {
                watches: c.watches,
                watch_limit: c.watch_limit,
                polled: c.polled,
                watch_errors: c.watch_errors,
                overflows: c.overflows,
                last_full_scan_ms: c.last_full_scan_ms,
                degraded_since_ms: c.degraded_since_ms,
                attribution: c.attribution,
            }),
        }
    }
}

/// A `hosts.state` column as read: empty (never written) is the default.
pub(super) fn host_state(host_id: &str, json: Option<&str>) -> Result<HostState> {
    match json {
        None => Ok(HostState::default()),
        Some(text) => serde_json::from_str::<StateRow>(text)
            .map(HostState::from)
            .map_err(|e| StoreError::Corrupt(format!("host {host_id}'s state: {e}"))),
    }
}
