//! The core pipeline through the real binary: plan → apply → plan on zone
//! files, golden outputs, plan files, safety limits and ownership.

use crate::util;

use util::{Case, checkzone, golden};

/// The README's example (mailauth.yaml and zones/example.com.zone at the
/// top of the repository), from the copy under tests/data/example: the
/// README's main job applies to the working tree's zones, and the tests
/// must pass before and after it (`.ci/run` checks the copy matches the
/// clean clone's example).
fn example_case() -> Case {
    let repo = util::repo().join("tests/data/example");
    let case = Case::new().config(&std::fs::read_to_string(repo.join("mailauth.yaml")).unwrap());
    case.file(
        "zones/example.com.zone",
        &std::fs::read_to_string(repo.join("zones/example.com.zone")).unwrap(),
    )
}

#[test]
fn example_plan_apply_replan() {
    let case = example_case();
    let plan = case.run(&["plan"]).ok();
    golden("example/plan.txt", &plan.stdout);
    golden(
        "example/plan.md",
        &case.run(&["plan", "--format", "markdown"]).ok().stdout,
    );
    let json = case.run(&["plan", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["zones"].as_array().unwrap().len(), 2);
    case.run(&["plan", "--detailed-exitcode"]).code(2);
    golden("example/emit.zone", &case.run(&["emit"]).ok().stdout);

    let applied = case.run(&["apply", "--auto-approve"]).ok();
    assert!(
        applied
            .stdout
            .contains("Apply complete: 12 change(s) in 2 zone(s), 0 failed."),
        "{}",
        applied.stdout
    );
    golden(
        "example/example.com.zone",
        &case.read("zones/example.com.zone"),
    );
    golden(
        "example/parked.example.zone",
        &case.read("zones/parked.example.zone"),
    );
    checkzone("example.com", &case.path().join("zones/example.com.zone"));
    checkzone(
        "parked.example",
        &case.path().join("zones/parked.example.zone"),
    );

    let again = case.run(&["plan", "--detailed-exitcode"]).code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

#[test]
fn emitted_records_load_in_bind() {
    // `emit` output is pasteable: with an SOA and NS in front, BIND loads it.
    let case = example_case();
    let emit = case.run(&["emit", "-d", "example.com"]).ok().stdout;
    let zone = format!(
        "$TTL 300\nexample.com. IN SOA ns1.example.net. h.example.com. 1 3600 900 1209600 300\nexample.com. IN NS ns1.example.net.\n{emit}"
    );
    let case = case.file("emit.zone", &zone);
    checkzone("example.com", &case.path().join("emit.zone"));
}

#[test]
fn changing_the_dmarc_policy_is_exactly_one_update() {
    let case = example_case();
    case.run(&["apply", "--auto-approve"]).ok();
    let yaml = case
        .read("mailauth.yaml")
        .replace("p: quarantine", "p: reject");
    let case = case.config(&yaml);
    let json = case.run(&["plan", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let changes: Vec<&serde_json::Value> = v["zones"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|z| z["changes"].as_array().unwrap())
        .collect();
    assert_eq!(changes.len(), 1, "{json}");
    assert_eq!(changes[0]["action"], "update");
    assert_eq!(changes[0]["name"], "_dmarc.example.com");
    assert_eq!(
        changes[0]["new"]["data"][0],
        "\"v=DMARC1; p=reject; sp=reject; adkim=s; rua=mailto:dmarc-reports@example.com\""
    );
}

#[test]
fn hand_added_records_survive_apply() {
    let case = example_case();
    case.run(&["apply", "--auto-approve"]).ok();
    let mut zone = case.read("zones/example.com.zone");
    zone.push_str("; added by hand\nblog 600 IN CNAME hosting.example.net.\n_dmarc.sub 600 IN TXT \"v=DMARC1; p=none\"\n");
    let case = case.file("zones/example.com.zone", &zone);
    let yaml = case
        .read("mailauth.yaml")
        .replace("p: quarantine", "p: reject")
        .replace("all: fail", "all: softfail");
    let case = case.config(&yaml);
    case.run(&["apply", "--auto-approve"]).ok();
    let after = case.read("zones/example.com.zone");
    assert!(after.contains("; added by hand\nblog 600 IN CNAME hosting.example.net.\n_dmarc.sub 600 IN TXT \"v=DMARC1; p=none\"\n"), "{after}");
    assert!(after.contains("google-site-verification=rXOxyZounnZasA8Z7oaD3c14JdjS9aKSWvsR1EbUSIQ"));
    assert!(after.contains("~all"));
    checkzone("example.com", &case.path().join("zones/example.com.zone"));
    case.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn a_stale_plan_file_is_refused_and_changes_nothing() {
    let case = example_case();
    case.run(&["plan", "--out", "plan.json"]).ok();
    let mut zone = case.read("zones/example.com.zone");
    zone.push_str("late IN A 192.0.2.99\n");
    let case = case.file("zones/example.com.zone", &zone);
    let r = case.run(&["apply", "plan.json"]).code(1);
    assert!(
        r.stderr.contains("changed since the plan read it"),
        "{}",
        r.stderr
    );
    assert_eq!(case.read("zones/example.com.zone"), zone);
    // A fresh plan applies.
    case.run(&["plan", "--out", "plan.json"]).ok();
    case.run(&["apply", "plan.json"]).ok();
    case.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn apply_off_a_terminal_needs_auto_approve() {
    let case = example_case();
    let r = case.run(&["apply"]).code(1);
    assert!(r.stderr.contains("--auto-approve"), "{}", r.stderr);
    assert!(!case.path().join("zones/parked.example.zone").exists());
}

const FOUR: &str = "domains:\n  example.org:\n    dkim:\n      selectors:\n";

fn selectors(names: &[&str]) -> String {
    let mut y = FOUR.to_string();
    for n in names {
        y.push_str(&format!(
            "        - {{ name: {n}, cname: {n}.dkim.esp.example.net }}\n"
        ));
    }
    y
}

#[test]
fn removed_selectors_are_deleted_and_mass_deletes_need_force() {
    let case = Case::new().config(&selectors(&["a", "b", "c", "d", "e"]));
    case.run(&["apply", "--auto-approve"]).ok();
    // One removed: deleted, because the registry says mailauth made it.
    let case = case.config(&selectors(&["a", "b", "c", "d"]));
    let plan = case.run(&["plan"]).ok().stdout;
    assert!(plan.contains("- e._domainkey.example.org CNAME"), "{plan}");
    case.run(&["apply", "--auto-approve"]).ok();
    // All four removed at once: more than defaults.max_deletes (3).
    let case = case.config("domains:\n  example.org:\n    dmarc: { p: none }\n");
    let plan = case.run(&["plan"]).ok().stdout;
    assert!(plan.contains("apply needs --force"), "{plan}");
    let r = case.run(&["apply", "--auto-approve"]).code(1);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert!(case.read("zones/example.org.zone").contains("a._domainkey"));
    case.run(&["apply", "--auto-approve", "--force"]).ok();
    assert!(!case.read("zones/example.org.zone").contains("_domainkey"));
    case.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn an_undeclared_spf_record_is_a_conflict_and_is_left_alone() {
    let zone = "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1.example.net. h.example.org. 1 3600 900 1209600 300\n@ IN NS ns1.example.net.\n@ IN TXT \"v=spf1 include:elsewhere.example -all\"\n";
    let case = Case::new()
        .config("domains:\n  example.org:\n    dmarc: { p: none }\n")
        .file("zones/example.org.zone", zone);
    let plan = case.run(&["plan"]).ok().stdout;
    assert!(
        plan.contains(
            "! conflict: example.org: an SPF record is published that the config does not describe"
        ),
        "{plan}"
    );
    case.run(&["apply", "--auto-approve"]).ok();
    assert!(
        case.read("zones/example.org.zone")
            .contains("\"v=spf1 include:elsewhere.example -all\"")
    );
}

#[test]
fn two_spf_records_are_replaced_by_the_declared_one() {
    let zone = "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1.example.net. h.example.org. 1 3600 900 1209600 300\n@ IN NS ns1.example.net.\n@ IN TXT \"v=spf1 a -all\"\n@ IN TXT \"v=spf1 mx -all\"\n";
    let case = Case::new()
        .config("domains:\n  example.org:\n    spf: { mx: true }\n")
        .file("zones/example.org.zone", zone);
    let plan = case.run(&["plan"]).ok().stdout;
    assert!(plan.contains("2 SPF records are published"), "{plan}");
    case.run(&["apply", "--auto-approve"]).ok();
    let after = case.read("zones/example.org.zone");
    assert_eq!(after.matches("v=spf1").count(), 1, "{after}");
}

#[test]
fn schema_is_json_and_names_every_domain_field() {
    let case = Case::new();
    let out = case.run(&["schema"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let domain = &v["properties"]["domains"]["additionalProperties"]["properties"];
    for f in [
        "ttl", "parked", "spf", "dkim", "dmarc", "mta_sts", "tls_rpt",
    ] {
        assert!(domain.get(f).is_some(), "schema lacks {f}");
    }
}

#[test]
fn one_broken_zone_does_not_hide_the_others() {
    let case = Case::new()
        .config("domains:\n  a.example:\n    dmarc: { p: none }\n  b.example:\n    dmarc: { p: none }\n  c.example:\n    dmarc: { p: none }\n")
        .file("zones/b.example.zone", "$TTL 300\n@ IN SOA ns1 h ( 1 2 3\n");
    let r = case.run(&["plan"]).code(1);
    assert!(r.stdout.contains("# a.example"), "{}", r.stdout);
    assert!(r.stdout.contains("# c.example"), "{}", r.stdout);
    assert!(
        r.stdout.contains("b.example.zone:2: `(` is never closed"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 failed"), "{}", r.stdout);
    // apply goes on with the healthy zones and says which one failed.
    let r = case.run(&["apply", "--auto-approve"]).code(1);
    assert!(r.stderr.contains("b.example"), "{}", r.stderr);
    assert!(case.path().join("zones/a.example.zone").exists());
    assert!(case.path().join("zones/c.example.zone").exists());
    assert_eq!(
        case.read("zones/b.example.zone"),
        "$TTL 300\n@ IN SOA ns1 h ( 1 2 3\n"
    );
}

#[test]
fn a_domain_pushed_to_two_providers_is_planned_and_applied_on_each() {
    let yaml = "providers:\n  primary: { kind: zonefile, dir: primary }\n  secondary: { kind: zonefile, dir: secondary }\ndomains:\n  example.org:\n    providers: [primary, secondary]\n    dmarc: { p: none }\n  other.example:\n    dmarc: { p: none }\n";
    let case = Case::new().config(yaml);
    let plan = case.run(&["plan"]).ok().stdout;
    assert!(plan.contains("# example.org (zonefile:primary)"), "{plan}");
    assert!(
        plan.contains("# example.org (zonefile:secondary)"),
        "{plan}"
    );
    assert!(plan.contains("# other.example (zonefile:zones)"), "{plan}");
    case.run(&["apply", "--auto-approve"]).ok();
    for f in [
        "primary/example.org.zone",
        "secondary/example.org.zone",
        "zones/other.example.zone",
    ] {
        assert!(case.read(f).contains("v=DMARC1; p=none"), "{f}");
    }
    case.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn an_unknown_provider_name_is_a_config_error() {
    let case = Case::new().config("providers:\n  primary: { kind: zonefile }\ndomains:\n  example.org:\n    providers: [primry]\n");
    let r = case.run(&["plan"]).code(2);
    assert_eq!(
        r.stderr,
        "error: mailauth.yaml:5:17: domains.example.org.providers[0]: no provider named `primry`\n  hint: known providers: primary\n"
    );
}

#[test]
fn a_closed_stdout_ends_the_pipeline_commands_quietly() {
    // `mailauth schema | head -1` panicked (exit 101); `keys list` said
    // "error: Broken pipe". Every command now stops with 141 and no message.
    let case = example_case();
    let keys = Case::new().config("keys: { dir: keys }\ndomains:\n  example.com:\n    dkim:\n      selectors:\n        - { prefix: mail }\n");
    for (case, args) in [
        (&case, vec!["plan"]),
        (&case, vec!["plan", "--json"]),
        (&case, vec!["emit"]),
        (&case, vec!["schema"]),
        (&case, vec!["man"]),
        (&case, vec!["completions", "bash"]),
        (&case, vec!["plan", "--help"]),
        (&keys, vec!["keys", "list"]),
        (&keys, vec!["keys", "list", "--json"]),
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let o = util::mailauth(&args)
            .dir(case.path())
            .command()
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run mailauth");
        // clap prints --help itself and ends with 0, quietly too.
        let want = if args.contains(&"--help") { 0 } else { 141 };
        assert_eq!(
            (o.status.code(), String::from_utf8_lossy(&o.stderr).as_ref()),
            (Some(want), ""),
            "{args:?}"
        );
    }
}

/// A `MAILAUTH_NOW` that is not a time stops plan and apply with an error
/// naming it (exit 1) before anything is planned or written: never a plan
/// dated 1970.
#[test]
fn a_clock_that_is_not_a_time_is_an_error() {
    let case = Case::new().config("domains:\n  example.org:\n    dmarc: { p: none }\n");
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let r = case.run_at("not-a-time", args).code(1);
        assert!(
            r.stderr
                .starts_with("error: MAILAUTH_NOW: `not-a-time` is not a UTC timestamp"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "", "{args:?}");
    }
    assert!(!case.path().join("zones").exists());
}
