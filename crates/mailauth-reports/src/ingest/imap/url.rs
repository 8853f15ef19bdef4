//! The `imap://` / `imaps://` URL of the report folder (RFC 5092) and the
//! password that goes with it.
//!
//! Owns parsing and printing the URL (percent-encoding, IPv6 literals,
//! default ports), the loopback test that allows plaintext, and keeping
//! the password out of `Debug` output. Leaves connecting to `conn` and
//! where the password comes from (environment, file) to the command line.

use std::net::IpAddr;
use std::path::Path;

use super::ImapError;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte (RFC 8314), port 993.
    Tls,
    /// `imap://`: STARTTLS (RFC 9051 6.2.1), port 143; plaintext only when
    /// the server offers no STARTTLS and plaintext is allowed.
    StartTls,
}

/// A parsed `imap://user@host:port/Folder` or `imaps://…` URL.
///
/// RFC 5092 3: `imapurl = "imap://" iserver ipath-query`,
/// `iserver = [iuserinfo "@"] host [ ":" port ]`; the user and the
/// mailbox are percent-encoded (`enc-user`, `enc-mailbox`). `imaps` is
/// the same form for implicit TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    pub security: Security,
    pub user: String,
    /// Without brackets for IPv6 literals.
    pub host: String,
    pub port: u16,
    /// The folder to read; `INBOX` when the URL has no path.
    pub folder: String,
}

impl std::str::FromStr for ImapUrl {
    type Err = ImapError;

    fn from_str(url: &str) -> Result<Self, ImapError> {
        let bad = |reason: &str| ImapError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (security, rest) = if let Some(r) = url.strip_prefix("imaps://") {
            (Security::Tls, r)
        } else if let Some(r) = url.strip_prefix("imap://") {
            (Security::StartTls, r)
        } else {
            return Err(bad("must start with imaps:// or imap://"));
        };
        let (server, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Some((user, hostport)) = server.rsplit_once('@') else {
            return Err(bad("no user: write imaps://user@host/INBOX"));
        };
        if user.contains(';') {
            return Err(bad(
                "AUTH= in the URL is not supported; log in is by password",
            ));
        }
        let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
        if user.is_empty() {
            return Err(bad("empty user"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
            None if security == Security::Tls => 993,
            None => 143,
        };
        // `;UIDVALIDITY=` and `?search` parts name messages, not a folder.
        let path = path.split([';', '?']).next().unwrap_or_default();
        let folder = percent_decode(path.trim_end_matches('/'))
            .ok_or_else(|| bad("bad %-escape in the folder"))?;
        if folder.contains(['\r', '\n']) {
            return Err(bad("line break in the folder name"));
        }
        Ok(ImapUrl {
            security,
            user,
            host,
            port,
            folder: if folder.is_empty() {
                "INBOX".to_owned()
            } else {
                folder
            },
        })
    }
}

impl std::fmt::Display for ImapUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.security {
            Security::Tls => "imaps",
            Security::StartTls => "imap",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{scheme}://{}@{host}:{}/{}",
            percent_encode(&self.user),
            self.port,
            percent_encode(&self.folder)
        )
    }
}

impl ImapUrl {
    /// `localhost`, 127.0.0.0/8 or ::1: plaintext never leaves the machine.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,=".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// A password that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, for LOGIN only.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a password file: its first line, without the line end.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let line = text.lines().next().unwrap_or_default();
        Ok(Self(line.to_owned()))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cases: &[(&str, Security, &str, &str, u16, &str)] = &[
            (
                "imaps://dmarc@mail.example.com/INBOX",
                Security::Tls,
                "dmarc",
                "mail.example.com",
                993,
                "INBOX",
            ),
            (
                "imap://dmarc@127.0.0.1:1143/Reports/DMARC",
                Security::StartTls,
                "dmarc",
                "127.0.0.1",
                1143,
                "Reports/DMARC",
            ),
            (
                "imaps://rua%40example.com@[::1]:9993",
                Security::Tls,
                "rua@example.com",
                "::1",
                9993,
                "INBOX",
            ),
            (
                "imap://u@h/My%20Reports;UIDVALIDITY=5/;UID=3",
                Security::StartTls,
                "u",
                "h",
                143,
                "My Reports",
            ),
        ];
        for (url, sec, user, host, port, folder) in cases {
            let u: ImapUrl = url.parse().expect(url);
            assert_eq!(
                (
                    u.security,
                    u.user.as_str(),
                    u.host.as_str(),
                    u.port,
                    u.folder.as_str()
                ),
                (*sec, *user, *host, *port, *folder),
                "{url}"
            );
            // Display round-trips.
            let again: ImapUrl = u.to_string().parse().expect("round trip");
            assert_eq!(again, u);
        }
        for bad in [
            "http://u@h/INBOX",
            "imaps://h/INBOX",
            "imaps://@h/INBOX",
            "imaps://u@/INBOX",
            "imaps://u@h:99999/INBOX",
            "imaps://u@h:x/INBOX",
            "imaps://u@[::1/INBOX",
            "imaps://u%zz@h/INBOX",
            "imaps://u;AUTH=*@h/INBOX",
            "imaps://u@h/a%0Db",
        ] {
            assert!(bad.parse::<ImapUrl>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn loopback() {
        for (url, lo) in [
            ("imap://u@127.0.0.1/", true),
            ("imap://u@127.9.9.9/", true),
            ("imap://u@[::1]/", true),
            ("imap://u@LocalHost/", true),
            ("imap://u@10.0.0.1/", false),
            ("imap://u@mail.example.com/", false),
        ] {
            let u: ImapUrl = url.parse().expect(url);
            assert_eq!(u.is_loopback(), lo, "{url}");
        }
    }

    #[test]
    fn password_is_not_printed() {
        let p = Password::new("hunter2".to_owned());
        let cfg = super::super::ImapConfig::new("imaps://u@h/".parse().expect("url"), p);
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
