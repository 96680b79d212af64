//! Evidence of a change, kept with the drift it opened and in the event log's entry: who made
//! it (the process the agent saw write, or the package manager's own history), whether an
//! open change window authorised it, and how drift was put right. Pure: values and their
//! one-line wording.

use std::fmt;

/// What an event or an open drift item says beyond its values. Empty for entries made before
/// there was evidence, and for events it does not apply to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Who made the change (for a resolution: who put it back).
    pub who: Option<Who>,
    /// Whether a change window covered the drift when it opened or changed.
    pub authorisation: Option<Authorisation>,
    /// How the drift resolved (resolved events only).
    pub resolution: Option<Resolution>,
}

impl Evidence {
    /// Who, for a table: the writer's line, `-` when nothing is known.
    pub fn who_line(&self) -> String {
        self.who
            .as_ref()
            .map_or_else(|| "-".into(), ToString::to_string)
    }

    /// Authorisation, for a table: the change's ticket, `unauthorised`, or `-` for drift
    /// recorded before authorisation existed.
    pub fn authorisation_cell(&self) -> String {
        match &self.authorisation {
            Some(Authorisation::Authorised { change }) => change.clone(),
            Some(Authorisation::Unauthorised) => "unauthorised".into(),
            None => "-".into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.who.is_none() && self.authorisation.is_none() && self.resolution.is_none()
    }

    /// Unauthorised drift: opened or changed outside every change window that covers it.
    /// Drift recorded before authorisation existed counts as unauthorised: nothing approved it.
    pub fn unauthorised(&self) -> bool {
        !matches!(self.authorisation, Some(Authorisation::Authorised { .. }))
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The process the agent saw make it (boxed: kept with every open drift item, most of
    /// which have none).
    Process(Box<Process>),
    /// The package manager's history: the transaction that left the package as it is.
    Package(Box<Transaction>),
    /// Not known, and why, in the agent's or the controller's words (e.g. "the writer exited
    /// before it could be identified"). Never a guess.
    Unknown(String),
}

impl Who {
    /// One word a report can group by: the package manager or configuration tool that made the
    /// change (`apt`, `dpkg`, `rpm`, `puppet`, `ansible`, …), `manual` for a person's login
    /// session, `service` for a process outside any login, `unknown`.
    pub fn origin(&self) -> &str {
        match self {
            Who::Process(p) => &p.origin,
            Who::Package(t) => &t.manager,
            Who::Unknown(_) => "unknown",
        }
    }
}

/// A process as the agent identified it when it wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    /// One word (see `Who::origin`).
    pub origin: String,
    /// What it did to the path: `write`, `rename`, `attributes`, `create` or `delete`.
    pub action: String,
    pub pid: u32,
    /// Its name (comm).
    pub name: String,
    pub exe: String,
    pub uid: Option<u32>,
    pub user: String,
    /// The audit login uid: the person who logged in, through `sudo` and `su`.
    pub login_uid: Option<u32>,
    pub login_user: String,
    pub session: Option<u32>,
    pub tty: String,
    /// The systemd unit it ran in (from its cgroup).
    pub unit: String,
    /// The container it ran in (from its cgroup).
    pub container: String,
    /// Its ancestors' names, nearest first.
    pub parents: Vec<String>,
    /// Only where the agent was told to send command lines, never for sensitive paths.
    pub command_line: String,
}

/// One package manager transaction, as its own log recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// `apt`, `dpkg`, `dnf`, `yum`, `pacman`, `apk`.
    pub manager: String,
    /// When it started, as the log gives it (local time, without a zone).
    pub started: String,
    /// Who asked for it (apt's Requested-By), where the log says.
    pub user: String,
    pub uid: Option<u32>,
    /// Its command line, as the log gives it.
    pub command: String,
    /// What it did to this package, e.g. `upgrade 1.2-1 -> 1.3-1`.
    pub action: String,
}

/// Whether a change window authorised drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorisation {
    /// An open change window's scope covered it: its ticket.
    Authorised {
        change: String,
    },
    Unauthorised,
}

/// How drift was put right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The host was put back as declared (by `Evidence::who`, where known).
    Reverted,
    /// The manifests changed so that what the host has is what is declared, or it is no
    /// longer declared: their git commit (or folder).
    ManifestChanged { commit: String },
    /// The package changed to a version the manifests accept (an upgrade, a reinstall).
    PackageChanged,
    /// The host's group changed (a baseline's majority or reference): what the host has is
    /// what it is compared with now, though the host itself did not change.
    PeersChanged,
}

impl fmt::Display for Who {
    /// `alice as root: sed [pts/1]`, `root: dpkg (apt) [apt-daily-upgrade.service]`,
    /// `apt: alice (1000) ran "apt-get install nginx"`, `unknown: why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Process(p) => {
                let user = name_or_id(&p.user, p.uid);
                match (p.login_uid, user.as_str()) {
                    (Some(l), u) if Some(l) != p.uid => {
                        write!(f, "{} as {u}", name_or_id(&p.login_user, Some(l)))?
                    }
                    _ => f.write_str(&user)?,
                }
                write!(f, ": {}", if p.name.is_empty() { "?" } else { &p.name })?;
                if !matches!(p.origin.as_str(), "" | "manual" | "service" | "unknown")
                    && p.origin != p.name
                {
                    write!(f, " ({})", p.origin)?;
                }
                let place: Vec<&str> = [p.tty.as_str(), p.container.as_str(), p.unit.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(place) = place.first() {
                    write!(f, " [{place}]")?;
                }
                Ok(())
            }
            Who::Package(t) => {
                write!(f, "{}", t.manager)?;
                if !t.user.is_empty() || t.uid.is_some() {
                    write!(f, ": {}", name_or_id(&t.user, t.uid))?;
                }
                if !t.command.is_empty() {
                    write!(f, " ran \"{}\"", t.command)?;
                }
                Ok(())
            }
            Who::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

fn name_or_id(name: &str, id: Option<u32>) -> String {
    match (name, id) {
        ("", Some(id)) => format!("uid {id}"),
        ("", None) => "?".into(),
        (name, _) => name.to_owned(),
    }
}

impl fmt::Display for Authorisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authorisation::Authorised { change } => write!(f, "authorised by {change}"),
            Authorisation::Unauthorised => f.write_str("unauthorised"),
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolution::Reverted => f.write_str("reverted on the host"),
            Resolution::ManifestChanged { commit } => {
                write!(f, "made desired by a manifest change ({commit})")
            }
            Resolution::PackageChanged => f.write_str("package changed"),
            Resolution::PeersChanged => {
                f.write_str("the hosts it is compared with changed to what it has")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(user: &str, uid: u32, login: Option<(&str, u32)>) -> Process {
        Process {
            origin: "manual".into(),
            action: "rename".into(),
            pid: 42,
            name: "sed".into(),
            exe: "/usr/bin/sed".into(),
            uid: Some(uid),
            user: user.into(),
            login_uid: login.map(|l| l.1),
            login_user: login.map(|l| l.0.to_owned()).unwrap_or_default(),
            tty: "pts/1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn who_reads_as_one_line() {
        let cases = [
            (
                Who::Process(Box::new(process("root", 0, Some(("alice", 1000))))),
                "alice as root: sed [pts/1]",
            ),
            (
                Who::Process(Box::new(process("alice", 1000, Some(("alice", 1000))))),
                "alice: sed [pts/1]",
            ),
            (
                Who::Process(Box::new(Process {
                    origin: "apt".into(),
                    name: "dpkg".into(),
                    uid: Some(0),
                    user: "root".into(),
                    unit: "apt-daily-upgrade.service".into(),
                    ..Default::default()
                })),
                "root: dpkg (apt) [apt-daily-upgrade.service]",
            ),
            (
                Who::Process(Box::new(Process {
                    uid: Some(4321),
                    name: "cp".into(),
                    ..Default::default()
                })),
                "uid 4321: cp",
            ),
            (
                Who::Package(Box::new(Transaction {
                    manager: "apt".into(),
                    user: "alice".into(),
                    uid: Some(1000),
                    command: "apt-get install nginx".into(),
                    ..Default::default()
                })),
                "apt: alice ran \"apt-get install nginx\"",
            ),
            (
                Who::Unknown("the writer exited before it could be identified".into()),
                "unknown (the writer exited before it could be identified)",
            ),
        ];
        for (who, line) in cases {
            assert_eq!(who.to_string(), line);
        }
    }

    #[test]
    fn only_an_authorising_window_makes_drift_authorised() {
        let mut e = Evidence::default();
        assert!(e.is_empty() && e.unauthorised());
        e.authorisation = Some(Authorisation::Unauthorised);
        assert!(e.unauthorised());
        e.authorisation = Some(Authorisation::Authorised {
            change: "CHG-1".into(),
        });
        assert!(!e.unauthorised() && !e.is_empty());
    }
}
