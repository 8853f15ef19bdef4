//! One list of steps, run against every provider on a real (or stand-in)
//! server on loopback (BIND and Knot DNS over RFC 2136, PowerDNS over its
//! API and RFC 2136, Route 53 on moto's server mode, a Cloudflare
//! stand-in): create, re-diff to zero, update, long DKIM keys, delete,
//! untouched unowned records, stale plans, bad credentials, a down server
//! and transient failures. Then each provider's own cases (Route 53:
//! several pages, throttling, INSYNC polling, the AWS credential chain),
//! where the API providers' credentials may go (redirects, plain HTTP) and
//! what a write lost to a timeout does.

use crate::support;
use crate::util;

use std::collections::BTreeMap;

use mailauth::diff::{Desired, diff};
use mailauth::ownership::{Registry, Slot};
use mailauth::provider::{Fetched, Provider, ProviderError};
use mailauth::record::{Name, RData, RType, RecordSet, RrKey};

const ZONE: &str = "example.test";

/// The zone every server starts with: records mailauth does not own (A,
/// MX, CNAME, an apex TXT next to where SPF will go, another TXT).
const ZONE_TEXT: &str = "$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 300
@ IN NS ns1
ns1 IN A 127.0.0.1
@ IN A 192.0.2.10
@ IN MX 10 mx1
mx1 IN A 192.0.2.25
www IN CNAME @
@ 600 IN TXT \"google-site-verification=unowned-1234\"
other IN TXT \"not mailauth's\" \"two strings\"
";

/// Everything a provider needs to run the suite.
struct Harness {
    label: &'static str,
    provider: Box<dyn Provider>,
    /// Same zone, wrong TSIG key / API token.
    bad_auth: Box<dyn Provider>,
    /// Points at a port where nothing listens.
    down: Box<dyn Provider>,
    /// Fails transiently at first (a swallowed connection, a 429) and must
    /// retry its way to success. `arm_flaky` injects the failure;
    /// `transient_failures()` counts the failures actually served.
    flaky: Box<dyn Provider>,
    arm_flaky: Box<dyn Fn()>,
    transient_failures: Box<dyn Fn() -> usize>,
    /// Changes an unowned record out of band, as another operator would.
    third_party_edit: Box<dyn Fn(&str)>,
    _guards: Vec<Box<dyn std::any::Any>>,
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("test name")
}

fn txt(n: &Name, ttl: u32, value: &str) -> RecordSet {
    RecordSet::new(n.clone(), RType::Txt, ttl, vec![RData::txt(value)])
}

/// A DKIM record of exactly `len` octets (base64-looking key material).
fn dkim_value(len: usize, seed: u8) -> String {
    let head = "v=DKIM1; k=rsa; p=";
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut v = head.to_string();
    let mut x = seed as usize;
    while v.len() < len {
        x = (x * 1103515245 + 12345) % (1 << 31);
        v.push(alphabet[(x >> 8) % 64] as char);
    }
    v
}

/// One declared state of the domain.
#[derive(Clone)]
struct State {
    spf: &'static str,
    dmarc: &'static str,
    dmarc_ttl: u32,
    /// (selector, value length)
    selectors: Vec<(&'static str, usize)>,
}

impl State {
    fn desired(&self) -> Desired {
        let origin = name(ZONE);
        let mut sets = vec![txt(&origin.child("_dmarc"), self.dmarc_ttl, self.dmarc)];
        for (i, (sel, len)) in self.selectors.iter().enumerate() {
            let n = origin.child("_domainkey").child(sel);
            sets.push(txt(&n, 3600, &dkim_value(*len, i as u8 + 1)));
        }
        let mut reg = Registry::default();
        reg.slots.insert(Slot::ApexSpf);
        for s in &sets {
            reg.slots
                .insert(Slot::RrSet(s.name.clone(), s.rtype.clone()));
        }
        sets.push(RecordSet::new(
            Registry::name(&origin),
            RType::Txt,
            3600,
            vec![reg.rdata(&origin)],
        ));
        Desired {
            origin,
            sets,
            spf: Some((RData::txt(self.spf), 3600)),
        }
    }
}

/// The data-driven list: each step is a declared state to converge to.
fn steps() -> Vec<(&'static str, State)> {
    let base = State {
        spf: "v=spf1 mx -all",
        dmarc: "v=DMARC1; p=none; rua=mailto:dmarc@example.test",
        dmarc_ttl: 3600,
        selectors: vec![("s1", 120)],
    };
    let policy = State {
        dmarc: "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test",
        ..base.clone()
    };
    let keys = State {
        // 255 and 256 straddle one character-string; 510 is exactly two;
        // 410 and 750 are the sizes of real 2048- and 4096-bit RSA keys.
        selectors: vec![
            ("s1", 120),
            ("k255", 255),
            ("k256", 256),
            ("k510", 510),
            ("rsa2048", 410),
            ("rsa4096", 750),
        ],
        ..policy.clone()
    };
    let deleted = State {
        selectors: vec![
            ("s1", 120),
            ("k255", 255),
            ("k510", 510),
            ("rsa2048", 410),
            ("rsa4096", 750),
        ],
        ..keys.clone()
    };
    let ttl_and_spf = State {
        spf: "v=spf1 mx include:_spf.example.net -all",
        dmarc_ttl: 600,
        ..deleted.clone()
    };
    vec![
        ("create SPF, DMARC, DKIM", base),
        ("update DMARC policy", policy),
        (
            "publish 255/256/510-octet and 2048/4096-bit DKIM keys",
            keys,
        ),
        ("delete selector k256", deleted),
        ("change a TTL and the SPF record", ttl_and_spf),
    ]
}

/// RRsets mailauth does not own, SOA aside (its serial moves), with the
/// apex TXT reduced to its non-SPF records.
fn unowned(f: &Fetched, desired: &Desired) -> BTreeMap<RrKey, RecordSet> {
    let owned: Vec<RrKey> = desired.sets.iter().map(RecordSet::key).collect();
    let origin = &f.zone.origin;
    f.zone
        .sets
        .iter()
        .filter(|(k, _)| k.1 != RType::Soa && !owned.contains(k))
        .filter(|(k, _)| {
            // Every selector any step ever published is owned.
            !(k.0.as_str().ends_with(&format!("._domainkey.{ZONE}")))
        })
        .map(|(k, s)| {
            let mut s = s.clone();
            if &k.0 == origin && k.1 == RType::Txt {
                s.data
                    .retain(|d| !d.txt_value().is_some_and(|v| v.starts_with("v=spf1")));
            }
            (k.clone(), s)
        })
        .collect()
}

fn fetch(p: &dyn Provider) -> Fetched {
    p.fetch(&name(ZONE))
        .unwrap_or_else(|e| panic!("fetch failed: {e}"))
}

fn run_suite(h: &Harness) {
    let zone = name(ZONE);
    let label = h.label;
    let initial = fetch(h.provider.as_ref());
    assert!(initial.exists, "{label}: zone should exist");
    assert!(
        initial.zone.get(&zone, &RType::Txt).is_some_and(|s| s
            .data
            .contains(&RData::txt("google-site-verification=unowned-1234"))),
        "{label}: the seeded apex TXT is missing: {:?}",
        initial.zone.get(&zone, &RType::Txt)
    );
    let baseline = unowned(&initial, &steps()[0].1.desired());
    assert!(baseline.len() >= 6, "{label}: {baseline:?}");

    let mut last_desired = None;
    for (what, state) in steps() {
        let desired = state.desired();
        let before = fetch(h.provider.as_ref());
        let d = diff(&before.zone, &desired);
        assert!(!d.changes.is_empty(), "{label}: {what}: nothing to do?");
        h.provider
            .apply(&zone, &before, &d.changes)
            .unwrap_or_else(|e| panic!("{label}: {what}: apply failed: {e}"));
        let after = fetch(h.provider.as_ref());
        let again = diff(&after.zone, &desired);
        assert!(
            again.changes.is_empty(),
            "{label}: {what}: re-diff after apply is not empty: {:#?}",
            again.changes
        );
        assert_eq!(
            unowned(&after, &desired),
            baseline,
            "{label}: {what}: records mailauth does not own changed"
        );
        assert_ne!(
            before.version, after.version,
            "{label}: {what}: version did not move"
        );
        last_desired = Some((state, desired));
    }
    let (last_state, last_desired) = last_desired.expect("steps ran");

    // The TTL change landed on the whole RRset.
    let after = fetch(h.provider.as_ref());
    let dmarc = after
        .zone
        .get(&zone.child("_dmarc"), &RType::Txt)
        .expect("dmarc published");
    assert_eq!(dmarc.ttl, last_state.dmarc_ttl, "{label}: DMARC TTL");
    // The deleted selector is gone, the others are there.
    assert!(
        after
            .zone
            .get(&zone.child("_domainkey").child("k256"), &RType::Txt)
            .is_none(),
        "{label}: deleted selector still served"
    );
    let k510 = after
        .zone
        .get(&zone.child("_domainkey").child("k510"), &RType::Txt)
        .expect("k510 published");
    assert_eq!(k510.data[0].txt_value().map(|v| v.len()), Some(510));

    // A stale plan is refused and changes nothing.
    let next = State {
        dmarc: "v=DMARC1; p=reject",
        ..last_state.clone()
    }
    .desired();
    let seen = fetch(h.provider.as_ref());
    let plan = diff(&seen.zone, &next);
    assert_eq!(plan.changes.len(), 1, "{label}: {:?}", plan.changes);
    (h.third_party_edit)("changed by someone else");
    let err = h
        .provider
        .apply(&zone, &seen, &plan.changes)
        .expect_err("stale plan must be refused");
    assert!(
        matches!(err, ProviderError::Stale { .. }),
        "{label}: stale plan gave {err:?}"
    );
    eprintln!("{label}: stale: {err}");
    let now = fetch(h.provider.as_ref());
    assert!(
        diff(&now.zone, &last_desired).changes.is_empty(),
        "{label}: the stale apply changed owned records"
    );
    let other = now
        .zone
        .get(&zone.child("other"), &RType::Txt)
        .expect("other TXT");
    assert_eq!(
        other.data,
        vec![RData::txt("changed by someone else")],
        "{label}: the third-party edit is not visible"
    );

    // Wrong credentials: a clear error, nothing changed.
    let plan = diff(&now.zone, &next);
    let err = h
        .bad_auth
        .apply(&zone, &now, &plan.changes)
        .expect_err("bad credentials must fail");
    assert!(
        matches!(err, ProviderError::Auth { .. }),
        "{label}: bad credentials gave {err:?}"
    );
    eprintln!("{label}: bad credentials on apply: {err}");
    let err = h
        .bad_auth
        .fetch(&zone)
        .expect_err("bad credentials must fail");
    assert!(
        matches!(err, ProviderError::Auth { .. }),
        "{label}: bad credentials on fetch gave {err:?}"
    );
    let unchanged = fetch(h.provider.as_ref());
    assert_eq!(
        unchanged.version, now.version,
        "{label}: bad key changed the zone"
    );

    // Server down: Unreachable.
    let err = h.down.fetch(&zone).expect_err("a down server must fail");
    assert!(
        matches!(err, ProviderError::Unreachable { .. }),
        "{label}: down server gave {err:?}"
    );
    eprintln!("{label}: down: {err}");
    let err = h
        .down
        .apply(&zone, &now, &plan.changes)
        .expect_err("a down server must fail");
    assert!(
        matches!(err, ProviderError::Unreachable { .. }),
        "{label}: down server gave {err:?}"
    );

    // Transient failures are retried: the plan lands through the flaky path.
    assert_eq!(
        (h.transient_failures)(),
        0,
        "{label}: failure injected too early"
    );
    (h.arm_flaky)();
    let seen = h
        .flaky
        .fetch(&zone)
        .unwrap_or_else(|e| panic!("{label}: flaky fetch was not retried: {e}"));
    let failures = (h.transient_failures)();
    assert!(
        failures >= 1,
        "{label}: no transient failure happened ({failures})"
    );
    let plan = diff(&seen.zone, &next);
    h.flaky
        .apply(&zone, &seen, &plan.changes)
        .unwrap_or_else(|e| panic!("{label}: flaky apply failed: {e}"));
    let done = fetch(h.provider.as_ref());
    assert!(
        diff(&done.zone, &next).changes.is_empty(),
        "{label}: the retried apply did not land"
    );
}

// ---------------------------------------------------------------- BIND

mod bind_rfc2136 {
    use super::*;
    use mailauth::provider::rfc2136::{Rfc2136, Rfc2136Config, TsigAlgorithmName};
    use support::bind::{Bind, nsupdate};
    use support::{TcpProxy, TsigKey, free_port};

    fn config(port: u16, key: &TsigKey, env: &str) -> Rfc2136Config {
        // SAFETY: test-only; each variable name is unique to its test.
        unsafe { std::env::set_var(env, &key.secret) };
        Rfc2136Config {
            server: format!("127.0.0.1:{port}"),
            key_name: key.name.clone(),
            algorithm: if key.algorithm == "hmac-sha512" {
                TsigAlgorithmName::HmacSha512
            } else {
                TsigAlgorithmName::HmacSha256
            },
            secret_env: Some(env.to_string()),
            secret_file: None,
            timeout_secs: 2,
            retries: 2,
        }
    }

    pub fn harness(
        label: &'static str,
        dns_port: u16,
        key: &TsigKey,
        third_party_edit: Box<dyn Fn(&str)>,
        guards: Vec<Box<dyn std::any::Any>>,
    ) -> Harness {
        let provider = Rfc2136::from_config(&config(dns_port, key, &format!("{label}_KEY")))
            .expect("provider");
        let mut wrong = key.clone();
        wrong.secret = TsigKey::random("x", &key.algorithm).secret;
        let bad_auth = Rfc2136::from_config(&config(dns_port, &wrong, &format!("{label}_BAD")))
            .expect("provider");
        let mut down_cfg = config(free_port(), key, &format!("{label}_DOWN"));
        down_cfg.retries = 1;
        let down = Rfc2136::from_config(&down_cfg).expect("provider");
        let proxy = TcpProxy::start(dns_port, 1);
        let mut flaky_cfg = config(proxy.port(), key, &format!("{label}_FLAKY"));
        flaky_cfg.timeout_secs = 1;
        let flaky = Rfc2136::from_config(&flaky_cfg).expect("provider");
        let count = proxy.connections.clone();
        let mut guards = guards;
        guards.push(Box::new(proxy));
        Harness {
            label,
            provider: Box::new(provider),
            bad_auth: Box::new(bad_auth),
            down: Box::new(down),
            flaky: Box::new(flaky),
            arm_flaky: Box::new(|| {}),
            // The proxy swallows only the first connection.
            transient_failures: Box::new(move || {
                count.load(std::sync::atomic::Ordering::SeqCst).min(1)
            }),
            third_party_edit,
            _guards: guards,
        }
    }

    #[test]
    fn bind_rfc2136_conformance() {
        let Some(bind) = Bind::try_start(&[(ZONE, ZONE_TEXT)]) else {
            return;
        };
        let (port, admin) = (bind.port(), bind.admin_tsig().clone());
        let edit = Box::new(move |value: &str| {
            nsupdate(
                port,
                &admin,
                &format!(
                    "update delete other.{ZONE}. TXT\nupdate add other.{ZONE}. 300 TXT \"{value}\""
                ),
            )
        });
        let h = harness("BIND", port, &bind.tsig().clone(), edit, vec![]);
        run_suite(&h);
        drop(h);
        drop(bind);
    }

    #[test]
    fn bind_hmac_sha512_key_and_secret_file() {
        let Some(bind) = Bind::try_start(&[(ZONE, ZONE_TEXT)]) else {
            return;
        };
        // The admin key is hmac-sha512; read it from a file this time.
        let admin = bind.admin_tsig().clone();
        let cfg = Rfc2136Config {
            server: format!("127.0.0.1:{}", bind.port()),
            key_name: admin.name.clone(),
            algorithm: TsigAlgorithmName::HmacSha512,
            secret_env: None,
            secret_file: Some(bind.secret_file(&admin)),
            timeout_secs: 2,
            retries: 0,
        };
        let p = Rfc2136::from_config(&cfg).expect("provider");
        let seen = p.fetch(&name(ZONE)).expect("fetch with sha512 key");
        let want = State {
            spf: "v=spf1 -all",
            dmarc: "v=DMARC1; p=none",
            dmarc_ttl: 300,
            selectors: vec![],
        }
        .desired();
        let plan = diff(&seen.zone, &want);
        p.apply(&name(ZONE), &seen, &plan.changes).expect("apply");
        assert!(
            bind.dig_short(&format!("_dmarc.{ZONE}"), "TXT")
                .contains("p=none")
        );
    }

    #[test]
    fn one_provider_serves_many_threads() {
        let zones: Vec<String> = (0..6).map(|i| format!("z{i}.test")).collect();
        let specs: Vec<(&str, &str)> = zones.iter().map(|z| (z.as_str(), ZONE_TEXT)).collect();
        let Some(bind) = Bind::try_start(&specs) else {
            return;
        };
        let p = std::sync::Arc::new(
            Rfc2136::from_config(&config(bind.port(), bind.tsig(), "THREADS_KEY"))
                .expect("provider"),
        );
        let handles: Vec<_> = zones
            .iter()
            .map(|z| {
                let (p, z) = (p.clone(), name(z));
                std::thread::spawn(move || {
                    let want = Desired {
                        origin: z.clone(),
                        sets: vec![txt(
                            &z.child("_dmarc"),
                            300,
                            &format!("v=DMARC1; p=none; rua=mailto:d@{z}"),
                        )],
                        spf: Some((RData::txt("v=spf1 -all"), 300)),
                    };
                    let seen = p.fetch(&z).expect("fetch");
                    p.apply(&z, &seen, &diff(&seen.zone, &want).changes)
                        .expect("apply");
                    let now = p.fetch(&z).expect("fetch");
                    assert!(diff(&now.zone, &want).changes.is_empty(), "{z}");
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        for z in &zones {
            assert!(
                bind.dig_short(&format!("_dmarc.{z}"), "TXT")
                    .contains(z.as_str())
            );
        }
    }

    #[test]
    fn narrow_policy_refuses_names_mailauth_does_not_own() {
        let Some(bind) = Bind::try_start(&[(ZONE, ZONE_TEXT)]) else {
            return;
        };
        let p = Rfc2136::from_config(&config(bind.port(), bind.tsig(), "NARROW_KEY"))
            .expect("provider");
        let seen = p.fetch(&name(ZONE)).expect("fetch");
        let change = mailauth::provider::Change::Create {
            new: txt(&name(&format!("www2.{ZONE}")), 300, "x"),
        };
        let err = p.apply(&name(ZONE), &seen, &[change]).expect_err("refused");
        assert!(matches!(err, ProviderError::Rejected { .. }), "{err:?}");
        assert!(err.to_string().contains("REFUSED"), "{err}");
    }
}

// ------------------------------------------------------------ Knot DNS

mod knot_rfc2136 {
    use super::*;
    use mailauth::provider::Change;
    use mailauth::provider::rfc2136::Rfc2136;
    use support::bind::nsupdate;
    use support::knot::Knot;

    #[test]
    fn knot_rfc2136_conformance() {
        let Some(knot) = Knot::try_start(&[(ZONE, ZONE_TEXT)]) else {
            return;
        };
        let (port, admin) = (knot.port(), knot.admin_tsig().clone());
        let edit = Box::new(move |value: &str| {
            nsupdate(
                port,
                &admin,
                &format!(
                    "update delete other.{ZONE}. TXT\nupdate add other.{ZONE}. 300 TXT \"{value}\""
                ),
            )
        });
        let key = knot.tsig().clone();
        let h = super::bind_rfc2136::harness("Knot", port, &key, edit, vec![Box::new(knot)]);
        run_suite(&h);
    }

    /// The documented ACL grants TXT, CNAME and MX only: an A record is
    /// refused (Knot answers NOTAUTH with a BADKEY TSIG) and nothing lands.
    #[test]
    fn knot_acl_refuses_types_mailauth_does_not_manage() {
        let Some(knot) = Knot::try_start(&[(ZONE, ZONE_TEXT)]) else {
            return;
        };
        // SAFETY: test-only; the variable name is unique to this test.
        unsafe { std::env::set_var("KNOT_NARROW_KEY", &knot.tsig().secret) };
        let p = Rfc2136::from_config(&mailauth::provider::rfc2136::Rfc2136Config {
            server: format!("127.0.0.1:{}", knot.port()),
            key_name: knot.tsig().name.clone(),
            algorithm: mailauth::provider::rfc2136::TsigAlgorithmName::HmacSha256,
            secret_env: Some("KNOT_NARROW_KEY".to_string()),
            secret_file: None,
            timeout_secs: 2,
            retries: 0,
        })
        .expect("provider");
        let zone = name(ZONE);
        let seen = p.fetch(&zone).expect("fetch");
        let a = RecordSet::new(
            zone.child("www2"),
            RType::A,
            300,
            vec![RData::Raw("192.0.2.99".to_string())],
        );
        let err = p
            .apply(&zone, &seen, &[Change::Create { new: a }])
            .expect_err("an A update is outside the ACL");
        eprintln!("Knot: A update: {err}");
        // Knot's NOTAUTH carries a BADKEY TSIG with no MAC, so the
        // refusal reads as rejected credentials (see docs/providers.md).
        assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
        let now = p.fetch(&zone).expect("fetch");
        assert_eq!(now.version, seen.version, "nothing was written");
        assert!(now.zone.get(&zone.child("www2"), &RType::A).is_none());
    }
}

// ------------------------------------------------------------ PowerDNS

mod powerdns {
    use super::*;
    use mailauth::provider::powerdns::{PowerDns, PowerDnsConfig};
    use std::rc::Rc;
    use support::pdns::Pdns;
    use support::{TcpProxy, free_port};

    fn config(url: String, key: &str, env: &str) -> PowerDnsConfig {
        // SAFETY: test-only; each variable name is unique to its test.
        unsafe { std::env::set_var(env, key) };
        PowerDnsConfig {
            url,
            server_id: "localhost".to_string(),
            secret_env: Some(env.to_string()),
            secret_file: None,
            nameservers: vec![],
            timeout_secs: 2,
            retries: 2,
            allow_plain_http: false,
        }
    }

    fn start() -> Option<Rc<Pdns>> {
        Pdns::try_start(&[(ZONE, ZONE_TEXT)]).map(Rc::new)
    }

    fn edit(pdns: &Rc<Pdns>) -> Box<dyn Fn(&str)> {
        let pdns = pdns.clone();
        Box::new(move |value: &str| pdns.api_set_txt(ZONE, &format!("other.{ZONE}"), value))
    }

    #[test]
    fn pdns_http_api_conformance() {
        let Some(pdns) = start() else { return };
        let provider =
            PowerDns::from_config(&config(pdns.api_url(), pdns.api_key(), "PDNS_API_KEY"))
                .expect("provider");
        let bad_auth = PowerDns::from_config(&config(pdns.api_url(), "wrong-key", "PDNS_API_BAD"))
            .expect("provider");
        let mut down_cfg = config(
            format!("http://127.0.0.1:{}", free_port()),
            pdns.api_key(),
            "PDNS_API_DOWN",
        );
        down_cfg.retries = 1;
        let down = PowerDns::from_config(&down_cfg).expect("provider");
        let proxy = TcpProxy::start(pdns.http_port(), 1);
        let mut flaky_cfg = config(
            format!("http://127.0.0.1:{}", proxy.port()),
            pdns.api_key(),
            "PDNS_API_FLAKY",
        );
        flaky_cfg.timeout_secs = 1;
        let flaky = PowerDns::from_config(&flaky_cfg).expect("provider");
        let count = proxy.connections.clone();
        let h = Harness {
            label: "PowerDNS API",
            provider: Box::new(provider),
            bad_auth: Box::new(bad_auth),
            down: Box::new(down),
            flaky: Box::new(flaky),
            arm_flaky: Box::new(|| {}),
            // The proxy swallows only the first connection.
            transient_failures: Box::new(move || {
                count.load(std::sync::atomic::Ordering::SeqCst).min(1)
            }),
            third_party_edit: edit(&pdns),
            _guards: vec![Box::new(proxy), Box::new(pdns.clone())],
        };
        run_suite(&h);
    }

    #[test]
    fn pdns_rfc2136_conformance() {
        let Some(pdns) = start() else { return };
        let key = pdns.tsig().clone();
        let h = super::bind_rfc2136::harness(
            "PowerDNS RFC 2136",
            pdns.dns_port(),
            &key,
            edit(&pdns),
            vec![Box::new(pdns.clone())],
        );
        run_suite(&h);
    }

    #[test]
    fn pdns_api_creates_a_missing_zone() {
        let Some(pdns) = start() else { return };
        let p = PowerDns::from_config(&config(pdns.api_url(), pdns.api_key(), "PDNS_API_NEW"))
            .expect("provider");
        let zone = name("new.test");
        let seen = p.fetch(&zone).expect("fetch");
        assert!(!seen.exists);
        let want = Desired {
            origin: zone.clone(),
            sets: vec![txt(&zone.child("_dmarc"), 300, "v=DMARC1; p=none")],
            spf: Some((RData::txt("v=spf1 -all"), 300)),
        };
        let plan = diff(&seen.zone, &want);
        p.apply(&zone, &seen, &plan.changes).expect("create zone");
        let now = p.fetch(&zone).expect("fetch");
        assert!(now.exists);
        assert!(diff(&now.zone, &want).changes.is_empty());
    }
}

// ------------------------------------------------------------ Cloudflare

mod cloudflare {
    use super::*;
    use mailauth::provider::cloudflare::{Cloudflare, CloudflareConfig};
    use std::rc::Rc;
    use std::sync::atomic::Ordering;
    use support::cloudflare_standin::Standin;
    use support::free_port;

    type Rec = (&'static str, &'static str, u32, &'static str, Option<u16>);

    fn seed() -> Vec<Rec> {
        vec![
            ("ns1.example.test", "A", 300, "127.0.0.1", None),
            ("example.test", "A", 300, "192.0.2.10", None),
            ("example.test", "MX", 300, "mx1.example.test", Some(10)),
            ("mx1.example.test", "A", 300, "192.0.2.25", None),
            ("www.example.test", "CNAME", 300, "example.test", None),
            (
                "example.test",
                "TXT",
                600,
                "\"google-site-verification=unowned-1234\"",
                None,
            ),
            (
                "other.example.test",
                "TXT",
                300,
                "\"not mailauth's\" \"two strings\"",
                None,
            ),
        ]
    }

    fn config(base: String, token: &str, env: &str) -> CloudflareConfig {
        // SAFETY: test-only; each variable name is unique to its test.
        unsafe { std::env::set_var(env, token) };
        CloudflareConfig {
            base_url: base,
            secret_env: Some(env.to_string()),
            secret_file: None,
            // Small pages so that listing the zone takes several.
            page_size: 5,
            timeout_secs: 2,
            retries: 2,
            allow_plain_http: false,
        }
    }

    #[test]
    fn cloudflare_standin_conformance() {
        let token = "cf-test-token-0123456789";
        let cf = Rc::new(Standin::start(token, &[(ZONE, seed())]));
        let provider =
            Cloudflare::from_config(&config(cf.base_url(), token, "CF_TOKEN")).expect("provider");
        let bad_auth =
            Cloudflare::from_config(&config(cf.base_url(), "wrong", "CF_BAD")).expect("provider");
        let mut down_cfg = config(
            format!("http://127.0.0.1:{}/client/v4", free_port()),
            token,
            "CF_DOWN",
        );
        down_cfg.retries = 1;
        let down = Cloudflare::from_config(&down_cfg).expect("provider");
        let flaky =
            Cloudflare::from_config(&config(cf.base_url(), token, "CF_FLAKY")).expect("provider");
        let (arm, count, edit) = (cf.clone(), cf.throttled.clone(), cf.clone());
        let h = Harness {
            label: "Cloudflare stand-in",
            provider: Box::new(provider),
            bad_auth: Box::new(bad_auth),
            down: Box::new(down),
            flaky: Box::new(flaky),
            arm_flaky: Box::new(move || arm.throttle_next(1)),
            transient_failures: Box::new(move || count.load(Ordering::SeqCst)),
            third_party_edit: Box::new(move |value: &str| {
                edit.set_txt(ZONE, &format!("other.{ZONE}"), &format!("\"{value}\""))
            }),
            _guards: vec![Box::new(cf.clone())],
        };
        run_suite(&h);
        assert!(
            cf.requests.load(Ordering::SeqCst) > 20,
            "pagination should make several requests"
        );
    }

    #[test]
    fn cloudflare_rejects_txt_over_2048_characters() {
        let token = "cf-test-token";
        let cf = Standin::start(token, &[(ZONE, seed())]);
        let p = Cloudflare::from_config(&config(cf.base_url(), token, "CF_TOKEN_LONG"))
            .expect("provider");
        let seen = p.fetch(&name(ZONE)).expect("fetch");
        let set = txt(
            &name(&format!("big._domainkey.{ZONE}")),
            300,
            &"a".repeat(2100),
        );
        let err = p
            .apply(
                &name(ZONE),
                &seen,
                &[mailauth::provider::Change::Create { new: set }],
            )
            .expect_err("too long");
        assert!(matches!(err, ProviderError::Rejected { .. }), "{err:?}");
        assert!(err.to_string().contains("1004"), "{err}");
        assert_eq!(cf.records(ZONE).len(), seed().len(), "nothing was written");
    }

    #[test]
    fn cloudflare_gives_up_after_bounded_retries() {
        let token = "cf-test-token";
        let cf = Standin::start(token, &[(ZONE, seed())]);
        let mut cfg = config(cf.base_url(), token, "CF_TOKEN_429");
        cfg.retries = 1;
        let p = Cloudflare::from_config(&cfg).expect("provider");
        cf.throttle_next(5);
        let err = p.fetch(&name(ZONE)).expect_err("still throttled");
        assert!(err.to_string().contains("429"), "{err}");
        assert_eq!(
            cf.throttled.load(Ordering::SeqCst),
            2,
            "one try plus one retry"
        );
    }
}

// ------------------------------------------------------------ Route 53

/// Route 53 on moto's server mode. moto checks no signature and cannot
/// throttle, so a loopback gate in front of it answers `403
/// InvalidClientTokenId` to an unknown access key and `400 Throttling`
/// when armed (see tests/support/moto.rs and docs/providers.md for what
/// moto does differently from the real API).
mod route53 {
    use super::*;
    use mailauth::provider::Change;
    use mailauth::provider::route53::{Credentials, Route53, Route53Config};
    use std::rc::Rc;
    use std::sync::atomic::Ordering;
    use support::free_port;
    use support::moto::{Moto, Route53Gate};

    const KEY: &str = "AKIDMAILAUTHTEST";

    fn creds(id: &str) -> Credentials {
        Credentials {
            access_key_id: id.to_string(),
            secret_access_key: "r53-secret-access-key-4711".to_string(),
            session_token: None,
            source: "test".to_string(),
        }
    }

    fn config(endpoint: String, page_size: u32) -> Route53Config {
        Route53Config {
            endpoint,
            profile: None,
            hosted_zone_id: None,
            page_size,
            timeout_secs: 2,
            retries: 2,
            sync_timeout_secs: 10,
            allow_plain_http: false,
        }
    }

    fn provider(endpoint: String, key: &str, page_size: u32) -> Route53 {
        Route53::with_credentials(&config(endpoint, page_size), creds(key)).expect("provider")
    }

    fn q(s: &str) -> String {
        format!("\"{s}\"")
    }

    /// The suite's seed zone, as Route 53 change tuples.
    fn seed(moto: &Moto, zone: &str) -> String {
        let id = moto.create_zone(zone);
        let n = |l: &str| {
            if l.is_empty() {
                zone.to_string()
            } else {
                format!("{l}.{zone}")
            }
        };
        moto.change(
            &id,
            &[
                ("CREATE", &n("ns1"), "A", 300, vec!["127.0.0.1".into()]),
                ("CREATE", &n(""), "A", 300, vec!["192.0.2.10".into()]),
                ("CREATE", &n(""), "MX", 300, vec![format!("10 mx1.{zone}.")]),
                ("CREATE", &n("mx1"), "A", 300, vec!["192.0.2.25".into()]),
                ("CREATE", &n("www"), "CNAME", 300, vec![format!("{zone}.")]),
                (
                    "CREATE",
                    &n(""),
                    "TXT",
                    600,
                    vec![q("google-site-verification=unowned-1234")],
                ),
                (
                    "CREATE",
                    &n("other"),
                    "TXT",
                    300,
                    vec!["\"not mailauth's\" \"two strings\"".into()],
                ),
            ],
        );
        id
    }

    #[test]
    fn route53_moto_conformance() {
        let Some(moto) = Moto::try_start() else {
            return;
        };
        let moto = Rc::new(moto);
        let zone_id = seed(&moto, ZONE);
        let gate = Rc::new(Route53Gate::start(moto.port(), KEY));
        // Pages of 3 RRsets: the cursor lands between names and between
        // types of one name (the apex holds A, MX, NS, SOA and TXT).
        let p = provider(gate.endpoint(), KEY, 3);
        let bad_auth = provider(gate.endpoint(), "AKIDUNKNOWN", 3);
        let mut down_cfg = config(format!("http://127.0.0.1:{}", free_port()), 3);
        down_cfg.retries = 1;
        let down = Route53::with_credentials(&down_cfg, creds(KEY)).expect("provider");
        let flaky = provider(gate.endpoint(), KEY, 3);
        let (arm, count, edit) = (gate.clone(), gate.throttled.clone(), moto.clone());
        let h = Harness {
            label: "Route 53 (moto)",
            provider: Box::new(p),
            bad_auth: Box::new(bad_auth),
            down: Box::new(down),
            flaky: Box::new(flaky),
            // One Throttling answer, then one more on the write path.
            arm_flaky: Box::new(move || arm.throttle_next(1)),
            transient_failures: Box::new(move || count.load(Ordering::SeqCst)),
            third_party_edit: Box::new(move |value: &str| {
                edit.change(
                    &zone_id,
                    &[(
                        "UPSERT",
                        &format!("other.{ZONE}"),
                        "TXT",
                        300,
                        vec![q(value)],
                    )],
                )
            }),
            _guards: vec![Box::new(gate.clone()), Box::new(moto.clone())],
        };
        run_suite(&h);
        assert!(gate.refused.load(Ordering::SeqCst) >= 2, "bad key refused");
        // Every batch carried DELETE of the values read + CREATE of the new
        // ones, never UPSERT (so the real API refuses a batch that moved).
        let posted = gate.posted.lock().expect("posted").clone();
        assert!(!posted.is_empty());
        for b in &posted {
            assert!(!b.contains("UPSERT"), "{b}");
        }
        assert!(
            posted.iter().any(|b| b.contains("<Action>DELETE</Action>")
                && b.contains("p=none")
                && b.contains("<Action>CREATE</Action>")
                && b.contains("p=quarantine")),
            "the DMARC update deletes the old value and creates the new"
        );
        assert!(gate.count("/change/") >= posted.len(), "GetChange polled");
    }

    /// A throttled write (400 Throttling means not applied) is sent again
    /// after a backoff and lands once; a zone still throttled after the
    /// retries gives a clear error and nothing is written.
    #[test]
    fn route53_throttled_write_is_retried_then_given_up() {
        let Some(moto) = Moto::try_start() else {
            return;
        };
        let id = moto.create_zone(ZONE);
        let gate = Route53Gate::start(moto.port(), KEY);
        let p = provider(gate.endpoint(), KEY, 300);
        let zone = name(ZONE);
        let seen = p.fetch(&zone).expect("fetch");
        let dmarc = txt(&zone.child("_dmarc"), 300, "v=DMARC1; p=none");
        // The next request is the write's re-read; throttle it and the POST.
        gate.throttle_next(2);
        p.apply(&zone, &seen, &[Change::Create { new: dmarc.clone() }])
            .expect("retried through the throttling");
        assert_eq!(gate.throttled.load(Ordering::SeqCst), 2);
        assert_eq!(gate.count("POST"), 1, "the batch reached moto once");
        let now = p.fetch(&zone).expect("fetch");
        assert_eq!(now.zone.get(&dmarc.name, &dmarc.rtype), Some(&dmarc));

        gate.throttle_next(100);
        let err = p.fetch(&zone).expect_err("still throttled");
        assert!(
            matches!(err, ProviderError::Unreachable { .. })
                && err.to_string().contains("Throttling"),
            "{err:?}"
        );
        assert_eq!(
            gate.throttled.load(Ordering::SeqCst),
            2 + 3,
            "one try plus two retries"
        );
        gate.throttle_next(0);
        assert!(moto.list(&id).contains("p=none"));
    }

    /// A zone of 650 record sets takes three pages of 300 (the API's
    /// maximum); every RRset is read and a change still applies.
    #[test]
    fn route53_zone_of_several_pages() {
        let Some(moto) = Moto::try_start() else {
            return;
        };
        let id = moto.create_zone(ZONE);
        let many: Vec<(String, String)> = (0..650)
            .map(|i| (format!("host{i:03}.{ZONE}"), q(&format!("unowned {i}"))))
            .collect();
        let changes: Vec<(&str, &str, &str, u32, Vec<String>)> = many
            .iter()
            .map(|(n, v)| ("CREATE", n.as_str(), "TXT", 300, vec![v.clone()]))
            .collect();
        moto.change(&id, &changes);
        let gate = Route53Gate::start(moto.port(), KEY);
        let p = provider(gate.endpoint(), KEY, 300);
        let zone = name(ZONE);
        let seen = p.fetch(&zone).expect("fetch");
        assert_eq!(gate.count("/rrset?"), 3, "three pages");
        let hosts = seen
            .zone
            .sets
            .keys()
            .filter(|k| k.0.as_str().starts_with("host"))
            .count();
        assert_eq!(hosts, 650, "every RRset of every page");
        let dmarc = txt(&zone.child("_dmarc"), 300, "v=DMARC1; p=none");
        p.apply(&zone, &seen, &[Change::Create { new: dmarc.clone() }])
            .expect("apply");
        let now = p.fetch(&zone).expect("fetch");
        assert_eq!(now.zone.get(&dmarc.name, &dmarc.rtype), Some(&dmarc));
        assert_eq!(now.zone.sets.len(), seen.zone.sets.len() + 1);
    }

    /// The binary: plan → apply → plan shows nothing, with the key from
    /// the standard environment variables; a secret in the YAML is refused
    /// by name; no credentials anywhere is a clear error.
    #[test]
    fn route53_plan_apply_through_the_binary() {
        let Some(moto) = Moto::try_start() else {
            return;
        };
        let id = seed(&moto, ZONE);
        let gate = Route53Gate::start(moto.port(), KEY);
        let yaml = format!(
            "provider:\n  kind: route53\n  endpoint: {}\n  sync_timeout_secs: 10\n\
             domains:\n  {ZONE}:\n    spf: {{ mx: true, all: softfail }}\n    \
             dmarc: {{ p: quarantine, rua: [mailto:dmarc@{ZONE}] }}\n",
            gate.endpoint()
        );
        let case = util::Case::new()
            .config(&yaml)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", "r53-secret-from-env")
            .env("AWS_SESSION_TOKEN", "session-token-4711");
        let plan = case.run(&["plan", "--detailed-exitcode"]).code(2).stdout;
        assert!(plan.contains(&format!("+ _dmarc.{ZONE} TXT")), "{plan}");
        let r = case.run(&["apply", "--auto-approve"]).ok();
        assert!(!r.stdout.contains("r53-secret") && !r.stderr.contains("r53-secret"));
        let listed = moto.list(&id);
        assert!(listed.contains("p=quarantine"), "{listed}");
        assert!(listed.contains("v=spf1 mx ~all"), "{listed}");
        assert!(listed.contains("google-site-verification"), "{listed}");
        case.run(&["plan", "--detailed-exitcode"]).code(0);
        // The session token travels signed, the secret never.
        let heads = gate.heads.lock().expect("heads").clone();
        assert!(
            heads.iter().all(|h| {
                let l = h.to_ascii_lowercase();
                l.contains("x-amz-security-token: session-token-4711")
                    && l.split("signedheaders=").nth(1).is_some_and(|x| {
                        x.split(',')
                            .next()
                            .unwrap_or("")
                            .contains("x-amz-security-token")
                    })
                    && !l.contains("r53-secret")
            }),
            "{heads:?}"
        );

        let with_secret = yaml.replace(
            "  kind: route53\n",
            "  kind: route53\n  aws_secret_access_key: inline\n",
        );
        let r = util::Case::new().config(&with_secret).run(&["plan"]);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("aws_secret_access_key"), "{}", r.stderr);

        let dir = tempfile::tempdir().expect("tmp");
        let r = util::Case::new()
            .config(&yaml)
            .env("AWS_ACCESS_KEY_ID", "")
            .env("AWS_PROFILE", "nobody")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                &dir.path().join("none").display().to_string(),
            )
            .env(
                "AWS_CONFIG_FILE",
                &dir.path().join("none2").display().to_string(),
            )
            .run(&["plan"])
            .code(1);
        let out = format!("{}{}", r.stdout, r.stderr);
        assert!(
            out.contains("no AWS credentials") && out.contains("nobody"),
            "{out}"
        );
        assert_eq!(gate.refused.load(Ordering::SeqCst), 0);
    }

    /// The batch is applied but its answer is lost (a timeout): the
    /// re-read finds the plan applied and nothing is sent twice. Lost on
    /// its way instead: the zone is still as the plan read it, so the
    /// batch is sent once more and lands once.
    #[test]
    fn route53_write_with_a_lost_answer_or_request() {
        use support::pdns::{Loss, LossyProxy};
        let Some(moto) = Moto::try_start() else {
            return;
        };
        let id = moto.create_zone(ZONE);
        let proxy = LossyProxy::start(moto.port());
        let mut cfg = config(format!("http://127.0.0.1:{}", proxy.port()), 300);
        cfg.timeout_secs = 1;
        let p = Route53::with_credentials(&cfg, creds(KEY)).expect("provider");
        let zone = name(ZONE);
        for (loss, value, delivered) in [
            (Loss::Answer, "v=DMARC1; p=none", 1),
            (Loss::Request, "v=DMARC1; p=reject", 2),
        ] {
            let seen = p.fetch(&zone).expect("fetch");
            let want = txt(&zone.child("_dmarc"), 300, value);
            let plan = diff(
                &seen.zone,
                &Desired {
                    origin: zone.clone(),
                    sets: vec![want.clone()],
                    spf: None,
                },
            );
            proxy.lose_next("POST", loss);
            p.apply(&zone, &seen, &plan.changes)
                .unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(
                proxy.delivered.load(Ordering::SeqCst),
                delivered,
                "{value}: each batch reached Route 53 once"
            );
            let now = p.fetch(&zone).expect("fetch");
            assert_eq!(now.zone.get(&want.name, &want.rtype), Some(&want));
        }
        assert_eq!(moto.list(&id).matches("_dmarc").count(), 1);
    }

    /// GetChange is polled until INSYNC (moto is INSYNC at once, so the
    /// gate answers PENDING first); a change that stays PENDING past
    /// `sync_timeout_secs` is a clear error saying it was accepted.
    #[test]
    fn route53_change_is_polled_until_insync_within_a_bound() {
        let Some(moto) = Moto::try_start() else {
            return;
        };
        moto.create_zone(ZONE);
        let gate = Route53Gate::start(moto.port(), KEY);
        let mut cfg = config(gate.endpoint(), 300);
        cfg.sync_timeout_secs = 1;
        let p = Route53::with_credentials(&cfg, creds(KEY)).expect("provider");
        let zone = name(ZONE);
        let seen = p.fetch(&zone).expect("fetch");
        gate.pending_next(1);
        let dmarc = txt(&zone.child("_dmarc"), 300, "v=DMARC1; p=none");
        p.apply(&zone, &seen, &[Change::Create { new: dmarc }])
            .expect("INSYNC on the second poll");
        assert_eq!(gate.count("/change/"), 1, "then moto's INSYNC");

        let seen = p.fetch(&zone).expect("fetch");
        gate.pending_next(1000);
        let spf = txt(&zone, 300, "v=spf1 -all");
        let err = p
            .apply(&zone, &seen, &[Change::Create { new: spf.clone() }])
            .expect_err("still PENDING");
        assert!(
            err.to_string().contains("accepted") && err.to_string().contains("PENDING"),
            "{err}"
        );
        gate.pending_next(0);
        let now = p.fetch(&zone).expect("fetch");
        assert_eq!(now.zone.get(&spf.name, &spf.rtype), Some(&spf));
    }

    /// The SigV4 signer against an independent one: botocore's
    /// `SigV4Auth` (installed with moto), on a paged listing with a cursor
    /// that needs encoding and on a change batch with a session token, at
    /// a fixed time. (moto's own signature check cannot be used: it refuses
    /// correctly signed GETs.)
    #[test]
    fn route53_signatures_match_botocore() {
        use mailauth::provider::route53::{SignRequest, sign_v4};
        if support::require_binary("moto_server").is_none() {
            return;
        }
        let c = Credentials {
            access_key_id: "AKIDBOTOCORE".to_string(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string(),
            session_token: Some("FQoGZXIvYXdzE//token+/=".to_string()),
            source: "test".to_string(),
        };
        let body = "<?xml version=\"1.0\"?><ChangeResourceRecordSetsRequest><Value>\"v=DMARC1; p=none\"</Value></ChangeResourceRecordSetsRequest>";
        type Pairs = Vec<(String, String)>;
        let cases: Vec<(&str, &str, Pairs, Pairs, &str)> = vec![
            (
                "GET",
                "/2013-04-01/hostedzone/Z0123/rrset",
                vec![
                    ("maxitems".into(), "300".into()),
                    ("name".into(), "\\052._domainkey.example.test.".into()),
                    ("type".into(), "TXT".into()),
                    ("identifier".into(), "eu west/1 ~x".into()),
                ],
                vec![
                    ("x-amz-date".into(), "20260102T030405Z".into()),
                    (
                        "x-amz-security-token".into(),
                        c.session_token.clone().unwrap(),
                    ),
                ],
                "",
            ),
            (
                "POST",
                "/2013-04-01/hostedzone/Z0123/rrset/",
                vec![],
                vec![
                    ("x-amz-date".into(), "20260102T030405Z".into()),
                    ("content-type".into(), "text/xml".into()),
                    (
                        "x-amz-security-token".into(),
                        c.session_token.clone().unwrap(),
                    ),
                ],
                body,
            ),
        ];
        let script = r#"
import sys, json, datetime
from urllib.parse import quote
from botocore import auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
auth.get_current_datetime = lambda: datetime.datetime(2026, 1, 2, 3, 4, 5)
for line in sys.stdin:
    method, path, query, headers, body, ak, sk, tok = json.loads(line)
    qs = "&".join(quote(k, safe="-_.~") + "=" + quote(v, safe="-_.~") for k, v in query)
    url = "https://route53.amazonaws.com" + path + ("?" + qs if qs else "")
    h = {k: v for k, v in headers if k not in ("x-amz-date", "x-amz-security-token")}
    req = AWSRequest(method=method, url=url, data=body.encode(), headers=h)
    auth.SigV4Auth(Credentials(ak, sk, tok), "route53", "us-east-1").add_auth(req)
    print(req.headers["Authorization"])
"#;
        let mut input = String::new();
        let mut ours = Vec::new();
        for (method, path, query, headers, body) in &cases {
            ours.push(sign_v4(
                &SignRequest {
                    method,
                    host: "route53.amazonaws.com",
                    path,
                    query,
                    headers,
                    body: body.as_bytes(),
                },
                &c,
                "20260102T030405Z",
                "us-east-1",
                "route53",
            ));
            input.push_str(
                &serde_json::json!([
                    method,
                    path,
                    query,
                    headers,
                    body,
                    c.access_key_id,
                    c.secret_access_key,
                    c.session_token
                ])
                .to_string(),
            );
            input.push('\n');
        }
        use std::io::Write as _;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(ours, theirs);
    }

    /// Credentials come from a profile of the shared files (never from the
    /// config); none found is a clear error naming where it looked; a
    /// missing hosted zone is reported, not created.
    #[test]
    fn route53_credentials_from_the_aws_files() {
        let Some(moto) = Moto::try_start() else {
            return;
        };
        seed(&moto, ZONE);
        let gate = Route53Gate::start(moto.port(), KEY);
        let dir = tempfile::tempdir().expect("tmp");
        let cred = dir.path().join("credentials");
        std::fs::write(
            &cred,
            format!(
                "[mailauth-test]\naws_access_key_id = {KEY}\naws_secret_access_key = s3cr3t-from-file\n"
            ),
        )
        .expect("write");
        // SAFETY: test-only; no other test of this binary reads these.
        unsafe {
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &cred);
            std::env::set_var("AWS_CONFIG_FILE", dir.path().join("config"));
        }
        let mut cfg = config(gate.endpoint(), 300);
        cfg.profile = Some("mailauth-test".to_string());
        let p = Route53::from_config(&cfg).expect("credentials from the profile");
        let seen = p
            .fetch(&name(ZONE))
            .expect("fetch signed with the profile's key");
        assert!(seen.exists);
        let absent = p.fetch(&name("absent.test")).expect("fetch");
        assert!(!absent.exists);
        let err = p
            .apply(
                &name("absent.test"),
                &absent,
                &[Change::Create {
                    new: txt(&name("_dmarc.absent.test"), 300, "v=DMARC1; p=none"),
                }],
            )
            .expect_err("no such hosted zone");
        assert!(err.to_string().contains("create it in Route 53"), "{err}");

        cfg.profile = Some("nobody".to_string());
        let err = Route53::from_config(&cfg).expect_err("no credentials");
        let msg = err.to_string();
        assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
        assert!(
            msg.contains("[nobody]") && msg.contains("AWS_ACCESS_KEY_ID"),
            "names where it looked: {msg}"
        );
        assert!(!msg.contains("s3cr3t"), "{msg}");
    }
}

// ------------------------------------------------------------ credentials

mod credentials {
    use super::*;
    use mailauth::provider::Change;
    use mailauth::provider::cloudflare::{Cloudflare, CloudflareConfig};
    use mailauth::provider::powerdns::{PowerDns, PowerDnsConfig};
    use std::sync::atomic::Ordering;
    use support::cloudflare_standin::Standin;
    use support::pdns::{Recorder, Redirector};

    fn pdns_config(url: String, env: &str) -> PowerDnsConfig {
        // SAFETY: test-only; each variable name is unique to its test.
        unsafe { std::env::set_var(env, "pdns-secret-key-4711") };
        PowerDnsConfig {
            url,
            server_id: "localhost".to_string(),
            secret_env: Some(env.to_string()),
            secret_file: None,
            nameservers: vec![],
            timeout_secs: 2,
            retries: 0,
            allow_plain_http: false,
        }
    }

    fn cf_config(base_url: String, env: &str) -> CloudflareConfig {
        // SAFETY: test-only; each variable name is unique to its test.
        unsafe { std::env::set_var(env, "cf-secret-token-4711") };
        CloudflareConfig {
            base_url,
            secret_env: Some(env.to_string()),
            secret_file: None,
            page_size: 100,
            timeout_secs: 2,
            retries: 0,
            allow_plain_http: false,
        }
    }

    /// What the other host received, secrets included.
    fn leaked(recorder: &Recorder) -> Vec<String> {
        recorder.heads.lock().expect("heads").clone()
    }

    #[test]
    fn pdns_api_key_is_not_sent_after_a_redirect_to_another_host() {
        let other = Recorder::start();
        let redirect = Redirector::start(other.port());
        let p = PowerDns::from_config(&pdns_config(
            format!("http://127.0.0.1:{}", redirect.port()),
            "PDNS_KEY_REDIRECT",
        ))
        .expect("provider");
        let err = p
            .fetch(&name(ZONE))
            .expect_err("a cross-origin redirect is refused");
        assert!(matches!(err, ProviderError::Rejected { .. }), "{err:?}");
        assert!(err.to_string().contains("redirect"), "{err}");
        let heads = leaked(&other);
        assert!(
            heads.iter().all(|h| !h.contains("pdns-secret-key-4711")),
            "the API key reached the other host: {heads:?}"
        );
        assert!(
            heads.is_empty(),
            "nothing goes to the other host: {heads:?}"
        );
    }

    #[test]
    fn cloudflare_token_is_not_sent_after_a_redirect_to_another_host() {
        let other = Recorder::start();
        let redirect = Redirector::start(other.port());
        let p = Cloudflare::from_config(&cf_config(
            format!("http://127.0.0.1:{}/client/v4", redirect.port()),
            "CF_TOKEN_REDIRECT",
        ))
        .expect("provider");
        let err = p
            .fetch(&name(ZONE))
            .expect_err("a cross-origin redirect is refused");
        assert!(err.to_string().contains("redirect"), "{err}");
        let heads = leaked(&other);
        assert!(
            heads.iter().all(|h| !h.contains("cf-secret-token-4711")),
            "the token reached the other host: {heads:?}"
        );
        assert!(
            heads.is_empty(),
            "nothing goes to the other host: {heads:?}"
        );
    }

    #[test]
    fn route53_signed_requests_are_not_sent_after_a_redirect_to_another_host() {
        use mailauth::provider::route53::{Credentials, Route53, Route53Config};
        let other = Recorder::start();
        let redirect = Redirector::start(other.port());
        let cfg = Route53Config {
            endpoint: format!("http://127.0.0.1:{}", redirect.port()),
            profile: None,
            hosted_zone_id: None,
            page_size: 300,
            timeout_secs: 2,
            retries: 0,
            sync_timeout_secs: 5,
            allow_plain_http: false,
        };
        let creds = Credentials {
            access_key_id: "AKIDREDIRECT".to_string(),
            secret_access_key: "r53-secret-4711".to_string(),
            session_token: Some("r53-session-token-4711".to_string()),
            source: "test".to_string(),
        };
        let p = Route53::with_credentials(&cfg, creds.clone()).expect("provider");
        let err = p
            .fetch(&name(ZONE))
            .expect_err("a cross-origin redirect is refused");
        assert!(err.to_string().contains("redirect"), "{err}");
        let heads = leaked(&other);
        assert!(
            heads.is_empty(),
            "nothing goes to the other host: {heads:?}"
        );
        // And plain HTTP to a remote endpoint needs the opt-in.
        let remote = Route53Config {
            endpoint: "http://route53.example.net".to_string(),
            ..cfg
        };
        let err = Route53::with_credentials(&remote, creds).expect_err("plain HTTP refused");
        assert!(
            err.to_string().contains("provider.endpoint")
                && err.to_string().contains("allow_plain_http"),
            "{err}"
        );
    }

    #[test]
    fn plain_http_to_a_remote_host_needs_an_explicit_opt_in() {
        // 192.0.2.0/24 is TEST-NET-1: nothing is contacted either way.
        let url = "http://192.0.2.1:8081".to_string();
        let err = PowerDns::from_config(&pdns_config(url.clone(), "PDNS_KEY_PLAIN"))
            .expect_err("plain HTTP to a remote host is refused");
        let msg = err.to_string();
        assert!(
            msg.contains("provider.url") && msg.contains("allow_plain_http"),
            "names the field and the opt-in: {msg}"
        );
        let mut cfg = pdns_config(url, "PDNS_KEY_PLAIN");
        cfg.allow_plain_http = true;
        PowerDns::from_config(&cfg).expect("accepted with the opt-in");
        for ok in [
            "https://192.0.2.1:8081",
            "http://127.0.0.1:8081",
            "http://localhost:8081",
            "http://[::1]:8081",
        ] {
            PowerDns::from_config(&pdns_config(ok.to_string(), "PDNS_KEY_PLAIN"))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }

        let url = "http://api.example.net/client/v4".to_string();
        let err = Cloudflare::from_config(&cf_config(url.clone(), "CF_TOKEN_PLAIN"))
            .expect_err("plain HTTP to a remote host is refused");
        let msg = err.to_string();
        assert!(
            msg.contains("provider.base_url") && msg.contains("allow_plain_http"),
            "{msg}"
        );
        let mut cfg = cf_config(url, "CF_TOKEN_PLAIN");
        cfg.allow_plain_http = true;
        Cloudflare::from_config(&cfg).expect("accepted with the opt-in");
    }

    #[test]
    fn cloudflare_write_lost_to_a_timeout_is_not_applied_twice() {
        let token = "cf-secret-token-4711";
        let cf = Standin::start(token, &[(ZONE, super::cloudflare_seed())]);
        let mut cfg = cf_config(cf.base_url(), "CF_TOKEN_STALL");
        cfg.timeout_secs = 1;
        cfg.retries = 3;
        let p = Cloudflare::from_config(&cfg).expect("provider");
        let zone = name(ZONE);
        let seen = p.fetch(&zone).expect("fetch");
        let dmarc = txt(&zone.child("_dmarc"), 300, "v=DMARC1; p=none");
        cf.stall_next_writes(1);
        p.apply(&zone, &seen, &[Change::Create { new: dmarc }])
            .expect("the re-read finds the write applied");
        let matching = cf
            .records(ZONE)
            .iter()
            .filter(|r| r.name == format!("_dmarc.{ZONE}") && r.rtype == "TXT")
            .count();
        assert_eq!(matching, 1, "the record exists once");
        assert_eq!(
            cf.writes.load(Ordering::SeqCst),
            1,
            "the POST was sent once, not again after the timeout"
        );
        // A write that did not take effect before its answer was lost is
        // sent again once the re-read shows it missing: covered by the
        // throttled path of the conformance suite (429 is not applied).
    }
}

mod powerdns_writes {
    use super::*;
    use mailauth::provider::Change;
    use mailauth::provider::powerdns::{PowerDns, PowerDnsConfig};
    use std::sync::atomic::Ordering;
    use support::pdns::{Loss, LossyProxy, Pdns};

    fn provider(port: u16, key: &str) -> PowerDns {
        // SAFETY: test-only; the variable name is unique to this module.
        unsafe { std::env::set_var("PDNS_KEY_LOSSY", key) };
        PowerDns::from_config(&PowerDnsConfig {
            url: format!("http://127.0.0.1:{port}"),
            server_id: "localhost".to_string(),
            secret_env: Some("PDNS_KEY_LOSSY".to_string()),
            secret_file: None,
            nameservers: vec![],
            timeout_secs: 1,
            retries: 3,
            allow_plain_http: false,
        })
        .expect("provider")
    }

    /// The PATCH reaches PowerDNS and is applied, its answer is lost (a
    /// timeout): the re-read finds the change, nothing is sent twice.
    #[test]
    fn pdns_patch_whose_answer_is_lost_is_not_sent_twice() {
        let Some(pdns) = Pdns::try_start(&[(ZONE, ZONE_TEXT)]) else {
            return;
        };
        let proxy = LossyProxy::start(pdns.http_port());
        let p = provider(proxy.port(), pdns.api_key());
        let zone = name(ZONE);
        let seen = p.fetch(&zone).expect("fetch");
        let dmarc = txt(&zone.child("_dmarc"), 300, "v=DMARC1; p=none");
        proxy.lose_next("PATCH", Loss::Answer);
        p.apply(&zone, &seen, &[Change::Create { new: dmarc.clone() }])
            .expect("the re-read finds the PATCH applied");
        assert_eq!(
            proxy.delivered.load(Ordering::SeqCst),
            1,
            "the PATCH reached the server once"
        );
        let now = p.fetch(&zone).expect("fetch");
        assert_eq!(now.zone.get(&dmarc.name, &dmarc.rtype), Some(&dmarc));
    }

    /// The PATCH is lost on its way: the re-read shows the zone as the
    /// plan read it, so the PATCH is sent once more and lands once.
    #[test]
    fn pdns_patch_lost_on_its_way_is_sent_again_once() {
        let Some(pdns) = Pdns::try_start(&[(ZONE, ZONE_TEXT)]) else {
            return;
        };
        let proxy = LossyProxy::start(pdns.http_port());
        let p = provider(proxy.port(), pdns.api_key());
        let zone = name(ZONE);
        let seen = p.fetch(&zone).expect("fetch");
        let dmarc = txt(&zone.child("_dmarc"), 300, "v=DMARC1; p=reject");
        proxy.lose_next("PATCH", Loss::Request);
        p.apply(&zone, &seen, &[Change::Create { new: dmarc.clone() }])
            .expect("sent again after the re-read");
        assert_eq!(proxy.delivered.load(Ordering::SeqCst), 1);
        let now = p.fetch(&zone).expect("fetch");
        assert_eq!(now.zone.get(&dmarc.name, &dmarc.rtype), Some(&dmarc));
    }
}

fn cloudflare_seed() -> Vec<(&'static str, &'static str, u32, &'static str, Option<u16>)> {
    vec![
        ("example.test", "A", 300, "192.0.2.10", None),
        ("www.example.test", "CNAME", 300, "example.test", None),
    ]
}
