//! Reading ahead of the scan threads. On a cold page cache a thread that opens, reads and
//! hashes one file after another waits for the disk at every file, with one read in flight;
//! a disk answers many at once about as fast as one. So each thread, as it takes a file, asks
//! the kernel (`posix_fadvise(WILLNEED)`) for the start of the file `AHEAD` places further on,
//! and the kernel reads it while the threads hash: by the time a thread gets there its pages
//! are in memory. On a warm cache the advice finds them there and costs a few system calls.
//!
//! Only regular files are opened for it, not through a symlink and without blocking (a FIFO or
//! a device is never opened: opening some has effects), and only their first `FIRST_BYTES` are asked for, so a large
//! file cannot flood the page cache or outrun `--scan-rate`: the read that follows takes the
//! rest at the pace the rate allows, with the kernel's usual read-ahead for a file read in
//! order. Nothing here is an observation: a path that cannot be stat'ed or opened is left to
//! the read that follows, which reports it.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};

/// How many items ahead of the one a thread takes it asks for.
pub(crate) const AHEAD: usize = 16;

/// How much of a file is asked for ahead: all of a config-like file, the start of a large one.
const FIRST_BYTES: u64 = 128 * 1024;

/// The items to ask for when the `k`-th of `len` is taken: the one `AHEAD` places on and, with
/// the first, those before it, so that every item is asked for once, before it is taken.
pub(crate) fn ahead_of(k: usize, len: usize) -> std::ops::Range<usize> {
    let start = if k == 0 { 1 } else { k + AHEAD };
    start.min(len)..(k + AHEAD + 1).min(len)
}

/// Asks the kernel to start reading the start of `path` into the page cache, and returns at
/// once with how many bytes it asked for: none for what is not a regular file (or is a
/// symlink), or cannot be opened.
pub(crate) fn read_soon(path: &Path) -> Option<u64> {
    // Not through a symlink: its target is resolved inside the agent's root by the read
    // that follows, not here.
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let len = meta.len().min(FIRST_BYTES);
    // Should the path have become something else since, this open neither blocks nor follows.
    let file = super::open_to_read_with(path, nix::fcntl::OFlag::O_NOFOLLOW).ok()?;
    advise(&file, len);
    Some(len)
}

fn advise(file: &File, len: u64) {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    // Advice only: a kernel or file system without it reads when asked, as before.
    let _ = posix_fadvise(file, 0, len, PosixFadviseAdvice::POSIX_FADV_WILLNEED);
}

#[cfg(test)]
mod tests {
    use super::{AHEAD, FIRST_BYTES, ahead_of, read_soon};

    #[test]
    fn every_item_is_asked_for_once_and_before_it_is_taken() {
        for len in [0, 1, 2, AHEAD, AHEAD + 1, 5 * AHEAD + 3] {
            let mut asked = vec![0u32; len];
            for k in 0..len {
                for i in ahead_of(k, len) {
                    assert!(i > k, "{i} asked for when {k} is taken (len {len})");
                    asked[i] += 1;
                }
            }
            // The first is taken at once; every other is asked for exactly once.
            assert!(asked.iter().skip(1).all(|&n| n == 1), "{len}: {asked:?}");
            assert_eq!(asked.first().copied().unwrap_or(0), 0);
        }
    }

    #[test]
    fn only_regular_files_are_asked_for_and_only_their_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |name: &str| dir.path().join(name);
        nix::unistd::mkfifo(&at("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        std::fs::write(at("empty"), b"").expect("write");
        std::fs::write(at("small"), b"content").expect("write");
        let large = std::fs::File::create(at("large")).expect("create");
        large.set_len(1 << 30).expect("sparse file");
        std::os::unix::fs::symlink(at("small"), at("link")).expect("symlink");
        // A FIFO opened for reading without a writer would block: it is never opened.
        assert_eq!(read_soon(&at("fifo")), None);
        assert_eq!(read_soon(&at("empty")), None);
        assert_eq!(read_soon(&at("absent")), None);
        assert_eq!(read_soon(dir.path()), None);
        assert_eq!(read_soon(&at("small")), Some(7));
        assert_eq!(
            read_soon(&at("link")),
            None,
            "a link is resolved by the read, in the root"
        );
        assert_eq!(read_soon(&at("large")), Some(FIRST_BYTES));
    }
}
