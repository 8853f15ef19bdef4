//! Dovecot (IMAP) on a free loopback port in a temp dir, with one user
//! `reports` whose Maildir the tests can read on disk, and a small
//! synchronous IMAP client (plain or TLS) to APPEND messages and count
//! folders. Optionally TLS-only (`ssl = required`) with a throwaway CA made
//! by `openssl`, and optionally without MOVE in its capabilities.
//! Stopped (by PID) on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::{free_port, require_binary, wait_until};

pub const USER: &str = "reports";

#[derive(Debug, Clone, Copy, Default)]
pub struct DovecotOpts {
    /// `ssl = required` with a certificate for 127.0.0.1 from a
    /// throwaway CA; an implicit-TLS listener is added.
    pub tls: bool,
    /// Leave MOVE out of the capabilities (the UIDPLUS fallback).
    pub no_move: bool,
}

pub struct Dovecot {
    child: Option<Child>,
    binary: PathBuf,
    /// STARTTLS / plain port.
    pub port: u16,
    /// Implicit TLS port (only with `tls`).
    pub tls_port: u16,
    pub password: String,
    pub opts: DovecotOpts,
    dir: tempfile::TempDir,
}

/// Dovecot's default capabilities after login, minus MOVE.
const CAPS_WITHOUT_MOVE: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
    SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
    CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
    ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SPECIAL-USE";

impl Dovecot {
    /// `None` (after a loud SKIP line) when dovecot (or openssl for TLS)
    /// is missing and CI is not set; panics under `CI=true`.
    pub fn try_start(opts: DovecotOpts) -> Option<Dovecot> {
        let binary = require_binary("dovecot")?;
        if opts.tls {
            require_binary("openssl")?;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().to_path_buf();
        // Dovecot's unprivileged processes must reach the mail below it.
        chmod(&d, "755");
        let password = hex(&super::random_bytes(12));
        std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{password}\n"))
            .expect("write passwd");
        for sub in ["mail", "state"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        run(Command::new("chown")
            .args(["-R", "dovecot:dovecot"])
            .arg(d.join("mail")));
        let port = free_port();
        let tls_port = if opts.tls { free_port() } else { 0 };
        let ssl = if opts.tls {
            make_certs(&d);
            format!(
                "ssl = required\nssl_cert = <{d}/server.pem\nssl_key = <{d}/server.key\n",
                d = d.display()
            )
        } else {
            "ssl = no\n".to_owned()
        };
        let caps = if opts.no_move {
            format!("imap_capability = {CAPS_WITHOUT_MOVE}\n")
        } else {
            String::new()
        };
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n{ssl}disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\nmail_location = maildir:{d}/mail/%u\n\
             default_internal_user = dovecot\ndefault_internal_group = dovecot\n\
             default_login_user = dovenull\nfirst_valid_uid = 1\n{caps}\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
               inet_listener imaps {{\n    address = 127.0.0.1\n    port = {tls_port}\n  }}\n  chroot =\n}}\n\
             service anvil {{\n  chroot =\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=dovecot gid=dovecot home={d}/mail/%u\n}}\n",
            d = d.display(),
        );
        std::fs::write(d.join("dovecot.conf"), conf).expect("write dovecot.conf");
        let mut dovecot = Dovecot {
            child: None,
            binary,
            port,
            tls_port,
            password,
            opts,
            dir,
        };
        dovecot.launch();
        // The user's Maildir exists once someone logged in; create the
        // INBOX now so the tests can look at it on disk.
        let mut c = dovecot.client();
        c.command("SELECT INBOX");
        c.logout();
        Some(dovecot)
    }

    fn launch(&mut self) {
        let d = self.dir.path();
        let _ = std::fs::remove_file(d.join("run/master.pid"));
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dovecot");
        self.child = Some(child);
        let port = self.port;
        // The port opens before the login processes are ready, and a
        // connection accepted then may be reset: wait for a greeting.
        let up = wait_until(Duration::from_secs(20), || greets(port));
        assert!(up, "dovecot did not start: {}", self.log());
    }

    /// Stops the server (SIGTERM, then SIGKILL) and every process it
    /// started, so open client connections break as in a crash, and waits
    /// for its port to close.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let children = descendants(child.id());
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for pid in children {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let done = wait_until(Duration::from_secs(10), || {
                child.try_wait().ok().flatten().is_some()
            });
            if !done {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let port = self.port;
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_err()
        });
    }

    /// Starts it again on the same ports with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// The throwaway CA's certificate (with `tls`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A URL for mailauth: STARTTLS (`imap://`) or implicit TLS (`imaps://`).
    pub fn url(&self, implicit_tls: bool, folder: &str) -> String {
        if implicit_tls {
            format!("imaps://{USER}@127.0.0.1:{}/{folder}", self.tls_port)
        } else {
            format!("imap://{USER}@127.0.0.1:{}/{folder}", self.port)
        }
    }

    /// A logged-in test client (TLS when the server requires it).
    pub fn client(&self) -> TestClient {
        let stream: Box<dyn ReadWrite> = if self.opts.tls {
            let tcp = TcpStream::connect(("127.0.0.1", self.tls_port)).expect("connect imaps");
            Box::new(tls_stream(&self.ca_file(), tcp))
        } else {
            Box::new(TcpStream::connect(("127.0.0.1", self.port)).expect("connect imap"))
        };
        let mut c = TestClient {
            r: BufReader::new(stream),
            tag: 0,
        };
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c.command(&format!("LOGIN {USER} \"{}\"", self.password));
        c
    }

    /// The files of a folder's Maildir on disk (`INBOX`, `Archive`, …).
    pub fn folder_files(&self, folder: &str) -> Vec<PathBuf> {
        let base = self.dir.path().join("mail").join(USER);
        let base = if folder == "INBOX" {
            base
        } else {
            base.join(format!(".{folder}"))
        };
        // Dovecot renames a file from new/ to cur/ (adding ":2,flags")
        // while we list: one message, one unique base name.
        let mut by_name = std::collections::BTreeMap::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(base.join(sub)) {
                for e in rd.filter_map(|e| e.ok()) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let unique = name.split(':').next().unwrap_or_default().to_owned();
                    by_name.insert(unique, e.path());
                }
            }
        }
        by_name.into_values().collect()
    }

    /// The messages of a folder, read from disk.
    pub fn folder_messages(&self, folder: &str) -> Vec<Vec<u8>> {
        self.folder_files(folder)
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Just enough IMAP to set up and inspect a mailbox.
pub struct TestClient {
    r: BufReader<Box<dyn ReadWrite>>,
    tag: u32,
}

impl TestClient {
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read IMAP line");
        l
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// Runs a command; returns the untagged lines; panics unless OK.
    pub fn command(&mut self, command: &str) -> Vec<String> {
        let tag = self.next_tag();
        let w = self.r.get_mut();
        w.write_all(format!("{tag} {command}\r\n").as_bytes())
            .expect("write");
        w.flush().expect("flush");
        self.read_until(&tag, command)
    }

    fn read_until(&mut self, tag: &str, what: &str) -> Vec<String> {
        let mut untagged = Vec::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "server closed the connection during {what}");
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{what}: {l}");
                return untagged;
            }
            untagged.push(l);
        }
    }

    /// APPENDs one message (RFC 9051 6.3.12).
    pub fn append(&mut self, folder: &str, message: &[u8]) {
        self.append_with_flags(folder, "", message);
    }

    /// APPENDs one message with flags, e.g. `(\\Seen $Keyword)`.
    pub fn append_with_flags(&mut self, folder: &str, flags: &str, message: &[u8]) {
        let tag = self.next_tag();
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" {flags}")
        };
        let w = self.r.get_mut();
        w.write_all(
            format!("{tag} APPEND \"{folder}\"{flags} {{{}}}\r\n", message.len()).as_bytes(),
        )
        .expect("write");
        w.flush().expect("flush");
        let cont = self.line();
        assert!(cont.starts_with('+'), "APPEND continuation: {cont}");
        let w = self.r.get_mut();
        w.write_all(message).expect("write message");
        w.write_all(b"\r\n").expect("write");
        w.flush().expect("flush");
        self.read_until(&tag, "APPEND");
    }

    /// `STATUS folder (MESSAGES)`.
    pub fn count(&mut self, folder: &str) -> usize {
        let lines = self.command(&format!("STATUS \"{folder}\" (MESSAGES)"));
        lines
            .iter()
            .find_map(|l| {
                let i = l.find("MESSAGES ")?;
                l[i + 9..]
                    .trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no MESSAGES in {lines:?}"))
    }

    pub fn capabilities(&mut self) -> String {
        self.command("CAPABILITY").join(" ")
    }

    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }
}

fn tls_stream(
    ca: &Path,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(c.expect("CA PEM")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    rustls::StreamOwned::new(conn, tcp)
}

/// A CA and a server certificate for 127.0.0.1 (and localhost) signed by
/// it, all in `d`.
fn make_certs(d: &Path) {
    let p = |f: &str| d.join(f).display().to_string();
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mailauth test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]));
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]));
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .expect("write san.ext");
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("san.ext"),
        "-out",
        &p("server.pem"),
    ]));
}

/// Every process below `pid` (from /proc), children first.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.filter_map(|e| e.ok()) {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|x| x.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Whether a server on 127.0.0.1:`port` sends an IMAP greeting.
fn greets(port: u16) -> bool {
    let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(tcp).read_line(&mut line).is_ok() && line.starts_with("* OK")
}

fn chmod(path: &Path, mode: &str) {
    run(Command::new("chmod").arg(mode).arg(path));
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run helper command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A message with its CRs removed (Dovecot stores lines with LF).
pub fn without_cr(m: &[u8]) -> Vec<u8> {
    m.iter().copied().filter(|&b| b != b'\r').collect()
}

/// Row counts of a store: reports, records, failure reports, TLS reports.
pub fn counts(store: &mailauth::reports::store::SqliteStore) -> Vec<i64> {
    use mailauth::reports::store::Table;
    [
        Table::Reports,
        Table::Records,
        Table::FailureReports,
        Table::TlsReports,
    ]
    .iter()
    .map(|t| store.count(*t).expect("count"))
    .collect()
}

/// What a clean, local ingest of `messages` stores ([`counts`]), and how
/// many are invalid. IMAP hands messages out with CRLF line ends (RFC 9051
/// 4.3), whatever the file had, so this does too.
pub fn expected(messages: &[Vec<u8>]) -> (Vec<i64>, usize) {
    use mailauth::reports::store::ReportStore as _;
    let mut store = mailauth::reports::store::SqliteStore::open_in_memory().expect("memory db");
    let mut invalid = 0;
    for (i, m) in messages.iter().enumerate() {
        let mut wire = Vec::with_capacity(m.len() + m.len() / 40);
        for &b in &without_cr(m) {
            if b == b'\n' {
                wire.push(b'\r');
            }
            wire.push(b);
        }
        let r = store
            .ingest_item(
                &format!("m{i}"),
                &wire,
                &mailauth::reports::IngestLimits::default(),
            )
            .expect("db");
        if r.is_err() {
            invalid += 1;
        }
    }
    (counts(&store), invalid)
}
