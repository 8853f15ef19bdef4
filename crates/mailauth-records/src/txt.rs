//! TXT character-strings: splitting long values into ≤ 255-octet strings,
//! joining them back, and master-file quoting. Shared by every record kind
//! that lives in TXT (SPF, DMARC, DKIM, MTA-STS, TLS-RPT).

/// RFC 1035 §3.3: a <character-string> is a length octet followed by at most
/// 255 octets.
pub const MAX_STRING: usize = 255;

/// Splits `value` into character-strings of at most 255 octets.
/// An empty value is one empty string (a TXT record always has ≥ 1 string).
pub fn split(value: &[u8]) -> Vec<Vec<u8>> {
    if value.is_empty() {
        return vec![Vec::new()];
    }
    value.chunks(MAX_STRING).map(|c| c.to_vec()).collect()
}

/// RFC 7208 §3.3 / RFC 6376 §3.6.2.2: "If a published record contains
/// multiple character-strings, then the record MUST be treated as if those
/// strings are concatenated together without adding spaces."
pub fn join(strings: &[Vec<u8>]) -> Vec<u8> {
    strings.concat()
}

/// Master-file presentation: each string quoted, `"` and `\` escaped,
/// non-printable octets as `\DDD` (RFC 1035 §5.1).
pub fn present(strings: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (i, s) in strings.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for &b in s {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_boundaries() {
        for (len, strings) in [(0, 1), (1, 1), (255, 1), (256, 2), (510, 2), (511, 3)] {
            let v = vec![b'a'; len];
            let s = split(&v);
            assert_eq!(s.len(), strings, "length {len}");
            assert!(s.iter().all(|p| p.len() <= MAX_STRING));
            assert_eq!(join(&s), v);
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(present(&[b"a\"b\\c".to_vec()]), r#""a\"b\\c""#);
        assert_eq!(present(&[vec![0x01]]), r#""\001""#);
    }
}
