//! Rendering for people (aligned tables) and scripts (JSON), and writing to stdout where a
//! closed pipe (`plumb drift | head`) is not an error.

use std::io::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Writes `text` to stdout; a reader that went away ends the output quietly.
pub fn emit(text: &str) -> io::Result<()> {
    write_out(text).map(|_| ())
}

/// Writes `value` to stdout as `-o json` prints it (indented, then a newline) while it is
/// serialized, rather than as one string first: a listing of 100,000 hosts is 47 MB of text.
/// A reader that went away ends the output quietly.
pub fn emit_json(value: &(impl serde::Serialize + ?Sized)) -> io::Result<()> {
    emit_json_to(io::stdout().lock(), value)
}

fn emit_json_to(out: impl Write, value: &(impl serde::Serialize + ?Sized)) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    match write_json(&mut out, value).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// `value` as `-o json` prints it: indented, then a newline.
pub fn write_json(
    out: &mut impl Write,
    value: &(impl serde::Serialize + ?Sized),
) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Writes `text` to stdout; `Ok(false)` once the reader has gone away (`| head -1`), so that a
/// command that writes until interrupted can stop instead of writing into nothing forever.
pub fn write_out(text: &str) -> io::Result<bool> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// Resolves once nothing can read stdout any more: the reader of a pipe exited (the kernel
/// reports an error condition on the write end). A follower waiting for its next event would
/// otherwise only notice at that event's write, which may never come. Never resolves when
/// stdout cannot be watched this way (a regular file, which has no reader to lose).
pub async fn reader_gone() {
    use std::os::fd::AsFd as _;
    use tokio::io::Interest;
    // A second descriptor for stdout, left blocking: `from_owned_fd_unchecked` does not make
    // it non-blocking (which would also change stdout, the same open file).
    let watched = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(tokio::net::unix::pipe::Sender::from_owned_fd_unchecked);
    match watched {
        Ok(pipe) => loop {
            match pipe.ready(Interest::ERROR).await {
                Ok(ready) if ready.is_error() || ready.is_write_closed() => return,
                Ok(_) => {}
                Err(_) => return std::future::pending().await,
            }
        },
        Err(_) => std::future::pending().await,
    }
}

pub use crate::clock::rfc3339;

/// A value as a table cell: one line, control characters escaped, digests shortened (one
/// followed by a remark too, as a baseline's `3f2a… (as most of web)`).
pub fn cell(value: &str) -> String {
    let is_digest = |v: &str| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
    if is_digest(value) {
        return format!("{}…", &value[..12]);
    }
    if let Some((digest, remark)) = value.split_at_checked(64)
        && is_digest(digest)
        && remark.starts_with(" (")
    {
        return format!("{}…{}", &digest[..12], cell(remark));
    }
    value
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < widths.len() {
                s.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails every write with `kind`.
    struct Closing {
        taken: Vec<u8>,
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Closing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room - self.taken.len());
            if n == 0 {
                return Err(self.kind.into());
            }
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_output_is_the_indented_text_and_a_reader_gone_mid_way_ends_it_quietly() {
        let hosts: Vec<String> = (0..20_000).map(|i| format!("host-{i}")).collect();
        let value = serde_json::json!({ "hosts": hosts });
        let whole = crate::cli::render::pretty(&value);
        assert!(whole.ends_with("]\n}\n"), "indented, then a newline");

        let mut all = Closing {
            taken: Vec::new(),
            room: usize::MAX,
            kind: io::ErrorKind::Other,
        };
        emit_json_to(&mut all, &value).expect("written");
        assert_eq!(
            all.taken,
            whole.as_bytes(),
            "the same text as one string would be"
        );

        // `| head -1`: the reader goes away after the first buffer, mid-way through
        // serializing (its error comes back through serde_json as it was).
        let mut head = Closing {
            taken: Vec::new(),
            room: 64 * 1024,
            kind: io::ErrorKind::BrokenPipe,
        };
        emit_json_to(&mut head, &value).expect("a reader that went away is not an error");
        assert_eq!(
            head.taken,
            whole.as_bytes()[..64 * 1024],
            "what it took came first"
        );

        let mut full = Closing {
            taken: Vec::new(),
            room: 100,
            kind: io::ErrorKind::StorageFull,
        };
        let err = emit_json_to(&mut full, &value).expect_err("a full disk is an error");
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn tables_align_and_cells_are_one_line() {
        let t = table(
            &["HOST", "STATUS"],
            &[
                vec!["web-1".into(), "in_sync".into()],
                vec!["a".into(), "".into()],
            ],
        );
        assert_eq!(t, "HOST   STATUS\nweb-1  in_sync\na\n");
        assert_eq!(cell("a\nb"), "a\\nb");
        assert_eq!(cell(&"ab".repeat(32)), "abababababab…");
        assert_eq!(
            cell(&format!("{} (as most of web)", "ab".repeat(32))),
            "abababababab… (as most of web)"
        );
        assert_eq!(
            cell(&format!("{}x", "ab".repeat(32))),
            format!("{}x", "ab".repeat(32))
        );
    }
}
