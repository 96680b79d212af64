//! Pure: who may do what. A person comes with a role (from the operator certificate, or from
//! the header an authenticating proxy sets for the console), and each request names the
//! `Action` it needs; a refusal says which roles may.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::glob::Glob;

/// What a person may do, by the role their identity carries.
///
/// Ordered by what they allow: each role may do all that the ones before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the fleet: hosts, drift, acknowledgements, change windows, live events.
    Viewer,
    /// Reads, and audits: the event log, reports, the chain's verification; no content.
    Auditor,
    /// Reads, and acts on drift: the event log, diffs of content the manifests allow,
    /// acknowledgements and their revocation.
    Operator,
    /// Everything, and change windows (the approvals that make drift authorised).
    Admin,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Hosts, drift, acknowledgements, change windows, live events.
    Read,
    /// The event log (history, reports, the chain's verification status).
    ReadLog,
    /// A file's content, through a diff.
    ReadContent,
    /// Acknowledge drift, or revoke an acknowledgement.
    Acknowledge,
    /// Open or close a change window.
    ManageChanges,
}

pub const ROLES: [Role; 4] = [Role::Viewer, Role::Operator, Role::Auditor, Role::Admin];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        ROLES.into_iter().find(|r| r.as_str() == s)
    }

    pub fn may(self, action: Action) -> bool {
        match action {
            Action::Read => true,
            Action::ReadLog => self != Role::Viewer,
            Action::ReadContent | Action::Acknowledge => {
                matches!(self, Role::Operator | Role::Admin)
            }
            Action::ManageChanges => self == Role::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    /// What it is, for a refusal: "… may not {what}".
    pub fn what(self) -> &'static str {
        match self {
            Action::Read => "query the fleet",
            Action::ReadLog => "read the event log",
            Action::ReadContent => "read file content (diff)",
            Action::Acknowledge => "acknowledge drift or revoke an acknowledgement",
            Action::ManageChanges => "open or close change windows",
        }
    }

    /// The roles that may, as a person reads them: "operator or admin".
    pub fn roles(self) -> String {
        let may: Vec<&str> = ROLES
            .into_iter()
            .filter(|r| r.may(self))
            .map(Role::as_str)
            .collect();
        match may.as_slice() {
            [one] => format!("the {one} role"),
            [init @ .., last] => format!("the {} or {last} role", init.join(", ")),
            [] => "a role no one has".to_owned(),
        }
    }
}

/// Someone asking: a name, a role, and the hosts they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

/// The hosts a person may see: the whole fleet, or those any of its selectors selects. Hosts
/// outside it do not exist for them: not listed, not followed, not read, not acted on, and
/// the controller's own entries (manifest sets, change windows, reads) are not theirs either.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub selectors: Vec<Selector>,
}

/// Hosts by id glob (any of them; none: every id) and labels (all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub hosts: Vec<Glob>,
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    fn selects(&self, host_id: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|g| g.matches(host_id)))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

impl Scope {
    /// The whole fleet.
    pub fn whole(&self) -> bool {
        self.selectors.is_empty()
    }

    pub fn sees(&self, host_id: &str, labels: &BTreeMap<String, String>) -> bool {
        self.whole() || self.selectors.iter().any(|s| s.selects(host_id, labels))
    }

    /// As a person reads it: "hosts web-*, label role=web; or hosts db-*".
    pub fn describe(&self) -> String {
        if self.whole() {
            return "every host".to_owned();
        }
        self.selectors
            .iter()
            .map(|s| {
                let mut parts = Vec::new();
                if !s.hosts.is_empty() {
                    let globs: Vec<&str> = s.hosts.iter().map(Glob::as_str).collect();
                    parts.push(format!("hosts {}", globs.join(" ")));
                }
                for (k, v) in &s.labels {
                    parts.push(format!("label {k}={v}"));
                }
                parts.join(", ")
            })
            .collect::<Vec<_>>()
            .join("; or ")
    }
}

impl Person {
    /// Without TLS (`plumb dev`, a loopback listener) nobody is checked: the local user is an
    /// admin, named "local" in what is recorded.
    pub fn local() -> Person {
        Person {
            name: "local".to_owned(),
            role: Role::Admin,
            scope: Scope::default(),
        }
    }

    /// Whether this person may do `action`; if not, why, naming the roles that may.
    pub fn allow(&self, action: Action) -> Result<(), Refusal> {
        if self.role.may(action) {
            Ok(())
        } else {
            Err(Refusal {
                person: self.clone(),
                action,
            })
        }
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// A person's request their role does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{person} may not {}: that needs {}", action.what(), action.roles())]
pub struct Refusal {
    pub person: Person,
    pub action: Action,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_what_the_issue_lists() {
        use Action::*;
        let table = [
            (Role::Viewer, [true, false, false, false, false]),
            (Role::Operator, [true, true, true, true, false]),
            (Role::Auditor, [true, true, false, false, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, expect) in table {
            let got = [Read, ReadLog, ReadContent, Acknowledge, ManageChanges].map(|a| role.may(a));
            assert_eq!(got, expect, "{role}");
        }
    }

    #[test]
    fn a_refusal_names_the_roles_that_may() {
        let viewer = Person {
            name: "vic".into(),
            role: Role::Viewer,
            scope: Scope::default(),
        };
        let e = viewer.allow(Action::Acknowledge).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "vic (viewer) may not acknowledge drift or revoke an acknowledgement: that needs the operator or admin role"
        );
        let auditor = Person {
            name: "ann".into(),
            role: Role::Auditor,
            scope: Scope::default(),
        };
        assert_eq!(
            auditor
                .allow(Action::ReadContent)
                .expect_err("no diff")
                .to_string(),
            "ann (auditor) may not read file content (diff): that needs the operator or admin role"
        );
        assert_eq!(
            Action::ReadLog.roles(),
            "the operator, auditor or admin role"
        );
        assert_eq!(Action::ManageChanges.roles(), "the admin role");
        assert!(Person::local().allow(Action::ManageChanges).is_ok());
    }

    #[test]
    fn a_scope_selects_hosts_by_glob_or_label() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let scope = Scope {
            selectors: vec![
                Selector {
                    hosts: vec![Glob::new("web-*").expect("glob")],
                    labels: labels(&[("env", "prod")]),
                },
                Selector {
                    hosts: Vec::new(),
                    labels: labels(&[("role", "db")]),
                },
            ],
        };
        assert!(scope.sees("web-1", &labels(&[("env", "prod")])));
        assert!(
            !scope.sees("web-1", &labels(&[("env", "dev")])),
            "labels must all hold"
        );
        assert!(!scope.sees("api-1", &labels(&[("env", "prod")])));
        assert!(
            scope.sees("anything", &labels(&[("role", "db")])),
            "either selector"
        );
        assert_eq!(
            scope.describe(),
            "hosts web-*, label env=prod; or label role=db"
        );
        assert!(Scope::default().sees("x", &BTreeMap::new()));
    }
}
