//! Who changed a package, without any capability: the newest transaction in the package
//! managers' own logs (under the root, rotated and compressed ones included) that left it as it
//! is now. apt's `history.log` names the user and the command; `dpkg.log` and `pacman.log`
//! only what was done and when. A change no log names is said to be unknown, and why.

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
    let first = instances.first();
    let version = first.map(|i| i.version.as_str());
    let arch = first.map_or("", |i| i.arch.as_str());
    match first.map_or("dpkg", |i| i.manager) {
        "dpkg" => {
            if let Some(who) = newest(root, "/var/log/apt/history.log", |text| {
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
            }) {
                return who;
            }
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
            .unwrap_or_else(|| {
                Who::Unknown("neither apt's history.log nor dpkg.log names this change".into())
            })
        }
        "pacman" => newest(root, "/var/log/pacman.log", |text| {
            pacman_change(text, name, version)
        })
        .unwrap_or_else(|| Who::Unknown("pacman.log does not name this change".into())),
        manager => Who::Unknown(format!(
            "{manager}'s history is not read by this agent (apt, dpkg and pacman logs are)"
        )),
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
            who(&root, "bash", &[instance("rpm", "5.2")]),
            Who::Unknown(why) if why.starts_with("rpm's history is not read")
        ));
    }
}
