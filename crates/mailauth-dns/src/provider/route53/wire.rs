//! The Route 53 wire format (API 2013-04-01): its XML read into a small
//! element tree and written with escaping, RRsets as the API shows them,
//! converted to and from mailauth's record sets, the change batch, and the
//! version (a SHA-256 of every RRset) that the stale check compares.

use super::*;

/// A parsed XML element: local name, text, children. Answers are small
/// (a page is at most 300 RRsets), so a tree is fine.
#[derive(Debug, Default)]
pub(super) struct El {
    pub(super) name: String,
    pub(super) text: String,
    pub(super) children: Vec<El>,
}

impl El {
    pub(super) fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    pub(super) fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses an answer into a tree (namespaces dropped, entities resolved,
/// depth bounded).
pub(super) fn parse_xml(text: &str) -> Result<El, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<El> = vec![El::default()];
    let local = |q: &str| -> String { q.rsplit(':').next().unwrap_or_default().to_string() };
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                if stack.len() > 32 {
                    return Err("XML nested too deeply".to_string());
                }
                stack.push(El {
                    name: local(e.name().into_inner()),
                    ..El::default()
                });
            }
            Event::Empty(e) => {
                let el = El {
                    name: local(e.name().into_inner()),
                    ..El::default()
                };
                if let Some(top) = stack.last_mut() {
                    top.children.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced XML")?;
                match stack.last_mut() {
                    Some(top) => top.children.push(el),
                    None => return Err("unbalanced XML".to_string()),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let name = (*r).to_string();
                let c = match name.as_str() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    n => n
                        .strip_prefix("#x")
                        .map(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| n.strip_prefix('#').map(|d| d.parse::<u32>().ok()))
                        .flatten()
                        .and_then(char::from_u32),
                };
                let c = c.ok_or_else(|| format!("unknown entity &{name};"))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut root = stack.pop().ok_or("empty XML")?;
    if !stack.is_empty() {
        return Err("truncated XML".to_string());
    }
    root.children
        .pop()
        .filter(|_| root.children.is_empty())
        .ok_or_else(|| "not one XML document element".to_string())
}

pub(super) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

// ------------------------------------------------------------ records

/// One ResourceRecordSet as the API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ApiRrset {
    /// As served: lower-case, trailing dot, `\DDD` escapes.
    pub(super) name: String,
    pub(super) rtype: String,
    pub(super) ttl: Option<u32>,
    pub(super) values: Vec<String>,
    /// SetIdentifier, AliasTarget and routing policies: present for
    /// record sets mailauth does not model (kept in the version).
    pub(super) extra: String,
}

/// Route 53 writes names in presentation form with `\DDD` octal escapes
/// for characters other than a-z, 0-9, `-`, `_` and `.` (`*` → `\052`).
pub(super) fn decode_name(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v.min(255) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn rrset_of(el: &El) -> ApiRrset {
    let values = el
        .child("ResourceRecords")
        .map(|rs| {
            rs.all("ResourceRecord")
                .filter_map(|r| r.text_of("Value").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut extra = String::new();
    for c in &el.children {
        if !matches!(c.name.as_str(), "Name" | "Type" | "TTL" | "ResourceRecords") {
            extra.push_str(&format!("{}={}{:?};", c.name, c.text, flat(c)));
        }
    }
    ApiRrset {
        name: el.text_of("Name").unwrap_or_default().to_ascii_lowercase(),
        rtype: el.text_of("Type").unwrap_or_default().to_ascii_uppercase(),
        ttl: el.text_of("TTL").and_then(|t| t.trim().parse().ok()),
        values,
        extra,
    }
}

pub(super) fn flat(el: &El) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in &el.children {
        out.push((c.name.clone(), c.text.clone()));
        out.extend(flat(c));
    }
    out
}

pub(super) fn version_of(rrsets: &[ApiRrset]) -> String {
    let mut lines: Vec<String> = rrsets
        .iter()
        .map(|r| {
            let mut v = r.values.clone();
            v.sort();
            format!("{} {} {:?} {:?} {}", r.name, r.rtype, r.ttl, v, r.extra)
        })
        .collect();
    lines.sort();
    sha256_hex(lines.join("\n").as_bytes())
}

/// One API value → our rdata.
pub(super) fn to_rdata(rtype: &RType, value: &str) -> Option<RData> {
    Some(match rtype {
        RType::Txt => RData::Txt(parse_txt_content(value)?),
        RType::Cname => RData::Cname(Name::parse(value.trim()).ok()?),
        RType::Mx => {
            let (pref, exchange) = value.trim().split_once(char::is_whitespace)?;
            RData::Mx {
                preference: pref.parse().ok()?,
                exchange: Name::parse(exchange.trim()).ok()?,
            }
        }
        _ => RData::Raw(value.to_string()),
    })
}

/// Our rdata → one API value. TXT is split into quoted strings of at
/// most 255 octets (Route 53 refuses a longer one).
pub(super) fn to_value(data: &RData) -> String {
    match data {
        RData::Txt(strings) => txt::present(&txt::split(&txt::join(strings))),
        RData::Mx {
            preference,
            exchange,
        } => format!("{preference} {}.", exchange.as_str()),
        RData::Cname(n) => format!("{}.", n.as_str()),
        RData::Raw(s) => s.clone(),
    }
}

/// The API's record set → ours, when mailauth can model it.
pub(super) fn to_set(r: &ApiRrset) -> Option<RecordSet> {
    if !r.extra.is_empty() {
        return None;
    }
    let name = Name::parse(&decode_name(&r.name)).ok()?;
    let rtype = RType::parse(&r.rtype);
    let data = r
        .values
        .iter()
        .map(|v| to_rdata(&rtype, v))
        .collect::<Option<Vec<_>>>()?;
    Some(RecordSet::new(name, rtype, r.ttl?, data))
}

/// `<Change>` element for one action on one RRset.
pub(super) fn change_xml(action: &str, set: &RecordSet) -> String {
    let mut s = format!(
        "<Change><Action>{action}</Action><ResourceRecordSet><Name>{}.</Name>\
         <Type>{}</Type><TTL>{}</TTL><ResourceRecords>",
        xml_escape(set.name.as_str()),
        xml_escape(&set.rtype.to_string()),
        set.ttl
    );
    for d in &set.data {
        s.push_str(&format!(
            "<ResourceRecord><Value>{}</Value></ResourceRecord>",
            xml_escape(&to_value(d))
        ));
    }
    s.push_str("</ResourceRecords></ResourceRecordSet></Change>");
    s
}

/// The change batch for a plan: per RRset, a DELETE of the exact values
/// the plan read and a CREATE of the new ones, so that Route 53 refuses
/// the whole batch when an RRset moved ("Tried to delete resource record
/// set … but it was not found" / "… but the values provided do not match
/// the current values", or "… but it already exists" for a CREATE).
pub(super) fn batch_xml(changes: &[Change]) -> String {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <ChangeResourceRecordSetsRequest xmlns=\"{XMLNS}\"><ChangeBatch>\
         <Comment>mailauth</Comment><Changes>"
    );
    for c in changes {
        match c {
            Change::Create { new } => body.push_str(&change_xml("CREATE", new)),
            Change::Delete { old } => body.push_str(&change_xml("DELETE", old)),
            Change::Update { old, new } => {
                body.push_str(&change_xml("DELETE", old));
                body.push_str(&change_xml("CREATE", new));
            }
        }
    }
    body.push_str("</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
    body
}

// ------------------------------------------------------------ the API
