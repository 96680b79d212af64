//! Harness for the end-to-end tests: builds and starts the real `plumb` and `plumb-agent`
//! binaries, talks to them through the real CLI, and waits for conditions with deadlines.

pub mod browser;
pub mod hooks;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod fuzz;

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// The workspace's debug binaries, built once per test process (a no-op when `cargo test`
/// already built them), so `cargo test -p plumb-tests` works on its own too.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "plumb-controller",
                "-p",
                "plumb-agent",
                "--bins",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
        // target/debug/deps/<test binary> -> target/debug
        let exe = std::env::current_exe().expect("test binary path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf()
    });
    dir.join(name)
}

/// Polls `check` until it returns `Some`, or fails the test after `DEADLINE` with `what`.
pub fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_for_within(what, DEADLINE, check)
}

/// `wait_for` with a deadline of the caller's, for what takes longer than `DEADLINE` by design
/// (a fleet recovering from a killed controller).
pub fn wait_for_within<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when dropped; its stderr is kept for failure messages.
pub struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Spawns `cmd`; with `ready`, waits for a stderr line starting with it and returns the rest.
    pub fn spawn(cmd: Command, ready: Option<&str>) -> (Self, Option<String>) {
        Self::start(cmd, ready, Stdio::null())
    }

    /// Spawns `cmd` with its stdout piped, for the test to read (`take_stdout`).
    pub fn spawn_reading(cmd: Command) -> Self {
        Self::start(cmd, None, Stdio::piped()).0
    }

    /// The piped stdout of a process from `spawn_reading`.
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout piped")
    }

    fn start(mut cmd: Command, ready: Option<&str>, stdout: Stdio) -> (Self, Option<String>) {
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        let marker = ready.map(str::to_owned);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(m) = &marker
                    && let Some(rest) = line.strip_prefix(m.as_str())
                {
                    let _ = tx.send(rest.trim().to_owned());
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let found = ready.map(|m| {
            rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
                panic!(
                    "no {m:?} line from {cmd:?} within {DEADLINE:?}; stderr:\n{}",
                    log.lock().map(|l| l.join("\n")).unwrap_or_default()
                )
            })
        });
        (Self { child, log }, found)
    }

    pub fn stderr(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "process did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A controller started with `plumb serve` on a free loopback port.
pub struct Controller {
    pub proc: Proc,
    pub url: String,
    pub manifests: PathBuf,
    pub data: PathBuf,
    /// Environment for the CLI (e.g. an operator's certificate under TLS).
    pub client_env: Vec<(String, String)>,
}

impl Controller {
    pub fn start(manifests: &Path, data: &Path) -> Self {
        Self::start_on(manifests, data, "127.0.0.1:0")
    }

    pub fn start_on(manifests: &Path, data: &Path, listen: &str) -> Self {
        Self::start_with(manifests, data, listen, &[], "http")
    }

    /// With mutual TLS from a `plumb certs` directory holding `controller.pem`; the CLI then
    /// uses the operator certificate `operator-NAME.pem`.
    pub fn start_tls(manifests: &Path, data: &Path, pki: &Path, operator: &str) -> Self {
        let p = |f: &str| pki.join(f).display().to_string();
        let args = [
            "--tls-cert",
            &p("controller.pem"),
            "--tls-key",
            &p("controller-key.pem"),
            "--tls-ca",
            &p("ca.pem"),
        ];
        let mut c = Self::start_with(manifests, data, "127.0.0.1:0", &args, "https");
        c.client_env = vec![
            ("PLUMB_CA".into(), p("ca.pem")),
            ("PLUMB_CERT".into(), p(&format!("operator-{operator}.pem"))),
            (
                "PLUMB_KEY".into(),
                p(&format!("operator-{operator}-key.pem")),
            ),
        ];
        c
    }

    pub fn start_with(
        manifests: &Path,
        data: &Path,
        listen: &str,
        extra: &[&str],
        scheme: &str,
    ) -> Self {
        let mut cmd = Command::new(bin("plumb"));
        cmd.args([
            "serve",
            "--listen",
            listen,
            "--heartbeat-interval",
            "1s",
            "--manifests",
        ])
        .arg(manifests)
        .arg("--data")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "info");
        let (proc, addr) = Proc::spawn(cmd, Some("plumb: listening on"));
        let addr = addr.expect("address");
        Self {
            proc,
            url: format!("{scheme}://{addr}"),
            manifests: manifests.into(),
            data: data.into(),
            client_env: Vec::new(),
        }
    }

    /// `plumb serve --config FILE`, everything else from the file (which names `manifests`
    /// and `data`, and listens on a free loopback port).
    pub fn start_config(config: &Path, manifests: &Path, data: &Path) -> Self {
        let mut cmd = Command::new(bin("plumb"));
        cmd.arg("serve").arg("--config").arg(config);
        let (proc, addr) = Proc::spawn(cmd, Some("plumb: listening on"));
        Self {
            proc,
            url: format!("http://{}", addr.expect("address")),
            manifests: manifests.into(),
            data: data.into(),
            client_env: Vec::new(),
        }
    }

    /// Runs the CLI against this controller.
    pub fn plumb(&self, args: &[&str]) -> Output {
        Command::new(bin("plumb"))
            .args(args)
            .env("PLUMB_CONTROLLER", &self.url)
            .env("NO_COLOR", "1")
            .envs(self.client_env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run plumb")
    }

    /// The web console's URL, as `plumb serve --web-listen` said it.
    pub fn console_url(&self) -> String {
        wait_for("the console's address", || {
            let err = self.proc.stderr();
            err.lines()
                .find_map(|l| l.strip_prefix("plumb: console on "))
                .map(str::to_owned)
        })
    }

    /// `plumb <args> -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.plumb(&all);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "plumb {all:?} printed no JSON ({e}); stdout: {}; stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The kinds of `host`'s events (`opened`, `host_online`...), most recent first.
    pub fn event_kinds(&self, host: &str) -> Vec<String> {
        self.json(&["history", host])["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `plumb <args>` whose output is JSON already, parsed.
    pub fn json_raw(&self, args: &[&str]) -> Value {
        let out = self.plumb(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "plumb {args:?} printed no JSON ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The entry of `plumb drift -o json` for one host, if the controller knows it.
    pub fn host_drift(&self, host: &str) -> Option<Value> {
        let v = self.json(&["drift"]);
        v["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["host"] == host)
            .cloned()
    }

    /// Waits until `host`'s drift items, as (resource, attribute, expected, actual), equal `want`
    /// and the host is connected.
    pub fn expect_drift(&self, host: &str, want: &[(&str, &str, &str, &str)]) -> Value {
        self.expect_drift_where(host, want, |status, drifted| {
            if drifted {
                status == "drifted"
            } else {
                status == "in_sync"
            }
        })
    }

    /// Like `expect_drift`, for the common case: `path`'s content alone differs, its digest
    /// declared from `desired` and observed from `actual`.
    pub fn expect_content_drift(
        &self,
        host: &str,
        path: &str,
        desired: &[u8],
        actual: &[u8],
    ) -> Value {
        let resource = format!("file:{path}");
        self.expect_drift(
            host,
            &[(&resource, "sha256", &sha256(desired), &sha256(actual))],
        )
    }

    /// Like `expect_drift`, whatever the host's status (e.g. `degraded`).
    pub fn expect_drift_any_status(&self, host: &str, want: &[(&str, &str, &str, &str)]) -> Value {
        self.expect_drift_where(host, want, |status, _| status != "offline")
    }

    fn expect_drift_where(
        &self,
        host: &str,
        want: &[(&str, &str, &str, &str)],
        status_ok: impl Fn(&str, bool) -> bool,
    ) -> Value {
        let mut last = None;
        let mut want: Vec<_> = want
            .iter()
            .map(|(r, a, e, x)| (r.to_string(), a.to_string(), e.to_string(), x.to_string()))
            .collect();
        want.sort();
        let found = (|| {
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                if let Some(h) = self.host_drift(host) {
                    let items = drift_items(&h);
                    let status = h["status"].as_str().unwrap_or_default().to_owned();
                    let ok_status = status_ok(&status, !want.is_empty());
                    if items == want && ok_status {
                        return Some(h);
                    }
                    last = Some((status, items));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        })();
        found.unwrap_or_else(|| {
            panic!(
                "host {host}: expected drift {want:#?}\nlast seen: {last:#?}\ncontroller stderr:\n{}",
                self.proc.stderr()
            )
        })
    }
}

/// (resource, attribute, expected, actual), sorted.
pub fn drift_items(host: &Value) -> Vec<(String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut items: Vec<_> = host["drift"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        s(&d["resource"]),
                        s(&d["attribute"]),
                        s(&d["expected"]),
                        s(&d["actual"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

/// An agent started with `plumb-agent run`, with `--label` for each of `labels`.
pub fn start_agent(controller_url: &str, host_id: &str, root: &Path, labels: &[&str]) -> Proc {
    let extra: Vec<String> = labels.iter().map(|l| format!("--label={l}")).collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    start_agent_with(
        Command::new(bin("plumb-agent")),
        controller_url,
        host_id,
        root,
        &extra,
    )
}

/// Like `start_agent`, with a prepared command (e.g. one that drops privileges first) and
/// extra arguments for `run`.
pub fn start_agent_with(
    mut cmd: Command,
    controller_url: &str,
    host_id: &str,
    root: &Path,
    extra: &[&str],
) -> Proc {
    cmd.args([
        "run",
        "--controller",
        controller_url,
        "--host-id",
        host_id,
        "--root",
    ])
    .arg(root)
    .args(extra);
    if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
        cmd.env("RUST_LOG", "info");
    }
    Proc::spawn(cmd, None).0
}

/// `sha256sum` of bytes, computed by the real tool so the tests do not trust plumb's hashing.
pub fn sha256(content: &[u8]) -> String {
    digest_by("sha256sum", content)
}

/// `md5sum` of bytes (what dpkg records for a package's files), by the real tool.
pub fn md5(content: &[u8]) -> String {
    digest_by("md5sum", content)
}

fn digest_by(tool: &str, content: &[u8]) -> String {
    let mut child = Command::new(tool)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), content).expect("write");
    let out = child.wait_with_output().expect("digest output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

/// Runs a shell command (the tools operators use: sed -i, ln -sfn, install...), asserting success.
pub fn sh(script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a test may go on: `available` says whether this machine has what it needs
/// (`what`). Locally a missing part is said and the test's step left out; under CI (`CI` set,
/// as `.ci/run` does) it is a failure, so that nothing passes there by not running.
pub fn have_or_skip(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide {what}, but this machine lacks it"
    );
    eprintln!("{what} missing: left out");
    false
}

/// Whether the tests run as root (chown needs it; CI runs as root).
pub fn is_root() -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir.path()).expect("meta")) == 0
}

/// A TCP proxy on loopback that can cut every connection and refuse new ones, then restore:
/// a network partition between an agent and its controller.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    cut: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
    live: Mutex<Vec<std::net::TcpStream>>,
}

impl Proxy {
    pub fn start(target: std::net::SocketAddr) -> Self {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                if st.cut.load(Ordering::SeqCst) {
                    drop(client); // partitioned: the connection dies at once
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let pipes = [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ];
                if let Ok(mut live) = st.live.lock() {
                    live.extend([client, server]);
                }
                for (from, to) in pipes {
                    if let (Ok(mut from), Ok(mut to)) = (from, to) {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
            }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.state
            .cut
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut live) = self.state.live.lock() {
            for s in live.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    pub fn restore(&self) {
        self.state
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so its thread ends.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// Peak resident memory of a process in KiB (VmHWM), if it can be read.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes files under `root` (paths relative to it), creating folders as needed.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
    }
}

/// Runs a command that must succeed (the tools the tests drive: dpkg, rpm...).
pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Scrapes `/metrics` over HTTP and parses it as Prometheus text exposition.
pub fn scrape(addr: &str) -> std::collections::BTreeMap<String, f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"),
        "{head}"
    );
    let mut samples = std::collections::BTreeMap::new();
    for line in body.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        samples.insert(name.to_owned(), value);
    }
    samples
}
