//! Key rotation driven by plan/apply through the binary, against a real
//! BIND over RFC 2136: plan shows the transitions, apply takes them and
//! publishes the records, a key becomes active only once BIND serves it
//! and its TTL has passed, and the signer export follows.

use crate::support;
use crate::util;

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
        plan.contains("key: generate mail-2027-01 (example.test) (at apply)"),
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

/// Terraform's promise: the plan shows every DNS record a key step will
/// write, values only apply can know are `(known after apply)`, and
/// `apply PLAN` does exactly the plan (its key steps, then its changes
/// with those values filled in) or nothing.
#[test]
fn a_saved_plan_shows_and_applies_exactly_the_key_records() {
    let Some(bind) = Bind::try_start(&[("example.test", ZONE)]) else {
        return;
    };
    let secret = bind.secret_file(bind.tsig());
    let case = Case::new().config(&config(&bind, &secret.display().to_string()));
    const T0: &str = "2027-01-01T00:00:00Z";

    let plan = case.run_at(T0, &["plan", "--out", "plan.json"]).ok().stdout;
    assert!(
        plan.contains("+ mail-2027-01._domainkey.example.test TXT"),
        "{plan}"
    );
    assert!(
        plan.contains("\"v=DKIM1; k=rsa; p=(known after apply)\""),
        "{plan}"
    );
    assert!(
        plan.contains("\"v=DKIM1; k=ed25519; p=(known after apply)\""),
        "{plan}"
    );
    assert!(
        plan.contains("key: generate mail-2027-01 (example.test) (at apply)"),
        "{plan}"
    );
    let json: serde_json::Value = serde_json::from_str(&case.read("plan.json")).unwrap();
    let zone = &json["zones"][0];
    let steps: Vec<String> = zone["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                k["action"].as_str().unwrap(),
                k["selector"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "generate mail-2027-01",
            "publish mail-2027-01",
            "generate ed-2027-01",
            "publish ed-2027-01"
        ]
    );
    let unknown: Vec<&str> = zone["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["known_after_apply"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        unknown,
        [
            "ed-2027-01._domainkey.example.test",
            "mail-2027-01._domainkey.example.test"
        ]
    );
    assert!(!case.path().join("keys").exists(), "plan generates nothing");

    let r = case.run_at(T0, &["apply", "plan.json"]).ok();
    no_key_material(&r.stdout);
    assert!(
        r.stdout
            .contains("key: generate mail-2027-01 (example.test)"),
        "{}",
        r.stdout
    );
    assert!(
        bind.dig_short("mail-2027-01._domainkey.example.test", "TXT")
            .contains("v=DKIM1; k=rsa; p=MIIB")
    );
    // The plan's changes were the whole of it: no DNS change is left, only
    // the next key steps (BIND serves both keys now: confirm them).
    let after: serde_json::Value =
        serde_json::from_str(&case.run_at(T0, &["plan", "--json"]).ok().stdout).unwrap();
    assert_eq!(after["zones"][0]["changes"], serde_json::json!([]));
    assert_eq!(after["zones"][0]["keys"][0]["action"], "confirm");

    // Right after `keys rotate`, the plan is not empty: the new key's
    // record (its value known now) and its publish step.
    // Confirmed, then active two days later.
    case.run_at("2027-01-01T01:00:00Z", &["apply", "--auto-approve"])
        .ok();
    case.run_at("2027-01-03T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    case.run_at("2027-01-10T00:00:00Z", &["plan", "--detailed-exitcode"])
        .code(0);
    case.run_at(
        "2027-01-10T00:00:00Z",
        &["keys", "rotate", "example.test", "--prefix", "mail"],
    )
    .ok();
    let plan = case
        .run_at("2027-01-10T00:00:00Z", &["plan", "--detailed-exitcode"])
        .code(2)
        .stdout;
    assert!(
        plan.contains("+ mail-2027-01b._domainkey.example.test TXT"),
        "{plan}"
    );
    assert!(!plan.contains("known after apply"), "{plan}");

    // A plan saved before the rotation no longer describes what apply
    // would do: refused, and nothing changes, in DNS or in the keystore.
    let state_before = case.read("keys/state.json");
    case.run_at("2027-01-10T00:00:00Z", &["plan", "--out", "stale.json"])
        .ok();
    case.run_at(
        "2027-01-10T00:00:00Z",
        &["keys", "rotate", "example.test", "--prefix", "ed"],
    )
    .ok();
    let state_rotated = case.read("keys/state.json");
    assert_ne!(state_before, state_rotated);
    let r = case
        .run_at("2027-01-10T00:00:00Z", &["apply", "stale.json"])
        .code(1);
    assert!(
        r.stderr.contains("are not the plan's") && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
    assert_eq!(case.read("keys/state.json"), state_rotated);
    assert_eq!(
        bind.dig_short("mail-2027-01b._domainkey.example.test", "TXT")
            .trim(),
        ""
    );
}
