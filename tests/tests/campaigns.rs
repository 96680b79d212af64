//! Fuzz campaigns over what reaches plumb from outside, each for a bounded time (see
//! `plumb_tests::fuzz`): manifest directories with symlinks, FIFOs and odd names, and the file
//! trees agents observe, with odd names, modes and links. Their corpora are in
//! `tests/corpus/`; the agent-message campaign is in the controller
//! (`server::hostile`), where it reaches the edge's own checks.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use plumb_tests::fuzz::{self, Node};

/// What no input may make plumb read: a file outside the folder (or root) it may read in.
const SECRET: &[u8] = b"TOP SECRET 7f3a; never to be read\n";

/// A scratch dir holding `outside/` (the secret, and a valid manifest carrying it) and the
/// folder the case is built in.
struct Case {
    tmp: tempfile::TempDir,
    inside: PathBuf,
}

impl Case {
    fn new(nodes: &[Node]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), SECRET).expect("write");
        std::fs::write(
            outside.join("manifest.yaml"),
            format!(
                "name: stolen\nhosts: [\"*\"]\nfiles:\n  /etc/x:\n    content: {:?}\n",
                String::from_utf8_lossy(SECRET)
            ),
        )
        .expect("write");
        let inside = tmp.path().join("inside");
        std::fs::create_dir_all(&inside).expect("mkdir");
        let out = outside.to_str().expect("a UTF-8 temp dir");
        let nodes: Vec<Node> = nodes
            .iter()
            .map(|n| match n {
                Node::Symlink { name, target } => Node::Symlink {
                    name: name.clone(),
                    target: target.replace("@OUT@", out),
                },
                other => other.clone(),
            })
            .collect();
        fuzz::build_tree(&inside, &nodes);
        Self { tmp, inside }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        fuzz::unlock_tree(self.tmp.path());
    }
}

/// Runs `f` on a thread; fails the campaign if it does not return within 10 s (a FIFO opened
/// for reading, a loop).
fn within_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} did not return within 10 s"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const LINK_TARGETS: &[&str] = &[
    "@OUT@/secret",
    "@OUT@/manifest.yaml",
    "@OUT@",
    "../outside/secret",
    "../../outside/secret",
    "/etc/passwd",
    "x.yaml",
    "sub",
    "sub/x.yaml",
    "loop",
    "..data/x.yaml",
    "a",
    "evil\\xff",
    "",
];

/// One manifest directory: loading it returns in time, and nothing outside it is read.
fn load_manifest_dir(nodes: &[Node]) {
    let case = Case::new(nodes);
    let dir = case.inside.clone();
    let result = within_deadline("loading a manifest directory", move || {
        plumb_controller::manifest::load::load_dir(&dir)
    });
    match result {
        Ok(set) => {
            for m in set.manifests() {
                assert_ne!(m.name, "stolen", "a manifest from outside was loaded");
                for d in &m.files {
                    if let Some(content) = &d.spec.desired_content {
                        assert!(
                            !contains(content, SECRET),
                            "{}: a source from outside was read",
                            d.path
                        );
                    }
                }
            }
        }
        Err(errors) => {
            let text: String = errors.iter().map(|e| format!("{e}\n")).collect();
            assert!(
                !contains(text.as_bytes(), &SECRET[..10]),
                "an error echoed a file from outside: {text}"
            );
        }
    }
}

#[test]
fn manifest_directories_with_symlinks_fifos_and_odd_names() {
    for (name, text) in fuzz::corpus("manifest-dirs") {
        let nodes = fuzz::parse_tree(&String::from_utf8_lossy(&text));
        load_manifest_dir(&nodes);
        eprintln!("manifest-dirs: {name} ok");
    }
    let mut rng = fuzz::Rng::from_env("manifest-dirs");
    let n = fuzz::for_budget(|| {
        let mut nodes = fuzz::random_tree(&mut rng, 10, LINK_TARGETS);
        // Manifests that point their sources at whatever is there.
        for _ in 0..rng.below(3) {
            let source = rng.pick(fuzz::ODD_NAMES);
            nodes.push(Node::File {
                name: format!("m{}.yaml", rng.below(3)),
                mode: 0o644,
                content: format!(
                    "name: m{}\nhosts: [\"*\"]\nfiles:\n  /etc/app.conf:\n    source: {:?}\n    diff: true\n",
                    rng.below(1000),
                    source
                )
                .into_bytes(),
            });
        }
        let rendered = fuzz::render_tree(&nodes);
        let outcome = std::panic::catch_unwind(|| load_manifest_dir(&nodes));
        if let Err(e) = outcome {
            let kept = fuzz::keep_failure("manifest-dirs", rendered.as_bytes());
            eprintln!("manifest-dirs: the failing case is in {}", kept.display());
            std::panic::resume_unwind(e);
        }
    });
    eprintln!("manifest-dirs: {n} generated directories");
}

/// One file tree as an agent sees it: every path observed (hashed, matched, listed) in time,
/// nothing read outside the root, and what is said of each name true to it.
fn observe_tree(nodes: &[Node]) {
    use plumb_agent::collect::files::{Matcher, Request, Requests, observe};
    let case = Case::new(nodes);
    let root_dir = case.inside.clone();
    let mut paths: Vec<String> = nodes.iter().map(|n| format!("/{}", n.name())).collect();
    paths.extend(["/", "/sub", "/sub/deeper"].map(str::to_owned));
    paths.retain(|p| p != "/");
    paths.sort();
    paths.dedup();
    let requests: Vec<Request> = paths
        .iter()
        .map(|p| Request {
            path: p.as_str().into(),
            hash: true,
            contains: [
                Matcher::new("X11Forwarding yes", false).expect("literal"),
                Matcher::new("^Permit", true).expect("regex"),
            ]
            .into_iter()
            .collect(),
            list_entries: true,
            allow_content: false,
            sensitive: false,
            ignore: Default::default(),
        })
        .collect();
    let observed = within_deadline("observing a file tree", move || {
        let root = plumb_agent::root::Root::new(Some(root_dir));
        let names = plumb_agent::collect::IdNames::default();
        let plan = Requests::new(requests);
        plan.iter()
            .map(|r| observe(&root, r, &names, &plan))
            .collect::<Vec<_>>()
    });
    let secret_digest = plumb_tests::sha256(SECRET);
    for o in &observed {
        assert_ne!(
            o.sha256.as_deref(),
            Some(secret_digest.as_str()),
            "{} was read outside the root",
            o.path
        );
        assert!(o.entries.len() <= plumb_proto::MAX_LISTED_ENTRIES);
        assert!(o.entries_total >= o.entries.len() as u64, "{o:?}");
        let host = case.inside.join(
            std::path::Path::new(&o.path[1..])
                .components()
                .map(|c| {
                    use std::os::unix::ffi::OsStrExt as _;
                    std::ffi::OsString::from(std::ffi::OsStr::from_bytes(
                        &plumb_proto::names::unescape(&c.as_os_str().to_string_lossy())
                            .expect("a canonical name"),
                    ))
                })
                .collect::<PathBuf>(),
        );
        for entry in &o.entries {
            let bytes = plumb_proto::names::unescape(entry).expect("entries are canonical");
            assert_eq!(plumb_proto::names::escape(&bytes), *entry);
            use std::os::unix::ffi::OsStrExt as _;
            let real = host.join(std::ffi::OsStr::from_bytes(&bytes));
            assert!(
                std::fs::symlink_metadata(&real).is_ok(),
                "{}: entry {entry} is not there",
                o.path
            );
        }
        if o.error
            .as_deref()
            .is_some_and(|e| e.starts_with("unverifiable:"))
        {
            assert!(o.contains.is_empty(), "unverifiable, yet answered: {o:?}");
        }
        if let Ok(meta) = std::fs::symlink_metadata(&host)
            && std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type())
        {
            assert_eq!(o.kind, plumb_agent::collect::files::Kind::Other, "{o:?}");
        }
    }
}

#[test]
fn file_trees_with_odd_names_modes_and_links() {
    for (name, text) in fuzz::corpus("file-trees") {
        let nodes = fuzz::parse_tree(&String::from_utf8_lossy(&text));
        observe_tree(&nodes);
        eprintln!("file-trees: {name} ok");
    }
    let mut rng = fuzz::Rng::from_env("file-trees");
    let n = fuzz::for_budget(|| {
        let nodes = fuzz::random_tree(&mut rng, 14, LINK_TARGETS);
        let rendered = fuzz::render_tree(&nodes);
        let outcome = std::panic::catch_unwind(|| observe_tree(&nodes));
        if let Err(e) = outcome {
            let kept = fuzz::keep_failure("file-trees", rendered.as_bytes());
            eprintln!("file-trees: the failing case is in {}", kept.display());
            std::panic::resume_unwind(e);
        }
    });
    eprintln!("file-trees: {n} generated trees");
}
