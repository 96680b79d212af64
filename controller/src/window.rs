//! Change windows: a ticket's approval to change some hosts (by glob or label), optionally only
//! some paths and packages, for a while. Drift that opens or changes inside an active window
//! whose scope covers it is authorised, with the ticket; any other is unauthorised. Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::evidence::Authorisation;
use crate::manifest::HostIdentity;
use crate::manifest::glob::Glob;

/// What a change window covers. Empty host globs and labels: every host; empty paths and
/// packages: everything on the hosts it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub hosts: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Path globs: `*` within a name, `**` any depth (`/etc/nginx/**`).
    pub paths: Vec<String>,
    /// Package name globs.
    pub packages: Vec<String>,
}

/// A change window, as opened (`plumb change open`) and kept in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeWindow {
    /// The ticket, e.g. `CHG-1234`: the window's name, once.
    pub ticket: String,
    pub scope: Scope,
    pub from_ms: i64,
    pub until_ms: i64,
    /// Who opened it (the operator's certificate, or "local" without TLS).
    pub opened_by: String,
    pub reason: String,
    /// Closed before its end: when, and by whom.
    pub closed: Option<(i64, String)>,
    /// Whether its end has been recorded (`change_ended`).
    pub ended: bool,
}

impl ChangeWindow {
    /// When it stops authorising: its end, or when it was closed.
    pub fn ends_ms(&self) -> i64 {
        self.closed
            .as_ref()
            .map_or(self.until_ms, |(at, _)| (*at).min(self.until_ms))
    }

    pub fn active(&self, now_ms: i64) -> bool {
        self.from_ms <= now_ms && now_ms < self.ends_ms()
    }

    /// Whether its scope takes in `resource` (`file:PATH`, `package:NAME`) on `host`.
    pub fn covers(&self, host: &HostIdentity, resource: &str) -> bool {
        let s = &self.scope;
        let host_ok = s.hosts.is_empty()
            || s.hosts
                .iter()
                .any(|g| Glob::new(g).is_ok_and(|g| g.matches(&host.host_id)));
        let labels_ok = s.labels.iter().all(|(k, v)| host.labels.get(k) == Some(v));
        if !(host_ok && labels_ok) {
            return false;
        }
        if s.paths.is_empty() && s.packages.is_empty() {
            return true;
        }
        if let Some(path) = resource.strip_prefix("file:") {
            return s.paths.iter().any(|g| path_glob_matches(g, path));
        }
        if let Some(name) = resource.strip_prefix("package:") {
            return s
                .packages
                .iter()
                .any(|g| Glob::new(g).is_ok_and(|g| g.matches(name)));
        }
        false
    }

    /// The scope in one line: `hosts web-*; labels role=web; paths /etc/nginx/**`.
    pub fn scope_text(&self) -> String {
        let s = &self.scope;
        let mut parts = Vec::new();
        if !s.hosts.is_empty() {
            parts.push(format!("hosts {}", s.hosts.join(",")));
        }
        if !s.labels.is_empty() {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("labels {}", labels.join(",")));
        }
        if !s.paths.is_empty() {
            parts.push(format!("paths {}", s.paths.join(",")));
        }
        if !s.packages.is_empty() {
            parts.push(format!("packages {}", s.packages.join(",")));
        }
        if parts.is_empty() {
            "every host".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Whether drift on `resource` of `host` at `now_ms` is authorised, and by which window (of
/// several, the one ending last: the approval that holds longest).
pub fn authorise(
    windows: &[ChangeWindow],
    host: &HostIdentity,
    resource: &str,
    now_ms: i64,
) -> Authorisation {
    windows
        .iter()
        .filter(|w| w.active(now_ms) && w.covers(host, resource))
        .max_by_key(|w| (w.ends_ms(), w.ticket.clone()))
        .map_or(Authorisation::Unauthorised, |w| Authorisation::Authorised {
            change: w.ticket.clone(),
        })
}

/// Checks a ticket: letters, digits and `-_.:/#`, at most 128 characters.
pub fn check_ticket(ticket: &str) -> Result<(), String> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(format!(
            "ticket {ticket:?} must be 1 to 128 characters, e.g. CHG-1234"
        ));
    }
    if let Some(c) = ticket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:/#".contains(*c)))
    {
        return Err(format!(
            "ticket {ticket:?} cannot contain {c:?}: use letters, digits and - _ . : / #"
        ));
    }
    Ok(())
}

/// Checks a scope's globs; the error names the first bad one.
pub fn check_scope(scope: &Scope) -> Result<(), String> {
    for g in scope.hosts.iter().chain(&scope.packages) {
        Glob::new(g).map_err(|p| format!("{g:?}: {}", p.message))?;
    }
    for p in &scope.paths {
        if !p.starts_with('/') {
            return Err(format!(
                "path {p:?} must be absolute, e.g. /etc/nginx/** or /etc/motd"
            ));
        }
    }
    Ok(())
}

/// Whether path glob `glob` matches `path`: `*` and `?` within one name, `**` any number of
/// names (none included).
pub fn path_glob_matches(glob: &str, path: &str) -> bool {
    plumb_common::glob::path_matches(glob, path)
}

/// A summary of drift a window authorised that is still open when it ends, for its
/// `change_ended` entry.
pub fn ended_text(window: &ChangeWindow, still_open: &[(String, String)]) -> String {
    if still_open.is_empty() {
        return format!(
            "change {} ended with nothing it authorised still drifted",
            window.ticket
        );
    }
    let mut text = format!(
        "change {} ended with {} item{} still drifted: update the manifests or revert (",
        window.ticket,
        still_open.len(),
        if still_open.len() == 1 { "" } else { "s" }
    );
    for (i, (host, resource)) in still_open.iter().take(10).enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{host} {resource}");
    }
    if still_open.len() > 10 {
        let _ = write!(text, ", and {} more", still_open.len() - 10);
    }
    text.push(')');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, labels: &[(&str, &str)]) -> HostIdentity {
        HostIdentity {
            host_id: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            facts: Default::default(),
        }
    }

    fn window(ticket: &str, scope: Scope, from: i64, until: i64) -> ChangeWindow {
        ChangeWindow {
            ticket: ticket.into(),
            scope,
            from_ms: from,
            until_ms: until,
            opened_by: "alice".into(),
            reason: "nginx upgrade".into(),
            closed: None,
            ended: false,
        }
    }

    #[test]
    fn path_globs_take_names_and_depths() {
        for (glob, path, want) in [
            ("/etc/nginx/**", "/etc/nginx/nginx.conf", true),
            ("/etc/nginx/**", "/etc/nginx/sites/a.conf", true),
            ("/etc/nginx/**", "/etc/nginx", true),
            ("/etc/nginx/**", "/etc/nginxx/a", false),
            ("/etc/*.conf", "/etc/a.conf", true),
            ("/etc/*.conf", "/etc/sub/a.conf", false),
            ("/etc/**/*.conf", "/etc/a/b/c.conf", true),
            ("/etc/motd", "/etc/motd", true),
            ("/etc/motd", "/etc/motd.d", false),
            ("/etc/app?.conf", "/etc/app1.conf", true),
        ] {
            assert_eq!(path_glob_matches(glob, path), want, "{glob} {path}");
        }
    }

    #[test]
    fn a_window_covers_its_hosts_labels_paths_and_packages_while_active() {
        let nginx = Scope {
            hosts: vec!["web-*".into()],
            labels: [("zone".into(), "a".into())].into(),
            paths: vec!["/etc/nginx/**".into()],
            packages: vec!["nginx*".into()],
        };
        let w = window("CHG-1", nginx, 1_000, 2_000);
        let web = host("web-1", &[("zone", "a")]);
        assert!(w.covers(&web, "file:/etc/nginx/nginx.conf"));
        assert!(w.covers(&web, "package:nginx-common"));
        assert!(
            !w.covers(&web, "file:/etc/ssh/sshd_config"),
            "outside its paths"
        );
        assert!(!w.covers(&web, "package:openssh-server"));
        assert!(!w.covers(&host("web-1", &[("zone", "b")]), "file:/etc/nginx/x"));
        assert!(!w.covers(&host("db-1", &[("zone", "a")]), "file:/etc/nginx/x"));
        assert!(!w.active(999) && w.active(1_000) && w.active(1_999) && !w.active(2_000));
        let whole = window("CHG-2", Scope::default(), 0, 10);
        assert!(whole.covers(&host("any", &[]), "file:/etc/shadow"));
        assert_eq!(whole.scope_text(), "every host");
        assert_eq!(
            w.scope_text(),
            "hosts web-*; labels zone=a; paths /etc/nginx/**; packages nginx*"
        );
    }

    #[test]
    fn drift_is_authorised_by_an_active_covering_window_and_otherwise_not() {
        let web = host("web-1", &[]);
        let mut closed = window("CHG-3", Scope::default(), 100, 10_000);
        closed.closed = Some((500, "bob".into()));
        let windows = vec![
            window(
                "CHG-1",
                Scope {
                    paths: vec!["/etc/nginx/**".into()],
                    ..Default::default()
                },
                100,
                1_000,
            ),
            window(
                "CHG-2",
                Scope {
                    hosts: vec!["web-*".into()],
                    ..Default::default()
                },
                100,
                2_000,
            ),
            closed,
        ];
        let at = |h: &HostIdentity, resource: &str, now| authorise(&windows, h, resource, now);
        let by = |t: &str| Authorisation::Authorised { change: t.into() };
        let db = host("db-1", &[]);
        // Of several, the one that holds longest.
        assert_eq!(at(&web, "file:/etc/nginx/a", 200), by("CHG-2"));
        assert_eq!(
            at(&db, "file:/etc/nginx/a", 200),
            by("CHG-1"),
            "CHG-3 ends at 500"
        );
        assert_eq!(
            at(&db, "file:/etc/motd", 200),
            by("CHG-3"),
            "every host, until closed"
        );
        assert_eq!(
            at(&db, "file:/etc/motd", 600),
            Authorisation::Unauthorised,
            "closed at 500"
        );
        assert_eq!(
            at(&db, "file:/etc/nginx/a", 1_000),
            Authorisation::Unauthorised,
            "CHG-1 ended"
        );
        assert_eq!(at(&web, "file:/etc/motd", 1_999), by("CHG-2"));
        assert_eq!(
            at(&web, "file:/etc/motd", 2_000),
            Authorisation::Unauthorised
        );
        assert_eq!(
            at(&web, "file:/etc/motd", 50),
            Authorisation::Unauthorised,
            "before any"
        );
    }

    #[test]
    fn tickets_and_scopes_are_checked() {
        assert_eq!(check_ticket("CHG-1234"), Ok(()));
        assert_eq!(check_ticket("jira:OPS/42#3"), Ok(()));
        assert!(check_ticket("").is_err());
        assert!(
            check_ticket("two words")
                .expect_err("space")
                .contains("' '")
        );
        assert!(
            check_scope(&Scope {
                paths: vec!["etc/x".into()],
                ..Default::default()
            })
            .expect_err("relative")
            .contains("must be absolute")
        );
        assert!(
            check_scope(&Scope {
                hosts: vec!["".into()],
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn an_end_with_open_drift_says_what_to_do() {
        let w = window("CHG-9", Scope::default(), 0, 1);
        assert_eq!(
            ended_text(&w, &[]),
            "change CHG-9 ended with nothing it authorised still drifted"
        );
        let open: Vec<(String, String)> = (0..12)
            .map(|i| (format!("web-{i}"), "file:/etc/a".to_owned()))
            .collect();
        let text = ended_text(&w, &open[..3]);
        assert_eq!(
            text,
            "change CHG-9 ended with 3 items still drifted: update the manifests or revert (web-0 file:/etc/a, web-1 file:/etc/a, web-2 file:/etc/a)"
        );
        assert!(ended_text(&w, &open).ends_with(", and 2 more)"));
    }
}
