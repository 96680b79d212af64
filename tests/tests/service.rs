//! End to end: running plumb as a service: configuration files with environment and flag
//! overrides, systemd readiness and watchdog notifications.

use std::fs;
use std::path::Path;
use std::process::Command;

use plumb_tests::{Controller, Proc, bin, wait_for, write_tree};
use serde_json::Value;

/// `plumb serve --config FILE` with everything in the file.
fn controller_from_config(tmp: &Path) -> Controller {
    let manifests = tmp.join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(
        manifests.join("all.yaml"),
        "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n",
    )
    .expect("write");
    let config = tmp.join("controller.yaml");
    fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nmanifests: {}\ndata: {}\nheartbeat_interval: 1s\n",
            manifests.display(),
            tmp.join("data").display()
        ),
    )
    .expect("write");
    Controller::start_config(&config, &manifests, &tmp.join("data"))
}

fn labels_of(c: &Controller, host: &str) -> Value {
    wait_for(&format!("host {host} to report"), || {
        let hosts = c.json(&["hosts"]);
        hosts["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["host"] == host && h["status"] == "drifted")
            .map(|h| h["labels"].clone())
    })
}

#[test]
fn configuration_files_are_read_and_environment_and_flags_override_them() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let c = controller_from_config(tmp.path());
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "changed\n")]);
    let config = tmp.path().join("agent.yaml");
    fs::write(
        &config,
        format!(
            "controller: {}\nhost_id: from-file\nroot: {}\nlabels: {{role: file, tier: a}}\n\
             poll_interval: 1s\n",
            c.url,
            root.display()
        ),
    )
    .expect("write");
    let agent = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(bin("plumb-agent"));
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .args(args)
            .envs(env.iter().copied());
        Proc::spawn(cmd, None).0
    };

    // Only the file.
    let _a = agent(&[], &[]);
    let labels = labels_of(&c, "from-file");
    assert_eq!(labels, serde_json::json!({"role": "file", "tier": "a"}));

    // The environment beats the file; a flag's label replaces the file's for its key only.
    let _b = agent(&[("PLUMB_HOST_ID", "from-env")], &["--label", "tier=flag"]);
    let labels = labels_of(&c, "from-env");
    assert_eq!(labels, serde_json::json!({"role": "file", "tier": "flag"}));

    // A flag beats the environment.
    let _c = agent(
        &[
            ("PLUMB_HOST_ID", "from-env"),
            ("PLUMB_LABELS", "tier=env,zone=z1"),
        ],
        &["--host-id", "from-flag"],
    );
    let labels = labels_of(&c, "from-flag");
    assert_eq!(
        labels,
        serde_json::json!({"role": "file", "tier": "env", "zone": "z1"})
    );
}

#[test]
fn a_broken_configuration_is_named_with_its_location_and_nothing_starts() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("agent.yaml");
    fs::write(&config, "controller: http://127.0.0.1:1\ncontoller: typo\n").expect("write");
    let out = Command::new(bin("plumb-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:1: unknown field `contoller`",
            config.display()
        )),
        "{err}"
    );

    let config = tmp.path().join("controller.yaml");
    fs::write(&config, "listen: 127.0.0.1:0\n").expect("write");
    let out = Command::new(bin("plumb"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(64),
        "a missing option is a usage error"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no manifest directory"), "{err}");
    assert!(err.contains("PLUMB_MANIFESTS"), "{err}");

    let out = Command::new(bin("plumb-agent"))
        .args(["run", "--config"])
        .arg(tmp.path().join("missing.yaml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the configuration"), "{err}");
}

/// A stand-in for systemd's notification socket: collects what a daemon sends.
struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(plumb_tests::DEADLINE))
            .expect("timeout");
        Self { socket, path }
    }

    /// The environment systemd gives a `Type=notify` service with `WatchdogSec=`.
    fn env(&self, watchdog_usec: u64) -> Vec<(String, String)> {
        vec![
            ("NOTIFY_SOCKET".into(), self.path.display().to_string()),
            ("WATCHDOG_USEC".into(), watchdog_usec.to_string()),
        ]
    }

    /// Reads messages until one contains `line`; returns everything read.
    fn until(&self, line: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {line:?} notification ({e}); got {seen:?}"));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == line);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
}

fn expect_notify_lifecycle(mut daemon: Proc, sock: &NotifySocket, status: &str) {
    let ready = sock.until("READY=1");
    let last = ready.last().expect("a message");
    assert!(
        last.lines()
            .any(|l| l.starts_with("STATUS=") && l.contains(status)),
        "{ready:?}"
    );
    // The watchdog (300 ms) is fed again and again while the daemon is healthy.
    for _ in 0..3 {
        sock.until("WATCHDOG=1");
    }
    daemon.signal("TERM");
    sock.until("STOPPING=1");
    assert_eq!(daemon.wait(), Some(0), "{}", daemon.stderr());
}

#[test]
fn the_daemons_notify_systemd_when_ready_feed_its_watchdog_and_say_when_stopping() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    let controller_dir = tmp.path().join("c");
    fs::create_dir_all(&controller_dir).expect("mkdir");
    let sock = NotifySocket::bind(&controller_dir);
    let mut cmd = Command::new(bin("plumb"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--manifests"])
        .arg(&manifests)
        .arg("--data")
        .arg(tmp.path().join("data"))
        .envs(sock.env(300_000));
    let (controller, addr) = Proc::spawn(cmd, Some("plumb: listening on"));
    let addr = addr.expect("address");
    expect_notify_lifecycle(controller, &sock, &format!("listening on {addr}"));

    // The agent is ready even when its controller is unreachable: it keeps retrying.
    let agent_dir = tmp.path().join("a");
    fs::create_dir_all(&agent_dir).expect("mkdir");
    let sock = NotifySocket::bind(&agent_dir);
    let mut cmd = Command::new(bin("plumb-agent"));
    cmd.args([
        "run",
        "--controller",
        "http://127.0.0.1:1",
        "--host-id",
        "h",
    ])
    .envs(sock.env(300_000));
    let (agent, _) = Proc::spawn(cmd, None);
    expect_notify_lifecycle(agent, &sock, "reporting to http://127.0.0.1:1");
}

/// Splits `install --dry-run` output into (path, content) per file.
fn dry_run_files(stdout: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        if let Some(path) = line
            .strip_prefix("==> ")
            .and_then(|l| l.strip_suffix(" <=="))
        {
            files.push((path.to_owned(), String::new()));
        } else if let Some((_, content)) = files.last_mut() {
            content.push_str(line);
            content.push('\n');
        }
    }
    files
}

fn run_out(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `systemd-analyze verify` on a unit, and the hardening every plumb unit must keep.
fn check_unit(dir: &Path, name: &str, unit: &str, must: &[&str]) {
    let path = dir.join(name);
    fs::write(&path, unit).expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (from the systemd package; .ci/run installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for option in [
        "Type=notify",
        "WatchdogSec=30s",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictNamespaces=yes",
        "MemoryDenyWriteExecute=yes",
        "LockPersonality=yes",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
    ]
    .iter()
    .chain(must)
    .chain(
        // Explicit: a flood of connections meets the controller's own limit, not systemd's
        // default.
        [if name.contains("controller") {
            "LimitNOFILE=65536"
        } else {
            "LimitNOFILE=1024"
        }]
        .iter(),
    ) {
        assert!(lines.contains(option), "{name} lacks {option}:\n{unit}");
    }
}

#[test]
fn install_dry_run_writes_hardened_units_that_systemd_accepts() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let agent = run_out(Command::new(bin("plumb-agent")).args([
        "install",
        "--controller",
        "http://plumb.example:7700",
        "--label",
        "role=web",
        "--dry-run",
    ]));
    let files = dry_run_files(&agent);
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/plumb/agent.yaml",
            "/etc/systemd/system/plumb-agent.service"
        ]
    );
    assert!(
        files[0]
            .1
            .contains("controller: http://plumb.example:7700\n")
    );
    let unit = &files[1].1;
    let exec = format!(
        "ExecStart={} run --config /etc/plumb/agent.yaml",
        bin("plumb-agent").canonicalize().expect("binary").display()
    );
    check_unit(
        tmp.path(),
        "plumb-agent.service",
        unit,
        &[
            &exec,
            "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
            "AmbientCapabilities=CAP_DAC_READ_SEARCH",
            "ProtectHome=read-only",
        ],
    );
    // Nothing that hides the files an agent must watch.
    for hiding in [
        "ProtectHome=yes",
        "ProtectHome=tmpfs",
        "InaccessiblePaths",
        "ProcSubset=pid",
    ] {
        assert!(!unit.contains(hiding), "{hiding} in the agent's unit");
    }
    assert!(!unit.contains("CAP_SYS_ADMIN"), "not without attribution");

    // With attribution: CAP_SYS_ADMIN and the two fanotify calls, nothing else more.
    let attributing = run_out(Command::new(bin("plumb-agent")).args([
        "install",
        "--controller",
        "http://plumb.example:7700",
        "--attribution",
        "fanotify",
        "--dry-run",
    ]));
    let files = dry_run_files(&attributing);
    assert!(
        files[0].1.contains("attribution: fanotify\n"),
        "{}",
        files[0].1
    );
    let with = &files[1].1;
    check_unit(
        tmp.path(),
        "plumb-agent.service",
        with,
        &[
            &exec,
            "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_ADMIN",
            "AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_ADMIN",
            "SystemCallFilter=fanotify_init fanotify_mark",
        ],
    );
    let added: Vec<&str> = with
        .lines()
        .filter(|l| !l.starts_with('#') && !unit.lines().any(|u| u == *l))
        .collect();
    assert_eq!(
        added,
        [
            "AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_ADMIN",
            "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_ADMIN",
            "SystemCallFilter=fanotify_init fanotify_mark",
        ],
        "{with}"
    );

    let pki = tmp.path().join("pki");
    run_out(
        Command::new(bin("plumb"))
            .args(["certs", "init", "--dir"])
            .arg(&pki),
    );
    run_out(
        Command::new(bin("plumb"))
            .args(["certs", "issue", "controller", "plumb.example", "--dir"])
            .arg(&pki),
    );
    let p = |f: &str| pki.join(f).display().to_string();
    let controller = run_out(Command::new(bin("plumb")).args([
        "install",
        "--listen",
        "0.0.0.0:7700",
        "--tls-cert",
        &p("controller.pem"),
        "--tls-key",
        &p("controller-key.pem"),
        "--tls-ca",
        &p("ca.pem"),
        "--web-listen",
        "0.0.0.0:7780",
        "--dry-run",
    ]));
    let files = dry_run_files(&controller);
    let unit = &files
        .iter()
        .find(|(p, _)| p == "/etc/systemd/system/plumb-controller.service")
        .expect("a unit")
        .1;
    check_unit(
        tmp.path(),
        "plumb-controller.service",
        unit,
        &[
            "CapabilityBoundingSet=",
            "DynamicUser=yes",
            "StateDirectory=plumb",
            &format!("LoadCredential=tls-key:{}", p("controller-key.pem")),
        ],
    );
    assert!(
        unit.contains("--tls-key ${CREDENTIALS_DIRECTORY}/tls-key"),
        "{unit}"
    );
    // The configuration file it writes is one `plumb serve` reads.
    let config = tmp.path().join("controller.yaml");
    fs::write(&config, &files[0].1).expect("write");
    let merged = run_out(
        Command::new(bin("plumb"))
            .args(["serve", "--print-config", "--config"])
            .arg(&config),
    );
    assert!(merged.contains("listen: 0.0.0.0:7700\n"), "{merged}");
    assert!(
        merged.contains("web:\n  listen: 0.0.0.0:7780\n"),
        "the console, served over HTTPS: {merged}"
    );
    assert!(
        merged.contains(&format!("key: {}\n", p("controller-key.pem"))),
        "{merged}"
    );

    // Exposed without TLS is refused, as `plumb serve` would.
    let out = Command::new(bin("plumb"))
        .args(["install", "--listen", "0.0.0.0:7700", "--dry-run"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs TLS"));
    let out = Command::new(bin("plumb"))
        .args(["install", "--web-listen", "0.0.0.0:7780", "--dry-run"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a console on 0.0.0.0:7780 needs TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_and_uninstall_on_a_scratch_root() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("image");
    fs::create_dir_all(&root).expect("mkdir");
    let install = |extra: &[&str]| {
        let mut cmd = Command::new(bin("plumb-agent"));
        cmd.args(["install", "--controller", "http://c:7700", "--install-root"])
            .arg(&root)
            .args(extra);
        cmd.output().expect("run")
    };
    let out = install(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("wrote: ") && said.contains("nothing was started"),
        "{said}"
    );
    let config = root.join("etc/plumb/agent.yaml");
    let unit = root.join("etc/systemd/system/plumb-agent.service");
    assert!(
        fs::read_to_string(&config)
            .expect("config")
            .contains("controller: http://c:7700")
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        fs::metadata(&config).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert!(
        fs::read_to_string(&unit)
            .expect("unit")
            .contains("Type=notify")
    );

    // Again, the same: nothing to do. Different: refused unless --force.
    let out = install(&[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged: "));
    let out = install(&["--label", "role=db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists with other content"));
    assert!(
        !fs::read_to_string(&config)
            .expect("config")
            .contains("role")
    );
    let out = install(&["--label", "role=db", "--force"]);
    assert!(out.status.success());
    assert!(
        fs::read_to_string(&config)
            .expect("config")
            .contains("role: db")
    );

    // The configuration it wrote is one `plumb-agent run` accepts (it fails only to connect).
    plumb_agent_accepts(&config);

    let uninstall = |extra: &[&str]| {
        run_out(
            Command::new(bin("plumb-agent"))
                .args(["uninstall", "--install-root"])
                .arg(&root)
                .args(extra),
        )
    };
    let said = uninstall(&[]);
    assert!(!unit.exists() && config.exists(), "{said}");
    assert!(said.contains("kept: "), "{said}");
    uninstall(&["--purge"]);
    assert!(!config.exists());

    // The controller's, likewise; its manifest directory is created, and kept.
    let out = run_out(
        Command::new(bin("plumb"))
            .args(["install", "--install-root"])
            .arg(&root),
    );
    assert!(out.contains("created: "), "{out}");
    assert!(root.join("etc/plumb/manifests").is_dir());
    assert!(
        root.join("etc/systemd/system/plumb-controller.service")
            .is_file()
    );
    run_out(
        Command::new(bin("plumb"))
            .args(["uninstall", "--purge", "--install-root"])
            .arg(&root),
    );
    assert!(
        !root
            .join("etc/systemd/system/plumb-controller.service")
            .exists()
    );
    assert!(!root.join("etc/plumb/controller.yaml").exists());
    assert!(root.join("etc/plumb/manifests").is_dir());
}

/// `plumb-agent run --config FILE --print-config` reads and checks the file and prints the
/// options in force.
fn plumb_agent_accepts(config: &Path) {
    let out = run_out(
        Command::new(bin("plumb-agent"))
            .args(["run", "--print-config", "--config"])
            .arg(config)
            .env_remove("PLUMB_CONTROLLER"),
    );
    assert!(out.contains("controller: http://c:7700\n"), "{out}");
    assert!(out.contains("role: db\n"), "{out}");
}

#[test]
fn print_config_shows_the_merged_options() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("agent.yaml");
    fs::write(
        &config,
        "controller: http://file:7700\nlabels: {a: file, b: file}\nrescan_interval: 1h\n",
    )
    .expect("write");
    let out = run_out(
        Command::new(bin("plumb-agent"))
            .args(["run", "--print-config", "--label", "b=flag", "--config"])
            .arg(&config)
            .env("PLUMB_RESCAN_INTERVAL", "5m"),
    );
    assert_eq!(
        out,
        "controller: http://file:7700\nlabels:\n  a: file\n  b: flag\nrescan_interval: 5m\n"
    );
}

#[test]
fn where_systemd_runs_install_enables_and_starts_and_uninstall_stops_and_disables() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("image");
    fs::create_dir_all(&root).expect("mkdir");
    // A systemctl that records how it was called, and fails when told to.
    let log = tmp.path().join("systemctl.log");
    let fake = tmp.path().join("systemctl");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\n[ -e {}/fail ] && exit 1\nexit 0\n",
            log.display(),
            tmp.path().display()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
    let agent = |args: &[&str]| {
        Command::new(bin("plumb-agent"))
            .args(args)
            .arg("--install-root")
            .arg(&root)
            .env("PLUMB_SYSTEMCTL", &fake)
            .output()
            .expect("run")
    };
    let calls = || fs::read_to_string(&log).unwrap_or_default();

    let out = agent(&["install", "--controller", "http://c:7700"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(calls(), "daemon-reload\nenable --now plumb-agent.service\n");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("is enabled and started"), "{said}");

    let out = agent(&["uninstall"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        calls(),
        "daemon-reload\nenable --now plumb-agent.service\n\
         disable --now plumb-agent.service\ndaemon-reload\n"
    );
    // Nothing to disable the second time.
    assert!(agent(&["uninstall"]).status.success());
    assert!(calls().ends_with("disable --now plumb-agent.service\ndaemon-reload\ndaemon-reload\n"));

    // systemctl failing is the install failing, and said.
    fs::write(tmp.path().join("fail"), "").expect("write");
    let out = agent(&["install", "--controller", "http://c:7700", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("systemctl daemon-reload failed"), "{err}");
}
