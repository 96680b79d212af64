//! Host facts the agent introduces itself with (sysinfo): read once per connection.

use sysinfo::{MemoryRefreshKind, RefreshKind, System};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
}

pub fn collect() -> Facts {
    let memory_bytes = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .map(|s| s.total_memory())
    .unwrap_or(0);
    Facts {
        hostname: hostname(),
        os_name: System::name().unwrap_or_default(),
        os_version: System::os_version().unwrap_or_default(),
        kernel_version: System::kernel_version().unwrap_or_default(),
        arch: System::cpu_arch(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        memory_bytes,
    }
}

/// The host's name, as the default host id.
pub fn hostname() -> String {
    System::host_name().unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_machine() {
        let f = super::collect();
        assert!(!f.hostname.is_empty());
        assert!(!f.kernel_version.is_empty());
        assert!(f.cpus >= 1);
        assert!(f.memory_bytes > 0, "sysinfo reads the machine's memory");
    }
}
