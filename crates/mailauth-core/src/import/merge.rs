//! Writing imported entries into an existing mailauth.yaml as text, so
//! that every byte outside the entries written stays as it was: comments,
//! ordering, quoting and the other domains. A new domain is appended at
//! the end of the block-style `domains:` mapping; an existing one is left
//! alone unless replacing is asked for, and then only its own lines change.
//!
//! It knows YAML only as far as block-style indentation goes; a `domains:`
//! mapping in flow style (`domains: { a: ... }`) is refused with a clear
//! error rather than rewritten.

use crate::record::Name;

/// Why an entry could not be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MergeError {
    #[error("no top-level `domains:` mapping in block style to add to")]
    NoDomains,
}

/// What happened to one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Added,
    Replaced,
    /// Already in the file and replacing was not asked for.
    Kept,
    /// Already in the file with exactly these lines.
    Unchanged,
}

/// The lines of the file, each with its line ending.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The key of a mapping line (`key:` or `"key":`), unquoted.
fn key_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('"') {
        let end = rest.find('"')?;
        return serde_json::from_str::<String>(&t[..end + 2]).ok();
    }
    if let Some(rest) = t.strip_prefix('\'') {
        let end = rest.find('\'')?;
        return Some(rest[..end].to_string());
    }
    let end = t.find(':')?;
    Some(t[..end].trim().to_string())
}

/// Adds (or with `replace`, replaces) the entry of `domain` in `text`.
/// `entry` is rendered by `render(indent)` for the indentation the file
/// uses. Returns the new text and what was done.
pub fn merge(
    text: &str,
    domain: &Name,
    entry: impl Fn(usize) -> String,
    replace: bool,
) -> Result<(String, Outcome), MergeError> {
    let ls = lines(text);
    let start = ls
        .iter()
        .position(|l| {
            l.starts_with("domains:") && {
                let rest = l["domains:".len()..].trim();
                rest.is_empty() || rest.starts_with('#') || rest == "{}"
            }
        })
        .ok_or(MergeError::NoDomains)?;
    // The block runs to the next line at column 0 that is not a comment.
    let end = ls[start + 1..]
        .iter()
        .position(|l| !is_blank_or_comment(l) && indent_of(l) == 0)
        .map_or(ls.len(), |p| start + 1 + p);
    let indent = ls[start + 1..end]
        .iter()
        .find(|l| !is_blank_or_comment(l))
        .map_or(2, |l| indent_of(l));
    let mut out: Vec<String> = ls.iter().map(|l| l.to_string()).collect();
    if ls[start]["domains:".len()..].trim() == "{}" {
        out[start] = "domains:\n".to_string();
    }
    let new = entry(indent);

    // An existing entry: the line at the domains' indentation whose key is
    // this domain, to the next line at that indentation or less.
    let existing = (start + 1..end).find(|&i| {
        let l = ls[i];
        !is_blank_or_comment(l)
            && indent_of(l) == indent
            && key_of(l).is_some_and(|k| Name::parse(&k).ok().as_ref() == Some(domain))
    });
    if let Some(first) = existing {
        let mut last = (first + 1..end)
            .find(|&i| !is_blank_or_comment(ls[i]) && indent_of(ls[i]) <= indent)
            .unwrap_or(end);
        // Trailing blank lines and comments belong to what follows.
        while last > first + 1 && is_blank_or_comment(ls[last - 1]) {
            last -= 1;
        }
        let old: String = ls[first..last].concat();
        if old == new {
            return Ok((text.to_string(), Outcome::Unchanged));
        }
        if !replace {
            return Ok((text.to_string(), Outcome::Kept));
        }
        out.splice(first..last, std::iter::once(new));
        return Ok((out.concat(), Outcome::Replaced));
    }
    // Append after the block's last line with content.
    let mut at = end;
    // Blank lines and comments less indented than the entries belong to
    // what follows.
    while at > start + 1 && is_blank_or_comment(ls[at - 1]) && indent_of(ls[at - 1]) < indent {
        at -= 1;
    }
    let mut new = new;
    if at > 0 && !out[at - 1].ends_with('\n') {
        new.insert(0, '\n');
    }
    out.insert(at, new);
    Ok((out.concat(), Outcome::Added))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> impl Fn(usize) -> String + '_ {
        move |i| {
            format!(
                "{}{name}:\n{}dmarc: {{ p: none }}\n",
                " ".repeat(i),
                " ".repeat(i + 2)
            )
        }
    }

    #[test]
    fn appends_keeping_every_other_byte() {
        let text = "# fleet\nprovider: { kind: zonefile }\ndomains:\n    a.test:   # first\n        spf: { all: fail }\n\n# trailing\nkeys: { dir: keys }\n";
        let d = Name::parse("b.test").unwrap();
        let (out, o) = merge(text, &d, entry("b.test"), false).unwrap();
        assert_eq!(o, Outcome::Added);
        assert_eq!(
            out,
            "# fleet\nprovider: { kind: zonefile }\ndomains:\n    a.test:   # first\n        spf: { all: fail }\n    b.test:\n      dmarc: { p: none }\n\n# trailing\nkeys: { dir: keys }\n"
        );
        // Idempotent: the same entry again changes nothing.
        let (again, o) = merge(&out, &d, entry("b.test"), false).unwrap();
        assert_eq!(o, Outcome::Unchanged);
        assert_eq!(again, out);
    }

    #[test]
    fn an_existing_domain_is_kept_unless_replacing() {
        let text = "domains:\n  a.test:\n    spf: { all: fail }\n  \"c.test\": {}\n";
        let d = Name::parse("a.test").unwrap();
        let (out, o) = merge(text, &d, entry("a.test"), false).unwrap();
        assert_eq!((out.as_str(), o), (text, Outcome::Kept));
        let (out, o) = merge(text, &d, entry("a.test"), true).unwrap();
        assert_eq!(o, Outcome::Replaced);
        assert_eq!(
            out,
            "domains:\n  a.test:\n    dmarc: { p: none }\n  \"c.test\": {}\n"
        );
        let c = Name::parse("C.test").unwrap();
        assert_eq!(
            merge(text, &c, entry("c.test"), false).unwrap().1,
            Outcome::Kept
        );
        assert_eq!(
            merge("domains: {}\n", &c, entry("c.test"), false)
                .unwrap()
                .0,
            "domains:\n  c.test:\n    dmarc: { p: none }\n"
        );
        assert_eq!(
            merge("domains: { a.test: {} }\n", &c, entry("c.test"), false),
            Err(MergeError::NoDomains)
        );
    }
}
