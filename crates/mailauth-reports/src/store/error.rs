//! The one error type of both report stores, [`StoreError`]: each
//! backend's driver errors (SQLite, PostgreSQL), connecting and schema
//! versions, a result row of another shape than the code reads (naming
//! the column), I/O. Callers match on this type whichever store they
//! hold. Leaves the errors of choosing a store (URL, password file) to
//! `reports::store_cli`, and of a report (parsing) to `reports::parse`.

use std::path::PathBuf;

use super::display_id;
use crate::reports::parse::ReportKind;

/// A store as messages name it: an SQLite file, or a PostgreSQL target
/// (`postgres://user@host:port/db`, never with a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreName {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "{}", p.display()),
            Self::Postgres(t) => f.write_str(t),
        }
    }
}

impl StoreName {
    /// The store with what it is: `report database PATH`, `PostgreSQL
    /// report store TARGET`.
    fn titled(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("report database {}", p.display()),
            Self::Postgres(t) => format!("PostgreSQL report store {t}"),
        }
    }
}

/// Errors of a report store (not of a report), whatever the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open report database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{} has schema version {found}, newer than this program knows ({known}); upgrade mailauth",
        .store.titled()
    )]
    NewerSchema {
        store: StoreName,
        found: i64,
        known: i64,
    },
    /// A read-only command found a store that `mailauth store migrate`
    /// must bring up to date first (it never migrates on its own).
    #[error(
        "report store {store} has schema version {found}; run `mailauth store migrate` (this program reads version {known})"
    )]
    OlderSchema {
        store: StoreName,
        found: i64,
        known: i64,
    },
    /// `reports delete` of an id that is not in the store.
    #[error("no {} report with id {}", .kind.as_str(), display_id(*.kind, *.id))]
    NoSuchReport { kind: ReportKind, id: i64 },
    /// An SQLite statement failed.
    #[error("report database query failed ({what}): {source}")]
    Query {
        what: &'static str,
        source: rusqlite::Error,
    },
    /// Reading the SQLite store that `store copy` copies from failed.
    #[error("cannot read SQLite store {path} ({what}): {source}")]
    ReadSqlite {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[cfg(feature = "postgres")]
    #[error("invalid PostgreSQL URL {url}: {source}")]
    PgUrl {
        url: String,
        source: postgres::Error,
    },
    #[cfg(feature = "postgres")]
    #[error(
        "the PostgreSQL URL {url} contains a password; give it in MAILAUTH_STORE_PASSWORD or --store-password-file instead"
    )]
    PasswordInUrl { url: String },
    /// The message carries the causes (a TLS handshake error says why:
    /// unknown issuer, name mismatch).
    #[cfg(feature = "postgres")]
    #[error(
        "cannot connect to PostgreSQL report store {target}: {}",
        crate::http::error_chain(source)
    )]
    PgConnect {
        target: String,
        source: postgres::Error,
    },
    /// `sslmode` / `sslrootcert` in the URL are wrong or unusable.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL report store {target}: {detail}")]
    PgTls { target: String, detail: String },
    /// A PostgreSQL statement failed.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL query failed ({what}): {source}")]
    PgQuery {
        what: &'static str,
        source: postgres::Error,
    },
    /// The session's function undid a report for a transient reason (a
    /// deadlock, a serialization failure, a partition dropped meanwhile):
    /// the item is run again, this only shows when it failed every time.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL undid the report every time it was stored (SQLSTATE {code})")]
    PgUndone { code: String },
    /// A result row is not of the shape the code reads: a column is
    /// missing or of another type (a store altered by hand, or a bug).
    #[error("report store query {what}: column {column} {problem}")]
    Column {
        what: &'static str,
        /// The column's name, or its position when it has none.
        column: String,
        /// `is text, expected an integer`, `is missing`, …
        problem: String,
    },
    /// Reading an input or starting the parsing thread failed.
    #[error("report store: cannot {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// Any other failure (the message is the source's).
    #[error(transparent)]
    Backend {
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// The store exists but needs `mailauth store migrate` before this
    /// program can read it.
    pub fn is_older_schema(&self) -> bool {
        matches!(self, Self::OlderSchema { .. })
    }
}
