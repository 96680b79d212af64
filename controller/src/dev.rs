//! `plumb dev`: the one-command demo. A controller and an agent in one process, on loopback,
//! with the example manifests (built in) and a demo file tree that starts in sync with them, in
//! a temp dir that is removed on exit.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use plumb_agent::AgentConfig;
use plumb_agent::root::Root;
use plumb_common::cli::exit;
use tokio_util::sync::CancellationToken;

use crate::server::{self, ServeConfig};

/// The example manifests in `manifests/`, built into the binary.
const MANIFESTS: &[(&str, &str)] = &[
    (
        "baseline.yaml",
        include_str!("../../manifests/baseline.yaml"),
    ),
    ("app.yaml", include_str!("../../manifests/app.yaml")),
    (
        "files/gateway.conf",
        include_str!("../../manifests/files/gateway.conf"),
    ),
];

/// A host that satisfies the example manifests: (path, content, mode).
const DEMO_FILES: &[(&str, &str, u32)] = &[
    (
        "etc/ssh/sshd_config",
        "# demo sshd_config\nPort 22\nPermitRootLogin no\nPasswordAuthentication no\nX11Forwarding no\n",
        0o600,
    ),
    (
        "etc/motd",
        "Authorized use only. Activity is logged.\n",
        0o644,
    ),
    ("etc/sudoers.d/ops", "%ops ALL=(ALL) ALL\n", 0o440),
    (
        "etc/gateway/gateway.conf",
        include_str!("../../manifests/files/gateway.conf"),
        0o644,
    ),
    (
        "var/lib/dpkg/status",
        "Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n\n",
        0o644,
    ),
];

#[derive(clap::Args)]
pub struct DevArgs {
    /// Loopback address to listen on.
    #[arg(long, default_value = server::DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Use these manifests instead of the built-in examples.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Loopback address of the web console (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7780", value_name = "ADDR")]
    pub web_listen: SocketAddr,
}

pub async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<i32> {
    ensure!(
        args.listen.ip().is_loopback(),
        "plumb dev listens on loopback only; {} is not (use `plumb serve` to listen elsewhere)",
        args.listen
    );
    let tmp = tempfile::Builder::new()
        .prefix("plumb-dev-")
        .tempdir()
        .context("cannot create a temp dir")?;
    let manifests = match args.manifests {
        Some(dir) => dir,
        None => {
            let dir = tmp.path().join("manifests");
            write_examples(&dir)?;
            dir
        }
    };
    let root = tmp.path().join("root");
    seed_demo_root(&root)?;

    let reload_now = std::sync::Arc::new(tokio::sync::Notify::new());
    plumb_common::signals::notify_on_sighup(reload_now.clone());
    ensure!(
        args.web_listen.ip().is_loopback(),
        "plumb dev serves the console on loopback only; {} is not",
        args.web_listen
    );
    let cfg = ServeConfig {
        web: Some(server::console::WebConfig {
            listen: args.web_listen,
            session: server::console::DEFAULT_SESSION,
            proxy: None,
        }),
        tls: None,
        insecure_plaintext: false,
        metrics: None,
        webhooks: Vec::new(),
        reload_now,
        listen: args.listen,
        manifests: manifests.clone(),
        data: tmp.path().join("data"),
        store: None,
        audit_key: tmp.path().join("data/audit.key"),
        heartbeat_interval: Duration::from_secs(5),
        max_connections: None,
        handshake_timeout: server::HANDSHAKE_TIMEOUT,
        max_connection_age: None,
    };
    let controller = server::start(cfg, shutdown.clone()).await.map_err(|e| {
        if e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
        }) {
            e.context(format!(
                "hint: something already listens on {} or {}; try --listen 127.0.0.1:7701 or --web-listen 127.0.0.1:7781",
                args.listen, args.web_listen
            ))
        } else {
            e
        }
    })?;
    let url = format!("http://{}", controller.addr);

    let mut agent_cfg = AgentConfig::new(url.clone());
    agent_cfg.root = Root::new(Some(root.clone()));
    let host = agent_cfg.host_id.clone();
    let agent = tokio::spawn(plumb_agent::run(agent_cfg, shutdown.clone()));

    let console = controller.web_url.clone().unwrap_or_default();
    print_banner(&url, &console, &host, &root, &manifests);
    let agent_result = agent.await.context("agent task failed")?;
    controller.wait().await?;
    agent_result?;
    Ok(exit::OK)
}

fn write_examples(dir: &Path) -> anyhow::Result<()> {
    for (name, text) in MANIFESTS {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Writes a tree that is in sync with the example manifests.
fn seed_demo_root(root: &Path) -> anyhow::Result<()> {
    for (rel, content, mode) in DEMO_FILES {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
    }
    fs::create_dir_all(root.join("opt/gateway/releases/4.2.1"))?;
    symlink(
        "/opt/gateway/releases/4.2.1",
        root.join("etc/gateway/current"),
    )?;
    Ok(())
}

fn print_banner(url: &str, console: &str, host: &str, root: &Path, manifests: &Path) {
    let r = root.display();
    println!(
        "\
plumb dev: controller on {url}, agent {host:?} watching a demo tree (in sync to start with)

  web console      {console}   (open it: it updates live as you try what follows)

  demo host files  {r}        (the agent reads /etc/... from here)
  manifests        {m}   (edit them: the controller reloads)

Try, in another terminal (plumb = cargo run --release --bin plumb --):
  plumb drift                                   # every host in sync, exit 0
  echo 'X11Forwarding yes' >> {r}/etc/ssh/sshd_config
  chmod 644 {r}/etc/ssh/sshd_config
  touch {r}/etc/sudoers.d/backdoor
  sed -i 's/1:9.2p1-2+deb12u3/1:8.4p1-5/' {r}/var/lib/dpkg/status   # an OpenSSH downgrade
  plumb drift                                   # what differs, expected vs actual, exit 2
  plumb drift --follow                          # live, as it happens
  plumb history                                 # opened, and resolved once you revert
  plumb hosts -o json

Ctrl-C stops both and removes the temp dir.",
        m = manifests.display()
    );
}
