//! The attribution engine on real fanotify, on a temp dir, with real tools as writers. fanotify
//! needs CAP_SYS_ADMIN: without it the tests say so and are left out locally; under CI (`CI`
//! set) that is a failure.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use std::collections::HashMap;

use super::engine::{action, evict_oldest};
use super::*;
use crate::collect::files::Request;

/// One test at a time: every group hears every program start on the filesystem, so tests in
/// parallel would each read the others' processes too, on a machine of two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Started {
    a: Attributor,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Started {
    type Target = Attributor;
    fn deref(&self) -> &Attributor {
        &self.a
    }
}

fn started(dir: &Path, declared: &[(&str, bool)], deny: Vec<String>) -> Option<Started> {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let a = match Attributor::start(&Root::new(None), true, deny) {
        Ok(a) => a,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run these tests with CAP_SYS_ADMIN (as root): {why}"
            );
            eprintln!("attribution tests left out: {why}");
            return None;
        }
    };
    let requests = declared
        .iter()
        .map(|(name, list_entries)| Request {
            path: dir.join(name).to_string_lossy().into(),
            hash: true,
            contains: Default::default(),
            list_entries: *list_entries,
            allow_content: false,
            sensitive: name.contains("secret"),
            ignore: Default::default(),
        })
        .collect();
    a.plan(Arc::new(Requests::new(requests)));
    let mut dirs = BTreeSet::new();
    dirs.insert(dir.to_path_buf());
    for (name, listed) in declared {
        if *listed {
            dirs.insert(dir.join(name));
        }
    }
    a.follow(&dirs);
    assert_eq!(a.status(), "fanotify", "every directory is marked");
    Some(Started { a, _turn: turn })
}

/// Runs `script` under sh in a child that first sets its own login uid (once, as a login
/// does), so the writer's login user is known and differs from its user.
fn as_login(login_uid: u32, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo {login_uid} > /proc/self/loginuid && {script}"
        ))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

fn process(who: Who) -> Identity {
    match who {
        Who::Process(p) => p,
        other => panic!("a process was named, not {other:?}"),
    }
}

/// Makes a change (`change`) and takes who made it (`take`) until a process is named, at most
/// ten times. A writer that exits within a millisecond of starting can be gone before the
/// agent reads it (a machine of two cores, busy with other tests: CI once saw `mkdir` gone
/// five times running): then the agent must say so and name the program, never guess;
/// BENCHMARKS.md measures how often it happens.
fn named(program: &str, mut change: impl FnMut(), mut take: impl FnMut() -> Who) -> Identity {
    const TRIES: usize = 10;
    for _ in 0..TRIES {
        change();
        match take() {
            Who::Process(p) => return p,
            Who::Unknown(why) => assert!(
                why.starts_with(EXITED) && why.contains(program),
                "an unknown writer says why and names its program: {why}"
            ),
            other => panic!("{other:?}"),
        }
    }
    panic!("{program} was never named in {TRIES} changes")
}

#[test]
fn sed_in_place_is_named_though_it_exits_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("app.conf");
    std::fs::write(&conf, "a\n").expect("write");
    let Some(a) = started(dir.path(), &[("app.conf", false)], Vec::new()) else {
        return;
    };
    // sed -i writes a temporary file beside the original and renames it into place; it is
    // gone long before anyone asks.
    let sed = || {
        named(
            "sed",
            || as_login(4242, &format!("sed -i s/a/b/ {}", conf.display())),
            || {
                a.sync();
                a.take(&path(dir.path(), "app.conf"), false)
            },
        )
    };
    // Its parents are read after its start; a sed that ended first is named without them (as
    // many as are still there), which a busy machine sees now and then.
    let who = (0..10)
        .map(|_| sed())
        .find(|who| !who.parents.is_empty())
        .expect("sed named with its parents in ten runs");
    assert_eq!(who.name, "sed");
    assert_eq!(who.action, "rename");
    assert!(who.exe.ends_with("/sed"), "{who:?}");
    assert_eq!((who.uid, who.user.as_str()), (Some(0), "root"));
    assert_eq!(who.login_uid, Some(4242), "the login uid survives: {who:?}");
    assert_eq!(who.origin, "manual");
    assert!(
        who.session.is_some(),
        "setting a login uid opens a session: {who:?}"
    );
    assert_eq!(
        who.parents.first().map(String::as_str),
        Some("sh"),
        "{who:?}"
    );
    // Read as it started, its arguments may not be its own yet: then none, never its
    // parent's.
    assert!(
        who.command_line.is_empty() || who.command_line.starts_with("sed -i s/a/b/"),
        "{who:?}"
    );
    // Taken once: a later change with no event says so.
    assert_eq!(
        a.take(&path(dir.path(), "app.conf"), false),
        Who::Unknown(UNSEEN.into())
    );
}

#[test]
fn a_writer_still_running_is_named_with_its_command_line() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("live.conf");
    std::fs::write(&conf, "a\n").expect("write");
    let Some(a) = started(dir.path(), &[("live.conf", false)], Vec::new()) else {
        return;
    };
    // Writes, then waits for its input to close: alive when its change is read.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("echo b >> {} && read _", conf.display()))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sh runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let key = path(dir.path(), "live.conf");
    while !a.engine().holds(&key) {
        assert!(
            std::time::Instant::now() < deadline,
            "the write was never heard"
        );
        a.sync();
        std::thread::yield_now();
    }
    let who = process(a.take(&key, false));
    let _ = child.stdin.take().map(|mut i| i.write_all(b"\n"));
    let _ = child.wait();
    assert_eq!((who.name.as_str(), who.action.as_str()), ("sh", "write"));
    assert_eq!(
        who.command_line,
        format!("sh -c echo b >> {} && read _", conf.display())
    );
}

#[test]
fn a_user_behind_a_uid_change_and_the_tool_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("motd"), "hi\n").expect("write");
    std::fs::write(dir.path().join("secret.key"), "k\n").expect("write");
    std::fs::write(dir.path().join("new.conf"), "n\n").expect("write");
    let Some(a) = started(
        dir.path(),
        &[("motd", false), ("secret.key", false), ("copied", false)],
        Vec::new(),
    ) else {
        return;
    };
    // As sudo would: another uid, the same login.
    let motd = path(dir.path(), "motd");
    std::fs::set_permissions(&motd, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let take = |p: &str| {
        a.sync();
        a.take(p, false)
    };
    let appended = named(
        "dash",
        || {
            as_login(
                1000,
                &format!(
                    "setpriv --reuid=4321 --regid=4321 --clear-groups sh -c 'echo more >> {motd}'"
                ),
            )
        },
        || take(&motd),
    );
    assert_eq!(
        (appended.uid, appended.login_uid, appended.action.as_str()),
        (Some(4321), Some(1000), "write"),
        "{appended:?}"
    );
    assert_eq!(appended.user, "", "uid 4321 has no name on this host");
    let copied_path = path(dir.path(), "copied");
    let copied = named(
        "cp",
        || {
            let _ = std::fs::remove_file(&copied_path);
            as_login(
                1000,
                &format!("cp {} {copied_path}", path(dir.path(), "new.conf")),
            );
        },
        || take(&copied_path),
    );
    assert_eq!(
        (copied.name.as_str(), copied.action.as_str()),
        ("cp", "create")
    );
    let key = path(dir.path(), "secret.key");
    let chmod = named(
        "chmod",
        || as_login(1000, &format!("chmod 600 {key}")),
        || take(&key),
    );
    assert_eq!(
        (chmod.name.as_str(), chmod.action.as_str()),
        ("chmod", "attributes")
    );
    assert_eq!(
        chmod.command_line, "",
        "never a command line for a sensitive path"
    );
}

#[test]
fn undeclared_names_are_not_kept_and_listed_directories_hear_their_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("sudoers.d")).expect("mkdir");
    std::fs::write(dir.path().join("declared"), "x\n").expect("write");
    let Some(a) = started(
        dir.path(),
        &[("declared", false), ("sudoers.d", true)],
        Vec::new(),
    ) else {
        return;
    };
    as_login(7, &format!("echo x > {}", path(dir.path(), "undeclared")));
    let mut n = 0;
    let entry = named(
        "touch",
        || {
            n += 1;
            as_login(
                7,
                &format!("touch {}", path(dir.path(), &format!("sudoers.d/evil{n}"))),
            )
        },
        || {
            a.sync();
            let engine = a.engine();
            assert!(
                !engine.holds(&path(dir.path(), "undeclared")),
                "a temporary file is not kept"
            );
            drop(engine);
            a.take(&path(dir.path(), "sudoers.d"), true)
        },
    );
    assert_eq!(
        (entry.name.as_str(), entry.action.as_str()),
        ("touch", "create")
    );
    assert_eq!(
        a.take(&path(dir.path(), "declared"), false),
        Who::Unknown(UNSEEN.into())
    );
}

#[test]
fn a_directory_no_longer_watched_is_no_longer_heard() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("f"), "x\n").expect("write");
    let Some(a) = started(dir.path(), &[("f", false)], Vec::new()) else {
        return;
    };
    a.follow(&BTreeSet::new());
    as_login(8, &format!("echo y > {}", path(dir.path(), "f")));
    a.sync();
    assert_eq!(
        a.take(&path(dir.path(), "f"), false),
        Who::Unknown(UNSEEN.into())
    );
}

#[test]
fn actions_are_named_from_the_event() {
    use fanotify::*;
    assert_eq!(action(FAN_MODIFY | FAN_CLOSE_WRITE), "write");
    assert_eq!(action(FAN_MOVED_TO), "rename");
    assert_eq!(action(FAN_CREATE | FAN_MODIFY), "create");
    assert_eq!(action(FAN_DELETE), "delete");
    assert_eq!(
        action(FAN_DELETE | FAN_CREATE | FAN_MODIFY),
        "create",
        "install(1)"
    );
    assert_eq!(action(FAN_ATTRIB), "attributes");
}

#[test]
fn the_oldest_half_goes_when_full() {
    let mut map: HashMap<u32, (u64, ())> = (0..10).map(|i| (i, (u64::from(i), ()))).collect();
    evict_oldest(&mut map);
    let mut kept: Vec<u32> = map.into_keys().collect();
    kept.sort_unstable();
    assert_eq!(kept, [5, 6, 7, 8, 9]);
}

#[test]
fn whoever_writes_a_package_database_is_who_changed_packages() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("local")).expect("mkdir");
    let Some(a) = started(dir.path(), &[], Vec::new()) else {
        return;
    };
    a.databases(vec![
        (path(dir.path(), "status"), false),
        (path(dir.path(), "local"), true),
    ]);
    let mut dirs = BTreeSet::new();
    dirs.insert(dir.path().to_path_buf());
    dirs.insert(dir.path().join("local"));
    a.follow(&dirs);
    assert_eq!(a.package_writer(), None);
    let writer = named(
        "dash",
        || {
            as_login(
                5,
                &format!("sh -c 'echo installed > {}'", path(dir.path(), "status")),
            )
        },
        || {
            a.sync();
            a.package_writer().unwrap_or(Who::Unknown(EXITED.into()))
        },
    );
    assert_eq!(writer.login_uid, Some(5), "{writer:?}");
    // An entry of a database directory (pacman's local/) counts too.
    let entry = named(
        "mkdir",
        || {
            let entry = path(dir.path(), "local/nginx-1.24");
            let _ = std::fs::remove_dir(&entry);
            as_login(6, &format!("mkdir {entry}"))
        },
        || {
            a.sync();
            a.package_writer().unwrap_or(Who::Unknown(EXITED.into()))
        },
    );
    assert_eq!(entry.login_uid, Some(6));
    assert_eq!(
        a.take(&path(dir.path(), "status"), false),
        Who::Unknown(UNSEEN.into()),
        "a database is no declared path: nothing kept for the files' deltas"
    );
}
