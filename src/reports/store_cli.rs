//! Choosing a report store and the `store` subcommands (`migrate`,
//! `copy`).
//!
//! Owns the store URL (`sqlite://path`, a bare path, or
//! `postgres://user@host:port/db`), where its password comes from
//! (`MAILAUTH_STORE_PASSWORD` or a password file, never the URL or the
//! command line), and [`open_store`], which hands callers one trait object
//! whatever the backend. Leaves SQL to `reports::store` and
//! `reports::pgstore`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::pgstore::{CopySummary, PgError, PgStore};
use super::store::{ChecklistQueries, ReportStore, SCHEMA_VERSION, SqliteStore, StoreError};

/// Environment variable holding the PostgreSQL password.
pub const PASSWORD_ENV: &str = "MAILAUTH_STORE_PASSWORD";

/// Errors of choosing and managing a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreCliError {
    #[error(
        "unsupported store URL {url:?}: use sqlite://PATH, a file path, or postgres://USER@HOST:PORT/DB"
    )]
    Scheme { url: String },
    #[error("cannot read store password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`store copy` copies from an SQLite store to a PostgreSQL store; got {from} -> {to}")]
    CopyDirection { from: String, to: String },
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write output: {source}")]
    Output { source: std::io::Error },
}

/// A report store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    /// A libpq-style URL without password.
    Postgres(String),
}

impl StoreUrl {
    /// `sqlite://PATH`, `sqlite:PATH`, `postgres://…`, `postgresql://…`;
    /// anything without a scheme is an SQLite file path.
    pub fn parse(s: &str) -> Result<Self, StoreCliError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        if let Some(p) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            return Ok(Self::Sqlite(PathBuf::from(p)));
        }
        if s.contains("://") {
            return Err(StoreCliError::Scheme { url: s.to_owned() });
        }
        Ok(Self::Sqlite(PathBuf::from(s)))
    }

    fn describe(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(u) => u.split_once('?').map_or(u.as_str(), |(a, _)| a).to_owned(),
        }
    }
}

/// Where the PostgreSQL password comes from: the file wins over the
/// environment. A trailing newline in the file is not part of it.
pub fn password(file: Option<&Path>) -> Result<Option<String>, StoreCliError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| StoreCliError::PasswordFile {
            path: path.to_owned(),
            source,
        })?;
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()));
    }
    Ok(std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()))
}

/// Every report-store capability callers use, as one trait object.
pub trait AnyStore: ReportStore + ChecklistQueries {}
impl<T: ReportStore + ChecklistQueries> AnyStore for T {}

/// Opens (and migrates) the store at `url`.
pub fn open_store(
    url: &StoreUrl,
    password_file: Option<&Path>,
) -> Result<Box<dyn AnyStore>, StoreCliError> {
    Ok(match url {
        StoreUrl::Sqlite(p) => Box::new(SqliteStore::open(p)?),
        StoreUrl::Postgres(u) => Box::new(PgStore::open(u, password(password_file)?.as_deref())?),
    })
}

/// Manage the report store: migrations and moving to PostgreSQL.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// File with the PostgreSQL password (else MAILAUTH_STORE_PASSWORD).
    #[arg(long, global = true)]
    pub store_password_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Apply pending schema migrations.
    Migrate {
        /// Store URL: sqlite://PATH or postgres://USER@HOST:PORT/DB.
        #[arg(long, env = "MAILAUTH_STORE")]
        store: String,
    },
    /// Copy every report from an SQLite store into a PostgreSQL store.
    /// Re-running copies nothing twice.
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct MigrateOut {
    store: String,
    from: i64,
    to: i64,
}

/// Runs a `store` subcommand; returns the exit code.
pub fn run(args: StoreArgs, out: &mut dyn Write) -> Result<i32, StoreCliError> {
    let pwfile = args.store_password_file.as_deref();
    let w = |source| StoreCliError::Output { source };
    match args.command {
        StoreCommand::Migrate { store } => {
            let url = StoreUrl::parse(&store)?;
            let (from, to) = match &url {
                StoreUrl::Sqlite(p) => {
                    let before = sqlite_version(p);
                    let s = SqliteStore::open(p)?;
                    (before, s.schema_version()?)
                }
                StoreUrl::Postgres(u) => {
                    let s = PgStore::open(u, password(pwfile)?.as_deref())?;
                    (s.found_version(), s.schema_version()?)
                }
            };
            let o = MigrateOut {
                store: url.describe(),
                from,
                to,
            };
            if from == to {
                writeln!(
                    out,
                    "{}: schema version {to} is current (this program knows {SCHEMA_VERSION})",
                    o.store
                )
                .map_err(w)?;
            } else {
                writeln!(out, "{}: migrated schema {from} -> {to}", o.store).map_err(w)?;
            }
            Ok(0)
        }
        StoreCommand::Copy { from, to, json } => {
            let (src, dst) = (StoreUrl::parse(&from)?, StoreUrl::parse(&to)?);
            let (StoreUrl::Sqlite(path), StoreUrl::Postgres(url)) = (&src, &dst) else {
                return Err(StoreCliError::CopyDirection {
                    from: src.describe(),
                    to: dst.describe(),
                });
            };
            let mut pg = PgStore::open(url, password(pwfile)?.as_deref())?;
            let s: CopySummary = pg.copy_from_sqlite(path)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&s).unwrap_or_default()
                )
                .map_err(w)?;
            } else {
                writeln!(
                    out,
                    "copied {} aggregate reports ({} records), {} failure reports, {} TLS reports; {} already there",
                    s.reports, s.records, s.failure_reports, s.tls_reports, s.skipped
                )
                .map_err(w)?;
            }
            Ok(0)
        }
    }
}

/// The schema version of an SQLite file before opening it (0: new file).
fn sqlite_version(p: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        let cases: &[(&str, Option<StoreUrl>)] = &[
            ("r.db", Some(StoreUrl::Sqlite("r.db".into()))),
            (
                "sqlite:///var/r.db",
                Some(StoreUrl::Sqlite("/var/r.db".into())),
            ),
            ("sqlite:r.db", Some(StoreUrl::Sqlite("r.db".into()))),
            (
                "postgres://u@127.0.0.1:5/db",
                Some(StoreUrl::Postgres("postgres://u@127.0.0.1:5/db".into())),
            ),
            (
                "postgresql://u@h/db",
                Some(StoreUrl::Postgres("postgresql://u@h/db".into())),
            ),
            ("mysql://u@h/db", None),
        ];
        for (input, want) in cases {
            let got = StoreUrl::parse(input).ok();
            assert_eq!(&got, want, "{input}");
        }
    }

    #[test]
    fn password_file_wins_and_loses_its_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").expect("write");
        assert_eq!(
            password(Some(&f)).expect("reads").as_deref(),
            Some("s3cret")
        );
        assert!(matches!(
            password(Some(&dir.path().join("missing"))),
            Err(StoreCliError::PasswordFile { .. })
        ));
    }
}
