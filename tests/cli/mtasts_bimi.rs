//! MTA-STS and BIMI as code, through the real binary: the policy file
//! rendered from the `mta_sts` block with an id derived from it, `emit
//! --mta-sts`, `apply` uploading the policy (web root, HTTP PUT to nginx's
//! WebDAV module and to a stand-in that watches the zone) before the TXT
//! record changes, the BIMI record with its DMARC guard, and `validate`
//! checking a BIMI logo and evidence document served over HTTPS.

use crate::support;
use crate::util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use util::Case;

const ZONE: &str = "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n@ IN MX 10 mail\nmail IN A 192.0.2.25\n";

fn config(mta_sts: &str) -> String {
    format!(
        "provider: {{ kind: zonefile, dir: zones }}\ndomains:\n  example.com:\n    mta_sts: {mta_sts}\n"
    )
}

fn case(mta_sts: &str) -> Case {
    Case::new()
        .config(&config(mta_sts))
        .file("zones/example.com.zone", ZONE)
}

/// The id of `_mta-sts` in the zone file, if any.
fn published_id(case: &Case) -> Option<String> {
    let zone = case.read("zones/example.com.zone");
    zone.lines()
        .find(|l| l.starts_with("_mta-sts"))
        .and_then(|l| l.split("id=").nth(1))
        .map(|s| s.trim_end_matches('"').to_string())
}

const TESTING: &str = "{ mode: testing, mx: [mail.example.com], max_age: 86400 }";
const ENFORCE: &str = "{ mode: enforce, mx: [mail.example.com], max_age: 86400 }";
const POLICY_TESTING: &str =
    "version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmax_age: 86400\r\n";
const POLICY_ENFORCE: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n";

#[test]
fn policy_change_changes_the_id_in_the_same_plan() {
    let c = case(TESTING);
    c.run(&["apply", "--auto-approve"]).ok();
    let first = published_id(&c).expect("an _mta-sts record");
    assert_eq!(first.len(), 32, "{first}");
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
    // Stable: the same policy plans nothing.
    c.run(&["plan", "--detailed-exitcode"]).code(0);
    // emit --mta-sts writes the policy file the id was derived from.
    let out = c.path().join("www");
    c.run(&["emit", "--mta-sts", out.to_str().unwrap()]).ok();
    let file = std::fs::read_to_string(out.join("example.com/.well-known/mta-sts.txt")).unwrap();
    assert_eq!(file, POLICY_TESTING);

    // testing -> enforce: the plan changes the id with it.
    std::fs::write(c.path().join("mailauth.yaml"), config(ENFORCE)).unwrap();
    let plan = c.run(&["plan", "--detailed-exitcode"]).code(2);
    assert!(plan.stdout.contains("_mta-sts"), "{}", plan.stdout);
    c.run(&["apply", "--auto-approve"]).ok();
    let second = published_id(&c).unwrap();
    assert_ne!(first, second);

    // An explicit id is published as given.
    std::fs::write(
        c.path().join("mailauth.yaml"),
        config(
            "{ id: \"20270101T000000\", mode: enforce, mx: [mail.example.com], max_age: 86400 }",
        ),
    )
    .unwrap();
    c.run(&["apply", "--auto-approve"]).ok();
    assert_eq!(published_id(&c).as_deref(), Some("20270101T000000"));
}

#[test]
fn publish_to_a_web_root() {
    let c =
        case("{ mode: testing, mx: [mail.example.com], max_age: 86400, publish: { dir: site } }");
    let r = c.run(&["apply", "--auto-approve"]).ok();
    assert!(
        r.stdout.contains("MTA-STS policy published to"),
        "{}",
        r.stdout
    );
    assert_eq!(c.read("site/.well-known/mta-sts.txt"), POLICY_TESTING);
    std::fs::write(
        c.path().join("mailauth.yaml"),
        config("{ mode: enforce, mx: [mail.example.com], max_age: 86400, publish: { dir: site } }"),
    )
    .unwrap();
    c.run(&["apply", "--auto-approve"]).ok();
    assert_eq!(c.read("site/.well-known/mta-sts.txt"), POLICY_ENFORCE);
}

/// A stand-in WebDAV-style server (RFC 9110 PUT and GET of one resource)
/// that, when the PUT arrives, reads the zone file: it records which
/// `_mta-sts` id DNS held at the moment the new policy became served.
struct Watcher {
    port: u16,
    /// The id published in DNS at each PUT.
    seen_at_put: Arc<Mutex<Vec<Option<String>>>>,
}

fn id_in(zone_path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(zone_path).ok().and_then(|z| {
        z.lines()
            .find(|l| l.starts_with("_mta-sts"))
            .and_then(|l| l.split("id=").nth(1))
            .map(|s| s.trim_end_matches('"').to_string())
    })
}

fn watcher(zone_path: std::path::PathBuf, put_status: u16) -> Watcher {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    // One thread per connection, as any web server: the client may open a
    // second connection for the GET while the PUT's is still in its pool.
    let stored: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let seen2 = seen2.clone();
            let zone_path = zone_path.clone();
            let stored = stored.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let method = line.split(' ').next().unwrap_or("").to_string();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let (status, answer) = if method == "PUT" {
                        seen2.lock().unwrap().push(id_in(&zone_path));
                        if put_status < 300 {
                            *stored.lock().unwrap() = body;
                        }
                        (put_status, Vec::new())
                    } else {
                        (200, stored.lock().unwrap().clone())
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        answer.len()
                    );
                    if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&answer).is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    Watcher {
        port,
        seen_at_put: seen,
    }
}

fn put_config(port: u16, mode: &str) -> String {
    config(&format!(
        "{{ mode: {mode}, mx: [mail.example.com], max_age: 86400, publish: {{ url: \"http://127.0.0.1:{port}/mta-sts.txt\" }} }}"
    ))
}

/// The ordering guarantee: when the new policy is uploaded, DNS still
/// holds the old id (or none); the new id appears only afterwards.
#[test]
fn the_policy_is_served_before_the_new_id_is_published() {
    let c = Case::new().file("zones/example.com.zone", ZONE);
    let w = watcher(c.path().join("zones/example.com.zone"), 201);
    let c = c.config(&put_config(w.port, "testing"));
    c.run(&["apply", "--auto-approve"]).ok();
    let first = published_id(&c).unwrap();
    std::fs::write(
        c.path().join("mailauth.yaml"),
        put_config(w.port, "enforce"),
    )
    .unwrap();
    c.run(&["apply", "--auto-approve"]).ok();
    let second = published_id(&c).unwrap();
    assert_ne!(first, second);
    assert_eq!(
        *w.seen_at_put.lock().unwrap(),
        vec![None, Some(first)],
        "each PUT must happen while DNS still has the previous id"
    );
}

#[test]
fn a_failed_upload_changes_nothing_in_dns() {
    let c = Case::new().file("zones/example.com.zone", ZONE);
    let w = watcher(c.path().join("zones/example.com.zone"), 403);
    let c = c.config(&put_config(w.port, "testing"));
    let r = c.run(&["apply", "--auto-approve"]).code(1);
    assert!(
        r.stderr.contains("mta_sts.publish: PUT http://127.0.0.1:")
            && r.stderr.contains("HTTP 403")
            && r.stderr.contains("nothing was changed in DNS"),
        "{}",
        r.stderr
    );
    assert_eq!(c.read("zones/example.com.zone"), ZONE);
}

/// nginx (Debian's nginx-light, WebDAV module) as the PUT target, on a
/// loopback port in a temp dir.
struct Nginx {
    child: std::process::Child,
    port: u16,
    root: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx() -> Option<Nginx> {
    let bin = support::require_binary("nginx")?;
    let root = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let d = root.path().display();
    std::fs::create_dir_all(root.path().join("www")).unwrap();
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
           types {{ text/plain txt; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n\
             location / {{ dav_methods PUT; create_full_put_path on; dav_access user:rw all:r; }}\n  }}\n}}\n"
    );
    std::fs::write(root.path().join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new(bin)
        .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let n = Nginx { child, port, root };
    assert!(
        support::wait_until(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "nginx did not start: {}",
        std::fs::read_to_string(n.root.path().join("error.log")).unwrap_or_default()
    );
    Some(n)
}

#[test]
fn publish_by_http_put_to_nginx_webdav() {
    let Some(n) = nginx() else { return };
    let url = format!(
        "http://127.0.0.1:{}/mta-sts.example.com/.well-known/mta-sts.txt",
        n.port
    );
    let c = Case::new()
        .file("zones/example.com.zone", ZONE)
        .config(&config(&format!(
            "{{ mode: testing, mx: [mail.example.com], max_age: 86400, publish: {{ url: \"{url}\" }} }}"
        )));
    let r = c.run(&["apply", "--auto-approve"]).ok();
    assert!(
        r.stdout.contains(&format!("published to {url}")),
        "{}",
        r.stdout
    );
    let served = std::fs::read_to_string(
        n.root
            .path()
            .join("www/mta-sts.example.com/.well-known/mta-sts.txt"),
    )
    .unwrap();
    assert_eq!(served, POLICY_TESTING);
    // A path the server refuses (nginx answers 409 for a PUT into a
    // collection that cannot be made): apply stops before DNS.
    std::fs::write(n.root.path().join("www/blocker"), "a file, not a dir").unwrap();
    std::fs::write(
        c.path().join("mailauth.yaml"),
        config(&format!(
            "{{ mode: enforce, mx: [mail.example.com], max_age: 86400, publish: {{ url: \"http://127.0.0.1:{}/blocker/mta-sts.txt\" }} }}",
            n.port
        )),
    )
    .unwrap();
    let before = c.read("zones/example.com.zone");
    let r = c.run(&["apply", "--auto-approve"]).code(1);
    assert!(
        r.stderr.contains("nothing was changed in DNS"),
        "{}",
        r.stderr
    );
    assert_eq!(c.read("zones/example.com.zone"), before);
}

// ---------------------------------------------------------------- BIMI

#[test]
fn bimi_record_is_published_and_guarded_by_dmarc() {
    let c = Case::new()
        .file("zones/example.com.zone", ZONE)
        .config(
            "provider: { kind: zonefile, dir: zones }\ndomains:\n  example.com:\n    dmarc: { p: quarantine }\n    bimi: { logo: \"https://example.com/bimi/logo.svg\", authority: \"https://example.com/bimi/vmc.pem\" }\n",
        );
    c.run(&["apply", "--auto-approve"]).ok();
    let zone = c.read("zones/example.com.zone");
    assert!(
        zone.contains("default._bimi")
            && zone.contains(
                "\"v=BIMI1; l=https://example.com/bimi/logo.svg; a=https://example.com/bimi/vmc.pem\""
            ),
        "{zone}"
    );
    // p=none: refused before any DNS work.
    std::fs::write(
        c.path().join("mailauth.yaml"),
        "provider: { kind: zonefile, dir: zones }\ndomains:\n  example.com:\n    dmarc: { p: none }\n    bimi: { logo: \"https://example.com/bimi/logo.svg\" }\n",
    )
    .unwrap();
    let r = c.run(&["plan"]).code(2);
    assert!(
        r.stderr.contains(
            "domains.example.com.bimi: BIMI needs an enforcing DMARC policy, and dmarc.p is none"
        ),
        "{}",
        r.stderr
    );
    // A parked domain declines, with its own selector.
    let parked = Case::new()
        .file("zones/example.com.zone", ZONE)
        .config(
            "provider: { kind: zonefile, dir: zones }\ndomains:\n  example.com:\n    parked: true\n    bimi: { selector: brand, declined: true }\n",
        );
    parked.run(&["apply", "--auto-approve"]).ok();
    let zone = parked.read("zones/example.com.zone");
    assert!(
        zone.lines()
            .any(|l| l.starts_with("brand._bimi") && l.ends_with("\"v=BIMI1; l=; a=;\"")),
        "{zone}"
    );
}

const LOGO: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" viewBox="0 0 64 64">
  <title>Example Brand</title>
  <rect x="8" y="8" width="48" height="48" fill="#d22"/>
</svg>
"##;

/// A DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// RFC 3709 §4.1 `LogotypeExtn` with a subject logo whose one image is
/// `svg` as a gzip'd `data:image/svg+xml;base64,` URI, as VMCs carry it.
fn logotype_extension(svg: &str) -> Vec<u8> {
    use base64::Engine;
    use sha2::Digest;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(svg.as_bytes()).unwrap();
    let uri = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    );
    let sha256_oid = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let hash = der(
        0x30,
        &[
            der(0x30, &sha256_oid),
            der(0x04, &sha2::Sha256::digest(svg.as_bytes())),
        ]
        .concat(),
    );
    let details = der(
        0x30,
        &[
            der(0x16, b"image/svg+xml"),
            der(0x30, &hash),
            der(0x30, &der(0x16, uri.as_bytes())),
        ]
        .concat(),
    );
    let image = der(0x30, &details);
    let data = der(0xa0, &der(0x30, &image));
    der(0x30, &der(0xa2, &data))
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway BIMI root (`<name>.pem`) in `dir`.
fn bimi_root(dir: &std::path::Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
}

/// A VMC-like certificate `<label>.pem` (leaf then root) issued by `root`
/// for `san`, with the BIMI EKU unless `eku` is false, and the logotype
/// extension of `svg` unless it is `None`.
fn vmc(
    dir: &std::path::Path,
    root: &str,
    label: &str,
    san: &str,
    eku: bool,
    svg: Option<&str>,
) -> String {
    let mut ext = format!("[v3]\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:{san}\n");
    ext.push_str(if eku {
        "extendedKeyUsage=1.3.6.1.5.5.7.3.31\n"
    } else {
        "extendedKeyUsage=serverAuth\n"
    });
    if let Some(svg) = svg {
        let hex: String = logotype_extension(svg)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        ext.push_str(&format!("1.3.6.1.5.5.7.1.12=DER:{hex}\n"));
    }
    std::fs::write(dir.join(format!("{label}.cnf")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{label}.key"),
            "-out",
            &format!("{label}.csr"),
            "-subj",
            &format!("/CN={san}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{label}.csr"),
            "-CA",
            &format!("{root}.pem"),
            "-CAkey",
            &format!("{root}.key"),
            "-CAcreateserial",
            "-days",
            "10",
            "-extfile",
            &format!("{label}.cnf"),
            "-extensions",
            "v3",
            "-out",
            &format!("{label}.leaf.pem"),
        ],
    );
    let leaf = std::fs::read_to_string(dir.join(format!("{label}.leaf.pem"))).unwrap();
    let root_pem = std::fs::read_to_string(dir.join(format!("{root}.pem"))).unwrap();
    leaf + &root_pem
}

/// (domain, what its VMC or logo gets wrong)
const BIMI_DOMAINS: &[&str] = &[
    "good.test",
    "badlogo.test",
    "wrongsvg.test",
    "noeku.test",
    "wrongname.test",
    "otherroot.test",
    "nologotype.test",
    "declined.test",
];

#[test]
fn bimi_logo_and_evidence_are_validated_live() {
    use support::bind::Bind;
    use support::https::{Answer, HttpsServer, TestCa};
    let zones: Vec<(String, String)> = BIMI_DOMAINS
        .iter()
        .map(|d| {
            let bimi = if *d == "declined.test" {
                "v=BIMI1; l=; a=;".to_string()
            } else {
                format!("v=BIMI1; l=https://bimi.{d}/logo.svg; a=https://bimi.{d}/vmc.pem")
            };
            (
                d.to_string(),
                format!(
                    "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n\
                     _dmarc IN TXT \"v=DMARC1; p=reject\"\ndefault._bimi IN TXT \"{bimi}\"\n"
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = zones
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let Some(bind) = Bind::try_start(&refs) else {
        return;
    };
    for (d, _) in &zones {
        assert!(
            support::wait_until(std::time::Duration::from_secs(15), || {
                !bind.dig_short(d, "SOA").trim().is_empty()
            }),
            "BIND did not load {d}"
        );
    }
    let Some(tls_ca) = TestCa::try_new() else {
        return;
    };
    let hosts: Vec<String> = BIMI_DOMAINS.iter().map(|d| format!("bimi.{d}")).collect();
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let (cert, key) = tls_ca.issue("bimi-hosts", &host_refs);

    let pki = tempfile::tempdir().unwrap();
    let p = pki.path();
    bimi_root(p, "root");
    bimi_root(p, "stranger");
    let other_logo = LOGO.replace("#d22", "#22d");
    let bad_logo = LOGO
        .replace("viewBox=\"0 0 64 64\"", "viewBox=\"0 0 64 32\"")
        .replace("<rect", "<script>alert(1)</script><rect");
    let mut routes = std::collections::HashMap::new();
    for d in BIMI_DOMAINS {
        let (logo, evidence) = match *d {
            "good.test" => (
                LOGO.to_string(),
                vmc(p, "root", "good", d, true, Some(LOGO)),
            ),
            "badlogo.test" => (
                bad_logo.clone(),
                vmc(p, "root", "badlogo", d, true, Some(&bad_logo)),
            ),
            "wrongsvg.test" => (
                LOGO.to_string(),
                vmc(p, "root", "wrongsvg", d, true, Some(&other_logo)),
            ),
            "noeku.test" => (
                LOGO.to_string(),
                vmc(p, "root", "noeku", d, false, Some(LOGO)),
            ),
            "wrongname.test" => (
                LOGO.to_string(),
                vmc(p, "root", "wrongname", "other.test", true, Some(LOGO)),
            ),
            "otherroot.test" => (
                LOGO.to_string(),
                vmc(p, "stranger", "otherroot", d, true, Some(LOGO)),
            ),
            "nologotype.test" => (
                LOGO.to_string(),
                vmc(p, "root", "nologotype", d, true, None),
            ),
            _ => continue,
        };
        let host = format!("bimi.{d}");
        routes.insert(
            (host.clone(), "/logo.svg".to_string()),
            Answer::new(200, "image/svg+xml", logo),
        );
        routes.insert(
            (host, "/vmc.pem".to_string()),
            Answer::new(200, "application/pem-certificate-chain", evidence),
        );
    }
    let server = HttpsServer::start(&cert, &key, routes);
    let config = tempfile::tempdir().unwrap();
    let mut yaml = String::from("domains:\n");
    for d in BIMI_DOMAINS {
        yaml.push_str(&format!("  {d}:\n    dmarc: {{ p: reject }}\n"));
    }
    std::fs::write(config.path().join("mailauth.yaml"), yaml).unwrap();
    let cmd = util::mailauth(["-c"])
        .arg(config.path().join("mailauth.yaml"))
        .args([
            "validate",
            "--json",
            "--no-propagation",
            "--no-mta-sts-policy",
        ])
        .arg(format!("--nameserver=127.0.0.1:{}", bind.port()))
        .arg("--ca-file")
        .arg(tls_ca.cert())
        .arg("--bimi-ca-file")
        .arg(p.join("root.pem"));
    let out = cmd
        .args(
            hosts
                .iter()
                .map(|h| format!("--connect-to={h}:443:127.0.0.1:{}", server.port())),
        )
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let bimi = |domain: &str| -> Vec<(String, String)> {
        report["domains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["domain"] == domain)
            .unwrap()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == "bimi")
            .map(|f| {
                (
                    f["severity"].as_str().unwrap().to_string(),
                    format!("{} {}", f["message"].as_str().unwrap(), f["details"]),
                )
            })
            .collect()
    };
    let has = |domain: &str, severity: &str, needle: &str| {
        let f = bimi(domain);
        assert!(
            f.iter().any(|(s, m)| s == severity && m.contains(needle)),
            "{domain}: expected bimi {severity} with {needle:?}, got {f:#?}"
        );
    };
    // Everything right: no failure at all.
    let good = bimi("good.test");
    assert!(good.iter().all(|(s, _)| s == "pass"), "{good:#?}");
    has("good.test", "pass", "SVG Tiny PS, square");
    has("good.test", "pass", "chain verified");
    has("good.test", "pass", "logotype extension's SVG is the logo");
    has("badlogo.test", "fail", "a `script` element");
    has("badlogo.test", "fail", "not square");
    has("wrongsvg.test", "fail", "differs from the logo `l=` serves");
    has("noeku.test", "fail", "lacks the BIMI extended key usage");
    has(
        "wrongname.test",
        "fail",
        "names do not cover wrongname.test",
    );
    has(
        "otherroot.test",
        "fail",
        "does not lead to a --bimi-ca-file root",
    );
    has("nologotype.test", "fail", "no logotype extension");
    has("declined.test", "pass", "declination record");
}

/// `mode: enforce` while an MX host of the zone matches no `mx` pattern:
/// the plan marks it unsafe, apply refuses it (no upload, no DNS change)
/// unless `--force`.
#[test]
fn enforce_is_refused_while_an_mx_host_is_not_covered() {
    let zone = format!("{ZONE}@ IN MX 20 backup.elsewhere.net.\n");
    let c = Case::new()
        .file("zones/example.com.zone", &zone)
        .config(&config(
            "{ mode: enforce, mx: [mail.example.com], max_age: 86400, publish: { dir: site } }",
        ));
    let plan = c.run(&["plan"]).ok();
    assert!(
        plan.stdout.contains("! unsafe:")
            && plan
                .stdout
                .contains("MX host(s) backup.elsewhere.net match no `mta_sts.mx` pattern"),
        "{}",
        plan.stdout
    );
    c.run(&["apply", "--auto-approve"]).code(1);
    assert_eq!(c.read("zones/example.com.zone"), zone);
    assert!(!c.path().join("site").exists(), "the policy was uploaded");
    // Testing mode is not guarded; covering the host lifts the guard.
    std::fs::write(
        c.path().join("mailauth.yaml"),
        config("{ mode: testing, mx: [mail.example.com], max_age: 86400 }"),
    )
    .unwrap();
    let testing = c.run(&["plan"]).ok();
    assert!(!testing.stdout.contains("unsafe"), "{}", testing.stdout);
    std::fs::write(
        c.path().join("mailauth.yaml"),
        config("{ mode: enforce, mx: [mail.example.com, \"*.elsewhere.net\"], max_age: 86400 }"),
    )
    .unwrap();
    c.run(&["apply", "--auto-approve"]).ok();
    assert!(published_id(&c).is_some());
}

/// A TLS-RPT report for example.com over the day starting `day`
/// (`2027-01-10`), with `failed` failed sessions.
fn tls_report(day: &str, failed: u64) -> String {
    format!(
        r#"{{"organization-name":"Sender","date-range":{{"start-datetime":"{day}T00:00:00Z","end-datetime":"{day}T23:59:59Z"}},"contact-info":"tls@sender.example","report-id":"r-{day}-{failed}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mail.example.com","max_age: 86400"],"policy-domain":"example.com","mx-host":"mail.example.com"}},"summary":{{"total-successful-session-count":100,"total-failure-session-count":{failed}}},"failure-details":[{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":"mail.example.com","failed-session-count":{failed}}}]}}]}}"#
    )
}

#[test]
fn enforce_waits_for_two_weeks_without_tls_rpt_failures() {
    // Issue 22: switching to enforce is refused while TLS-RPT shows
    // failures in the last 14 days.
    let c = case(TESTING);
    c.run_at("2027-01-01T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    let c = c.file("tls.json", &tls_report("2027-01-10", 7));
    c.run(&["reports", "ingest", "tls.json"]).ok();
    std::fs::write(c.path().join("mailauth.yaml"), config(ENFORCE)).unwrap();
    let before = c.read("zones/example.com.zone");
    let plan = c.run_at("2027-01-12T00:00:00Z", &["plan"]).ok();
    assert!(
        plan.stdout.contains("! unsafe:")
            && plan
                .stdout
                .contains("TLS-RPT reports show 7 failed session(s) for example.com in the last 14 days (certificate-expired 7)"),
        "{}",
        plan.stdout
    );
    c.run_at("2027-01-12T00:00:00Z", &["apply", "--auto-approve"])
        .code(1);
    assert_eq!(c.read("zones/example.com.zone"), before);
    // Two weeks later the failures are past: enforce goes ahead.
    let plan = c.run_at("2027-01-25T00:00:00Z", &["plan"]).ok();
    assert!(!plan.stdout.contains("TLS-RPT"), "{}", plan.stdout);
    c.run_at("2027-01-25T00:00:00Z", &["apply", "--auto-approve"])
        .ok();
    assert_ne!(c.read("zones/example.com.zone"), before);
}
