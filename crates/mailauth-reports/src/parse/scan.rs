//! A tokenizer for the markup that aggregate reports are made of: start,
//! end and empty tags, text, entity and character references, and the
//! `<?xml ...?>` declaration, read from a `&str` window without copying.
//!
//! Owns cutting a window into [`Token`]s exactly as quick-xml's `Reader`
//! (configured as `aggregate.rs` does) would cut it into events, so the
//! parser sees the same thing either way; the position of each token is
//! the byte offset quick-xml would report. Anything else (comments, CDATA,
//! DOCTYPE, processing instructions, a dangling `&`, a tag that never
//! closes) is not tokenized here: [`Scan::Fallback`] tells the caller to
//! hand the rest of the document to quick-xml, which handles every case
//! and produces every error message. Leaves the report grammar to
//! `aggregate.rs`.
//!
//! Why: quick-xml validates UTF-8 again for every event of a document that
//! is already a `&str`, and its general state machine costs several times
//! this loop over the handful of constructs reports use.

use quick_xml::events::BytesStart;

/// Text at the end of a window handed on before the rest of it arrives.
const TEXT_PIECE: usize = 64 << 10;

/// XML 1.0 section 2.3: `S ::= (#x20 | #x9 | #xD | #xA)+`.
const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// One piece of markup or text.
#[derive(Debug)]
pub(super) enum Token<'x> {
    /// `<name attributes>`.
    Start(BytesStart<'x>),
    /// `<name attributes/>`.
    Empty(BytesStart<'x>),
    /// `</name>`: the name with trailing white space removed.
    End(&'x str),
    /// Character data up to the next `<` or `&`.
    Text(&'x str),
    /// `&name;`: the name between `&` and `;`.
    Ref(&'x str),
    /// The XML declaration (nothing in it matters to a report).
    Decl,
    /// End of the document.
    Eof,
}

/// What [`next`] found at a position.
#[derive(Debug)]
pub(super) enum Scan<'x> {
    /// A token and the position just after it.
    Token(Token<'x>, usize),
    /// The token at the position may continue past the window: read more.
    /// Only when the window is not the last one.
    NeedMore,
    /// Something this tokenizer leaves to quick-xml, from the position on.
    Fallback,
}

/// Position of the `>` that closes the tag starting at `bytes[0]` (`<`),
/// skipping `>` inside quoted attribute values, as quick-xml's
/// `ElementParser` does.
fn tag_end(bytes: &[u8]) -> Option<usize> {
    // Quotes are rare in report tags: look for `>` and a quote at once,
    // and only then for the quote's end.
    let mut from = 0;
    loop {
        let i = from + memchr::memchr3(b'>', b'"', b'\'', &bytes[from..])?;
        let q = bytes[i];
        if q == b'>' {
            return Some(i);
        }
        from = i + 1 + memchr::memchr(q, &bytes[i + 1..])? + 1;
    }
}

/// The token of `window` at `pos`. `last` says that nothing follows the
/// window.
#[inline(always)]
pub(super) fn next(window: &str, pos: usize, last: bool) -> Scan<'_> {
    let bytes = window.as_bytes();
    let rest = &bytes[pos..];
    let incomplete = if last { Scan::Fallback } else { Scan::NeedMore };
    let Some(&first) = rest.first() else {
        return if last {
            Scan::Token(Token::Eof, pos)
        } else {
            Scan::NeedMore
        };
    };
    match first {
        b'<' => {
            let Some(&second) = rest.get(1) else {
                return incomplete;
            };
            match second {
                b'!' => Scan::Fallback,
                b'?' => {
                    // XML 1.0 section 2.8: XMLDecl ::= '<?xml' VersionInfo
                    // EncodingDecl? SDDecl? S? '?>'. quick-xml ends it at the
                    // first `?>`; `<?>` is its error to report.
                    if rest.get(2) == Some(&b'>') {
                        return Scan::Fallback;
                    }
                    let Some(j) = rest[2..].windows(2).position(|w| w == b"?>") else {
                        return incomplete;
                    };
                    let content = &rest[2..2 + j];
                    let decl =
                        content.starts_with(b"xml") && (content.len() == 3 || is_space(content[3]));
                    if decl {
                        Scan::Token(Token::Decl, pos + 2 + j + 2)
                    } else {
                        Scan::Fallback
                    }
                }
                b'/' => {
                    let Some(i) = tag_end(rest) else {
                        return incomplete;
                    };
                    let content = &window[pos + 2..pos + i];
                    // quick-xml's `trim_markup_names_in_closing_tags`.
                    let name = match content.bytes().rposition(|b| !is_space(b)) {
                        Some(end) => &content[..=end],
                        None => content,
                    };
                    Scan::Token(Token::End(name), pos + i + 1)
                }
                _ => {
                    let Some(i) = tag_end(rest) else {
                        return incomplete;
                    };
                    let content = &window[pos + 1..pos + i];
                    // `strip_suffix('/')`, as a byte: with a `char` the
                    // streaming parser called `memcmp` for every tag.
                    let (content, empty) = match content.as_bytes().last() {
                        // ASCII: the byte before it ends a character.
                        Some(b'/') => (&content[..content.len() - 1], true),
                        _ => (content, false),
                    };
                    let name_len = content.bytes().position(is_space).unwrap_or(content.len());
                    let start = BytesStart::from_content(content, name_len);
                    let token = if empty {
                        Token::Empty(start)
                    } else {
                        Token::Start(start)
                    };
                    Scan::Token(token, pos + i + 1)
                }
            }
        }
        b'&' => match memchr::memchr3(b';', b'&', b'<', &rest[1..]) {
            Some(i) if rest[1 + i] == b';' => {
                Scan::Token(Token::Ref(&window[pos + 1..pos + 1 + i]), pos + i + 2)
            }
            // A dangling `&`: quick-xml's rules for it apply.
            Some(_) => Scan::Fallback,
            None => incomplete,
        },
        _ => match memchr::memchr2(b'<', b'&', rest) {
            Some(i) => Scan::Token(Token::Text(&window[pos..pos + i]), pos + i),
            None if last => Scan::Token(Token::Text(&window[pos..]), bytes.len()),
            // A long run of text goes on in pieces (the parser joins
            // them), so that the window of a streamed document never
            // holds more than a piece of it.
            None if rest.len() >= TEXT_PIECE => {
                let mut end = bytes.len();
                while !window.is_char_boundary(end) {
                    end -= 1;
                }
                Scan::Token(Token::Text(&window[pos..end]), end)
            }
            None => Scan::NeedMore,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::Reader;
    use quick_xml::events::Event;

    /// The tokens of `xml` as (kind, text, end position) until a fallback.
    fn scan_all(xml: &str) -> (Vec<(String, usize)>, Option<usize>) {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match next(xml, pos, true) {
                Scan::Token(Token::Eof, _) => return (out, None),
                Scan::Token(t, end) => {
                    let s = match t {
                        Token::Start(e) => format!("start {}|{}", e.name().into_inner(), &*e),
                        Token::Empty(e) => format!("empty {}|{}", e.name().into_inner(), &*e),
                        Token::End(n) => format!("end {n}"),
                        Token::Text(t) => format!("text {t}"),
                        Token::Ref(r) => format!("ref {r}"),
                        Token::Decl => "decl".to_owned(),
                        Token::Eof => unreachable!("handled above"),
                    };
                    out.push((s, end));
                    pos = end;
                }
                Scan::NeedMore => panic!("NeedMore on the last window"),
                Scan::Fallback => return (out, Some(pos)),
            }
        }
    }

    /// The same through quick-xml, configured as `aggregate.rs` does.
    fn quick_all(xml: &str) -> Vec<(String, usize)> {
        let mut r = Reader::from_str(xml);
        let c = r.config_mut();
        c.check_end_names = false;
        c.allow_unmatched_ends = true;
        c.allow_dangling_amp = true;
        c.trim_text(false);
        let mut out = Vec::new();
        loop {
            let s = match r.read_event() {
                Ok(Event::Eof) | Err(_) => return out,
                Ok(Event::Start(e)) => {
                    format!("start {}|{}", e.name().into_inner(), &*e)
                }
                Ok(Event::Empty(e)) => {
                    format!("empty {}|{}", e.name().into_inner(), &*e)
                }
                Ok(Event::End(e)) => format!("end {}", e.name().into_inner()),
                Ok(Event::Text(t)) => format!("text {}", &*t),
                Ok(Event::GeneralRef(t)) => format!("ref {}", &*t),
                Ok(Event::Decl(_)) => "decl".to_owned(),
                Ok(e) => format!("other {e:?}"),
            };
            out.push((s, usize::try_from(r.buffer_position()).expect("fits")));
        }
    }

    #[test]
    fn agrees_with_quick_xml() {
        let cases = [
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<feedback>\n  <a>x</a>\n</feedback>\n",
            "<d:feedback xmlns:d=\"urn:x\"><d:r a='1>2' b=\"'\">t &amp; u&#33;</d:r ></d:feedback>",
            "<a/><b x=\"1\"/><c   />< d>e</ d >text at the end",
            "<a>Ünïcødé ☃</a><b></b><></>",
            "</stray><a>1</b>",
            "<?xmlfoo?><a/>",
        ];
        for xml in cases {
            let (got, fallback) = scan_all(xml);
            let want = quick_all(xml);
            match fallback {
                None => assert_eq!(got, want, "{xml}"),
                Some(_) => assert_eq!(got[..], want[..got.len()], "{xml}"),
            }
        }
    }

    #[test]
    fn falls_back_where_quick_xml_decides() {
        let cases: &[(&str, usize)] = &[
            ("<a><!-- c --></a>", 3),
            ("<a><![CDATA[x]]></a>", 3),
            ("<!DOCTYPE f><f/>", 0),
            ("<a>x & y</a>", 5),
            ("<a>x &amp y</a>", 5),
            ("<a><?pi x?></a>", 3),
            ("<a><?>", 3),
            ("<a><b", 3),
            ("<a><b x=\"></b>", 3),
            ("<a><", 3),
            ("<a>&amp", 3),
        ];
        for (xml, at) in cases {
            assert_eq!(scan_all(xml).1, Some(*at), "{xml}");
        }
    }

    #[test]
    fn asks_for_more_before_the_last_window() {
        for partial in ["<a", "<", "<a x='>'", "text", "&am", "</a", "<?xml v"] {
            assert!(
                matches!(next(partial, 0, false), Scan::NeedMore),
                "{partial}"
            );
        }
        assert!(matches!(next("", 0, false), Scan::NeedMore));
        assert!(matches!(next("", 0, true), Scan::Token(Token::Eof, 0)));
    }
}
