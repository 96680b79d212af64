//! What the package managers' own logs say of who changed a package, and how (issue 15, part
//! 2): apt's `history.log` (a transaction per paragraph: when, the command line, who asked)
//! and dpkg's `dpkg.log` (a line per action, without a user). Pure parsers over text; reading
//! the files under the root, rotated ones included, is the caller's.
//!
//! Logs are read while they are written: a paragraph without its `End-Date` is a transaction
//! still running (or cut off), kept and marked so; a last line without its newline may be cut
//! off mid-word, so it is left out rather than half read. Times are as logged, the host's local
//! time without a zone: `LocalTime` keeps them so, and converting them is the caller's.

/// A time as the logs write it: local, to the second, no zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl LocalTime {
    /// `2026-11-30 10:12:45` (apt writes two spaces between the two; either is taken).
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        let (date, time) = (parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let num = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u16>().ok())?
        };
        let mut d = date.split('-');
        let (year, month, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
        let mut t = time.split(':');
        let (hour, minute, second) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
        if d.next().is_some() || t.next().is_some() {
            return None;
        }
        let valid = (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61;
        valid.then_some(Self {
            year,
            month: month as u8,
            day: day as u8,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
        })
    }
}

/// What a transaction or an action did to a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Upgrade,
    Downgrade,
    Reinstall,
    Remove,
    Purge,
}

/// One package in an apt transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageChange {
    pub name: String,
    /// Empty where the log names none.
    pub arch: String,
    pub action: Action,
    /// The version before, where there was one.
    pub from: Option<String>,
    /// The version after, where there is one.
    pub to: Option<String>,
    /// Installed as a dependency, not asked for by name.
    pub automatic: bool,
}

/// One paragraph of apt's `history.log`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AptTransaction {
    pub start: Option<LocalTime>,
    /// `None`: still running when read, or cut off.
    pub end: Option<LocalTime>,
    pub commandline: Option<String>,
    /// The user who ran it through sudo (`Requested-By: alice (1000)`): name and uid.
    pub requested_by: Option<(String, u32)>,
    pub packages: Vec<PackageChange>,
}

/// Every transaction in `text`, oldest first as logged.
pub fn apt_history(text: &str) -> Vec<AptTransaction> {
    let mut out = Vec::new();
    let mut current: Option<AptTransaction> = None;
    for line in complete_lines(text) {
        let line = line.trim_end();
        if line.is_empty() {
            out.extend(current.take());
            continue;
        }
        let Some((field, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        if field == "Start-Date" {
            if current.as_ref().is_some_and(|t| t.start.is_some()) {
                // A new paragraph without the blank line between (a log cut and appended
                // to): the one before ends here.
                out.extend(current.take());
            }
            current.get_or_insert_with(AptTransaction::default).start = LocalTime::parse(value);
            continue;
        }
        let t = current.get_or_insert_with(AptTransaction::default);
        match field {
            "End-Date" => t.end = LocalTime::parse(value),
            "Commandline" => t.commandline = Some(value.to_owned()),
            "Requested-By" => t.requested_by = requested_by(value),
            "Install" | "Upgrade" | "Downgrade" | "Reinstall" | "Remove" | "Purge" => {
                let action = match field {
                    "Install" => Action::Install,
                    "Upgrade" => Action::Upgrade,
                    "Downgrade" => Action::Downgrade,
                    "Reinstall" => Action::Reinstall,
                    "Remove" => Action::Remove,
                    _ => Action::Purge,
                };
                t.packages.extend(package_list(value, action));
            }
            _ => {}
        }
    }
    out.extend(current);
    out
}

/// The lines of `text` that end in a newline: a last line without one may be cut off.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines()
}

/// `alice (1000)`.
fn requested_by(value: &str) -> Option<(String, u32)> {
    let (name, rest) = value.rsplit_once(" (")?;
    let uid = rest.strip_suffix(')')?.parse().ok()?;
    Some((name.trim().to_owned(), uid))
}

/// `nginx:amd64 (1.22.1-9), libssl3:amd64 (3.0.11-1, 3.0.11-2), zlib1g:amd64 (1:1.2.13, automatic)`.
/// An item without its closing parenthesis (a cut line) is left out.
fn package_list(value: &str, action: Action) -> Vec<PackageChange> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find(" (") {
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let name_arch = rest[..open].trim().trim_start_matches(',').trim();
        let inside: Vec<&str> = rest[open + 2..open + close]
            .split(", ")
            .map(str::trim)
            .collect();
        rest = &rest[open + close + 1..];
        let automatic = inside.last() == Some(&"automatic");
        let versions: Vec<&str> = inside
            .iter()
            .copied()
            .filter(|v| *v != "automatic" && !v.is_empty())
            .collect();
        let (from, to) = match (action, versions.as_slice()) {
            (Action::Upgrade | Action::Downgrade, [old, new]) => (Some(*old), Some(*new)),
            (Action::Install | Action::Reinstall, [new]) => (None, Some(*new)),
            (Action::Remove | Action::Purge, [old]) => (Some(*old), None),
            _ => continue,
        };
        let (name, arch) = name_arch.split_once(':').unwrap_or((name_arch, ""));
        if name.is_empty() {
            continue;
        }
        out.push(PackageChange {
            name: name.to_owned(),
            arch: arch.to_owned(),
            action,
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            automatic,
        });
    }
    out
}

/// One action line of `dpkg.log` (its status and startup lines are not actions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgAction {
    pub at: LocalTime,
    pub action: Action,
    pub name: String,
    pub arch: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Every action in `text`, oldest first as logged. dpkg writes `install` for a package that
/// was there before too (its old version is then not `<none>`): that is an upgrade, a
/// downgrade or a reinstall, which the versions alone cannot tell apart; it is said as an
/// upgrade when the versions differ and a reinstall when they do not.
pub fn dpkg_log(text: &str) -> Vec<DpkgAction> {
    let mut out = Vec::new();
    for line in complete_lines(text) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [date, time, verb, package, old, new] = fields.as_slice() else {
            continue;
        };
        let Some(at) = LocalTime::parse(&format!("{date} {time}")) else {
            continue;
        };
        let version = |v: &str| (v != "<none>").then(|| v.to_owned());
        let (from, to) = (version(old), version(new));
        let action = match (*verb, &from, &to) {
            ("install", None, Some(_)) => Action::Install,
            ("install" | "upgrade", Some(f), Some(t)) if f == t => Action::Reinstall,
            ("install" | "upgrade", Some(_), Some(_)) => Action::Upgrade,
            ("remove", Some(_), _) => Action::Remove,
            ("purge", _, _) => Action::Purge,
            _ => continue,
        };
        let (name, arch) = package.split_once(':').unwrap_or((package, ""));
        out.push(DpkgAction {
            at,
            action,
            name: name.to_owned(),
            arch: arch.to_owned(),
            from,
            to,
        });
    }
    out
}

/// The newest transaction that changed `name` (of `arch`, where given) and left it at
/// `version` (`None`: removed), with its change: who to name for a package's drift.
pub fn apt_transaction_for<'a>(
    history: &'a [AptTransaction],
    name: &str,
    arch: &str,
    version: Option<&str>,
) -> Option<(&'a AptTransaction, &'a PackageChange)> {
    history.iter().rev().find_map(|t| {
        t.packages
            .iter()
            .find(|p| {
                p.name == name && (arch.is_empty() || p.arch == arch) && p.to.as_deref() == version
            })
            .map(|p| (t, p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> LocalTime {
        LocalTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    const HISTORY: &str = "\
Start-Date: 2026-11-30  10:12:45
Commandline: apt-get install -y nginx
Requested-By: alice (1000)
Install: nginx:amd64 (1.22.1-9), nginx-common:amd64 (1.22.1-9, automatic)
Upgrade: libssl3:amd64 (3.0.11-1~deb12u1, 3.0.11-1~deb12u2)
End-Date: 2026-11-30  10:12:50

Start-Date: 2026-12-01  08:00:01
Commandline: /usr/bin/unattended-upgrade
Upgrade: zlib1g:amd64 (1:1.2.13.dfsg-1, 1:1.2.13.dfsg-1+b1)
Remove: telnet:amd64 (0.17+2.4-2)
Purge: old-tool:amd64 (2.0-1)
End-Date: 2026-12-01  08:00:09
";

    #[test]
    fn apt_transactions_say_when_who_how_and_what() {
        let h = apt_history(HISTORY);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].start, Some(at(2026, 11, 30, 10, 12, 45)));
        assert_eq!(h[0].end, Some(at(2026, 11, 30, 10, 12, 50)));
        assert_eq!(
            h[0].commandline.as_deref(),
            Some("apt-get install -y nginx")
        );
        assert_eq!(h[0].requested_by, Some(("alice".into(), 1000)));
        type Row<'a> = (
            &'a str,
            &'a str,
            Action,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let changes: Vec<Row<'_>> = h
            .iter()
            .flat_map(|t| &t.packages)
            .map(|p| {
                (
                    p.name.as_str(),
                    p.arch.as_str(),
                    p.action,
                    p.from.as_deref(),
                    p.to.as_deref(),
                    p.automatic,
                )
            })
            .collect();
        assert_eq!(
            changes,
            [
                (
                    "nginx",
                    "amd64",
                    Action::Install,
                    None,
                    Some("1.22.1-9"),
                    false
                ),
                (
                    "nginx-common",
                    "amd64",
                    Action::Install,
                    None,
                    Some("1.22.1-9"),
                    true
                ),
                (
                    "libssl3",
                    "amd64",
                    Action::Upgrade,
                    Some("3.0.11-1~deb12u1"),
                    Some("3.0.11-1~deb12u2"),
                    false
                ),
                (
                    "zlib1g",
                    "amd64",
                    Action::Upgrade,
                    Some("1:1.2.13.dfsg-1"),
                    Some("1:1.2.13.dfsg-1+b1"),
                    false
                ),
                (
                    "telnet",
                    "amd64",
                    Action::Remove,
                    Some("0.17+2.4-2"),
                    None,
                    false
                ),
                (
                    "old-tool",
                    "amd64",
                    Action::Purge,
                    Some("2.0-1"),
                    None,
                    false
                ),
            ]
        );
        assert_eq!(
            h[1].requested_by, None,
            "unattended-upgrades runs as no one's"
        );
    }

    #[test]
    fn a_transaction_being_written_is_kept_and_a_cut_line_is_left_out() {
        // Running: no End-Date yet, and the last line still being written.
        let running = "Start-Date: 2026-12-02  09:00:00\nCommandline: apt install vim\nRequested-By: bob (1001)\nInstall: vim:amd64 (2:9.0.1378-2), vim-runtime:all (2:9.0.13";
        let h = apt_history(running);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].end, None, "still running");
        assert_eq!(h[0].requested_by, Some(("bob".into(), 1001)));
        assert!(h[0].packages.is_empty(), "the cut line is not half read");
        // The same line complete, but its last item cut: the complete items only.
        let cut = "Start-Date: 2026-12-02  09:00:00\nInstall: vim:amd64 (2:9.0.1378-2), vim-runtime:all (2:9.0.13\n";
        let h = apt_history(cut);
        let names: Vec<&str> = h[0].packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["vim"]);
        // Two paragraphs run together (a log cut and appended to): two transactions.
        let joined = "Start-Date: 2026-12-02  09:00:00\nInstall: a:amd64 (1)\nStart-Date: 2026-12-02  09:05:00\nRemove: b:amd64 (2)\nEnd-Date: 2026-12-02  09:05:01\n";
        let h = apt_history(joined);
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].end, h[1].end), (None, Some(at(2026, 12, 2, 9, 5, 1))));
    }

    #[test]
    fn garbage_is_no_transaction_and_no_panic() {
        for text in [
            "",
            "\n\n\n",
            "Start-Date: yesterday\n",
            "Install: (((\n",
            "Install: a:amd64 (1, 2, 3)\n",
            "Requested-By: alice (x)\n",
            "Start-Date: 2026-13-40  25:61:61\n",
        ] {
            for t in apt_history(text) {
                assert!(t.packages.is_empty(), "{text:?}: {t:?}");
                assert_eq!(t.start, None, "{text:?}");
                assert_eq!(t.requested_by, None, "{text:?}");
            }
        }
    }

    #[test]
    fn dpkg_actions_are_read_and_its_other_lines_skipped() {
        let log = "\
2026-12-02 09:00:01 startup archives unpack
2026-12-02 09:00:01 install hello:amd64 <none> 2.10-3
2026-12-02 09:00:01 status half-installed hello:amd64 2.10-3
2026-12-02 09:00:02 upgrade libc6:amd64 2.36-9 2.36-9+deb12u4
2026-12-02 09:00:02 install libc-bin:amd64 2.36-9 2.36-9+deb12u4
2026-12-02 09:00:03 install tzdata:all 2024a-0 2024a-0
2026-12-02 09:00:04 remove telnet:amd64 0.17+2.4-2 <none>
2026-12-02 09:00:05 purge telnet:amd64 0.17+2.4-2 <none>
2026-12-02 09:00:06 configure hello:amd64 2.10-3 <none>
2026-12-02 09:00:07 install cut:amd64 <none> 1.";
        let actions: Vec<(String, Action, Option<String>, Option<String>)> = dpkg_log(log)
            .into_iter()
            .map(|a| (a.name, a.action, a.from, a.to))
            .collect();
        let v = |s: &str| Some(s.to_owned());
        assert_eq!(
            actions,
            [
                ("hello".into(), Action::Install, None, v("2.10-3")),
                (
                    "libc6".into(),
                    Action::Upgrade,
                    v("2.36-9"),
                    v("2.36-9+deb12u4")
                ),
                (
                    "libc-bin".into(),
                    Action::Upgrade,
                    v("2.36-9"),
                    v("2.36-9+deb12u4")
                ),
                (
                    "tzdata".into(),
                    Action::Reinstall,
                    v("2024a-0"),
                    v("2024a-0")
                ),
                ("telnet".into(), Action::Remove, v("0.17+2.4-2"), None),
                ("telnet".into(), Action::Purge, v("0.17+2.4-2"), None),
            ]
        );
        assert_eq!(dpkg_log(log)[0].at, at(2026, 12, 2, 9, 0, 1));
    }

    #[test]
    fn the_newest_transaction_that_left_a_package_at_a_version_is_found() {
        let h = apt_history(HISTORY);
        let (t, p) =
            apt_transaction_for(&h, "libssl3", "amd64", Some("3.0.11-1~deb12u2")).expect("found");
        assert_eq!(t.requested_by, Some(("alice".into(), 1000)));
        assert_eq!(p.action, Action::Upgrade);
        let (t, _) = apt_transaction_for(&h, "telnet", "", None).expect("removed");
        assert_eq!(
            t.commandline.as_deref(),
            Some("/usr/bin/unattended-upgrade")
        );
        assert!(apt_transaction_for(&h, "libssl3", "amd64", Some("9.9")).is_none());
        assert!(apt_transaction_for(&h, "nginx", "arm64", Some("1.22.1-9")).is_none());
    }
}
