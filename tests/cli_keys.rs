//! Key rotation driven by plan/apply through the binary, against a real
//! BIND over RFC 2136: plan shows the transitions, apply takes them and
//! publishes the records, a key becomes active only once BIND serves it
//! and its TTL has passed, and the signer export follows.

mod support;
mod util;

use support::bind::Bind;
use util::Case;

const ZONE: &str =
    "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

fn config(bind: &Bind, secret_file: &str) -> String {
    format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{port}\n  key_name: {name}\n  algorithm: {alg}\n  secret_file: {secret_file}\n\
         keys:\n  dir: keys\n  authorities: [127.0.0.1:{port}]\n  export: {{ format: pem, dir: signer }}\n\
         domains:\n  example.test:\n    ttl: 300\n    dkim:\n      selectors:\n        - {{ prefix: mail, rotate_every: 30d, activate_after: 1d, retire_after: 5d, revoke_after: 1d }}\n        - {{ prefix: ed, algorithm: ed25519, rotate_every: 30d, activate_after: 1d, retire_after: 5d, revoke_after: 1d }}\n",
        port = bind.port(),
        name = bind.tsig().name,
        alg = bind.tsig().algorithm,
    )
}

fn no_key_material(s: &str) {
    assert!(
        !s.contains("PRIVATE KEY"),
        "private key material in output:\n{s}"
    );
}

#[test]
fn plan_and_apply_drive_the_key_lifecycle() {
    let Some(bind) = Bind::try_start(&[("example.test", ZONE)]) else {
        return;
    };
    let secret = bind.secret_file(bind.tsig());
    let case = Case::new().config(&config(&bind, &secret.display().to_string()));

    // Day 0: plan only announces; nothing is generated at plan time.
    let plan = case.run_at("2027-01-01T00:00:00Z", &["plan"]).ok().stdout;
    assert!(
        plan.contains("generate a new `mail` key (example.test) (at apply)"),
        "{plan}"
    );
    assert!(
        !case.path().join("keys").exists(),
        "plan must not create keys"
    );

    let r = case
        .run_at("2027-01-01T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    no_key_material(&r.stdout);
    no_key_material(&r.stderr);
    assert!(
        r.stdout
            .contains("key: publish mail-2027-01 (example.test)"),
        "{}",
        r.stdout
    );
    let served = bind.dig_short("mail-2027-01._domainkey.example.test", "TXT");
    assert!(served.contains("v=DKIM1; k=rsa; p=MIIB"), "{served}");
    assert!(
        bind.dig_short("ed-2027-01._domainkey.example.test", "TXT")
            .contains("k=ed25519")
    );
    assert!(
        !case.path().join("signer").exists(),
        "nothing signs before activation"
    );

    // An hour later: BIND serves it; confirmed, but it waits for activate_after.
    let r = case
        .run_at("2027-01-01T01:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert!(
        r.stdout.contains("key: confirm served mail-2027-01"),
        "{}",
        r.stdout
    );
    let plan = case.run_at("2027-01-01T02:00:00Z", &["plan"]).ok().stdout;
    assert!(
        plan.contains("activate mail-2027-01 (example.test): waiting for"),
        "{plan}"
    );

    // Two days later: activated and exported for the signer.
    let r = case
        .run_at("2027-01-03T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert!(
        r.stdout.contains("key: activate mail-2027-01"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("key: exported 2 signing key(s)"),
        "{}",
        r.stdout
    );
    assert!(
        case.path()
            .join("signer/example.test/mail-2027-01.pem")
            .exists()
    );
    no_key_material(&r.stdout);

    // A month later the successor is generated and published while the old
    // key keeps signing; the old record stays published.
    let r = case
        .run_at("2027-02-01T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert!(
        r.stdout.contains("key: publish mail-2027-02"),
        "{}",
        r.stdout
    );
    assert!(
        bind.dig_short("mail-2027-01._domainkey.example.test", "TXT")
            .contains("p=MIIB")
    );
    assert!(
        bind.dig_short("mail-2027-02._domainkey.example.test", "TXT")
            .contains("p=MIIB")
    );
    case.run_at("2027-02-01T01:00:00Z", &["apply", "--auto-approve"])
        .ok();
    let r = case
        .run_at("2027-02-03T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert!(
        r.stdout
            .contains("key: activate mail-2027-02 (example.test), retiring mail-2027-01"),
        "{}",
        r.stdout
    );
    // Retired, still published for retire_after, then revoked (empty p=).
    assert!(
        bind.dig_short("mail-2027-01._domainkey.example.test", "TXT")
            .contains("p=MIIB")
    );
    case.run_at("2027-02-09T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    let revoked = bind.dig_short("mail-2027-01._domainkey.example.test", "TXT");
    assert!(revoked.contains("p=\""), "{revoked}");
    // And removed after revoke_after, by the registry.
    case.run_at("2027-02-11T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert_eq!(
        bind.dig_short("mail-2027-01._domainkey.example.test", "TXT")
            .trim(),
        ""
    );
    case.run_at("2027-02-11T00:00:00Z", &["plan", "--detailed-exitcode"])
        .code(0);
}

#[test]
fn a_key_is_not_activated_when_it_cannot_be_verified() {
    let Some(bind) = Bind::try_start(&[("example.test", ZONE)]) else {
        return;
    };
    let secret = bind.secret_file(bind.tsig());
    // The observer asks a server that is not there.
    let dead = support::free_port();
    let yaml = config(&bind, &secret.display().to_string()).replace(
        &format!("authorities: [127.0.0.1:{}]", bind.port()),
        &format!("authorities: [127.0.0.1:{dead}]"),
    );
    let case = Case::new().config(&yaml);
    case.run_at("2027-01-01T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    let plan = case.run_at("2027-01-05T00:00:00Z", &["plan"]).ok().stdout;
    assert!(
        plan.contains("activate mail-2027-01 (example.test): waiting for a check that mail-2027-01._domainkey.example.test is served everywhere (it failed:"),
        "{plan}"
    );
    let r = case
        .run_at("2027-01-05T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("key: activate")),
        "{}",
        r.stdout
    );
    assert!(!case.path().join("signer").exists());
}
