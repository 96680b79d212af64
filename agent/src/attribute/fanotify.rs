//! fanotify, as attribution uses it: two notification groups (no permission events, so the
//! agent never holds up the host).
//!
//! - **Changes** (`FAN_REPORT_DIR_FID | FAN_REPORT_NAME`): an inode mark on every directory
//!   the watcher watches, for writes, closes after writing, attribute changes, creation,
//!   removal and renames of its entries. Each event names the writer's pid, the directory (by
//!   file handle) and the entry's name, so `sed -i`'s rename into place names the file it
//!   replaced. A directory's handle is learnt from the group's own `fdinfo`, where the kernel
//!   lists each mark with its handle.
//! - **Execs** (`FAN_OPEN_EXEC`, file descriptors): a filesystem mark where the programs are,
//!   so that a process is identified as it starts, while it is still there to read: a writer
//!   such as `sed -i` has often exited by the time its change is read.
//!
//! Records are parsed from the bytes `read` returns, in safe code (the workspace forbids
//! `unsafe`); `nix` makes the calls.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

/// A directory as fanotify names it: the filesystem's id, and the directory's handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct FileId {
    pub(super) fsid: u64,
    pub(super) handle_type: i32,
    pub(super) handle: Vec<u8>,
}

/// One change event: what happened, who did it, to which entry of which directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) mask: u64,
    pub(super) pid: u32,
    pub(super) dir: FileId,
    pub(super) name: Vec<u8>,
}

/// What a read of the changes group gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record {
    Change(Change),
    /// The kernel's queue overflowed: events were lost.
    Overflow,
}

pub(super) const FAN_MODIFY: u64 = 0x2;
pub(super) const FAN_ATTRIB: u64 = 0x4;
pub(super) const FAN_CLOSE_WRITE: u64 = 0x8;
pub(super) const FAN_MOVED_FROM: u64 = 0x40;
pub(super) const FAN_MOVED_TO: u64 = 0x80;
pub(super) const FAN_CREATE: u64 = 0x100;
pub(super) const FAN_DELETE: u64 = 0x200;
const FAN_Q_OVERFLOW: u64 = 0x4000;
const FAN_ONDIR: u64 = 0x4000_0000;
const FAN_EVENT_ON_CHILD: u64 = 0x0800_0000;
const FAN_REPORT_DIR_FID: u32 = 0x400;
const FAN_REPORT_NAME: u32 = 0x800;
const INFO_FID: u8 = 1;
const INFO_DFID_NAME: u8 = 2;
const INFO_DFID: u8 = 3;
/// `struct fanotify_event_metadata`: event_len u32, vers u8, reserved u8, metadata_len u16,
/// mask u64, fd i32, pid i32.
const METADATA_LEN: usize = 24;

/// What the changes group asks for on each directory.
pub(super) const CHANGES: u64 = FAN_MODIFY
    | FAN_ATTRIB
    | FAN_CLOSE_WRITE
    | FAN_MOVED_FROM
    | FAN_MOVED_TO
    | FAN_CREATE
    | FAN_DELETE
    | FAN_ONDIR
    | FAN_EVENT_ON_CHILD;

/// The changes group (see the module's text); nonblocking.
pub(super) fn changes_group() -> nix::Result<Fanotify> {
    let flags = InitFlags::FAN_CLASS_NOTIF
        | InitFlags::FAN_CLOEXEC
        | InitFlags::FAN_NONBLOCK
        | InitFlags::from_bits_retain(FAN_REPORT_DIR_FID | FAN_REPORT_NAME);
    Fanotify::init(flags, EventFFlags::O_RDONLY | EventFFlags::O_CLOEXEC)
}

/// The execs group; nonblocking. Its events carry a descriptor of the program.
pub(super) fn execs_group() -> nix::Result<Fanotify> {
    Fanotify::init(
        InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
    )
}

/// Marks directory `dir` for changes to its entries.
pub(super) fn mark_dir(group: &Fanotify, dir: &Path) -> nix::Result<()> {
    group.mark(
        MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_ONLYDIR,
        MaskFlags::from_bits_retain(CHANGES),
        nix::fcntl::AT_FDCWD,
        Some(dir),
    )
}

pub(super) fn unmark_dir(group: &Fanotify, dir: &Path) -> nix::Result<()> {
    group.mark(
        MarkFlags::FAN_MARK_REMOVE | MarkFlags::FAN_MARK_ONLYDIR,
        MaskFlags::from_bits_retain(CHANGES),
        nix::fcntl::AT_FDCWD,
        Some(dir),
    )
}

/// Marks the whole filesystem holding `path` for execs.
pub(super) fn mark_execs(group: &Fanotify, path: &Path) -> nix::Result<()> {
    group.mark(
        MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
        MaskFlags::FAN_OPEN_EXEC,
        nix::fcntl::AT_FDCWD,
        Some(path),
    )
}

/// Reads what is queued on the changes group into `out`; returns once nothing is (`EAGAIN`).
pub(super) fn read_changes(
    group: &Fanotify,
    buf: &mut [u8],
    out: &mut Vec<Record>,
) -> nix::Result<()> {
    loop {
        match nix::unistd::read(group.as_fd(), buf) {
            Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
            Ok(n) => parse_records(buf.get(..n).unwrap_or_default(), out),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One exec: the process and the program it runs.
pub(super) struct Exec {
    pub(super) pid: u32,
    pub(super) exe: Option<String>,
    /// The program is a script (`#!`): its interpreter is opened for exec next, by the same
    /// process, and the script still names it.
    pub(super) script: bool,
}

/// Reads what is queued on the execs group into `out`; returns once nothing is. Says whether
/// the queue overflowed.
pub(super) fn read_execs(group: &Fanotify, out: &mut Vec<Exec>) -> nix::Result<bool> {
    let mut overflowed = false;
    loop {
        let events = match group.read_events() {
            Ok(e) if e.is_empty() => return Ok(overflowed),
            Ok(e) => e,
            Err(Errno::EAGAIN) => return Ok(overflowed),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        for e in events {
            if e.mask().contains(MaskFlags::FAN_Q_OVERFLOW) {
                overflowed = true;
                continue;
            }
            let exe = e.fd().and_then(|fd| {
                std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            });
            // The descriptor is the agent's own (read-only, at offset 0): reading it moves
            // nothing of the process's.
            let mut magic = [0u8; 2];
            let script = e
                .fd()
                .is_some_and(|fd| nix::unistd::read(fd, &mut magic) == Ok(2) && &magic == b"#!");
            // The event's descriptor closes when `e` is dropped.
            out.push(Exec {
                pid: u32::try_from(e.pid()).unwrap_or(0),
                exe,
                script,
            });
        }
    }
}

/// Whether a program is a dynamic loader (opened for exec after the program itself).
pub(super) fn is_loader(exe: &str) -> bool {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    name.starts_with("ld-linux") || name.starts_with("ld-musl") || name == "ld.so"
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The events in what one `read` returned; anything malformed ends the parse (the kernel
/// writes whole events, so only a bug could cut one).
pub(super) fn parse_records(buf: &[u8], out: &mut Vec<Record>) {
    let mut at = 0;
    while let Some(event_len) = u32_at(buf, at).map(|l| l as usize) {
        if event_len < METADATA_LEN || at + event_len > buf.len() {
            return;
        }
        let event = &buf[at..at + event_len];
        at += event_len;
        let (Some(metadata_len), Some(mask), Some(pid)) =
            (u16_at(event, 6), u64_at(event, 8), i32_at(event, 20))
        else {
            return;
        };
        if mask & FAN_Q_OVERFLOW != 0 {
            out.push(Record::Overflow);
            continue;
        }
        let mut info = usize::from(metadata_len);
        while info + 4 <= event.len() {
            let (kind, len) = (
                event[info],
                usize::from(u16_at(event, info + 2).unwrap_or(0)),
            );
            if len < 4 || info + len > event.len() {
                break;
            }
            let record = &event[info..info + len];
            info += len;
            if kind != INFO_DFID_NAME && kind != INFO_DFID && kind != INFO_FID {
                continue;
            }
            let (Some(fsid0), Some(fsid1), Some(handle_bytes), Some(handle_type)) = (
                u32_at(record, 4),
                u32_at(record, 8),
                u32_at(record, 12).map(|n| n as usize),
                i32_at(record, 16),
            ) else {
                continue;
            };
            let Some(handle) = record.get(20..20 + handle_bytes) else {
                continue;
            };
            let name = if kind == INFO_DFID_NAME {
                let rest = record.get(20 + handle_bytes..).unwrap_or_default();
                rest.split(|&b| b == 0).next().unwrap_or_default().to_vec()
            } else {
                Vec::new()
            };
            out.push(Record::Change(Change {
                mask,
                pid: u32::try_from(pid).unwrap_or(0),
                dir: FileId {
                    fsid: u64::from(fsid0) | (u64::from(fsid1) << 32),
                    handle_type,
                    handle: handle.to_vec(),
                },
                name,
            }));
            break;
        }
    }
}

/// The handles of a group's inode marks, from its `fdinfo` (`proc(5)`): for each mark, the
/// inode and device it is on (the device as the kernel encodes it), with its handle.
pub(super) fn marks_in_fdinfo(text: &str) -> HashMap<(u64, u64), (i32, Vec<u8>)> {
    let mut marks = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("fanotify ino:")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .map(str::to_owned)
        };
        let hex = |s: Option<String>| s.and_then(|s| u64::from_str_radix(&s, 16).ok());
        let (Some(ino), Some(sdev), Some(handle_type), Some(handle)) = (
            hex(field("ino:")),
            hex(field("sdev:")),
            field("fhandle-type:").and_then(|t| t.parse::<i32>().ok()),
            field("f_handle:").and_then(|h| plumb_common::hex::decode(&h)),
        ) else {
            continue;
        };
        marks.insert((ino, sdev), (handle_type, handle));
    }
    marks
}

/// A device number as `stat` gives it (glibc's encoding), as the kernel writes it in fdinfo
/// (`MAJOR << 20 | MINOR`).
pub(super) fn kernel_dev(dev: u64) -> u64 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major << 20) | minor
}

/// The group's `fdinfo`.
pub(super) fn fdinfo(group: &Fanotify) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", group.as_raw_fd()))
}

/// The id of the filesystem holding `path`, as fanotify's records give it.
pub(super) fn fsid(path: &Path) -> nix::Result<u64> {
    nix::sys::statvfs::statvfs(path).map(|s| s.filesystem_id())
}

/// A name under a directory, as a path on this machine.
pub(super) fn join(dir: &Path, name: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    dir.join(std::ffi::OsStr::from_bytes(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event as the kernel writes it: metadata, then one DFID_NAME record.
    fn event(mask: u64, pid: i32, fsid: (u32, u32), handle: &[u8], name: &str) -> Vec<u8> {
        let mut record = vec![INFO_DFID_NAME, 0, 0, 0];
        record.extend(fsid.0.to_ne_bytes());
        record.extend(fsid.1.to_ne_bytes());
        record.extend((handle.len() as u32).to_ne_bytes());
        record.extend(1i32.to_ne_bytes());
        record.extend(handle);
        record.extend(name.as_bytes());
        record.push(0);
        while record.len() % 4 != 0 {
            record.push(0);
        }
        let len = record.len() as u16;
        record[2..4].copy_from_slice(&len.to_ne_bytes());
        let mut e = Vec::new();
        let event_len = (METADATA_LEN + record.len()) as u32;
        e.extend(event_len.to_ne_bytes());
        e.extend([3u8, 0]);
        e.extend((METADATA_LEN as u16).to_ne_bytes());
        e.extend(mask.to_ne_bytes());
        e.extend((-1i32).to_ne_bytes());
        e.extend(pid.to_ne_bytes());
        e.extend(record);
        e
    }

    #[test]
    fn records_are_read_from_the_kernels_bytes() {
        let handle = [0x0e, 0x24, 0x99, 0x00, 0x22, 0xce, 0xf3, 0xfe];
        let mut buf = event(FAN_MOVED_TO, 9935, (0xe76c_81d4, 0x8e6d_e4f3), &handle, "x");
        buf.extend(event(FAN_CREATE | FAN_ONDIR, 9941, (1, 2), &handle, "sub"));
        // An overflow: metadata alone.
        let mut overflow = Vec::new();
        overflow.extend((METADATA_LEN as u32).to_ne_bytes());
        overflow.extend([3u8, 0]);
        overflow.extend((METADATA_LEN as u16).to_ne_bytes());
        overflow.extend(FAN_Q_OVERFLOW.to_ne_bytes());
        overflow.extend((-1i32).to_ne_bytes());
        overflow.extend(0i32.to_ne_bytes());
        buf.extend(&overflow);
        let mut out = Vec::new();
        parse_records(&buf, &mut out);
        let dir = |fsid| FileId {
            fsid,
            handle_type: 1,
            handle: handle.to_vec(),
        };
        assert_eq!(
            out,
            [
                Record::Change(Change {
                    mask: FAN_MOVED_TO,
                    pid: 9935,
                    dir: dir(0x8e6d_e4f3_e76c_81d4),
                    name: b"x".to_vec(),
                }),
                Record::Change(Change {
                    mask: FAN_CREATE | FAN_ONDIR,
                    pid: 9941,
                    dir: dir(1 | (2 << 32)),
                    name: b"sub".to_vec(),
                }),
                Record::Overflow,
            ]
        );
        // A cut buffer yields what is whole, and no panic.
        for cut in 0..buf.len() {
            let mut out = Vec::new();
            parse_records(&buf[..cut], &mut out);
            assert!(out.len() <= 2);
        }
    }

    #[test]
    fn marks_are_found_in_fdinfo_with_their_handles() {
        let text = "pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1038\n\
            fanotify flags:c03 event-flags:8000\n\
            fanotify ino:99240e sdev:fe00000 mflags:0 mask:480003ce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0e24990022cef3fe\n\
            fanotify mnt_id:20 mflags:0 mask:1000 ignored_mask:0\n";
        let marks = marks_in_fdinfo(text);
        assert_eq!(marks.len(), 1);
        assert_eq!(
            marks.get(&(0x99240e, 0xfe00000)),
            Some(&(1, vec![0x0e, 0x24, 0x99, 0x00, 0x22, 0xce, 0xf3, 0xfe]))
        );
        assert_eq!(kernel_dev(0xfe00), 0xfe00000);
        assert_eq!(kernel_dev(0x0803), (8 << 20) | 3);
    }

    #[test]
    fn loaders_are_not_programs() {
        assert!(is_loader("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
        assert!(is_loader("/lib/ld-musl-x86_64.so.1"));
        assert!(!is_loader("/usr/bin/sed"));
    }
}
