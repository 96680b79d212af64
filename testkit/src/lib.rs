//! Throwaway servers for plumb's tests.
//!
//! [`Postgres::shared`] starts one PostgreSQL server per test process, from Debian's
//! `postgresql` package (`/usr/lib/postgresql/VERSION/bin`), in a temp dir, listening on a
//! unix socket there and on a free loopback port, with TLS from a CA of its own: no system
//! service, and test processes run side by side.
//! Each test takes a database of its own with [`Postgres::database`]. Where PostgreSQL is not
//! installed, a test says so and leaves its step out; under CI (`CI` set, as `.ci/run` does)
//! that is a failure instead, so nothing passes there by not running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running PostgreSQL server of this test process.
pub struct Postgres {
    /// Holds the data directory, the socket and the TLS files.
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    next: AtomicU32,
    /// The postmaster's process id, as last started.
    pid: AtomicU32,
    /// Who runs it (`None`: this user).
    user: Option<(u32, u32)>,
    /// Whether commits wait for the disk (PostgreSQL's defaults), or not (tests').
    durable: bool,
}

/// The superuser `initdb` makes, which the tests connect as.
const SUPERUSER: &str = "plumb";
/// A superuser who may log in over TLS only, with the client certificate `client_identity`
/// gives (`cert` authentication).
pub const CERT_USER: &str = "plumb_cert";
/// A superuser who may log in over TLS only, with the password `SCRAM_PASSWORD`
/// (`scram-sha-256`, so channel binding can be asked for).
pub const SCRAM_USER: &str = "plumb_scram";
pub const SCRAM_PASSWORD: &str = "correct horse";
/// How long the server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(60);

impl Postgres {
    /// This test process's server, started on first use. `None` where PostgreSQL is not
    /// installed (said on stderr); under CI that panics instead.
    pub fn shared() -> Option<&'static Postgres> {
        static SERVER: OnceLock<Option<Postgres>> = OnceLock::new();
        SERVER
            .get_or_init(|| available().map(|bin| start(bin, false)))
            .as_ref()
    }

    /// A server of the caller's own, which it may stop and start again without disturbing the
    /// tests that share `shared`'s; stopped when dropped. `None` as `shared` says.
    pub fn own() -> Option<Postgres> {
        available().map(|bin| start(bin, false))
    }

    /// A server of the caller's own with PostgreSQL's default durability (fsync, synchronous
    /// commits, full page writes), where the tests' trade it for speed: for benchmarks.
    pub fn own_durable() -> Option<Postgres> {
        available().map(|bin| start(bin, true))
    }

    /// Stops the server as `pg_ctl stop -m fast` would (every session ended, a clean
    /// shutdown); `start` starts it again on the same port and data. Together, what a restart
    /// of the database looks like to its clients.
    pub fn stop(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        let deadline = Instant::now() + STARTUP;
        // Gone once its pid file is: the postmaster removes it last.
        while self.dir.join("data/postmaster.pid").exists() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not stop within {STARTUP:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a server `stop` stopped.
    pub fn start(&self) {
        let data = self.dir.join("data");
        let pid = spawn_server(
            &self.bin,
            &self.dir,
            &data,
            self.user,
            self.port,
            self.durable,
        );
        self.pid.store(pid, Ordering::SeqCst);
        wait_ready(&self.bin, &self.dir, self.port);
    }

    /// A new, empty database on this server; its connection URL
    /// (`postgresql://plumb@%2Ftmp%2F…/test_N`).
    pub fn database(&self) -> String {
        let name = format!("test_{}", self.next.fetch_add(1, Ordering::Relaxed));
        let out = self
            .client(&self.bin.join("createdb"))
            .args(["--username", SUPERUSER, &name])
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// Runs `sql` in the database at `url` (one of this server's) with psql, as its owner
    /// could: to tamper with a store in the tests.
    pub fn psql(&self, url: &str, sql: &str) {
        self.query(url, sql);
    }

    /// What `sql` returns in the database at `url`, unaligned, a line per row: to look at a
    /// store as its owner could.
    pub fn query(&self, url: &str, sql: &str) -> String {
        let name = url.rsplit('/').next().unwrap_or_default();
        let out = self
            .client(&self.bin.join("psql"))
            .args(["--username", SUPERUSER, "--dbname", name])
            .args(["--no-psqlrc", "--set", "ON_ERROR_STOP=1", "--tuples-only"])
            .args(["--no-align", "--command", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A client program run against this server's socket.
    fn client(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--host")
            .arg(&self.dir)
            .arg("--port")
            .arg(self.port.to_string());
        cmd
    }

    /// The server's unix socket (a test may link to it from elsewhere, to make the server
    /// appear there, under `socket_name`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join(self.socket_name())
    }

    /// The socket's file name, which clients derive from the port.
    pub fn socket_name(&self) -> String {
        format!(".s.PGSQL.{}", self.port)
    }

    /// The loopback TCP port the server also listens on (TLS or not).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the server's certificate (for DNS name `localhost` only, not for
    /// 127.0.0.1) and `CERT_USER`'s.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that signed nothing of this server's.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// `CERT_USER`'s certificate and key.
    pub fn client_identity(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.pem"), self.dir.join("client.key"))
    }

    /// The URL of database `name` over TCP to `host` (`localhost` or `127.0.0.1`) as `user`,
    /// with `query` (`sslmode=…&…`) after it.
    pub fn tcp_url(&self, host: &str, user: &str, name: &str, query: &str) -> String {
        format!("postgresql://{user}@{host}:{}/{name}?{query}", self.port)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        self.url_via(&self.dir, name)
    }

    /// The URL of database `name` through a socket in `socket_dir`, where the server's socket
    /// may be linked (or not yet).
    pub fn url_via(&self, socket_dir: &Path, name: &str) -> String {
        let host = socket_dir.display().to_string().replace('/', "%2F");
        format!("postgresql://{SUPERUSER}@{host}:{}/{name}", self.port)
    }
}

/// The newest installed server's bin directory, or `None` (said on stderr) where PostgreSQL
/// is not installed; under CI that panics instead.
fn available() -> Option<PathBuf> {
    let bin = bin_dir();
    if bin.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide PostgreSQL (Debian's postgresql package), but this machine lacks it"
        );
        eprintln!(
            "PostgreSQL missing (no /usr/lib/postgresql/*/bin/postgres): the PostgreSQL tests are left out"
        );
    }
    bin
}

/// The newest installed server's bin directory.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Who runs the server: `initdb` refuses root, so as root the `postgres` user (Debian's
/// package makes it) or, failing that, `nobody`; otherwise this user.
fn server_user() -> Option<(u32, u32)> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    Some(
        entry("postgres")
            .or_else(|| entry("nobody"))
            .expect("neither a postgres nor a nobody user to run PostgreSQL as"),
    )
}

/// `program` as the server's user, through setpriv (util-linux). With `die_with_us`, it gets
/// SIGKILL when the thread that started it ends; setpriv sets that after taking the user's
/// ids, which would have cleared it.
fn server_command(program: &Path, user: Option<(u32, u32)>, die_with_us: bool) -> Command {
    let mut cmd = Command::new("setpriv");
    if let Some((uid, gid)) = user {
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups");
    }
    if die_with_us {
        cmd.args(["--pdeathsig", "SIGKILL"]);
    }
    cmd.arg(program);
    cmd
}

fn start(bin: PathBuf, durable: bool) -> Postgres {
    remove_stale_dirs();
    let dir = tempfile::Builder::new()
        .prefix(&format!("plumb-pg-{}-", std::process::id()))
        .tempdir()
        .expect("temp dir")
        .keep();
    let user = server_user();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the server's dir");
    }
    let data = dir.join("data");
    let out = server_command(&bin.join("initdb"), user, false)
        .arg("--pgdata")
        .arg(&data)
        .args([
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ])
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    write_tls_files(&dir, user);
    write_hba(&data);
    let port = free_port();
    let pid = spawn_server(&bin, &dir, &data, user, port, durable);
    wait_ready(&bin, &dir, port);
    let server = Postgres {
        dir,
        bin,
        port,
        next: AtomicU32::new(0),
        pid: AtomicU32::new(pid),
        user,
        durable,
    };
    server.psql(
        &server.url("postgres"),
        &format!(
            "CREATE ROLE {CERT_USER} LOGIN SUPERUSER; \
             CREATE ROLE {SCRAM_USER} LOGIN SUPERUSER PASSWORD '{SCRAM_PASSWORD}'"
        ),
    );
    server
}

/// A loopback port nothing listens on now (the kernel's pick; the server binds it at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Who may connect how: the superuser as before (socket and plain TCP); the two TLS users
/// only over TLS, each with its own method.
fn write_hba(data: &Path) {
    std::fs::write(
        data.join("pg_hba.conf"),
        format!(
            "local all all trust\n\
             hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
             hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
             host all {SUPERUSER} 127.0.0.1/32 trust\n"
        ),
    )
    .expect("write pg_hba.conf");
}

/// A CA, the server's certificate and key (for `localhost`), `CERT_USER`'s, and a second CA
/// that signed none of them. The server's key is its user's alone, as PostgreSQL insists.
fn write_tls_files(dir: &Path, user: Option<(u32, u32)>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        (params, cert, key)
    };
    let (ca_params, ca_cert, ca_key) = ca("plumb testkit CA");
    let (_, other_cert, _) = ca("plumb testkit other CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, common: &str| {
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, common);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &issuer).expect("leaf cert");
        (cert, key)
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into()], "localhost");
    let (client_cert, client_key) = leaf(Vec::new(), CERT_USER);
    let write = |name: &str, text: String, private: bool| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a TLS file");
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod key");
        }
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown a TLS file");
        }
    };
    write("ca.pem", ca_cert.pem(), false);
    write("other-ca.pem", other_cert.pem(), false);
    write("server.pem", server_cert.pem(), false);
    write("server.key", server_key.serialize_pem(), true);
    write("client.pem", client_cert.pem(), false);
    write("client.key", client_key.serialize_pem(), true);
}

/// Starts the server from a thread that lives as long as the test process. The server gets
/// SIGKILL when that thread ends (the parent-death signal is tied to the thread that forked),
/// so no server outlives the tests, however they end. Its process id (setpriv execs it).
fn spawn_server(
    bin: &Path,
    dir: &Path,
    data: &Path,
    user: Option<(u32, u32)>,
    port: u16,
    durable: bool,
) -> u32 {
    let mut cmd = server_command(&bin.join("postgres"), user, true);
    let file = |name: &str| dir.join(name).display().to_string();
    cmd.arg("-D")
        .arg(data)
        .arg("-k")
        .arg(dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "ssl=on"])
        .args(["-c", &format!("ssl_cert_file={}", file("server.pem"))])
        .args(["-c", &format!("ssl_key_file={}", file("server.key"))])
        .args(["-c", &format!("ssl_ca_file={}", file("ca.pem"))])
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
        ]);
    if !durable {
        cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).expect("server log"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("plumb-testkit-postgres".into())
        .spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id()));
                let _ = child.wait();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })
        .expect("server thread");
    rx.recv()
        .expect("server thread")
        .expect("start the PostgreSQL server")
}

impl Drop for Postgres {
    /// Only an `own` server is ever dropped (`shared`'s lives in a static).
    fn drop(&mut self) {
        let pid = self.pid.load(Ordering::SeqCst);
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_ready(bin: &Path, dir: &Path, port: u16) {
    let deadline = Instant::now() + STARTUP;
    let mut pause = Duration::from_millis(10);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .arg("--host")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            .args(["--username", SUPERUSER, "--quiet"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not accept connections within {STARTUP:?}; its log: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        // Waiting for the server to come up: nothing to be woken by but its socket.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Servers' dirs left by test processes that are gone (their servers died with them).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("plumb-pg-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
