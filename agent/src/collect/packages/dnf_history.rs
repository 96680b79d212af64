//! dnf's transaction history, where dnf keeps who ran each transaction: an SQLite database
//! (dnf 4's `/var/lib/dnf/history.sqlite`, dnf 5's
//! `/usr/lib/sysimage/libdnf5/transaction_history.sqlite`), read under the root, read-only and
//! without taking a lock (`immutable`), so the agent never holds dnf up. Its schemas are
//! libdnf's and dnf5's `create_tables.sql`.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use crate::attribute::Transaction;
use crate::collect::IdNames;
use crate::root::Root;

/// Where each dnf keeps its history, and which schema it is.
const DATABASES: &[(&str, Schema)] = &[
    (
        "/usr/lib/sysimage/libdnf5/transaction_history.sqlite",
        Schema::Dnf5,
    ),
    ("/var/lib/dnf/history.sqlite", Schema::Dnf4),
];

#[derive(Clone, Copy)]
enum Schema {
    Dnf4,
    Dnf5,
}

impl Schema {
    /// Every transaction item of package `?1`, newest first: when, who (uid), the command, the
    /// action, epoch, version, release and arch.
    fn query(self) -> &'static str {
        match self {
            Schema::Dnf4 => {
                "SELECT t.dt_begin, t.user_id, t.cmdline, ti.action, r.epoch, r.version, r.release, r.arch
                 FROM trans_item ti JOIN trans t ON t.id = ti.trans_id JOIN rpm r ON r.item_id = ti.item_id
                 WHERE r.name = ?1 ORDER BY t.id DESC, ti.id DESC"
            }
            Schema::Dnf5 => {
                "SELECT t.dt_begin, t.user_id, t.description, ti.action_id, r.epoch, r.version, r.release, a.name
                 FROM trans_item ti JOIN trans t ON t.id = ti.trans_id JOIN rpm r ON r.item_id = ti.item_id
                 JOIN pkg_name n ON n.id = r.name_id JOIN arch a ON a.id = r.arch_id
                 WHERE n.name = ?1 ORDER BY t.id DESC, ti.id DESC"
            }
        }
    }

    /// What an action number means: the word, and whether it leaves the package installed
    /// (`Some(true)`), removes it (`Some(false)`), or is not a change of its own (the version
    /// left behind by an upgrade, a reason change).
    fn action(self, n: i64) -> Option<(&'static str, bool)> {
        match (self, n) {
            (Schema::Dnf4, 1) | (Schema::Dnf5, 1) => Some(("install", true)),
            (Schema::Dnf4, 2) | (Schema::Dnf5, 3) => Some(("downgrade", true)),
            (Schema::Dnf4, 6) | (Schema::Dnf5, 2) => Some(("upgrade", true)),
            (Schema::Dnf4, 9) | (Schema::Dnf5, 4) => Some(("reinstall", true)),
            (Schema::Dnf4, 8) | (Schema::Dnf5, 5) => Some(("remove", false)),
            (Schema::Dnf4, 5) => Some(("remove", false)), // obsoleted: replaced by another name
            _ => None,
        }
    }
}

/// The newest dnf transaction that left `name` at `evr` (`[E:]V-R`; `None`: removed), of
/// `arch` where given; `None` where no database names one.
pub(super) fn transaction(
    root: &Root,
    names: &IdNames,
    name: &str,
    evr: Option<&str>,
    arch: &str,
) -> Option<Transaction> {
    DATABASES.iter().find_map(|(path, schema)| {
        let path = root.host_path(path);
        if !path.exists() {
            return None;
        }
        match search(&path, *schema, names, name, evr, arch) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(db = %path.display(), error = %e, "cannot read dnf's history");
                None
            }
        }
    })
}

fn search(
    path: &Path,
    schema: Schema,
    names: &IdNames,
    name: &str,
    evr: Option<&str>,
    arch: &str,
) -> rusqlite::Result<Option<Transaction>> {
    let uri = format!("file:{}?immutable=1", path.display());
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn.prepare(schema.query())?;
    let mut rows = stmt.query(params![name])?;
    while let Some(r) = rows.next()? {
        let Some((word, kept)) = schema.action(r.get(3)?) else {
            continue;
        };
        let (epoch, version, release, item_arch): (i64, String, String, String) =
            (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
        let item_evr = match epoch {
            0 => format!("{version}-{release}"),
            e => format!("{e}:{version}-{release}"),
        };
        let arch_ok = arch.is_empty() || item_arch == arch || !kept;
        let found = if kept {
            evr == Some(item_evr.as_str())
        } else {
            evr.is_none()
        };
        if !(found && arch_ok) {
            continue;
        }
        let uid = u32::try_from(r.get::<_, i64>(1)?)
            .ok()
            .filter(|&u| u != u32::MAX);
        return Ok(Some(Transaction {
            manager: "dnf".into(),
            started: utc(r.get(0)?),
            user: uid
                .and_then(|u| names.user(u))
                .map(str::to_owned)
                .unwrap_or_default(),
            uid,
            command: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            action: format!("{word} {item_evr}"),
        }));
    }
    Ok(None)
}

/// A Unix time as `2026-12-01T08:00:01Z`.
fn utc(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables this reads, as libdnf (dnf 4) and dnf5 create them.
    const DNF4: &str = "CREATE TABLE trans (id INTEGER PRIMARY KEY AUTOINCREMENT, dt_begin INTEGER NOT NULL, dt_end INTEGER, rpmdb_version_begin TEXT, rpmdb_version_end TEXT, releasever TEXT NOT NULL, user_id INTEGER NOT NULL, cmdline TEXT, state INTEGER NOT NULL);
        CREATE TABLE item (id INTEGER PRIMARY KEY, item_type INTEGER NOT NULL);
        CREATE TABLE trans_item (id INTEGER PRIMARY KEY AUTOINCREMENT, trans_id INTEGER REFERENCES trans(id), item_id INTEGER REFERENCES item(id), repo_id INTEGER, action INTEGER NOT NULL, reason INTEGER NOT NULL, state INTEGER NOT NULL);
        CREATE TABLE rpm (item_id INTEGER UNIQUE NOT NULL, name TEXT NOT NULL, epoch INTEGER NOT NULL, version TEXT NOT NULL, release TEXT NOT NULL, arch TEXT NOT NULL);
        INSERT INTO trans VALUES (1, 1764576000, 1764576005, '', '', '9', 1000, 'dnf install nginx', 1);
        INSERT INTO trans VALUES (2, 1764662401, 1764662409, '', '', '9', 1001, 'dnf upgrade nginx', 1);
        INSERT INTO trans VALUES (3, 1764748800, 1764748801, '', '', '9', 0, 'dnf remove telnet', 1);
        INSERT INTO item VALUES (1, 1), (2, 1), (3, 1), (4, 1);
        INSERT INTO rpm VALUES (1, 'nginx', 1, '1.20.1', '13.el9', 'x86_64'), (2, 'nginx', 1, '1.24.0', '1.el9', 'x86_64'), (3, 'telnet', 0, '0.17', '85.el9', 'x86_64');
        INSERT INTO trans_item VALUES (1, 1, 1, NULL, 1, 2, 1), (2, 2, 2, NULL, 6, 2, 1), (3, 2, 1, NULL, 7, 2, 1), (4, 3, 3, NULL, 8, 2, 1);";

    const DNF5: &str = "CREATE TABLE trans (id INTEGER PRIMARY KEY AUTOINCREMENT, dt_begin INTEGER NOT NULL, dt_end INTEGER, rpmdb_version_begin TEXT, rpmdb_version_end TEXT, releasever TEXT NOT NULL, user_id INTEGER NOT NULL, description TEXT, comment TEXT, state_id INTEGER);
        CREATE TABLE pkg_name (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE arch (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE item (id INTEGER PRIMARY KEY);
        CREATE TABLE trans_item (id INTEGER PRIMARY KEY AUTOINCREMENT, trans_id INTEGER, item_id INTEGER, repo_id INTEGER, action_id INTEGER NOT NULL, reason_id INTEGER NOT NULL, state_id INTEGER NOT NULL);
        CREATE TABLE rpm (item_id INTEGER NOT NULL UNIQUE, name_id INTEGER NOT NULL, epoch INTEGER NOT NULL, version TEXT NOT NULL, release TEXT NOT NULL, arch_id INTEGER NOT NULL);
        INSERT INTO trans VALUES (1, 1764576000, 1764576005, '', '', '41', 1000, 'dnf5 install curl', NULL, 2);
        INSERT INTO pkg_name VALUES (1, 'curl');
        INSERT INTO arch VALUES (1, 'x86_64');
        INSERT INTO item VALUES (1);
        INSERT INTO rpm VALUES (1, 1, 0, '8.9.1', '2.fc41', 1);
        INSERT INTO trans_item VALUES (1, 1, 1, NULL, 1, 2, 2);";

    fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, sql) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            Connection::open(&p)
                .expect("create")
                .execute_batch(sql)
                .expect("schema");
        }
        let root = Root::new(Some(dir.path().to_path_buf()));
        (dir, root)
    }

    #[test]
    fn dnf_names_the_user_and_command_of_a_transaction() {
        let (_dir, root) = root_with(&[
            ("/var/lib/dnf/history.sqlite", DNF4),
            ("/usr/lib/sysimage/libdnf5/transaction_history.sqlite", DNF5),
        ]);
        std::fs::create_dir_all(root.host_path("/etc")).expect("mkdir");
        std::fs::write(
            root.host_path("/etc/passwd"),
            "alice:x:1000:1000::/:/bin/sh\n",
        )
        .expect("passwd");
        let names = IdNames::load(&root);
        let t = transaction(&root, &names, "nginx", Some("1:1.24.0-1.el9"), "x86_64")
            .expect("the upgrade");
        assert_eq!(
            t,
            Transaction {
                manager: "dnf".into(),
                started: "2025-12-02T08:00:01Z".into(),
                user: String::new(),
                uid: Some(1001),
                command: "dnf upgrade nginx".into(),
                action: "upgrade 1:1.24.0-1.el9".into(),
            },
            "uid 1001 has no name here"
        );
        let t = transaction(&root, &names, "nginx", Some("1:1.20.1-13.el9"), "x86_64")
            .expect("the install, not the version the upgrade left behind");
        assert_eq!(
            (t.user.as_str(), t.action.as_str()),
            ("alice", "install 1:1.20.1-13.el9")
        );
        let t = transaction(&root, &names, "telnet", None, "").expect("the removal");
        assert_eq!((t.uid, t.action.as_str()), (Some(0), "remove 0.17-85.el9"));
        let t = transaction(&root, &names, "curl", Some("8.9.1-2.fc41"), "x86_64")
            .expect("dnf5's own schema");
        assert_eq!(
            (t.user.as_str(), t.command.as_str(), t.action.as_str()),
            ("alice", "dnf5 install curl", "install 8.9.1-2.fc41")
        );
        assert_eq!(
            transaction(&root, &names, "nginx", Some("1:9.9-1.el9"), "x86_64"),
            None,
            "a version no transaction left is not guessed"
        );
    }

    #[test]
    fn unix_times_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_764_662_401), "2025-12-02T08:00:01Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
