//! User and group names from the observed root's own `/etc/passwd` and `/etc/group`, so that an
//! agent reading a mounted host (`--root`) reports that host's names, not its container's.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use crate::root::Root;

#[derive(Debug, Default, Clone)]
pub struct IdNames {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl IdNames {
    /// Reads both databases; a missing or unreadable one just yields no names (ids are shown).
    pub fn load(root: &Root) -> Self {
        let read = |p: &str| {
            fs::read_to_string(root.host_path(p))
                .map(|t| parse(&t))
                .unwrap_or_default()
        };
        Self {
            users: read("/etc/passwd"),
            groups: read("/etc/group"),
        }
    }

    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }
}

/// Identity of a file's version: (inode, size, mtime in ns); `None` when it cannot be read.
type Stamp = Option<(u64, u64, i128)>;

fn stamp(root: &Root, path: &str) -> Stamp {
    let m = fs::metadata(root.host_path(path)).ok()?;
    Some((
        m.ino(),
        m.size(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    ))
}

/// Names re-read only when `/etc/passwd` or `/etc/group` changed: two stats per batch of
/// observations instead of two reads.
#[derive(Debug, Default)]
pub struct IdCache {
    stamps: Option<(Stamp, Stamp)>,
    names: Arc<IdNames>,
}

impl IdCache {
    pub fn get(&mut self, root: &Root) -> Arc<IdNames> {
        let stamps = (stamp(root, "/etc/passwd"), stamp(root, "/etc/group"));
        if self.stamps != Some(stamps) {
            self.names = Arc::new(IdNames::load(root));
            self.stamps = Some(stamps);
        }
        self.names.clone()
    }
}

/// `name:x:id:...` lines; the first name for an id wins, as with getpwuid.
fn parse(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(id) = id.parse() {
            names.entry(id).or_insert_with(|| name.to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_rereads_after_a_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        let root = Root::new(Some(dir.path().to_path_buf()));
        let mut cache = IdCache::default();
        assert_eq!(cache.get(&root).user(7), None);
        fs::write(dir.path().join("etc/passwd"), "seven:x:7:7::/:/bin/sh\n").expect("write");
        assert_eq!(cache.get(&root).user(7), Some("seven"));
        // Same size, new content: the rename gives it a new inode.
        fs::write(
            dir.path().join("etc/passwd.new"),
            "eight:x:7:7::/:/bin/sh\n",
        )
        .expect("write");
        fs::rename(
            dir.path().join("etc/passwd.new"),
            dir.path().join("etc/passwd"),
        )
        .expect("rename");
        assert_eq!(cache.get(&root).user(7), Some("eight"));
    }

    #[test]
    fn parses_passwd_lines_and_skips_junk() {
        let names = parse(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\ndaemon:x:1:1::/:/usr/sbin/nologin\ntoor:x:0:0::/:/bin/sh\nbad:x:notanumber:0::/:\n",
        );
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&1).map(String::as_str), Some("daemon"));
        assert_eq!(names.len(), 2);
    }
}
