//! The DKIM verifier's failure reasons, one per case, on messages signed by
//! the independent mail-auth signer with keys served from memory.

use crate::support;

use base64::Engine as _;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use mailauth::inspect::dkim::{DkimError, DkimResult, verify_all};
use mailauth::inspect::message::Message;
use mailauth::spf::MemoryDns;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// An RSA public key (SubjectPublicKeyInfo), for a record of the wrong type.
const RSA_SPKI: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqWucR4+FMVLpH14RJX5g2FNUjR6xtRTZgsM3DQZq+rNdx5BtbYde4fe0XSljibmF2YGD+0Ux7idSkRkgTlc+TOg9CpzaycUHWYzErYwLNGJmgFPu9KHxopuhC53VYzs6YS88Qvw8tBhLyiG8JAMHvpFsLOaz+I5BSURhnFvEDPIy1rfzNeDWGK5VfMy7Gq1jqri/M3XlbwVZvIXwpdxANH+JCh/LktWXyxlOwl1YBXFdMG2J8EwK38EptgokRCI+Ygchq4lOaWG93I5c8Mr4gQIPYrp0Ix+dNC7YG5mcnAd3VrbGUtfLRnCyrsv6WTcJdOPlAIYfLZGiIo31hhgSHQIDAQAB";

const MSG: &str =
    "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: Numbers\r\n\r\nHello  Bob\r\n";

struct Ed {
    seed: Vec<u8>,
    public: Vec<u8>,
}

fn ed() -> Ed {
    let seed = support::random_bytes(32);
    let arr: [u8; 32] = seed.clone().try_into().expect("32");
    let public = ed25519_dalek::SigningKey::from_bytes(&arr)
        .verifying_key()
        .to_bytes()
        .to_vec();
    Ed { seed, public }
}

fn sign(
    k: &Ed,
    selector: &str,
    c: Canonicalization,
    tweak: impl FnOnce(
        DkimSigner<Ed25519Key, mail_auth::dkim::Done>,
    ) -> DkimSigner<Ed25519Key, mail_auth::dkim::Done>,
) -> String {
    let key = Ed25519Key::from_seed_and_public_key(&k.seed, &k.public).expect("key");
    let signer = DkimSigner::from_key(key)
        .domain("example.com")
        .selector(selector)
        .headers(["From", "To", "Subject"])
        .header_canonicalization(c)
        .body_canonicalization(c);
    tweak(signer)
        .sign(MSG.as_bytes())
        .expect("sign")
        .to_header()
}

fn dns(k: &Ed) -> MemoryDns {
    let mut d = MemoryDns::new();
    d.add_txt(
        "ed._domainkey.example.com",
        &format!("v=DKIM1; k=ed25519; p={}", B64.encode(&k.public)),
    );
    d
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn verify(dns: &MemoryDns, raw: &str, at: u64) -> (DkimResult, Option<DkimError>) {
    let v = verify_all(dns, &Message::parse(raw.as_bytes()), at);
    assert_eq!(v.len(), 1, "{v:?}");
    (v[0].result, v[0].error.clone())
}

#[test]
fn pass_and_each_failure_reason() {
    let k = ed();
    let d = dns(&k);
    let relaxed = sign(&k, "ed", Canonicalization::Relaxed, |s| s);
    let simple = sign(&k, "ed", Canonicalization::Simple, |s| s);

    assert_eq!(
        verify(&d, &format!("{relaxed}{MSG}"), now()),
        (DkimResult::Pass, None)
    );
    assert_eq!(
        verify(&d, &format!("{simple}{MSG}"), now()),
        (DkimResult::Pass, None)
    );

    // Whitespace changed in a signed header and in the body: relaxed
    // survives, simple does not.
    let refolded = MSG
        .replace("Subject: Numbers", "Subject:   Numbers\r\n ")
        .replace("Hello  Bob", "Hello Bob  ");
    assert_eq!(
        verify(&d, &format!("{relaxed}{refolded}"), now()).0,
        DkimResult::Pass
    );
    let (r, e) = verify(&d, &format!("{simple}{refolded}"), now());
    assert_eq!(r, DkimResult::Fail);
    assert!(matches!(e, Some(DkimError::BodyHash { .. })), "{e:?}");

    // A signed header changed, body intact: the signature itself fails.
    let subject = MSG.replace("Numbers", "Numbers!");
    let (r, e) = verify(&d, &format!("{relaxed}{subject}"), now());
    assert_eq!((r, e), (DkimResult::Fail, Some(DkimError::Signature)));

    // Added From above the signed one: the bottom-most instance is signed,
    // so a second From on top is not, and the hash differs only if h=
    // lists From twice. Here it does not: the signature still verifies,
    // which is why DMARC refuses several From fields.
    let doubled = format!("{relaxed}From: mallory@example.com\r\n{MSG}");
    assert_eq!(verify(&d, &doubled, now()).0, DkimResult::Pass);

    // Expired (x=).
    let expiring = sign(&k, "ed", Canonicalization::Relaxed, |s| s.expiration(60));
    let (r, e) = verify(&d, &format!("{expiring}{MSG}"), now() + 3600);
    assert_eq!(r, DkimResult::PermError);
    assert!(matches!(e, Some(DkimError::Expired { .. })), "{e:?}");
    assert_eq!(
        verify(&d, &format!("{expiring}{MSG}"), now()).0,
        DkimResult::Pass
    );

    // No key, revoked key, wrong key type, key limited to sha1, DNS down.
    let other = sign(&k, "gone", Canonicalization::Relaxed, |s| s);
    let (r, e) = verify(&d, &format!("{other}{MSG}"), now());
    assert_eq!(r, DkimResult::PermError);
    assert!(
        matches!(&e, Some(DkimError::NoKey { name, .. }) if name == "gone._domainkey.example.com"),
        "{e:?}"
    );

    let mut revoked = MemoryDns::new();
    revoked.add_txt("ed._domainkey.example.com", "v=DKIM1; k=ed25519; p=");
    let (_, e) = verify(&revoked, &format!("{relaxed}{MSG}"), now());
    assert!(matches!(e, Some(DkimError::Revoked { .. })), "{e:?}");

    let mut wrong_type = MemoryDns::new();
    wrong_type.add_txt(
        "ed._domainkey.example.com",
        &format!("v=DKIM1; k=rsa; p={RSA_SPKI}"),
    );
    let (_, e) = verify(&wrong_type, &format!("{relaxed}{MSG}"), now());
    assert!(
        matches!(
            e,
            Some(DkimError::KeyTypeMismatch {
                key_type: "rsa",
                ..
            })
        ),
        "{e:?}"
    );

    let mut sha1_only = MemoryDns::new();
    sha1_only.add_txt(
        "ed._domainkey.example.com",
        &format!("v=DKIM1; k=ed25519; h=sha1; p={}", B64.encode(&k.public)),
    );
    let (_, e) = verify(&sha1_only, &format!("{relaxed}{MSG}"), now());
    assert!(matches!(e, Some(DkimError::KeyHash { .. })), "{e:?}");

    let mut down = MemoryDns::new();
    down.timeout("ed._domainkey.example.com");
    let (r, e) = verify(&down, &format!("{relaxed}{MSG}"), now());
    assert_eq!(r, DkimResult::TempError);
    assert!(matches!(e, Some(DkimError::KeyTemporary { .. })), "{e:?}");

    // A different key published under the selector.
    let stranger = ed();
    let (r, e) = verify(&dns(&stranger), &format!("{relaxed}{MSG}"), now());
    assert_eq!((r, e), (DkimResult::Fail, Some(DkimError::Signature)));

    // t=s on the key: i= in a subdomain is refused.
    let sub = sign(&k, "ed", Canonicalization::Relaxed, |s| {
        s.agent_user_identifier("alice@mail.example.com")
    });
    let mut strict = MemoryDns::new();
    strict.add_txt(
        "ed._domainkey.example.com",
        &format!("v=DKIM1; k=ed25519; t=s; p={}", B64.encode(&k.public)),
    );
    let (_, e) = verify(&strict, &format!("{sub}{MSG}"), now());
    assert!(matches!(e, Some(DkimError::StrictIdentity { .. })), "{e:?}");
    assert_eq!(
        verify(&d, &format!("{sub}{MSG}"), now()).0,
        DkimResult::Pass
    );
}

/// A failure report may carry only the header fields of the original
/// (RFC 6591 §3, `text/rfc822-headers`): the header signature is checked,
/// the body hash cannot be, and the verdict says so instead of "fail".
#[test]
fn headers_only_copy_checks_the_header_signature() {
    let k = ed();
    let d = dns(&k);
    let sig = sign(&k, "ed", Canonicalization::Relaxed, |s| s);
    let headers_of = |msg: &str| {
        let end = msg.find("\r\n\r\n").expect("header section") + 4;
        format!("{sig}{}", &msg[..end])
    };
    let verify_headers = |raw: &str| {
        let mut m = Message::parse(raw.as_bytes());
        m.headers_only = true;
        let v = verify_all(&d, &m, now());
        assert_eq!(v.len(), 1, "{v:?}");
        (v[0].result, v[0].error.clone())
    };
    assert_eq!(
        verify_headers(&headers_of(MSG)),
        (DkimResult::Neutral, Some(DkimError::BodyUnavailable))
    );
    // The same header section read as a whole message has an empty body:
    // that is a body hash failure, which is what the flag prevents.
    let (r, e) = verify(&d, &headers_of(MSG), now());
    assert_eq!(r, DkimResult::Fail);
    assert!(matches!(e, Some(DkimError::BodyHash { .. })), "{e:?}");
    // A changed signed header still fails outright.
    let tampered = headers_of(&MSG.replace("Numbers", "Numbers!"));
    assert_eq!(
        verify_headers(&tampered),
        (DkimResult::Fail, Some(DkimError::Signature))
    );
}

#[test]
fn a_testing_key_passes_with_a_warning() {
    // t=y used to be visible in --json only.
    let k = ed();
    let mut d = MemoryDns::new();
    d.add_txt(
        "ed._domainkey.example.com",
        &format!("v=DKIM1; k=ed25519; t=y; p={}", B64.encode(&k.public)),
    );
    let raw = format!("{}{MSG}", sign(&k, "ed", Canonicalization::Relaxed, |s| s));
    let v = verify_all(&d, &Message::parse(raw.as_bytes()), now());
    assert_eq!(v[0].result, DkimResult::Pass, "{v:?}");
    let w = v[0].warnings();
    assert!(w.iter().any(|w| w.contains("t=y")), "{w:?}");
    // An ordinary key has none.
    let v = verify_all(&dns(&k), &Message::parse(raw.as_bytes()), now());
    assert!(v[0].warnings().is_empty(), "{:?}", v[0].warnings());
}
