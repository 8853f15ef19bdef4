//! `dns::Resolver` against a real BIND: answers, split TXT strings,
//! NXDOMAIN versus "no data", SOA/NS, direct non-recursive queries, the
//! `SpfDns` mapping, and many threads sharing one resolver.

use crate::support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use mailauth::dns::{ResolveError, Resolver};
use mailauth::spf::{DnsError, SpfDns};
use support::bind::Bind;

const ZONE: &str = "$TTL 300
@ IN SOA ns1 hostmaster 42 3600 600 86400 300
@ IN NS ns1
ns1 IN A 127.0.0.1
@ IN TXT \"v=spf1 \" \"ip4:192.0.2.1 -all\"
@ IN TXT \"other\"
@ IN MX 10 mail
mail IN A 192.0.2.25
mail IN AAAA 2001:db8::25
empty IN CNAME mail
1.2.0.192.in-addr.arpa.example.test. IN PTR mail
";

fn start() -> Option<(Bind, Resolver)> {
    let bind = Bind::try_start(&[("example.test", ZONE)])?;
    // Ready means the zone answers (BIND logs "running" before loading).
    let loaded = support::wait_until(Duration::from_secs(15), || {
        !bind.dig_short("example.test", "SOA").trim().is_empty()
    });
    assert!(loaded, "BIND did not load example.test");
    let addr = SocketAddr::from(([127, 0, 0, 1], bind.port()));
    let r = Resolver::with_nameservers(&[addr], Duration::from_secs(2)).expect("resolver");
    Some((bind, r))
}

#[test]
fn answers_and_negative_answers() {
    let Some((bind, r)) = start() else { return };
    let mut txt = r.txt_records("example.test").expect("txt");
    txt.sort();
    assert_eq!(txt.len(), 2);
    assert_eq!(
        txt[1].strings,
        vec![b"v=spf1 ".to_vec(), b"ip4:192.0.2.1 -all".to_vec()]
    );
    assert_eq!(txt[1].text(), "v=spf1 ip4:192.0.2.1 -all");
    let mut joined = r.txt("example.test").expect("txt");
    joined.sort();
    assert_eq!(joined[1], b"v=spf1 ip4:192.0.2.1 -all".to_vec());

    // NXDOMAIN versus a name that exists without the type.
    assert!(matches!(
        r.txt("nope.example.test"),
        Err(ResolveError::NxDomain { .. })
    ));
    assert_eq!(
        r.txt("mail.example.test").expect("no data"),
        Vec::<Vec<u8>>::new()
    );

    let soa = r.soa("example.test").expect("soa").expect("apex has SOA");
    assert_eq!(soa.serial, 42);
    assert_eq!(soa.mname, "ns1.example.test");
    assert_eq!(r.soa("mail.example.test").expect("no SOA there"), None);
    assert_eq!(
        r.ns("example.test").expect("ns"),
        vec!["ns1.example.test".to_string()]
    );
    let mut addrs = r.addresses("mail.example.test").expect("addresses");
    addrs.sort();
    assert_eq!(addrs.len(), 2);

    // The same through the SPF trait.
    let spf: &dyn SpfDns = &r;
    assert_eq!(
        spf.a("mail.example.test").unwrap(),
        vec![Ipv4Addr::new(192, 0, 2, 25)]
    );
    assert_eq!(
        spf.mx("example.test").unwrap()[0].exchange,
        "mail.example.test"
    );
    assert_eq!(
        spf.a("empty.example.test").unwrap(),
        vec![Ipv4Addr::new(192, 0, 2, 25)]
    );
    assert!(matches!(
        spf.txt("nope.example.test"),
        Err(DnsError::NxDomain { .. })
    ));
    // Outside every zone BIND serves it answers REFUSED: temporary.
    let refused = spf.txt("example.org");
    assert!(
        matches!(refused, Err(DnsError::Temporary { .. })),
        "{refused:?}"
    );

    // Direct, non-recursive: the same data from the server itself.
    let direct = Resolver::direct(
        SocketAddr::from(([127, 0, 0, 1], bind.port())),
        Duration::from_secs(1),
    )
    .expect("direct");
    assert_eq!(direct.soa("example.test").unwrap().unwrap().serial, 42);
    assert!(matches!(direct.soa("example.org"), Err(e) if e.is_temporary()));
}

#[test]
fn one_resolver_serves_many_threads() {
    let Some((_bind, r)) = start() else { return };
    let names: Vec<usize> = (0..64).collect();
    let results = mailauth::par::map(&names, 16, |i| {
        if i % 2 == 0 {
            r.txt("example.test").map(|v| v.len())
        } else {
            r.txt(&format!("n{i}.example.test")).map(|v| v.len())
        }
    });
    for (i, res) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(res, &Ok(2));
        } else {
            assert!(matches!(res, Err(ResolveError::NxDomain { .. })), "{res:?}");
        }
    }
}

const WALK: &str = "$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 300
@ IN NS ns1
ns1 IN A 127.0.0.1
_dmarc IN TXT \"v=DMARC1; p=reject; psd=y\"
_dmarc.org IN TXT \"v=DMARC1; p=none\"
_dmarc.team.org IN TXT \"v=DMARC1; p=quarantine\"
_dmarc.unit.psdn IN TXT \"v=DMARC1; p=reject; psd=n\"
_dmarc.psdn IN TXT \"v=DMARC1; p=reject\"
";

/// RFC 9989 DNS tree walk: psd=y, psd=n, the fewest labels, no record,
/// and the jump for names of more than eight labels.
#[test]
fn organizational_domain_tree_walk() {
    use mailauth::validate::organizational_domain;
    let Some(bind) = Bind::try_start(&[("walk.test", WALK)]) else {
        return;
    };
    assert!(support::wait_until(Duration::from_secs(15), || {
        !bind.dig_short("walk.test", "SOA").trim().is_empty()
    }));
    let addr = SocketAddr::from(([127, 0, 0, 1], bind.port()));
    let r = Resolver::with_nameservers(&[addr], Duration::from_secs(2)).expect("resolver");
    let org = |d: &str| organizational_domain(&r, d).expect("walk").domain;

    // psd=y at walk.test: the organizational domain is one label below it.
    // (team.org.walk.test has its own record, but the walk goes on to the
    // PSD, and the record with the fewest labels below it, org.walk.test.)
    assert_eq!(org("mail.team.org.walk.test"), "org.walk.test");
    assert_eq!(org("org.walk.test"), "org.walk.test");
    // psd=n stops the walk where it is found.
    assert_eq!(org("a.unit.psdn.walk.test"), "unit.psdn.walk.test");
    // Nothing below the PSD has a record: still one label below the PSD.
    assert_eq!(org("x.y.other.walk.test"), "other.walk.test");

    // More than eight labels: the exact name, then the last seven labels.
    let long = "l1.l2.l3.l4.l5.mail.team.org.walk.test";
    let walk = organizational_domain(&r, long).expect("walk");
    assert_eq!(walk.queried[0], format!("_dmarc.{long}"));
    assert_eq!(walk.queried[1], "_dmarc.l4.l5.mail.team.org.walk.test");
    assert!(walk.queried.len() <= 8, "{:?}", walk.queried);
    assert_eq!(walk.domain, "org.walk.test");
}
