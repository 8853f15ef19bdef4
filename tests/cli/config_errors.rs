//! Malformed configs: each gives a located message (file:line:column, the
//! field path, a hint where one helps), exit code 2, and writes nothing.

use crate::util;

use util::Case;

#[track_caller]
fn rejects(yaml: &str, expected: &str) {
    let case = Case::new().config(yaml);
    let r = case.run(&["plan"]).code(2);
    assert_eq!(r.stderr, expected, "config:\n{yaml}");
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // Nothing was written, by plan or by an apply attempt.
    case.run(&["apply", "--auto-approve"]).code(2);
    assert!(!case.path().join("zones").exists());
}

#[test]
fn unknown_field_with_a_suggestion() {
    rejects(
        "domains:\n  example.com:\n    dmarc:\n      p: none\n      polcy: reject\n",
        "error: mailauth.yaml:5:7: domains.example.com.dmarc.polcy: unknown field `polcy`, expected one of p, policy, sp, np, t, adkim, aspf, rua, ruf, fo, psd\n  hint: did you mean `policy`?\n",
    );
}

#[test]
fn unknown_top_level_field() {
    rejects(
        "domain:\n  example.com: {}\n",
        "error: mailauth.yaml:1:1: domain: unknown field `domain`, expected one of provider, providers, defaults, keys, store, alerts, domains\n  hint: did you mean `domains`?\n",
    );
}

#[test]
fn misspelt_policy() {
    rejects(
        "domains:\n  example.com:\n    dmarc:\n      p: rejet\n",
        "error: mailauth.yaml:4:10: domains.example.com.dmarc.p: unknown variant `rejet`, expected one of none, quarantine, reject\n  hint: did you mean `reject`?\n",
    );
}

#[test]
fn invalid_cidr() {
    rejects(
        "domains:\n  example.com:\n    spf:\n      ip4: [192.0.2.0/24, 192.0.2.0/33]\n",
        "error: mailauth.yaml:4:27: domains.example.com.spf.ip4[1]: `192.0.2.0/33` is not an IPv4 address or CIDR network\n  hint: write e.g. 192.0.2.0/24 or 192.0.2.10\n",
    );
}

#[test]
fn rua_is_not_mailto() {
    rejects(
        "domains:\n  example.com:\n    dmarc:\n      p: none\n      rua: [dmarc@example.com]\n",
        "error: mailauth.yaml:5:13: domains.example.com.dmarc.rua[0]: `dmarc@example.com` is not a mailto: URI\n  hint: write mailto:dmarc-reports@example.com\n",
    );
}

#[test]
fn duplicate_domain_key() {
    rejects(
        "domains:\n  example.com: {}\n  example.com: {}\n",
        "error: mailauth.yaml:3:3: domains.example.com: duplicate mapping key: example.com\n",
    );
}

#[test]
fn duplicate_domain_by_case_and_dot() {
    rejects(
        "domains:\n  Example.com: {}\n  example.com.: {}\n",
        "error: mailauth.yaml:3:3: domains.example.com.: domain `example.com` is declared twice (first at line 2)\n  hint: names are case-insensitive and a trailing dot does not matter\n",
    );
}

#[test]
fn selector_declared_twice() {
    rejects(
        "domains:\n  example.com:\n    dkim:\n      selectors:\n        - { name: s1, cname: a.example.net }\n        - { name: s1, cname: b.example.net }\n",
        "error: mailauth.yaml:6:19: domains.example.com.dkim.selectors[1]: selector `s1` is declared twice (first at line 5)\n",
    );
}

#[test]
fn spf_over_ten_lookups_by_itself() {
    rejects(
        "domains:\n  example.com:\n    spf:\n      include: [a.example, b.example, c.example, d.example, e.example, f.example, g.example, h.example, i.example, j.example]\n      mx: true\n",
        "error: mailauth.yaml:2:3: domains.example.com.spf: this SPF record needs 11 DNS lookups by itself; RFC 7208 §4.6.4 allows 10\n  hint: replace includes by ip4/ip6 networks, or split senders across subdomains\n",
    );
}

#[test]
fn wrong_type() {
    rejects(
        "domains:\n  example.com:\n    ttl: soon\n",
        "error: mailauth.yaml:3:10: domains.example.com.ttl: invalid u32\n",
    );
}

#[test]
fn selector_without_a_kind() {
    rejects(
        "domains:\n  example.com:\n    dkim:\n      selectors:\n        - { name: s1 }\n",
        "error: mailauth.yaml:5:19: domains.example.com.dkim.selectors[0]: a selector needs exactly one of `public_key`, `cname` or `prefix`\n  hint: public_key: a key managed elsewhere; cname: delegated to an ESP; prefix: keys mailauth generates and rotates\n",
    );
}

#[test]
fn several_problems_are_all_reported_in_file_order() {
    rejects(
        "domains:\n  example.com:\n    mta_sts: { id: \"2026-11-27\", mode: enforcing }\n    parked: true\n    spf: { mx: true }\n",
        "error: mailauth.yaml:2:3: domains.example.com: a parked domain publishes its own SPF, DKIM and DMARC records; remove spf/dkim/dmarc or `parked: true`\n\
         error: mailauth.yaml:3:20: domains.example.com.mta_sts.id: `2026-11-27` is not 1 to 32 letters and digits (RFC 8461 §3.1)\n  hint: leave `id` out: mailauth derives it from the policy\n\
         error: mailauth.yaml:3:40: domains.example.com.mta_sts.mode: `enforcing` is not enforce, testing or none\n  hint: RFC 8461 §3.2: mode is enforce, testing or none\n",
    );
}

#[test]
fn yaml_syntax_error() {
    rejects(
        "domains:\n  example.com:\n    dmarc: [\n",
        "error: mailauth.yaml:3:12: domains.example.com.dmarc: expected mapping start\n",
    );
}

#[test]
fn missing_config_file() {
    let case = Case::new();
    let r = case.run(&["plan"]).code(2);
    assert!(
        r.stderr
            .starts_with("error: mailauth.yaml: cannot read the config:"),
        "{}",
        r.stderr
    );
}

const PASSWORD_IN_URL: &str = "store: the store URL holds a password; a config file is no place for it\n  hint: remove it from the URL and name a file holding it with `password_file:`, or set MAILAUTH_STORE_PASSWORD\n";

/// The report store's password never lives in the config: a URL holding
/// one is refused where it is written, by `plan` and by every command that
/// reads the store from the config, and the password is not echoed.
#[test]
fn store_url_with_a_password() {
    let yaml =
        "store: postgres://mailauth:hunter2@db.example:5432/dmarc\ndomains:\n  example.com: {}\n";
    rejects(
        yaml,
        &format!("error: mailauth.yaml:1:8: {PASSWORD_IN_URL}"),
    );
    let case = Case::new()
        .config(yaml)
        .env("MAILAUTH_STORE", "")
        .env("MAILAUTH_DB", "");
    for args in [
        &["reports", "list"][..],
        &["reports", "summary", "--offline"][..],
        &["store", "migrate"][..],
        &["serve", "--offline", "--listen", "127.0.0.1:0"][..],
        &["checklist", "example.com", "--nameserver", "127.0.0.1:9"][..],
    ] {
        let r = case.run(args).code(2);
        assert!(
            r.stderr
                .contains(&format!("mailauth.yaml:1:8: {PASSWORD_IN_URL}")),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("hunter2"), "{args:?}: {}", r.stderr);
    }
    assert!(!case.path().join("mailauth.db").exists());
}

#[test]
fn store_table_with_a_password_in_the_query() {
    rejects(
        "store:\n  url: postgresql://mailauth@db/dmarc?sslmode=disable&password=hunter2\n  password_file: pg.pw\ndomains:\n  example.com: {}\n",
        &format!(
            "error: mailauth.yaml:2:3: {}",
            PASSWORD_IN_URL.replacen("store:", "store.url:", 1)
        ),
    );
}

#[test]
fn store_with_an_unknown_scheme_or_a_useless_password_file() {
    rejects(
        "store: mysql://mailauth@db/dmarc\ndomains:\n  example.com: {}\n",
        "error: mailauth.yaml:1:8: store: unsupported store URL\n  hint: use sqlite://PATH, a file path, or postgres://USER@HOST:PORT/DB\n",
    );
    rejects(
        "store:\n  url: sqlite://reports.db\n  password_file: pg.pw\ndomains:\n  example.com: {}\n",
        "error: mailauth.yaml:2:3: store.password_file: password_file is for a postgres:// store; an SQLite store has no password\n",
    );
}

/// One row of the constraints table in docs/config.md.
struct Constraint {
    field: String,
    example: String,
    warning: bool,
    message: String,
}

fn unticked(cell: &str) -> String {
    cell.trim().trim_matches('`').to_string()
}

/// Reads the constraints table of docs/config.md: the rows the docs
/// promise are exactly the rows tested.
fn constraints() -> Vec<Constraint> {
    let docs = std::fs::read_to_string(util::repo().join("docs/config.md")).unwrap();
    let section = docs
        .split("## Constraints")
        .nth(1)
        .expect("docs/config.md has a Constraints section");
    let rows: Vec<Constraint> = section
        .lines()
        .skip_while(|l| !l.starts_with("| field |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 5, "row: {l}");
            Constraint {
                field: unticked(cells[0]),
                example: unticked(cells[2]),
                warning: match cells[3].trim() {
                    "warning" => true,
                    "error" => false,
                    other => panic!("kind {other:?} in row {l}"),
                },
                message: unticked(cells[4]),
            }
        })
        .collect();
    assert!(rows.len() >= 30, "{} rows", rows.len());
    rows
}

#[test]
fn every_documented_constraint_is_enforced_at_its_field() {
    for c in constraints() {
        let yaml = format!(
            "keys: {{ dir: keys }}\ndomains:\n  example.com: {}\n",
            c.example
        );
        let field = match c.field.as_str() {
            "—" => "domains.example.com".to_string(),
            f => format!("domains.example.com.{f}"),
        };
        let case = Case::new().config(&yaml);
        let r = case.run(&["emit"]);
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains(&format!(": {field}: ")))
            .unwrap_or_else(|| panic!("no problem at {field} for {}:\n{}", c.example, r.stderr));
        assert!(line.contains(&c.message), "{}: {line}", c.example);
        if c.warning {
            assert!(line.starts_with("warning: mailauth.yaml:3:"), "{line}");
            assert_eq!(r.code, 0, "{}: {}", c.example, r.stderr);
        } else {
            assert!(line.starts_with("error: mailauth.yaml:3:"), "{line}");
            assert_eq!(r.code, 2, "{}: {}", c.example, r.stderr);
            assert!(r.stdout.is_empty(), "{}", r.stdout);
        }
    }
}

#[test]
fn a_family_with_bad_durations_is_refused_not_dropped() {
    // The family used to vanish from the plan (no key ever generated) with
    // exit 0; every bad duration is now reported at its own line.
    rejects(
        "keys: { dir: keys }\ndomains:\n  example.com:\n    dkim:\n      selectors:\n        - prefix: mail\n          rotate_every: banana\n          activate_after: 2 days\n",
        "error: mailauth.yaml:7:25: domains.example.com.dkim.selectors[0].rotate_every: `banana` is not a duration like 180d, 4d, 12h, 30m, 45s or 2w: unknown unit `b`\n  hint: durations are <number><unit>, units w, d, h, m, s: 180d, 1d12h\nerror: mailauth.yaml:8:27: domains.example.com.dkim.selectors[0].activate_after: `2 days` is not a duration like 180d, 4d, 12h, 30m, 45s or 2w: unknown unit ` `\n  hint: durations are <number><unit>, units w, d, h, m, s: 180d, 1d12h\n",
    );
}
