//! Host facts the agent introduces itself with: the OS from the observed root's own
//! `os-release` (so an agent reading a mounted host reports that host's OS), the rest from
//! sysinfo. Read once per connection.

use std::fs;

use sysinfo::{MemoryRefreshKind, RefreshKind, System};

use crate::root::Root;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub hostname: String,
    /// os-release `ID`, e.g. "debian".
    pub os_id: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
}

pub fn collect(root: &Root) -> Facts {
    let memory_bytes = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .map(|s| s.total_memory())
    .unwrap_or(0);
    let release = os_release(root);
    let field = |key: &str| {
        release
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    Facts {
        hostname: hostname(),
        os_id: field("ID").unwrap_or_else(System::distribution_id),
        os_name: field("NAME")
            .or_else(|| System::name().ok())
            .unwrap_or_default(),
        os_version: field("VERSION_ID")
            .or_else(|| System::os_version().ok())
            .unwrap_or_default(),
        kernel_version: System::kernel_version().unwrap_or_default(),
        arch: System::cpu_arch(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        memory_bytes,
    }
}

/// `KEY=value` pairs of os-release(5), quotes removed.
fn os_release(root: &Root) -> Vec<(String, String)> {
    let text = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| fs::read_to_string(root.host_path(p)).ok())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_owned(),
                v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned(),
            )
        })
        .collect()
}

/// The host's name, as the default host id.
pub fn hostname() -> String {
    System::host_name().unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let f = collect(&Root::new(None));
        assert!(!f.hostname.is_empty());
        assert!(!f.kernel_version.is_empty());
        assert!(!f.os_id.is_empty());
        assert!(f.cpus >= 1);
        assert!(f.memory_bytes > 0, "sysinfo reads the machine's memory");
    }

    #[test]
    fn the_os_comes_from_the_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        fs::write(
            dir.path().join("etc/os-release"),
            "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n",
        )
        .expect("write");
        let f = collect(&Root::new(Some(dir.path().to_path_buf())));
        assert_eq!(
            (f.os_id.as_str(), f.os_name.as_str(), f.os_version.as_str()),
            ("alpine", "Alpine Linux", "3.20.3")
        );
    }
}
