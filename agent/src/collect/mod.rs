//! What the agent observes on its host: declared files, and the facts it introduces itself with.

pub mod expand;
pub mod facts;
pub mod files;
mod ids;
pub mod packages;
mod parallel;
mod read_ahead;

pub use ids::{IdCache, IdNames};

/// Opens a file to read its content: without blocking and without taking a terminal, so a
/// path that became a FIFO or a device after it was looked at cannot hold up the scan (reads
/// of a regular file are not affected).
pub(crate) fn open_to_read(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    open_to_read_with(path, nix::fcntl::OFlag::empty())
}

/// `open_to_read` with more flags (`O_NOFOLLOW`).
pub(crate) fn open_to_read_with(
    path: &std::path::Path,
    more: nix::fcntl::OFlag,
) -> std::io::Result<std::fs::File> {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY | more).bits())
        .open(path)
}

/// A read buffer for a file of `len` bytes: the whole file in one read when it is small (a
/// config file), never more than `max`.
pub(crate) fn read_buffer(len: u64, max: usize) -> Vec<u8> {
    // One byte more, so that the read after the last finds the end at once.
    vec![0u8; usize::try_from(len).map_or(max, |n| n.saturating_add(1).min(max))]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_read_buffer_fits_a_small_file_and_is_capped() {
        assert_eq!(super::read_buffer(0, 64).len(), 1);
        assert_eq!(super::read_buffer(10, 64).len(), 11);
        assert_eq!(super::read_buffer(1 << 40, 64).len(), 64);
    }
}
