//! PostgreSQL 15 on a free loopback port in a temp dir, with password
//! (SCRAM) authentication so the password path is exercised. One server is
//! shared by the tests of a test binary that overlap in time; each test gets
//! its own database. The server stops (pg_ctl stop -m fast) when the last
//! test holding it drops it.
//!
//! Run as root, the cluster belongs to the `postgres` user (PostgreSQL
//! refuses to run as root).
//!
//! [`PgServer::start_tls`] starts a server of its own with TLS on (a
//! certificate from a throwaway CA) and cleartext `password`
//! authentication, so a test can see whether the password crosses the
//! wire in clear; [`RecordingProxy`] keeps what a client sends.

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
    /// The server's options (`pg_ctl -o`), to start it again.
    opts: String,
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
        let s = Arc::new(Self::start(&require_postgres()?, None));
        *slot = Arc::downgrade(&s);
        Some(s)
    }

    /// A server of its own with `ssl=on`, `cert`/`key` (PEM) as its
    /// certificate, and `password` (cleartext) authentication for TCP
    /// connections with TLS or without. `None` after a SKIP line.
    pub fn start_tls(cert: &Path, key: &Path) -> Option<PgServer> {
        Some(Self::start(
            &require_postgres()?,
            Some((cert.to_path_buf(), key.to_path_buf())),
        ))
    }

    /// A server of its own, durable as in production (`fsync=on`, where
    /// the shared one runs with `fsync=off`), for tests that kill it
    /// ([`kill9`](Self::kill9)) and start it again
    /// ([`restart`](Self::restart)). `None` after a SKIP line.
    pub fn start_own() -> Option<PgServer> {
        let mut s = Self::start(&require_postgres()?, None);
        s.stop_fast();
        s.opts = s.opts.replace(" -c fsync=off", "");
        s.start_again();
        Some(s)
    }

    /// SIGKILL to the postmaster and every process it started, as a crash
    /// of the machine's PostgreSQL would leave it (no shutdown checkpoint);
    /// returns once they are all gone.
    pub fn kill9(&self) {
        let pidfile =
            std::fs::read_to_string(self.data.join("postmaster.pid")).expect("read postmaster.pid");
        let pm: i32 = pidfile
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("postmaster pid");
        let mut pids = vec![pm];
        for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid …: comm may hold spaces, so read after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(pm) {
                pids.push(pid);
            }
        }
        for &pid in &pids {
            // SAFETY: kill(2) with a pid this test's server owns.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let mut zombie = false;
        for pid in pids {
            for _ in 0..3000 {
                let state =
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if state.is_empty() {
                    break;
                }
                // Dead, but not yet reaped by whoever inherited it.
                zombie = state
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
                if zombie {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        if zombie {
            // A zombie postmaster still answers kill(pid, 0), and the new
            // one would take it for a live server; after a real crash no
            // process is left, so its lock files name nobody.
            let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
            let _ = std::fs::remove_file(self.data.join(format!(".s.PGSQL.{}.lock", self.port)));
        }
    }

    /// Starts the server again (after [`kill9`](Self::kill9): crash
    /// recovery replays its WAL); returns once it accepts connections.
    pub fn restart(&self) {
        self.start_again();
    }

    fn stop_fast(&self) {
        let out = self.run(
            &Path::new(BIN).join("pg_ctl"),
            &[
                "-D",
                &self.data.to_string_lossy(),
                "-w",
                "stop",
                "-m",
                "fast",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop failed: {out:?}");
    }

    fn start_again(&self) {
        let log = self.data.join("pg.log");
        let out = self.run(
            &Path::new(BIN).join("pg_ctl"),
            &[
                "-D",
                &self.data.to_string_lossy(),
                "-o",
                &self.opts,
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
    }

    fn run(&self, bin: &Path, args: &[&str]) -> std::process::Output {
        run_as(self.as_postgres, bin, args)
    }

    fn start(bin: &Path, tls: Option<(PathBuf, PathBuf)>) -> PgServer {
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
        if let Some((cert, key)) = &tls {
            use std::os::unix::fs::PermissionsExt;
            let (c, k) = (data.join("server.crt"), data.join("server.key"));
            std::fs::copy(cert, &c).expect("copy server certificate");
            std::fs::copy(key, &k).expect("copy server key");
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600))
                .expect("chmod key");
            if as_postgres {
                for p in [&c, &k] {
                    let ok = Command::new("chown")
                        .arg("postgres")
                        .arg(p)
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "chown postgres {}", p.display());
                }
            }
            let mut conf = std::fs::read_to_string(data.join("postgresql.conf"))
                .expect("read postgresql.conf");
            conf.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            std::fs::write(data.join("postgresql.conf"), conf).expect("write postgresql.conf");
            // Cleartext password authentication: what crosses the wire
            // shows whether the transport hid it.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 password\n\
                 host all all 127.0.0.1/32 password\n",
            )
            .expect("write pg_hba.conf");
        }
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
            opts,
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

    /// Lays out the empty database at `to` as the first `version` (1 to 4)
    /// schema migrations left it (before schema 5 partitioned the
    /// aggregate tables) and fills it with every row of the store at
    /// `from`, ids included, the id sequences past them: a store written by
    /// an older mailauth.
    pub fn store_at_version(&self, from: &str, to: &str, version: usize) {
        use mailauth::reports::pgstore::MIGRATIONS;
        assert!((1..=4).contains(&version), "version {version}");
        let mut src = self.connect(from);
        let mut dst = self.connect(to);
        let mut tx = dst.transaction().expect("begin");
        tx.batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL PRIMARY KEY)")
            .expect("schema_version");
        for (i, step) in MIGRATIONS[..version].iter().enumerate() {
            tx.batch_execute(step).expect("older migration");
            tx.execute("INSERT INTO schema_version VALUES ($1)", &[&(i as i64 + 1)])
                .expect("record migration");
        }
        for table in [
            "reports",
            "policy_published",
            "records",
            "failure_reports",
            "tls_reports",
            "tls_policies",
            "tls_failures",
        ] {
            // Columns the older table lacks (`date_begin` of records and
            // policies) are left out by json_populate_recordset.
            let rows: String = src
                .query_one(
                    &format!("SELECT coalesce(json_agg(t), '[]')::text FROM {table} t"),
                    &[],
                )
                .expect("read rows")
                .get(0);
            tx.execute(
                &format!(
                    "INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::text::json)"
                ),
                &[&rows],
            )
            .expect("write rows");
            if table != "policy_published" {
                tx.batch_execute(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} \
                     HAVING count(*) > 0"
                ))
                .expect("advance sequence");
            }
        }
        tx.commit().expect("commit");
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

/// A TCP proxy on loopback to `target` that keeps every byte the client
/// sends. Stops accepting on drop.
pub struct RecordingProxy {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    pub sent: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    pub fn start(target: u16) -> RecordingProxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (stopped, kept) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (mut c_in, mut s_out) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        kept.lock().expect("sent").extend_from_slice(&buf[..n]);
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        RecordingProxy { port, stop, sent }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether `needle` appears in what the client sent.
    pub fn saw(&self, needle: &[u8]) -> bool {
        self.sent
            .lock()
            .expect("sent")
            .windows(needle.len())
            .any(|w| w == needle)
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
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
        Some(Self::postgres_on(PgServer::shared()?, tag))
    }

    /// A fresh database on `server`.
    pub fn postgres_on(server: Arc<PgServer>, tag: &str) -> TestStore {
        let url = server.fresh_db(tag);
        let dir = tempfile::tempdir().expect("temp dir");
        let password_file = dir.path().join("pg-password");
        std::fs::write(&password_file, format!("{}\n", server.password()))
            .expect("write password file");
        TestStore::Postgres {
            server,
            url,
            password_file,
            _dir: dir,
        }
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

    /// The integer in the first column of the first row `sql` answers
    /// (the same SQL on both stores), read behind the program's back.
    pub fn query_int(&self, sql: &str) -> i64 {
        match self {
            TestStore::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .expect("sqlite")
                .query_row(sql, [], |r| r.get(0))
                .expect("sqlite query"),
            TestStore::Postgres { server, url, .. } => server
                .connect(url)
                .query_one(sql, &[])
                .expect("PostgreSQL query")
                .get(0),
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
