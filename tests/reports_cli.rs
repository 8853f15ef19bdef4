//! The `reports` subcommands, driven through `cli::run` with a temp
//! database: exit codes, export files. The store scenarios run on SQLite
//! and on PostgreSQL 15 (`sqlite::…` and `postgres::…` tests).

mod support;

use std::path::{Path, PathBuf};

use support::postgres::TestStore;

use mailauth::reports::cli::{
    ExportArgs, Format, IngestArgs, ListArgs, ReportsArgs, ReportsCommand, ShowArgs, run,
};

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports")).join(rel)
}

both_stores!(ingest_list_show_export);

/// The config path given to `run`: none, so only the flags decide.
fn no_config() -> &'static Path {
    Path::new("/nonexistent/mailauth.yaml")
}

fn args(st: &TestStore, command: ReportsCommand) -> ReportsArgs {
    let (db, store, store_password_file) = st.flags();
    ReportsArgs {
        db,
        store,
        store_password_file,
        command,
    }
}

fn ingest(st: &TestStore, paths: Vec<PathBuf>) -> i32 {
    run(
        args(
            st,
            ReportsCommand::Ingest(IngestArgs {
                paths,
                mbox: Vec::new(),
                maildir: Vec::new(),
                archive_folder: ".Archive".to_owned(),
                invalid_folder: ".Invalid".to_owned(),
                imap: Default::default(),
                json: true,
                dry_run: false,
                max_input_bytes: 1 << 26,
                max_decompressed_bytes: 1 << 28,
                item_timeout: 60,
            }),
        ),
        no_config(),
    )
    .expect("ingest runs")
}

fn export(st: &TestStore, format: Format, out: &Path) {
    let code = run(
        args(
            st,
            ReportsCommand::Export(ExportArgs {
                format,
                domain: None,
                output: Some(out.to_owned()),
            }),
        ),
        no_config(),
    )
    .expect("export runs");
    assert_eq!(code, 0);
}

fn ingest_list_show_export(st: &TestStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = vec![
        data("aggregate/nice-input.xml.gz"),
        data("aggregate/outlook.xml"),
        data("tlsrpt/rfc8460.json"),
        data("forensic/dmarc_ruf_report_linkedin.eml"),
    ];
    assert_eq!(ingest(st, good.clone()), 0);
    // Re-ingest plus one invalid file: exit code 1, nothing new.
    let mut with_bad = good;
    with_bad.push(data("aggregate/test_empty.xml"));
    assert_eq!(ingest(st, with_bad), 1);

    let list = |format| {
        run(
            args(
                st,
                ReportsCommand::List(ListArgs {
                    domain: None,
                    format,
                }),
            ),
            no_config(),
        )
        .expect("list runs")
    };
    assert_eq!(list(Format::Table), 0);
    assert_eq!(list(Format::Csv), 0);
    let show = |id: &str| {
        run(
            args(
                st,
                ReportsCommand::Show(ShowArgs {
                    id: id.to_owned(),
                    format: Format::Json,
                }),
            ),
            no_config(),
        )
    };
    assert_eq!(show("1").expect("show"), 0);
    assert_eq!(show("tls:1").expect("show"), 0);
    assert_eq!(show("failure:1").expect("show"), 0);
    assert_eq!(show("99").expect("show"), 1);
    assert!(show("bogus:1").is_err());

    let json_path = tmp.path().join("out.json");
    export(st, Format::Json, &json_path);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("read")).expect("json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 4, "{v}");
    let records: usize = arr
        .iter()
        .map(|r| r["records"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(records, 22);

    let csv_path = tmp.path().join("out.csv");
    export(st, Format::Csv, &csv_path);
    let csv = std::fs::read_to_string(&csv_path).expect("read");
    assert_eq!(csv.lines().count(), 1 + 22);
    assert!(csv.starts_with("report,org,report_id,domain,"));
}

#[test]
fn nothing_to_ingest_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = run(
        ReportsArgs {
            db: Some(tmp.path().join("x.db")),
            store: None,
            store_password_file: None,
            command: ReportsCommand::Ingest(IngestArgs {
                paths: Vec::new(),
                mbox: Vec::new(),
                maildir: Vec::new(),
                archive_folder: ".Archive".to_owned(),
                invalid_folder: ".Invalid".to_owned(),
                imap: Default::default(),
                json: false,
                dry_run: false,
                max_input_bytes: 1,
                max_decompressed_bytes: 1,
                item_timeout: 60,
            }),
        },
        no_config(),
    )
    .expect_err("no inputs");
    assert!(err.to_string().contains("nothing to ingest"), "{err}");
}

#[test]
fn dry_run_parses_everything_and_opens_no_database() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("never.db");
    let args = |paths: Vec<PathBuf>| ReportsArgs {
        db: Some(db.clone()),
        store: None,
        store_password_file: None,
        command: ReportsCommand::Ingest(IngestArgs {
            imap: Default::default(),
            paths,
            mbox: Vec::new(),
            maildir: Vec::new(),
            archive_folder: ".Archive".to_owned(),
            invalid_folder: ".Invalid".to_owned(),
            json: true,
            dry_run: true,
            max_input_bytes: 1 << 26,
            max_decompressed_bytes: 1 << 28,
            item_timeout: 60,
        }),
    };
    let good = vec![
        data("aggregate/nice-input.xml.gz"),
        data("aggregate/outlook.xml"),
    ];
    assert_eq!(run(args(good.clone()), no_config()).expect("runs"), 0);
    // Twice: nothing is kept, so nothing is a duplicate either.
    assert_eq!(run(args(good.clone()), no_config()).expect("runs"), 0);
    // A broken report still fails the run.
    let mut with_bad = good;
    with_bad.push(data("aggregate/test_empty.xml"));
    assert_eq!(run(args(with_bad), no_config()).expect("runs"), 1);
    assert!(!db.exists(), "a dry run created the database");
}
