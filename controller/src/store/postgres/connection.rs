//! The connection to PostgreSQL: opening it (over TLS as the URL asks, `tls.rs`), the
//! statements prepared on it, the URL checked and shown without its password, this
//! controller's id, and the driver's errors in the server's own words.

use postgres::{Client, Statement};

use super::{chain, schema, tls};
use crate::store::{Result, StoreError};

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Backend(Box::new(PgError(e)))
    }
}

/// A PostgreSQL error in the server's own words (its message, detail and hint), where
/// tokio-postgres alone says only "db error".
#[derive(Debug)]
pub(super) struct PgError(postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                f.write_str(db.message())?;
                if let Some(detail) = db.detail() {
                    write!(f, " ({detail})")?;
                }
                if let Some(hint) = db.hint() {
                    write!(f, "; hint: {hint}")?;
                }
                Ok(())
            }
            None => {
                // tokio-postgres says only the kind ("error performing TLS handshake"); why
                // is in its sources.
                write!(f, "{}", self.0)?;
                let mut cause = std::error::Error::source(&self.0);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PgError {}

/// Whether `e` is a database that could not be reached (nothing listening, the network), which
/// may come right by itself, rather than one that refused (a wrong password, no such database).
pub(crate) fn unreachable(e: &StoreError) -> bool {
    let StoreError::Open { source, .. } = e else {
        return false;
    };
    let Some(PgError(pg)) = source.downcast_ref::<PgError>() else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(pg);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A connection and the statements prepared on it.
pub(super) struct Session {
    pub(super) client: Client,
    pub(super) st: Statements,
}

impl Session {
    pub(super) fn open(url: &str) -> Result<Self> {
        let mut client = connect(url)?;
        let st = Statements::prepare(&mut client)?;
        Ok(Self { client, st })
    }
}

/// The statements every write uses, prepared once for the connection.
pub(super) struct Statements {
    pub(super) append: Statement,
    /// `$2` paths with `$3` states, of host `$1`.
    pub(super) put_observations: Statement,
    pub(super) forget_observations: Statement,
    pub(super) upsert_drift: Statement,
    pub(super) delete_drift: Statement,
    /// Checks a claim and, with `$4`, moves the host's version: no row, no claim.
    pub(super) fence: Statement,
    pub(super) notify: Statement,
    /// Wakes the others' tails to look at diff requests and answers.
    pub(super) notify_content: Statement,
}

impl Statements {
    pub(super) fn prepare(client: &mut Client) -> Result<Self> {
        Ok(Self {
            append: client.prepare(&chain::append_sql())?,
            put_observations: client.prepare(
                "INSERT INTO observations (host_id, path, state)
                 SELECT $1, path, state FROM unnest($2::text[], $3::text[]) AS t(path, state)
                 ON CONFLICT (host_id, path) DO UPDATE SET state = excluded.state",
            )?,
            forget_observations: client.prepare(
                "DELETE FROM observations WHERE host_id = $1 AND path = ANY($2::text[])",
            )?,
            upsert_drift: client.prepare(
                "INSERT INTO drift (host_id, resource, attribute, origin, expected, actual, since_ms, declared_at, evidence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (host_id, resource, attribute) DO UPDATE SET
                     origin = excluded.origin, expected = excluded.expected, actual = excluded.actual,
                     since_ms = excluded.since_ms, declared_at = excluded.declared_at,
                     evidence = excluded.evidence",
            )?,
            delete_drift: client.prepare(
                "DELETE FROM drift WHERE host_id = $1 AND resource = $2 AND attribute = $3",
            )?,
            fence: client.prepare(
                "UPDATE hosts SET version = CASE WHEN $4 THEN nextval('host_versions') ELSE version END
                 WHERE host_id = $1 AND owner = $2 AND epoch = $3",
            )?,
            notify: client.prepare(&format!("SELECT pg_notify('{}', '')", schema::CHANNEL))?,
            notify_content: client.prepare(&format!(
                "SELECT pg_notify('{}', '{}')",
                schema::CHANNEL,
                schema::CONTENT
            ))?,
        })
    }
}

/// An id for this controller that no other shares: its host name, process and a random part.
pub(super) fn controller_id() -> String {
    use ring::rand::SecureRandom as _;
    let mut random = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut random);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "controller".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        plumb_common::hex::encode(&random)
    )
}

/// A connection to `url`, over TLS as its `sslmode` asks (`tls.rs`); a failure names the
/// database as `redact` shows it.
pub(super) fn connect(url: &str) -> Result<Client> {
    let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
        path: redact(url),
        source,
    };
    let (url_for_pg, settings) = tls::split(url).map_err(|e| open_error(e.into()))?;
    let connector = tls::connector(&settings).map_err(|e| open_error(e.into()))?;
    Client::connect(&url_for_pg, connector).map_err(|e| open_error(Box::new(PgError(e))))
}

/// Checks that `url` is a store URL this backend can use, without connecting: the error says
/// what is wrong, never with the password.
pub(crate) fn check(url: &str) -> std::result::Result<(), String> {
    let (url_for_pg, _) = tls::split(url)?;
    url_for_pg
        .parse::<postgres::Config>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What `url`'s TLS settings leave unproven (not encrypted, or the server's certificate not
/// checked), for the controller to say once at start. Nothing for a unix socket: it does not
/// leave the machine, and PostgreSQL speaks no TLS over it.
pub(crate) fn unproven(url: &str) -> Option<String> {
    let (url_for_pg, settings) = tls::split(url).ok()?;
    let config = url_for_pg.parse::<postgres::Config>().ok()?;
    let local = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, postgres::config::Host::Unix(_)));
    if local { None } else { settings.unproven() }
}

/// `url` as messages show it: database, hosts and user, never the password.
pub(crate) fn redact(url: &str) -> String {
    let parsed = tls::split(url).map(|(u, _)| u);
    match parsed.map(|u| u.parse::<postgres::Config>()) {
        Ok(Ok(config)) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(name) => name.clone(),
                    postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            format!(
                "PostgreSQL database {:?} on {} as {:?}",
                config.get_dbname().unwrap_or_default(),
                hosts.join(", "),
                config.get_user().unwrap_or_default()
            )
        }
        _ => "a PostgreSQL URL that does not parse".into(),
    }
}
