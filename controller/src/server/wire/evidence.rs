//! Evidence on the wire: who an agent says made a change (checked like everything an agent
//! sends), and the evidence the query API answers with, both ways.

use plumb_proto::v1;

use super::{MAX_TEXT, Malformed};
use crate::evidence::{Authorisation, Evidence, Process, Resolution, Transaction, Who};

/// Ancestors an agent may name; it sends a few.
const MAX_PARENTS: usize = 16;

/// Who an agent says made the change to `what` (a path or a package), checked: `None` when it
/// says nothing.
pub(super) fn who_from_agent(w: Option<v1::Who>, what: &str) -> Result<Option<Who>, Malformed> {
    let Some(who) = w.and_then(|w| w.who) else {
        return Ok(None);
    };
    let too_long = || Malformed::Who(what.to_owned());
    let check = |texts: &[&String]| {
        if texts.iter().any(|t| t.len() > MAX_TEXT) {
            Err(too_long())
        } else {
            Ok(())
        }
    };
    let who = who_from_proto(who);
    match &who {
        Who::Process(p) => {
            check(&[
                &p.origin,
                &p.action,
                &p.name,
                &p.exe,
                &p.user,
                &p.login_user,
                &p.tty,
                &p.unit,
                &p.container,
                &p.command_line,
            ])?;
            if p.parents.len() > MAX_PARENTS || p.parents.iter().any(|n| n.len() > MAX_TEXT) {
                return Err(too_long());
            }
        }
        Who::Package(t) => check(&[&t.manager, &t.started, &t.user, &t.command, &t.action])?,
        Who::Unknown(why) => check(&[why])?,
    }
    Ok(Some(who))
}

fn who_from_proto(w: v1::who::Who) -> Who {
    match w {
        v1::who::Who::Process(p) => Who::Process(Box::new(Process {
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
        v1::who::Who::Package(t) => Who::Package(Box::new(Transaction {
            manager: t.manager,
            started: t.started,
            user: t.user,
            uid: t.uid,
            command: t.command,
            action: t.action,
        })),
        v1::who::Who::Unknown(why) => Who::Unknown(why),
    }
}

fn who_to_proto(w: &Who) -> v1::Who {
    let who = match w {
        Who::Process(p) => v1::who::Who::Process(v1::ProcessIdentity {
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
        Who::Package(t) => v1::who::Who::Package(v1::PackageTransaction {
            manager: t.manager.clone(),
            started: t.started.clone(),
            user: t.user.clone(),
            uid: t.uid,
            command: t.command.clone(),
            action: t.action.clone(),
        }),
        Who::Unknown(why) => v1::who::Who::Unknown(why.clone()),
    };
    v1::Who { who: Some(who) }
}

/// `None` when there is no evidence to give.
pub(crate) fn evidence_to_proto(e: &Evidence) -> Option<v1::Evidence> {
    use v1::resolution::How;
    (!e.is_empty()).then(|| v1::Evidence {
        who: e.who.as_ref().map(who_to_proto),
        authorisation: e.authorisation.as_ref().map(|a| match a {
            Authorisation::Authorised { change } => v1::Authorisation {
                authorised: true,
                change: change.clone(),
            },
            Authorisation::Unauthorised => v1::Authorisation {
                authorised: false,
                change: String::new(),
            },
        }),
        resolution: e.resolution.as_ref().map(|r| {
            let (how, commit) = match r {
                Resolution::Reverted => (How::Reverted, ""),
                Resolution::ManifestChanged { commit } => (How::ManifestChanged, commit.as_str()),
                Resolution::PackageChanged => (How::PackageChanged, ""),
                Resolution::PeersChanged => (How::PeersChanged, ""),
            };
            v1::Resolution {
                how: how as i32,
                commit: commit.to_owned(),
            }
        }),
    })
}

/// The evidence a controller answered with; what this plumb does not know reads as nothing.
pub(crate) fn evidence_from_proto(e: Option<v1::Evidence>) -> Evidence {
    use v1::resolution::How;
    let Some(e) = e else {
        return Evidence::default();
    };
    Evidence {
        who: e.who.and_then(|w| w.who).map(who_from_proto),
        authorisation: e.authorisation.map(|a| {
            if a.authorised {
                Authorisation::Authorised { change: a.change }
            } else {
                Authorisation::Unauthorised
            }
        }),
        resolution: e.resolution.and_then(|r| match How::try_from(r.how) {
            Ok(How::Reverted) => Some(Resolution::Reverted),
            Ok(How::ManifestChanged) => Some(Resolution::ManifestChanged { commit: r.commit }),
            Ok(How::PackageChanged) => Some(Resolution::PackageChanged),
            Ok(How::PeersChanged) => Some(Resolution::PeersChanged),
            _ => None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_crosses_the_query_api_unchanged() {
        let cases = [
            Evidence::default(),
            Evidence {
                who: Some(Who::Process(Box::new(Process {
                    origin: "manual".into(),
                    pid: 7,
                    uid: Some(0),
                    login_uid: Some(1000),
                    parents: vec!["bash".into()],
                    ..Default::default()
                }))),
                authorisation: Some(Authorisation::Authorised {
                    change: "CHG-9".into(),
                }),
                resolution: None,
            },
            Evidence {
                who: Some(Who::Unknown("gone".into())),
                authorisation: Some(Authorisation::Unauthorised),
                resolution: Some(Resolution::ManifestChanged {
                    commit: "abc123".into(),
                }),
            },
            Evidence {
                who: Some(Who::Package(Box::new(Transaction {
                    manager: "apt".into(),
                    uid: None,
                    ..Default::default()
                }))),
                authorisation: None,
                resolution: Some(Resolution::PackageChanged),
            },
            Evidence {
                resolution: Some(Resolution::PeersChanged),
                ..Default::default()
            },
        ];
        for e in cases {
            assert_eq!(evidence_from_proto(evidence_to_proto(&e)), e);
        }
    }

    #[test]
    fn an_agent_naming_too_much_is_refused() {
        let who = |parents: usize, name: usize| v1::Who {
            who: Some(v1::who::Who::Process(v1::ProcessIdentity {
                name: "x".repeat(name),
                parents: vec!["p".into(); parents],
                ..Default::default()
            })),
        };
        assert!(who_from_agent(Some(who(3, 15)), "/etc/a").is_ok());
        assert_eq!(
            who_from_agent(Some(who(MAX_PARENTS + 1, 15)), "/etc/a"),
            Err(Malformed::Who("/etc/a".into()))
        );
        assert_eq!(
            who_from_agent(Some(who(1, MAX_TEXT + 1)), "/etc/a"),
            Err(Malformed::Who("/etc/a".into()))
        );
        assert_eq!(who_from_agent(None, "/etc/a"), Ok(None));
        assert_eq!(
            who_from_agent(Some(v1::Who { who: None }), "/etc/a"),
            Ok(None)
        );
    }
}
