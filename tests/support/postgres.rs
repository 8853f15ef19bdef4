//! PostgreSQL 15 on a free loopback port in a temp dir, with password
//! (SCRAM) authentication so the password path is exercised. One server is
//! shared by the tests of a test binary that overlap in time; each test gets
//! its own database. The server stops (pg_ctl stop -m fast) when the last
//! test holding it drops it.
//!
//! Run as root, the cluster belongs to the `postgres` user (PostgreSQL
//! refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::free_port;

const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const USER: &str = "mailauth";

pub struct PgServer {
    port: u16,
    password: String,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// PostgreSQL binaries, or a loud SKIP (panics under CI=true).
pub fn require_postgres() -> Option<PathBuf> {
    let initdb = Path::new(BIN).join("initdb");
    if initdb.is_file() {
        return Some(PathBuf::from(BIN));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "PostgreSQL 15 ({}) is required under CI=true",
            initdb.display()
        );
    }
    eprintln!(
        "\n!!!!!!!! SKIP: PostgreSQL 15 ({}) not found; this test did not run !!!!!!!!\n",
        initdb.display()
    );
    None
}

impl PgServer {
    /// The running shared server, or a new one. `None` after a SKIP line.
    pub fn shared() -> Option<Arc<PgServer>> {
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.upgrade() {
            return Some(s);
        }
        let s = Arc::new(Self::start(&require_postgres()?));
        *slot = Arc::downgrade(&s);
        Some(s)
    }

    fn run(&self, bin: &Path, args: &[&str]) -> std::process::Output {
        run_as(self.as_postgres, bin, args)
    }

    fn start(bin: &Path) -> PgServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = is_root();
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).expect("mkdir pg");
        let pwfile = dir.path().join("pw");
        let password = hex(&super::random_bytes(12));
        std::fs::write(&pwfile, &password).expect("write pwfile");
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod temp dir");
            for p in [&data, &pwfile] {
                let ok = Command::new("chown")
                    .arg("postgres")
                    .arg(p)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown postgres {}", p.display());
            }
        }
        let port = free_port();
        let out = run_as(
            as_postgres,
            &bin.join("initdb"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "--pwfile",
                &pwfile.to_string_lossy(),
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&pwfile).expect("remove pwfile");
        let opts = format!(
            "-p {port} -k {} -h 127.0.0.1 -c fsync=off -c max_connections=50",
            data.display()
        );
        let log = data.join("pg.log");
        let out = run_as(
            as_postgres,
            &bin.join("pg_ctl"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        PgServer {
            port,
            password,
            data,
            as_postgres,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// URL of `db` (no password in it).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A fresh, empty database; returns its URL.
    pub fn fresh_db(&self, tag: &str) -> String {
        let name = format!(
            "t_{}_{}_{}",
            // PostgreSQL cuts names at 63 bytes: keep the unique tail.
            tag.chars()
                .take(24)
                .collect::<String>()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = self.admin();
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(&name)
    }

    /// A superuser connection to the `postgres` database.
    pub fn admin(&self) -> postgres::Client {
        self.connect(&self.url("postgres"))
    }

    pub fn connect(&self, url: &str) -> postgres::Client {
        let mut cfg: postgres::Config = url.parse().expect("url");
        cfg.password(&self.password);
        cfg.connect(postgres::NoTls)
            .expect("connect to test PostgreSQL")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.run(
            &Path::new(BIN).join("pg_ctl"),
            &["-D", &self.data.to_string_lossy(), "stop", "-m", "fast"],
        );
    }
}

fn run_as(as_postgres: bool, bin: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A report store for one test: an SQLite file in a temp dir, or a fresh
/// database on the binary's shared PostgreSQL 15 (password in a file).
/// Scenarios written against it run on both backends (see
/// [`both_stores!`](crate::both_stores)).
pub enum TestStore {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        server: Arc<PgServer>,
        url: String,
        password_file: PathBuf,
        _dir: tempfile::TempDir,
    },
}

impl TestStore {
    pub fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        TestStore::Sqlite {
            path: dir.path().join("reports.db"),
            _dir: dir,
        }
    }

    /// A fresh database; `None` after a SKIP line (panics under CI=true).
    pub fn postgres(tag: &str) -> Option<TestStore> {
        let server = PgServer::shared()?;
        let url = server.fresh_db(tag);
        let dir = tempfile::tempdir().expect("temp dir");
        let password_file = dir.path().join("pg-password");
        std::fs::write(&password_file, format!("{}\n", server.password()))
            .expect("write password file");
        Some(TestStore::Postgres {
            server,
            url,
            password_file,
            _dir: dir,
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestStore::Postgres { .. })
    }

    /// The store as the program opens it.
    pub fn open(&self) -> Box<dyn mailauth::reports::store_cli::AnyStore> {
        match self {
            TestStore::Sqlite { path, .. } => Box::new(
                mailauth::reports::store::SqliteStore::open(path).expect("open SQLite store"),
            ),
            TestStore::Postgres { server, url, .. } => Box::new(
                mailauth::reports::pgstore::PgStore::open(url, Some(server.password()))
                    .expect("open PostgreSQL store"),
            ),
        }
    }

    /// `--db`, or `--store` and `--store-password-file`: the command-line
    /// flags naming this store.
    pub fn cli_args(&self) -> Vec<std::ffi::OsString> {
        match self {
            TestStore::Sqlite { path, .. } => vec!["--db".into(), path.into()],
            TestStore::Postgres {
                url, password_file, ..
            } => vec![
                "--store".into(),
                url.into(),
                "--store-password-file".into(),
                password_file.into(),
            ],
        }
    }

    /// (`--db`, `--store`, `--store-password-file`) values.
    pub fn flags(&self) -> (Option<PathBuf>, Option<String>, Option<PathBuf>) {
        match self {
            TestStore::Sqlite { path, .. } => (Some(path.clone()), None, None),
            TestStore::Postgres {
                url, password_file, ..
            } => (None, Some(url.clone()), Some(password_file.clone())),
        }
    }

    /// Rows in `table`.
    pub fn count(&self, table: mailauth::reports::store::Table) -> i64 {
        match self {
            TestStore::Sqlite { path, .. } => mailauth::reports::store::SqliteStore::open(path)
                .expect("open")
                .count(table)
                .expect("count"),
            TestStore::Postgres { server, url, .. } => {
                mailauth::reports::pgstore::PgStore::open(url, Some(server.password()))
                    .expect("open")
                    .count(table)
                    .expect("count")
            }
        }
    }

    /// Runs raw SQL behind the program's back (test set-up): `sqlite` on
    /// an SQLite store, `pg` on a PostgreSQL one.
    pub fn execute(&self, sqlite: &str, pg: &str) {
        match self {
            TestStore::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .expect("sqlite")
                .execute_batch(sqlite)
                .expect("sqlite set-up"),
            TestStore::Postgres { server, url, .. } => server
                .connect(url)
                .batch_execute(pg)
                .expect("PostgreSQL set-up"),
        }
    }
}

/// `both_stores!(scenario, …)`: for each `fn scenario(store: &TestStore)`,
/// a test `scenario_sqlite` and a test `scenario_postgres` (a fresh
/// database on the shared server; SKIP, or a failure under CI=true, when
/// PostgreSQL 15 is missing).
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&$crate::support::postgres::TestStore::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(store) =
                        $crate::support::postgres::TestStore::postgres(stringify!($name))
                    {
                        super::$name(&store);
                    }
                }
            )*
        }
    };
}
