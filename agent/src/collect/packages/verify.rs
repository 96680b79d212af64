//! Checks files against the package manager's record of their digests (md5 for dpkg, as
//! `debsums` does). Streams each file; blocking IO.

use std::io::{ErrorKind, Read};

use md5::{Digest, Md5};

use super::FileProblem;
use crate::collect::read_ahead;
use crate::root::Root;

/// Each file whose content differs from its recorded md5, or that is missing or unreadable,
/// in the order of `files`; read one after another (packages are checked side by side),
/// under `--scan-rate`, the next few asked for ahead (`read_ahead`).
pub(super) fn check(root: &Root, files: &[(String, String)]) -> Vec<FileProblem> {
    // One thread: the package is the unit the scan threads share.
    let soon = |(path, _): &(String, String)| {
        read_ahead::read_soon(&root.host_path(path));
    };
    crate::collect::parallel::map_ordered_ahead(1, files, soon, |(path, want)| {
        let problem = |actual: String| FileProblem {
            path: path.clone(),
            expected: format!("md5 {want}"),
            actual,
        };
        match md5_of(root, path) {
            Ok(Content::Digest(got)) if got.eq_ignore_ascii_case(want) => None,
            Ok(Content::Digest(got)) => Some(problem(format!("md5 {got}"))),
            Ok(Content::NotAFile(what)) => Some(problem(format!("{what}, not a regular file"))),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Some(problem("missing".into()))
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                Some(problem("unreadable: permission denied".into()))
            }
            Err(e) => Some(problem(format!("unreadable: {e}"))),
        }
    })
}

/// What a package's file holds now.
enum Content {
    Digest(String),
    /// Something else stands where the package put a file (a directory, a FIFO, a device):
    /// never opened, as opening some has effects and a FIFO would block the reader.
    NotAFile(&'static str),
}

fn md5_of(root: &Root, path: &str) -> std::io::Result<Content> {
    let host = root.host_path(path);
    let meta = std::fs::metadata(&host)?;
    if !meta.is_file() {
        return Ok(Content::NotAFile(kind_name(meta.file_type())));
    }
    let mut file = crate::collect::open_to_read(&host)?;
    let mut hasher = Md5::new();
    let len = meta.len();
    let mut buf = crate::collect::read_buffer(len, 64 * 1024);
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                crate::collect::files::pace(n);
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Content::Digest(plumb_common::hex::encode(
        &hasher.finalize(),
    )))
}

fn kind_name(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "something else"
    }
}
