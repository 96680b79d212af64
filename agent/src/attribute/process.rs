//! Who a process is, read from `/proc/PID` the moment it is seen: its name and executable,
//! its user, the audit login user and session (which survive `sudo` and `su`), its terminal,
//! the systemd unit or container its cgroup places it in, and a few ancestors. The parsers
//! are pure and tested on text; `read` is the only IO.

use std::fs;
use std::path::Path;

use super::Identity;
use super::origin;

/// How many ancestors are named.
pub(super) const ANCESTORS: usize = 4;
/// The audit subsystem's "not set" for a login uid or a session id.
const UNSET: u32 = u32::MAX;

/// What `/proc/PID/stat` says that is needed here.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stat {
    pub(super) name: String,
    pub(super) ppid: u32,
    pub(super) tty_nr: u32,
    /// Exited, not yet reaped.
    pub(super) zombie: bool,
}

/// `pid (comm) state ppid pgrp session tty_nr ...`: the name may hold spaces and parentheses,
/// so the fields are counted from the last `)`.
pub(super) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    let _pgrp = rest.next()?;
    let _session = rest.next()?;
    let tty_nr: i64 = rest.next()?.parse().ok()?;
    Some(Stat {
        name,
        ppid,
        tty_nr: u32::try_from(tty_nr).unwrap_or(0),
        zombie: state == "Z",
    })
}

/// Whether the process whose `status` is at `path` holds CAP_SYS_ADMIN.
pub(super) fn has_sys_admin(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|s| sys_admin_in(&s))
}

/// Whether a `status` text's effective capabilities hold CAP_SYS_ADMIN (bit 21 of `CapEff`).
fn sys_admin_in(status: &str) -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The effective uid from `/proc/PID/status` (`Uid: real effective saved fs`).
pub(super) fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
}

/// A login uid or session id; `None` where the audit subsystem says none is set.
pub(super) fn parse_audit_id(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|&id| id != UNSET)
}

/// The terminal a `tty_nr` names, as `ps` shows it; empty for none.
pub(super) fn tty_name(tty_nr: u32) -> String {
    if tty_nr == 0 {
        return String::new();
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("tty({major},{minor})"),
    }
}

/// The systemd unit and the container a `/proc/PID/cgroup` places a process in (either may
/// be empty): the last unit named on the cgroup path (`nginx.service`, `session-3.scope`), and
/// the id of a container runtime's scope or directory (docker, podman, containerd, CRI-O,
/// kubepods), shortened to 12 characters as the runtimes show it.
pub(super) fn parse_cgroup(text: &str) -> (String, String) {
    // cgroup v2 is the line `0::PATH`; on v1 the systemd hierarchy says the same.
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            text.lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
        })
        .unwrap_or_default();
    let mut unit = String::new();
    let mut container = String::new();
    for part in path.split('/') {
        if [".service", ".scope", ".socket", ".timer", ".mount"]
            .iter()
            .any(|s| part.ends_with(s))
        {
            unit = part.to_owned();
        }
        let id = ["docker-", "libpod-", "cri-containerd-", "crio-"]
            .iter()
            .find_map(|p| part.strip_prefix(p))
            .map(|id| id.trim_end_matches(".scope"))
            .or_else(|| is_container_id(part).then_some(part));
        if let Some(id) = id.filter(|id| is_container_id(id)) {
            container = id.chars().take(12).collect();
        }
    }
    (unit, container)
}

/// A runtime's container id: 64 hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How much of a process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Depth {
    /// As it starts: only what is its own already and must be read before it can exit (its
    /// user, login, session, terminal, cgroup, parent), as fast as can be. Its ancestors are
    /// read later (`ancestors`), its arguments not at all (they may still be its parent's).
    AtExec,
    /// Everything, ancestors and arguments included.
    Full,
}

/// Reads process `pid` as it is now, with its parent's pid; `None` once it is gone (or was
/// never there), or if it went while it was being read: never half an identity. A zombie
/// (exited, not yet reaped) is gone too: what it did is known better from its start. `exe`
/// is the executable when known from elsewhere (the exec event's file): a process seen while
/// it execs may still show its parent's image. User names are left to the caller (`named`):
/// reading the host's passwd is no work for the moment a process starts.
pub(super) fn read(
    proc: &Path,
    pid: u32,
    exe: Option<&str>,
    depth: Depth,
    command_line: bool,
) -> Option<(Identity, u32)> {
    let dir = proc.join(pid.to_string());
    let stat = parse_stat(&fs::read_to_string(dir.join("stat")).ok()?)?;
    if stat.zombie {
        return None;
    }
    let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
    let uid = Some(parse_uid(&read("status")?)?);
    let login_uid = parse_audit_id(&read("loginuid")?);
    let session = parse_audit_id(&read("sessionid")?);
    let (unit, container) = parse_cgroup(&read("cgroup")?);
    let mut identity = Identity {
        pid,
        name: stat.name,
        uid,

        login_uid,

        session,
        tty: tty_name(stat.tty_nr),
        unit,
        container,
        ..Identity::default()
    };
    identity.exe = match exe {
        Some(e) => e.to_owned(),
        None => fs::read_link(dir.join("exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if depth == Depth::AtExec {
        identity.origin = origin::of(&identity.name, &[], &[], login_uid.is_some()).to_owned();
        return Some((identity, stat.ppid));
    }
    identity.parents = ancestors(proc, stat.ppid);
    // Interpreted tools (ansible's modules, puppet) are named by their scripts, not by the
    // interpreter: the arguments are read to recognise them, and sent only if allowed.
    let cmdline = fs::read(dir.join("cmdline")).ok()?;
    let argv: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .take(3)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // Still there: it did not exit while it was read, so nothing read is half of it.
    if parse_stat(&fs::read_to_string(dir.join("stat")).ok()?)?.zombie {
        return None;
    }
    identity.origin = origin::of(
        &identity.name,
        &argv,
        &identity.parents,
        login_uid.is_some(),
    )
    .to_owned();
    if command_line {
        identity.command_line = command_line_text(&cmdline);
    }
    Some((identity, stat.ppid))
}

/// Fills in the user names of `identity`'s ids, from the host's own passwd.
pub(super) fn named(identity: &mut Identity, user_name: &dyn Fn(u32) -> Option<String>) {
    identity.user = identity.uid.and_then(user_name).unwrap_or_default();
    identity.login_user = identity.login_uid.and_then(user_name).unwrap_or_default();
}

/// The names of the processes above `ppid` (it included), nearest first, as many as are still
/// there, at most `ANCESTORS`.
pub(super) fn ancestors(proc: &Path, mut ppid: u32) -> Vec<String> {
    let mut parents = Vec::new();
    while parents.len() < ANCESTORS && ppid > 0 {
        let Some(parent) = fs::read_to_string(proc.join(ppid.to_string()).join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        else {
            break;
        };
        parents.push(parent.name);
        ppid = parent.ppid;
    }
    parents
}

/// A command line as one line: arguments joined by spaces, at most 1 KiB.
fn command_line_text(cmdline: &[u8]) -> String {
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut line = args.join(" ");
    if line.len() > 1024 {
        let mut end = 1024;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_past_a_name_with_spaces_and_parentheses() {
        let text = "4242 (my (odd) tool) S 4200 4242 4100 34817 4242 4194304 120 0 0 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                name: "my (odd) tool".into(),
                ppid: 4200,
                tty_nr: 34817,
                zombie: false,
            })
        );
        assert!(parse_stat("7 (sed) Z 1 7 7 0 -1").is_some_and(|s| s.zombie));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (init) S"), None);
    }

    #[test]
    fn the_effective_uid_and_audit_ids_are_read() {
        let status =
            "Name:\tsed\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parse_uid(status), Some(0));
        assert_eq!(parse_uid("Name:\tx\n"), None);
        assert_eq!(parse_audit_id("1000"), Some(1000));
        assert_eq!(parse_audit_id("4294967295"), None, "unset");
        assert_eq!(parse_audit_id(""), None);
    }

    #[test]
    fn the_capability_is_read_from_the_effective_set() {
        assert!(sys_admin_in(
            "CapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
        ));
        assert!(sys_admin_in("CapEff:\t0000000000200000\n"), "bit 21 alone");
        assert!(
            !sys_admin_in("CapEff:\t0000000000000004\n"),
            "CAP_DAC_READ_SEARCH alone"
        );
        assert!(!sys_admin_in(
            "CapPrm:\t000001ffffffffff\nCapEff:\t0000000000000000\n"
        ));
        assert!(!sys_admin_in(""));
    }

    #[test]
    fn terminals_are_named_as_ps_names_them() {
        assert_eq!(tty_name(0), "");
        assert_eq!(tty_name(34817), "pts/1");
        assert_eq!(tty_name(136 << 8), "pts/0");
        assert_eq!(tty_name((137 << 8) | 4), "pts/260");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        assert_eq!(tty_name((4 << 8) | 64), "ttyS0");
    }

    #[test]
    fn a_cgroup_names_its_unit_and_container() {
        let cases = [
            ("0::/system.slice/nginx.service\n", ("nginx.service", "")),
            (
                "0::/user.slice/user-1000.slice/session-3.scope\n",
                ("session-3.scope", ""),
            ),
            (
                "0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
                (
                    "docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
                    "0123456789ab",
                ),
            ),
            (
                "0::/kubepods/burstable/pod1/fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\n",
                ("", "fedcba987654"),
            ),
            (
                "12:pids:/\n1:name=systemd:/system.slice/cron.service\n",
                ("cron.service", ""),
            ),
            ("0::/\n", ("", "")),
            ("", ("", "")),
        ];
        for (text, (unit, container)) in cases {
            assert_eq!(
                parse_cgroup(text),
                (unit.to_owned(), container.to_owned()),
                "{text}"
            );
        }
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me = std::process::id();
        let (mut who, ppid) =
            read(Path::new("/proc"), me, None, Depth::Full, true).expect("this process is there");
        named(&mut who, &|uid| (uid == 0).then(|| "root".to_owned()));
        assert_eq!(who.user.is_empty(), who.uid != Some(0));
        assert_eq!(ancestors(Path::new("/proc"), ppid), who.parents);
        assert_eq!(who.pid, me);
        assert!(!who.name.is_empty() && !who.exe.is_empty(), "{who:?}");
        assert!(who.uid.is_some(), "{who:?}");
        assert!(!who.parents.is_empty(), "a test has a parent: {who:?}");
        assert!(!who.command_line.is_empty(), "{who:?}");
        let (quiet, _) =
            read(Path::new("/proc"), me, Some("/x"), Depth::Full, false).expect("there");
        assert_eq!(
            (quiet.exe.as_str(), quiet.command_line.as_str()),
            ("/x", "")
        );
        let (fast, _) = read(Path::new("/proc"), me, None, Depth::AtExec, true).expect("there");
        assert!(
            fast.parents.is_empty() && fast.command_line.is_empty(),
            "{fast:?}"
        );
        assert_eq!((fast.uid, fast.session), (who.uid, who.session));
        assert_eq!(
            read(Path::new("/proc"), u32::MAX - 1, None, Depth::Full, false),
            None
        );
    }

    #[test]
    fn a_long_command_line_is_cut_on_a_character() {
        let long = "é".repeat(1000);
        let line = command_line_text(format!("sed\0-e\0{long}").as_bytes());
        assert!(line.len() <= 1024 + '…'.len_utf8());
        assert!(line.starts_with("sed -e é") && line.ends_with('…'));
    }
}
