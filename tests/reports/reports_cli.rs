//! The `reports` subcommands, driven through `cli::run` with a temp
//! database: exit codes, export files. The store scenarios run on SQLite
//! and on PostgreSQL 15 (`sqlite::…` and `postgres::…` tests).

use crate::support;
use crate::util;

use std::path::{Path, PathBuf};

use mailauth::output::OutputFormat;
use support::postgres::TestStore;

use mailauth::reports::cli::{
    ExportArgs, IngestArgs, ListArgs, ReportsArgs, ReportsCommand, ShowArgs, run,
};
use mailauth::reports::store_cli::StoreOptions;

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports")).join(rel)
}

both_stores!(
    ingest_list_show_export,
    delete_removes_reports_with_their_rows_all_or_nothing,
    json_ids_round_trip_and_no_key_is_repeated,
    terminal_and_csv_output_carry_no_control_characters_or_formulas,
    html_survives_a_very_long_policy_domain,
    closed_stdout_ends_every_command_quietly,
    formats_are_honoured_or_refused,
    extreme_time_bounds_do_not_overflow,
    every_time_in_json_is_rfc_3339_utc,
    prune_removes_old_aggregate_reports_only_with_yes,
);

/// The config path given to `run`: none, so only the flags decide.
fn no_config() -> &'static Path {
    Path::new("/nonexistent/mailauth.yaml")
}

fn args(st: &TestStore, command: ReportsCommand) -> ReportsArgs {
    let (db, store, store_password_file) = st.flags();
    ReportsArgs {
        store: StoreOptions {
            db,
            store,
            store_password_file,
        },
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
                format: OutputFormat::Text,
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

fn export(st: &TestStore, format: OutputFormat, out: &Path) {
    let code = run(
        args(
            st,
            ReportsCommand::Export(ExportArgs {
                format,
                json: false,
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
                    json: false,
                }),
            ),
            no_config(),
        )
        .expect("list runs")
    };
    assert_eq!(list(OutputFormat::Text), 0);
    assert_eq!(list(OutputFormat::Csv), 0);
    let show = |id: &str| {
        run(
            args(
                st,
                ReportsCommand::Show(ShowArgs {
                    id: id.to_owned(),
                    format: OutputFormat::Json,
                    json: false,
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
    export(st, OutputFormat::Json, &json_path);
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
    export(st, OutputFormat::Csv, &csv_path);
    let csv = std::fs::read_to_string(&csv_path).expect("read");
    assert_eq!(csv.lines().count(), 1 + 22);
    assert!(csv.starts_with("report,org,report_id,domain,"));
}

#[test]
fn nothing_to_ingest_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = run(
        ReportsArgs {
            store: StoreOptions {
                db: Some(tmp.path().join("x.db")),
                ..Default::default()
            },
            command: ReportsCommand::Ingest(IngestArgs {
                paths: Vec::new(),
                mbox: Vec::new(),
                maildir: Vec::new(),
                archive_folder: ".Archive".to_owned(),
                invalid_folder: ".Invalid".to_owned(),
                imap: Default::default(),
                format: OutputFormat::Text,
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
        store: StoreOptions {
            db: Some(db.clone()),
            ..Default::default()
        },
        command: ReportsCommand::Ingest(IngestArgs {
            imap: Default::default(),
            paths,
            mbox: Vec::new(),
            maildir: Vec::new(),
            archive_folder: ".Archive".to_owned(),
            invalid_folder: ".Invalid".to_owned(),
            format: OutputFormat::Text,
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

// ---------------------------------------------------------------------------
// The binary, on both stores: issues 15 and 23.
// ---------------------------------------------------------------------------

/// Runs `mailauth reports <store flags> ARGS` in a temp dir.
fn bin(st: &TestStore, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    util::Cmd::new()
        .arg("reports")
        .args(st.cli_args())
        .args(args)
        .dir(dir.path())
        .env_remove("MAILAUTH_STORE")
        .env_remove("MAILAUTH_DB")
        .output()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(st: &TestStore, args: &[&str]) -> String {
    let o = bin(st, args);
    assert!(
        o.status.success(),
        "{args:?}: exit {:?}\n{}\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn corpus() -> Vec<PathBuf> {
    vec![
        data("aggregate/nice-input.xml.gz"),
        data("aggregate/outlook.xml"),
        data("tlsrpt/rfc8460.json"),
        data("forensic/dmarc_ruf_report_linkedin.eml"),
    ]
}

fn messages(st: &TestStore) -> i64 {
    use mailauth::reports::dashq::DashFilter;
    let mut s = st.open();
    s.refresh_rollup().expect("refresh");
    s.dash_daily(&DashFilter::default())
        .expect("daily")
        .iter()
        .map(|d| d.messages)
        .sum()
}

/// Issue 15: `mailauth reports delete ID…` removes a report with its
/// records (and its rollup rows) on both stores; an unknown id is an
/// error that removes nothing.
fn delete_removes_reports_with_their_rows_all_or_nothing(st: &TestStore) {
    use mailauth::reports::store::Table;
    assert_eq!(ingest(st, corpus()), 0);
    let before = messages(st);
    let list: serde_json::Value =
        serde_json::from_str(&ok(st, &["list", "--format", "json"])).expect("json");
    let ids: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id is a string").to_owned())
        .collect();
    let agg = ids.iter().find(|i| !i.contains(':')).expect("aggregate");
    let other_agg = ids
        .iter()
        .find(|i| !i.contains(':') && *i != agg)
        .expect("second aggregate");
    let tls = ids.iter().find(|i| i.starts_with("tls:")).expect("tls");
    let failure = ids
        .iter()
        .find(|i| i.starts_with("failure:"))
        .expect("failure");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(st, &["show", agg, "--format", "json"])).expect("json");
    let agg_records = shown["records"].as_array().expect("records").len() as i64;
    let agg_messages = shown["messages"].as_i64().expect("messages");

    // An unknown id among known ones: nothing is removed.
    let o = bin(st, &["delete", agg, "tls:999"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no tls report with id tls:999"),
        "{}",
        stderr(&o)
    );
    let o = bin(st, &["delete", "abc"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tls:N"), "{}", stderr(&o));
    assert_eq!(st.count(Table::Reports), 2);
    assert_eq!(st.count(Table::TlsReports), 1);

    let records = st.count(Table::Records);
    let out = ok(st, &["delete", agg, tls, failure]);
    assert!(out.contains("deleted 3 report(s)"), "{out}");
    assert_eq!(st.count(Table::Reports), 1);
    assert_eq!(st.count(Table::Records), records - agg_records);
    assert_eq!(st.count(Table::TlsReports), 0);
    assert_eq!(st.count(Table::TlsPolicies), 0);
    assert_eq!(st.count(Table::TlsFailures), 0);
    assert_eq!(st.count(Table::FailureReports), 0);
    // The rollup forgets the report's messages.
    assert_eq!(messages(st), before - agg_messages);
    let o = bin(st, &["show", agg]);
    assert_eq!(o.status.code(), Some(1));
    ok(st, &["show", other_agg]);
    // Deleting it again: an error naming it.
    let o = bin(st, &["delete", agg]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("no aggregate report with id {agg}")),
        "{}",
        stderr(&o)
    );
}

/// One aggregate report of `domain` whose day began at `begin`: one
/// record of `n` messages per source in `ips`.
fn day_report(domain: &str, begin: i64, ips: &[&str], n: u64) -> String {
    let records: String = ips
        .iter()
        .map(|ip| {
            format!(
                "<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>\
                 <disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>\
                 </row><identifiers><header_from>{domain}</header_from></identifiers><auth_results>\
                 <spf><domain>{domain}</domain><result>pass</result></spf></auth_results></record>\n"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>receiver.test</org_name>\
         <email>dmarc@receiver.test</email><report_id>{domain}-{begin}</report_id><date_range>\
         <begin>{begin}</begin><end>{end}</end></date_range></report_metadata><policy_published>\
         <domain>{domain}</domain><p>none</p></policy_published>\n{records}</feedback>\n",
        end = begin + 86_399
    )
}

/// Issue 21: `reports prune --older-than D` counts, per domain, the
/// aggregate reports whose period began before now - D and removes
/// nothing; with `--yes` it removes exactly those (records, policy and
/// their dashboard messages with them) and keeps newer reports, TLS and
/// failure reports. A bad duration is a usage error (exit 2).
fn prune_removes_old_aggregate_reports_only_with_yes(st: &TestStore) {
    use mailauth::reports::store::Table;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let day = 86_400;
    let tmp = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, xml: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, xml).expect("write report");
        p
    };
    let two = ["192.0.2.1", "192.0.2.2"];
    let files = vec![
        // Old: 400 and 100 days ago (a.test), 50 days ago (b.test).
        write("a400.xml", day_report("a.test", now - 400 * day, &two, 3)),
        write("a100.xml", day_report("a.test", now - 100 * day, &two, 5)),
        write(
            "b50.xml",
            day_report("b.test", now - 50 * day, &["192.0.2.9"], 7),
        ),
        // Recent: 10 days ago, and a report that began 29 days ago.
        write("a10.xml", day_report("a.test", now - 10 * day, &two, 11)),
        write("b29.xml", day_report("b.test", now - 29 * day, &two, 13)),
        data("tlsrpt/rfc8460.json"),
        data("forensic/dmarc_ruf_report_linkedin.eml"),
    ];
    assert_eq!(ingest(st, files), 0);
    let (reports, records) = (st.count(Table::Reports), st.count(Table::Records));
    assert_eq!((reports, records), (5, 9));
    let all_messages = messages(st);
    assert_eq!(all_messages, 2 * 3 + 2 * 5 + 7 + 2 * 11 + 2 * 13);

    // Dry run (the default): says what would go, removes nothing.
    let out = ok(st, &["prune", "--older-than", "30d"]);
    assert!(
        out.starts_with("would remove 3 aggregate report(s) with 5 record(s) that began before "),
        "{out}"
    );
    assert!(
        out.contains("  a.test: 2 report(s), 4 record(s)\n"),
        "{out}"
    );
    assert!(
        out.contains("  b.test: 1 report(s), 1 record(s)\n"),
        "{out}"
    );
    assert!(out.contains("add --yes"), "{out}");
    assert_eq!((st.count(Table::Reports), st.count(Table::Records)), (5, 9));
    let json: serde_json::Value =
        serde_json::from_str(&ok(st, &["prune", "--older-than", "30d", "--json"])).expect("json");
    assert_eq!(json["removed"], false);
    assert_eq!(
        (json["reports"].as_u64(), json["records"].as_u64()),
        (Some(3), Some(5))
    );
    let before = json["before"].as_str().expect("before");
    assert!(before.ends_with('Z') && before.len() == 20, "{before}");
    assert_eq!(json["domains"][0]["domain"], "a.test");
    assert_eq!((st.count(Table::Reports), st.count(Table::Records)), (5, 9));

    // Usage errors remove nothing either.
    for bad in ["30", "30x", "-5d", "0d", "d", "99999999999999999w"] {
        let o = bin(st, &["prune", "--older-than", bad, "--yes"]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
    }
    assert_eq!(st.count(Table::Reports), 5);

    // --yes removes exactly the old ones.
    let out = ok(st, &["prune", "--older-than", "30d", "--yes"]);
    assert!(
        out.starts_with("removed 3 aggregate report(s) with 5 record(s) that began before "),
        "{out}"
    );
    assert!(!out.contains("--yes"), "{out}");
    assert_eq!((st.count(Table::Reports), st.count(Table::Records)), (2, 4));
    assert_eq!(st.count(Table::TlsReports), 1);
    assert_eq!(st.count(Table::FailureReports), 1);
    let list: serde_json::Value =
        serde_json::from_str(&ok(st, &["list", "--format", "json"])).expect("json");
    let mut left: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["kind"] == "aggregate")
        .map(|r| r["report_id"].as_str().expect("report_id").to_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            format!("a.test-{}", now - 10 * day),
            format!("b.test-{}", now - 29 * day)
        ]
    );
    // The dashboards forget the removed messages.
    assert_eq!(messages(st), 2 * 11 + 2 * 13);
    // Nothing older is left: a second run removes nothing.
    let out = ok(st, &["prune", "--older-than", "30d", "--yes"]);
    assert!(
        out.starts_with("removed 0 aggregate report(s) with 0 record(s)"),
        "{out}"
    );
    assert_eq!((st.count(Table::Reports), st.count(Table::Records)), (2, 4));
}

/// Issue 23: `show --format json` and `export` wrote objects with the key
/// `records` twice (invalid JSON); the JSON id must be what `show`
/// accepts; `show abc` said "invalid digit found in string".
fn json_ids_round_trip_and_no_key_is_repeated(st: &TestStore) {
    assert_eq!(ingest(st, corpus()), 0);
    let list: serde_json::Value =
        serde_json::from_str(&ok(st, &["list", "--format", "json"])).expect("json");
    let rows = list.as_array().expect("array");
    assert_eq!(rows.len(), 4);
    for row in rows {
        let id = row["id"].as_str().expect("id is a string");
        let text = ok(st, &["show", id, "--format", "json"]);
        let top: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
            .map(|l| l.trim().split(':').next().unwrap_or(""))
            .collect();
        let mut unique = top.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), top.len(), "a key is repeated: {top:?}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["id"], row["id"]);
        assert_eq!(v["record_count"], row["record_count"]);
    }
    let export = ok(st, &["export"]);
    for line in export.lines().filter(|l| l.starts_with('{')) {
        let line = line.trim_end_matches(',');
        assert_eq!(line.matches("\"records\":").count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        ok(st, &["show", v["id"].as_str().expect("string id")]);
    }
    // The dashboards' failure-report ids are the same strings.
    let summary: serde_json::Value =
        serde_json::from_str(&ok(st, &["summary", "--json"])).expect("json");
    let fid = summary["failures"][0]["id"].as_str().expect("string id");
    assert!(fid.starts_with("failure:"), "{fid}");
    ok(st, &["show", fid]);
    for bad in ["abc", "tls:x", "bogus:1", "0"] {
        let o = bin(st, &["show", bad]);
        assert!(!o.status.success(), "{bad}");
        let e = stderr(&o);
        assert!(
            e.contains("tls:N") && e.contains("failure:N") && !e.contains("invalid digit"),
            "{bad}: {e}"
        );
    }
}

/// A report written by an older version (or any client): control
/// characters and a formula in its fields.
fn hostile_rows(st: &TestStore) {
    drop(st.open());
    let sql = "INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain, \
           record_count, message_count, origin, ingested_at) VALUES \
           (1, 'evil\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}', '=HYPERLINK(\"http://x\")', 1767139200, \
            1767225599, 'evil.test', 1, 3, 'x', 0); \
         INSERT INTO records (report_id, source_ip, count, disposition, header_from, envelope_from) \
           VALUES (1, '192.0.2.1', 3, 'none', 'evil.test\u{1b}[2J', '@SUM(A1)'); \
         INSERT INTO failure_reports (id, fingerprint, reporter, feedback_type, reported_domain, \
           original_subject, from_text, origin, ingested_at) VALUES \
           (1, 'fp', 'rep\u{1b}[31m', 'auth-failure', 'evil.test', '-2+3\u{7}', false, 'x', 0);";
    let sqlite = sql.replace("false", "0");
    // PostgreSQL (schema 5): the month's partitions, and the record
    // carries its report's `date_begin`.
    let pg = format!(
        "SELECT mailauth_month_partitions_v1(1767139200); {}",
        sql.replace(
            "INSERT INTO records (report_id, source_ip,",
            "INSERT INTO records (report_id, date_begin, source_ip,"
        )
        .replace(
            "VALUES (1, '192.0.2.1',",
            "VALUES (1, 1767139200, '192.0.2.1',"
        )
    );
    st.execute(&sqlite, &pg);
}

fn assert_no_controls(what: &str, text: &str, allowed: &[char]) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            !allowed.contains(&c)
                && (c.is_control()
                    || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        })
        .collect();
    assert!(bad.is_empty(), "{what}: {bad:?} in\n{text}");
}

/// Issue 15: `reports list`/`show` printed report fields raw (an
/// `org_name` of `&#27;]0;x&#7;` retitled the terminal), and CSV cells
/// starting with `=`, `+`, `-`, `@` were not neutralised (OWASP CSV
/// injection).
fn terminal_and_csv_output_carry_no_control_characters_or_formulas(st: &TestStore) {
    hostile_rows(st);
    for args in [
        &["list"][..],
        &["list", "--format", "json"],
        &["show", "1"],
        &["show", "1", "--format", "json"],
        &["show", "failure:1"],
        &["show", "failure:1", "--format", "json"],
        &["export"],
    ] {
        let out = ok(st, args);
        assert_no_controls(&format!("{args:?}"), &out, &['\n']);
        assert!(out.contains("evil"), "{args:?}: {out}");
    }
    // JSON keeps the value: the characters are escaped, not lost.
    let v: serde_json::Value =
        serde_json::from_str(&ok(st, &["show", "1", "--format", "json"])).expect("json");
    assert_eq!(
        v["org"].as_str(),
        Some("evil\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}")
    );
    for args in [
        &["list", "--format", "csv"][..],
        &["export", "--format", "csv"],
        &["show", "1", "--format", "csv"],
    ] {
        let out = ok(st, args);
        assert_no_controls(&format!("{args:?}"), &out, &['\n', '\r']);
        if args[0] != "list" {
            assert!(out.contains(",\"'@SUM(A1)\""), "{args:?}: {out}");
        }
        assert!(
            out.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
            "{args:?}: {out}"
        );
        assert!(
            !out.contains(",=") && !out.contains(",@"),
            "{args:?}: {out}"
        );
    }
}

/// Issue 15: one policy domain of 251+ characters stopped `reports html`
/// for the whole site ("File name too long").
fn html_survives_a_very_long_policy_domain(st: &TestStore) {
    assert_eq!(ingest(st, vec![data("aggregate/outlook.xml")]), 0);
    let long = format!("{}.test", "a".repeat(300));
    let sql = format!(
        "INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain, \
           record_count, message_count, origin, ingested_at) VALUES \
           (1000, 'long.test', 'long', 1767139200, 1767225599, '{long}', 1, 3, 'x', 0); \
         INSERT INTO records (report_id, source_ip, count, disposition, header_from) \
           VALUES (1000, '192.0.2.1', 3, 'none', '{long}');"
    );
    // PostgreSQL (schema 5): the month's partitions, and the record
    // carries its report's `date_begin`.
    let pg = format!(
        "SELECT mailauth_month_partitions_v1(1767139200); {}",
        sql.replace(
            "INSERT INTO records (report_id, source_ip,",
            "INSERT INTO records (report_id, date_begin, source_ip,"
        )
        .replace(
            "VALUES (1000, '192.0.2.1',",
            "VALUES (1000, 1767139200, '192.0.2.1',"
        )
    );
    st.execute(&sql, &pg);
    let site = tempfile::tempdir().expect("tempdir");
    let out = site.path().join("site");
    let text = ok(
        st,
        &["html", "--offline", "--out", out.to_str().expect("utf-8")],
    );
    assert!(text.contains("wrote 3 page(s)"), "{text}");
    let index = std::fs::read_to_string(out.join("index.html")).expect("index");
    let pages: Vec<String> = std::fs::read_dir(out.join("domains"))
        .expect("domains")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    for p in &pages {
        assert!(p.len() < 255, "{p}");
        assert!(index.contains(&format!("domains/{p}")), "index links {p}");
    }
}

/// Issue 15/23: `mailauth schema | head -1` panicked (exit 101), and
/// `reports export`, `show`, `summary --json` printed "error: Broken pipe"
/// (exit 1). A closed standard output ends every command quietly with
/// 141, as a Unix tool killed by SIGPIPE.
fn closed_stdout_ends_every_command_quietly(st: &TestStore) {
    assert_eq!(ingest(st, corpus()), 0);
    let flags: Vec<String> = st
        .cli_args()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let reports = |rest: &[&str]| -> Vec<String> {
        let mut v = vec!["reports".to_owned()];
        v.extend(flags.iter().cloned());
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // `store migrate --store URL` (an SQLite path is a URL too), then the
    // password file flag of a PostgreSQL store.
    let mut store_migrate = vec![
        "store".to_owned(),
        "migrate".to_owned(),
        "--store".to_owned(),
    ];
    store_migrate.extend(flags[1..].iter().cloned());
    let commands: Vec<Vec<String>> = vec![
        vec!["schema".to_owned()],
        reports(&["list"]),
        reports(&["list", "--format", "json"]),
        reports(&["show", "1"]),
        reports(&["show", "1", "--format", "json"]),
        reports(&["export"]),
        reports(&["export", "--format", "csv"]),
        reports(&["summary"]),
        reports(&["summary", "--json"]),
        store_migrate,
    ];
    for args in commands {
        // The reading end is closed before the program starts: its first
        // write fails, deterministically.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let o = util::mailauth(&args)
            .dir(dir.path())
            .command()
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run mailauth");
        assert_eq!(
            (o.status.code(), stderr(&o).as_str()),
            (Some(141), ""),
            "{args:?}"
        );
    }
}

/// Issue 23: `export --format table` printed JSON and `show tls:N
/// --format csv` printed a table.
fn formats_are_honoured_or_refused(st: &TestStore) {
    assert_eq!(ingest(st, corpus()), 0);
    let o = bin(st, &["export", "--format", "table"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("possible values: json, csv"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
    let o = bin(st, &["show", "tls:1", "--format", "csv"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--format table or json"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let csv = ok(st, &["show", "1", "--format", "csv"]);
    assert!(csv.starts_with("report,org,report_id,domain,"), "{csv}");
    assert!(csv.lines().count() > 1, "{csv}");
}

/// Issue 15: date arithmetic overflowed on extreme `--since`/`--until`
/// (a debug panic; PostgreSQL "bigint out of range").
fn extreme_time_bounds_do_not_overflow(st: &TestStore) {
    assert_eq!(ingest(st, corpus()), 0);
    let o = bin(st, &["summary", "--since=-106751991167300d"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot read time"), "{}", stderr(&o));
    ok(st, &["summary", "--until", "9223372036854775807"]);
    ok(st, &["summary", "--since=-9223372036854775808", "--json"]);
    ok(
        st,
        &[
            "summary",
            "--domain",
            "example.com",
            "--offline",
            "--until",
            "9223372036854775807",
        ],
    );
}

/// Issue 23: `reports list --db ../typo.db` created an empty database;
/// read-only commands (and the dashboards, `delete`) never create one.
#[test]
fn a_missing_store_is_an_error_and_is_not_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("typo.db");
    let out = tmp.path().join("site");
    for args in [
        &["list"][..],
        &["show", "1"],
        &["export"],
        &["summary"],
        &["html", "--out", out.to_str().expect("utf-8")],
        &["delete", "1"],
    ] {
        let o = util::Cmd::new()
            .arg("reports")
            .arg("--db")
            .arg(&db)
            .args(args)
            .dir(tmp.path())
            .output();
        assert!(!o.status.success(), "{args:?}");
        assert!(
            stderr(&o).contains("no such report store"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!db.exists(), "{args:?} created the database");
    }
}

/// A DNS server on loopback that answers every query REFUSED, at once.
fn refusing_dns() -> std::net::SocketAddr {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80; // QR: a response
            reply[3] = (reply[3] & 0xf0) | 5; // RCODE REFUSED
            let _ = sock.send_to(&reply, from);
        }
    });
    addr
}

/// Issue 15: `inspect` printed header fields raw (a Subject carrying
/// `ESC ]0;…BEL` retitled the terminal, CSI sequences cleared it).
#[test]
fn inspect_output_carries_no_control_characters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = dir.path().join("m.eml");
    std::fs::write(
        &msg,
        b"From: a@example.com\r\nTo: b@example.org\r\n\
          Subject: hi \x1b]0;pwned\x07 \xc2\x9b31m\r\n\
          Date: Tue, 30 Apr 2019 02:09:09 +0000\r\n\
          Received: from x\x1b[2J (x [192.0.2.1]) by mx.example.org; Tue, 30 Apr 2019 02:09:09 +0000\r\n\
          \r\nbody\r\n",
    )
    .expect("write");
    let ns = refusing_dns().to_string();
    for json in [false, true] {
        let mut cmd = util::mailauth(["inspect", "--nameserver", &ns])
            .arg(&msg)
            .dir(dir.path());
        if json {
            cmd = cmd.arg("--json");
        }
        let o = cmd.output();
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("pwned"), "{out}");
        assert_no_controls("inspect", &out, &['\n']);
        if json {
            let v: serde_json::Value = serde_json::from_str(&out).expect("json");
            assert_eq!(v["subject"], "hi \u{1b}]0;pwned\u{7} \u{9b}31m");
        }
    }
}

/// Issue 23: aggregate ranges came out as Unix seconds (`"1733184000"`),
/// failure reports as RFC 2822, the summary's reporter dates as integers.
fn every_time_in_json_is_rfc_3339_utc(st: &TestStore) {
    assert_eq!(ingest(st, corpus()), 0);
    let rfc3339 = |v: &serde_json::Value, what: &str| {
        let s = v
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {v} is not a string"));
        let b = s.as_bytes();
        assert!(
            s.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z',
            "{what}: {s}"
        );
    };
    let list: serde_json::Value =
        serde_json::from_str(&ok(st, &["list", "--format", "json"])).expect("json");
    let rows = list.as_array().expect("array");
    let kinds: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for row in rows {
        rfc3339(&row["begin"], "list begin");
        rfc3339(&row["end"], "list end");
        let v: serde_json::Value = serde_json::from_str(&ok(
            st,
            &["show", row["id"].as_str().unwrap(), "--format", "json"],
        ))
        .expect("json");
        rfc3339(&v["begin"], "show begin");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&ok(st, &["summary", "--json"])).expect("json");
    let text = summary.to_string();
    for r in summary["reporters"].as_array().into_iter().flatten() {
        rfc3339(&r["first_begin"], "reporter first_begin");
        rfc3339(&r["last_end"], "reporter last_end");
    }
    for f in summary["failures"].as_array().into_iter().flatten() {
        rfc3339(&f["arrival_date"], "failure arrival_date");
    }
    assert!(text.contains("first_begin"), "{text}");
}

/// Issue 23: `-c other/mailauth.yaml` was ignored for source attribution
/// (only `--spf-config` counted, defaulting to ./mailauth.yaml).
#[test]
fn the_config_given_with_c_attributes_sources() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("other")).expect("mkdir");
    std::fs::write(
        tmp.path().join("other/mailauth.yaml"),
        "domains:\n  random.net:\n    spf: { ip4: [1.2.3.4], all: fail }\n",
    )
    .expect("config");
    let run = |args: &[&str]| {
        let o = util::mailauth(args)
            .dir(tmp.path())
            .env_remove("MAILAUTH_STORE")
            .env_remove("MAILAUTH_DB")
            .output();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let report = data("aggregate/outlook.xml");
    run(&[
        "reports",
        "--db",
        "r.db",
        "ingest",
        report.to_str().expect("utf-8"),
    ]);
    let basis = |args: &[&str]| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&run(args)).expect("json");
        v["sources"][0]["attribution"].clone()
    };
    let summary = [
        "reports",
        "--db",
        "r.db",
        "summary",
        "--json",
        "--offline",
        "--domain",
        "random.net",
    ];
    // No config in the working directory: nothing attributes the source.
    assert_eq!(basis(&summary)["basis"], "not-configured");
    let mut with_c = vec!["-c", "other/mailauth.yaml"];
    with_c.extend_from_slice(&summary);
    let a = basis(&with_c);
    assert_ne!(a["basis"], "not-configured", "{a}");
    assert_eq!(a["spf_mechanism"], "ip4:1.2.3.4", "{a}");
}
