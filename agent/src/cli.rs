//! `plumb-agent`'s command line: the arguments, how flags, environment and the configuration
//! file merge, the service `install` writes, and each command. The binary only parses and maps
//! the result to an exit code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use plumb_common::cli;
use plumb_common::config::{self as common_config, TlsFile};
use plumb_common::{service, signals, systemd};
use tokio_util::sync::CancellationToken;

use crate::AgentConfig;
use crate::attribute::Source;
use crate::config::{AGENT_CONFIG, AgentFile};
use crate::root::Root;

/// plumb's agent: watches the files its controller declares for this host and streams their
/// state. It never changes anything and never sends file content.
#[derive(Parser)]
#[command(name = "plumb-agent", version, propagate_version = true)]
pub struct Args {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log format on stderr [default: text, or the configuration's `log_format`].
    #[arg(long, env = "PLUMB_LOG_FORMAT", value_enum, global = true)]
    log_format: Option<cli::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Connect to the controller and stream this host's state until stopped.
    Run(RunArgs),
    /// Install the agent as a systemd service: writes /etc/plumb/agent.yaml and a hardened
    /// unit (plumb-agent.service), then enables and starts it where systemd runs. Run as root;
    /// --dry-run shows the files first.
    Install(InstallArgs),
    /// Stop and disable the service and remove its unit; --purge removes the configuration too.
    Uninstall {
        /// Remove /etc/plumb/agent.yaml as well.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        target: service::Target,
    },
    /// Print a manifest of this host's current state for some paths and packages, to start
    /// declaring from (content is recorded as a digest, never copied).
    Capture {
        /// Paths to capture; a directory captures everything below it.
        paths: Vec<String>,
        /// A package to capture at its installed version (or as absent); repeatable.
        #[arg(long = "package", value_name = "NAME")]
        packages: Vec<String>,
        /// Capture every installed package.
        #[arg(long)]
        all_packages: bool,
        /// Mark captured directories exclusive: entries added later are drift.
        #[arg(long)]
        exclusive: bool,
        /// Capture volatile files too (`*~`, `*-`, `*.swp`, `*.dpkg-*`, `*.rpmnew`…), and write
        /// no `ignore:` for them in exclusive directories.
        #[arg(long)]
        no_default_ignores: bool,
        /// The host id the manifest selects [default: the hostname].
        #[arg(long, value_name = "ID")]
        host_id: Option<String>,
        /// Read paths and package databases under this prefix.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct InstallArgs {
    /// The controller's URL (https:// with TLS); several, comma-separated, for controllers
    /// sharing one store.
    #[arg(long, value_name = "URL")]
    controller: String,
    /// This host's identity in the fleet [default: the hostname, when the agent starts].
    #[arg(long, value_name = "ID")]
    host_id: Option<String>,
    /// A label manifests can select on; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = cli::parse_label)]
    labels: Vec<(String, String)>,
    #[command(flatten)]
    tls: cli::TlsArgs,
    /// Name who makes each change (`fanotify`): the unit is then given CAP_SYS_ADMIN and the
    /// fanotify system calls, which attribution needs, and nothing else more.
    #[arg(long, value_enum, value_name = "SOURCE")]
    attribution: Option<Source>,
    /// The binary the unit runs [default: this one].
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    #[command(flatten)]
    target: service::Target,
}

/// Every option can also come from the configuration file (same name, `_` for `-`) or a
/// `PLUMB_*` environment variable; a flag beats the variable, which beats the file.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The configuration file [default: /etc/plumb/agent.yaml when it exists].
    #[arg(long, env = "PLUMB_AGENT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The controller's URL (required here or in the configuration). Several, comma-separated
    /// or repeated, are controllers sharing one store: on a lost stream the agent tries the
    /// next. A name with several addresses is tried address by address.
    #[arg(
        long,
        env = "PLUMB_CONTROLLER",
        value_name = "URL",
        value_delimiter = ','
    )]
    controller: Vec<String>,
    /// This host's identity in the fleet [default: the hostname].
    #[arg(long, env = "PLUMB_HOST_ID", value_name = "ID")]
    host_id: Option<String>,
    /// Read every declared path under this prefix (the host mounted in a container, or a
    /// test tree); paths are still reported as declared.
    #[arg(long, env = "PLUMB_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// A label manifests can select on; repeatable (PLUMB_LABELS: comma-separated). Added to
    /// the configuration's labels, replacing a key it also sets.
    #[arg(long = "label", env = "PLUMB_LABELS", value_delimiter = ',', value_name = "KEY=VALUE", value_parser = cli::parse_label)]
    labels: Vec<(String, String)>,
    /// Full rescan period, the safety net under the file watches (e.g. 10m, 1h) [default: 10m].
    #[arg(long, env = "PLUMB_RESCAN_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    rescan_interval: Option<Duration>,
    /// Send the whole state again when the controller has confirmed storing nothing for this
    /// long (tests shorten it) [default: 2m].
    #[arg(long, hide = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    ack_deadline: Option<Duration>,
    /// How often paths that cannot be watched are checked instead (e.g. 2s) [default: 2s].
    #[arg(long, env = "PLUMB_POLL_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    poll_interval: Option<Duration>,
    /// Watch at most this many directories (the declared paths' own first, then those above
    /// them, where a rename would move them); the rest are polled and the host is shown
    /// degraded. Default: as many as the kernel allows.
    #[arg(long, env = "PLUMB_MAX_WATCHES", value_name = "N")]
    max_watches: Option<usize>,
    /// Read file content at most this fast while hashing (e.g. 20M per second), to cap the
    /// agent's IO and CPU during full scans. Default: unlimited.
    #[arg(long, env = "PLUMB_SCAN_RATE", value_name = "BYTES", value_parser = cli::parse_bytes)]
    scan_rate: Option<u64>,
    /// Threads that hash files at once during a scan (each reads and hashes one file at a
    /// time). Default: one per core, at most 4; 1 keeps scans to one core.
    #[arg(long, env = "PLUMB_SCAN_THREADS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    scan_threads: Option<u16>,
    /// Never send the content of paths matching this glob, whatever a manifest allows
    /// (repeatable; added to the built-in list: /etc/shadow, private keys...).
    #[arg(
        long = "deny-content",
        env = "PLUMB_DENY_CONTENT",
        value_delimiter = ',',
        value_name = "GLOB"
    )]
    deny_content: Vec<String>,
    /// Name who made each change: the process, its user, the login user behind sudo, its
    /// session, terminal, unit or container, and whether a package manager or configuration
    /// tool made it. `fanotify` needs CAP_SYS_ADMIN (`plumb-agent install --attribution
    /// fanotify` gives the unit it); without it the agent says so and runs on without
    /// attribution [default: off].
    #[arg(long, env = "PLUMB_ATTRIBUTION", value_enum, value_name = "SOURCE")]
    attribution: Option<Source>,
    /// With attribution, also send the writer's command line. Command lines may hold secrets:
    /// never sent for paths a manifest marks sensitive or the deny list holds.
    #[arg(long, env = "PLUMB_ATTRIBUTION_COMMAND_LINES")]
    attribution_command_lines: bool,
    #[command(flatten)]
    tls: cli::TlsArgs,
    /// Check the configuration, print the options in force (file, environment and flags
    /// merged) as YAML, and exit.
    #[arg(long)]
    print_config: bool,
}

/// Runs a command to its end.
pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        verbose,
        log_format,
        command,
    } = args;
    match command {
        Command::Run(run) => {
            let path = common_config::locate(run.config.clone(), AGENT_CONFIG);
            let file: AgentFile = match &path {
                Some(p) => common_config::read(p)?,
                None => AgentFile::default(),
            };
            cli::init_logging(verbose, log_format.or(file.log_format).unwrap_or_default());
            if let Some(p) = &path {
                file.validate(p)?;
                tracing::info!(config = %p.display(), "configuration read");
            }
            run_agent(run, file)
        }
        Command::Install(args) => {
            cli::init_logging(verbose, log_format.unwrap_or_default());
            let service = agent_service(Some(&args))?;
            service::install(&service, &args.target, &mut std::io::stdout().lock())
        }
        Command::Uninstall { purge, target } => {
            cli::init_logging(verbose, log_format.unwrap_or_default());
            let service = agent_service(None)?;
            service::uninstall(&service, &target, purge, &mut std::io::stdout().lock())
        }
        Command::Capture {
            paths,
            packages,
            all_packages,
            exclusive,
            no_default_ignores,
            host_id,
            root,
        } => {
            cli::init_logging(verbose, log_format.unwrap_or_default());
            let req = crate::capture::CaptureRequest {
                host_id: host_id.unwrap_or_else(crate::collect::facts::hostname),
                paths,
                packages,
                all_packages,
                exclusive,
                no_default_ignores,
            };
            capture(req, root)
        }
    }
}

/// The agent's unit and configuration file; without `args` (uninstall) only their paths count.
fn agent_service(args: Option<&InstallArgs>) -> anyhow::Result<service::Service> {
    const UNIT: &str = include_str!("../debian/plumb-agent.service");
    let mut files = vec![];
    let mut unit = String::new();
    if let Some(args) = args {
        let absolute = |p: &Option<PathBuf>| p.as_deref().map(service::existing_file).transpose();
        let tls = match &args.tls.ca {
            Some(_) => {
                if let Some(plain) = args
                    .controller
                    .split(',')
                    .map(str::trim)
                    .find(|u| !u.starts_with("https://"))
                {
                    anyhow::bail!("with --ca the controller URL must be https://, not {plain}");
                }
                Some(TlsFile {
                    ca: absolute(&args.tls.ca)?,
                    cert: absolute(&args.tls.cert)?,
                    key: absolute(&args.tls.key)?,
                })
            }
            None => None,
        };
        let file = AgentFile {
            controller: Some(args.controller.clone()),
            host_id: args.host_id.clone(),
            labels: args.labels.iter().cloned().collect(),
            tls,
            attribution: args.attribution,
            ..AgentFile::default()
        };
        files.push(service::File {
            path: AGENT_CONFIG.into(),
            content: file.render(),
            mode: 0o600,
        });
        let binary = service::binary(args.bin.as_deref())?;
        unit = service::unit_for(UNIT, "/usr/bin/plumb-agent", &binary);
        if args.attribution == Some(Source::Fanotify) {
            unit = with_attribution(&unit);
        }
    } else {
        files.push(service::File {
            path: AGENT_CONFIG.into(),
            content: String::new(),
            mode: 0o600,
        });
    }
    let name = "plumb-agent.service";
    files.push(service::File {
        path: std::path::Path::new(service::UNIT_DIR).join(name),
        content: unit,
        mode: 0o644,
    });
    Ok(service::Service {
        unit: name.into(),
        files,
        dirs: Vec::new(),
    })
}

/// The unit, allowed what fanotify attribution needs: CAP_SYS_ADMIN (fanotify_init refuses
/// without it) and the two fanotify system calls (in systemd's @privileged set, which the
/// unit otherwise denies). Nothing else changes: no new privileges, a read-only system.
fn with_attribution(unit: &str) -> String {
    let mut out = String::new();
    for line in unit.lines() {
        match line {
            "AmbientCapabilities=CAP_DAC_READ_SEARCH"
            | "CapabilityBoundingSet=CAP_DAC_READ_SEARCH" => {
                out.push_str("# CAP_SYS_ADMIN: fanotify, to name who changes each file (--attribution fanotify).\n");
                out.push_str(line);
                out.push_str(" CAP_SYS_ADMIN\n");
            }
            "SystemCallFilter=~@privileged @resources" => {
                out.push_str(line);
                out.push_str("\n# fanotify_init and fanotify_mark are @privileged: attribution needs them.\nSystemCallFilter=fanotify_init fanotify_mark\n");
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Prints the manifest; a closed pipe ends the output quietly.
fn capture(req: crate::capture::CaptureRequest, root: Option<PathBuf>) -> anyhow::Result<()> {
    use std::io::Write;
    anyhow::ensure!(
        !req.paths.is_empty() || !req.packages.is_empty() || req.all_packages,
        "nothing to capture; hint: give paths, --package NAME or --all-packages"
    );
    let text = crate::capture::capture(&Root::new(root), &req)?;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The effective configuration: flags (and their environment variables) over the file.
fn merge(args: RunArgs, file: AgentFile) -> AgentFile {
    let tls_file = file.tls.unwrap_or_default();
    let tls = TlsFile {
        ca: args.tls.ca.or(tls_file.ca),
        cert: args.tls.cert.or(tls_file.cert),
        key: args.tls.key.or(tls_file.key),
    };
    let mut labels = file.labels;
    labels.extend(args.labels);
    let mut deny_content = file.deny_content;
    deny_content.extend(args.deny_content);
    AgentFile {
        controller: (!args.controller.is_empty())
            .then(|| args.controller.join(","))
            .or(file.controller),
        host_id: args.host_id.or(file.host_id),
        root: args.root.or(file.root),
        labels,
        rescan_interval: args.rescan_interval.or(file.rescan_interval),
        poll_interval: args.poll_interval.or(file.poll_interval),
        max_watches: args.max_watches.or(file.max_watches),
        scan_rate: args.scan_rate.or(file.scan_rate),
        scan_threads: args.scan_threads.or(file.scan_threads),
        deny_content,
        tls: (tls != TlsFile::default()).then_some(tls),
        log_format: file.log_format,
        attribution: args.attribution.or(file.attribution),
        attribution_command_lines: args
            .attribution_command_lines
            .then_some(true)
            .or(file.attribution_command_lines),
    }
}

/// The agent's settings from the merged options, each checked: a controller given somewhere,
/// TLS files readable, the root a directory (and made absolute), the host id not blank.
fn agent_config(merged: &AgentFile, ack_deadline: Option<Duration>) -> anyhow::Result<AgentConfig> {
    let controller = merged.controller.clone().ok_or_else(|| {
        cli::UsageError(format!(
            "no controller to report to\nhint: give --controller URL, PLUMB_CONTROLLER, or `controller:` in {}",
            AGENT_CONFIG
        ))
    })?;
    let tls_file = merged.tls.clone().unwrap_or_default();
    let tls = cli::TlsArgs {
        ca: tls_file.ca,
        cert: tls_file.cert,
        key: tls_file.key,
    }
    .load()?;
    if let Some(root) = &merged.root {
        anyhow::ensure!(root.is_dir(), "root {} is not a directory", root.display());
    }
    if let Some(id) = &merged.host_id {
        anyhow::ensure!(!id.trim().is_empty(), "the host id cannot be empty");
    }
    let mut cfg = AgentConfig::new(controller);
    if let Some(id) = &merged.host_id {
        cfg.host_id = id.clone();
    }
    // Resolved: events name absolute paths, and a relative root would match none of them
    // (every change missed, the host in sync).
    let root = merged
        .root
        .as_ref()
        .map(|r| std::fs::canonicalize(r).with_context(|| format!("root {}", r.display())))
        .transpose()?;
    cfg.root = Root::new(root);
    cfg.labels = merged.labels.clone();
    cfg.rescan_interval = merged.rescan_interval.unwrap_or(cfg.rescan_interval);
    cfg.poll_interval = merged.poll_interval.unwrap_or(cfg.poll_interval);
    cfg.ack_deadline = ack_deadline.unwrap_or(cfg.ack_deadline);
    cfg.max_watches = merged.max_watches;
    cfg.tls = tls;
    cfg.deny_content.extend(merged.deny_content.iter().cloned());
    cfg.attribution = merged.attribution.unwrap_or_default();
    cfg.attribution_command_lines = merged.attribution_command_lines.unwrap_or(false);
    Ok(cfg)
}

fn run_agent(args: RunArgs, file: AgentFile) -> anyhow::Result<()> {
    let print = args.print_config;
    let ack_deadline = args.ack_deadline;
    let merged = merge(args, file);
    let cfg = agent_config(&merged, ack_deadline)?;
    if print {
        print!("{}", serde_yaml::to_string(&merged)?);
        return Ok(());
    }
    if let Some(rate) = merged.scan_rate {
        crate::collect::files::set_scan_rate(rate);
    }
    if let Some(threads) = merged.scan_threads {
        crate::collect::files::set_scan_threads(threads.into());
    }

    // One thread is plenty for the agent's IO (hashing runs on the blocking pool), and each
    // worker thread would cost its own stack and allocator arena at rest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(signals::cancel_on_signal(shutdown.clone()));
        signals::notify_on_sighup(cfg.rescan_now.clone());
        // Ready once configured: an unreachable controller is retried, not a failed start.
        systemd::ready(&format!("starting; reporting to {}", cfg.controller));
        // Fed while the runtime answers (the session itself may be busy in a long scan).
        systemd::watchdog(|| async { true }, shutdown.clone());
        let result = crate::run(cfg, shutdown).await;
        systemd::stopping();
        result
    })
}

#[cfg(test)]
mod tests;
