//! The `evidence` column of `events` and `drift`, in SQLite and PostgreSQL alike: JSON of the
//! stores' own types (as `rows.rs` does for hosts and observations), or NULL where there is
//! none. An entry's evidence is hashed as the text stored, so the chain verifies whatever a
//! later plumb makes of the JSON; entries without it hash as they did before it existed.

use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::evidence::{Authorisation, Evidence, Process, Resolution, Transaction, Who};

#[derive(Serialize, Deserialize, Default)]
struct EvidenceRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    who: Option<WhoRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorisation: Option<AuthorisationRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolution: Option<ResolutionRow>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WhoRow {
    Process(ProcessRow),
    Package(TransactionRow),
    Unknown { why: String },
}

#[derive(Serialize, Deserialize)]
struct ProcessRow {
    origin: String,
    action: String,
    pid: u32,
    name: String,
    exe: String,
    uid: Option<u32>,
    user: String,
    login_uid: Option<u32>,
    login_user: String,
    session: Option<u32>,
    tty: String,
    unit: String,
    container: String,
    parents: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    command_line: String,
}

#[derive(Serialize, Deserialize)]
struct TransactionRow {
    manager: String,
    started: String,
    user: String,
    uid: Option<u32>,
    command: String,
    action: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum AuthorisationRow {
    Authorised { change: String },
    Unauthorised,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ResolutionRow {
    Reverted,
    ManifestChanged { commit: String },
    PackageChanged,
    PeersChanged,
}

/// The column's text for `e`; `None` (NULL) when it says nothing.
pub(super) fn to_text(e: &Evidence) -> Result<Option<String>> {
    if e.is_empty() {
        return Ok(None);
    }
    let row = EvidenceRow {
        who: e.who.as_ref().map(|w| match w {
            Who::Process(p) => WhoRow::Process(ProcessRow {
                origin: p.origin.clone(),
                action: p.action.clone(),
                pid: p.pid,
                name: p.name.clone(),
                exe: p.exe.clone(),
                uid: p.uid,
                user: p.user.clone(),
                login_uid: p.login_uid,
                login_user: p.login_user.clone(),
                session: p.session,
                tty: p.tty.clone(),
                unit: p.unit.clone(),
                container: p.container.clone(),
                parents: p.parents.clone(),
                command_line: p.command_line.clone(),
            }),
            Who::Package(t) => WhoRow::Package(TransactionRow {
                manager: t.manager.clone(),
                started: t.started.clone(),
                user: t.user.clone(),
                uid: t.uid,
                command: t.command.clone(),
                action: t.action.clone(),
            }),
            Who::Unknown(why) => WhoRow::Unknown { why: why.clone() },
        }),
        authorisation: e.authorisation.as_ref().map(|a| match a {
            Authorisation::Authorised { change } => AuthorisationRow::Authorised {
                change: change.clone(),
            },
            Authorisation::Unauthorised => AuthorisationRow::Unauthorised,
        }),
        resolution: e.resolution.as_ref().map(|r| match r {
            Resolution::Reverted => ResolutionRow::Reverted,
            Resolution::ManifestChanged { commit } => ResolutionRow::ManifestChanged {
                commit: commit.clone(),
            },
            Resolution::PackageChanged => ResolutionRow::PackageChanged,
            Resolution::PeersChanged => ResolutionRow::PeersChanged,
        }),
    };
    serde_json::to_string(&row)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The evidence a column holds (NULL: none); `Corrupt`, naming `whose`, if it does not read.
pub(super) fn from_text(text: Option<&str>, whose: &dyn std::fmt::Display) -> Result<Evidence> {
    let Some(text) = text else {
        return Ok(Evidence::default());
    };
    let row: EvidenceRow = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{whose}'s evidence: {e}")))?;
    Ok(Evidence {
        who: row.who.map(|w| match w {
            WhoRow::Process(p) => Who::Process(Box::new(Process {
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
            })),
            WhoRow::Package(t) => Who::Package(Box::new(Transaction {
                manager: t.manager,
                started: t.started,
                user: t.user,
                uid: t.uid,
                command: t.command,
                action: t.action,
            })),
            WhoRow::Unknown { why } => Who::Unknown(why),
        }),
        authorisation: row.authorisation.map(|a| match a {
            AuthorisationRow::Authorised { change } => Authorisation::Authorised { change },
            AuthorisationRow::Unauthorised => Authorisation::Unauthorised,
        }),
        resolution: row.resolution.map(|r| match r {
            ResolutionRow::Reverted => Resolution::Reverted,
            ResolutionRow::ManifestChanged { commit } => Resolution::ManifestChanged { commit },
            ResolutionRow::PackageChanged => Resolution::PackageChanged,
            ResolutionRow::PeersChanged => Resolution::PeersChanged,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a row of this version holds: a change here is a change on disk, and must still
    /// read what earlier versions wrote.
    const ROW: &str = r#"{"who":{"kind":"process","origin":"manual","action":"rename","pid":42,"name":"sed","exe":"/usr/bin/sed","uid":0,"user":"root","login_uid":1000,"login_user":"alice","session":3,"tty":"pts/1","unit":"session-3.scope","container":"","parents":["bash","sshd"]},"authorisation":{"kind":"authorised","change":"CHG-1"}}"#;

    #[test]
    fn evidence_reads_back_as_written_and_nothing_is_null() {
        let e = from_text(Some(ROW), &"event 7").expect("reads");
        assert_eq!(to_text(&e).expect("writes").as_deref(), Some(ROW));
        let Some(Who::Process(p)) = &e.who else {
            panic!("{e:?}")
        };
        assert_eq!(
            (p.login_user.as_str(), p.uid, p.parents.len()),
            ("alice", Some(0), 2)
        );
        assert_eq!(to_text(&Evidence::default()).expect("writes"), None);
        assert_eq!(
            from_text(None, &"event 7").expect("reads"),
            Evidence::default()
        );
        for e in [
            Evidence {
                who: Some(Who::Unknown("gone".into())),
                resolution: Some(Resolution::ManifestChanged {
                    commit: "abc".into(),
                }),
                ..Default::default()
            },
            Evidence {
                who: Some(Who::Package(Box::new(Transaction {
                    manager: "apt".into(),
                    uid: Some(1000),
                    ..Default::default()
                }))),
                authorisation: Some(Authorisation::Unauthorised),
                resolution: Some(Resolution::PackageChanged),
            },
            Evidence {
                resolution: Some(Resolution::PeersChanged),
                ..Default::default()
            },
        ] {
            let text = to_text(&e).expect("writes");
            assert_eq!(from_text(text.as_deref(), &"x").expect("reads"), e);
        }
        let bad = from_text(Some(r#"{"who":{"kind":"alien"}}"#), &"event 9").expect_err("bad");
        assert!(bad.to_string().contains("event 9's evidence"), "{bad}");
    }
}
