//! The CLI snapshot suite: every command that prints data, in every output
//! format it takes, run through the real binary on deterministic inputs,
//! compared with one golden file per command × format under
//! tests/golden/cli/ (`<command>.<format>`; `MAILAUTH_BLESS=1` rewrites
//! them, a mismatch leaves `<file>.actual` beside the golden file). Any
//! change to what users see shows up in review as a change to these files.
//!
//! Inputs: the README example (tests/data/example, zone files, no network),
//! the sample reports under tests/data/reports ingested into an SQLite
//! store, a keystore holding one imported Ed25519 key of a fixed seed, and
//! for the commands that read DNS (validate, checklist, spf check,
//! inspect) the tests/data/validate zones served by a local BIND
//! (tests/support; under CI=true a missing `named` fails the test).
//!
//! Normalised, because they vary from run to run and nothing else does:
//! the temporary directory the binary runs in (`<TMP>`) and BIND's
//! loopback port (`<PORT>`). The clock is fixed (`MAILAUTH_NOW`, set by
//! `Case`, and `--now` for inspect), so dates are not normalised.
//!
//! Also here: the README's exit-code table (each command's documented
//! codes, through the binary), the README's table of output formats per
//! command (checked against the command definitions), `--format` refusing
//! a format a command does not support (exit 2, naming the supported
//! ones), `--json` as the alias of `--format json` on every command, and
//! `--color`/`NO_COLOR` on the commands that colour.

use crate::support;
use crate::util;

use std::collections::BTreeMap;
use std::time::Duration;

use support::bind::Bind;
use util::{Case, Run, golden};

/// The output format's file extension in tests/golden/cli.
fn ext(format: &str) -> &str {
    match format {
        "text" => "txt",
        "markdown" => "md",
        other => other,
    }
}

/// `s` with the run's variable parts replaced (see the module comment).
fn normalise(s: &str, case: &Case, port: Option<u16>) -> String {
    let dir = case.path().to_string_lossy().into_owned();
    let mut out = s.replace(&dir, "<TMP>");
    if let Some(p) = port {
        out = out.replace(&format!(":{p}"), ":<PORT>");
    }
    out
}

/// Runs `args` plus `--format FORMAT` (none for `text`, the default, so
/// the default is what the text snapshot shows), expects `code`, and
/// compares standard output with `cli/<name>.<ext>`.
fn snap(case: &Case, port: Option<u16>, name: &str, format: &str, args: &[&str], code: i32) {
    let mut argv: Vec<&str> = args.to_vec();
    if format != "text" {
        argv.extend(["--format", format]);
    }
    let run = case.run(&argv).code(code);
    if format == "json" {
        serde_json::from_str::<serde_json::Value>(&run.stdout)
            .unwrap_or_else(|e| panic!("{name} --format json: not one JSON document: {e}"));
        // `--json` is the same output.
        let mut alias: Vec<&str> = args.to_vec();
        alias.push("--json");
        let again = case.run(&alias).code(code);
        assert_eq!(
            again.stdout, run.stdout,
            "{name}: --json differs from --format json"
        );
    }
    assert!(
        !run.stdout.contains('\u{1b}'),
        "{name} {format}: an escape sequence off a terminal:\n{}",
        run.stdout
    );
    golden(
        &format!("cli/{name}.{}", ext(format)),
        &normalise(&run.stdout, case, port),
    );
}

/// The README example (two domains kept as zone files).
fn example_case() -> Case {
    let repo = util::repo().join("tests/data/example");
    let case = Case::new().config(&std::fs::read_to_string(repo.join("mailauth.yaml")).unwrap());
    case.file(
        "zones/example.com.zone",
        &std::fs::read_to_string(repo.join("zones/example.com.zone")).unwrap(),
    )
}

#[test]
fn plan_and_import_in_every_format() {
    let case = example_case();
    for f in ["text", "json", "markdown"] {
        snap(&case, None, "plan", f, &["plan"], 0);
    }
    let import = [
        "import",
        "--dry-run",
        "--zone-file",
        "zones/example.com.zone",
        "example.com",
    ];
    for f in ["text", "json"] {
        snap(&case, None, "import", f, &import, 0);
    }
}

/// Sample reports of each kind, ingested as `reports ingest` does.
const SAMPLES: &[&str] = &[
    "aggregate/outlook.xml",
    "aggregate/nice-input.xml.gz",
    "tlsrpt/rfc8460.json",
    "forensic/dmarc_ruf_report_linkedin.eml",
];

fn reports_case() -> Case {
    let case = Case::new();
    for s in SAMPLES {
        let name = s.rsplit('/').next().unwrap();
        std::fs::copy(
            util::repo().join("tests/data/reports").join(s),
            case.path().join(name),
        )
        .unwrap();
    }
    case
}

fn sample_names() -> Vec<&'static str> {
    SAMPLES
        .iter()
        .map(|s| s.rsplit('/').next().unwrap())
        .collect()
}

#[test]
fn reports_commands_in_every_format() {
    let case = reports_case();
    // Ingest once per format, each into its own store (a second ingest
    // would count duplicates).
    for (f, db) in [("text", "r.db"), ("json", "j.db")] {
        let mut args = vec!["reports", "--db", db, "ingest"];
        args.extend(sample_names());
        if f == "text" {
            snap(&case, None, "reports-ingest", f, &args, 0);
        } else {
            // `--json` is checked against a third store.
            let mut alias = vec!["reports", "--db", "k.db", "ingest", "--json"];
            alias.extend(sample_names());
            let a = case.run(&alias).ok();
            let mut argv = args.clone();
            argv.extend(["--format", "json"]);
            let run = case.run(&argv).ok();
            assert_eq!(a.stdout, run.stdout);
            golden(
                "cli/reports-ingest.json",
                &normalise(&run.stdout, &case, None),
            );
        }
    }
    let db = ["reports", "--db", "r.db"];
    let with = |rest: &[&'static str]| -> Vec<&'static str> {
        let mut v = db.to_vec();
        v.extend(rest);
        v
    };
    for f in ["text", "json", "csv"] {
        snap(&case, None, "reports-list", f, &with(&["list"]), 0);
        snap(&case, None, "reports-show", f, &with(&["show", "1"]), 0);
    }
    for f in ["text", "json"] {
        snap(
            &case,
            None,
            "reports-show-tls",
            f,
            &with(&["show", "tls:1"]),
            0,
        );
        snap(
            &case,
            None,
            "reports-show-failure",
            f,
            &with(&["show", "failure:1"]),
            0,
        );
    }
    for f in ["json", "csv"] {
        snap(&case, None, "reports-export", f, &with(&["export"]), 0);
    }
    // The table alias of the report commands' old `--format table`.
    let table = case.run(&with(&["list", "--format", "table"])).ok();
    let text = case.run(&with(&["list"])).ok();
    assert_eq!(table.stdout, text.stdout);
    let summary = ["summary", "--offline", "--since", "2000-01-01"];
    for f in ["text", "json"] {
        snap(&case, None, "reports-summary", f, &with(&summary), 0);
    }
    let mut domain = summary.to_vec();
    domain.extend(["--domain", "example.com"]);
    for f in ["text", "json"] {
        snap(&case, None, "reports-summary-domain", f, &with(&domain), 0);
    }
    // A dry run removes nothing, so every format sees the same store.
    for f in ["text", "json"] {
        let prune = ["prune", "--older-than", "400d"];
        snap(&case, None, "reports-prune", f, &with(&prune), 0);
    }
    // Alerts fire once per store: each run gets its own copy of it. The
    // config's window reaches back to the samples' dates.
    std::fs::write(
        case.path().join("mailauth.yaml"),
        "alerts:\n  window: 1000w\ndomains: {}\n",
    )
    .expect("config");
    let mut alerts = Vec::new();
    for (i, extra) in [&[][..], &["--format", "json"], &["--json"]]
        .iter()
        .enumerate()
    {
        let db = format!("a{i}.db");
        std::fs::copy(case.path().join("r.db"), case.path().join(&db)).expect("copy store");
        let mut argv = vec!["reports", "--db", db.as_str(), "alerts"];
        argv.extend(extra.iter());
        let run = case.run(&argv).code(3);
        assert!(!run.stdout.contains('\u{1b}'), "alerts: an escape sequence");
        alerts.push(run.stdout);
    }
    assert_eq!(
        alerts[1], alerts[2],
        "alerts: --json differs from --format json"
    );
    serde_json::from_str::<serde_json::Value>(&alerts[1]).expect("alerts: one JSON document");
    golden("cli/reports-alerts.txt", &alerts[0]);
    golden("cli/reports-alerts.json", &alerts[1]);
    for f in ["text", "json"] {
        snap(
            &case,
            None,
            "store-migrate",
            f,
            &["store", "migrate", "--store", "sqlite://r.db"],
            0,
        );
    }
}

/// An Ed25519 private key (PKCS#8) whose seed is 32 bytes of 7: the same
/// public key on every run.
const FIXED_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n-----END PRIVATE KEY-----\n";

fn keys_case() -> Case {
    let case = Case::new()
        .config(
            "keys:\n  dir: keys\ndomains:\n  example.test:\n    dkim:\n      selectors:\n        - { prefix: ed, algorithm: ed25519, rotate_every: 30d, activate_after: 1d, retire_after: 5d, revoke_after: 1d }\n",
        )
        .file("ed.pem", FIXED_KEY);
    case.run(&[
        "keys",
        "import",
        "example.test",
        "--selector",
        "ed-2026-11",
        "--key",
        "ed.pem",
    ])
    .ok();
    case
}

#[test]
fn keys_commands_in_every_format() {
    let case = keys_case();
    for f in ["text", "json", "csv"] {
        snap(&case, None, "keys-list", f, &["keys", "list"], 0);
    }
    for f in ["text", "json"] {
        snap(
            &case,
            None,
            "keys-show",
            f,
            &["keys", "show", "ed-2026-11"],
            0,
        );
    }
}

/// The validate fixture zones on a local BIND (`None` without `named`,
/// unless CI=true).
fn dns() -> Option<Bind> {
    let dir = util::repo().join("tests/data/validate/zones");
    let mut zones = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".zone"))
            .unwrap()
            .to_string();
        zones.push((name, std::fs::read_to_string(&p).unwrap()));
    }
    zones.sort();
    let refs: Vec<(&str, &str)> = zones
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let bind = Bind::try_start(&refs)?;
    for (zone, _) in &zones {
        let loaded = support::wait_until(Duration::from_secs(15), || {
            !bind.dig_short(zone, "SOA").trim().is_empty()
        });
        assert!(loaded, "BIND did not load {zone}");
    }
    Some(bind)
}

fn dns_case() -> Case {
    Case::new()
        .config(
            &std::fs::read_to_string(util::repo().join("tests/data/validate/mailauth.yaml"))
                .unwrap(),
        )
        .file("pass.eml", MESSAGE)
}

/// A message from clean.test, received from an address its SPF record
/// lists (192.0.2.0/24) by a host `--trusted` names.
const MESSAGE: &str = "Return-Path: <user@clean.test>\r\nReceived: from mail.clean.test (mail.clean.test [192.0.2.10])\r\n\tby mx.receiver.test with ESMTPS id 4Xyz; Thu, 26 Nov 2026 12:00:00 +0000\r\nFrom: User <user@clean.test>\r\nTo: someone@receiver.test\r\nSubject: hello\r\nDate: Thu, 26 Nov 2026 11:59:58 +0000\r\nMessage-ID: <1@clean.test>\r\n\r\nhello\r\n";

#[test]
fn dns_commands_in_every_format() {
    let Some(bind) = dns() else { return };
    let port = bind.port();
    let ns = format!("127.0.0.1:{port}");
    let ns = ns.as_str();
    let case = dns_case();
    let p = Some(port);
    let validate = [
        "validate",
        "clean.test",
        "loop.test",
        "--nameserver",
        ns,
        "--no-propagation",
        "--no-mta-sts-policy",
        "--no-bimi-fetch",
    ];
    for f in ["text", "json", "markdown"] {
        // loop.test fails a check (an SPF include loop): findings, 3.
        snap(&case, p, "validate", f, &validate, 3);
    }
    let checklist = ["checklist", "clean.test", "--nameserver", ns];
    for f in ["text", "json", "markdown", "html"] {
        snap(&case, p, "checklist", f, &checklist, 0);
    }
    let spf = [
        "spf",
        "check",
        "--ip",
        "192.0.2.10",
        "--sender",
        "user@clean.test",
        "--nameserver",
        ns,
    ];
    for f in ["text", "json"] {
        snap(&case, p, "spf-check", f, &spf, 0);
    }
    let inspect = [
        "inspect",
        "pass.eml",
        "--trusted",
        "mx.receiver.test",
        "--now",
        "2026-11-27T12:00:00Z",
        "--nameserver",
        ns,
    ];
    for f in ["text", "json"] {
        snap(&case, p, "inspect", f, &inspect, 0);
    }
}

/// The README's exit-code table, command by command: 0 success, 1 error,
/// 2 usage or config error (and `plan --detailed-exitcode`'s changes), 3
/// findings.
#[test]
fn every_command_exits_as_the_readme_documents() {
    let example = example_case();
    let check = |case: &Case, args: &[&str], code: i32| -> Run {
        let run = case.run(args);
        assert_eq!(
            run.code,
            code,
            "mailauth {}: exit {} (documented: {code})\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    };
    // plan: 0, --detailed-exitcode 2 with changes, 1 on a zone that
    // cannot be planned, 2 on an invalid config or a usage error.
    check(&example, &["plan"], 0);
    check(&example, &["plan", "--detailed-exitcode"], 2);
    check(&example, &["plan", "--format", "csv"], 2);
    check(&example, &["plan", "--no-such-flag"], 2);
    let bad = Case::new().config("domains:\n  example.com:\n    dmarc: { p: maybe }\n");
    check(&bad, &["plan"], 2);
    check(&bad, &["emit"], 2);
    let broken = example_case().file("zones/parked.example.zone", "this is not a zone\n");
    check(&broken, &["plan"], 1);
    check(&broken, &["plan", "--detailed-exitcode"], 1);
    // emit, schema, completions, man: 0; an unknown command: 2.
    check(&example, &["emit"], 0);
    check(&example, &["schema"], 0);
    check(&example, &["completions", "bash"], 0);
    check(&example, &["man"], 0);
    check(&example, &["no-such-command"], 2);
    // import: 0, 1 for a zone file that cannot be read, 2 for a usage
    // error.
    let import =
        |file: &'static str| vec!["import", "--dry-run", "--zone-file", file, "example.com"];
    check(&example, &import("zones/example.com.zone"), 0);
    check(&example, &import("zones/missing.zone"), 1);
    check(
        &example,
        &["import", "--dry-run", "--format", "csv", "example.com"],
        2,
    );
    // apply: 1 for a plan file that is not one, 0 when applied.
    let junk = example_case().file("plan.json", "{}");
    check(&junk, &["apply", "plan.json", "--auto-approve"], 1);
    // reports: 1 on a missing store (never created) or an unknown report,
    // 2 for a usage error.
    let reports = reports_case();
    check(&reports, &["reports", "--db", "typo.db", "list"], 1);
    assert!(!reports.path().join("typo.db").exists());
    let mut ingest = vec!["reports", "--db", "r.db", "ingest"];
    ingest.extend(sample_names());
    check(&reports, &ingest, 0);
    // An invalid item: 1, the others are stored.
    let bad = reports_case().file("bad.xml", "<feedback>not a report");
    check(
        &bad,
        &[
            "reports",
            "--db",
            "b.db",
            "ingest",
            "bad.xml",
            "outlook.xml",
        ],
        1,
    );
    check(&reports, &["reports", "--db", "r.db", "show", "99"], 1);
    // A report id that is not one is a bad argument: 2.
    check(&reports, &["reports", "--db", "r.db", "show", "abc"], 2);
    check(&reports, &["reports", "--db", "r.db", "delete", "tls:x"], 2);
    let csv = check(
        &reports,
        &[
            "reports", "--db", "r.db", "show", "tls:1", "--format", "csv",
        ],
        2,
    );
    assert!(csv.stdout.is_empty() && csv.stderr.contains("--format table or json"));
    check(&reports, &["reports", "--db", "r.db", "list"], 0);
    check(
        &reports,
        &["reports", "--db", "r.db", "list", "--format", "markdown"],
        2,
    );
    check(
        &reports,
        &["reports", "--db", "r.db", "export", "--format", "text"],
        2,
    );
    // store: migrate 0; copy anywhere but SQLite -> PostgreSQL is a bad
    // argument, 2 (nothing is opened).
    check(
        &reports,
        &["store", "migrate", "--store", "sqlite://r.db"],
        0,
    );
    check(
        &reports,
        &["store", "copy", "--from", "r.db", "--to", "s.db"],
        2,
    );
    assert!(!reports.path().join("s.db").exists());
    // keys: 2 without a `keys:` block, 1 on an unknown selector.
    check(&example, &["keys", "list"], 2);
    let keys = keys_case();
    check(&keys, &["keys", "list"], 0);
    check(&keys, &["keys", "show", "nope"], 1);
    check(&keys, &["keys", "list", "--format", "markdown"], 2);
    // inspect: 1 for a message that cannot be read.
    check(&example, &["inspect", "missing.eml"], 1);
    // checklist: 2 for a name that is not a domain.
    check(&example, &["checklist", "not a domain"], 2);
    // validate: 2 for a usage error.
    check(&example, &["validate", "--format", "csv"], 2);

    // With DNS: validate 0 clean, 3 findings; spf check 0 pass, 3 other;
    // inspect 0 DMARC pass, 3 not; checklist 0.
    let Some(bind) = dns() else { return };
    let ns = format!("127.0.0.1:{}", bind.port());
    let ns = ns.as_str();
    let case = dns_case();
    let v = |d: &'static str| {
        vec![
            "validate",
            d,
            "--nameserver",
            ns,
            "--no-propagation",
            "--no-mta-sts-policy",
            "--no-bimi-fetch",
        ]
    };
    check(&case, &v("clean.test"), 0);
    check(&case, &v("loop.test"), 3);
    let spf = |ip: &'static str| {
        vec![
            "spf",
            "check",
            "--ip",
            ip,
            "--sender",
            "user@clean.test",
            "--nameserver",
            ns,
        ]
    };
    check(&case, &spf("192.0.2.10"), 0);
    check(&case, &spf("203.0.113.7"), 3);
    let inspect = |ip: Option<&'static str>| {
        let mut a = vec![
            "inspect",
            "pass.eml",
            "--trusted",
            "mx.receiver.test",
            "--now",
            "2026-11-27T12:00:00Z",
            "--nameserver",
            ns,
        ];
        if let Some(ip) = ip {
            a.extend(["--ip", ip]);
        }
        a
    };
    check(&case, &inspect(None), 0);
    check(&case, &inspect(Some("203.0.113.7")), 3);
    check(&case, &["checklist", "clean.test", "--nameserver", ns], 0);
}

/// A bad argument to `import`, `validate`, `spf check`, `keys` or
/// `inspect` is a usage error, 2, like a bad argument to any other
/// command: found before anything is read, queried or written, and told
/// in one line naming the flag.
#[test]
fn a_bad_argument_to_the_checking_and_keys_commands_exits_2() {
    let usage = |case: &Case, args: &[&str], message: &str| {
        let run = case.run(args).code(2);
        assert_eq!(
            run.stderr,
            format!("error: {message}\n"),
            "mailauth {}",
            args.join(" ")
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    };
    let example = example_case();
    let config = example.read("mailauth.yaml");
    usage(
        &example,
        &[
            "import",
            "--zone-file",
            "zones/example.com.zone",
            "example.com",
            "example.org",
        ],
        "--zone-file reads one zone: name exactly one domain",
    );
    usage(
        &example,
        &["import", "--timeout", "0", "new.example"],
        "--timeout must be a positive number of seconds",
    );
    usage(
        &example,
        &["import", "--provider=nope", "new.example"],
        "mailauth.yaml: no provider named `nope` under `providers:`",
    );
    assert_eq!(example.read("mailauth.yaml"), config, "import wrote");
    usage(
        &example,
        &["validate", "example.com", "--selector", "bad..selector"],
        r#"--selector "bad..selector": not a valid selector (DNS labels)"#,
    );
    usage(
        &example,
        &["validate", "bad name!"],
        "name `bad name!` contains whitespace or quotes",
    );
    usage(
        &example,
        &["validate", "a..b.example"],
        "name `a..b.example` has an empty label",
    );
    usage(
        &example,
        &["validate", "example.com", "--nameserver", "not-an-ip"],
        "`--nameserver not-an-ip`: expected IP or IP:PORT",
    );
    usage(
        &example,
        &[
            "validate",
            "new.example",
            "--nameserver",
            "127.0.0.1:9",
            "--policy-timeout=0",
        ],
        "--policy-timeout must be a positive number of seconds",
    );
    usage(
        &example,
        &[
            "spf",
            "check",
            "--ip",
            "192.0.2.1",
            "--nameserver",
            "not-an-ip",
        ],
        "`--nameserver not-an-ip`: expected IP or IP:PORT",
    );
    usage(
        &example,
        &["inspect", "missing.eml", "--now", "soon"],
        "--now `soon`: expected RFC 3339 UTC or unix seconds",
    );
    let keys = keys_case();
    let state = keys.read("keys/state.json");
    usage(
        &keys,
        &["keys", "generate", "example.test", "--prefix", "nope"],
        "domain example.test has no dkim selector family `nope` in the config",
    );
    usage(
        &keys,
        &["keys", "rotate", "other.test"],
        "domain other.test has no dkim selector families in the config",
    );
    usage(&keys, &["keys", "export"], "keys.export is not configured");
    assert_eq!(keys.read("keys/state.json"), state, "keys wrote");
    // What is not an argument stays 1: a key file that cannot be read.
    let run = keys
        .run(&[
            "keys",
            "import",
            "example.test",
            "--selector",
            "old",
            "--key",
            "missing.pem",
        ])
        .code(1);
    assert!(
        run.stderr.starts_with("error: reading missing.pem: "),
        "{}",
        run.stderr
    );
}

/// The `--format` values of every command, from the command definitions:
/// `mailauth reports list` → ["text", "json", "csv"].
fn formats() -> BTreeMap<String, Vec<String>> {
    use clap::CommandFactory;
    /// `parent` is the path of the parent command (`None` for the root).
    fn walk(cmd: &clap::Command, parent: Option<&str>, out: &mut BTreeMap<String, Vec<String>>) {
        let path = match parent {
            None => String::new(),
            Some("") => cmd.get_name().to_string(),
            Some(p) => format!("{p} {}", cmd.get_name()),
        };
        if let Some(a) = cmd.get_arguments().find(|a| a.get_id() == "format") {
            let values = a
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            out.insert(path.clone(), values);
        }
        for sub in cmd.get_subcommands() {
            walk(sub, Some(&path), out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&mailauth::cli::Cli::command(), None, &mut out);
    out
}

/// Commands whose `--format` is not an output format of data: `emit`
/// writes the config of another tool (zone, octodns, dnscontrol,
/// terraform).
const NOT_DATA: &[&str] = &["emit"];

#[test]
fn the_readme_lists_the_formats_of_every_command() {
    let readme = std::fs::read_to_string(util::repo().join("README.md")).unwrap();
    let start = readme
        .find("## Output formats")
        .expect("README: an `## Output formats` section");
    let mut documented = BTreeMap::new();
    for line in readme[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        // | `reports list` | text (default), json, csv | …
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 3 || !cells[1].starts_with('`') {
            continue;
        }
        let cmd = cells[1].trim_matches('`').to_string();
        let values: Vec<String> = cells[2]
            .split(',')
            .map(|v| v.replace("(default)", "").trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        documented.insert(cmd, values);
    }
    let mut actual = formats();
    for c in NOT_DATA {
        actual.remove(*c);
    }
    assert_eq!(
        documented, actual,
        "README `## Output formats` and the command definitions differ"
    );
    // Every data command takes --json as the alias of --format json.
    use clap::CommandFactory;
    let root = mailauth::cli::Cli::command();
    for (path, values) in &actual {
        let mut cmd = &root;
        for part in path.split(' ') {
            cmd = cmd.find_subcommand(part).unwrap();
        }
        assert!(values.contains(&"json".to_string()), "{path}: no json");
        assert!(
            cmd.get_arguments().any(|a| a.get_id() == "json"),
            "{path}: --format but no --json"
        );
    }
}

/// A format a command does not take is a usage error (2) naming the flag
/// and the formats it does take; nothing runs (no store, no config is
/// needed to find out).
#[test]
fn an_unsupported_format_is_a_usage_error_listing_the_supported_ones() {
    let case = Case::new();
    let all = ["text", "json", "csv", "markdown", "html"];
    let mut formats = formats();
    for c in NOT_DATA {
        formats.remove(*c);
    }
    // Commands with a required argument get one, so that only --format is
    // wrong.
    let required: BTreeMap<&str, &[&str]> = [
        ("reports show", &["1"][..]),
        ("keys show", &["sel"][..]),
        ("checklist", &["example.com"][..]),
        ("inspect", &["m.eml"][..]),
        ("spf check", &["--ip", "192.0.2.1"][..]),
        (
            "store copy",
            &["--from", "a.db", "--to", "postgres://u@h/db"][..],
        ),
    ]
    .into_iter()
    .collect();
    let mut checked = 0;
    for (path, values) in &formats {
        let Some(bad) = all.iter().find(|f| !values.iter().any(|v| v == *f)) else {
            continue;
        };
        let mut args: Vec<&str> = path.split(' ').collect();
        args.extend(required.get(path.as_str()).copied().unwrap_or_default());
        args.extend(["--format", bad]);
        let run = case.run(&args).code(2);
        assert!(
            run.stderr.contains("--format") && run.stderr.contains(&values.join(", ")),
            "mailauth {}: {}",
            args.join(" "),
            run.stderr
        );
        checked += 1;
    }
    assert!(checked >= 12, "{checked} commands checked");
    assert!(
        std::fs::read_dir(case.path()).unwrap().next().is_none(),
        "a usage error wrote something"
    );
}

/// `--color always` colours the text of the commands that colour (plan,
/// apply, validate), `--color never` and `NO_COLOR` (with the default
/// `auto`) do not, and no data format is ever coloured.
#[test]
fn color_is_honoured_by_every_command_that_colours() {
    let esc = |r: &Run| r.stdout.contains('\u{1b}');
    let case = example_case();
    let always = case.run(&["--color", "always", "plan"]).ok();
    assert!(esc(&always), "plan --color always: no colour");
    assert!(!esc(&case.run(&["--color", "never", "plan"]).ok()));
    assert!(!esc(&case.run(&["plan"]).ok()));
    for f in ["json", "markdown"] {
        assert!(!esc(&case
            .run(&["--color", "always", "plan", "--format", f])
            .ok()));
    }
    // The flag is global: after the subcommand too.
    assert!(esc(&case.run(&["plan", "--color", "always"]).ok()));
    let applied = case
        .run(&["apply", "--auto-approve", "--color", "always"])
        .ok();
    assert!(esc(&applied), "apply --color always: no colour");
    let again = example_case();
    assert!(
        !esc(&again
            .run(&["apply", "--auto-approve", "--color", "never"])
            .ok()),
        "apply --color never coloured"
    );

    let Some(bind) = dns() else { return };
    let ns = format!("127.0.0.1:{}", bind.port());
    let case = dns_case();
    let v = |color: &'static str, format: &'static str| {
        case.run(&[
            "--color",
            color,
            "validate",
            "clean.test",
            "--nameserver",
            &ns,
            "--no-propagation",
            "--no-mta-sts-policy",
            "--no-bimi-fetch",
            "--format",
            format,
        ])
        .ok()
    };
    assert!(
        esc(&v("always", "text")),
        "validate --color always: no colour"
    );
    assert!(!esc(&v("never", "text")));
    assert!(!esc(&v("auto", "text")));
    assert!(!esc(&v("always", "json")));
    assert!(!esc(&v("always", "markdown")));
}
