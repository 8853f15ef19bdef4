//! Choosing a report store and the `store` subcommands (`migrate`,
//! `copy`).
//!
//! Owns the store URL (`sqlite://path`, a bare path, or
//! `postgres://user@host:port/db`), which store a command uses ([`choose`]:
//! `--store`/`--db` flag, then `MAILAUTH_STORE`, then the config's
//! `store:`, then `mailauth.db`), where its password comes from
//! (`MAILAUTH_STORE_PASSWORD` or a password file, never the URL or the
//! command line), and [`open_store`] (read-write, migrating) and
//! [`open_store_read_only`] (for `plan`, `checklist`, `inspect`: never
//! creates, migrates or writes), which hand callers one trait object
//! whatever the backend. Built without the `postgres` feature, a
//! `postgres://` URL is refused ([`StoreCliError::NoPostgres`]). Leaves
//! SQL to `reports::store`, `reports::pgstore`, `reports::rows` and
//! `reports::dashq`, and the config's syntax to `config`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::output::{self, OutputFormat};

use super::dashq::DashboardQueries;
#[cfg(feature = "postgres")]
use super::pgstore::PgStore;
use super::store::{
    ChecklistQueries, DEFAULT_DB, ReportStore, SCHEMA_VERSION, SqliteStore, StoreError,
};

/// Environment variable holding the PostgreSQL password.
pub const PASSWORD_ENV: &str = "MAILAUTH_STORE_PASSWORD";
/// Environment variable holding the store URL.
pub const STORE_ENV: &str = "MAILAUTH_STORE";
/// Environment variable holding an SQLite path (older name; `MAILAUTH_STORE`
/// wins over it).
pub const DB_ENV: &str = "MAILAUTH_DB";

/// Errors of choosing and managing a store. Exhaustive on purpose: the
/// binary gives each variant its exit code, and a new one must be given
/// its own.
#[derive(Debug, thiserror::Error)]
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
    /// A `postgres://` URL given to a program built without the `postgres`
    /// feature. The URL is not repeated (it could hold a password).
    #[error(
        "a postgres:// store URL needs PostgreSQL support, which this mailauth was built without (Cargo feature `postgres`); use sqlite://PATH or a file path"
    )]
    NoPostgres,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write output: {source}")]
    Output { source: std::io::Error },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// A report store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    /// A libpq-style URL without password.
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl StoreUrl {
    /// `sqlite://PATH`, `sqlite:PATH`, `postgres://…`, `postgresql://…`;
    /// anything without a scheme is an SQLite file path. Without the
    /// `postgres` feature a PostgreSQL URL is [`StoreCliError::NoPostgres`].
    pub fn parse(s: &str) -> Result<Self, StoreCliError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Self::Postgres(s.to_owned()));
            #[cfg(not(feature = "postgres"))]
            return Err(StoreCliError::NoPostgres);
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

    /// The location, without password: safe to print.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            #[cfg(feature = "postgres")]
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
pub trait AnyStore: ReportStore + ChecklistQueries + DashboardQueries + Send {}
impl<T: ReportStore + ChecklistQueries + DashboardQueries + Send> AnyStore for T {}

/// Where the chosen store came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSource {
    /// `--store` or `--db`.
    Flag,
    /// `MAILAUTH_STORE` or `MAILAUTH_DB`.
    Env(&'static str),
    /// The config file's `store:`.
    Config(PathBuf),
    /// Nothing said: `mailauth.db`.
    Default,
}

/// The store a command uses, and where its password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreChoice {
    pub url: StoreUrl,
    /// A password file (flag, or the config's `password_file`); else the
    /// password comes from `MAILAUTH_STORE_PASSWORD`.
    pub password_file: Option<PathBuf>,
    pub source: StoreSource,
}

/// The store options every command that opens the store takes, one clap
/// group flattened into each (`reports`, `plan`, `checklist`, `inspect`,
/// `serve`). Global, so that they may also follow a subcommand (`mailauth
/// reports list --db x.db`); on a command without subcommands that changes
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct StoreOptions {
    /// Report database (SQLite file). Default: MAILAUTH_STORE,
    /// MAILAUTH_DB, the config's `store:`, then mailauth.db.
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Report store URL, instead of --db: sqlite://PATH or
    /// postgres://USER@HOST:PORT/DB (password from MAILAUTH_STORE_PASSWORD
    /// or --store-password-file, never in the URL).
    #[arg(long, global = true, value_name = "URL", conflicts_with = "db")]
    pub store: Option<String>,
    /// File holding the PostgreSQL password.
    #[arg(long, global = true, value_name = "PATH")]
    pub store_password_file: Option<PathBuf>,
}

/// The config's `store:` and the config file's path, once read.
pub type ConfigStore = Option<(crate::config::StoreConfig, PathBuf)>;

impl StoreOptions {
    /// [`choose`] with the process environment; the config at `config` is
    /// read only when it exists and neither a flag nor the environment
    /// decided.
    pub fn choose(&self, config: &Path) -> Result<StoreChoice, StoreCliError> {
        choose(self, &|k| std::env::var(k).ok(), &|| {
            if !config.is_file() {
                return Ok(None);
            }
            Ok(crate::config::load(config)?
                .store
                .map(|s| (s.value, config.to_owned())))
        })
    }

    /// [`choose`] with the process environment and a config already
    /// loaded (`None`: there is no config file).
    pub fn choose_in(
        &self,
        ws: Option<&crate::workspace::Workspace>,
    ) -> Result<StoreChoice, StoreCliError> {
        choose(self, &|k| std::env::var(k).ok(), &|| {
            Ok(ws.and_then(|ws| {
                ws.config
                    .store
                    .as_ref()
                    .map(|s| (s.value.clone(), ws.path.clone()))
            }))
        })
    }
}

/// Which store to use. Precedence: the `--store`/`--db` flag, then
/// `MAILAUTH_STORE` (then `MAILAUTH_DB`), then the config's `store:`
/// (`config` is asked only then), then `mailauth.db`. A
/// `--store-password-file` flag wins over the config's `password_file`;
/// relative paths in the config start at the config file's directory.
pub fn choose(
    flags: &StoreOptions,
    env: &dyn Fn(&str) -> Option<String>,
    config: &dyn Fn() -> Result<ConfigStore, StoreCliError>,
) -> Result<StoreChoice, StoreCliError> {
    let password_file = flags.store_password_file.as_deref();
    let choice = |url, source| StoreChoice {
        url,
        password_file: password_file.map(Path::to_path_buf),
        source,
    };
    if let Some(s) = &flags.store {
        return Ok(choice(StoreUrl::parse(s)?, StoreSource::Flag));
    }
    if let Some(p) = &flags.db {
        return Ok(choice(StoreUrl::Sqlite(p.clone()), StoreSource::Flag));
    }
    let set = |k| env(k).filter(|v| !v.is_empty());
    if let Some(s) = set(STORE_ENV) {
        return Ok(choice(StoreUrl::parse(&s)?, StoreSource::Env(STORE_ENV)));
    }
    if let Some(p) = set(DB_ENV) {
        return Ok(choice(
            StoreUrl::Sqlite(PathBuf::from(p)),
            StoreSource::Env(DB_ENV),
        ));
    }
    if let Some((s, path)) = config()? {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let url = match StoreUrl::parse(s.url())? {
            StoreUrl::Sqlite(p) if p.is_relative() => StoreUrl::Sqlite(base.join(p)),
            other => other,
        };
        let file = password_file
            .map(Path::to_path_buf)
            .or_else(|| s.password_file().map(|f| base.join(f)));
        return Ok(StoreChoice {
            url,
            password_file: file,
            source: StoreSource::Config(path),
        });
    }
    Ok(choice(
        StoreUrl::Sqlite(PathBuf::from(DEFAULT_DB)),
        StoreSource::Default,
    ))
}

impl StoreChoice {
    /// Opens (and migrates) the store.
    pub fn open(&self) -> Result<Box<dyn AnyStore>, StoreCliError> {
        open_store(&self.url, self.password_file.as_deref())
    }

    /// Opens the store (and migrates it) when there is one: `None` for
    /// an SQLite file that does not exist (it is not created). A
    /// PostgreSQL store is always opened. Commands that only read use
    /// [`StoreChoice::open_read_only`] instead.
    pub fn open_existing(&self) -> Result<Option<Box<dyn AnyStore>>, StoreCliError> {
        match &self.url {
            StoreUrl::Sqlite(p) if !p.exists() => Ok(None),
            _ => self.open().map(Some),
        }
    }

    /// Opens the store for reading only, for `plan`, `checklist` and
    /// `inspect`: nothing is created, migrated or written. `None` for an
    /// SQLite file that does not exist. A schema older than this program
    /// is an error ([`StoreCliError::is_older_schema`]) that says to run
    /// `mailauth store migrate`; a newer one is refused as on open.
    pub fn open_read_only(&self) -> Result<Option<Box<dyn AnyStore>>, StoreCliError> {
        open_store_read_only(&self.url, self.password_file.as_deref())
    }
}

impl StoreCliError {
    /// The store exists but needs `mailauth store migrate` before this
    /// program can read it.
    pub fn is_older_schema(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_older_schema())
    }
}

/// Opens the store at `url` for reading only (see
/// [`StoreChoice::open_read_only`]); `None` for a missing SQLite file.
pub fn open_store_read_only(
    url: &StoreUrl,
    // Only a PostgreSQL store has a password.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))] password_file: Option<&Path>,
) -> Result<Option<Box<dyn AnyStore>>, StoreCliError> {
    Ok(Some(match url {
        StoreUrl::Sqlite(p) if !p.exists() => return Ok(None),
        StoreUrl::Sqlite(p) => Box::new(SqliteStore::open_read_only(p)?),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(u) => Box::new(PgStore::open_read_only(
            u,
            password(password_file)?.as_deref(),
        )?),
    }))
}

/// Opens (and migrates) the store at `url`.
pub fn open_store(
    url: &StoreUrl,
    // Only a PostgreSQL store has a password.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))] password_file: Option<&Path>,
) -> Result<Box<dyn AnyStore>, StoreCliError> {
    Ok(match url {
        StoreUrl::Sqlite(p) => Box::new(SqliteStore::open(p)?),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(u) => Box::new(PgStore::open(u, password(password_file)?.as_deref())?),
    })
}

/// The formats of `store migrate` and `store copy`.
const FORMATS: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json];

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
        /// Store URL: sqlite://PATH or postgres://USER@HOST:PORT/DB
        /// (default: MAILAUTH_STORE, the config's `store:`, mailauth.db).
        #[arg(long)]
        store: Option<String>,
        /// Output format: text, or json.
        #[arg(long, default_value = "text", value_parser = output::parser(FORMATS))]
        format: OutputFormat,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Copy every report from an SQLite store into a PostgreSQL store.
    /// Re-running copies nothing twice.
    Copy {
        /// The SQLite store to copy from: sqlite://PATH or a file path.
        #[arg(long, value_name = "SQLITE")]
        from: String,
        /// The PostgreSQL store to copy into: postgres://USER@HOST:PORT/DB
        /// (password from MAILAUTH_STORE_PASSWORD).
        #[arg(long, value_name = "POSTGRES")]
        to: String,
        /// Output format of the summary: text, or json.
        #[arg(long, default_value = "text", value_parser = output::parser(FORMATS))]
        format: OutputFormat,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
}

/// `store migrate --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MigrateOut {
    store: String,
    from: i64,
    to: i64,
}

/// Runs a `store` subcommand; returns the exit code. `config` is the
/// config file whose `store:` `migrate` falls back to.
pub fn run(args: StoreArgs, config: &Path, out: &mut dyn Write) -> Result<i32, StoreCliError> {
    let w = |source: std::io::Error| {
        // The binary ends quietly on a closed pipe (`| head`).
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            super::cli::mark_stdout_closed();
        }
        StoreCliError::Output { source }
    };
    match args.command {
        StoreCommand::Migrate {
            store,
            format,
            json,
        } => {
            let choice = StoreOptions {
                db: None,
                store,
                store_password_file: args.store_password_file.clone(),
            }
            .choose(config)?;
            #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
            let (url, pwfile) = (choice.url, choice.password_file.as_deref());
            let (from, to) = match &url {
                StoreUrl::Sqlite(p) => {
                    let before = sqlite_version(p);
                    let s = SqliteStore::open(p)?;
                    (before, s.schema_version()?)
                }
                #[cfg(feature = "postgres")]
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
            if OutputFormat::chosen(format, json) == OutputFormat::Json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&o).unwrap_or_default()
                )
                .map_err(w)?;
            } else if from == to {
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
        StoreCommand::Copy {
            from,
            to,
            format,
            json,
        } => {
            let pwfile = args.store_password_file.as_deref();
            let (src, dst) = (StoreUrl::parse(&from)?, StoreUrl::parse(&to)?);
            let s = copy(&src, &dst, pwfile)?;
            if OutputFormat::chosen(format, json) == OutputFormat::Json {
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

/// What `store copy` (`PgStore::copy_from_sqlite`) did.
#[derive(schemars::JsonSchema, Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopySummary {
    pub reports: u64,
    pub records: u64,
    pub failure_reports: u64,
    pub tls_reports: u64,
    /// Reports of any kind already in the target.
    pub skipped: u64,
}

/// `store copy`: every report of the SQLite store `src` into the
/// PostgreSQL store `dst`.
fn copy(
    src: &StoreUrl,
    dst: &StoreUrl,
    password_file: Option<&Path>,
) -> Result<CopySummary, StoreCliError> {
    match (src, dst) {
        #[cfg(feature = "postgres")]
        (StoreUrl::Sqlite(path), StoreUrl::Postgres(url)) => {
            let mut pg = PgStore::open(url, password(password_file)?.as_deref())?;
            Ok(pg.copy_from_sqlite(path)?)
        }
        _ => {
            let _ = password_file;
            Err(StoreCliError::CopyDirection {
                from: src.describe(),
                to: dst.describe(),
            })
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

    #[cfg(feature = "postgres")]
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

    /// Built without PostgreSQL support, a PostgreSQL URL is refused by
    /// name of the feature, and the URL (which could hold a password) is
    /// not repeated.
    #[cfg(not(feature = "postgres"))]
    #[test]
    fn postgres_urls_are_refused_without_the_feature() {
        for url in ["postgres://u:secret@h/db", "postgresql://u@h/db"] {
            let err = StoreUrl::parse(url).expect_err("no PostgreSQL support");
            assert!(matches!(err, StoreCliError::NoPostgres), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("Cargo feature `postgres`"), "{msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
        assert_eq!(
            StoreUrl::parse("sqlite:r.db").ok(),
            Some(StoreUrl::Sqlite("r.db".into()))
        );
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

    /// `--store`/`--db` > MAILAUTH_STORE > MAILAUTH_DB > config > default;
    /// the config is read only when nothing before it decided.
    #[cfg(feature = "postgres")]
    #[test]
    fn precedence_of_store_sources() {
        let yaml =
            "store: { url: postgres://m@db:5432/dmarc, password_file: secrets/pg }\ndomains: {}\n";
        let cfg = crate::config::load_str(yaml, Path::new("etc/mailauth.yaml")).expect("config");
        let from_config = || -> Result<ConfigStore, StoreCliError> {
            Ok(cfg
                .store
                .as_ref()
                .map(|s| (s.value.clone(), PathBuf::from("etc/mailauth.yaml"))))
        };
        let untouched = || -> Result<ConfigStore, StoreCliError> { panic!("config read") };
        let no_env = |_: &str| None;
        let env = |k: &str| match k {
            STORE_ENV => Some("postgres://e@envdb/x".to_owned()),
            DB_ENV => Some("env.db".to_owned()),
            _ => None,
        };
        let flags = |db: Option<&str>, store: Option<&str>, pw: Option<&str>| StoreOptions {
            db: db.map(PathBuf::from),
            store: store.map(str::to_owned),
            store_password_file: pw.map(PathBuf::from),
        };
        let c = choose(&flags(None, Some("flag.db"), None), &env, &untouched).expect("flag");
        assert_eq!(
            (c.url, c.source),
            (StoreUrl::Sqlite("flag.db".into()), StoreSource::Flag)
        );
        let c = choose(&flags(Some("db.db"), None, None), &env, &untouched).expect("db flag");
        assert_eq!(c.url, StoreUrl::Sqlite("db.db".into()));
        let c = choose(&flags(None, None, None), &env, &untouched).expect("env");
        assert_eq!(
            (c.url, c.source),
            (
                StoreUrl::Postgres("postgres://e@envdb/x".into()),
                StoreSource::Env(STORE_ENV)
            )
        );
        let only_db = |k: &str| (k == DB_ENV).then(|| "env.db".to_owned());
        let c = choose(&flags(None, None, None), &only_db, &untouched).expect("env db");
        assert_eq!(c.url, StoreUrl::Sqlite("env.db".into()));
        // An empty variable is no choice.
        let empty = |_: &str| Some(String::new());
        let c = choose(&flags(None, None, None), &empty, &from_config).expect("config");
        assert_eq!(
            c,
            StoreChoice {
                url: StoreUrl::Postgres("postgres://m@db:5432/dmarc".into()),
                password_file: Some(PathBuf::from("etc/secrets/pg")),
                source: StoreSource::Config("etc/mailauth.yaml".into()),
            }
        );
        // The password file flag wins over the config's.
        let c = choose(&flags(None, None, Some("/run/pw")), &no_env, &from_config).expect("pw");
        assert_eq!(c.password_file, Some(PathBuf::from("/run/pw")));
        let c = choose(&flags(None, None, None), &no_env, &|| Ok(None)).expect("default");
        assert_eq!(
            (c.url, c.source),
            (StoreUrl::Sqlite(DEFAULT_DB.into()), StoreSource::Default)
        );
    }

    #[test]
    fn config_sqlite_path_is_relative_to_the_config() {
        let cfg = crate::config::load_str("store: sqlite://r/m.db\ndomains: {}\n", Path::new("x"))
            .expect("config");
        let store = cfg
            .store
            .map(|s| (s.value, PathBuf::from("conf/mailauth.yaml")));
        let c = choose(&StoreOptions::default(), &|_| None, &|| Ok(store.clone())).expect("config");
        assert_eq!(c.url, StoreUrl::Sqlite("conf/r/m.db".into()));
        assert_eq!(c.password_file, None);
    }
}
