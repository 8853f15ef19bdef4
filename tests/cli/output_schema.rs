//! Issue 23: every command that prints JSON has a JSON Schema
//! (`mailauth schema --output NAME`), and what the command prints is valid
//! against it. Each command runs for real (the binary, the example
//! workspace, the sample reports, a local BIND for DNS, PostgreSQL for
//! `store copy`); an independent validator, Python's `jsonschema` with the
//! RFC 3339 `date-time` format checked, judges the output. A command that
//! takes `--json` or `--format json` without a schema fails the suite.

use crate::support;
use crate::util;

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use support::bind::Bind;
use util::{Case, repo};

/// Validates `instance` against `schema` with Draft 2020-12 and a format
/// checker; panics with the validator's messages.
fn check(py: &Path, name: &str, schema: &str, instance: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (s, i) = (dir.path().join("schema.json"), dir.path().join("out.json"));
    std::fs::write(&s, schema).expect("write schema");
    std::fs::write(&i, instance).expect("write output");
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator, FormatChecker
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
Draft202012Validator.check_schema(schema)
checker = FormatChecker()
assert "date-time" in checker.checkers, "rfc3339-validator is missing"
errors = list(Draft202012Validator(schema, format_checker=checker).iter_errors(doc))
for e in errors[:10]:
    print("/".join(map(str, e.absolute_path)) or "(root)", ":", e.message[:300])
sys.exit(1 if errors else 0)
"#;
    let out = std::process::Command::new(py)
        .args(["-c", script])
        .arg(&s)
        .arg(&i)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{name}: output does not match its schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Output names of `schema --list`.
fn listed(case: &Case) -> BTreeSet<String> {
    let run = case.run(&["schema", "--list"]).ok();
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().next().expect("name").to_owned())
        .collect()
}

/// Copies a directory tree (the example workspace, the sample reports).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Runs one command and checks its JSON against the schema it names.
struct Checker<'a> {
    case: &'a Case,
    py: std::path::PathBuf,
    seen: BTreeSet<String>,
}

impl Checker<'_> {
    fn run(&mut self, name: &str, args: &[&str], codes: &[i32]) -> serde_json::Value {
        let run = self.case.run(args);
        assert!(
            codes.contains(&run.code),
            "{args:?}: exit {}\n{}\n{}",
            run.code,
            run.stdout,
            run.stderr
        );
        let doc: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document: {e}\n{}", run.stdout));
        let schema = self.case.run(&["schema", "--output", name]).ok().stdout;
        check(&self.py, name, &schema, &run.stdout);
        self.seen.insert(name.to_owned());
        doc
    }
}

#[test]
fn every_json_output_matches_its_schema() {
    let Some(py) = support::octodns::python_with("jsonschema, rfc3339_validator") else {
        return;
    };
    let zone = std::fs::read_to_string(repo().join("tests/data/example/zones/example.com.zone"))
        .expect("example zone");
    let Some(bind) = Bind::try_start(&[("example.com", &zone)]) else {
        return;
    };
    let loaded = support::wait_until(std::time::Duration::from_secs(15), || {
        !bind.dig_short("example.com", "SOA").trim().is_empty()
    });
    assert!(loaded, "BIND did not load example.com");
    let ns = format!("127.0.0.1:{}", bind.port());

    let case = Case::new();
    copy_tree(&repo().join("tests/data/example"), case.path());
    copy_tree(
        &repo().join("tests/data/reports"),
        &case.path().join("samples"),
    );
    // A generated DKIM family, so `keys list` has a key to print.
    let config = std::fs::read_to_string(case.path().join("mailauth.yaml")).expect("config");
    let config = config.replace(
        "        - name: s1 ",
        "        - prefix: mail\n          algorithm: ed25519\n        - name: s1 ",
    ) + "keys:\n  dir: keys\n";
    std::fs::write(case.path().join("mailauth.yaml"), config).expect("write config");
    let mut c = Checker {
        case: &case,
        py,
        seen: BTreeSet::new(),
    };

    let plan = c.run("plan", &["plan", "--format", "json"], &[0]);
    assert!(plan["zones"].as_array().is_some_and(|z| !z.is_empty()));
    c.run("plan", &["plan", "--json", "-d", "parked.example"], &[0]);
    case.run(&["keys", "generate", "example.com"]).ok();
    let keys = c.run("keys-list", &["keys", "list", "--json"], &[0]);
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    let selector = keys[0]["selector"].as_str().expect("selector").to_owned();
    let shown = c.run("keys-show", &["keys", "show", &selector, "--json"], &[0]);
    assert_eq!(shown["selector"], keys[0]["selector"]);
    let imported = c.run(
        "import",
        &[
            "import",
            "example.com",
            "--nameserver",
            &ns,
            "--dry-run",
            "--json",
        ],
        &[0],
    );
    assert!(imported["domains"].as_array().is_some_and(|d| d.len() == 1));
    let v = c.run(
        "validate",
        &["validate", "example.com", "--nameserver", &ns, "--json"],
        &[0, 3],
    );
    assert!(v["domains"].as_array().is_some_and(|d| !d.is_empty()));
    c.run(
        "spf-check",
        &[
            "spf",
            "check",
            "--ip",
            "192.0.2.10",
            "--sender",
            "user@example.com",
            "--nameserver",
            &ns,
            "--json",
        ],
        &[0, 3],
    );
    c.run(
        "checklist",
        &[
            "checklist",
            "example.com",
            "--nameserver",
            &ns,
            "--format",
            "json",
        ],
        &[0, 3],
    );
    let eml = repo().join("tests/data/inspect/dmarc_ruf_report_linkedin.eml");
    c.run(
        "inspect",
        &[
            "inspect",
            eml.to_str().expect("utf-8"),
            "--nameserver",
            &ns,
            "--json",
        ],
        &[0, 3],
    );

    let db = ["--db", "r.db"];
    let ingest = c.run(
        "reports-ingest",
        &["reports", "ingest", "samples", db[0], db[1], "--json"],
        &[0, 1],
    );
    assert!(ingest["reports"].as_u64() > Some(0), "{ingest}");
    let list = c.run(
        "reports-list",
        &["reports", "list", db[0], db[1], "--format", "json"],
        &[0],
    );
    // One report of each kind through `show`, by the id `list` prints.
    let rows = list.as_array().expect("list");
    for kind in ["aggregate", "tls", "failure"] {
        let row = rows
            .iter()
            .find(|r| r["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind} sample"));
        let id = row["id"].as_str().expect("id");
        c.run(
            "reports-show",
            &["reports", "show", id, db[0], db[1], "--format", "json"],
            &[0],
        );
    }
    let export = c.run(
        "reports-export",
        &["reports", "export", db[0], db[1], "--format", "json"],
        &[0],
    );
    assert_eq!(export.as_array().map(Vec::len), Some(rows.len()));
    c.run(
        "reports-summary",
        &["reports", "summary", db[0], db[1], "--offline", "--json"],
        &[0],
    );
    let one = rows
        .iter()
        .find(|r| r["kind"] == "aggregate")
        .and_then(|r| r["domain"].as_str())
        .expect("a domain");
    c.run(
        "reports-summary-domain",
        &[
            "reports",
            "summary",
            db[0],
            db[1],
            "--offline",
            "--domain",
            one,
            "--json",
        ],
        &[0],
    );

    c.run(
        "reports-alerts",
        &["reports", "alerts", db[0], db[1], "--json"],
        &[0, 3],
    );
    let pruned = c.run(
        "reports-prune",
        &[
            "reports",
            "prune",
            db[0],
            db[1],
            "--older-than",
            "1h",
            "--json",
        ],
        &[0],
    );
    assert_eq!(pruned["removed"], false);
    c.run(
        "store-migrate",
        &["store", "migrate", "--store", "r.db", "--json"],
        &[0],
    );

    // `store copy` into PostgreSQL.
    if let Some(pg) = support::postgres::TestStore::postgres("schema") {
        let args = pg.cli_args();
        let (url, pw) = (
            args[1].to_str().expect("url"),
            args[3].to_str().expect("path"),
        );
        c.run(
            "store-copy",
            &[
                "store",
                "copy",
                "--from",
                "r.db",
                "--to",
                url,
                "--store-password-file",
                pw,
                "--json",
            ],
            &[0],
        );
    }

    let seen = std::mem::take(&mut c.seen);
    assert_eq!(
        seen,
        listed(&case),
        "every schema is checked against output"
    );
}

/// The subcommand paths (`reports show`) that print JSON: those taking
/// `--json`, or a `--format` with a `json` value.
fn json_commands(cmd: &clap::Command, path: &str, out: &mut BTreeSet<String>) {
    let json = cmd.get_arguments().any(|a| {
        a.get_id() == "json"
            || (a.get_id() == "format"
                && a.get_possible_values()
                    .iter()
                    .any(|v| v.get_name() == "json"))
    });
    if json {
        out.insert(path.trim().to_owned());
    }
    for sub in cmd.get_subcommands() {
        json_commands(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_command_with_json_output_has_a_schema() {
    let mut commands = BTreeSet::new();
    json_commands(&mailauth::cli::Cli::command(), "", &mut commands);
    assert!(commands.contains("plan") && commands.contains("reports show"));
    let with_schema: BTreeSet<String> = mailauth::output_schema::OUTPUTS
        .iter()
        .map(|o| {
            o.command
                .split_whitespace()
                .take_while(|w| !w.starts_with('-'))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let missing: Vec<_> = commands.difference(&with_schema).collect();
    assert!(
        missing.is_empty(),
        "JSON output without a schema: {missing:?}"
    );
    // And the binary lists what the library has.
    let case = Case::new();
    let names: BTreeSet<String> = mailauth::output_schema::OUTPUTS
        .iter()
        .map(|o| o.name.to_owned())
        .collect();
    assert_eq!(listed(&case), names);
}

#[test]
fn schema_command_prints_the_config_schema_or_an_output_schema() {
    let case = Case::new();
    let config = case.run(&["schema"]).ok();
    let v: serde_json::Value = serde_json::from_str(&config.stdout).expect("JSON");
    assert!(v["properties"]["domains"].is_object(), "the config schema");
    let plan = case.run(&["schema", "--output", "plan"]).ok();
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).expect("JSON");
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(v["properties"]["zones"].is_object(), "{v}");
    // Times are RFC 3339 strings, said so in the schema.
    let list = case.run(&["schema", "--output", "reports-list"]).ok();
    assert!(list.stdout.contains("\"format\": \"date-time\""));
    let bad = case.run(&["schema", "--output", "nope\u{1b}[2J"]).code(2);
    assert!(bad.stderr.contains("reports-list"), "{}", bad.stderr);
    assert!(!bad.stderr.contains('\u{1b}'), "no control characters");
}
