//! Sends one plain-text message by SMTP for `reports alerts`: to a local
//! MTA or a submission server, with STARTTLS and optional AUTH PLAIN.
//!
//! Owns the SMTP dialogue (RFC 5321), the upgrade to TLS (RFC 3207), the
//! authentication (RFC 4954, RFC 4616 PLAIN) and the message's form
//! (RFC 5322). Credentials come from the environment or a file, never the
//! config, and go only over TLS: STARTTLS is required unless the server is
//! on loopback, and a password is never sent in clear to another host.
//! Leaves what the message says to `reports::alerts`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::alerts::EmailConfig;

/// What went wrong sending.
#[derive(Debug, thiserror::Error)]
#[error("alerts.email ({server}): {msg}")]
pub struct SmtpError {
    server: String,
    msg: String,
}

const TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; a little room.
const MAX_LINE: usize = 2048;
const MAX_LINES: usize = 100;

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// Between the plain stream and its TLS wrapping.
    Gone,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "no connection")
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Gone => Err(gone()),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Gone => Err(gone()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Gone => Err(gone()),
        }
    }
}

struct Session {
    conn: Conn,
    server: String,
}

impl Session {
    fn err(&self, msg: impl Into<String>) -> SmtpError {
        SmtpError {
            server: self.server.clone(),
            msg: msg.into(),
        }
    }

    /// One reply line without its CRLF. Read byte by byte: nothing is
    /// buffered past the line, so the stream can switch to TLS after it.
    fn line(&mut self) -> Result<String, SmtpError> {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match self.conn.read(&mut b) {
                Ok(0) => return Err(self.err("connection closed by the server")),
                Ok(_) => {}
                Err(e) => return Err(self.err(format!("reading: {e}"))),
            }
            if b[0] == b'\n' {
                break;
            }
            out.push(b[0]);
            if out.len() > MAX_LINE {
                return Err(self.err("reply line too long"));
            }
        }
        if out.last() == Some(&b'\r') {
            out.pop();
        }
        Ok(String::from_utf8_lossy(&out)
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect())
    }

    /// RFC 5321 §4.2: `code-text` lines continue, `code text` ends.
    fn reply(&mut self) -> Result<(u16, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        for _ in 0..MAX_LINES {
            let l = self.line()?;
            let code = l
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| self.err(format!("not an SMTP reply: {l:?}")))?;
            let more = l.as_bytes().get(3) == Some(&b'-');
            lines.push(l.get(4..).unwrap_or("").to_owned());
            if !more {
                return Ok((code, lines));
            }
        }
        Err(self.err("reply of too many lines"))
    }

    /// Sends `cmd` (shown as `shown` in errors) and expects a `want`xx reply.
    fn command(&mut self, cmd: &str, shown: &str, want: u16) -> Result<Vec<String>, SmtpError> {
        self.conn
            .write_all(format!("{cmd}\r\n").as_bytes())
            .and_then(|_| self.conn.flush())
            .map_err(|e| self.err(format!("writing {shown}: {e}")))?;
        let (code, lines) = self.reply()?;
        if code / 100 != want {
            return Err(self.err(format!(
                "{shown} answered {code} {}",
                lines.join(" ").chars().take(200).collect::<String>()
            )));
        }
        Ok(lines)
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("ca_file {}: no CERTIFICATE", path.display()));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// An address usable in `MAIL FROM:<…>` and a header: no brackets, white
/// space or controls, one `@`.
fn check_address(a: &str) -> bool {
    a.matches('@').count() == 1
        && !a.starts_with('@')
        && !a.ends_with('@')
        && a.len() <= 254
        && !a
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | '"'))
}

/// RFC 5322 §3.3 `date-time` in UTC: `Thu, 01 Jan 2026 12:00:00 +0000`.
pub fn rfc5322_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = crate::clock::civil(secs);
    let t = secs.rem_euclid(86_400);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize],
        MONTHS[(m as usize).saturating_sub(1).min(11)],
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// Sends `body` (plain text; non-ASCII shown as `?`) with `subject`.
/// `base`: the config's directory, for relative `password_file`/`ca_file`.
pub fn send(
    cfg: &EmailConfig,
    base: &Path,
    subject: &str,
    body: &str,
    now: i64,
) -> Result<(), SmtpError> {
    let fail = |msg: String| SmtpError {
        server: cfg.server.clone(),
        msg,
    };
    if !check_address(&cfg.from) || cfg.to.is_empty() || !cfg.to.iter().all(|t| check_address(t)) {
        return Err(fail(
            "from and to must be plain addresses (local@domain), at least one recipient".to_owned(),
        ));
    }
    let (host, _) = cfg
        .server
        .rsplit_once(':')
        .ok_or_else(|| fail("server must be host:port".to_owned()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let loopback = crate::http::is_loopback_host(&host);
    let password = match (&cfg.password_env, &cfg.password_file) {
        (Some(var), _) => Some(
            std::env::var(var)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| fail(format!("password_env names {var}, which is not set")))?,
        ),
        (None, Some(f)) => {
            let path: PathBuf = base.join(f);
            Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("password_file {}: {e}", path.display())))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            )
        }
        (None, None) => None,
    };
    // Every address of the name in turn (`localhost` may be ::1 first).
    let addrs: Vec<_> = cfg
        .server
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .collect();
    let mut last = String::from("no address");
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(t) => {
                tcp = Some(t);
                break;
            }
            Err(e) => last = format!("connect {a}: {e}"),
        }
    }
    let tcp = tcp.ok_or_else(|| fail(last))?;
    let _ = tcp.set_read_timeout(Some(TIMEOUT));
    let _ = tcp.set_write_timeout(Some(TIMEOUT));
    let mut s = Session {
        conn: Conn::Plain(tcp),
        server: cfg.server.clone(),
    };
    let (code, _) = s.reply()?;
    if code != 220 {
        return Err(s.err(format!("greeting {code}")));
    }
    let ehlo = "EHLO mailauth.invalid";
    let caps = s.command(ehlo, "EHLO", 2)?;
    let has = |caps: &[String], what: &str| {
        caps.iter().any(|c| {
            c.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(what))
        })
    };
    // RFC 3207: STARTTLS, then EHLO again over TLS; required off loopback.
    let caps = if has(&caps, "STARTTLS") {
        s.command("STARTTLS", "STARTTLS", 2)?;
        let config =
            tls_config(cfg.ca_file.as_ref().map(|f| base.join(f)).as_deref()).map_err(&fail)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| fail(format!("server name {host:?}: {e}")))?;
        let conn =
            rustls::ClientConnection::new(config, name).map_err(|e| fail(format!("TLS: {e}")))?;
        let Conn::Plain(tcp) = std::mem::replace(&mut s.conn, Conn::Gone) else {
            return Err(fail("TLS started twice".to_owned()));
        };
        s.conn = Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
        s.command(ehlo, "EHLO", 2)?
    } else if loopback {
        caps
    } else {
        return Err(fail(
            "the server does not offer STARTTLS; refusing to send in clear to a host other than loopback"
                .to_owned(),
        ));
    };
    if cfg.username.is_some() != password.is_some() {
        return Err(fail(
            "username needs password_env or password_file, and a password needs a username"
                .to_owned(),
        ));
    }
    if let (Some(user), Some(pw)) = (&cfg.username, &password) {
        if !has(&caps, "AUTH") {
            return Err(fail("the server does not offer AUTH".to_owned()));
        }
        // RFC 4616: authzid NUL authcid NUL passwd, base64.
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"));
        s.command(&format!("AUTH PLAIN {token}"), "AUTH PLAIN", 2)?;
    }
    s.command(&format!("MAIL FROM:<{}>", cfg.from), "MAIL FROM", 2)?;
    for to in &cfg.to {
        s.command(&format!("RCPT TO:<{to}>"), "RCPT TO", 2)?;
    }
    s.command("DATA", "DATA", 3)?;
    let ascii = |t: &str| -> String {
        t.chars()
            .map(|c| {
                if c.is_ascii() && (!c.is_control() || c == '\n') {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    };
    let mut msg = format!(
        "From: <{}>\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{now}.{}@mailauth.invalid>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
         Content-Transfer-Encoding: 7bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
        cfg.from,
        cfg.to
            .iter()
            .map(|t| format!("<{t}>"))
            .collect::<Vec<_>>()
            .join(", "),
        ascii(subject).replace('\n', " "),
        rfc5322_date(now),
        std::process::id()
    );
    // RFC 5321 §4.5.2: a line starting with "." gets another.
    for line in ascii(body).lines() {
        if line.starts_with('.') {
            msg.push('.');
        }
        msg.push_str(line);
        msg.push_str("\r\n");
    }
    s.command(&format!("{msg}."), "end of DATA", 2)?;
    let _ = s.command("QUIT", "QUIT", 2);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_addresses() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_767_268_800),
            "Thu, 01 Jan 2026 12:00:00 +0000"
        );
        assert!(check_address("ops@example.com"));
        for bad in ["ops", "a@b@c", "a b@c", "a@c>\r\nRCPT TO:<x@y", "<a@b>", ""] {
            assert!(!check_address(bad), "{bad:?}");
        }
    }
}
