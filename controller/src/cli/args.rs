//! The arguments of `plumb`: every command, its options and their help. Options the query
//! commands share (`--controller`, `-o`, `--ca/--cert/--key`) may also come before the
//! command (`plumb --controller URL drift`): `hoist` in `mod.rs` moves them after it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};

use super::output::Format;

pub const DEFAULT_CONTROLLER: &str = "http://127.0.0.1:7700";

/// plumb: configuration drift detection for a fleet.
///
/// Agents watch the files that YAML manifests declare for their host and stream what they see;
/// the controller compares it with the manifests and reports drift, with its history.
///
/// The query commands' options `--controller`, `-o`, `--ca`, `--cert` and `--key` may come
/// before the command too: `plumb --controller https://plumb.example:7700 drift`.
///
/// Exit codes: 0 in sync / success, 2 drift found, 1 error, 64 usage error.
#[derive(Parser)]
#[command(name = "plumb", version, propagate_version = true)]
pub struct Args {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format on stderr [default: text, or the configuration's `log_format`].
    #[arg(long, env = "PLUMB_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<plumb_common::cli::LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Try plumb on this machine: a controller and an agent in one process, on loopback, with
    /// the example manifests and a demo file tree to edit.
    Dev(crate::dev::DevArgs),
    /// Run the controller.
    Serve(ServeArgs),
    /// List the hosts the controller knows, with their status.
    Hosts {
        /// The hosts as they stood at TIME, rebuilt from the event log (RFC 3339, a date, or
        /// a duration ago such as 3h): offline, drifted or in_sync then. A read of the log,
        /// recorded as one (roles auditor and up).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Show drift: what differs from the manifests, on which host, since when, who made it and
    /// whether a change window authorised it (exit 2 if any is unacknowledged).
    Drift {
        /// Only these hosts (host ids).
        hosts: Vec<String>,
        /// Keep printing drift events as they happen (JSON: one object per line).
        #[arg(long, short)]
        follow: bool,
        /// Only drift no change window authorised.
        #[arg(long)]
        unauthorised: bool,
        /// What makes the exit code 2: any unacknowledged drift, or only unauthorised drift
        /// (authorised drift is then shown but expected).
        #[arg(long, value_enum, default_value = "any", value_name = "WHICH")]
        fail_on: FailOn,
        /// The drift as it stood at TIME, rebuilt from the event log (RFC 3339, a date, or a
        /// duration ago such as 3h), with the acknowledgements then; the exit code as it
        /// would have been. A read of the log, recorded as one (roles auditor and up).
        #[arg(long, value_name = "TIME", conflicts_with = "follow")]
        at: Option<String>,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Show the event log: drift opened, changed and resolved, hosts online and offline.
    History {
        /// Only this host.
        host: Option<String>,
        /// At most this many events, most recent first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only entries before this one (its id): the next page of a long log.
        #[arg(long, value_name = "ENTRY")]
        before: Option<i64>,
        /// Only entries of this kind: opened, changed, resolved, acknowledged, ack_revoked,
        /// ack_expired, host_online, host_offline, manifests_accepted, manifests_rejected,
        /// change_opened, change_closed, change_ended, content_read, log_read, store_outage.
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// Only entries made from FROM until before TO (RFC 3339, a date, or a duration ago
        /// such as 3h): e.g. --between 2026-11-01 2026-12-01.
        #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
        between: Vec<String>,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Show how a declared file differs from its desired content (exit 2 if it does). Only
    /// for files declared with `diff: true`; never for sensitive or deny-listed files.
    Diff {
        host: String,
        path: String,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Show how the hosts of baseline groups differ: which hosts hold which variant of each
    /// path and package a group compares (exit 2 if a group's hosts are not all alike).
    ///
    /// A group is the hosts a manifest with `baseline:` selects. Each variant is of one
    /// aspect (type, digest, symlink target, mode, owner, group; a package's versions), with
    /// what the group is compared with: its majority, or its reference host.
    ///
    /// e.g. plumb diverge web-7 /etc/nginx/nginx.conf; plumb diverge package:openssl
    Diverge {
        /// A baseline's manifest name, or a glob on host ids (the groups holding a host it
        /// matches) [default: every group].
        selector: Option<String>,
        /// Only this path or package: /etc/x, file:/etc/x or package:NAME.
        resource: Option<String>,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Baseline groups: `plumb baseline accept` prints a group's state as the manifest that
    /// declares it with values.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Acknowledge a resource's drift: it stays visible but no longer fails `plumb drift`,
    /// until it expires, is revoked, or resolves. `plumb ack list`, `plumb ack revoke`.
    Ack(AckArgs),
    /// Change windows: a ticket's approval to change some hosts (and paths, packages) for a
    /// while. Drift that opens or changes inside an open window that covers it is authorised,
    /// with the ticket; any other is unauthorised. When a window ends with drift it authorised
    /// still open, the log and the webhooks say so.
    #[command(subcommand)]
    Change(ChangeCommand),
    /// Drift incidents over a period, per host: opened, resolved, how long, acknowledged,
    /// declared where; with the hosts in sync and the mean time to resolve.
    Report {
        /// Start of the period: RFC 3339 (2026-11-01T00:00:00Z) or a duration ago (7d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// End of the period [default: now].
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[arg(short, long, value_enum, default_value = "json")]
        output: crate::report::ReportFormat,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Install the controller as a systemd service: writes /etc/plumb/controller.yaml and a
    /// hardened unit (plumb-controller.service; store in /var/lib/plumb), then enables and
    /// starts it where systemd runs. Run as root; --dry-run shows the files first.
    Install(InstallArgs),
    /// Stop and disable the controller's service and remove its unit; --purge removes its
    /// configuration too (never the store).
    Uninstall {
        /// Remove /etc/plumb/controller.yaml as well.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        target: plumb_common::service::Target,
    },
    /// Work with manifest files.
    #[command(subcommand)]
    Manifests(ManifestsCommand),
    /// A private CA and the certificates for mutual TLS between agents, controller and CLI.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The tamper-evident event log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Move an installation between stores.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print a shell completion script (e.g. `plumb completions bash > /etc/bash_completion.d/plumb`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `plumb man | man -l -`.
    Man,
}

#[derive(ClapArgs)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AckArgs {
    #[command(subcommand)]
    pub action: Option<AckAction>,
    /// The host.
    #[arg(required = true)]
    pub host: Option<String>,
    /// The resource, as `plumb drift` shows it (e.g. file:/etc/motd, package:nginx).
    #[arg(required = true)]
    pub resource: Option<String>,
    /// Why this drift is accepted (recorded with your name).
    #[arg(long, required = true)]
    pub reason: Option<String>,
    /// For how long (e.g. 7d, 12h); until revoked if not given.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub expires: Option<Duration>,
    #[command(flatten)]
    pub query: QueryArgs,
}

/// Which drift makes `plumb drift` exit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any unacknowledged drift.
    Any,
    /// Only unacknowledged drift no change window authorised.
    Unauthorised,
}

#[derive(Subcommand)]
pub enum BaselineCommand {
    /// Print the manifest that declares a group's current state with values: what most of
    /// its hosts have (or its reference host), or with --from what one host has. Review it,
    /// then commit it in place of the baseline: how an observed fleet becomes reviewed
    /// desired state. What cannot be decided (no majority, a host that has not reported it)
    /// is left out, said in the manifest and on stderr, and makes the exit code 2.
    ///
    /// e.g. plumb baseline accept web > manifests/web.yaml; plumb baseline accept --from
    /// web-1 'web-*'
    Accept {
        /// A baseline's manifest name, or a glob on host ids (the groups holding a host it
        /// matches).
        selector: String,
        /// This host's state instead of the majority's.
        #[arg(long, value_name = "HOST")]
        from: Option<String>,
        #[command(flatten)]
        query: QueryArgs,
    },
}

#[derive(Subcommand)]
pub enum ChangeCommand {
    /// Open a change window: now (or --from), for --for DURATION or --until TIME. Prints it.
    ///
    /// e.g. plumb change open CHG-1234 --hosts 'web-*' --paths '/etc/nginx/**' --for 2h
    /// --reason "nginx 1.26 rollout"
    Open {
        /// The ticket, e.g. CHG-1234 (letters, digits, - _ . : / #).
        ticket: String,
        /// Hosts it covers, by glob (repeatable, or comma-separated) [default: every host].
        #[arg(long = "hosts", value_delimiter = ',', value_name = "GLOB")]
        hosts: Vec<String>,
        /// Only hosts with this label (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = plumb_common::cli::parse_label)]
        labels: Vec<(String, String)>,
        /// Only these paths, by glob: `*` within a name, `**` any depth (e.g. '/etc/nginx/**').
        /// Without --paths and --packages, everything on the hosts.
        #[arg(long = "paths", value_delimiter = ',', value_name = "GLOB")]
        paths: Vec<String>,
        /// Only these packages, by glob (e.g. 'nginx*').
        #[arg(long = "packages", value_delimiter = ',', value_name = "GLOB")]
        packages: Vec<String>,
        /// How long it stays open (e.g. 2h, 45m).
        #[arg(long = "for", value_parser = humantime::parse_duration, value_name = "DURATION", conflicts_with = "until", required_unless_present = "until")]
        duration: Option<Duration>,
        /// When it ends (RFC 3339, e.g. 2026-12-06T18:00:00Z).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// When it begins (RFC 3339) [default: now].
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// What the change is (recorded with your name).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// List the change windows open or to come (with --all, closed and ended ones too).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Close a change window now, before its end.
    Close {
        ticket: String,
        #[command(flatten)]
        query: QueryArgs,
    },
}

#[derive(Subcommand)]
pub enum AckAction {
    /// List the acknowledgements in force.
    List {
        #[command(flatten)]
        query: QueryArgs,
    },
    /// End an acknowledgement now.
    Revoke {
        host: String,
        resource: String,
        #[command(flatten)]
        query: QueryArgs,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the event log in a controller's data directory (SQLite) or in its PostgreSQL
    /// database: names any entry that was edited, removed, reordered or cut off (exit 1),
    /// checks the head's signature, and prints the head to keep a copy of elsewhere. Never
    /// writes to the store.
    Verify {
        /// The data directory of a controller on SQLite.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "store",
            conflicts_with = "store"
        )]
        data: Option<PathBuf>,
        /// The store of a controller elsewhere: postgres://USER@HOST/DB (or sqlite:DIR).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// The audit key's public half (hex, or a file holding it), from a copy you trust
        /// [default: DATA/audit.key.pub, which whoever can write DATA could replace; none for
        /// --store].
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// A head seen before, as ENTRY:HASH (from the controller's log or `plumb report`):
        /// the log must still hold it, unchanged. Repeat for several.
        #[arg(long, value_name = "ENTRY:HASH")]
        head: Vec<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a whole store into an empty PostgreSQL database: hosts, their observations and
    /// open drift, acknowledgements, and the event log as it is, hashes and signed head
    /// included, so `plumb audit verify --store` passes on the copy under the same public key.
    /// Stop the controller first; one transaction, so a failed copy leaves the target as it
    /// was. Example: plumb store copy --from sqlite:/var/lib/plumb --to postgres://plumb@db/plumb
    Copy {
        /// The store to copy: sqlite:DIR (a controller's data directory) or postgres://…
        #[arg(long, value_name = "STORE")]
        from: String,
        /// The PostgreSQL database to copy into: postgres://USER@HOST/DB
        #[arg(long, value_name = "URL")]
        to: String,
        /// Delete what the target holds first, if anything (refused while a controller uses it).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Create the CA (ca.pem, ca-key.pem) in --dir.
    Init {
        #[arg(long, default_value = "plumb-pki", value_name = "DIR")]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a certificate: `agent HOST`, `operator NAME --role ROLE`, or
    /// `controller DNSNAME|IP...`. Example: plumb certs issue operator alice --role auditor
    Issue {
        #[arg(value_enum)]
        kind: crate::certs::Kind,
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// What an operator may do (required for operators): viewer reads the fleet;
        /// operator also reads the event log and diffs and acknowledges; auditor reads the
        /// event log and reports, no content; admin everything, change windows too.
        #[arg(long, value_enum)]
        role: Option<crate::role::Role>,
        /// Limit an operator to hosts whose id matches GLOB (repeat: any of them). Hosts
        /// outside their scope do not exist for them, in the CLI and the console.
        #[arg(long = "hosts", value_name = "GLOB")]
        scope_hosts: Vec<String>,
        /// Limit an operator to hosts with this label (repeat: all of them), with --hosts or
        /// alone.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        scope_labels: Vec<String>,
        #[arg(long, default_value = "plumb-pki", value_name = "DIR")]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 397)]
        days: u32,
        /// An explicit expiry date (YYYY-MM-DD) instead of --days.
        #[arg(long, value_name = "DATE")]
        not_after: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ManifestsCommand {
    /// Validate a manifest directory as the controller would; lists every error (exit 1).
    Check {
        dir: PathBuf,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(ClapArgs)]
pub struct QueryArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

/// How to reach the controller.
#[derive(ClapArgs)]
pub struct ConnArgs {
    /// The controller's URL.
    #[arg(long, env = "PLUMB_CONTROLLER", default_value = DEFAULT_CONTROLLER, value_name = "URL")]
    pub controller: String,
    #[command(flatten)]
    pub tls: plumb_common::cli::TlsArgs,
}

/// Every option can also come from the configuration file (same name, `_` for `-`; TLS files
/// under `tls:` as `cert`, `key`, `ca`) or a `PLUMB_*` environment variable; a flag beats the
/// variable, which beats the file.
#[derive(ClapArgs)]
pub struct ServeArgs {
    /// The configuration file [default: /etc/plumb/controller.yaml when it exists].
    #[arg(long, env = "PLUMB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, for agents and the CLI [default: 127.0.0.1:7700].
    #[arg(long, env = "PLUMB_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of manifests (*.yaml); watched and reloaded on change (required here or in
    /// the configuration).
    #[arg(long, env = "PLUMB_MANIFESTS", value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Directory for the store, created if missing (required here or in the configuration).
    #[arg(long, env = "PLUMB_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where the state is kept: postgres://USER@HOST/DB for a PostgreSQL database, or
    /// sqlite:DIR [default: SQLite in the data directory]. The data directory still holds the
    /// audit key by default.
    #[arg(long, env = "PLUMB_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The key that signs the event log's head (Ed25519), made there if missing, with its
    /// public half beside it (FILE.pub) [default: DATA/audit.key]. Keep it where whoever can
    /// write the data directory cannot read it, and the public key with the auditors: then no
    /// one can rewrite the log without `plumb audit verify` showing it.
    #[arg(long, env = "PLUMB_AUDIT_KEY", value_name = "FILE")]
    pub audit_key: Option<PathBuf>,
    /// Hold at most this many connections (agents and queries) at once; more are closed as
    /// they come [default: the open-files limit less 256].
    #[arg(long, env = "PLUMB_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Close a connection that has sent nothing for this long after connecting (tests
    /// shorten it) [default: 10s].
    #[arg(long, hide = true, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Option<Duration>,
    /// How often agents send heartbeats; three missed ones make a host offline [default: 5s].
    #[arg(long, env = "PLUMB_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Option<Duration>,
    /// Ask an agent's stream to go once it is this old (each stream 10% either side), so that
    /// streams spread over controllers added since (behind a load balancer, or as the next in
    /// the agents' --controller lists); the agent connects again at once, and its host is not
    /// offline for it [default: never].
    #[arg(long, env = "PLUMB_MAX_CONNECTION_AGE", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_connection_age: Option<Duration>,
    /// How long a stream asked to go may stay before it is closed [default: 30s].
    #[arg(long, env = "PLUMB_MAX_CONNECTION_AGE_GRACE", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_connection_age_grace: Option<Duration>,
    /// The controller's certificate (mutual TLS; with --tls-key and --tls-ca).
    #[arg(long, env = "PLUMB_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The controller's private key.
    #[arg(long, env = "PLUMB_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The CA whose agent and operator certificates are accepted.
    #[arg(long, env = "PLUMB_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "PLUMB_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the web console at ADDR (off unless given). With --tls-cert it is HTTPS and asks
    /// browsers for operator certificates (their role decides what each person may do);
    /// without TLS, loopback only: behind an authenticating proxy (`web: proxy:` in
    /// controller.yaml), or as the local admin.
    #[arg(long, env = "PLUMB_WEB_LISTEN", value_name = "ADDR")]
    pub web_listen: Option<SocketAddr>,
    /// Listen on a non-loopback address without TLS. Anyone who reaches it can report as any
    /// host and read the fleet.
    #[arg(long, env = "PLUMB_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// Check the configuration, print the options in force (file, environment and flags
    /// merged) as YAML, and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(ClapArgs)]
pub struct InstallArgs {
    /// Address to listen on [default: 127.0.0.1:7700]; any other needs TLS.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of manifests (created if missing).
    #[arg(long, value_name = "DIR", default_value = "/etc/plumb/manifests")]
    pub manifests: PathBuf,
    /// The controller's certificate (mutual TLS; with --tls-key and --tls-ca). The unit hands
    /// the TLS files to the service through systemd credentials, so they can stay root-only.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The controller's private key.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// The CA whose agent and operator certificates are accepted.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the web console at ADDR (HTTPS with the TLS files; without them, loopback only).
    #[arg(long, value_name = "ADDR")]
    pub web_listen: Option<SocketAddr>,
    /// Listen on a non-loopback address without TLS.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// The binary the unit runs [default: this one].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    #[command(flatten)]
    pub target: plumb_common::service::Target,
}
