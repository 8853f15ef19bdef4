//! DMARC failure reports: ARF (RFC 5965) with the authentication failure
//! extensions of RFC 6591 as profiled by RFC 9991 (DMARC failure reporting).
//!
//! Owns the `message/feedback-report` fields → [`FailureReport`], and the
//! plain-text fallback some MTAs (Exim) send without an ARF part. Leaves
//! MIME walking to `container.rs`.

use std::net::IpAddr;

use serde::Serialize;

use super::ParseError;

/// One failure report.
///
/// RFC 6591 section 3.1: "Feedback-Type: auth-failure", with
/// `Auth-Failure`, `Authentication-Results`, `Reported-Domain`,
/// `Source-IP`, `DKIM-Domain`, `DKIM-Selector`, `SPF-DNS`, …
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureReport {
    /// `From:` of the report message.
    pub reporter: Option<String>,
    pub feedback_type: String,
    pub user_agent: Option<String>,
    pub version: Option<String>,
    pub auth_failure: Option<String>,
    pub original_mail_from: Option<String>,
    pub original_rcpt_to: Vec<String>,
    pub original_envelope_id: Option<String>,
    pub arrival_date: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub reported_domain: String,
    pub reported_uri: Vec<String>,
    pub authentication_results: Vec<String>,
    pub delivery_result: Option<String>,
    pub dkim_domain: Option<String>,
    pub dkim_identity: Option<String>,
    pub dkim_selector: Option<String>,
    pub spf_dns: Option<String>,
    pub identity_alignment: Option<String>,
    /// Header block of the reported message, as sent (capped in size).
    pub original_headers: Option<String>,
    pub original_subject: Option<String>,
    pub original_message_id: Option<String>,
    /// True when taken from a text-only report without an ARF part.
    pub from_text: bool,
}

impl FailureReport {
    /// Every text field without C0 controls but tab, LF and CR
    /// ([`super::clean_text`]); done before the fingerprint is taken.
    pub fn clean_text(&mut self) {
        use super::{clean_opt, clean_text};
        for s in [
            &mut self.reporter,
            &mut self.user_agent,
            &mut self.version,
            &mut self.auth_failure,
            &mut self.original_mail_from,
            &mut self.original_envelope_id,
            &mut self.arrival_date,
            &mut self.delivery_result,
            &mut self.dkim_domain,
            &mut self.dkim_identity,
            &mut self.dkim_selector,
            &mut self.spf_dns,
            &mut self.identity_alignment,
            &mut self.original_headers,
            &mut self.original_subject,
            &mut self.original_message_id,
        ] {
            clean_opt(s);
        }
        clean_text(&mut self.feedback_type);
        clean_text(&mut self.reported_domain);
        for v in [
            &mut self.original_rcpt_to,
            &mut self.reported_uri,
            &mut self.authentication_results,
        ] {
            v.iter_mut().for_each(clean_text);
        }
    }

    /// A stable fingerprint for deduplication: FNV-1a over the fields that
    /// identify one failure event.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |s: &str| {
            for b in s.bytes().chain([0u8]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        feed(self.reporter.as_deref().unwrap_or_default());
        feed(&self.reported_domain);
        feed(&self.source_ip.map(|i| i.to_string()).unwrap_or_default());
        feed(self.arrival_date.as_deref().unwrap_or_default());
        feed(self.original_mail_from.as_deref().unwrap_or_default());
        feed(self.original_message_id.as_deref().unwrap_or_default());
        feed(self.original_headers.as_deref().unwrap_or_default());
        format!("{h:016x}")
    }
}

/// Unfolds RFC 5322 header lines ("Name: value" with continuation lines).
pub(crate) fn header_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    out
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim().trim_matches(['<', '>']).trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// RFC 5965 section 3.2: `source-ip = "Source-IP:" [CFWS] ( IPv4address /
/// IPv6address ) [CFWS] CRLF`. The CFWS may hold RFC 5322 section 3.2.2
/// comments, which reporters use for the host name (`192.0.2.1
/// (host.example)`); they are dropped. Also taken: an address in brackets
/// and with the RFC 5321 `IPv6:` tag. Anything else is not guessed at.
fn source_ip(value: &str) -> Option<IpAddr> {
    let mut bare = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if depth > 0 => escaped = true,
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    if depth > 0 {
        return None;
    }
    let ip = bare.trim().trim_matches(['[', ']']).trim();
    let ip = ip
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("ipv6:"))
        .map_or(ip, |_| &ip[5..]);
    ip.parse().ok()
}

/// Parses the body of a `message/feedback-report` part.
///
/// RFC 5965 section 3.1: "Feedback-Type:" and "User-Agent:" and
/// "Version:" are required; RFC 6591 section 3.1 makes "Reported-Domain"
/// required for auth-failure reports.
pub fn parse_arf(fields_text: &str) -> Result<FailureReport, ParseError> {
    let mut r = FailureReport::default();
    for (name, value) in header_fields(fields_text) {
        match name.as_str() {
            "feedback-type" => r.feedback_type = value.to_ascii_lowercase(),
            "user-agent" => r.user_agent = non_empty(&value),
            "version" => r.version = non_empty(&value),
            "auth-failure" => r.auth_failure = non_empty(&value),
            "original-mail-from" => r.original_mail_from = non_empty(&value),
            "original-rcpt-to" => r.original_rcpt_to.extend(non_empty(&value)),
            "original-envelope-id" => r.original_envelope_id = non_empty(&value),
            "arrival-date" | "received-date" => r.arrival_date = non_empty(&value),
            "source-ip" => {
                r.source_ip = Some(source_ip(&value).ok_or_else(|| ParseError::InvalidValue {
                    field: "Source-IP".to_owned(),
                    value: value.clone(),
                    record: None,
                })?);
            }
            "reported-domain" => r.reported_domain = value.trim().to_ascii_lowercase(),
            "reported-uri" => r.reported_uri.extend(non_empty(&value)),
            "authentication-results" => r.authentication_results.push(value),
            "delivery-result" => r.delivery_result = non_empty(&value),
            "dkim-domain" => r.dkim_domain = non_empty(&value),
            "dkim-identity" => r.dkim_identity = non_empty(&value),
            "dkim-selector" => r.dkim_selector = non_empty(&value),
            "spf-dns" => r.spf_dns = non_empty(&value),
            "identity-alignment" => r.identity_alignment = non_empty(&value),
            _ => {}
        }
    }
    if r.feedback_type.is_empty() {
        return Err(ParseError::MissingField {
            field: "Feedback-Type".to_owned(),
        });
    }
    if r.reported_domain.is_empty() {
        return Err(ParseError::MissingField {
            field: "Reported-Domain".to_owned(),
        });
    }
    Ok(r)
}

/// Text-only failure reports (no ARF part), as Exim's DMARC module sends:
/// "Sender Domain: example.com" / "Sender IP Address: 203.0.113.68".
pub fn parse_text(text: &str) -> Option<FailureReport> {
    let mut r = FailureReport {
        feedback_type: "auth-failure".to_owned(),
        from_text: true,
        ..FailureReport::default()
    };
    for line in text.lines() {
        let Some((name, value)) = line.trim().split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "sender domain" => r.reported_domain = value.trim().to_ascii_lowercase(),
            "sender ip address" => r.source_ip = source_ip(value),
            "received date" => r.arrival_date = non_empty(value),
            _ => {}
        }
        if !r.reported_domain.is_empty() && r.source_ip.is_some() && r.arrival_date.is_some() {
            break;
        }
    }
    (!r.reported_domain.is_empty()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arf_fields() {
        let t = "Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\n\
                 Source-IP: 192.0.2.9\r\nReported-Domain: Example.com\r\n\
                 Authentication-Results: a; dmarc=fail\r\n  header.from=example.com\r\n";
        let r = parse_arf(t).expect("parses");
        assert_eq!(r.reported_domain, "example.com");
        assert_eq!(r.source_ip, Some("192.0.2.9".parse().expect("ip")));
        assert_eq!(
            r.authentication_results,
            vec!["a; dmarc=fail header.from=example.com"]
        );
    }

    #[test]
    fn source_ip_comments_and_brackets() {
        for (v, want) in [
            ("192.0.2.1 (host.example)", Some("192.0.2.1")),
            ("(from) 192.0.2.1 (mx (nested) \\) x)", Some("192.0.2.1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[IPv6:2001:db8::1] (h.example)", Some("2001:db8::1")),
            ("192.0.2.1 (unclosed", None),
            ("host.example", None),
            ("192.0.2.1 192.0.2.2", None),
        ] {
            assert_eq!(source_ip(v), want.map(|w| w.parse().expect("ip")), "{v}");
        }
    }

    #[test]
    fn arf_requires_reported_domain() {
        let err = parse_arf("Feedback-Type: auth-failure\n").expect_err("rejects");
        assert!(err.to_string().contains("Reported-Domain"), "{err}");
    }

    #[test]
    fn text_fallback() {
        let r = parse_text("  Sender Domain: example.com\n  Sender IP Address: 203.0.113.68\n")
            .expect("found");
        assert_eq!(r.reported_domain, "example.com");
        assert!(parse_text("hello").is_none());
    }
}
