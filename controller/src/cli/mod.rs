//! The operator CLI, `plumb`: its arguments (`args.rs`), and `run`, which sets up logging and
//! hands each command to where it lives: `query.rs` (asks a controller), `serve.rs` (runs one),
//! `local.rs` (works on files here: manifests, certificates, the audit log). `main` only parses
//! and maps the result to an exit code.

mod args;
mod baseline;
mod change;
mod local;
pub mod output;
pub(crate) mod query;
mod render;

mod serve;
#[cfg(test)]
mod snapshots;

use std::ffi::OsString;
use std::time::Duration;

use plumb_common::cli::exit;
use tokio_util::sync::CancellationToken;

pub use args::*;
use output::emit;

/// `plumb`'s arguments as the process got them, parsed; the query commands' shared options
/// may come before the command (`plumb --controller URL drift`), as kubectl's do.
pub fn parse() -> Args {
    plumb_common::cli::parse_args_from(hoist(std::env::args_os().collect()))
}

/// The query commands' shared options (long name, short letter).
const SHARED: [(&str, Option<char>); 5] = [
    ("--controller", None),
    ("--output", Some('o')),
    ("--ca", None),
    ("--cert", None),
    ("--key", None),
];

/// What one word before the command is.
enum Front {
    /// `plumb`'s own global option (`-v`, `--log-format`): stays in front; with a separate
    /// value when `true`.
    Global(bool),
    /// A shared query option: moves after the command; with a separate value when `true`.
    Shared(bool),
    /// The command, or something clap is to judge.
    Other,
}

fn front(word: &str) -> Front {
    let long = |name: &str| {
        (word == name).then_some(true).or_else(|| {
            word.strip_prefix(name)
                .is_some_and(|v| v.starts_with('='))
                .then_some(false)
        })
    };
    if word == "--verbose"
        || (word.len() > 1 && word[1..].bytes().all(|b| b == b'v') && word.starts_with('-'))
    {
        return Front::Global(false);
    }
    if let Some(separate) = long("--log-format") {
        return Front::Global(separate);
    }
    for (name, letter) in SHARED {
        if let Some(separate) = long(name) {
            return Front::Shared(separate);
        }
        if let Some(c) = letter
            && let Some(after) = word.strip_prefix('-').and_then(|w| w.strip_prefix(c))
        {
            return Front::Shared(after.is_empty());
        }
    }
    Front::Other
}

/// Moves the shared options given before the command to after it (before a `--`), where the
/// command's own definition parses them; everything else stays where it is. A shared option
/// before a command that has no such option is then refused by clap, as it is after it.
pub fn hoist(args: Vec<OsString>) -> Vec<OsString> {
    let mut words = args.into_iter().peekable();
    let mut out: Vec<OsString> = words.next().into_iter().collect();
    let mut moved = Vec::new();
    while let Some(word) = words.peek() {
        let kind = word.to_str().map_or(Front::Other, front);
        let (to, separate) = match kind {
            Front::Global(separate) => (&mut out, separate),
            Front::Shared(separate) => (&mut moved, separate),
            Front::Other => break,
        };
        to.extend(words.next());
        if separate {
            // The value: the next word, whatever it looks like (clap reports a missing one).
            to.extend(words.next());
        }
    }
    let mut tail: Vec<OsString> = words.collect();
    let at = tail.iter().position(|a| a == "--").unwrap_or(tail.len());
    out.extend(tail.drain(..at));
    out.extend(moved);
    out.extend(tail);
    out
}

/// Sets up logging, runs a command; returns the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let Args {
        verbose,
        log_format,
        command,
    } = args;
    // `serve` reads its configuration first: it may choose the log format.
    let mut serve_config = None;
    let mut file_format = None;
    if let Command::Serve(serve) = &command {
        let (path, file) = crate::config::load(serve.config.clone())?;
        file_format = file.log_format;
        serve_config = Some((path, file));
    }
    plumb_common::cli::init_logging(verbose, log_format.or(file_format).unwrap_or_default());
    let command = match command {
        Command::Manifests(ManifestsCommand::Check { dir, output }) => {
            return local::check(&dir, output);
        }
        Command::Certs(c) => return local::certs(c),
        Command::Audit(AuditCommand::Verify {
            data,
            store,
            public_key,
            head,
            output,
        }) => {
            let store = match (data, store) {
                (Some(dir), _) => crate::store::Location::Sqlite(dir),
                (None, Some(url)) => crate::store::Location::parse(&url)
                    .map_err(|e| plumb_common::cli::UsageError(format!("--store: {e}")))?,
                (None, None) => unreachable!("clap requires --data or --store"),
            };
            return local::audit_verify(&store, public_key.as_deref(), &head, output);
        }
        Command::Store(StoreCommand::Copy { from, to, replace }) => {
            return local::store_copy(&from, &to, replace);
        }
        Command::Install(args) => {
            let service = serve::controller_service(Some(&args))?;
            plumb_common::service::install(&service, &args.target, &mut std::io::stdout().lock())?;
            return Ok(exit::OK);
        }
        Command::Uninstall { purge, target } => {
            let service = serve::controller_service(None)?;
            plumb_common::service::uninstall(
                &service,
                &target,
                purge,
                &mut std::io::stdout().lock(),
            )?;
            return Ok(exit::OK);
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            let mut cmd = <Args as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "plumb", &mut out);
            emit(&String::from_utf8_lossy(&out))?;
            return Ok(exit::OK);
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Args as clap::CommandFactory>::command()).render(&mut out)?;
            emit(&String::from_utf8_lossy(&out))?;
            return Ok(exit::OK);
        }
        other => other,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async move {
        match command {
            Command::Dev(args) => crate::dev::run(args, shutdown_on_signal()).await,
            Command::Serve(args) => {
                let (path, file) = serve_config.unwrap_or_default();
                serve::serve(args, path, file).await
            }
            Command::Hosts { at, query } => query::hosts(&query, at, query.output).await,
            Command::Drift {
                hosts,
                follow: true,
                unauthorised,
                query,
                ..
            } => query::follow(&query, hosts, unauthorised, query.output).await,
            Command::Drift {
                hosts,
                follow: false,
                unauthorised,
                fail_on,
                at,
                query,
            } => {
                let wanted = query::Wanted {
                    hosts,
                    unauthorised,
                    fail_on,
                    at,
                };
                query::drift(&query, wanted, query.output).await
            }
            Command::Change(command) => change::run(command).await,
            Command::History {
                host,
                limit,
                before,
                kind,
                between,
                query,
            } => {
                let page = query::Page {
                    host,
                    limit,
                    before,
                    kind,
                    between,
                };
                query::history(&query, page, query.output).await
            }
            Command::Diff { host, path, query } => {
                query::diff(&query, &host, &path, query.output).await
            }
            Command::Ack(args) => query::ack(args).await,
            Command::Diverge {
                selector,
                resource,
                query,
            } => baseline::diverge(&query, selector, resource).await,
            Command::Baseline(BaselineCommand::Accept {
                selector,
                from,
                query,
            }) => baseline::accept(&query, selector, from).await,
            Command::Report {
                since,
                until,
                output,
                conn,
            } => query::report(&conn, since, until, output).await,
            Command::Manifests(_)
            | Command::Install(_)
            | Command::Uninstall { .. }
            | Command::Certs(_)
            | Command::Audit(_)
            | Command::Store(_)
            | Command::Completions { .. }
            | Command::Man => unreachable!("handled above"),
        }
    });
    // A blocking task that never returns (a read stuck on a hung file system) must not keep a
    // stopped controller alive: give them a moment, then exit anyway.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

pub(super) fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(plumb_common::signals::cancel_on_signal(token.clone()));
    token
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn hoisted(line: &str) -> String {
        let args = line.split(' ').map(OsString::from).collect();
        hoist(args)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn shared_options_before_the_command_move_after_it() {
        for (given, parsed) in [
            (
                "plumb --controller http://c:1 drift",
                "plumb drift --controller http://c:1",
            ),
            (
                "plumb --controller=http://c:1 -o json hosts",
                "plumb hosts --controller=http://c:1 -o json",
            ),
            (
                "plumb -ojson -v --ca ca.pem ack list",
                "plumb -v ack list -ojson --ca ca.pem",
            ),
            (
                "plumb --log-format json --output json history web-1",
                "plumb --log-format json history web-1 --output json",
            ),
            (
                "plumb --cert a.pem --key a-key.pem diff h /etc/x -- y",
                "plumb diff h /etc/x --cert a.pem --key a-key.pem -- y",
            ),
            (
                "plumb drift --controller http://c:1",
                "plumb drift --controller http://c:1",
            ),
            ("plumb --bogus drift", "plumb --bogus drift"),
            ("plumb --controller", "plumb --controller"),
        ] {
            assert_eq!(hoisted(given), parsed, "{given}");
        }
    }

    /// Issue 13: `plumb --controller URL drift` was refused ("unexpected argument").
    #[test]
    fn query_options_work_before_or_after_the_command() {
        let parse =
            |line: &str| Args::try_parse_from(hoist(line.split(' ').map(OsString::from).collect()));
        for line in [
            "plumb --controller http://c:1 -o json drift web-1",
            "plumb drift web-1 --controller http://c:1 -o json",
        ] {
            match parse(line).map(|a| a.command) {
                Ok(Command::Drift { hosts, query, .. }) => {
                    assert_eq!(hosts, ["web-1"], "{line}");
                    assert_eq!(query.conn.controller, "http://c:1", "{line}");
                    assert_eq!(query.output, output::Format::Json, "{line}");
                }
                other => panic!("{line}: {:?}", other.err()),
            }
        }
        match parse("plumb -o csv --controller http://c:1 report").map(|a| a.command) {
            Ok(Command::Report { output, conn, .. }) => {
                assert_eq!(output, crate::report::ReportFormat::Csv);
                assert_eq!(conn.controller, "http://c:1");
            }
            other => panic!("{:?}", other.err()),
        }
        match parse("plumb --controller http://c:1 ack list").map(|a| a.command) {
            Ok(Command::Ack(AckArgs {
                action: Some(AckAction::List { query }),
                ..
            })) => assert_eq!(query.conn.controller, "http://c:1"),
            other => panic!("{:?}", other.err()),
        }
        let e = parse("plumb --controller http://c:1 serve")
            .err()
            .expect("serve has no --controller");
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
