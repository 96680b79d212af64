//! The filesystem the agent observes: `/`, or a prefix under which a host is mounted
//! (`--root /host`), as node_exporter's `--path.rootfs` does. Declared paths are always the
//! host's own paths; only reading maps them under the prefix.
//!
//! Declared paths are text in `plumb_proto::names`' canonical form; paths on this machine are
//! bytes. Converting here, both ways, keeps every name (`evil\xff` too) distinct and seen.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Component, Path, PathBuf};

use plumb_proto::names;

#[derive(Debug, Clone)]
pub struct Root {
    prefix: Option<PathBuf>,
}

impl Root {
    pub fn new(prefix: Option<PathBuf>) -> Self {
        // `--root /` is the same as no root.
        Self {
            prefix: prefix.filter(|p| p != Path::new("/")),
        }
    }

    /// Where the declared (absolute) path lives on this machine. A declared path that is not
    /// in canonical form (plans are checked, so only a bug) is taken as it is written.
    pub fn host_path(&self, declared: &str) -> PathBuf {
        let bytes = names::unescape(declared).unwrap_or_else(|_| declared.as_bytes().to_vec());
        let path = PathBuf::from(OsString::from_vec(bytes));
        match &self.prefix {
            Some(prefix) => prefix.join(path.strip_prefix("/").unwrap_or(&path)),
            None => path,
        }
    }

    /// The declared path for a path on this machine; `None` if it lies outside the root.
    pub fn declared_path(&self, host: &Path) -> Option<String> {
        let rel = match &self.prefix {
            Some(prefix) => host.strip_prefix(prefix).ok()?,
            None => host.strip_prefix("/").ok()?,
        };
        Some(format!("/{}", names::escape(rel.as_os_str().as_bytes())))
    }

    /// Resolves a symlink's target as the host would see it: absolute targets are inside the
    /// root, relative ones relative to the link's folder.
    /// `..` is resolved lexically and never climbs above the root. Returns the declared form.
    pub fn resolve_link(&self, link_declared: &str, target: &Path) -> String {
        let joined = match target.is_absolute() {
            true => target.to_path_buf(),
            false => self
                .host_relative(link_declared)
                .parent()
                .unwrap_or(Path::new("/"))
                .join(target),
        };
        let mut parts: Vec<String> = Vec::new();
        for c in joined.components() {
            match c {
                Component::Normal(p) => parts.push(names::escape(p.as_bytes())),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        format!("/{}", parts.join("/"))
    }
}

impl Root {
    /// A declared path as bytes, without the prefix.
    fn host_relative(&self, declared: &str) -> PathBuf {
        let bytes = names::unescape(declared).unwrap_or_else(|_| declared.as_bytes().to_vec());
        PathBuf::from(OsString::from_vec(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways() {
        let root = Root::new(Some("/host".into()));
        assert_eq!(root.host_path("/etc/x"), PathBuf::from("/host/etc/x"));
        assert_eq!(
            root.declared_path(Path::new("/host/etc/x")).as_deref(),
            Some("/etc/x")
        );
        assert_eq!(root.declared_path(Path::new("/other/etc/x")), None);
        assert_eq!(
            root.resolve_link("/etc/localtime", Path::new("/usr/share/zoneinfo/UTC")),
            "/usr/share/zoneinfo/UTC"
        );
        assert_eq!(
            root.resolve_link("/etc/a/link", Path::new("../b")),
            "/etc/b"
        );
        assert_eq!(
            root.resolve_link("/etc/link", Path::new("../../../../x")),
            "/x",
            "never above the root"
        );

        // Names are bytes: carried in canonical text, mapped back to the same bytes.
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/host/etc/ex.d/evil\xff"));
        assert_eq!(
            root.declared_path(odd).as_deref(),
            Some("/etc/ex.d/evil\\xff")
        );
        assert_eq!(root.host_path("/etc/ex.d/evil\\xff"), odd);
        assert_eq!(
            root.resolve_link(
                "/etc/l\\xfe/link",
                Path::new(std::ffi::OsStr::from_bytes(b"t\xff"))
            ),
            "/etc/l\\xfe/t\\xff"
        );

        let plain = Root::new(Some("/".into()));
        assert_eq!(plain.host_path("/etc/x"), PathBuf::from("/etc/x"));
        assert_eq!(
            plain.declared_path(Path::new("/etc/x")).as_deref(),
            Some("/etc/x")
        );
    }
}
