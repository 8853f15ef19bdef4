//! Test harness for the key tests: a zone of DKIM keys the test sets,
//! served by the harness's BIND (tests/support/bind.rs), an observer that
//! asks it with `dig`,
//! DKIM signing and verification with the independent `mail-auth` crate,
//! and `opendkim-testkey`.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use mailauth::keys::config::Algorithm;
use mailauth::keys::lifecycle::{Observer, PublishedKey};
use mailauth::record::RData;

/// A `named` (the harness's [`crate::support::bind::Bind`]) serving one
/// primary zone whose DKIM keys the test sets with [`Bind::serve`].
pub struct Bind {
    server: crate::support::bind::Bind,
    pub port: u16,
    pub origin: String,
    serial: u32,
}

impl Bind {
    pub fn start(named: PathBuf, origin: &str) -> Bind {
        let zone = zone_text(origin, 1, &[]);
        let server = crate::support::bind::Bind::start_with(&named, &[(origin, &zone)]);
        let b = Bind {
            port: server.port(),
            server,
            origin: origin.to_string(),
            serial: 1,
        };
        b.wait_for_serial();
        b
    }

    /// The server's temp dir.
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }

    /// Rewrites the zone with `keys` (TTL 300) and restarts named, then
    /// waits until it answers with the new serial.
    pub fn serve(&mut self, keys: &[PublishedKey]) {
        self.serial += 1;
        let zone = zone_text(&self.origin, self.serial, keys);
        self.server.replace_zone(&self.origin.clone(), &zone);
        self.wait_for_serial();
    }

    fn wait_for_serial(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let soa = self.dig(&self.origin, "SOA");
            if soa.split_whitespace().nth(2) == Some(&self.serial.to_string()) {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir().join("named.log")).unwrap_or_default();
                panic!("named did not serve serial {}: {log}", self.serial);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dig(&self, name: &str, rtype: &str) -> String {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+norecurse",
                "+time=1",
                "+tries=1",
            ])
            .arg(name)
            .arg(rtype)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The zone `origin` at `serial` with `keys` (TTL 300).
fn zone_text(origin: &str, serial: u32, keys: &[PublishedKey]) -> String {
    let mut z = format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 604800 300\n@ NS ns1\nns1 A 127.0.0.1\n"
    );
    for k in keys {
        // Long values are split into ≤ 255-octet character-strings.
        let rdata = RData::txt(&k.txt_value());
        z.push_str(&format!(
            "{}._domainkey TXT {}\n",
            k.selector,
            rdata.presentation()
        ));
    }
    z
}

/// The joined TXT strings of a `dig +short` line.
fn join_dig(line: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => inside = !inside,
            '\\' if inside => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ if inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// Asks the (only) authoritative server, as the lead's DNS-backed observer
/// would ask each of them.
impl Observer for Bind {
    fn served_everywhere(&self, domain: &str, selector: &str, key: &[u8]) -> Result<bool, String> {
        let answer = self.dig(&format!("{selector}._domainkey.{domain}"), "TXT");
        let want = STANDARD.encode(key);
        Ok(answer.lines().any(|l| {
            let v = join_dig(l);
            v.split(';')
                .filter_map(|t| t.trim().strip_prefix("p="))
                .any(|p| p.trim() == want)
        }))
    }
}

pub const MESSAGE: &str = "From: alice@example.test\r\nTo: bob@example.org\r\nSubject: rotation\r\nDate: Mon, 1 Jan 2027 00:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHello, still verifiable?\r\n";

/// Signs MESSAGE with a keystore PEM, using mail-auth's own key parsing.
pub fn sign(domain: &str, selector: &str, algorithm: Algorithm, pem: &str) -> String {
    let header = match algorithm {
        Algorithm::Rsa => {
            // Deprecated in favour of from_key_der, which needs another
            // crate's key type; this is the same parser underneath.
            #[allow(deprecated)]
            let key = RsaKey::<Sha256>::from_pkcs8_pem(pem).expect("mail-auth reads the RSA PEM");
            DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(["From", "To", "Subject", "Date", "Message-ID"])
                .sign(MESSAGE.as_bytes())
                .unwrap()
                .to_header()
        }
        Algorithm::Ed25519 => {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = STANDARD.decode(body).unwrap();
            let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(&der)
                .expect("mail-auth reads the Ed25519 PKCS#8");
            DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(["From", "To", "Subject", "Date", "Message-ID"])
                .sign(MESSAGE.as_bytes())
                .unwrap()
                .to_header()
        }
    };
    format!("{header}{MESSAGE}")
}

/// Verifies a signed message against DNS served on 127.0.0.1:`port`.
pub fn verify(port: u16, message: &str) -> DkimResult {
    let mut ns = NameServerConfig::udp_and_tcp(IpAddr::V4(Ipv4Addr::LOCALHOST));
    for c in ns.connections.iter_mut() {
        c.port = port;
    }
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.recursion_desired = false;
    opts.attempts = 1;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let auth = MessageAuthenticator::new(config, opts).unwrap();
        let msg = AuthenticatedMessage::parse(message.as_bytes()).unwrap();
        let out = auth.verify_dkim(&msg).await;
        assert_eq!(out.len(), 1, "one signature expected");
        out[0].result().clone()
    })
}

/// Runs opendkim-testkey for `selector` with the private key at `key`;
/// returns its exit code (0 key OK, 65 mismatch, 69 revoked/not found).
pub fn opendkim_testkey(
    testkey: &Path,
    bind: &Bind,
    domain: &str,
    selector: &str,
    key: &Path,
) -> i32 {
    let d = bind.dir();
    std::fs::write(
        d.join("unbound.conf"),
        format!(
            "server:\n    do-not-query-localhost: no\n    local-zone: \"test.\" nodefault\nstub-zone:\n    name: \"{}\"\n    stub-addr: 127.0.0.1@{}\n",
            bind.origin, bind.port
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("opendkim.conf"),
        format!(
            "ResolverConfiguration {}\n",
            d.join("unbound.conf").display()
        ),
    )
    .unwrap();
    let out = Command::new(testkey)
        .arg("-x")
        .arg(d.join("opendkim.conf"))
        .args(["-d", domain, "-s", selector, "-k"])
        .arg(key)
        .arg("-vvv")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("PRIVATE KEY"),
        "opendkim-testkey output holds key material"
    );
    let code = out.status.code().unwrap_or(-1);
    if code == 0 {
        assert!(text.contains("key OK"), "{text}");
    }
    code
}
