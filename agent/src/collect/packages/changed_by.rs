//! Who changed a package, without any capability: the newest transaction in the package
//! managers' own logs (under the root, rotated and compressed ones included) that left it as it
//! is now. apt's `history.log` names the user and the command; `dpkg.log`, `pacman.log`,
//! `dnf.rpm.log` and `yum.log` only what was done and when (pacman's the command too). apk keeps
//! no history. A change no log names is said to be unknown, and why.

use std::io::Read as _;

use super::Instance;
use super::history::{self, Action, LocalTime};
use crate::attribute::{Transaction, Who};
use crate::root::Root;

/// Rotated logs read at most (`history.log.1` … `history.log.N.gz`): a change is sought in
/// the newest first, and a package's state is recent.
const ROTATIONS: usize = 8;

/// Who left package `name` as `instances` say it is now (none: removed).
pub(crate) fn who(root: &Root, name: &str, instances: &[Instance]) -> Who {
    let Some(first) = instances.first() else {
        // Removed: whichever manager's log says so.
        return ["dpkg", "rpm", "pacman"]
            .into_iter()
            .find_map(|manager| search(root, manager, name, None, ""))
            .unwrap_or_else(|| Who::Unknown("no package manager's log names this removal".into()));
    };
    let version = Some(first.version.as_str());
    search(root, first.manager, name, version, &first.arch).unwrap_or_else(|| {
        Who::Unknown(match first.manager {
            "dpkg" => "neither apt's history.log nor dpkg.log names this change".into(),
            "rpm" => "neither dnf.rpm.log nor yum.log names this change".into(),
            "pacman" => "pacman.log does not name this change".into(),
            "apk" => "apk keeps no history of its transactions".into(),
            manager => format!("{manager}'s history is not read by this agent"),
        })
    })
}

/// The newest transaction in `manager`'s logs that left `name` at `version` (`None`:
/// removed), of `arch` where given.
fn search(
    root: &Root,
    manager: &str,
    name: &str,
    version: Option<&str>,
    arch: &str,
) -> Option<Who> {
    match manager {
        "dpkg" => newest(root, "/var/log/apt/history.log", |text| {
            let log = history::apt_history(text);
            history::apt_transaction_for(&log, name, arch, version).map(|(t, p)| Transaction {
                manager: "apt".into(),
                started: t.start.map(time).unwrap_or_default(),
                user: t
                    .requested_by
                    .as_ref()
                    .map(|r| r.0.clone())
                    .unwrap_or_default(),
                uid: t.requested_by.as_ref().map(|r| r.1),
                command: t.commandline.clone().unwrap_or_default(),
                action: action(p.action, p.from.as_deref(), p.to.as_deref()),
            })
        })
        .or_else(|| {
            newest(root, "/var/log/dpkg.log", |text| {
                history::dpkg_log(text)
                    .into_iter()
                    .rev()
                    .find(|a| {
                        a.name == name
                            && (arch.is_empty() || a.arch == arch)
                            && a.to.as_deref() == version
                    })
                    .map(|a| Transaction {
                        manager: "dpkg".into(),
                        started: time(a.at),
                        action: action(a.action, a.from.as_deref(), a.to.as_deref()),
                        ..Transaction::default()
                    })
            })
        }),
        "pacman" => newest(root, "/var/log/pacman.log", |text| {
            pacman_change(text, name, version)
        }),
        "rpm" => super::dnf_history::transaction(
            root,
            &crate::collect::IdNames::load(root),
            name,
            version,
            arch,
        )
        .map(Who::Package)
        .or_else(|| {
            newest(root, "/var/log/dnf.rpm.log", |text| {
                rpm_change(text, "dnf", name, version, arch)
            })
        })
        .or_else(|| {
            newest(root, "/var/log/yum.log", |text| {
                rpm_change(text, "yum", name, version, arch)
            })
        }),
        _ => None,
    }
}

/// The newest log of `base` and its rotations in which `find` finds the change; a rotation
/// that is not there is passed over.
fn newest(root: &Root, base: &str, find: impl Fn(&str) -> Option<Transaction>) -> Option<Who> {
    (0..=ROTATIONS).find_map(|n| {
        let text = match n {
            0 => read(&root.host_path(base), false)?,
            1 => read(&root.host_path(&format!("{base}.1")), false)?,
            n => read(&root.host_path(&format!("{base}.{n}.gz")), true)?,
        };
        find(&text).map(Who::Package)
    })
}

/// A log's text, gunzipped where `gz`; `None` where there is none (or it cannot be read: a
/// rotation that is not there ends the search as well as one that is unreadable).
fn read(path: &std::path::Path, gz: bool) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    if !gz {
        return Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    let mut text = Vec::new();
    // A truncated archive (rotated while read) yields what it holds whole.
    let _ = flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut text);
    Some(String::from_utf8_lossy(&text).into_owned())
}

fn time(t: LocalTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn action(a: Action, from: Option<&str>, to: Option<&str>) -> String {
    let word = match a {
        Action::Install => "install",
        Action::Upgrade => "upgrade",
        Action::Downgrade => "downgrade",
        Action::Reinstall => "reinstall",
        Action::Remove => "remove",
        Action::Purge => "purge",
    };
    match (from, to) {
        (Some(f), Some(t)) if f != t => format!("{word} {f} -> {t}"),
        (_, Some(t)) => format!("{word} {t}"),
        (Some(f), None) => format!("{word} {f}"),
        (None, None) => word.to_owned(),
    }
}

/// The newest change to `name` in `pacman.log` that left it at `version` (`None`: removed),
/// with the pacman command that ran it: `[2026-11-30T10:12:46+0100] [ALPM] upgraded nginx
/// (1.22.1-1 -> 1.24.0-1)` after `[…] [PACMAN] Running 'pacman -Syu'`.
fn pacman_change(text: &str, name: &str, version: Option<&str>) -> Option<Transaction> {
    let mut found = None;
    let mut command = String::new();
    for line in text.lines() {
        let Some((stamp, rest)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
            continue;
        };
        if let Some(run) = rest.strip_prefix("[PACMAN] Running '") {
            command = run.trim_end_matches('\'').to_owned();
            continue;
        }
        let Some(rest) = rest.strip_prefix("[ALPM] ") else {
            continue;
        };
        let mut words = rest.splitn(3, ' ');
        let (Some(verb), Some(pkg), Some(versions)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if pkg != name {
            continue;
        }
        let versions = versions.trim_start_matches('(').trim_end_matches(')');
        let (from, to) = match versions.split_once(" -> ") {
            Some((f, t)) => (Some(f), Some(t)),
            None if verb == "removed" => (Some(versions), None),
            None => (None, Some(versions)),
        };
        let action = match verb {
            "installed" => Action::Install,
            "upgraded" => Action::Upgrade,
            "downgraded" => Action::Downgrade,
            "reinstalled" => Action::Reinstall,
            "removed" => Action::Remove,
            _ => continue,
        };
        if to == version {
            found = Some(Transaction {
                manager: "pacman".into(),
                started: stamp.to_owned(),
                command: command.clone(),
                action: self::action(action, from, to),
                ..Transaction::default()
            });
        }
    }
    found
}

/// The newest change to `name` in dnf's `dnf.rpm.log` or yum's `yum.log` that left it at
/// `evr` (`[E:]V-R`, as the rpm database gives it; `None`: removed), of `arch` where given.
/// dnf writes `2026-11-30T10:12:46+0000 SUBDEBUG Upgrade: nginx-1:1.24.0-1.el9.x86_64` (the
/// name, then the epoch on the version); yum `Nov 30 10:12:46 Updated: 1:nginx-1.24.0-1.el7.x86_64`
/// (the epoch before the name) and, for a removal, the name alone.
fn rpm_change(
    text: &str,
    manager: &str,
    name: &str,
    evr: Option<&str>,
    arch: &str,
) -> Option<Transaction> {
    let mut found = None;
    for line in text.lines() {
        let Some((stamp, rest)) = line.split_once(": ").and_then(|(head, nevra)| {
            let (stamp, verb) = head.rsplit_once(' ')?;
            Some((stamp, (verb, nevra.trim())))
        }) else {
            continue;
        };
        let (verb, nevra) = rest;
        let stamp = stamp
            .trim_end_matches(" SUBDEBUG")
            .trim_end_matches(" INFO");
        // dnf names the version left behind too (`Upgraded:`, `Downgraded:`): not a change
        // that left the package as it is.
        let (action, kept) = match (verb, manager) {
            ("Installed" | "Install", _) => (Action::Install, true),
            ("Upgrade" | "Updated", _) => (Action::Upgrade, true),
            ("Downgrade", _) | ("Downgraded", "yum") => (Action::Downgrade, true),
            ("Reinstall" | "Reinstalled", _) => (Action::Reinstall, true),
            ("Erase" | "Erased" | "Obsoleted", _) => (Action::Remove, false),
            _ => continue,
        };
        let Some((n, e, a)) = nevra_of(nevra) else {
            continue;
        };
        let arch_ok = arch.is_empty() || a.is_empty() || a == arch;
        let matches = n == name
            && arch_ok
            && if kept {
                evr == Some(e.as_str())
            } else {
                evr.is_none()
            };
        if matches {
            found = Some(Transaction {
                manager: manager.into(),
                started: stamp.to_owned(),
                action: self::action(
                    action,
                    (!kept && !e.is_empty()).then_some(e.as_str()),
                    kept.then_some(e.as_str()),
                ),
                ..Transaction::default()
            });
        }
    }
    found
}

/// (name, `[E:]V-R`, arch) of `name-[E:]V-R.arch` (dnf) or `[E:]name-V-R.arch` (yum); a bare
/// name (yum's removals) has no version or arch.
fn nevra_of(text: &str) -> Option<(String, String, String)> {
    let (epoch, rest) = match text.split_once(':') {
        // yum: the epoch first, before the name.
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) && !e.is_empty() => {
            (Some(e), rest)
        }
        _ => (None, text),
    };
    let Some((nvr, arch)) = rest.rsplit_once('.') else {
        return Some((rest.to_owned(), String::new(), String::new()));
    };
    let (nv, release) = nvr.rsplit_once('-')?;
    let (name, version) = nv.rsplit_once('-')?;
    let evr = match epoch {
        Some(e) if e != "0" => format!("{e}:{version}-{release}"),
        _ => format!("{version}-{release}"),
    };
    Some((name.to_owned(), evr, arch.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn instance(manager: &'static str, version: &str) -> Instance {
        Instance {
            manager,
            arch: "amd64".into(),
            version: version.into(),
            state: "installed".into(),
        }
    }

    fn tree(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, content) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, content).expect("write");
        }
        let root = Root::new(Some(dir.path().to_path_buf()));
        (dir, root)
    }

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).expect("gzip");
        e.finish().expect("gzip")
    }

    const APT: &str = "Start-Date: 2026-11-30  10:12:45\nCommandline: apt-get install -y nginx=1.22.1-9\nRequested-By: alice (1000)\nUpgrade: nginx:amd64 (1.22.1-8, 1.22.1-9)\nEnd-Date: 2026-11-30  10:12:50\n";
    const DPKG: &str = "2026-12-01 08:00:01 startup archives unpack\n2026-12-01 08:00:02 upgrade curl:amd64 7.88.1-10 7.88.1-11\n2026-12-01 08:00:03 status installed curl:amd64 7.88.1-11\n";

    #[test]
    fn apt_names_the_user_and_command_dpkg_what_and_when() {
        let (_dir, root) = tree(&[
            ("/var/log/apt/history.log", APT.as_bytes()),
            ("/var/log/dpkg.log", DPKG.as_bytes()),
        ]);
        assert_eq!(
            who(&root, "nginx", &[instance("dpkg", "1.22.1-9")]),
            Who::Package(Transaction {
                manager: "apt".into(),
                started: "2026-11-30 10:12:45".into(),
                user: "alice".into(),
                uid: Some(1000),
                command: "apt-get install -y nginx=1.22.1-9".into(),
                action: "upgrade 1.22.1-8 -> 1.22.1-9".into(),
            })
        );
        assert_eq!(
            who(&root, "curl", &[instance("dpkg", "7.88.1-11")]),
            Who::Package(Transaction {
                manager: "dpkg".into(),
                started: "2026-12-01 08:00:02".into(),
                action: "upgrade 7.88.1-10 -> 7.88.1-11".into(),
                ..Transaction::default()
            }),
            "dpkg -i: no apt transaction, dpkg's log"
        );
        assert_eq!(
            who(&root, "curl", &[instance("dpkg", "9.9")]),
            Who::Unknown("neither apt's history.log nor dpkg.log names this change".into()),
            "a version no log left it at is not guessed"
        );
    }

    #[test]
    fn rotated_and_compressed_logs_are_read_newest_first() {
        let older = APT
            .replace("1.22.1-8, 1.22.1-9", "1.22.1-7, 1.22.1-8")
            .replace("alice (1000)", "bob (1001)");
        let (_dir, root) = tree(&[
            ("/var/log/apt/history.log", b"" as &[u8]),
            ("/var/log/apt/history.log.1", b"garbage\n"),
            ("/var/log/apt/history.log.2.gz", &gz(&older)),
            ("/var/log/apt/history.log.3.gz", &gz(APT)),
        ]);
        let Who::Package(t) = who(&root, "nginx", &[instance("dpkg", "1.22.1-8")]) else {
            panic!("found in history.log.2.gz")
        };
        assert_eq!((t.user.as_str(), t.uid), ("bob", Some(1001)));
        let Who::Package(t) = who(&root, "nginx", &[instance("dpkg", "1.22.1-9")]) else {
            panic!("found in history.log.3.gz")
        };
        assert_eq!(t.user, "alice");
    }

    #[test]
    fn a_removal_pacman_and_other_managers() {
        let (_dir, root) = tree(&[
            (
                "/var/log/dpkg.log",
                b"2026-12-01 09:00:00 remove telnet:amd64 0.17+2.4-2 <none>\n" as &[u8],
            ),
            (
                "/var/log/pacman.log",
                b"[2026-11-30T10:12:45+0100] [PACMAN] Running 'pacman -Syu'\n\
                  [2026-11-30T10:12:46+0100] [ALPM] upgraded nginx (1.22.1-1 -> 1.24.0-1)\n",
            ),
        ]);
        let Who::Package(t) = who(&root, "telnet", &[]) else {
            panic!("a removal is found")
        };
        assert_eq!(t.action, "remove 0.17+2.4-2");
        assert_eq!(
            who(&root, "nginx", &[instance("pacman", "1.24.0-1")]),
            Who::Package(Transaction {
                manager: "pacman".into(),
                started: "2026-11-30T10:12:46+0100".into(),
                command: "pacman -Syu".into(),
                action: "upgrade 1.22.1-1 -> 1.24.0-1".into(),
                ..Transaction::default()
            })
        );
        assert!(matches!(
            who(&root, "bash", &[instance("apk", "5.2-r0")]),
            Who::Unknown(why) if why == "apk keeps no history of its transactions"
        ));
    }

    #[test]
    fn dnf_and_yum_logs_name_rpm_changes() {
        let rpm = |version: &str| Instance {
            manager: "rpm",
            arch: "x86_64".into(),
            version: version.into(),
            state: "installed".into(),
        };
        let (_dir, root) = tree(&[
            (
                "/var/log/dnf.rpm.log",
                b"2026-11-30T10:12:45+0000 SUBDEBUG Upgrade: nginx-1:1.24.0-1.el9.x86_64
                  2026-11-30T10:12:45+0000 SUBDEBUG Upgraded: nginx-1:1.20.1-13.el9.x86_64
                  2026-11-30T10:12:46+0000 SUBDEBUG Erase: telnet-0.17-85.el9.x86_64
" as &[u8],
            ),
            (
                "/var/log/yum.log",
                b"Nov 29 09:00:01 Installed: curl-7.76.1-26.el9.x86_64
Nov 29 09:00:02 Updated: 2:vim-8.2-1.el9.x86_64
",
            ),
        ]);
        assert_eq!(
            who(&root, "nginx", &[rpm("1:1.24.0-1.el9")]),
            Who::Package(Transaction {
                manager: "dnf".into(),
                started: "2026-11-30T10:12:45+0000".into(),
                action: "upgrade 1:1.24.0-1.el9".into(),
                ..Transaction::default()
            })
        );
        let Who::Package(t) = who(&root, "telnet", &[]) else {
            panic!("a removal is found in dnf's log")
        };
        assert_eq!(
            (t.manager.as_str(), t.action.as_str()),
            ("dnf", "remove 0.17-85.el9")
        );
        let Who::Package(t) = who(&root, "curl", &[rpm("7.76.1-26.el9")]) else {
            panic!("found in yum's log")
        };
        assert_eq!(
            (t.manager.as_str(), t.started.as_str(), t.action.as_str()),
            ("yum", "Nov 29 09:00:01", "install 7.76.1-26.el9")
        );
        let Who::Package(t) = who(&root, "vim", &[rpm("2:8.2-1.el9")]) else {
            panic!("yum's epoch before the name")
        };
        assert_eq!(t.action, "upgrade 2:8.2-1.el9");
        assert!(matches!(
            who(&root, "nginx", &[rpm("1:9.9-1.el9")]),
            Who::Unknown(why) if why == "neither dnf.rpm.log nor yum.log names this change"
        ));
    }
}
