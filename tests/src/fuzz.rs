//! A small seeded fuzzing harness for the campaigns over what reaches plumb from outside:
//! agent messages, manifest directories, the file trees agents observe. Each campaign replays
//! its corpus (kept in `tests/corpus/`), then mutates and generates inputs until its time
//! budget is spent. The budget is `PLUMB_FUZZ_SECS` (3 s by default; CI gives more), the seed
//! `PLUMB_FUZZ_SEED` (random by default, and printed so a failure can be replayed). A failing
//! input is written under `target/fuzz-failures/` and named in the failure: add it to the
//! corpus once fixed, and it is replayed for good.

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A xorshift64* generator: enough to pick and mutate inputs, and reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `PLUMB_FUZZ_SEED`, or from the clock; says its seed on stderr.
    pub fn from_env(campaign: &str) -> Self {
        let seed = std::env::var("PLUMB_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{campaign}: PLUMB_FUZZ_SEED={seed}");
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// How long each campaign runs after replaying its corpus.
pub fn budget() -> Duration {
    let secs = std::env::var("PLUMB_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

/// Runs `step` until the budget is spent; returns how many steps ran.
pub fn for_budget(mut step: impl FnMut()) -> usize {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < budget() {
        step();
        n += 1;
    }
    n
}

/// The corpus of a campaign: `tests/corpus/<name>/*`, sorted, as (file name, bytes).
pub fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read a corpus file"),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    files
}

pub fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

/// Keeps a failing input where a person can find it; returns its path for the message.
pub fn keep_failure(campaign: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/fuzz-failures")
        .join(campaign);
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

/// A few random edits of `seed`: bit flips, bytes set, inserted or removed, ranges repeated,
/// and splices with `others`.
pub fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = *rng.pick(&[0u8, 0x7f, 0x80, 0xff, b'/', b'.', b'\\', b'\n']);
            }
            2 => {
                let i = rng.below(len + 1);
                out.insert(i, rng.next_u64() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i + 1);
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64) + 1);
                let piece = out[i..i + n].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, piece);
            }
            5 if !others.is_empty() => {
                let other = rng.pick(others);
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => out.truncate(rng.below(len)),
            _ => {}
        }
    }
    out
}

/// One entry of a file tree, as a corpus file writes it (one per line, fields by tabs, names
/// and contents in plumb's escaped form so any bytes can be written):
/// `file NAME MODE CONTENT`, `dir NAME MODE`, `symlink NAME TARGET`, `fifo NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File {
        name: String,
        mode: u32,
        content: Vec<u8>,
    },
    Dir {
        name: String,
        mode: u32,
    },
    Symlink {
        name: String,
        target: String,
    },
    Fifo {
        name: String,
    },
}

impl Node {
    pub fn name(&self) -> &str {
        match self {
            Node::File { name, .. }
            | Node::Dir { name, .. }
            | Node::Symlink { name, .. }
            | Node::Fifo { name } => name,
        }
    }
}

/// Parses a tree as the corpus writes it; lines starting with `#` are comments.
pub fn parse_tree(text: &str) -> Vec<Node> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let mode = |s: &str| u32::from_str_radix(s, 8).expect("an octal mode");
            match f.as_slice() {
                ["file", name, m, content] => Node::File {
                    name: (*name).to_owned(),
                    mode: mode(m),
                    content: unescape(content),
                },
                ["dir", name, m] => Node::Dir {
                    name: (*name).to_owned(),
                    mode: mode(m),
                },
                ["symlink", name, target] => Node::Symlink {
                    name: (*name).to_owned(),
                    target: (*target).to_owned(),
                },
                ["fifo", name] => Node::Fifo {
                    name: (*name).to_owned(),
                },
                _ => panic!("not a tree line: {l:?}"),
            }
        })
        .collect()
}

/// A tree as the corpus writes it.
pub fn render_tree(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| match n {
            Node::File {
                name,
                mode,
                content,
            } => format!("file\t{name}\t{mode:o}\t{}\n", escape(content)),
            Node::Dir { name, mode } => format!("dir\t{name}\t{mode:o}\n"),
            Node::Symlink { name, target } => format!("symlink\t{name}\t{target}\n"),
            Node::Fifo { name } => format!("fifo\t{name}\n"),
        })
        .collect()
}

/// Builds `nodes` under `root`, in order (a node's folder is made as needed). What cannot be
/// made (a name under a file) is skipped: the tree is what it is.
///
/// Trees hold symlinks to anywhere (`/etc/passwd` among them), and the tests run as root: a
/// node is made only where its folder resolves inside `root`'s parent (the case's temp dir,
/// which holds `root` and the "outside" the links point to), and no mode is set through a
/// link. An earlier version of this function, before it was committed, wrote a generated
/// file through such a link into this machine's own /etc/passwd.
pub fn build_tree(root: &Path, nodes: &[Node]) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = |name: &str| root.join(std::ffi::OsStr::from_bytes(&unescape(name)));
    let base = root
        .parent()
        .unwrap_or(root)
        .canonicalize()
        .expect("the tree's temp dir");
    let contained = |p: &Path| {
        p.parent()
            .and_then(|d| d.canonicalize().ok())
            .is_some_and(|d| d.starts_with(&base))
    };
    let mut modes = Vec::new();
    for n in nodes {
        let p = path(n.name());
        if std::fs::symlink_metadata(&p).is_ok() {
            // Made already (as another kind, perhaps a FIFO, which writing would block on).
            continue;
        }
        if let Some(parent) = p.parent() {
            make_dirs_within(root, parent, &base);
        }
        if !contained(&p) {
            continue;
        }
        match n {
            Node::File { mode, content, .. } => {
                if std::fs::write(&p, content).is_ok() {
                    modes.push((p, *mode));
                }
            }
            Node::Dir { mode, .. } => {
                if std::fs::create_dir_all(&p).is_ok() {
                    modes.push((p, *mode));
                }
            }
            Node::Symlink { target, .. } => {
                let _ =
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&unescape(target)), &p);
            }
            Node::Fifo { .. } => {
                let _ = std::process::Command::new("mkfifo")
                    .arg(&p)
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
    // Modes last, deepest first: a folder made unreadable early would stop what goes inside.
    for (p, mode) in modes.into_iter().rev() {
        let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link && contained(&p) {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
        }
    }
}

/// Makes the folders from `root` down to `dir`, one at a time, each only where the one above
/// it resolves inside `base`: a link on the way to anywhere else stops it.
fn make_dirs_within(root: &Path, dir: &Path, base: &Path) {
    let Ok(below) = dir.strip_prefix(root) else {
        return;
    };
    let mut at = root.to_path_buf();
    for part in below.components() {
        let inside = at.canonicalize().is_ok_and(|d| d.starts_with(base));
        if !inside {
            return;
        }
        at.push(part);
        if std::fs::symlink_metadata(&at).is_err() && std::fs::create_dir(&at).is_err() {
            return;
        }
    }
}

/// Gives every folder under `root` its owner's access back, so the temp dir can be removed.
pub fn unlock_tree(root: &Path) {
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+rwx"])
        .arg(root)
        .status();
}

/// Names a generated tree draws from: ordinary ones, and the odd ones hostile trees hold.
pub const ODD_NAMES: &[&str] = &[
    "a",
    "b.conf",
    "x.yaml",
    "evil\\xff",
    "bad\\xfename",
    "bad\\xffname",
    "line\\x0abreak",
    "back\\\\slash",
    "\\x1b[31mred",
    "sp ace",
    ".hidden",
    "..data",
    "caf\u{e9}",
    "-dash",
    "sub",
];

/// A random tree of up to `max` nodes, under folders `sub` and `sub/deeper`.
pub fn random_tree(rng: &mut Rng, max: usize, targets: &[&str]) -> Vec<Node> {
    let dirs = ["", "sub/", "sub/deeper/"];
    let mut nodes = Vec::new();
    for _ in 0..=rng.below(max) {
        let name = format!("{}{}", rng.pick(&dirs), rng.pick(ODD_NAMES));
        nodes.push(match rng.below(9) {
            0..=3 => Node::File {
                name,
                mode: *rng.pick(&[0o644, 0o600, 0o000, 0o4755]),
                content: random_content(rng),
            },
            4 => Node::Dir {
                name,
                mode: *rng.pick(&[0o755, 0o700, 0o000, 0o111]),
            },
            5..=7 => Node::Symlink {
                name,
                target: (*rng.pick(targets)).to_owned(),
            },
            _ => Node::Fifo { name },
        });
    }
    nodes
}

fn random_content(rng: &mut Rng) -> Vec<u8> {
    let pieces: &[&[u8]] = &[
        b"PermitRootLogin no\n",
        b"X11Forwarding yes\n",
        b"name: m\nhosts: [\"*\"]\n",
        b"files:\n  /etc/motd:\n    source: ",
        b"x.yaml\n",
        b"\xff\xfe\x00",
        b"\n",
        b"    ",
        b"&a [*a, *a, *a]\n",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.below(6) {
        let piece: &[u8] = pieces[rng.below(pieces.len())];
        out.extend_from_slice(piece);
    }
    if rng.one_in(20) {
        // A line longer than any line buffer.
        out.extend(std::iter::repeat_n(b' ', 70_000));
        out.extend_from_slice(b"X11Forwarding yes\n");
    }
    out
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\t' | '\n' | '\r' => s.push_str(&format!("\\x{:02x}", c as u32)),
                c if c.is_control() => {
                    for b in c.to_string().bytes() {
                        s.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// The bytes of a name or content in escaped form (`\\`, `\xHH`); lenient, for test data.
pub fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(&b[(i + 2).min(b.len())..(i + 4).min(b.len())]).ok();
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 4;
                }
                None => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_round_trip_through_their_text() {
        let mut rng = Rng(7);
        for _ in 0..50 {
            let tree = random_tree(&mut rng, 12, &["a", "/etc/passwd", "../outside"]);
            assert_eq!(parse_tree(&render_tree(&tree)), tree);
        }
    }
}
