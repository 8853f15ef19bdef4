//! The `reports` subcommands: ingest, list, show, export, delete, prune,
//! summary, html, alerts.
//!
//! Owns argument definitions and output formatting (text tables, JSON,
//! CSV; the formats each command takes are its `--format` parser's, see
//! [`crate::output`]):
//! every text that reaches the terminal goes through
//! [`dashboard::text::clean`] (tables, text) or [`json_terminal_safe`]
//! (JSON), CSV cells are neutralised against formula injection
//! ([`csv_field`]), and standard output is a [`PipeStdout`] so a closed
//! pipe ends the command quietly. Read-only commands (`list`, `show`,
//! `export`) open the store read-only and never create it; `summary`,
//! `html`, `alerts`, `delete` and `prune` need an existing store. Built
//! without the `imap` feature, `ingest --imap` is refused with a message
//! (the option stays, so the refusal names it). Leaves parsing, SQL and
//! sources to the other `reports` modules; the binary wires
//! [`ReportsArgs`] in and gives each [`ReportsError`] its exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::IngestLimits;
use super::dashboard;
use super::dashq::DashboardQueries;
#[cfg(feature = "imap")]
use super::ingest::imap::{
    self, ImapConfig, ImapSource, ImapUrl, Password, StopSignal, WatchEvent,
};
use super::ingest::{self, FileSource, MaildirFolders, MaildirSource, MboxSource, Source, Summary};
use super::parse::aggregate::{AggregateVisitor, SinkError};
use super::parse::failure::FailureReport;
use super::parse::tlsrpt::TlsReport;
use super::parse::{
    AggregateHeader, Found, ParseError, ParsedItem, Record, ReportKind, ReportSink, parse_item,
    parse_xml_stream,
};
use super::store::{ReportDetail, ReportRow, ReportStore, StoreError, parse_report_id};
use super::store_cli::{AnyStore, StoreChoice, StoreOptions, StoreUrl};
use crate::output::{self, OutputFormat};

/// Why a `reports` command (or `serve`) stopped: the errors of the modules
/// it called, kept typed so that the binary gives each its exit code
/// (`cli/exit.rs`) without reading a message. [`ReportsError::chain`] is
/// the message: the error and its sources, joined by ": ".
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    /// What was asked cannot be done as given (nothing to ingest, a
    /// feature this build lacks, no IMAP password).
    #[error("{0}")]
    Invalid(String),
    /// A report id that is not one.
    #[error(transparent)]
    ReportId(#[from] super::store::ReportIdError),
    /// The store options (`--db`, `--store`, `MAILAUTH_STORE`, the
    /// config's `store:`).
    #[error(transparent)]
    StoreCli(#[from] super::store_cli::StoreCliError),
    /// The config, read for its `alerts:` section.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A command that needs an existing store found none (nothing is
    /// created: a typo in `--db` must not make an empty store).
    #[error(
        "no such report store: {0} (`mailauth reports ingest` creates one; check --db/--store)"
    )]
    NoStore(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Dashboard(#[from] dashboard::DashboardError),
    #[error(transparent)]
    Alerts(#[from] super::alerts::AlertsError),
    #[error(transparent)]
    AsnDb(#[from] super::mmdb::MmdbError),
    #[error(transparent)]
    Serve(#[from] super::serve::ServeError),
    /// The clock (`MAILAUTH_NOW`).
    #[error("{0}")]
    Clock(String),
    /// A file the command reads or writes; `what` says which and how.
    #[error("{what}")]
    File {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing the command's output.
    #[error(transparent)]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// IMAP's errors (`ingest --imap`); without the `imap` feature, a type
/// with no value, so that [`ReportsError`] has the same variants in every
/// build.
#[cfg(feature = "imap")]
pub use super::ingest::imap::ImapError;

/// IMAP's errors (`ingest --imap`); without the `imap` feature, a type
/// with no value, so that [`ReportsError`] has the same variants in every
/// build.
#[cfg(not(feature = "imap"))]
#[derive(Debug, thiserror::Error)]
pub enum ImapError {}

impl ReportsError {
    /// The message for standard error: this error and each of its
    /// sources, joined by ": ".
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }

    fn file(what: String) -> impl FnOnce(std::io::Error) -> ReportsError {
        move |source| ReportsError::File { what, source }
    }
}

/// Read DMARC aggregate, DMARC failure and SMTP TLS reports.
#[derive(Debug, clap::Args)]
pub struct ReportsArgs {
    /// The store every subcommand opens (its flags are global: they may
    /// follow the subcommand).
    #[command(flatten)]
    pub store: StoreOptions,
    #[command(subcommand)]
    pub command: ReportsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportsCommand {
    /// Store reports from files, directories, mbox files and Maildirs.
    Ingest(IngestArgs),
    /// List stored reports.
    List(ListArgs),
    /// Show one report and its records.
    Show(ShowArgs),
    /// Export reports as JSON or records as CSV.
    Export(ExportArgs),
    /// Remove reports (with their records) from the store, by the ids
    /// `reports list` prints.
    Delete(DeleteArgs),
    /// Retention: remove aggregate reports (with their records) whose
    /// period began more than --older-than ago. A dry run unless --yes.
    Prune(PruneArgs),
    /// Dashboard in the terminal: pass rates, sources, reporters, TLS.
    Summary(SummaryArgs),
    /// Write the dashboards as a static, self-contained HTML site.
    Html(HtmlArgs),
    /// Evaluate the config's alert rules over the store: new alerts are
    /// printed, sent to the webhook and remembered (exit 3), so a cron job
    /// reports each once; exit 0 when nothing is new.
    Alerts(AlertsArgs),
}

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    /// Output format: text, or json (the new alerts).
    #[arg(long, default_value = "text", value_parser = output::parser(TEXT_JSON))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// A MaxMind DB format ASN database (as for `reports summary`).
    #[arg(long, env = "MAILAUTH_ASN_DB", value_name = "PATH")]
    pub asn_db: Option<PathBuf>,
}

/// What the dashboards show; shared by `summary` and `html`.
#[derive(Debug, clap::Args)]
pub struct DashArgs {
    /// Only this domain (summary: its detail view).
    #[arg(long)]
    pub domain: Option<String>,
    /// Start of the range: 30d, 12h, 2w, a date (2026-01-31) or RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the range (exclusive), same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Config whose SPF records attribute sending sources (default: the
    /// config, `-c`).
    #[arg(long = "spf-config", value_name = "PATH")]
    pub spf_config: Option<PathBuf>,
    /// Do not query DNS: attribute sources from the stored reports only.
    #[arg(long)]
    pub offline: bool,
    /// A MaxMind DB format ASN database (GeoLite2-ASN, DB-IP ASN Lite):
    /// names the autonomous system of each source, identifies services by
    /// it and groups unknown sources by it. Read locally (works offline).
    #[arg(long, env = "MAILAUTH_ASN_DB", value_name = "PATH")]
    pub asn_db: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub dash: DashArgs,
    /// Output format: text, or json (the views).
    #[arg(long, default_value = "text", value_parser = output::parser(TEXT_JSON))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct HtmlArgs {
    #[command(flatten)]
    pub dash: DashArgs,
    /// Directory to write index.html and domains/*.html into.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Report files or directories (read recursively): .xml, .gz, .zip,
    /// .json, .eml, in any combination; detected by content.
    pub paths: Vec<PathBuf>,
    /// An mbox file to read messages from (repeatable).
    #[arg(long)]
    pub mbox: Vec<PathBuf>,
    /// A Maildir to read messages from (repeatable). Handled messages are
    /// moved to the archive folder, unparseable ones to the invalid folder.
    #[arg(long)]
    pub maildir: Vec<PathBuf>,
    /// Maildir++ folder for handled messages.
    #[arg(long, default_value = ".Archive")]
    pub archive_folder: String,
    /// Maildir++ folder for messages that are not valid reports.
    #[arg(long, default_value = ".Invalid")]
    pub invalid_folder: String,
    #[command(flatten)]
    pub imap: Box<ImapArgs>,
    /// Output format of the summary: text, or json.
    #[arg(long, default_value = "text", value_parser = output::parser(TEXT_JSON))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Parse and count every report, store nothing (the database is not
    /// opened): checks a batch, and measures parsing alone.
    #[arg(long)]
    pub dry_run: bool,
    /// Largest input item held in memory in bytes (a compressed file, a
    /// mail message); a plain-XML file is a report already decompressed
    /// and is held to --max-decompressed-bytes instead.
    #[arg(long, default_value_t = IngestLimits::default().max_input_bytes)]
    pub max_input_bytes: u64,
    /// Largest total decompressed size per item in bytes, all layers
    /// together; also the largest plain-XML report.
    #[arg(long, default_value_t = IngestLimits::default().max_decompressed_bytes)]
    pub max_decompressed_bytes: u64,
    /// Seconds one item may take to parse; past it the item is set aside
    /// as invalid and the batch goes on (0 expires at once: for tests).
    #[arg(long, value_name = "SECS",
          default_value_t = IngestLimits::default().item_time_budget.as_secs())]
    pub item_timeout: u64,
}

/// Reading reports from an IMAP folder (`reports ingest --imap`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ImapArgs {
    /// An IMAP folder to read reports from: `imaps://user@host[:port]/INBOX`
    /// (TLS), or `imap://…` (STARTTLS; plaintext only on loopback or with
    /// --imap-allow-plain). Handled messages are moved to --imap-archive,
    /// unparseable ones to --imap-invalid.
    #[arg(long, value_name = "URL")]
    pub imap: Option<String>,
    /// Environment variable holding the IMAP password.
    #[arg(long, value_name = "NAME", default_value = "MAILAUTH_IMAP_PASSWORD")]
    pub imap_password_env: String,
    /// File holding the IMAP password (first line); wins over the
    /// environment.
    #[arg(long, value_name = "PATH")]
    pub imap_password_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) to trust for the IMAP server,
    /// instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub imap_ca: Option<PathBuf>,
    /// Allow a plaintext IMAP login to a server that is not on loopback and
    /// offers no STARTTLS.
    #[arg(long)]
    pub imap_allow_plain: bool,
    /// IMAP folder for handled reports (created if missing).
    #[arg(long, default_value = "Archive", value_name = "FOLDER")]
    pub imap_archive: String,
    /// IMAP folder for messages that are not valid reports (created if
    /// missing).
    #[arg(long, default_value = "Invalid", value_name = "FOLDER")]
    pub imap_invalid: String,
    /// Seconds in IDLE before it is re-issued (at most 1740, 29 minutes).
    #[arg(long, default_value_t = 1740, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=1740))]
    pub imap_idle_secs: u64,
    /// Longest wait before reconnecting after an IMAP error, in seconds
    /// (the wait starts at 1 s and doubles).
    #[arg(long, default_value_t = 300, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub imap_max_backoff_secs: u64,
    /// Longest wait for the IMAP server to answer one command in full, in
    /// seconds: the greeting, the TLS handshake, the login and every
    /// command, a whole `UID FETCH` batch included.
    #[arg(long, default_value_t = 120, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub imap_timeout: u64,
    /// Longest wait for the TCP connection to the IMAP server, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub imap_connect_timeout: u64,
    /// Keep watching the IMAP folder (IDLE) and ingest new mail as it
    /// arrives, reconnecting after errors, until SIGINT or SIGTERM.
    #[arg(long, requires = "imap")]
    pub watch: bool,
}

impl Default for ImapArgs {
    /// The same values as the command line's defaults: no IMAP.
    fn default() -> Self {
        Self {
            imap: None,
            imap_password_env: "MAILAUTH_IMAP_PASSWORD".to_owned(),
            imap_password_file: None,
            imap_ca: None,
            imap_allow_plain: false,
            imap_archive: "Archive".to_owned(),
            imap_invalid: "Invalid".to_owned(),
            imap_idle_secs: 1740,
            imap_max_backoff_secs: 300,
            imap_timeout: 120,
            imap_connect_timeout: 30,
            watch: false,
        }
    }
}

/// Output formats of `reports summary` and `reports ingest`.
const TEXT_JSON: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json];

/// Output formats of `reports list` and `reports show` (`table` is an
/// alias of `text`).
const LIST_FORMATS: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json, OutputFormat::Csv];

/// Output formats of `reports export` (a table of every record is not an
/// export: use `reports list` or `reports show`).
const EXPORT_FORMATS: &[OutputFormat] = &[OutputFormat::Json, OutputFormat::Csv];

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only reports for this domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// `text` (a table; `table` is an alias), `json` (an array of
    /// reports; `id` is the id `show` accepts) or `csv`.
    #[arg(long, default_value = "text", value_parser = output::parser(LIST_FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Report id as listed (`12`, or `tls:3`, `failure:5`).
    pub id: String,
    /// `text` (`table` is an alias), `json`, or `csv` (the records of an
    /// aggregate report, as `export --format csv` writes them).
    #[arg(long, default_value = "text", value_parser = output::parser(LIST_FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Report ids as listed (`12`, `tls:3`, `failure:5`). All or nothing:
    /// when one is unknown, none is removed.
    #[arg(required = true, num_args = 1..)]
    pub ids: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Age of the reports to remove: a duration like 400d, 52w or 36h,
    /// counted back from now; a report goes when its period began before.
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: i64,
    /// Remove them. Without it, only print what would be removed.
    #[arg(long)]
    pub yes: bool,
    /// Output format: text, or json (the counts).
    #[arg(long, default_value = "text", value_parser = output::parser(TEXT_JSON))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// `reports prune --json`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PruneJson<'a> {
    /// Reports whose period began before this time (RFC 3339 UTC).
    #[schemars(with = "crate::output::Rfc3339")]
    pub before: String,
    /// Whether they were removed (`--yes`) or only counted.
    pub removed: bool,
    pub reports: u64,
    pub records: u64,
    pub domains: &'a [super::store::PrunedDomain],
}

/// `--older-than`: a positive count of hours, days or weeks, in seconds.
fn parse_age(v: &str) -> Result<i64, String> {
    let err = || format!("{v:?} is not a duration: use e.g. 400d, 52w or 36h");
    let unit = v.chars().last().ok_or_else(err)?;
    let secs = match unit {
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(err()),
    };
    let n: i64 = v[..v.len() - 1].parse().map_err(|_| err())?;
    if n <= 0 {
        return Err(err());
    }
    n.checked_mul(secs).ok_or_else(err)
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// `json`: every report with its details and records; `csv`: one line
    /// per aggregate record.
    #[arg(long, default_value = "json", value_parser = output::parser(EXPORT_FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Only reports for this domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Runs a `reports` subcommand; returns the exit code (0 fine, 1 some items
/// were invalid or a report was not found). `config` is the config file
/// whose `store:` is used when neither a flag nor `MAILAUTH_STORE` names
/// the store.
pub fn run(args: ReportsArgs, config: &Path) -> Result<i32, ReportsError> {
    let mut out = PipeStdout::lock();
    let mut command = args.command;
    // Sources are attributed with the config's SPF records unless
    // --spf-config names another (`-c` used to be ignored for this).
    if let ReportsCommand::Summary(SummaryArgs { dash, .. })
    | ReportsCommand::Html(HtmlArgs { dash, .. }) = &mut command
    {
        dash.spf_config.get_or_insert_with(|| config.to_path_buf());
    }
    let command = match command {
        ReportsCommand::Ingest(a) if a.dry_run => return ingest_cmd(&mut DryRun, a, &mut out),
        other => other,
    };
    // Ids are checked before the store is opened.
    if let ReportsCommand::Show(a) = &command {
        parse_report_id(&a.id)?;
    }
    let choice = args.store.choose(config)?;
    match command {
        ReportsCommand::Ingest(a) => ingest_cmd(choice.open()?.as_mut(), a, &mut out),
        ReportsCommand::List(a) => {
            let store = open_read_only(&choice)?;
            let rows = store.list(a.domain.as_deref())?;
            match OutputFormat::chosen(a.format, a.json) {
                OutputFormat::Json => write_json(&mut out, &rows)?,
                OutputFormat::Csv => write_list_csv(&mut out, &rows)?,
                _ => write_table(&mut out, &rows)?,
            }
            out.flush()?;
            Ok(0)
        }
        ReportsCommand::Show(a) => {
            let (kind, id) = parse_report_id(&a.id)?;
            let store = open_read_only(&choice)?;
            let Some(detail) = store.show(kind, id)? else {
                eprintln!(
                    "no {} report with id {}",
                    kind.as_str(),
                    super::store::display_id(kind, id)
                );
                return Ok(1);
            };
            match OutputFormat::chosen(a.format, a.json) {
                OutputFormat::Json => write_json(&mut out, &detail)?,
                OutputFormat::Csv if kind == ReportKind::Aggregate => {
                    write_records_csv_header(&mut out)?;
                    write_records_csv(&mut out, &detail)?;
                }
                OutputFormat::Csv => {
                    // A format this report does not have: a usage error (2),
                    // like a format the command does not take.
                    eprintln!(
                        "error: --format csv writes the records of an aggregate report; {} is a {} report: use --format table or json",
                        detail.row.display_id(),
                        kind.as_str()
                    );
                    return Ok(2);
                }
                _ => write_detail(&mut out, &detail)?,
            }
            out.flush()?;
            Ok(0)
        }
        ReportsCommand::Export(a) => {
            let store = open_read_only(&choice)?;
            let mut sink: Box<dyn Write> = match &a.output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .map_err(ReportsError::file(format!("creating {}", p.display())))?,
                )),
                None => Box::new(out),
            };
            export(store.as_ref(), &a, &mut sink)?;
            sink.flush()?;
            Ok(0)
        }
        ReportsCommand::Delete(a) => delete_cmd(&choice, &a, &mut out),
        ReportsCommand::Prune(a) => prune_cmd(&choice, &a, &mut out),
        ReportsCommand::Summary(a) => summary_cmd(open_existing(&choice)?.as_mut(), a, &mut out),
        ReportsCommand::Html(a) => html_cmd(open_existing(&choice)?.as_mut(), a, &mut out),
        ReportsCommand::Alerts(a) => {
            alerts_cmd(open_existing(&choice)?.as_mut(), config, a, &mut out)
        }
    }
}

/// The error of a command that needs an existing store and found none:
/// nothing is created (a typo in `--db` must not make an empty store).
fn no_store(choice: &StoreChoice) -> ReportsError {
    ReportsError::NoStore(choice.url.describe())
}

/// Opens the store for reading only: never created, migrated or written.
fn open_read_only(choice: &StoreChoice) -> Result<Box<dyn AnyStore>, ReportsError> {
    choice.open_read_only()?.ok_or_else(|| no_store(choice))
}

/// Opens an existing store (migrating it: the dashboards write their
/// rollup cache); a missing SQLite file is an error, not created.
fn open_existing(choice: &StoreChoice) -> Result<Box<dyn AnyStore>, ReportsError> {
    if let StoreUrl::Sqlite(p) = &choice.url
        && !p.is_file()
    {
        return Err(no_store(choice));
    }
    choice.open_existing()?.ok_or_else(|| no_store(choice))
}

/// `reports delete ID…`: every id is checked first, then all are removed
/// in one transaction (or none, when one is unknown).
fn delete_cmd(
    choice: &StoreChoice,
    a: &DeleteArgs,
    out: &mut impl Write,
) -> Result<i32, ReportsError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut ids = Vec::with_capacity(a.ids.len());
    for s in &a.ids {
        let id = parse_report_id(s)?;
        if seen.insert((id.0.as_str(), id.1)) {
            ids.push(id);
        }
    }
    let mut store = open_existing(choice)?;
    store.delete(&ids)?;
    let shown: Vec<String> = ids
        .iter()
        .map(|&(k, id)| super::store::display_id(k, id))
        .collect();
    writeln!(
        out,
        "deleted {} report(s): {}",
        shown.len(),
        shown.join(" ")
    )?;
    out.flush()?;
    Ok(0)
}

/// `reports prune --older-than D [--yes]`: counts (dry run) or removes,
/// in one transaction, the aggregate reports that began before now - D,
/// and prints them per domain.
fn prune_cmd(
    choice: &StoreChoice,
    a: &PruneArgs,
    out: &mut impl Write,
) -> Result<i32, ReportsError> {
    let now =
        crate::clock::now().map_err(|e| ReportsError::Clock(format!("reading the clock: {e}")))?;
    let cutoff = now.saturating_sub(a.older_than);
    let mut store = open_existing(choice)?;
    let pruned = store.prune(cutoff, a.yes)?;
    let before = crate::clock::format_time(cutoff);
    if OutputFormat::chosen(a.format, a.json) == OutputFormat::Json {
        let v = PruneJson {
            before,
            removed: a.yes,
            reports: pruned.reports,
            records: pruned.records,
            domains: &pruned.domains,
        };
        write_json(out, &v)?;
    } else {
        let verb = if a.yes { "removed" } else { "would remove" };
        writeln!(
            out,
            "{verb} {} aggregate report(s) with {} record(s) that began before {before}",
            pruned.reports, pruned.records
        )?;
        for d in &pruned.domains {
            writeln!(
                out,
                "  {}: {} report(s), {} record(s)",
                dashboard::text::clean(&d.domain),
                d.reports,
                d.records
            )?;
        }
        if !a.yes && pruned.reports > 0 {
            writeln!(out, "dry run: nothing removed; add --yes to remove them")?;
        }
    }
    out.flush()?;
    Ok(0)
}

/// Set when a write to standard output failed because its reader is
/// gone (`| head`): see [`stdout_closed`].
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether standard output was found closed (a broken pipe) by a
/// [`PipeStdout`]: the binary then ends quietly, as other Unix tools do,
/// instead of printing the error.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Records that standard output is closed (the binary's panic hook calls
/// this for `println!`'s "failed printing to stdout").
pub fn mark_stdout_closed() {
    STDOUT_CLOSED.store(true, Ordering::Relaxed);
}

/// Standard output that never panics and remembers a broken pipe
/// ([`stdout_closed`]); errors are returned as usual, so the command stops
/// at once.
pub struct PipeStdout(std::io::StdoutLock<'static>);

impl PipeStdout {
    pub fn lock() -> PipeStdout {
        PipeStdout(std::io::stdout().lock())
    }

    fn note<T>(r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            mark_stdout_closed();
        }
        r
    }
}

impl Write for PipeStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::note(self.0.write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Self::note(self.0.flush())
    }
}

pub use crate::output::json_terminal_safe;

fn write_json<T: serde::Serialize + ?Sized>(
    out: &mut impl Write,
    v: &T,
) -> Result<(), ReportsError> {
    let text = serde_json::to_string_pretty(v)?;
    writeln!(out, "{}", json_terminal_safe(&text))?;
    Ok(())
}

fn dash_filter(a: &DashArgs) -> Result<super::store::DashFilter, ReportsError> {
    let now = crate::clock::now().map_err(ReportsError::Clock)?;
    let time = |v: &Option<String>| {
        v.as_deref()
            .map(|v| dashboard::parse_time(v, now))
            .transpose()
    };
    Ok(super::store::DashFilter {
        domain: a.domain.clone(),
        since: time(&a.since)?,
        until: time(&a.until)?,
        source: None,
    })
}

/// The config attributing sources: `--spf-config`, else `-c` (filled in by
/// [`run`]).
fn spf_config(d: &DashArgs) -> &Path {
    d.spf_config
        .as_deref()
        .unwrap_or(Path::new("mailauth.yaml"))
}

/// Opens `--asn-db`, if given: a file that cannot be read or is not a
/// MaxMind DB stops the command with an error naming it.
pub fn open_asn_db(
    path: Option<&Path>,
) -> Result<Option<std::sync::Arc<super::mmdb::Mmdb>>, ReportsError> {
    Ok(match path {
        Some(p) => Some(std::sync::Arc::new(super::mmdb::Mmdb::open(p)?)),
        None => None,
    })
}

/// `reports alerts`: exit 3 with new alerts, 0 without; 1 when a
/// notifier failed (the alerts are then not remembered: the next run
/// sends them again). The config (`-c`) is read when it exists: its
/// `alerts:` section and SPF records; without it the rules' defaults apply.
fn alerts_cmd(
    store: &mut dyn DashboardQueries,
    config: &Path,
    a: AlertsArgs,
    out: &mut impl Write,
) -> Result<i32, ReportsError> {
    use super::alerts::{self, AlertsRun};
    let cfg = if config.is_file() {
        crate::config::load(config)?.alerts.unwrap_or_default()
    } else {
        alerts::AlertsConfig::default()
    };
    let attr =
        super::serve::attributor(config, true).with_asn_db(open_asn_db(a.asn_db.as_deref())?);
    let now = crate::clock::now().map_err(ReportsError::Clock)?;
    let (since, all) = alerts::evaluate(store, &attr, &cfg, now)?;
    let run = AlertsRun {
        generated_at: crate::clock::format_time(now),
        since: crate::clock::format_time(since),
        alerts: alerts::new_alerts(store, all)?,
    };
    if OutputFormat::chosen(a.format, a.json) == OutputFormat::Json {
        write_json(out, &run)?;
    } else {
        write!(out, "{}", alerts::text(&run))?;
    }
    out.flush()?;
    if run.alerts.is_empty() {
        return Ok(0);
    }
    if let Some(w) = &cfg.webhook {
        let base = config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        alerts::deliver_webhook(w, base, &run)?;
    }
    if let Some(e) = &cfg.email {
        let base = config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        alerts::deliver_email(e, base, &run, now)?;
    }
    alerts::remember(store, &run.alerts, now)?;
    Ok(3)
}

fn summary_cmd(
    store: &mut dyn DashboardQueries,
    a: SummaryArgs,
    out: &mut impl Write,
) -> Result<i32, ReportsError> {
    let f = dash_filter(&a.dash)?;
    match &a.dash.domain {
        Some(d) => {
            let attr = super::serve::attributor(spf_config(&a.dash), a.dash.offline)
                .with_asn_db(open_asn_db(a.dash.asn_db.as_deref())?);
            let view = dashboard::domain(store, &attr, d, &f)?;
            if OutputFormat::chosen(a.format, a.json) == OutputFormat::Json {
                write_json(out, &view)?;
            } else {
                write!(out, "{}", dashboard::text::domain(&view))?;
            }
        }
        None => {
            let view = dashboard::overview(store, &f)?;
            if OutputFormat::chosen(a.format, a.json) == OutputFormat::Json {
                write_json(out, &view)?;
            } else {
                write!(out, "{}", dashboard::text::overview(&view))?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}

fn html_cmd(
    store: &mut dyn DashboardQueries,
    a: HtmlArgs,
    out: &mut impl Write,
) -> Result<i32, ReportsError> {
    use dashboard::html::{self, Links};
    let f = dash_filter(&a.dash)?;
    let attr = super::serve::attributor(spf_config(&a.dash), a.dash.offline)
        .with_asn_db(open_asn_db(a.dash.asn_db.as_deref())?);
    let overview = dashboard::overview(store, &f)?;
    let domains_dir = a.out.join("domains");
    std::fs::create_dir_all(&domains_dir).map_err(ReportsError::file(format!(
        "creating {}",
        domains_dir.display()
    )))?;
    let write = |path: PathBuf, text: String| {
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
            .map_err(ReportsError::file(format!("writing {}", path.display())))
    };
    write(
        a.out.join("index.html"),
        html::overview(&overview, &Links::Static),
    )?;
    let mut pages = 1;
    for d in &overview.domains {
        if a.dash.domain.as_ref().is_some_and(|only| only != &d.domain) {
            continue;
        }
        let view = dashboard::domain(store, &attr, &d.domain, &f)?;
        write(
            domains_dir.join(html::domain_file(&d.domain)),
            html::domain(&view, &Links::Static),
        )?;
        pages += 1;
    }
    writeln!(
        out,
        "wrote {pages} page(s) to {}; open {} in a browser",
        a.out.display(),
        a.out.join("index.html").display()
    )?;
    out.flush()?;
    Ok(0)
}

/// The store of `ingest --dry-run`: parses every item through the same
/// parser as the database store, keeps nothing, and calls every report new.
struct DryRun;

impl AggregateVisitor for DryRun {
    fn header(&mut self, _: &AggregateHeader) -> Result<bool, SinkError> {
        Ok(true)
    }
    fn record(&mut self, _: &Record) -> Result<(), SinkError> {
        Ok(())
    }
}

impl ReportSink for DryRun {
    fn failure(&mut self, _: &FailureReport) -> Result<bool, SinkError> {
        Ok(true)
    }
    fn tls(&mut self, _: &TlsReport) -> Result<bool, SinkError> {
        Ok(true)
    }
}

impl ReportStore for DryRun {
    fn ingest_item(
        &mut self,
        _origin: &str,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        Ok(parse_item(bytes, limits, self))
    }
    fn ingest_xml_stream(
        &mut self,
        _origin: &str,
        input: &mut dyn std::io::Read,
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        Ok(parse_xml_stream(input, limits, self))
    }
    fn store_parsed(
        &mut self,
        _origin: &str,
        item: &ParsedItem,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        Ok(item.replay(self))
    }
    fn list(&self, _: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
        Ok(Vec::new())
    }
    fn show(&self, _: ReportKind, _: i64) -> Result<Option<ReportDetail>, StoreError> {
        Ok(None)
    }
    fn delete(&mut self, _: &[(ReportKind, i64)]) -> Result<(), StoreError> {
        Ok(())
    }
    fn prune(&mut self, _: i64, _: bool) -> Result<super::store::Pruned, StoreError> {
        Ok(super::store::Pruned::default())
    }
}

fn ingest_cmd(
    store: &mut dyn ReportStore,
    a: IngestArgs,
    out: &mut impl Write,
) -> Result<i32, ReportsError> {
    if a.paths.is_empty() && a.mbox.is_empty() && a.maildir.is_empty() && a.imap.imap.is_none() {
        return Err(ReportsError::Invalid(
            "nothing to ingest: give files, directories, --mbox, --maildir or --imap".into(),
        ));
    }
    // Checked before anything is read, so a bad URL or a missing password
    // fails fast.
    #[cfg(not(feature = "imap"))]
    if a.imap.imap.is_some() {
        return Err(ReportsError::Invalid(
            "--imap needs IMAP support, which this mailauth was built without (Cargo feature `imap`); read the mailbox with --maildir or --mbox instead".into(),
        ));
    }
    #[cfg(feature = "imap")]
    let imap = a
        .imap
        .imap
        .as_deref()
        .map(|url| imap_config(url, &a.imap))
        .transpose()?;
    let limits = IngestLimits {
        max_input_bytes: a.max_input_bytes,
        max_decompressed_bytes: a.max_decompressed_bytes,
        item_time_budget: std::time::Duration::from_secs(a.item_timeout),
        ..IngestLimits::default()
    };
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if !a.paths.is_empty() {
        sources.push(Box::new(
            FileSource::new(a.paths, limits.max_input_bytes)
                .with_xml_limit(limits.max_decompressed_bytes),
        ));
    }
    for m in a.mbox {
        sources.push(Box::new(
            MboxSource::new(m).with_limit(limits.max_input_bytes),
        ));
    }
    let folders = MaildirFolders {
        archive: a.archive_folder,
        invalid: a.invalid_folder,
    };
    for d in a.maildir {
        sources.push(Box::new(MaildirSource::open(
            &d,
            folders.clone(),
            limits.max_input_bytes,
        )?));
    }
    // Progress only on a terminal; quiet when piped.
    let tty = std::io::stderr().is_terminal();
    let mut total = Summary::default();
    for mut source in sources {
        let base = total.clone();
        let mut progress = |s: &Summary| {
            if tty {
                eprint!(
                    "\r{} items, {} reports, {} records",
                    base.items + s.items,
                    base.reports + s.reports,
                    base.records + s.records
                );
            }
        };
        let s = ingest::run(source.as_mut(), store, &limits, &mut progress)?;
        total.absorb(s);
    }
    #[cfg(feature = "imap")]
    if let Some(config) = imap {
        let s = if a.imap.watch {
            let shown = config.url.to_string();
            let stop = StopSignal::new();
            imap::stop_on_signals(&stop)?;
            let mut event = |e: WatchEvent<'_>| match e {
                WatchEvent::Connected => eprintln!("watching {shown}"),
                WatchEvent::Error(e) => eprintln!("IMAP: {e}; reconnecting"),
                WatchEvent::Pass(s) if tty => eprint!(
                    "\r{} items, {} reports, {} records",
                    s.items, s.reports, s.records
                ),
                WatchEvent::Pass(_) => {}
            };
            imap::watch(config, store, &limits, &stop, &mut event)?.summary
        } else {
            let mut source = ImapSource::connect(config, limits.max_input_bytes)?;
            let s = ingest::run(&mut source, store, &limits, &mut |_| {})?;
            source.logout();
            s
        };
        total.absorb(s);
    }
    if tty {
        eprintln!();
    }
    if OutputFormat::chosen(a.format, a.json) == OutputFormat::Json {
        write_json(out, &total)?;
    } else {
        writeln!(
            out,
            "{} items: {} aggregate reports ({} records), {} failure reports, {} TLS reports, {} duplicates, {} invalid, {} errors",
            total.items,
            total.reports,
            total.records,
            total.failure_reports,
            total.tls_reports,
            total.duplicates,
            total.invalid.len(),
            total.errors.len()
        )?;
        let safe = dashboard::text::clean;
        for p in &total.invalid {
            writeln!(out, "invalid: {}: {}", safe(&p.origin), safe(&p.reason))?;
        }
        for p in &total.errors {
            writeln!(out, "error: {}: {}", safe(&p.origin), safe(&p.reason))?;
        }
    }
    out.flush()?;
    Ok(if total.invalid.is_empty() && total.errors.is_empty() {
        0
    } else {
        1
    })
}

/// The IMAP settings of `a`; the password comes from a file or the
/// environment, never from the command line.
#[cfg(feature = "imap")]
fn imap_config(url: &str, a: &ImapArgs) -> Result<ImapConfig, ReportsError> {
    let url: ImapUrl = url.parse()?;
    let password = match &a.imap_password_file {
        Some(path) => Password::from_file(path).map_err(ReportsError::file(format!(
            "reading the IMAP password from {}",
            path.display()
        )))?,
        None => match std::env::var(&a.imap_password_env) {
            Ok(p) => Password::new(p),
            Err(_) => {
                return Err(ReportsError::Invalid(format!(
                    "no IMAP password: set {} or give --imap-password-file",
                    a.imap_password_env
                )));
            }
        },
    };
    let mut config = ImapConfig::new(url, password);
    config.ca_file = a.imap_ca.clone();
    config.allow_plain = a.imap_allow_plain;
    config.archive = a.imap_archive.clone();
    config.invalid = a.imap_invalid.clone();
    config.idle_timeout = std::time::Duration::from_secs(a.imap_idle_secs);
    config.max_backoff = std::time::Duration::from_secs(a.imap_max_backoff_secs);
    config.io_timeout = std::time::Duration::from_secs(a.imap_timeout);
    config.connect_timeout = std::time::Duration::from_secs(a.imap_connect_timeout);
    Ok(config)
}

fn write_table(out: &mut impl Write, rows: &[ReportRow]) -> std::io::Result<()> {
    let header = [
        "ID", "KIND", "ORG", "DOMAIN", "BEGIN", "END", "RECORDS", "MESSAGES",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let c = dashboard::text::clean;
            [
                r.display_id(),
                r.kind.as_str().to_owned(),
                c(&r.org),
                c(&r.domain),
                c(&r.begin),
                c(&r.end),
                r.records.to_string(),
                r.messages.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, row: &[&str]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < row.len() {
                s.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(c.chars().count()),
                ));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &header)?;
    for row in &cells {
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &refs)?;
    }
    Ok(())
}

/// One CSV cell: RFC 4180 quoting, after two defences for a file that
/// reaches a spreadsheet or a terminal.
///
/// - Formula injection (OWASP "CSV Injection"): a cell starting with `=`,
///   `+`, `-`, `@`, a tab or a carriage return is taken for a formula by
///   spreadsheet programs, so it gets a leading `'` (shown as text, the
///   rest of the cell unchanged) and is quoted.
/// - Control characters other than tab, CR and LF (escape sequences) are
///   replaced with U+FFFD, as on the terminal.
pub fn csv_field(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if matches!(c, '\t' | '\r' | '\n') || !dashboard::text::is_unsafe_char(c) {
                c
            } else {
                '\u{fffd}'
            }
        })
        .collect();
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula {
        format!("\"'{}\"", s.replace('"', "\"\""))
    } else if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_line(out: &mut impl Write, fields: &[&str]) -> std::io::Result<()> {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    write!(out, "{}\r\n", line.join(","))
}

fn write_list_csv(out: &mut impl Write, rows: &[ReportRow]) -> std::io::Result<()> {
    csv_line(
        out,
        &[
            "id",
            "kind",
            "org",
            "report_id",
            "domain",
            "begin",
            "end",
            "records",
            "messages",
        ],
    )?;
    for r in rows {
        csv_line(
            out,
            &[
                &r.display_id(),
                r.kind.as_str(),
                &r.org,
                &r.report_id,
                &r.domain,
                &r.begin,
                &r.end,
                &r.records.to_string(),
                &r.messages.to_string(),
            ],
        )?;
    }
    Ok(())
}

fn write_detail(out: &mut impl Write, d: &ReportDetail) -> Result<(), ReportsError> {
    let c = dashboard::text::clean;
    let r = &d.row;
    writeln!(out, "{} report {}", r.kind.as_str(), r.display_id())?;
    writeln!(out, "  org:       {}", c(&r.org))?;
    writeln!(out, "  report id: {}", c(&r.report_id))?;
    writeln!(out, "  domain:    {}", c(&r.domain))?;
    writeln!(out, "  range:     {} .. {}", c(&r.begin), c(&r.end))?;
    writeln!(
        out,
        "  details:   {}",
        json_terminal_safe(&serde_json::to_string(&d.details)?)
    )?;
    if !d.records.is_empty() {
        writeln!(out, "  records:")?;
        for rec in &d.records {
            writeln!(
                out,
                "    {} x{} disposition={} dkim={} spf={} header_from={}",
                c(&rec.source_ip),
                rec.count,
                c(&rec.disposition),
                c(rec.dkim_aligned.as_deref().unwrap_or("-")),
                c(rec.spf_aligned.as_deref().unwrap_or("-")),
                c(&rec.header_from)
            )?;
        }
    }
    Ok(())
}

/// The header line of the records CSV (`export --format csv`, `show
/// --format csv`).
fn write_records_csv_header(out: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = Vec::new();
    csv_line(
        &mut buf,
        &[
            "report",
            "org",
            "report_id",
            "domain",
            "begin",
            "end",
            "source_ip",
            "count",
            "disposition",
            "dkim",
            "spf",
            "header_from",
            "envelope_from",
            "envelope_to",
        ],
    )?;
    out.write_all(&buf)
}

/// One CSV line per record of an aggregate report.
fn write_records_csv(out: &mut dyn Write, d: &ReportDetail) -> std::io::Result<()> {
    let r = &d.row;
    let mut buf = Vec::new();
    for rec in &d.records {
        csv_line(
            &mut buf,
            &[
                &r.display_id(),
                &r.org,
                &r.report_id,
                &r.domain,
                &r.begin,
                &r.end,
                &rec.source_ip,
                &rec.count.to_string(),
                &rec.disposition,
                rec.dkim_aligned.as_deref().unwrap_or_default(),
                rec.spf_aligned.as_deref().unwrap_or_default(),
                &rec.header_from,
                rec.envelope_from.as_deref().unwrap_or_default(),
                rec.envelope_to.as_deref().unwrap_or_default(),
            ],
        )?;
    }
    out.write_all(&buf)
}

fn export(store: &dyn AnyStore, a: &ExportArgs, out: &mut dyn Write) -> Result<(), ReportsError> {
    let rows = store.list(a.domain.as_deref())?;
    match OutputFormat::chosen(a.format, a.json) {
        OutputFormat::Json => {
            // One JSON array, written report by report.
            write!(out, "[")?;
            let mut first = true;
            for r in &rows {
                let Some(d) = store.show(r.kind, r.id)? else {
                    continue;
                };
                if !first {
                    write!(out, ",")?;
                }
                first = false;
                write!(out, "\n{}", json_terminal_safe(&serde_json::to_string(&d)?))?;
            }
            writeln!(out, "\n]")?;
        }
        _ => {
            write_records_csv_header(out)?;
            for r in rows.iter().filter(|r| r.kind == ReportKind::Aggregate) {
                let Some(d) = store.show(r.kind, r.id)? else {
                    continue;
                };
                write_records_csv(out, &d)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let p = parse_report_id;
        assert_eq!(p("12").expect("ok"), (ReportKind::Aggregate, 12));
        assert_eq!(p("aggregate:12").expect("ok"), (ReportKind::Aggregate, 12));
        assert_eq!(p("tls:3").expect("ok"), (ReportKind::Tls, 3));
        assert_eq!(p("failure:5").expect("ok"), (ReportKind::Failure, 5));
        for bad in [
            "x:3",
            "abc",
            "",
            "tls:",
            "-1",
            "0",
            "+4",
            "tls:99999999999999999999",
        ] {
            let e = p(bad).expect_err(bad).to_string();
            assert!(e.contains("tls:N") && e.contains("failure:N"), "{e}");
        }
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::{Args, FromArgMatches};
        let cmd = ReportsArgs::augment_args(clap::Command::new("reports"));
        cmd.clone().debug_assert();
        let m = cmd
            .try_get_matches_from(["reports", "--db", "x.db", "show", "tls:2"])
            .expect("parses");
        let a = ReportsArgs::from_arg_matches(&m).expect("args");
        assert_eq!(a.store.db, Some(PathBuf::from("x.db")));
        assert!(
            matches!(a.command, ReportsCommand::Show(ShowArgs { ref id, .. }) if id == "tls:2")
        );
    }

    #[test]
    fn imap_options() {
        use clap::{Args, FromArgMatches};
        let cmd = IngestArgs::augment_args(clap::Command::new("ingest"));
        let parse = |args: &[&str]| {
            cmd.clone()
                .try_get_matches_from(args)
                .map(|m| IngestArgs::from_arg_matches(&m).expect("args"))
        };
        // The hand-written Default matches the command line's defaults.
        let plain = parse(&["ingest", "x.xml"]).expect("parses");
        assert_eq!(*plain.imap, ImapArgs::default());
        let a = parse(&[
            "ingest",
            "--imap",
            "imaps://u@h/INBOX",
            "--watch",
            "--imap-idle-secs",
            "60",
        ])
        .expect("parses");
        assert!(a.imap.watch);
        assert_eq!(a.imap.imap_idle_secs, 60);
        // --watch needs --imap; IDLE is re-issued within 29 minutes.
        assert!(parse(&["ingest", "--watch"]).is_err());
        assert!(
            parse(&[
                "ingest",
                "--imap",
                "imaps://u@h/",
                "--imap-idle-secs",
                "1741"
            ])
            .is_err()
        );
        // No password on the command line.
        assert!(parse(&["ingest", "--imap", "imaps://u@h/", "--imap-password", "x"]).is_err());
    }

    /// Built without IMAP support, `--imap` is refused by name of the
    /// feature before anything is read.
    #[cfg(not(feature = "imap"))]
    #[test]
    fn imap_is_refused_without_the_feature() {
        use clap::{Args, FromArgMatches};
        let m = IngestArgs::augment_args(clap::Command::new("ingest"))
            .try_get_matches_from(["ingest", "--imap", "imaps://u@h/INBOX"])
            .expect("parses");
        let a = IngestArgs::from_arg_matches(&m).expect("args");
        let mut store = crate::reports::store::SqliteStore::open_in_memory().expect("store");
        let mut out = Vec::new();
        let err = ingest_cmd(&mut store, a, &mut out).expect_err("no IMAP support");
        assert!(err.to_string().contains("Cargo feature `imap`"), "{err:#}");
        assert!(out.is_empty());
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        // OWASP CSV injection: formula starters become text.
        assert_eq!(csv_field("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_field("+1"), "\"'+1\"");
        assert_eq!(csv_field("-2"), "\"'-2\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_field("\tx"), "\"'\tx\"");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
        assert_eq!(csv_field("=\"a\",b"), "\"'=\"\"a\"\",b\"");
        assert_eq!(csv_field("a=b"), "a=b");
        assert_eq!(csv_field("\u{1b}]0;x\u{7}"), "\u{fffd}]0;x\u{fffd}");
    }
}
