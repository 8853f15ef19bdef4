//! The output model every command shares: one [`OutputFormat`] type for
//! `--format` (with `--json` as its alias), and the clap value parser that
//! gives each command its own subset of formats.
//!
//! A command declares the formats that make sense for it where it declares
//! its `--format` flag ([`parser`]); clap then refuses any other with a
//! usage error (exit 2) that names the flag and lists the supported ones,
//! and `--help`, the completions and the man page list exactly those. The
//! README's "Output formats" table is this list, and a test walks the
//! command tree to keep the two in step.
//!
//! Also owns what makes text safe for a terminal ([`clean`],
//! [`terminal_safe`], [`json_terminal_safe`]: every command's output goes
//! through one of them) and the schema of an RFC 3339 time ([`Rfc3339`],
//! also the schema of `clock::Timestamp`).
//! Leaves rendering to each command.
//! Conventions every format follows (documented in the README): text is the
//! default and meant for people; JSON is one pretty-printed document with
//! RFC 3339 UTC timestamps; CSV (RFC 4180, CRLF line ends) is offered where
//! the output is a table; Markdown where it is a report for a pull request.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

/// `--format`: how a command prints what it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// For a person at a terminal (tables where the output is a list).
    /// `table`, the name the report commands used, is an alias.
    Text,
    /// One JSON document.
    Json,
    /// RFC 4180 CSV with a header line (lists only).
    Csv,
    /// GitHub-flavoured Markdown (a pull-request or issue comment).
    Markdown,
    /// A self-contained HTML page (`checklist` only).
    Html,
}

impl OutputFormat {
    /// Every format, in the order help texts list them.
    pub const ALL: [OutputFormat; 5] = [
        OutputFormat::Text,
        OutputFormat::Json,
        OutputFormat::Csv,
        OutputFormat::Markdown,
        OutputFormat::Html,
    ];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Json => "json",
            OutputFormat::Csv => "csv",
            OutputFormat::Markdown => "markdown",
            OutputFormat::Html => "html",
        }
    }

    /// The format a name (or an alias: `table`, `md`) stands for.
    pub fn from_name(s: &str) -> Option<OutputFormat> {
        let s = s.to_ascii_lowercase();
        match s.as_str() {
            "table" => Some(OutputFormat::Text),
            "md" => Some(OutputFormat::Markdown),
            _ => OutputFormat::ALL.into_iter().find(|f| f.name() == s),
        }
    }

    fn possible_value(self) -> PossibleValue {
        let v = PossibleValue::new(self.name());
        match self {
            OutputFormat::Text => v.alias("table"),
            OutputFormat::Markdown => v.alias("md"),
            _ => v,
        }
    }

    /// The format chosen by `--format` and `--json` (its alias; clap makes
    /// the two conflict, so at most one was given).
    pub fn chosen(format: OutputFormat, json: bool) -> OutputFormat {
        if json { OutputFormat::Json } else { format }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The value parser of a command's `--format`: accepts `formats` (and their
/// aliases) only, so anything else is clap's usage error, e.g.
/// "invalid value 'csv' for '--format <FORMAT>' [possible values: text,
/// json, markdown]", exit 2.
pub fn parser(formats: &'static [OutputFormat]) -> impl TypedValueParser<Value = OutputFormat> {
    PossibleValuesParser::new(formats.iter().map(|f| f.possible_value()))
        .map(|s| OutputFormat::from_name(&s).expect("the parser accepts only OutputFormat names"))
}

/// Characters a terminal may act on instead of showing: the C0 and C1
/// controls and DEL (escape sequences, cursor moves, bells) and the
/// bidirectional embeddings, overrides and isolates (U+202A..U+202E,
/// U+2066..U+2069: text shown in another order than it is stored).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One terminal cell or line of text from a report (or a message): every
/// [unsafe character](is_unsafe_char), newlines included, becomes U+FFFD,
/// so a hostile report cannot move the cursor, recolour or retitle the
/// terminal. The one sanitiser of every command's text output.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if is_unsafe_char(c) { '\u{fffd}' } else { c })
        .collect()
}

/// [`clean`] for multi-line text: line feeds and tabs stay.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t' || !is_unsafe_char(c);
    if s.chars().all(keep) {
        return s.into();
    }
    s.chars()
        .map(|c| if keep(c) { c } else { '\u{fffd}' })
        .collect::<String>()
        .into()
}

/// JSON for a terminal: serde_json escapes C0 controls but leaves DEL,
/// the C1 controls (U+0080..U+009F, e.g. CSI) and the bidirectional
/// overrides raw; they are written as `\uXXXX` escapes instead (the same
/// JSON value, nothing a terminal acts on). Outside strings JSON has none
/// of them, so the whole text can be filtered.
pub fn json_terminal_safe(json: &str) -> std::borrow::Cow<'_, str> {
    // Line feeds and indentation of pretty JSON are whitespace between
    // tokens (inside strings serde_json has escaped every C0 control).
    let escape = |c: char| is_unsafe_char(c) && !matches!(c, '\n' | '\t' | '\r');
    if !json.chars().any(escape) {
        return json.into();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escape(c) {
            use std::fmt::Write as _;
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// `value` as pretty JSON for a terminal ([`json_terminal_safe`]): what
/// every command that prints JSON holding outside text (published records,
/// reports, messages) writes.
pub fn json_for_terminal<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(value).map(|json| json_terminal_safe(&json).into_owned())
}

/// A time serialised as an RFC 3339 UTC string (`2024-12-03T00:00:00Z`),
/// whatever the Rust type holding it: `#[schemars(with = "Rfc3339")]`. Its
/// schema is the one of [`Timestamp`](crate::clock::Timestamp), the type
/// that writes times so (a string of format `date-time`, named `Rfc3339`).
pub type Rfc3339 = crate::clock::Timestamp;

/// `#[serde(serialize_with = "output::rfc3339")]`: Unix seconds kept as an
/// integer in Rust, printed as an RFC 3339 UTC string (with
/// `#[schemars(with = "Rfc3339")]`), as every time in JSON is.
pub fn rfc3339<S: serde::Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::format_time(*secs))
}

/// [`rfc3339`] for an optional time (`null` when absent).
pub fn rfc3339_opt<S: serde::Serializer>(secs: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match secs {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_resolve() {
        for f in OutputFormat::ALL {
            assert_eq!(OutputFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(OutputFormat::from_name("table"), Some(OutputFormat::Text));
        assert_eq!(OutputFormat::from_name("md"), Some(OutputFormat::Markdown));
        assert_eq!(OutputFormat::from_name("yaml"), None);
    }

    #[test]
    fn a_command_gets_only_its_formats() {
        let cmd = clap::Command::new("x").arg(
            clap::Arg::new("format")
                .long("format")
                .value_parser(parser(&[OutputFormat::Text, OutputFormat::Json])),
        );
        let m = cmd
            .clone()
            .try_get_matches_from(["x", "--format", "table"])
            .unwrap();
        assert_eq!(
            m.get_one::<OutputFormat>("format"),
            Some(&OutputFormat::Text)
        );
        let e = cmd
            .try_get_matches_from(["x", "--format", "csv"])
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.contains("--format") && text.contains("text, json"),
            "{text}"
        );
    }
}
