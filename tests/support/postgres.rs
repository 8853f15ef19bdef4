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
            tag.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
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
