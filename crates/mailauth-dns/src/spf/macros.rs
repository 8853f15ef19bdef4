//! The pure half of macro expansion (RFC 7208 §7.3): splitting, reversing
//! and keeping right-hand parts, URL escaping, the dotted forms of an IP
//! address, and truncating an expanded name to 253 octets. Looking up the
//! values (`%{p}` needs DNS) is the evaluator's job; parsing is
//! `record::spf`'s.

use std::net::IpAddr;

use crate::record::spf::MacroExpand;

/// RFC 7208 §7.3: "the value is split into parts ... using the delimiter
/// characters ... If transformers or delimiters are provided, the
/// replacement value for a macro letter is split into parts separated by
/// one or more of the specified delimiter characters. After performing any
/// reversal operation and/or removal of left-hand parts, the parts are
/// rejoined using "." and not the original splitting characters."
/// Then: "Uppercase macros expand exactly as their lowercase equivalents,
/// and are then URL escaped."
pub fn transform(value: &str, e: &MacroExpand) -> String {
    let delims: &str = if e.delimiters.is_empty() {
        "."
    } else {
        &e.delimiters
    };
    let mut parts: Vec<&str> = value.split(|c| delims.contains(c)).collect();
    if e.reverse {
        parts.reverse();
    }
    if let Some(n) = e.digits {
        let n = n as usize;
        if n < parts.len() {
            parts.drain(..parts.len() - n);
        }
    }
    let joined = parts.join(".");
    if e.url_escape {
        url_escape(&joined)
    } else {
        joined
    }
}

/// RFC 3986 escaping: "All characters not in the "unreserved" set MUST be
/// escaped" (RFC 7208 §7.3), `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%{i}`: RFC 7208 §7.3 "For IPv4 addresses, both the "i" and "c" macros
/// expand to the standard dotted-quad format. For IPv6 addresses, the "i"
/// macro expands to a dot-format address; it is intended for use in
/// %{ir}." The nibbles are written in upper case, as the openspf test
/// suite expects; DNS compares names case-insensitively, so queries are
/// unaffected.
pub fn ip_dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut nibbles = Vec::with_capacity(32);
            for b in v6.octets() {
                nibbles.push(format!("{:X}", b >> 4));
                nibbles.push(format!("{:X}", b & 0xf));
            }
            nibbles.join(".")
        }
    }
}

/// `%{v}`: "the string "in-addr" if <ip> is ipv4, or "ip6" if <ip> is ipv6".
pub fn ip_version(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "in-addr",
        IpAddr::V6(_) => "ip6",
    }
}

/// RFC 7208 §7.3: "if the expanded domain name exceeds 253 characters ...
/// the left side is truncated to fit, by removing successive domain labels
/// (and their following dots) until the total length does not exceed 253
/// characters." A trailing dot is dropped first.
pub fn truncate_name(name: &str) -> String {
    let mut s = name.strip_suffix('.').unwrap_or(name);
    while s.len() > 253 {
        match s.find('.') {
            Some(i) => s = &s[i + 1..],
            None => break,
        }
    }
    s.to_string()
}

/// RFC 7208 §4.3: a name is usable when it has no empty label, no label
/// over 63 octets and is at most 253 octets long.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::spf::{MacroContext, MacroString, MacroToken};

    fn expand(spec: &str, value: &str) -> String {
        let ms = MacroString::parse(spec, MacroContext::Modifier).unwrap();
        let MacroToken::Expand(e) = &ms.tokens[0] else {
            panic!("{spec}")
        };
        transform(value, e)
    }

    #[test]
    fn rfc_7208_section_7_4_examples() {
        // Sender strong-bad@email.example.com, IPv4 192.0.2.3.
        assert_eq!(
            expand("%{s}", "strong-bad@email.example.com"),
            "strong-bad@email.example.com"
        );
        assert_eq!(expand("%{o}", "email.example.com"), "email.example.com");
        assert_eq!(expand("%{d4}", "email.example.com"), "email.example.com");
        assert_eq!(expand("%{d3}", "email.example.com"), "email.example.com");
        assert_eq!(expand("%{d2}", "email.example.com"), "example.com");
        assert_eq!(expand("%{d1}", "email.example.com"), "com");
        assert_eq!(expand("%{dr}", "email.example.com"), "com.example.email");
        assert_eq!(expand("%{d2r}", "email.example.com"), "example.email");
        assert_eq!(expand("%{l}", "strong-bad"), "strong-bad");
        assert_eq!(expand("%{l-}", "strong-bad"), "strong.bad");
        assert_eq!(expand("%{lr}", "strong-bad"), "strong-bad");
        assert_eq!(expand("%{lr-}", "strong-bad"), "bad.strong");
        assert_eq!(expand("%{l1r-}", "strong-bad"), "strong");
        assert_eq!(expand("%{ir}", "192.0.2.3"), "3.2.0.192");
        assert_eq!(
            expand("%{L}", "~jack&jill=up-a_b3.c"),
            "~jack%26jill%3Dup-a_b3.c"
        );
    }

    #[test]
    fn ip_forms_and_truncation() {
        assert_eq!(
            ip_dotted("2001:db8::cb01".parse().unwrap()),
            "2.0.0.1.0.D.B.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.C.B.0.1"
        );
        let long = format!("{}.example.com", ["abcdefghij"; 30].join("."));
        let t = truncate_name(&long);
        assert!(t.len() <= 253 && t.ends_with(".example.com") && long.ends_with(&t));
        assert!(t.len() > 253 - 11);
        assert!(is_valid_name("a.b"));
        assert!(!is_valid_name("a..b"));
        assert!(!is_valid_name(&format!("{}.com", "a".repeat(64))));
    }
}
