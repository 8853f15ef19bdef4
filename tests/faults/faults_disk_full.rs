//! A disk that fills up while the report store or the keystore writes.
//! Each test mounts a small tmpfs (root only; `mount -t tmpfs -o size=…`),
//! fills it, and checks that the write fails with a clear error and the
//! previous state is intact and still usable once space is freed.
//!
//! Without permission to mount, the tests fail under `CI=true` and print a
//! loud SKIP line elsewhere.
//!
//! Owns these disk-full cases; leaves the store to `reports::store` and the
//! keystore to `keys::store`.

use crate::util;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailauth::keys::config::{Algorithm, FamilyConfig};
use mailauth::keys::lifecycle::generate_key;
use mailauth::keys::store::Keystore;
use mailauth::keys::time::Timestamp;

/// A tmpfs of a few hundred KiB, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size_kib: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { _dir: dir, path }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("mounting a small tmpfs is required under CI=true: {why}");
                }
                eprintln!(
                    "\n!!!!!!!! SKIP: cannot mount a tmpfs ({why}); this test did not run !!!!!!!!\n"
                );
                None
            }
        }
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        // Small writes may still fit in a partial block: take those too.
        while f.write_all(&chunk[..64]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/reports/aggregate")
        .join(name)
}

fn reports_ingest(db: &Path, file: &Path) -> std::process::Output {
    util::Cmd::new()
        .arg("reports")
        .arg("--db")
        .arg(db)
        .arg("ingest")
        .arg(file)
        .output()
}

fn count_reports(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok", "database damaged");
    conn.query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
        .expect("count reports")
}

#[test]
fn report_store_on_a_full_disk_fails_clearly_and_keeps_what_it_had() {
    // Room for the store once the filler is gone: the 0.9 MB report adds
    // ~350 KB of pages, written to the WAL and then checkpointed into the
    // database file, beside the store. A new store of schema 7 (16 KiB
    // pages) is ~450 KB, and creating it leaves ~550 KB in the WAL until
    // the checkpoint at close copies them over: 1 MiB no longer held both,
    // so the disk was full before the filler (512 KiB had already left no
    // page to spare once the schema grew a table).
    let Some(disk) = SmallDisk::mount(2048) else {
        return;
    };
    let db = disk.path.join("reports.db");
    let first = reports_ingest(&db, &sample("nice-input.xml"));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before = count_reports(&db);
    assert_eq!(before, 1);

    // A reader holds the database open, as a dashboard would: the WAL index
    // exists already, so the full disk hits the ingest's own writes.
    let reader = rusqlite::Connection::open(&db).expect("reader");
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
        .expect("read");
    let filler = disk.fill();
    let big = sample("!large-example.com!1711897200!1711983600.xml");
    let full = reports_ingest(&db, &big);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&full.stdout),
        String::from_utf8_lossy(&full.stderr)
    );
    assert!(
        !full.status.success(),
        "ingest on a full disk succeeded:\n{text}"
    );
    // SQLite reports ENOSPC as "database or disk is full", or, when the
    // WAL index cannot grow, as "disk I/O error" (SQLITE_IOERR_SHMSIZE).
    assert!(
        text.contains("full") || text.contains("space") || text.contains("disk I/O error"),
        "the error says the disk failed:\n{text}"
    );
    assert!(
        text.contains("database"),
        "the error names the database:\n{text}"
    );
    assert_eq!(full.status.code(), Some(1), "a clean error exit:\n{text}");

    std::fs::remove_file(&filler).expect("free space");
    assert_eq!(
        count_reports(&db),
        before,
        "the failed ingest changed the store"
    );
    let again = reports_ingest(&db, &big);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(count_reports(&db), before + 1);
}

#[test]
fn keystore_on_a_full_disk_fails_clearly_and_loses_no_key() {
    let Some(disk) = SmallDisk::mount(256) else {
        return;
    };
    let dir = disk.path.join("keys");
    let cfg = FamilyConfig::new("k", Algorithm::Ed25519);
    let now = Timestamp::parse("2026-01-01T00:00:00Z").expect("time");
    let mut store = Keystore::open(&dir).expect("open keystore");
    let first = generate_key(&mut store, "example.com", &cfg, now, false).expect("first key");
    let state_before = std::fs::read(dir.join("state.json")).expect("state.json");
    let pem_before = std::fs::read(store.private_path("example.com", &first)).expect("pem");

    let filler = disk.fill();
    let err = generate_key(
        &mut store,
        "example.com",
        &cfg,
        now.plus(mailauth::keys::time::Span::days(1)),
        true,
    )
    .expect_err("a key cannot be written to a full disk");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("space") || msg.contains("full"),
        "the error says the disk is full: {msg}"
    );
    drop(store);

    // The state on disk is the old one, whole, and its key is intact.
    assert_eq!(
        std::fs::read(dir.join("state.json")).expect("state"),
        state_before
    );
    let reopened = Keystore::open(&dir).expect("reopen");
    assert_eq!(reopened.state().keys.len(), 1);
    assert_eq!(
        std::fs::read(reopened.private_path("example.com", &first)).expect("pem"),
        pem_before
    );
    // No stray temp files were left behind.
    let stray: Vec<_> = std::fs::read_dir(&dir)
        .expect("read keys dir")
        .chain(std::fs::read_dir(dir.join("example.com")).expect("read domain dir"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "temp files left: {stray:?}");

    drop(reopened);
    std::fs::remove_file(&filler).expect("free space");
    let mut store = Keystore::open(&dir).expect("open");
    generate_key(
        &mut store,
        "example.com",
        &cfg,
        now.plus(mailauth::keys::time::Span::days(1)),
        true,
    )
    .expect("works again once space is freed");
    assert_eq!(store.state().keys.len(), 2);
}
