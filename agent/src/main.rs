//! `plumb-agent`: parses arguments, sets up logging, runs the agent library until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use plumb_agent::AgentConfig;
use plumb_agent::cli::{self, exit};
use plumb_agent::root::Root;
use tokio_util::sync::CancellationToken;

/// plumb's agent: watches the files its controller declares for this host and streams their
/// state. It never changes anything and never sends file content.
#[derive(Parser)]
#[command(name = "plumb-agent", version, propagate_version = true)]
struct Args {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: cli::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the controller and stream this host's state until stopped.
    Run(RunArgs),
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
        /// The host id the manifest selects [default: the hostname].
        #[arg(long, value_name = "ID")]
        host_id: Option<String>,
        /// Read paths and package databases under this prefix.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The controller's URL.
    #[arg(long, env = "PLUMB_CONTROLLER", value_name = "URL")]
    controller: String,
    /// This host's identity in the fleet [default: the hostname].
    #[arg(long, value_name = "ID")]
    host_id: Option<String>,
    /// Read every declared path under this prefix (the host mounted in a container, or a
    /// test tree); paths are still reported as declared.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// A label manifests can select on; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = cli::parse_label)]
    labels: Vec<(String, String)>,
    /// Full rescan period, the safety net under the file watches (e.g. 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    rescan_interval: Duration,
    /// How often paths that cannot be watched are checked instead (e.g. 2s).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Watch at most this many directories; the rest are polled and the host is shown
    /// degraded. Default: as many as the kernel allows.
    #[arg(long, value_name = "N")]
    max_watches: Option<usize>,
    /// Read file content at most this fast while hashing (e.g. 20M per second), to cap the
    /// agent's IO and CPU during full scans. Default: unlimited.
    #[arg(long, value_name = "BYTES", value_parser = cli::parse_bytes)]
    scan_rate: Option<u64>,
    /// Never send the content of paths matching this glob, whatever a manifest allows
    /// (repeatable; added to the built-in list: /etc/shadow, private keys...).
    #[arg(long = "deny-content", value_name = "GLOB")]
    deny_content: Vec<String>,
    #[command(flatten)]
    tls: cli::TlsArgs,
}

fn main() {
    let args: Args = cli::parse_args();
    plumb_agent::tls::install_crypto_provider();
    cli::init_logging(args.verbose, args.log_format);
    let code = match run(args.command) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::ERROR
        }
    };
    std::process::exit(code);
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run_agent(args),
        Command::Capture {
            paths,
            packages,
            all_packages,
            exclusive,
            host_id,
            root,
        } => capture(paths, packages, all_packages, exclusive, host_id, root),
    }
}

/// Prints the manifest; a closed pipe ends the output quietly.
fn capture(
    paths: Vec<String>,
    packages: Vec<String>,
    all_packages: bool,
    exclusive: bool,
    host_id: Option<String>,
    root: Option<PathBuf>,
) -> anyhow::Result<()> {
    use std::io::Write;
    anyhow::ensure!(
        !paths.is_empty() || !packages.is_empty() || all_packages,
        "nothing to capture; hint: give paths, --package NAME or --all-packages"
    );
    let req = plumb_agent::capture::CaptureRequest {
        host_id: host_id.unwrap_or_else(plumb_agent::collect::facts::hostname),
        paths,
        packages,
        all_packages,
        exclusive,
    };
    let text = plumb_agent::capture::capture(&Root::new(root), &req).map_err(anyhow::Error::msg)?;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn run_agent(args: RunArgs) -> anyhow::Result<()> {
    let RunArgs {
        controller,
        host_id,
        root,
        labels,
        rescan_interval,
        poll_interval,
        max_watches,
        scan_rate,
        tls,
        deny_content,
    } = args;
    if let Some(rate) = scan_rate {
        plumb_agent::collect::files::set_scan_rate(rate);
    }
    let tls = tls.load()?;
    if let Some(root) = &root {
        anyhow::ensure!(
            root.is_dir(),
            "--root {} is not a directory",
            root.display()
        );
    }
    let mut cfg = AgentConfig::new(controller);
    if let Some(id) = host_id {
        anyhow::ensure!(!id.trim().is_empty(), "--host-id cannot be empty");
        cfg.host_id = id;
    }
    cfg.root = Root::new(root);
    cfg.labels = cli::labels(labels);
    cfg.rescan_interval = rescan_interval;
    cfg.poll_interval = poll_interval;
    cfg.max_watches = max_watches;
    cfg.tls = tls;
    cfg.deny_content.extend(deny_content);

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cli::cancel_on_signal(shutdown.clone()));
        cli::notify_on_sighup(cfg.rescan_now.clone());
        plumb_agent::run(cfg, shutdown).await
    })
}
