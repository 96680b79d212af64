//! Observes one declared path: what it is, its attributes, and only the content-derived facts
//! the plan asks for (a digest, which line patterns match, directory entries). Content itself
//! never leaves this module. Blocking IO: call from a blocking thread.

use std::fs::{self, Metadata};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use std::os::unix::ffi::OsStrExt as _;

use plumb_proto::{MAX_LISTED_ENTRIES, names};

use super::IdNames;
use crate::root::Root;

mod requests;
pub use requests::{Ignore, Matcher, Rare, Request, RequestRef, Requests, RequestsBuilder};

/// Lines are matched whole up to this length; memory stays bounded whatever the file holds.
/// A longer line could hide (or fake) a match beyond what was kept, so a pattern it leaves
/// undecided is reported unverifiable, never "absent".
const MAX_LINE: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Symlink hops followed before giving up (Linux's own limit).
const MAX_LINK_HOPS: usize = 40;

/// Bytes per second the agent may read while hashing (0: unlimited). Set once at start from
/// `--scan-rate`; process-wide because every scan shares the same disk and CPU.
static SCAN_RATE: AtomicU64 = AtomicU64::new(0);

/// Caps the agent's reading of file content, and so its IO and hashing CPU, during scans.
pub fn set_scan_rate(bytes_per_sec: u64) {
    SCAN_RATE.store(bytes_per_sec, Ordering::Relaxed);
}

/// Threads that observe a batch of paths together (0: the default, `default_scan_threads`).
/// Set once at start from `--scan-threads`.
static SCAN_THREADS: AtomicUsize = AtomicUsize::new(0);

/// At most this many threads hash by default, however many cores the host has: a scan is
/// bounded by the disk long before that on most hosts.
const MAX_DEFAULT_SCAN_THREADS: usize = 4;

/// Caps how many threads observe (and hash) at once during a scan.
pub fn set_scan_threads(threads: usize) {
    SCAN_THREADS.store(threads, Ordering::Relaxed);
}

/// One per core, at most `MAX_DEFAULT_SCAN_THREADS`.
pub fn default_scan_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DEFAULT_SCAN_THREADS)
}

pub(crate) fn scan_threads() -> usize {
    match SCAN_THREADS.load(Ordering::Relaxed) {
        0 => default_scan_threads(),
        n => n,
    }
}

/// When the next read may start, across every scan of the process.
static NEXT_READ: Mutex<Option<Instant>> = Mutex::new(None);

/// Waits until `n` more bytes may be read under the scan rate. Runs on a blocking thread.
pub(crate) fn pace(n: usize) {
    let rate = SCAN_RATE.load(Ordering::Relaxed);
    if rate == 0 {
        return;
    }
    let now = Instant::now();
    let start = {
        let Ok(mut next) = NEXT_READ.lock() else {
            return;
        };
        let start = next.filter(|t| *t > now).unwrap_or(now);
        *next = Some(start + Duration::from_secs_f64(n as f64 / rate as f64));
        start
    };
    if start > now {
        std::thread::sleep(start - now);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Absent,
    File,
    Directory,
    Symlink,
    Other,
    Unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Observation {
    pub path: String,
    pub kind: Kind,
    pub link_target: Option<String>,
    pub resolved_kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub size: u64,
    pub sha256: Option<String>,
    pub contains: Vec<bool>,
    /// The first `MAX_LISTED_ENTRIES` undeclared entries of a listed directory, sorted...
    pub entries: Vec<String>,
    /// ...and how many there are.
    pub entries_total: u64,
    pub error: Option<String>,
}

impl Observation {
    fn new(path: &str, kind: Kind) -> Self {
        Self {
            path: path.to_owned(),
            kind,
            link_target: None,
            resolved_kind: kind,
            mode: 0,
            uid: 0,
            gid: 0,
            owner: None,
            group: None,
            size: 0,
            sha256: None,
            contains: Vec::new(),
            entries: Vec::new(),
            entries_total: 0,
            error: None,
        }
    }
}

/// Observes the requests at positions `which` of `plan`, on up to `--scan-threads` threads
/// that take one path at a time (so one large file does not hold up the rest); returns each
/// position with its observation, in the order of `which`. Positions past the plan are left
/// out. The scan rate is shared by every thread.
pub fn observe_many(
    root: &Root,
    plan: &Requests,
    which: &[usize],
    names: &IdNames,
) -> Vec<(usize, Observation)> {
    observe_on(scan_threads(), root, plan, which, names)
}

/// `observe_many` on at most `threads` threads.
fn observe_on(
    threads: usize,
    root: &Root,
    plan: &Requests,
    which: &[usize],
    names: &IdNames,
) -> Vec<(usize, Observation)> {
    // What is hashed or searched is read whole: ask for it ahead of the threads.
    let soon = |&i: &usize| match plan.get(i) {
        Some(req) if req.hash || !req.contains.is_empty() => {
            super::read_ahead::read_soon(&root.host_path(req.path));
        }
        _ => {}
    };
    super::parallel::map_ordered_ahead(threads, which, soon, |&i| {
        Some((i, observe(root, plan.get(i)?, names, plan)))
    })
}

/// Observes `req.path` under `root`. Never fails: what cannot be read is reported as such.
/// `plan` holds every declared path: the entries of a listed directory that lead to one of
/// them are not reported (the controller knows them from their own observations).
pub fn observe(root: &Root, req: RequestRef<'_>, names: &IdNames, plan: &Requests) -> Observation {
    let host = root.host_path(req.path);
    let meta = match fs::symlink_metadata(&host) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return Observation::new(req.path, Kind::Absent),
        Err(e) => {
            let mut o = Observation::new(req.path, Kind::Unreadable);
            o.error = Some(describe(&e));
            return o;
        }
    };
    let mut o = Observation::new(req.path, kind_of(&meta));
    // Attributes and content are those of what the path resolves to.
    let (path, meta) = if o.kind == Kind::Symlink {
        match fs::read_link(&host) {
            Ok(t) => o.link_target = Some(names::escape(t.as_os_str().as_bytes())),
            Err(e) => o.error = Some(format!("cannot read link: {}", describe(&e))),
        }
        match follow(root, req.path) {
            Ok(Some((path, target))) => {
                o.resolved_kind = kind_of(&target);
                (path, target)
            }
            Ok(None) => {
                o.resolved_kind = Kind::Absent;
                (host, meta)
            }
            Err(e) => {
                o.resolved_kind = Kind::Unreadable;
                o.error = Some(e);
                (host, meta)
            }
        }
    } else {
        (host, meta)
    };
    o.mode = meta.mode();
    o.uid = meta.uid();
    o.gid = meta.gid();
    o.owner = names.user(o.uid).map(str::to_owned);
    o.group = names.group(o.gid).map(str::to_owned);
    o.size = meta.size();

    match o.resolved_kind {
        Kind::File if req.hash || !req.contains.is_empty() => {
            match scan_content(&path, meta.size(), req) {
                Ok(scan) => {
                    o.sha256 = scan.sha256;
                    match scan.long_line {
                        // Only a pattern already found is certain; without per-pattern
                        // certainty on the wire, none is claimed.
                        Some(line) if !scan.contains.iter().all(|&m| m) => {
                            o.error = Some(format!(
                                "unverifiable: line {line} is longer than {MAX_LINE} bytes, so line patterns cannot be checked"
                            ));
                        }
                        _ => o.contains = scan.contains,
                    }
                }
                Err(e) => o.error = Some(format!("cannot read content: {}", describe(&e))),
            }
        }
        Kind::Directory if req.list_entries => {
            let skip = |name: &str| plan.leads_to_declared(req.path, name) || req.ignores(name);
            match list(&path, skip) {
                Ok((entries, total)) => {
                    o.entries = entries;
                    o.entries_total = total;
                }
                Err(e) => o.error = Some(format!("cannot list entries: {}", describe(&e))),
            }
        }
        _ => {}
    }
    o
}

/// The content of `path` for an operator's diff, resolved inside the root like `observe`, and
/// at most `max_bytes`. Only the caller decides whether sending it is allowed.
pub fn content(root: &Root, path: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let (host, meta) = match follow(root, path)? {
        Some(found) => found,
        None => return Err(format!("{path} does not exist")),
    };
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if meta.len() > max_bytes {
        return Err(format!(
            "{path} is {} bytes, more than the {max_bytes}-byte diff limit",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    super::open_to_read(&host)
        .and_then(|f| f.take(max_bytes + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {path}: {}", describe(&e)))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("{path} grew past the {max_bytes}-byte diff limit"));
    }
    Ok(bytes)
}

/// Follows a symlink chain inside the root. `None` when it dangles.
fn follow(root: &Root, declared: &str) -> Result<Option<(std::path::PathBuf, Metadata)>, String> {
    let mut current = declared.to_owned();
    for _ in 0..MAX_LINK_HOPS {
        let host = root.host_path(&current);
        let meta = match fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(describe(&e)),
        };
        if !meta.file_type().is_symlink() {
            return Ok(Some((host, meta)));
        }
        let target = fs::read_link(&host).map_err(|e| describe(&e))?;
        current = root.resolve_link(&current, &target);
    }
    Err("too many levels of symbolic links".into())
}

/// What one pass over a file's content found.
struct Scan {
    sha256: Option<String>,
    /// For each matcher, whether some line matched it.
    contains: Vec<bool>,
    /// The first line (1-based) longer than `MAX_LINE`, if any: matched on its start only.
    long_line: Option<u64>,
}

/// One streaming pass: the digest (if asked) and which matchers match some line. `len` is the
/// size the file was seen with (it may have changed since: the reads decide).
fn scan_content(path: &Path, len: u64, req: RequestRef<'_>) -> io::Result<Scan> {
    let mut file = super::open_to_read(path)?;
    let mut hasher = req.hash.then(Sha256::new);
    let mut matched = vec![false; req.contains.len()];
    let mut line: Vec<u8> = Vec::new();
    let mut line_len = 0usize; // including what was cut beyond MAX_LINE
    let mut line_no = 1u64;
    let mut long_line = None;
    let mut buf = super::read_buffer(len, READ_CHUNK);
    let check = |line: &[u8], matched: &mut Vec<bool>| {
        for (m, hit) in req.contains.iter().zip(matched.iter_mut()) {
            if !*hit && m.matches(line) {
                *hit = true;
            }
        }
    };
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        pace(n);
        let chunk = &buf[..n];
        if let Some(h) = hasher.as_mut() {
            h.update(chunk);
        }
        if !req.contains.is_empty() {
            for piece in chunk.split_inclusive(|&b| b == b'\n') {
                let (body, ends) = match piece.strip_suffix(b"\n") {
                    Some(body) => (body, true),
                    None => (piece, false),
                };
                let room = MAX_LINE.saturating_sub(line.len());
                line.extend_from_slice(&body[..body.len().min(room)]);
                line_len += body.len();
                if line_len > MAX_LINE {
                    long_line.get_or_insert(line_no);
                }
                if ends {
                    check(&line, &mut matched);
                    line.clear();
                    line_len = 0;
                    line_no += 1;
                }
            }
            if hasher.is_none() && matched.iter().all(|&m| m) {
                break; // nothing more to learn from the rest of the file
            }
        }
    }
    if line_len > 0 {
        check(&line, &mut matched);
    }
    let sha256 = hasher.map(|h| plumb_common::hex::encode(&h.finalize()));
    Ok(Scan {
        sha256,
        contains: matched,
        long_line,
    })
}

/// The first `MAX_LISTED_ENTRIES` names (in byte order) of the entries of `path` that are not
/// `declared` (nor ignored), and how many such entries there are. Memory stays bounded by the limit, not by
/// the directory: a host with 100,000 undeclared entries sends 100 names and a count.
fn list(path: &Path, declared: impl Fn(&str) -> bool) -> io::Result<(Vec<String>, u64)> {
    use std::collections::BinaryHeap;
    // The smallest names seen so far; the largest of them on top, to be replaced.
    let mut first: BinaryHeap<String> = BinaryHeap::new();
    let mut total = 0u64;
    for entry in fs::read_dir(path)? {
        let name = names::escape(entry?.file_name().as_bytes());
        if declared(&name) {
            continue;
        }
        total += 1;
        if first.len() < MAX_LISTED_ENTRIES {
            first.push(name);
        } else if first.peek().is_some_and(|top| name < *top) {
            first.pop();
            first.push(name);
        }
    }
    Ok((first.into_sorted_vec(), total))
}

fn kind_of(meta: &Metadata) -> Kind {
    let t = meta.file_type();
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Directory
    } else if t.is_symlink() {
        Kind::Symlink
    } else {
        // FIFOs, sockets and devices: never opened (a FIFO would block the reader).
        Kind::Other
    }
}

/// A path whose parent is a file (`ENOTDIR`) is as absent as a missing one.
fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
