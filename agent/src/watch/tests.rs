//! Real inotify on temp dirs: each change must reach the declared path it affects.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::*;
use crate::path_set::PathSet;

struct Fixture {
    dir: tempfile::TempDir,
    watch: Watch,
    rx: mpsc::Receiver<WatchMsg>,
}

/// The plan's requests for these paths, each with whether its entries are listed.
fn requests(paths: &[(&str, bool)]) -> Arc<Requests> {
    Arc::new(Requests::new(
        paths
            .iter()
            .map(|&(path, list_entries)| crate::collect::files::Request {
                path: path.into(),
                hash: false,
                contains: Default::default(),
                list_entries,
                allow_content: false,
                sensitive: false,
                ignore: Default::default(),
            })
            .collect(),
    ))
}

fn fixture(paths: &[(&str, bool)]) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut watch =
        Watch::new(Root::new(Some(dir.path().to_path_buf())), tx, None).expect("watcher");
    watch.set_paths(requests(paths), [], Arc::default());
    Fixture { dir, watch, rx }
}

impl Fixture {
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Waits (with a deadline) until an event affects `declared`, re-arming as the session does.
    async fn expect(&mut self, declared: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let msg = timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no event for {declared} within 5 s"))
                .expect("watcher alive");
            let WatchMsg::Paths(changes) = msg else {
                continue;
            };
            let paths: Vec<_> = changes.into_iter().map(|(p, _)| p).collect();
            let mut hit = BTreeSet::new();
            let mut touched = Vec::new();
            for p in &paths {
                if self.watch.affected(p, &mut hit) {
                    touched.push(p.clone());
                }
            }
            if !touched.is_empty() {
                self.watch.rearm(&touched);
            }
            if hit.contains(declared) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn in_place_write_rename_save_chmod_and_delete() {
    let mut f = fixture(&[("/etc/app.conf", false)]);
    fs::write(f.p("etc/app.conf"), "a").expect("create");
    f.expect("/etc/app.conf").await;

    fs::write(f.p("etc/app.conf"), "b").expect("write in place");
    f.expect("/etc/app.conf").await;

    // Rename-on-save, as vim and sed -i do: the watched name now points at a new inode.
    fs::write(f.p("etc/.app.conf.tmp"), "c").expect("tmp");
    fs::rename(f.p("etc/.app.conf.tmp"), f.p("etc/app.conf")).expect("rename");
    f.expect("/etc/app.conf").await;
    // ...and the next in-place write to the new inode is still seen.
    fs::write(f.p("etc/app.conf"), "d").expect("write after rename");
    f.expect("/etc/app.conf").await;

    fs::set_permissions(f.p("etc/app.conf"), fs::Permissions::from_mode(0o600)).expect("chmod");
    f.expect("/etc/app.conf").await;

    fs::remove_file(f.p("etc/app.conf")).expect("delete");
    f.expect("/etc/app.conf").await;
}

/// The files packages own are watched from the set the session holds: a change to one, or to a
/// directory above it, reaches it; a file beside it that no package owns does not count.
#[tokio::test]
async fn owned_files_are_watched_like_declared_ones() {
    let mut f = fixture(&[]);
    fs::create_dir_all(f.p("usr/share/doc/pkg")).expect("mkdir");
    let owned = PathSet::new(["/usr/share/doc/pkg/copyright", "/usr/bin/tool"]);
    f.watch.set_paths(requests(&[]), [], Arc::new(owned));
    assert!(f.watch.declares(&f.p("usr/share/doc/pkg/copyright")));
    assert!(!f.watch.declares(&f.p("usr/share/doc/pkg/other")));
    assert!(f.watch.declares(&f.p("usr/bin/tool")));

    fs::write(f.p("usr/share/doc/pkg/copyright"), "x").expect("create");
    f.expect("/usr/share/doc/pkg/copyright").await;
    // /usr/bin does not exist: /usr stands in for it until it does.
    fs::create_dir_all(f.p("usr/bin")).expect("mkdir");
    f.expect("/usr/bin/tool").await;
    fs::write(f.p("usr/bin/tool"), "x").expect("create");
    f.expect("/usr/bin/tool").await;
    // A directory above an owned file moved away: the file is affected.
    fs::rename(f.p("usr/share/doc/pkg"), f.p("usr/share/doc/pkg.old")).expect("rename");
    f.expect("/usr/share/doc/pkg/copyright").await;
}

#[tokio::test]
async fn a_missing_parent_is_covered_until_it_appears() {
    let mut f = fixture(&[("/etc/app/deep/app.conf", false)]);
    assert_eq!(
        f.watch.armed_dirs().iter().cloned().collect::<Vec<_>>(),
        [f.p(""), f.p("etc")],
        "only /etc exists: it stands in for the missing folders (and / above it is watched)"
    );
    fs::create_dir_all(f.p("etc/app/deep")).expect("mkdir");
    f.expect("/etc/app/deep/app.conf").await;
    // The new folders are watched now; a file created in them is seen.
    fs::write(f.p("etc/app/deep/app.conf"), "x").expect("create");
    f.expect("/etc/app/deep/app.conf").await;
}

/// Regression: a directory above the watched one renamed (`mv /etc/app /etc/app.old`, then a
/// new tree in its place) took the declared path with it unseen until the next full rescan:
/// only the declared path's own directory was watched, and a directory moved with its parent
/// is told nothing. Every existing directory above is watched too.
#[tokio::test]
async fn a_directory_above_the_watched_one_renamed_is_seen() {
    let mut f = fixture(&[]);
    fs::create_dir_all(f.p("etc/app/conf.d")).expect("mkdir");
    fs::write(f.p("etc/app/conf.d/site.conf"), "x").expect("write");
    // Armed over what exists already: nothing is queued before the rename.
    f.watch.set_paths(
        requests(&[("/etc/app/conf.d/site.conf", false)]),
        [],
        Arc::default(),
    );
    assert!(f.watch.armed_dirs().contains(&f.p("etc/app")));
    fs::rename(f.p("etc/app"), f.p("etc/app.old")).expect("rename");
    f.expect("/etc/app/conf.d/site.conf").await;
    // The tree put in its place is watched again.
    fs::create_dir_all(f.p("etc/app/conf.d")).expect("mkdir");
    f.expect("/etc/app/conf.d/site.conf").await;
    fs::write(f.p("etc/app/conf.d/site.conf"), "y").expect("write");
    f.expect("/etc/app/conf.d/site.conf").await;
}

#[tokio::test]
async fn a_parent_deleted_and_recreated_is_watched_again() {
    let mut f = fixture(&[("/etc/app/app.conf", false)]);
    fs::create_dir_all(f.p("etc/app")).expect("mkdir");
    f.expect("/etc/app/app.conf").await;
    fs::remove_dir_all(f.p("etc/app")).expect("rm -r");
    f.expect("/etc/app/app.conf").await;
    fs::create_dir_all(f.p("etc/app")).expect("mkdir again");
    f.expect("/etc/app/app.conf").await;
    fs::write(f.p("etc/app/app.conf"), "x").expect("create");
    f.expect("/etc/app/app.conf").await;
}

#[tokio::test]
async fn entries_of_a_listed_directory_and_symlink_retarget() {
    let mut f = fixture(&[("/etc/sudoers.d", true), ("/etc/localtime", false)]);
    fs::create_dir_all(f.p("etc/sudoers.d")).expect("mkdir");
    f.expect("/etc/sudoers.d").await;
    fs::write(f.p("etc/sudoers.d/rogue"), "x").expect("new entry");
    f.expect("/etc/sudoers.d").await;

    symlink("/usr/share/zoneinfo/UTC", f.p("etc/localtime")).expect("symlink");
    f.expect("/etc/localtime").await;
    // `ln -sfn`: a new link renamed over the old one.
    symlink("/usr/share/zoneinfo/EST", f.p("etc/.localtime.new")).expect("symlink");
    fs::rename(f.p("etc/.localtime.new"), f.p("etc/localtime")).expect("rename");
    f.expect("/etc/localtime").await;
}

#[test]
fn reads_are_not_changes() {
    assert!(is_noise(&EventKind::Access(AccessKind::Open(
        AccessMode::Any
    ))));
    assert!(is_noise(&EventKind::Access(AccessKind::Close(
        AccessMode::Read
    ))));
    assert!(!is_noise(&EventKind::Access(AccessKind::Close(
        AccessMode::Write
    ))));
    assert!(!is_noise(&EventKind::Any));
}

#[tokio::test]
async fn a_full_queue_raises_the_overflow_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    // Room for one message, and nobody reading: the second change cannot be queued.
    let (tx, _rx) = mpsc::channel(1);
    let mut watch =
        Watch::new(Root::new(Some(dir.path().to_path_buf())), tx, None).expect("watcher");
    watch.set_paths(requests(&[("/etc/a", false)]), [], Arc::default());
    assert!(!watch.take_overflow());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    // Each write is at least one event; keep writing until the watcher thread reports a drop.
    while !watch.take_overflow() {
        assert!(
            Instant::now() < deadline,
            "no overflow reported after {n} writes"
        );
        fs::write(dir.path().join("etc/a"), n.to_string()).expect("write");
        n += 1;
        tokio::task::yield_now().await;
    }
}

#[test]
fn beyond_the_budget_paths_are_listed_for_polling() {
    let dir = tempfile::tempdir().expect("temp dir");
    for d in ["etc/a", "etc/b", "etc/c"] {
        fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    let (tx, _rx) = mpsc::channel(QUEUE);
    let mut watch =
        Watch::new(Root::new(Some(dir.path().to_path_buf())), tx, Some(2)).expect("watcher");
    // One from the plan, one from elsewhere (a package database) and a package's owned file:
    // every kind counts, and the owned file is polled by its own path.
    watch.set_paths(
        requests(&[("/etc/a/x", false)]),
        [("/etc/b/y", false)],
        Arc::new(PathSet::new(["/etc/c/z"])),
    );
    assert_eq!(watch.armed(), 2);
    assert_eq!(
        watch.unwatched().into_iter().collect::<Vec<_>>(),
        ["/etc/c/z"]
    );
    assert_eq!(
        watch.failures.values().next().map(String::as_str),
        Some("watch budget of 2 used up (--max-watches)")
    );
}

#[test]
fn which_changes_are_complete_when_seen() {
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind,
        RenameMode,
    };
    let stage = |kind: EventKind, i| super::stage(&kind, i);
    // Observed at once.
    for done in [
        EventKind::Access(AccessKind::Close(AccessMode::Write)),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        EventKind::Create(CreateKind::Folder),
    ] {
        assert_eq!(stage(done, 0), Stage::Done, "{done:?}");
    }
    // Waited for: more is coming (data, a close, a replacement).
    for pending in [
        EventKind::Modify(ModifyKind::Data(DataChange::Any)),
        EventKind::Remove(RemoveKind::File),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)),
    ] {
        assert_eq!(stage(pending, 0), Stage::Pending, "{pending:?}");
    }
    // A new file waits the whole window: its mode may come after its close.
    assert_eq!(
        stage(EventKind::Create(CreateKind::File), 0),
        Stage::Created
    );
    // A rename names the old path (gone: wait), then the new one (in place: now).
    let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    assert_eq!(stage(both, 0), Stage::Pending);
    assert_eq!(stage(both, 1), Stage::Done);
}

/// Every open or read of a watched file (the agent's own hashing, any process reading
/// /etc/hosts) would wake the agent if the kernel were asked for them: it is not.
#[test]
fn the_kernel_is_asked_for_changes_not_for_opens_or_reads() {
    const IN_ACCESS: u32 = 0x1;
    const IN_CLOSE_NOWRITE: u32 = 0x10;
    const IN_OPEN: u32 = 0x20;
    const IN_MODIFY: u32 = 0x2;
    let f = fixture(&[("/etc/hosts", false)]);
    // This process's inotify watches, as the kernel lists them: "inotify wd:1 ... mask:2fce".
    let mut masks = Vec::new();
    for fd in fs::read_dir("/proc/self/fdinfo").expect("fdinfo") {
        let text = fs::read_to_string(fd.expect("entry").path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("inotify wd:")) {
            let mask = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("mask:"))
                .and_then(|m| u32::from_str_radix(m, 16).ok())
                .expect("a mask");
            masks.push(mask);
        }
    }
    assert!(!masks.is_empty(), "no inotify watch found");
    for mask in masks {
        assert_eq!(
            mask & (IN_ACCESS | IN_CLOSE_NOWRITE | IN_OPEN),
            0,
            "mask {mask:x}"
        );
        assert_ne!(mask & IN_MODIFY, 0, "mask {mask:x}");
    }
    drop(f);
}
