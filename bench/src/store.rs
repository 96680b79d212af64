//! Where a benchmark's controllers keep their state: SQLite, a throwaway PostgreSQL server of
//! this machine's (plumb-testkit's, with PostgreSQL's default durability), or a URL given.

use std::process::Command;

/// A store a benchmark runs on, and how to ask it its size.
pub(crate) enum Store {
    Sqlite,
    Throwaway(plumb_testkit::Postgres),
    Url(String),
}

impl Store {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "sqlite" => Self::Sqlite,
            "postgres" => {
                Self::Throwaway(plumb_testkit::Postgres::own_durable().ok_or_else(|| {
                    anyhow::anyhow!("--store postgres needs Debian's postgresql package here")
                })?)
            }
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Self::Url(url.to_owned())
            }
            other => anyhow::bail!("--store {other:?}: sqlite, postgres or a postgres:// URL"),
        })
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Throwaway(_) | Self::Url(_) => "PostgreSQL",
        }
    }

    /// A new, empty place for one run: `None` for SQLite (each controller's data directory).
    /// A URL given is used as it is (it must be empty).
    pub(crate) fn fresh(&self) -> Option<String> {
        match self {
            Self::Sqlite => None,
            Self::Throwaway(pg) => Some(pg.database()),
            Self::Url(url) => Some(url.clone()),
        }
    }

    /// The database's size in bytes, where it can be asked.
    pub(crate) fn size(&self, url: &str) -> Option<u64> {
        self.count(url, "SELECT pg_database_size(current_database())")
    }

    /// The one number `sql` returns in the database at `url`, where it can be asked.
    pub(crate) fn count(&self, url: &str, sql: &str) -> Option<u64> {
        self.text(url, sql)?.parse().ok()
    }

    /// What `sql` returns in the database at `url` (one value), where it can be asked.
    pub(crate) fn text(&self, url: &str, sql: &str) -> Option<String> {
        let text = match self {
            Self::Sqlite => return None,
            Self::Throwaway(pg) => pg.query(url, sql),
            Self::Url(_) => {
                let out = Command::new("psql")
                    .args([url, "--no-psqlrc", "--tuples-only", "--no-align"])
                    .args(["--command", sql])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
        };
        (!text.is_empty()).then_some(text)
    }
}
