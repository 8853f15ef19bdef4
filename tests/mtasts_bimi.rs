//! MTA-STS and BIMI as code, through the real binary: the policy file
//! rendered from the `mta_sts` block with an id derived from it, `emit
//! --mta-sts`, `apply` uploading the policy (web root, HTTP PUT to nginx's
//! WebDAV module and to a stand-in that watches the zone) before the TXT
//! record changes, the BIMI record with its DMARC guard, and `validate`
//! checking a BIMI logo and evidence document served over HTTPS.

mod support;
mod util;

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
        config("{ id: \"20270101T000000\", mode: enforce, mx: [mail.example.com], max_age: 86400 }"),
    )
    .unwrap();
    c.run(&["apply", "--auto-approve"]).ok();
    assert_eq!(published_id(&c).as_deref(), Some("20270101T000000"));
}

#[test]
fn publish_to_a_web_root() {
    let c = case(&format!(
        "{{ mode: testing, mx: [mail.example.com], max_age: 86400, publish: {{ dir: site }} }}"
    ));
    let r = c.run(&["apply", "--auto-approve"]).ok();
    assert!(r.stdout.contains("MTA-STS policy published to"), "{}", r.stdout);
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
    std::thread::spawn(move || {
        let mut stored: Vec<u8> = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
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
                        stored = body;
                    }
                    (put_status, Vec::new())
                } else {
                    (200, stored.clone())
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    answer.len()
                );
                if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&answer).is_err() {
                    break;
                }
            }
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
    std::fs::write(c.path().join("mailauth.yaml"), put_config(w.port, "enforce")).unwrap();
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
    pid: u32,
    port: u16,
    root: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.pid.to_string())
            .status();
    }
}

fn nginx() -> Option<Nginx> {
    let bin = support::require_binary("nginx")?;
    let root = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    let n = Nginx {
        pid: child.id(),
        port,
        root,
    };
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
    assert!(r.stdout.contains(&format!("published to {url}")), "{}", r.stdout);
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
    assert!(r.stderr.contains("nothing was changed in DNS"), "{}", r.stderr);
    assert_eq!(c.read("zones/example.com.zone"), before);
}
