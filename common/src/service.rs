//! Installing a daemon as a systemd service: its configuration file and its hardened unit,
//! then `systemctl daemon-reload` and `enable --now` where systemd runs. Shared by
//! `plumb-agent install` and `plumb install`; `--dry-run` prints the files instead, and
//! `--install-root` writes them under another directory (an image being built, a test).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// Where units written by an administrator live (they override the packaged ones in
/// /lib/systemd/system).
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// Options every `install` and `uninstall` takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Print the files that would be written (each after a `==> PATH <==` line) and change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write under this directory instead of `/` (a system image, a container); systemctl is
    /// then not run.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub install_root: PathBuf,
    /// Replace files that exist with different content.
    #[arg(long)]
    pub force: bool,
    /// The systemctl to run; when given, systemd is taken to be running (tests, unusual
    /// layouts).
    #[arg(long, value_name = "PATH", hide = true, env = "PLUMB_SYSTEMCTL")]
    pub systemctl: Option<PathBuf>,
}

impl Target {
    /// The systemctl to run, if systemd manages the machine at the install root (only `/`
    /// can be; the others are images).
    fn systemctl(&self) -> Option<PathBuf> {
        if let Some(given) = &self.systemctl {
            return Some(given.clone());
        }
        (self.install_root == Path::new("/") && Path::new("/run/systemd/system").is_dir())
            .then(|| "systemctl".into())
    }
}

/// One file to write, at its absolute path on the target system.
#[derive(Debug, Clone)]
pub struct File {
    pub path: PathBuf,
    pub content: String,
    pub mode: u32,
}

/// A service to install: its unit (by name, e.g. `plumb-agent.service`), its files, and
/// directories it needs (created when missing, never removed).
#[derive(Debug, Clone)]
pub struct Service {
    pub unit: String,
    pub files: Vec<File>,
    pub dirs: Vec<PathBuf>,
}

impl Service {
    /// The unit file's path on the target system.
    pub fn unit_path(&self) -> PathBuf {
        Path::new(UNIT_DIR).join(&self.unit)
    }
}

/// A unit template (as shipped in the Debian package, with `/usr/bin/NAME`) pointed at the
/// binary actually installed.
pub fn unit_for(template: &str, packaged: &str, binary: &Path) -> String {
    let exec = format!("ExecStart={packaged} ");
    template.replace(&exec, &format!("ExecStart={} ", binary.display()))
}

/// The binary the unit runs: `given` (`--bin`), or this one, as an absolute path.
pub fn binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(b) = given {
        return Ok(std::path::absolute(b)?);
    }
    let exe = std::env::current_exe().context("cannot tell where this binary is")?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

/// A file the configuration will name (a certificate, a key): it must exist now, and is
/// written as an absolute path, since the service does not run where `install` ran.
pub fn existing_file(p: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(p.is_file(), "{} is not a file", p.display());
    Ok(std::path::absolute(p)?)
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn systemctl(program: &Path, args: &[&str], out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "running: systemctl {}", args.join(" "))?;
    let status = Command::new(program)
        .args(args)
        .status()
        .context("cannot run systemctl")?;
    anyhow::ensure!(
        status.success(),
        "systemctl {} failed: {status}",
        args.join(" ")
    );
    Ok(())
}

fn permission_hint(e: std::io::Error, path: &Path) -> anyhow::Error {
    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
        "\nhint: run as root (sudo), or --dry-run to see the files"
    } else {
        ""
    };
    anyhow::anyhow!("cannot write {}: {e}{hint}", path.display())
}

/// Writes the service's files (or prints them with `--dry-run`) and starts it where systemd
/// runs. Says what it did on `out`.
pub fn install(service: &Service, target: &Target, out: &mut dyn Write) -> anyhow::Result<()> {
    if target.dry_run {
        for f in &service.files {
            writeln!(out, "==> {} <==", f.path.display())?;
            out.write_all(f.content.as_bytes())?;
            writeln!(out)?;
        }
        for d in &service.dirs {
            writeln!(
                out,
                "==> {} <==\n(a directory, created if missing)\n",
                d.display()
            )?;
        }
        return Ok(());
    }
    anyhow::ensure!(
        target.install_root.is_dir(),
        "--install-root {} is not a directory",
        target.install_root.display()
    );
    // Check every file before writing any: an install stops whole or not at all.
    let mut changed = Vec::new();
    for f in &service.files {
        let at = under(&target.install_root, &f.path);
        match std::fs::read_to_string(&at) {
            Ok(existing) if existing == f.content => writeln!(out, "unchanged: {}", at.display())?,
            Ok(_) if !target.force => anyhow::bail!(
                "{} exists with other content\nhint: compare with --dry-run; --force replaces it",
                at.display()
            ),
            _ => changed.push((f, at)),
        }
    }
    for (f, at) in changed {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir).map_err(|e| permission_hint(e, dir))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(f.mode)
            .open(&at)
            .map_err(|e| permission_hint(e, &at))?;
        file.write_all(f.content.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(f.mode))?;
        writeln!(out, "wrote: {} (mode {:04o})", at.display(), f.mode)?;
    }
    for d in &service.dirs {
        let at = under(&target.install_root, d);
        if !at.is_dir() {
            std::fs::create_dir_all(&at).map_err(|e| permission_hint(e, &at))?;
            writeln!(out, "created: {}", at.display())?;
        }
    }
    if let Some(program) = target.systemctl() {
        systemctl(&program, &["daemon-reload"], out)?;
        systemctl(&program, &["enable", "--now", &service.unit], out)?;
        writeln!(
            out,
            "{} is enabled and started; `systemctl status {}` shows how it is doing",
            service.unit, service.unit
        )?;
    } else if target.install_root == Path::new("/") {
        writeln!(
            out,
            "systemd is not running here: nothing was started; on a systemd host, run `systemctl daemon-reload && systemctl enable --now {}`",
            service.unit
        )?;
    } else {
        writeln!(
            out,
            "installed under {}; nothing was started (`systemctl --root {} enable {}` enables it there)",
            target.install_root.display(),
            target.install_root.display(),
            service.unit
        )?;
    }
    Ok(())
}

/// Stops and disables the service where systemd runs, removes its unit, and with `purge` its
/// other files (the configuration) too.
pub fn uninstall(
    service: &Service,
    target: &Target,
    purge: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let unit_path = service.unit_path();
    let remove: Vec<&Path> = service
        .files
        .iter()
        .map(|f| f.path.as_path())
        .filter(|p| purge || *p == unit_path)
        .collect();
    let kept: Vec<&Path> = service
        .files
        .iter()
        .map(|f| f.path.as_path())
        .filter(|p| !remove.contains(p))
        .collect();
    let running = target.systemctl();
    if target.dry_run {
        if running.is_some() {
            writeln!(out, "would run: systemctl disable --now {}", service.unit)?;
        }
        for p in &remove {
            writeln!(
                out,
                "would remove: {}",
                under(&target.install_root, p).display()
            )?;
        }
        return Ok(());
    }
    // Only a unit that is there can be disabled (uninstalling twice is not an error).
    if let Some(program) = &running
        && under(&target.install_root, &unit_path).exists()
    {
        systemctl(program, &["disable", "--now", &service.unit], out)?;
    }
    for p in &remove {
        let at = under(&target.install_root, p);
        match std::fs::remove_file(&at) {
            Ok(()) => writeln!(out, "removed: {}", at.display())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                writeln!(out, "not there: {}", at.display())?
            }
            Err(e) => {
                return Err(anyhow::anyhow!("cannot remove {}: {e}", at.display()));
            }
        }
    }
    if let Some(program) = &running {
        systemctl(program, &["daemon-reload"], out)?;
    }
    for p in kept {
        writeln!(
            out,
            "kept: {} (--purge removes it)",
            under(&target.install_root, p).display()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_the_installed_binary() {
        let unit = unit_for(
            "ExecStart=/usr/bin/plumb-agent run --config /etc/plumb/agent.yaml\n",
            "/usr/bin/plumb-agent",
            Path::new("/opt/plumb/bin/plumb-agent"),
        );
        assert_eq!(
            unit,
            "ExecStart=/opt/plumb/bin/plumb-agent run --config /etc/plumb/agent.yaml\n"
        );
    }
}
