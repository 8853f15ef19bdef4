//! The master-file reader.
//!
//! RFC 1035 §5.1:
//! ```text
//! <blank>[<comment>]
//! $ORIGIN <domain-name> [<comment>]
//! $INCLUDE <file-name> [<domain-name>] [<comment>]
//! <domain-name><rr> [<comment>]
//! <blank><rr> [<comment>]
//! <rr> = [<TTL>] [<class>] <type> <RDATA> | [<class>] [<TTL>] <type> <RDATA>
//! ```
//! Parentheses group data that crosses a line boundary; `;` starts a
//! comment; quoted strings may hold spaces; `@` is the current origin; a
//! blank owner repeats the previous one. `$TTL` comes from RFC 2308 §4.

use crate::{Name, RData, RType, RecordSet, Zone};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

/// One record as found in the text.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub name: Name,
    pub rtype: RType,
    pub ttl: u32,
    pub data: RData,
    /// First and last line (0-based, inclusive) of the record's text.
    pub first_line: usize,
    pub last_line: usize,
    /// Whether the owner is written on the record's line (otherwise it is
    /// inherited from the record before).
    pub owner_explicit: bool,
    /// The `$ORIGIN` in force at this record.
    pub origin: Name,
    /// For SOA: line and byte range of the serial token.
    pub serial_at: Option<(usize, usize, usize)>,
}

#[derive(Debug, Clone)]
pub struct Parsed {
    pub records: Vec<SourceRecord>,
    /// The `$ORIGIN` in force at the end of the file.
    pub origin_at_end: Name,
    /// The `$TTL` in force at the end of the file, if any.
    pub ttl_at_end: Option<u32>,
}

impl Parsed {
    pub fn zone(&self, origin: &Name) -> Zone {
        let mut zone = Zone::new(origin.clone());
        for r in &self.records {
            zone.insert(RecordSet::new(
                r.name.clone(),
                r.rtype.clone(),
                r.ttl,
                vec![r.data.clone()],
            ));
        }
        zone
    }
}

#[derive(Debug, Clone)]
struct Token {
    text: Vec<u8>,
    quoted: bool,
    line: usize,
    start: usize,
    end: usize,
}

/// Splits the text into logical entries (one per RR or directive), each a
/// list of tokens, plus whether the entry started with whitespace.
fn entries(text: &str) -> Result<Vec<(bool, Vec<Token>)>, ParseError> {
    let mut out = Vec::new();
    let mut cur: Vec<Token> = Vec::new();
    let mut blank_start = false;
    let mut depth = 0usize;
    let mut open_line = 0;
    for (ln, line) in text.split('\n').enumerate() {
        let b = line.as_bytes();
        if depth == 0 {
            if !cur.is_empty() {
                out.push((blank_start, std::mem::take(&mut cur)));
            }
            blank_start = b.first().is_some_and(|c| *c == b' ' || *c == b'\t');
        }
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' | b'\r' => i += 1,
                b';' => break,
                b'(' => {
                    if depth == 0 {
                        open_line = ln;
                    }
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err(ParseError {
                            line: ln + 1,
                            msg: "`)` without a matching `(`".into(),
                        });
                    }
                    depth -= 1;
                    i += 1;
                }
                b'"' => {
                    let start = i;
                    i += 1;
                    let mut v = Vec::new();
                    loop {
                        if i >= b.len() {
                            return Err(ParseError {
                                line: ln + 1,
                                msg: "unterminated quoted string".into(),
                            });
                        }
                        match b[i] {
                            b'"' => {
                                i += 1;
                                break;
                            }
                            b'\\' => {
                                let (byte, n) = escape(&b[i..]).ok_or_else(|| ParseError {
                                    line: ln + 1,
                                    msg: "bad escape in quoted string".into(),
                                })?;
                                v.push(byte);
                                i += n;
                            }
                            c => {
                                v.push(c);
                                i += 1;
                            }
                        }
                    }
                    cur.push(Token {
                        text: v,
                        quoted: true,
                        line: ln,
                        start,
                        end: i,
                    });
                }
                _ => {
                    let start = i;
                    let mut v = Vec::new();
                    while i < b.len() && !b" \t\r;()\"".contains(&b[i]) {
                        if b[i] == b'\\' {
                            let (byte, n) = escape(&b[i..]).ok_or_else(|| ParseError {
                                line: ln + 1,
                                msg: "bad escape".into(),
                            })?;
                            v.push(byte);
                            i += n;
                        } else {
                            v.push(b[i]);
                            i += 1;
                        }
                    }
                    cur.push(Token {
                        text: v,
                        quoted: false,
                        line: ln,
                        start,
                        end: i,
                    });
                }
            }
        }
    }
    if depth > 0 {
        return Err(ParseError {
            line: open_line + 1,
            msg: "`(` is never closed".into(),
        });
    }
    if !cur.is_empty() {
        out.push((blank_start, cur));
    }
    Ok(out)
}

/// `\X` or `\DDD` (RFC 1035 §5.1); returns the byte and the length consumed.
fn escape(b: &[u8]) -> Option<(u8, usize)> {
    match b.get(1)? {
        d if d.is_ascii_digit() => {
            let digits = b.get(1..4)?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            Some((u8::try_from(v).ok()?, 4))
        }
        c => Some((*c, 2)),
    }
}

fn text(t: &Token) -> String {
    String::from_utf8_lossy(&t.text).into_owned()
}

fn is_class(s: &str) -> bool {
    matches!(s.to_ascii_uppercase().as_str(), "IN" | "CH" | "HS" | "CS")
}

/// RFC 2308 / BIND TTL syntax: seconds, or units `1w2d3h4m5s`.
fn parse_ttl(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    if let Ok(v) = s.parse::<u32>() {
        return Some(v);
    }
    let mut total: u64 = 0;
    let mut num: u64 = 0;
    let mut have = false;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            // Checked: a long digit run is an invalid TTL, not an overflow.
            num = num.checked_mul(10)?.checked_add(u64::from(d))?;
            have = true;
            continue;
        }
        let mult = match c.to_ascii_lowercase() {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        if !have {
            return None;
        }
        total = total.checked_add(num.checked_mul(mult)?)?;
        num = 0;
        have = false;
    }
    if have {
        return None;
    }
    u32::try_from(total).ok()
}

fn absolute(name: &str, origin: &Name, line: usize) -> Result<Name, ParseError> {
    let err = |msg: String| ParseError {
        line: line + 1,
        msg,
    };
    if name == "@" {
        return Ok(origin.clone());
    }
    if name.ends_with('.') {
        return Name::parse(name).map_err(err);
    }
    if origin.as_str().is_empty() {
        return Name::parse(name).map_err(err);
    }
    Name::parse(&format!("{name}.{origin}")).map_err(err)
}

/// Parses master-file text. `origin` is the zone's name (the initial
/// `$ORIGIN`); `default_ttl` applies before any `$TTL` and explicit TTL.
pub fn parse(input: &str, origin: &Name) -> Result<Parsed, ParseError> {
    let mut records = Vec::new();
    let mut cur_origin = origin.clone();
    let mut dollar_ttl: Option<u32> = None;
    let mut last_ttl: Option<u32> = None;
    let mut last_owner: Option<Name> = None;

    for (blank, toks) in entries(input)? {
        let line = toks[0].line;
        let err = |msg: String| ParseError {
            line: line + 1,
            msg,
        };
        let first = text(&toks[0]);
        if !blank && !toks[0].quoted && first.starts_with('$') {
            match first.to_ascii_uppercase().as_str() {
                "$ORIGIN" => {
                    let arg = toks
                        .get(1)
                        .ok_or_else(|| err("$ORIGIN needs a name".into()))?;
                    cur_origin = absolute(&text(arg), &cur_origin, line)?;
                }
                "$TTL" => {
                    let arg = toks
                        .get(1)
                        .ok_or_else(|| err("$TTL needs a value".into()))?;
                    dollar_ttl = Some(
                        parse_ttl(&text(arg))
                            .ok_or_else(|| err(format!("bad $TTL `{}`", text(arg))))?,
                    );
                }
                "$INCLUDE" => {
                    return Err(err(
                        "$INCLUDE is not supported: mailauth edits one self-contained file per zone"
                            .into(),
                    ));
                }
                other => return Err(err(format!("unknown directive `{other}`"))),
            }
            continue;
        }
        let mut i = 0;
        let owner_explicit = !blank;
        let owner = if blank {
            last_owner
                .clone()
                .ok_or_else(|| err("record without an owner name and no previous owner".into()))?
        } else {
            i += 1;
            absolute(&first, &cur_origin, line)?
        };
        let mut ttl = None;
        let mut seen_class = false;
        // [<TTL>] [<class>] or [<class>] [<TTL>]
        for _ in 0..2 {
            let Some(t) = toks.get(i) else { break };
            let s = text(t);
            if ttl.is_none()
                && !t.quoted
                && s.starts_with(|c: char| c.is_ascii_digit())
                && let Some(v) = parse_ttl(&s)
            {
                ttl = Some(v);
                i += 1;
            } else if !seen_class && is_class(&s) {
                if !s.eq_ignore_ascii_case("IN") {
                    return Err(err(format!("class {s} is not supported (only IN)")));
                }
                seen_class = true;
                i += 1;
            }
        }
        let rtype_tok = toks
            .get(i)
            .ok_or_else(|| err("record without a type".into()))?;
        let rtype = RType::parse(&text(rtype_tok));
        i += 1;
        let rdata = &toks[i..];
        if rdata.is_empty() {
            return Err(err(format!("{rtype} record without data")));
        }
        let ttl = match ttl.or(dollar_ttl).or(last_ttl) {
            Some(t) => t,
            None => return Err(err("no TTL given and no $TTL before this record".into())),
        };
        last_ttl = Some(ttl);
        let mut serial_at = None;
        let data = match &rtype {
            RType::Txt => RData::Txt(rdata.iter().map(|t| t.text.clone()).collect()),
            RType::Cname => {
                if rdata.len() != 1 {
                    return Err(err("CNAME takes exactly one name".into()));
                }
                RData::Cname(absolute(&text(&rdata[0]), &cur_origin, line)?)
            }
            RType::Mx => {
                if rdata.len() != 2 {
                    return Err(err("MX takes a preference and a name".into()));
                }
                let preference = text(&rdata[0])
                    .parse::<u16>()
                    .map_err(|_| err(format!("bad MX preference `{}`", text(&rdata[0]))))?;
                let ex = text(&rdata[1]);
                let exchange = if ex == "." {
                    Name::parse("").map_err(err)?
                } else {
                    absolute(&ex, &cur_origin, line)?
                };
                RData::Mx {
                    preference,
                    exchange,
                }
            }
            RType::Soa => {
                if rdata.len() != 7 {
                    return Err(err(format!(
                        "SOA takes 7 fields (mname rname serial refresh retry expire minimum), found {}",
                        rdata.len()
                    )));
                }
                let s = &rdata[2];
                text(s)
                    .parse::<u32>()
                    .map_err(|_| err(format!("bad SOA serial `{}`", text(s))))?;
                serial_at = Some((s.line, s.start, s.end));
                let mut parts = vec![
                    absolute(&text(&rdata[0]), &cur_origin, line)?.fqdn(),
                    absolute(&text(&rdata[1]), &cur_origin, line)?.fqdn(),
                ];
                parts.extend(rdata[2..].iter().map(text));
                RData::Raw(parts.join(" "))
            }
            _ => RData::Raw(
                rdata
                    .iter()
                    .map(|t| {
                        if t.quoted {
                            crate::txt::present(std::slice::from_ref(&t.text))
                        } else {
                            text(t)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        };
        last_owner = Some(owner.clone());
        records.push(SourceRecord {
            name: owner,
            rtype,
            ttl,
            data,
            first_line: line,
            last_line: toks.last().map_or(line, |t| t.line),
            owner_explicit,
            origin: cur_origin.clone(),
            serial_at,
        });
    }
    Ok(Parsed {
        records,
        origin_at_end: cur_origin,
        ttl_at_end: dollar_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = r#"$ORIGIN example.com.
$TTL 1h
@   IN  SOA ns1 hostmaster (
        2026010101 ; serial
        3600 900 1209600 300 )
    IN  NS  ns1.example.net.
    IN  MX  10 mx1
www 300 IN A 192.0.2.1
@   TXT "v=spf1 " "include:_spf.google.com -all" ; split
_dmarc IN 600 TXT ( "v=DMARC1; p=none;"
                    " rua=mailto:d@example.com" )
$ORIGIN sub.example.com.
x   CNAME y
q   TXT "a\"b" "c\059d"
"#;

    #[test]
    fn parses_the_usual_forms() {
        let origin = Name::parse("example.com").unwrap();
        let p = parse(ZONE, &origin).unwrap();
        let z = p.zone(&origin);
        let n = |s: &str| Name::parse(s).unwrap();
        let soa = z.get(&origin, &RType::Soa).unwrap();
        assert_eq!(soa.ttl, 3600);
        assert!(
            matches!(&soa.data[0], RData::Raw(s) if s.starts_with("ns1.example.com. hostmaster.example.com. 2026010101"))
        );
        assert_eq!(p.records[0].serial_at.map(|s| s.0), Some(3));
        assert_eq!(z.get(&origin, &RType::Ns).unwrap().data.len(), 1);
        let mx = z.get(&origin, &RType::Mx).unwrap();
        assert_eq!(
            mx.data[0],
            RData::Mx {
                preference: 10,
                exchange: n("mx1.example.com")
            }
        );
        assert_eq!(z.get(&n("www.example.com"), &RType::A).unwrap().ttl, 300);
        let spf = z.get(&origin, &RType::Txt).unwrap();
        assert_eq!(
            spf.data[0].txt_value().unwrap(),
            "v=spf1 include:_spf.google.com -all"
        );
        let dmarc = z.get(&n("_dmarc.example.com"), &RType::Txt).unwrap();
        assert_eq!(dmarc.ttl, 600);
        assert_eq!(
            dmarc.data[0].txt_value().unwrap(),
            "v=DMARC1; p=none; rua=mailto:d@example.com"
        );
        assert_eq!(p.records[5].first_line, 9);
        assert_eq!(p.records[5].last_line, 10);
        assert_eq!(
            z.get(&n("x.sub.example.com"), &RType::Cname).unwrap().data[0],
            RData::Cname(n("y.sub.example.com"))
        );
        assert_eq!(
            z.get(&n("q.sub.example.com"), &RType::Txt).unwrap().data[0]
                .txt_value()
                .unwrap(),
            "a\"bc;d"
        );
    }

    #[test]
    fn errors_are_located() {
        let origin = Name::parse("example.com").unwrap();
        for (text, line, needle) in [
            ("$TTL 60\n@ TXT \"abc\n", 2, "unterminated"),
            ("$TTL 60\n@ SOA ( a b 1 2 3\n", 2, "never closed"),
            ("@ TXT x\n", 1, "no TTL"),
            ("$TTL 60\n@ MX ten mx\n", 2, "MX preference"),
            ("$TTL 60\n$INCLUDE other\n", 2, "$INCLUDE"),
            ("$TTL 60\n@ CH TXT x\n", 2, "class"),
        ] {
            let e = parse(text, &origin).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.msg.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn ttl_units() {
        assert_eq!(
            parse_ttl("1w2d3h4m5s"),
            Some(604800 + 2 * 86400 + 3 * 3600 + 245)
        );
        assert_eq!(parse_ttl("300"), Some(300));
        assert_eq!(parse_ttl("h"), None);
    }
}
