//! Signers load what `mailauth keys export` writes (issue 19): real Postfix
//! on loopback with the real OpenDKIM milter, configured only from the
//! exported KeyTable/SigningTable, signs mail that reaches an SMTP sink; the
//! signature verifies against the record mailauth published in a real BIND,
//! checked by the independent `mail-auth` verifier and by
//! `opendkim-testkey`, before and after a rotation driven by `mailauth
//! apply` under a fake clock (`MAILAUTH_NOW`); a message signed with the
//! retired key keeps verifying until `retire_after`, and stops once the key
//! is revoked. The same with rspamd's `dkim_signing` module loading the
//! rspamd export, as Postfix's milter (and through its HTTP `/checkv2`).

use crate::keys_support;
use crate::support;
use crate::util;

use keys_support::verify;
use mail_auth::DkimResult;
use support::bind::Bind;
use support::opendkim::{Opendkim, testkey};
use support::postfix::{Postfix, Sink};
use support::rspamd::Rspamd;
use util::Case;

const ZONE: &str =
    "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

fn config(bind: &Bind, export: &std::path::Path, format: &str, hook: &str) -> String {
    format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{port}\n  key_name: {name}\n  algorithm: {alg}\n  secret_file: {secret}\n\
         keys:\n  dir: keys\n  authorities: [127.0.0.1:{port}]\n  export: {{ format: {format}, dir: {export}{hook} }}\n\
         domains:\n  example.test:\n    ttl: 300\n    dkim:\n      selectors:\n        - {{ prefix: mail, rotate_every: 30d, activate_after: 1d, retire_after: 5d, revoke_after: 1d }}\n",
        port = bind.port(),
        name = bind.tsig().name,
        alg = bind.tsig().algorithm,
        secret = bind.secret_file(bind.tsig()).display(),
        export = export.display(),
    )
}

fn message(n: u32) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: bob@example.org\r\nSubject: signed by the milter {n}\r\n\
         Date: Mon, 1 Feb 2027 00:00:0{n} +0000\r\nMessage-ID: <{n}@example.test>\r\n\r\nHello {n}.\r\n"
    )
}

/// The `s=` tag of the message's DKIM-Signature.
fn selector(signed: &str) -> String {
    let sig = signed
        .split("DKIM-Signature:")
        .nth(1)
        .unwrap_or_else(|| panic!("no DKIM-Signature in:\n{signed}"));
    let unfolded: String = sig
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("");
    unfolded
        .split(';')
        .find_map(|t| t.trim().strip_prefix("s="))
        .unwrap_or_else(|| panic!("no s= in {unfolded}"))
        .trim()
        .to_string()
}

#[test]
fn opendkim_behind_postfix_signs_with_exported_keys_across_a_rotation() {
    let Some(bind) = Bind::try_start(&[("example.test", ZONE)]) else {
        return;
    };
    let Some(python) = support::octodns::python_with("aiosmtpd") else {
        return;
    };
    if support::require_binary("opendkim").is_none()
        || support::require_binary("opendkim-testkey").is_none()
        || support::require_binary("postfix").is_none()
    {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("signer");
    let case = Case::new().config(&config(&bind, &export, "opendkim", ""));

    // Generate, publish, confirm served, activate (which exports).
    for t in [
        "2027-01-01T00:00:00Z",
        "2027-01-01T01:00:00Z",
        "2027-01-03T00:00:00Z",
    ] {
        case.run_at(t, &["apply", "--auto-approve"]).ok();
    }
    let r = case
        .run_at("2027-01-03T00:00:00Z", &["keys", "export"])
        .ok();
    assert!(
        r.stdout.contains("exported mail-2027-01 (example.test)"),
        "{}",
        r.stdout
    );
    let key_table = std::fs::read_to_string(export.join("KeyTable")).unwrap();
    assert!(
        key_table.contains("example.test:mail-2027-01:"),
        "{key_table}"
    );

    // The bridges carry the key records too.
    let yaml = case
        .run_at("2027-01-03T00:00:00Z", &["emit", "--format", "octodns"])
        .ok()
        .stdout;
    assert!(yaml.contains("\"mail-2027-01._domainkey\":"), "{yaml}");

    let sink = Sink::start(&python, &work.path().join("sink"));
    let milter = Opendkim::try_start(&export).unwrap();
    let postfix = Postfix::try_start(sink.port, milter.port).unwrap();

    postfix.send("alice@example.test", "bob@example.org", &message(1));
    let first = sink.message(0);
    assert_eq!(selector(&first), "mail-2027-01", "{first}");
    assert_eq!(verify(bind.port(), &first), DkimResult::Pass, "{first}");
    // A copy: the keystore destroys a private key once it is revoked.
    let old_key = work.path().join("mail-2027-01.pem");
    std::fs::copy(
        case.path().join("keys/example.test/mail-2027-01.pem"),
        &old_key,
    )
    .unwrap();
    let (code, out) = testkey(bind.port(), "example.test", "mail-2027-01", &old_key);
    assert_eq!(code, 0, "opendkim-testkey mail-2027-01:\n{out}");

    // A month later: successor generated, published, confirmed, activated;
    // the export now names only it, and the reloaded milter signs with it.
    for t in ["2027-02-01T00:00:00Z", "2027-02-01T01:00:00Z"] {
        case.run_at(t, &["apply", "--auto-approve"]).ok();
    }
    let r = case
        .run_at("2027-02-03T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert!(
        r.stdout
            .contains("key: activate mail-2027-02 (example.test), retiring mail-2027-01"),
        "{}",
        r.stdout
    );
    let key_table = std::fs::read_to_string(export.join("KeyTable")).unwrap();
    assert!(
        key_table.contains("example.test:mail-2027-02:"),
        "{key_table}"
    );
    assert!(!key_table.contains("mail-2027-01"), "{key_table}");
    let milter = milter.restart(&export);
    drop(postfix);
    let postfix = Postfix::try_start(sink.port, milter.port).unwrap();
    postfix.send("alice@example.test", "bob@example.org", &message(2));
    let second = sink.message(1);
    assert_eq!(selector(&second), "mail-2027-02", "{second}");
    assert_eq!(verify(bind.port(), &second), DkimResult::Pass, "{second}");
    let new_key = case.path().join("keys/example.test/mail-2027-02.pem");
    let (code, out) = testkey(bind.port(), "example.test", "mail-2027-02", &new_key);
    assert_eq!(code, 0, "opendkim-testkey mail-2027-02:\n{out}");

    // The message signed with the retired key still verifies until
    // retire_after (5 days after it stopped signing)...
    assert_eq!(
        verify(bind.port(), &first),
        DkimResult::Pass,
        "retired key, day 0"
    );
    case.run_at("2027-02-07T23:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert_eq!(
        verify(bind.port(), &first),
        DkimResult::Pass,
        "retired key, day 4"
    );
    let (code, out) = testkey(bind.port(), "example.test", "mail-2027-01", &old_key);
    assert_eq!(code, 0, "opendkim-testkey retired mail-2027-01:\n{out}");
    // ...and not after: the record is revoked (empty p=).
    case.run_at("2027-02-09T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert_ne!(
        verify(bind.port(), &first),
        DkimResult::Pass,
        "revoked key still verifies"
    );
    let (code, out) = testkey(bind.port(), "example.test", "mail-2027-01", &old_key);
    assert_eq!(code, 69, "opendkim-testkey revoked mail-2027-01:\n{out}");
    assert_eq!(verify(bind.port(), &second), DkimResult::Pass, "{second}");
}

#[test]
fn rspamd_dkim_signing_signs_with_exported_keys_across_a_rotation() {
    let Some(bind) = Bind::try_start(&[("example.test", ZONE)]) else {
        return;
    };
    if support::require_binary("rspamd").is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // rspamd's workers run as _rspamd: the export must be reachable, and
    // the export hook hands the key files to that user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let export = work.path().join("signer");
    let hook = format!(
        ", hook: [chown, -R, \"_rspamd:_rspamd\", {}]",
        export.display()
    );
    let case = Case::new().config(&config(&bind, &export, "rspamd", &hook));
    for t in [
        "2027-01-01T00:00:00Z",
        "2027-01-01T01:00:00Z",
        "2027-01-03T00:00:00Z",
    ] {
        case.run_at(t, &["apply", "--auto-approve"]).ok();
    }
    let domains = std::fs::read_to_string(export.join("dkim_signing_domains.conf")).unwrap();
    assert!(domains.contains("selector = \"mail-2027-01\""), "{domains}");

    let Some(python) = support::octodns::python_with("aiosmtpd") else {
        return;
    };
    if support::require_binary("postfix").is_none() {
        return;
    }
    let sink = Sink::start(&python, &work.path().join("sink"));
    let signer = Rspamd::try_start(&export).unwrap();
    let postfix = Postfix::try_start(sink.port, signer.milter_port).unwrap();
    // Through Postfix with rspamd as its milter...
    postfix.send("alice@example.test", "bob@example.org", &message(1));
    let first = sink.message(0);
    assert_eq!(selector(&first), "mail-2027-01", "{first}");
    assert_eq!(verify(bind.port(), &first), DkimResult::Pass, "{first}");
    // ...and through rspamd's HTTP scanner, with the same key.
    let direct = format!(
        "{}{}",
        signer.sign("alice@example.test", &message(3)),
        message(3)
    );
    assert_eq!(selector(&direct), "mail-2027-01", "{direct}");
    assert_eq!(verify(bind.port(), &direct), DkimResult::Pass, "{direct}");

    for t in [
        "2027-02-01T00:00:00Z",
        "2027-02-01T01:00:00Z",
        "2027-02-03T00:00:00Z",
    ] {
        case.run_at(t, &["apply", "--auto-approve"]).ok();
    }
    drop(postfix);
    drop(signer);
    let signer = Rspamd::try_start(&export).unwrap();
    let postfix = Postfix::try_start(sink.port, signer.milter_port).unwrap();
    postfix.send("alice@example.test", "bob@example.org", &message(2));
    let second = sink.message(1);
    assert_eq!(selector(&second), "mail-2027-02", "{second}");
    assert_eq!(verify(bind.port(), &second), DkimResult::Pass, "{second}");

    case.run_at("2027-02-07T23:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert_eq!(
        verify(bind.port(), &first),
        DkimResult::Pass,
        "retired key, day 4"
    );
    case.run_at("2027-02-09T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert_ne!(
        verify(bind.port(), &first),
        DkimResult::Pass,
        "revoked key still verifies"
    );
    assert_eq!(verify(bind.port(), &second), DkimResult::Pass, "{second}");
}
