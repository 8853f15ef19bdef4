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
//! Leaves rendering to each command: this module only names formats.
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
