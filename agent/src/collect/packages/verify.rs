//! Checks files against the package manager's record of their digests (md5 for dpkg, as
//! `debsums` does). Streams each file; blocking IO.

use std::fs::File;
use std::io::{ErrorKind, Read};

use md5::{Digest, Md5};

use super::FileProblem;
use crate::root::Root;

/// Each file whose content differs from its recorded md5, or that is missing or unreadable,
/// in the order of `files`; read one after another (packages are checked side by side),
/// under `--scan-rate`.
pub(super) fn check(root: &Root, files: &[(String, String)]) -> Vec<FileProblem> {
    files
        .iter()
        .filter_map(|(path, want)| {
            let problem = |actual: String| FileProblem {
                path: path.clone(),
                expected: format!("md5 {want}"),
                actual,
            };
            match md5_of(root, path) {
                Ok(got) if got.eq_ignore_ascii_case(want) => None,
                Ok(got) => Some(problem(format!("md5 {got}"))),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    Some(problem("missing".into()))
                }
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    Some(problem("unreadable: permission denied".into()))
                }
                Err(e) => Some(problem(format!("unreadable: {e}"))),
            }
        })
        .collect()
}

fn md5_of(root: &Root, path: &str) -> std::io::Result<String> {
    let mut file = File::open(root.host_path(path))?;
    let mut hasher = Md5::new();
    let len = file.metadata().map_or(u64::MAX, |m| m.len());
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
    Ok(plumb_common::hex::encode(&hasher.finalize()))
}
