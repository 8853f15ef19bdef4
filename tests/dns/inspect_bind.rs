//! `inspect` against a real BIND serving keys generated here: messages are
//! signed with the independent mail-auth signer, inspected through the
//! crate's resolver, and every DKIM verdict is compared with mail-auth's
//! own verifier asking the same server.

use crate::support;
use crate::util;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DkimResult, MessageAuthenticator};
use mailauth::inspect::dkim::{DkimError, DkimResult as Ours};
use mailauth::inspect::dmarc::DmarcResult;
use mailauth::inspect::{Inspection, Options, inspect};
use mailauth::record::dmarc::Policy;
use mailauth::spf::SpfResult;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const TRUSTED: &str = "mx.receiver.example";

/// The list verifies what it received with mail-auth, records the result,
/// and ARC-seals its modified copy with the `arc` selector of list.example.
fn arc_seal(port: u16, key: &[u8], received_by_list: &str, modified: &str) -> String {
    let (rt, auth) = authenticator(port);
    let incoming = AuthenticatedMessage::parse(received_by_list.as_bytes()).expect("parse");
    let dkim = rt.block_on(auth.verify_dkim(&incoming));
    let arc = rt.block_on(auth.verify_arc(&incoming));
    let results = AuthenticationResults::new("list.example")
        .with_dkim_results(&dkim, "alice@example.com")
        .with_arc_result(&arc, "192.0.2.10".parse().expect("ip"));
    let out = AuthenticatedMessage::parse(modified.as_bytes()).expect("parse");
    ArcSealer::from_key(rsa_key(key))
        .domain("list.example")
        .selector("arc")
        .headers([
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "DKIM-Signature",
        ])
        .seal(&out, &results, &arc)
        .expect("seal")
        .to_header()
}

/// mail-auth's chain validation status.
fn mail_auth_arc(port: u16, raw: &[u8]) -> bool {
    let (rt, auth) = authenticator(port);
    let msg = AuthenticatedMessage::parse(raw).expect("parse");
    let out = rt.block_on(auth.verify_arc(&msg));
    *out.result() == DkimResult::Pass
}

struct Keys {
    rsa_der: Vec<u8>,
    rsa_pub: String,
    other_rsa_der: Vec<u8>,
    ed_seed: Vec<u8>,
    ed_pub: Vec<u8>,
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(i) = input {
        stdin.write_all(i).expect("write to openssl");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn rsa_pkcs8() -> Vec<u8> {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
        ],
        None,
    )
}

fn keys() -> Keys {
    let rsa_der = rsa_pkcs8();
    let rsa_spki = openssl(
        &["pkey", "-inform", "DER", "-pubout", "-outform", "DER"],
        Some(&rsa_der),
    );
    let ed_seed = support::random_bytes(32);
    let seed: [u8; 32] = ed_seed.clone().try_into().expect("32 bytes");
    let ed_pub = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes()
        .to_vec();
    Keys {
        rsa_der,
        rsa_pub: B64.encode(rsa_spki),
        other_rsa_der: rsa_pkcs8(),
        ed_seed,
        ed_pub,
    }
}

/// OpenSSL writes PKCS#8 or PKCS#1 DER depending on its version.
fn rsa_key(der: &[u8]) -> RsaKey<Sha256> {
    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec())))
        .or_else(|_| {
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(
                der.to_vec(),
            )))
        })
        .expect("rsa key")
}

/// A TXT value as master-file character-strings of at most 255 octets.
fn txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

const SOA: &str =
    "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

fn zones(k: &Keys) -> Vec<(String, String)> {
    vec![
        (
            "example.com".into(),
            format!(
                "{SOA}@ IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n@ IN A 192.0.2.10\n\
                 _dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:d@example.com\"\n\
                 rsa._domainkey IN TXT {}\ned._domainkey IN TXT {}\n",
                txt(&format!("v=DKIM1; k=rsa; p={}", k.rsa_pub)),
                txt(&format!("v=DKIM1; k=ed25519; p={}", B64.encode(&k.ed_pub))),
            ),
        ),
        (
            "forwarder.example".into(),
            format!("{SOA}@ IN TXT \"v=spf1 ip4:198.51.100.20 -all\"\n@ IN A 198.51.100.20\n"),
        ),
        (
            "list.example".into(),
            format!(
                "{SOA}@ IN TXT \"v=spf1 ip4:198.51.100.30 -all\"\n@ IN A 198.51.100.30\n\
                 _dmarc IN TXT \"v=DMARC1; p=none\"\n\
                 arc._domainkey IN TXT {}\n",
                txt(&format!("v=DKIM1; k=rsa; p={}", k.rsa_pub)),
            ),
        ),
    ]
}

const BODY: &str =
    "Hello Bob,\r\n\r\nthe quarterly  numbers are attached.\t \r\n\r\n-- \r\nAlice\r\n\r\n";

fn base_message() -> String {
    format!(
        "From: Alice <alice@example.com>\r\nTo: bob@receiver.example\r\nSubject: Numbers\r\n\
         Date: Tue, 30 Apr 2024 02:09:00 +0000\r\nMessage-ID: <n1@example.com>\r\n\r\n{BODY}"
    )
}

fn sign_rsa(k: &[u8], selector: &str, msg: &str, relaxed: bool, l: bool) -> String {
    let c = if relaxed {
        Canonicalization::Relaxed
    } else {
        Canonicalization::Simple
    };
    DkimSigner::from_key(rsa_key(k))
        .domain("example.com")
        .selector(selector)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .header_canonicalization(c)
        .body_canonicalization(c)
        .body_length(l)
        .sign(msg.as_bytes())
        .expect("sign")
        .to_header()
}

fn sign_ed(k: &Keys, selector: &str, msg: &str) -> String {
    let key = Ed25519Key::from_seed_and_public_key(&k.ed_seed, &k.ed_pub).expect("ed key");
    DkimSigner::from_key(key)
        .domain("example.com")
        .selector(selector)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .header_canonicalization(Canonicalization::Simple)
        .body_canonicalization(Canonicalization::Simple)
        .sign(msg.as_bytes())
        .expect("sign")
        .to_header()
}

fn received(from: &str, ip: &str, by: &str, date: &str) -> String {
    format!(
        "Received: from {from} ({from} [{ip}])\r\n\tby {by} (Postfix) with ESMTPS id 4Abc\r\n\tfor <bob@receiver.example>; {date}\r\n"
    )
}

/// mail-auth's authenticator asking the test's BIND.
fn authenticator(port: u16) -> (tokio::runtime::Runtime, MessageAuthenticator) {
    use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let auth = {
        let _guard = rt.enter();
        let mut ns = NameServerConfig::udp_and_tcp("127.0.0.1".parse().expect("ip"));
        for c in &mut ns.connections {
            c.port = port;
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(3);
        opts.cache_size = 0;
        MessageAuthenticator::new(config, opts).expect("authenticator")
    };
    (rt, auth)
}

/// mail-auth's verdict for each signature, keyed by `b=`.
fn mail_auth_verdicts(port: u16, raw: &[u8]) -> Vec<(String, bool, String)> {
    let (rt, auth) = authenticator(port);
    // Non-strict: verify l= signatures as RFC 6376 defines them (strict
    // mode refuses every l= signature outright).
    let msg = AuthenticatedMessage::parse_with_opts(raw, None, false)
        .expect("mail-auth parses the message");
    let out = rt.block_on(auth.verify_dkim(&msg));
    out.iter()
        .map(|o| {
            let b = o.signature().map(|s| B64.encode(&s.b)).unwrap_or_default();
            (
                b,
                *o.result() == DkimResult::Pass,
                format!("{:?}", o.result()),
            )
        })
        .collect()
}

fn run_inspect(port: u16, raw: &[u8]) -> Inspection {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let resolver = mailauth::dns::Resolver::with_nameservers(&[addr], Duration::from_secs(3))
        .expect("resolver");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let opts = Options {
        trusted: vec![TRUSTED.to_string()],
        ip: None,
        now,
        headers_only: false,
        ip_source: None,
    };
    inspect(raw, &resolver, &opts)
}

/// Every signature: whether it verifies cryptographically, by our verifier
/// and by mail-auth's. Ours counts a signature that verifies but leaves
/// body content unsigned (l=) as "policy", not "pass"; that signature did
/// verify.
fn assert_agrees(port: u16, raw: &[u8], ours: &Inspection) {
    let theirs = mail_auth_verdicts(port, raw);
    let parsed: Vec<_> = ours.dkim.iter().filter(|v| v.signature.is_some()).collect();
    assert_eq!(
        parsed.len(),
        theirs.len(),
        "signature count differs: ours {:?} theirs {:?}",
        ours.dkim,
        theirs
    );
    for (n, v) in parsed.into_iter().enumerate() {
        let sig = v.signature.as_ref().expect("parsed");
        let b = B64.encode(&sig.b);
        // mail-auth omits the signature from some non-pass outputs; those
        // are matched by position (both list signatures top first).
        let (_, pass, detail) = theirs
            .iter()
            .find(|(tb, _, _)| *tb == b)
            .or_else(|| theirs.get(n).filter(|(tb, _, _)| tb.is_empty()))
            .unwrap_or_else(|| {
                panic!(
                    "mail-auth did not report the signature s={}: {theirs:?}",
                    sig.s
                )
            });
        let verifies =
            v.result == Ours::Pass || matches!(v.error, Some(DkimError::PartialBody { .. }));
        assert_eq!(
            verifies, *pass,
            "s={}: ours {} ({:?}), mail-auth {detail}",
            sig.s, v.result, v.error
        );
    }
}

fn results(i: &Inspection) -> Vec<Ours> {
    i.dkim.iter().map(|v| v.result).collect()
}

#[test]
fn signed_forwarded_list_spoofed_and_multi_signature_messages() {
    if support::require_binary("openssl").is_none() {
        return;
    }
    let k = keys();
    let z = zones(&k);
    let zr: Vec<(&str, &str)> = z.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let Some(bind) = support::bind::Bind::try_start(&zr) else {
        return;
    };
    let port = bind.port();
    let base = base_message();
    let sig_rsa = sign_rsa(&k.rsa_der, "rsa", &base, true, false);
    let sig_ed = sign_ed(&k, "ed", &base);
    let date = "Tue, 30 Apr 2024 02:09:09 +0000";

    // 1. Direct from the sender's server: everything passes.
    let direct = format!(
        "Return-Path: <bounce@example.com>\r\n{}{sig_rsa}{sig_ed}{base}",
        received("mail.example.com", "192.0.2.10", TRUSTED, date)
    );
    let i = run_inspect(port, direct.as_bytes());
    assert_eq!(results(&i), [Ours::Pass, Ours::Pass], "{:?}", i.dkim);
    assert_eq!(
        i.spf.as_ref().map(|s| s.outcome.result),
        Some(SpfResult::Pass)
    );
    let d = i.dmarc.as_ref().expect("dmarc");
    assert_eq!(d.result, DmarcResult::Pass, "{}", d.reason);
    assert_eq!(d.policy, Some(Policy::Reject));
    assert_eq!(
        i.first_outside.as_deref(),
        Some("mail.example.com [192.0.2.10]")
    );
    assert!(i.is_clean(), "{:?}", i.disagreements);
    assert_agrees(port, direct.as_bytes(), &i);

    // 2. Forwarded: the forwarder's IP is not in example.com's SPF, the
    // signatures survive, DMARC passes on DKIM.
    let forwarded = format!(
        "Return-Path: <bounce@example.com>\r\n{}{}{sig_rsa}{sig_ed}{base}",
        received("fwd.forwarder.example", "198.51.100.20", TRUSTED, date),
        received(
            "mail.example.com",
            "192.0.2.10",
            "fwd.forwarder.example",
            "Tue, 30 Apr 2024 02:09:03 +0000"
        ),
    );
    let i = run_inspect(port, forwarded.as_bytes());
    assert_eq!(
        i.spf.as_ref().map(|s| s.outcome.result),
        Some(SpfResult::Fail)
    );
    assert_eq!(results(&i), [Ours::Pass, Ours::Pass]);
    let d = i.dmarc.as_ref().expect("dmarc");
    assert_eq!(d.result, DmarcResult::Pass, "{}", d.reason);
    assert!(d.reason.starts_with("DKIM passed"), "{}", d.reason);
    assert_eq!(i.hops[0].delay, Some(6));
    assert!(
        !i.hops[1].trusted,
        "the forwarder's own Received is a claim"
    );
    assert_agrees(port, forwarded.as_bytes(), &i);

    // 3. Mailing list: subject tag and footer added, new envelope sender.
    // The list claims dkim=pass in its own Authentication-Results.
    let listed_body = format!("{BODY}_______________\r\nlist mailing list\r\n");
    let listed = format!(
        "Return-Path: <list-bounces@list.example>\r\n{}\
         Authentication-Results: list.example; dkim=pass header.d=example.com header.s=rsa; spf=pass smtp.mailfrom=bounce@example.com\r\n\
         {sig_rsa}{sig_ed}From: Alice <alice@example.com>\r\nTo: bob@receiver.example\r\nSubject: [list] Numbers\r\n\
         Date: Tue, 30 Apr 2024 02:09:00 +0000\r\nMessage-ID: <n1@example.com>\r\n\r\n{listed_body}",
        received("lists.list.example", "198.51.100.30", TRUSTED, date),
    );
    let i = run_inspect(port, listed.as_bytes());
    assert_eq!(results(&i), [Ours::Fail, Ours::Fail]);
    for v in &i.dkim {
        assert!(
            matches!(v.error, Some(DkimError::BodyHash { .. })),
            "{:?}",
            v.error
        );
    }
    assert_eq!(
        i.spf.as_ref().map(|s| s.outcome.result),
        Some(SpfResult::Pass)
    );
    let d = i.dmarc.as_ref().expect("dmarc");
    assert_eq!(d.result, DmarcResult::Fail);
    assert!(d.reason.contains("not aligned"), "{}", d.reason);
    assert!(
        i.disagreements
            .iter()
            .any(|x| x.contains("list.example") && x.contains("dkim=pass")),
        "{:?}",
        i.disagreements
    );
    assert_agrees(port, listed.as_bytes(), &i);

    // 3b. The same list, ARC-sealing its modified copy: DKIM still fails,
    // the chain validates, and its AAR recorded the DKIM pass the list saw.
    let at_list = format!(
        "{}{sig_rsa}{sig_ed}{base}",
        received("mail.example.com", "192.0.2.10", "lists.list.example", date)
    );
    let modified = format!(
        "{sig_rsa}{sig_ed}From: Alice <alice@example.com>\r\nTo: bob@receiver.example\r\nSubject: [list] Numbers\r\n\
         Date: Tue, 30 Apr 2024 02:09:00 +0000\r\nMessage-ID: <n1@example.com>\r\n\r\n{listed_body}"
    );
    let arc_set = arc_seal(port, &k.rsa_der, &at_list, &modified);
    let sealed = format!(
        "Return-Path: <list-bounces@list.example>\r\n{}{arc_set}{modified}",
        received("lists.list.example", "198.51.100.30", TRUSTED, date),
    );
    let i = run_inspect(port, sealed.as_bytes());
    assert_eq!(results(&i), [Ours::Fail, Ours::Fail]);
    assert_eq!(i.arc_verdict.cv, "pass", "{:?}", i.arc_verdict);
    assert_eq!(i.arc_verdict.sealers, ["list.example"]);
    assert!(
        mail_auth_arc(port, sealed.as_bytes()),
        "mail-auth disagrees on the ARC chain"
    );
    assert!(
        i.disagreements
            .iter()
            .any(|x| x
                .starts_with("ARC-Authentication-Results i=1 from list.example says dkim=pass")),
        "{:?}",
        i.disagreements
    );
    assert_agrees(port, sealed.as_bytes(), &i);
    // Changed after sealing: the chain breaks, for both validators.
    let tampered = sealed.replace("list mailing list", "list mailing list!");
    let i = run_inspect(port, tampered.as_bytes());
    assert_eq!(i.arc_verdict.cv, "fail");
    assert!(
        i.arc_verdict
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("body hash mismatch")),
        "{:?}",
        i.arc_verdict
    );
    assert!(!mail_auth_arc(port, tampered.as_bytes()));

    // 4. Spoofed From: unsigned, from a stranger's IP.
    let spoofed = format!(
        "Return-Path: <ceo@example.com>\r\n{}From: CEO <ceo@example.com>\r\nTo: bob@receiver.example\r\nSubject: urgent wire\r\n\r\npay now\r\n",
        received("mail.example.com", "203.0.113.66", TRUSTED, date)
    );
    let i = run_inspect(port, spoofed.as_bytes());
    assert!(i.dkim.is_empty());
    assert_eq!(
        i.spf.as_ref().map(|s| s.outcome.result),
        Some(SpfResult::Fail)
    );
    let d = i.dmarc.as_ref().expect("dmarc");
    assert_eq!(d.result, DmarcResult::Fail);
    assert_eq!(d.policy, Some(Policy::Reject));
    let helo = i
        .identities
        .iter()
        .find(|x| x.kind == "smtp.helo")
        .expect("helo");
    assert!(!helo.recorded, "a HELO name is a claim");
    assert_agrees(port, spoofed.as_bytes(), &i);

    // 5. Three signatures, one valid: a selector with no key, a signature
    // made with a key other than the published one, and a good one.
    let sig_missing = sign_ed(&k, "gone", &base);
    let sig_wrong = sign_rsa(&k.other_rsa_der, "rsa", &base, false, false);
    let multi = format!(
        "Return-Path: <bounce@example.com>\r\n{}{sig_missing}{sig_wrong}{sig_rsa}{base}",
        received("mail.example.com", "192.0.2.10", TRUSTED, date)
    );
    let i = run_inspect(port, multi.as_bytes());
    assert_eq!(
        results(&i),
        [Ours::PermError, Ours::Fail, Ours::Pass],
        "{:?}",
        i.dkim
    );
    assert!(matches!(i.dkim[0].error, Some(DkimError::NoKey { .. })));
    assert!(matches!(i.dkim[1].error, Some(DkimError::Signature)));
    assert_eq!(i.dmarc.as_ref().map(|d| d.result), Some(DmarcResult::Pass));
    assert_agrees(port, multi.as_bytes(), &i);

    // 6. l=: text appended after signing stays outside the signature.
    // mail-auth 0.13's signer writes the raw body length into l= rather
    // than the canonical length (RFC 6376 §3.5), so this message uses a
    // body on which both are equal: simple canonicalisation, no trailing
    // blank lines or spaces.
    let plain = "From: alice@example.com\r\nTo: bob@receiver.example\r\nSubject: l\r\n\r\nline one\r\nline two\r\n";
    let sig_l = sign_rsa(&k.rsa_der, "rsa", plain, false, true);
    let appended = format!(
        "Return-Path: <bounce@example.com>\r\n{}{sig_l}{plain}P.S. appended by someone else\r\n",
        received("mail.example.com", "192.0.2.10", TRUSTED, date)
    );
    let i = run_inspect(port, appended.as_bytes());
    assert_eq!(results(&i), [Ours::Policy], "{:?}", i.dkim);
    assert!(
        matches!(
            i.dkim[0].error,
            Some(DkimError::PartialBody { unsigned: 31, .. })
        ),
        "{:?}",
        i.dkim[0].error
    );
    assert_eq!(
        i.dmarc.as_ref().map(|d| d.result),
        Some(DmarcResult::Pass),
        "SPF still aligns"
    );
    assert_agrees(port, appended.as_bytes(), &i);
    // The same signature with nothing appended passes.
    let untouched = format!(
        "Return-Path: <bounce@example.com>\r\n{}{sig_l}{plain}",
        received("mail.example.com", "192.0.2.10", TRUSTED, date)
    );
    let i = run_inspect(port, untouched.as_bytes());
    assert_eq!(results(&i), [Ours::Pass], "{:?}", i.dkim);
    assert_agrees(port, untouched.as_bytes(), &i);

    // 7. The binary: text report, exit code, and the config fix for a
    // managed domain.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("list.eml"), &listed).expect("write");
    std::fs::write(
        dir.path().join("mailauth.yaml"),
        "domains:\n  example.com:\n    spf:\n      ip4: [192.0.2.10]\n    dkim:\n      selectors:\n        - name: rsa\n          public_key: AAAA\n    dmarc:\n      p: reject\n",
    )
    .expect("write config");
    let out = util::Cmd::new()
        .dir(dir.path())
        .args([
            "inspect",
            "list.eml",
            "--trusted",
            TRUSTED,
            "--nameserver",
            &format!("127.0.0.1:{port}"),
        ])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("body hash mismatch"), "{stdout}");
    assert!(stdout.contains("To fix this in the config"), "{stdout}");
    assert!(stdout.contains("list.example"), "{stdout}");
    assert!(stdout.contains("changed in transit"), "{stdout}");

    let out = util::Cmd::new()
        .dir(dir.path())
        .args([
            "inspect",
            "-",
            "--json",
            "--trusted",
            TRUSTED,
            "--nameserver",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(direct.as_bytes())
        .output();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["dmarc"]["result"], "pass");
    assert_eq!(json["dkim"][1]["signature"]["a"], "ed25519-sha256");
    assert_eq!(json["spf"]["outcome"]["result"], "pass");
}
