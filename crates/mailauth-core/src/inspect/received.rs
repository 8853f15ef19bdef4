//! The `Received` trace (RFC 5321 §4.4): each hop's from / by / with / id /
//! for clauses and timestamp, the delay between hops, and where the
//! receiving organisation's own servers end. Also the RFC 5322 date-time
//! parser the timestamps need.
//!
//! This module reads trace fields only. It does not decide what is
//! authenticated: it marks which values were recorded by a trusted server
//! and which are claims, and the caller evaluates SPF/DKIM/DMARC.

use std::net::IpAddr;

use serde::Serialize;

/// One `Received` field.
///
/// RFC 5321 §4.4:
/// ```text
/// Time-stamp-line = "Received:" FWS Stamp <CRLF>
/// Stamp          = From-domain By-domain Opt-info [CFWS] ";"
///                  FWS date-time
/// From-domain    = "FROM" FWS Extended-Domain
/// By-domain      = CFWS "BY" FWS Extended-Domain
/// Extended-Domain = Domain /
///                  ( Domain FWS "(" TCP-info ")" ) /
///                  ( address-literal FWS "(" TCP-info ")" )
/// TCP-info       = address-literal / ( Domain FWS address-literal )
/// Opt-info       = [Via] [With] [ID] [For]
///                  [Additional-Registered-Clauses]
/// With           = CFWS "WITH" FWS Protocol
/// ID             = CFWS "ID" FWS ( Atom / msg-id )
/// For            = CFWS "FOR" FWS ( Path / Mailbox )
/// ```
/// Real servers bend this (Exim writes `helo=` into the TCP-info, Microsoft
/// omits the address literal's brackets), so parsing is lenient: it reads
/// keyword / value pairs and takes addresses from the comments.
#[derive(schemars::JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// Position among the Received fields, 0 = topmost (the last hop).
    pub index: usize,
    /// The name the client gave in HELO/EHLO, as written after `from`: a
    /// claim, unless it is an address literal.
    pub from: Option<String>,
    /// The client's reverse-DNS name as the receiving server recorded it
    /// in the TCP-info comment.
    pub from_rdns: Option<String>,
    /// The client's IP address as the receiving server recorded it.
    pub from_ip: Option<IpAddr>,
    /// A `helo=` in the comment (Exim), when `from` holds something else.
    pub helo: Option<String>,
    /// The receiving server.
    pub by: Option<String>,
    pub with: Option<String>,
    pub id: Option<String>,
    pub for_addr: Option<String>,
    /// `envelope-from <...>` in a comment (Exim, ecelerity).
    pub envelope_from: Option<String>,
    /// The date-time after the `;`, as written.
    pub date: Option<String>,
    /// `date` as Unix seconds, when it parses (printed in RFC 3339 UTC).
    #[serde(serialize_with = "crate::output::rfc3339_opt")]
    #[schemars(with = "Option<crate::output::Rfc3339>")]
    pub timestamp: Option<i64>,
    /// Seconds between the hop below (earlier) and this one.
    pub delay: Option<i64>,
    /// `by` is one of the user's trusted hosts, so this field was written
    /// by a server the user trusts and its `from` IP is a recorded fact.
    pub trusted: bool,
    /// The unfolded field value.
    pub raw: String,
}

impl Hop {
    /// The HELO name the client claimed (`helo=` in the comment, else the
    /// `from` word).
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref().or(self.from.as_deref())
    }
}

/// Splits a Received value into words and parenthesised comments, keeping
/// the part after the last `;` as the date.
fn tokens(value: &str) -> (Vec<(bool, String)>, Option<String>) {
    let (clauses, date) = match value.rfind(';') {
        Some(p) => (&value[..p], Some(value[p + 1..].trim().to_string())),
        None => (value, None),
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in clauses.chars() {
        match c {
            '(' => {
                if depth == 0 && !cur.trim().is_empty() {
                    out.push((false, cur.trim().to_string()));
                    cur.clear();
                } else if depth > 0 {
                    cur.push(c);
                }
                depth += 1;
            }
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push((true, cur.trim().to_string()));
                    cur.clear();
                } else {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.trim().is_empty() {
                    out.push((false, cur.trim().to_string()));
                }
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push((depth > 0, cur.trim().to_string()));
    }
    (out, date)
}

/// An IP address in `[1.2.3.4]`, `[IPv6:...]`, `1.2.3.4` or `[1.2.3.4:port]`.
fn ip_in(word: &str) -> Option<IpAddr> {
    let w = word.trim_matches(|c| c == '[' || c == ']' || c == ',');
    let w = w
        .strip_prefix("IPv6:")
        .or_else(|| w.strip_prefix("ipv6:"))
        .unwrap_or(w);
    if let Ok(ip) = w.parse::<IpAddr>() {
        return Some(ip);
    }
    // `[10.10.10.10:4227]`: address and port.
    let (a, port) = w.rsplit_once(':')?;
    if port.chars().all(|c| c.is_ascii_digit()) {
        return a.parse::<IpAddr>().ok();
    }
    None
}

fn angle(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches(['>', ';', ','])
        .to_string()
}

/// Reads a TCP-info / additional comment into `hop`.
fn read_comment(hop: &mut Hop, comment: &str, after_from: bool) {
    let words: Vec<&str> = comment.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let lw = w.to_ascii_lowercase();
        if let Some(h) = lw.strip_prefix("helo=") {
            let _ = h;
            hop.helo = Some(w[5..].trim_end_matches(')').to_string());
        } else if lw == "envelope-from" && i + 1 < words.len() {
            hop.envelope_from = Some(angle(words[i + 1]));
            i += 1;
        } else if let Some(e) = lw.strip_prefix("envelope-from=") {
            let _ = e;
            hop.envelope_from = Some(angle(&w[14..]));
        } else if after_from {
            if let Some(ip) = ip_in(w) {
                if hop.from_ip.is_none() {
                    hop.from_ip = Some(ip);
                }
            } else if i == 0 && w.contains('.') && !w.contains('=') && hop.from_rdns.is_none() {
                hop.from_rdns = Some(w.trim_end_matches('.').to_string());
            }
        }
        i += 1;
    }
}

/// Parses one Received value.
pub fn parse_hop(index: usize, value: &str) -> Hop {
    let (toks, date) = tokens(value);
    let mut hop = Hop {
        index,
        raw: value.to_string(),
        timestamp: date.as_deref().and_then(parse_date),
        date,
        ..Hop::default()
    };
    let mut last_kw = String::new();
    let mut i = 0;
    while i < toks.len() {
        let (is_comment, t) = &toks[i];
        if *is_comment {
            read_comment(&mut hop, t, last_kw == "from");
            i += 1;
            continue;
        }
        let kw = t.to_ascii_lowercase();
        let next = toks.get(i + 1).filter(|(c, _)| !c).map(|(_, v)| v.clone());
        let known = matches!(kw.as_str(), "from" | "by" | "via" | "with" | "id" | "for");
        if known {
            // `from  (comment)`: an empty from-domain before a comment.
            let slot = match kw.as_str() {
                "from" => &mut hop.from,
                "by" => &mut hop.by,
                "with" => &mut hop.with,
                "id" => &mut hop.id,
                "for" => &mut hop.for_addr,
                _ => {
                    last_kw = kw;
                    i += 2;
                    continue;
                }
            };
            if let Some(v) = next {
                if slot.is_none() {
                    *slot = Some(if kw == "for" { angle(&v) } else { v.clone() });
                }
                if kw == "from"
                    && let Some(ip) = ip_in(&v).filter(|_| v.starts_with('['))
                {
                    hop.from_ip.get_or_insert(ip);
                }
                i += 2;
            } else {
                i += 1;
            }
            last_kw = kw;
            continue;
        }
        i += 1;
    }
    hop
}

/// Parses the Received fields (`values` top first) and marks trust and
/// delays. `trusted` holds the receiving organisation's host names: a
/// pattern matches a host equal to it or, when it starts with `.`, any
/// host under it.
///
/// Trust runs from the top: a field is trusted if its `by` host is trusted
/// and every field above it is trusted and names a client inside the
/// organisation (a server outside it can write anything below). With no trusted names the
/// topmost field is trusted alone: it was written by the server that
/// delivered the message to the reader.
pub fn chain(values: &[String], trusted: &[String]) -> Vec<Hop> {
    let mut hops: Vec<Hop> = values
        .iter()
        .enumerate()
        .map(|(i, v)| parse_hop(i, v))
        .collect();
    for i in 0..hops.len() {
        if let (Some(now), Some(before)) =
            (hops[i].timestamp, hops.get(i + 1).and_then(|h| h.timestamp))
        {
            hops[i].delay = Some(now - before);
        }
    }
    if trusted.is_empty() {
        if let Some(top) = hops.first_mut() {
            top.trusted = true;
        }
        return hops;
    }
    for hop in hops.iter_mut() {
        let ok = hop.by.as_deref().is_some_and(|b| host_matches(b, trusted));
        if !ok {
            break;
        }
        hop.trusted = true;
        // Below a hop whose client is outside the organisation, every field
        // was written outside it, whatever its `by` says.
        // A field without `from` records a hand-off inside the server
        // itself (a filter, a local queue).
        let inside = (hop.from.is_none() && hop.from_ip.is_none())
            || hop
                .from_rdns
                .iter()
                .chain(hop.from.iter())
                .any(|f| host_matches(f, trusted));
        if !inside {
            break;
        }
    }
    hops
}

/// Whether `host` is one of `patterns` (`.example.com` matches subdomains).
pub fn host_matches(host: &str, patterns: &[String]) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim_end_matches('.').to_ascii_lowercase();
        match p.strip_prefix('.') {
            Some(suffix) => h == suffix || h.ends_with(&format!(".{suffix}")),
            None => h == p,
        }
    })
}

/// The hop at the organisation's boundary: the lowest trusted field. Its client is the first server
/// outside the organisation, and its recorded IP is what SPF checks.
pub fn boundary(hops: &[Hop]) -> Option<&Hop> {
    hops.iter().rfind(|h| h.trusted)
}

/// RFC 5322 §3.3 date-time, to unix seconds:
/// ```text
/// date-time   = [ day-of-week "," ] date time [CFWS]
/// date        = day month year
/// time        = time-of-day zone
/// time-of-day = hour ":" minute [ ":" second ]
/// zone        = (FWS ( "+" / "-" ) 4DIGIT) / obs-zone
/// ```
/// `obs-zone` names (`GMT`, `UT`, `EST`…) are read as RFC 5322 §4.3 says;
/// other letters count as `-0000` ("SHOULD be considered equivalent to
/// "-0000"").
pub fn parse_date(s: &str) -> Option<i64> {
    // Drop comments such as `(CEST)` and the day of week.
    let mut clean = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => clean.push(c),
            _ => {}
        }
    }
    let clean = clean.split_once(',').map_or(clean.as_str(), |(_, r)| r);
    let w: Vec<&str> = clean.split_whitespace().collect();
    if w.len() < 4 {
        return None;
    }
    let day: i64 = w[0].parse().ok()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| w[1].to_ascii_lowercase().starts_with(m))? as i64
        + 1;
    let mut year: i64 = w[2].parse().ok()?;
    // RFC 5322 §4.3 obs-year.
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    let mut t = w[3].split(':').map(|p| p.parse::<i64>().ok());
    let (h, m) = (t.next()??, t.next()??);
    let sec = t.next().flatten().unwrap_or(0);
    let zone = w.get(4).copied().unwrap_or("-0000");
    let offset = match zone.as_bytes().first() {
        Some(b'+') | Some(b'-') if zone.len() == 5 => {
            let n: i64 = zone[1..].parse().ok()?;
            let mins = n / 100 * 60 + n % 100;
            if zone.starts_with('-') { -mins } else { mins }
        }
        _ => match zone.to_ascii_uppercase().as_str() {
            "EDT" => -4 * 60,
            "EST" | "CDT" => -5 * 60,
            "CST" | "MDT" => -6 * 60,
            "MST" | "PDT" => -7 * 60,
            "PST" => -8 * 60,
            _ => 0,
        },
    };
    // `year = 4*DIGIT` has no upper bound in the grammar; a year past 9999
    // (or hours and minutes out of range) is not a date anyone sent, and
    // would overflow the day arithmetic.
    if !(1..=31).contains(&day)
        || !(1..=9999).contains(&year)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&m)
        || !(0..=60).contains(&sec)
    {
        return None;
    }
    Some(
        crate::clock::days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec
            - offset * 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absurd_year_is_no_date_not_an_overflow() {
        // Found by the inspect_message fuzz target: a Received date with a
        // 19-digit year overflowed the day arithmetic (a panic in debug).
        assert_eq!(
            parse_date("Mon, 7 Apr 2025000000000000000 23:16:09 +0200"),
            None
        );
        assert_eq!(parse_date("Mon, 7 Apr 10000 23:16:09 +0200"), None);
        assert_eq!(parse_date("Mon, 7 Apr 2025 -1:16:09 +0200"), None);
        assert!(parse_date("Mon, 7 Apr 9999 23:16:09 +0200").is_some());
    }

    #[test]
    fn dates() {
        let base = parse_date("Tue, 30 Apr 2019 02:09:09 +0000").unwrap();
        assert_eq!(crate::clock::format_time(base), "2019-04-30T02:09:09Z");
        assert_eq!(parse_date("Tue, 30 Apr 2019 04:09:09 +0200"), Some(base));
        assert_eq!(
            parse_date(" Mon,  1 Oct 2018 11:20:27 +0200 (CEST)"),
            parse_date("1 Oct 2018 09:20:27 +0000")
        );
        assert_eq!(parse_date("30 Apr 2019 02:09:09 GMT"), Some(base));
        assert_eq!(parse_date("30 Foo 2019 02:09:09 GMT"), None);
    }

    #[test]
    fn postfix_exim_microsoft() {
        let p = parse_hop(
            0,
            "from mail.example.org (mail.example.org [192.0.2.7]) by mx.example.net (Postfix) with ESMTPS id 4Xyz for <bob@example.net>; Tue, 30 Apr 2019 02:09:09 +0000",
        );
        assert_eq!(p.from.as_deref(), Some("mail.example.org"));
        assert_eq!(p.from_rdns.as_deref(), Some("mail.example.org"));
        assert_eq!(p.from_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(p.by.as_deref(), Some("mx.example.net"));
        assert_eq!(p.with.as_deref(), Some("ESMTPS"));
        assert_eq!(p.for_addr.as_deref(), Some("bob@example.net"));
        assert!(p.timestamp.is_some());

        let e = parse_hop(
            0,
            "from [10.10.10.10] ([10.10.10.10:4227] helo=mail02.someserver.com) by mail516.prod.linkedin.com (envelope-from <>) (ecelerity 3.6) with ESMTPS id CA/91; Tue, 30 Apr 2019 02:09:00 +0000",
        );
        assert_eq!(e.from_ip, Some("10.10.10.10".parse().unwrap()));
        assert_eq!(e.helo_name(), Some("mail02.someserver.com"));
        assert_eq!(e.envelope_from.as_deref(), Some(""));
        assert_eq!(e.by.as_deref(), Some("mail516.prod.linkedin.com"));

        let m = parse_hop(
            0,
            "from DENU02MS0016.someserver.loc (10.156.68.14) by DENU02MS0017.someserver.loc (10.10.10.9) with Microsoft SMTP Server (TLS) id 15.0.1367.3; Tue, 30 Apr 2019 04:09:09 +0200",
        );
        assert_eq!(m.from_ip, Some("10.156.68.14".parse().unwrap()));
        assert_eq!(m.by.as_deref(), Some("DENU02MS0017.someserver.loc"));
    }

    #[test]
    fn trust_runs_from_the_top() {
        let v = vec![
            "from mx1.example.net (mx1.example.net [10.0.0.2]) by inbox.example.net; 1 Jan 2024 00:00:10 +0000".to_string(),
            "from evil.example (x.example [192.0.2.9]) by mx1.example.net; 1 Jan 2024 00:00:05 +0000".to_string(),
            "from a by inbox.example.net; 1 Jan 2024 00:00:00 +0000".to_string(),
        ];
        let t = vec![".example.net".to_string()];
        let hops = chain(&v, &t);
        assert_eq!(
            hops.iter().map(|h| h.trusted).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(hops[0].delay, Some(5));
        let b = boundary(&hops).unwrap();
        assert_eq!(b.index, 1);
        assert_eq!(b.from_ip, Some("192.0.2.9".parse().unwrap()));
    }
}
