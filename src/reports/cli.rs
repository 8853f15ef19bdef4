//! The `reports` subcommands: ingest, list, show, export.
//!
//! Owns argument definitions and output formatting (table, JSON, CSV).
//! Leaves parsing, SQL and sources to the other `reports` modules; the
//! binary wires [`ReportsArgs`] in and maps `Err` to exit code 2.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::IngestLimits;
use super::dashboard;
use super::dashq::DashboardQueries;
use super::ingest::imap::{
    self, ImapConfig, ImapSource, ImapUrl, Password, StopSignal, WatchEvent,
};
use super::ingest::{self, FileSource, MaildirFolders, MaildirSource, MboxSource, Source, Summary};
use super::parse::aggregate::{AggregateVisitor, SinkError};
use super::parse::failure::FailureReport;
use super::parse::tlsrpt::TlsReport;
use super::parse::{
    AggregateHeader, Found, ParseError, Record, ReportKind, ReportSink, parse_item,
    parse_xml_stream,
};
use super::store::{ReportDetail, ReportRow, ReportStore, StoreError};
use super::store_cli::StoreOptions;

/// Read DMARC aggregate, DMARC failure and SMTP TLS reports.
#[derive(Debug, clap::Args)]
pub struct ReportsArgs {
    /// Report database (SQLite file). Default: MAILAUTH_STORE,
    /// MAILAUTH_DB, the config's `store:`, then mailauth.db.
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Report store URL, instead of --db: sqlite://PATH or
    /// postgres://USER@HOST:PORT/DB (password from MAILAUTH_STORE_PASSWORD
    /// or --store-password-file, never in the URL).
    #[arg(long, global = true, value_name = "URL", conflicts_with = "db")]
    pub store: Option<String>,
    /// File holding the PostgreSQL password.
    #[arg(long, global = true, value_name = "PATH")]
    pub store_password_file: Option<PathBuf>,
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
    /// Dashboard in the terminal: pass rates, sources, reporters, TLS.
    Summary(SummaryArgs),
    /// Write the dashboards as a static, self-contained HTML site.
    Html(HtmlArgs),
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
    /// Config whose SPF records attribute sending sources.
    #[arg(
        long = "spf-config",
        env = "MAILAUTH_CONFIG",
        default_value = "mailauth.yaml"
    )]
    pub spf_config: PathBuf,
    /// Do not query DNS: attribute sources from the stored reports only.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub dash: DashArgs,
    /// Print the views as JSON.
    #[arg(long)]
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
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Parse and count every report, store nothing (the database is not
    /// opened): checks a batch, and measures parsing alone.
    #[arg(long)]
    pub dry_run: bool,
    /// Largest input item in bytes.
    #[arg(long, default_value_t = IngestLimits::default().max_input_bytes)]
    pub max_input_bytes: u64,
    /// Largest total decompressed size per item in bytes.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only reports for this domain.
    #[arg(long)]
    pub domain: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Report id as listed (`12`, or `tls:3`, `failure:5`).
    pub id: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// `json`: every report with its details and records; `csv`: one line
    /// per aggregate record.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
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
pub fn run(args: ReportsArgs, config: &Path) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let command = match args.command {
        ReportsCommand::Ingest(a) if a.dry_run => return ingest_cmd(&mut DryRun, a, &mut out),
        other => other,
    };
    let choice = StoreOptions {
        db: args.db,
        store: args.store,
        store_password_file: args.store_password_file,
    }
    .choose(config)?;
    let mut store = choice.open()?;
    match command {
        ReportsCommand::Ingest(a) => ingest_cmd(store.as_mut(), a, &mut out),
        ReportsCommand::List(a) => {
            let rows = store.list(a.domain.as_deref())?;
            match a.format {
                Format::Table => write_table(&mut out, &rows)?,
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?,
                Format::Csv => write_list_csv(&mut out, &rows)?,
            }
            Ok(0)
        }
        ReportsCommand::Show(a) => {
            let (kind, id) = parse_id(&a.id)?;
            let Some(detail) = store.show(kind, id)? else {
                eprintln!("no {} report with id {id}", kind.as_str());
                return Ok(1);
            };
            match a.format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&detail)?)?,
                Format::Table | Format::Csv => write_detail(&mut out, &detail)?,
            }
            Ok(0)
        }
        ReportsCommand::Export(a) => {
            let mut sink: Box<dyn Write> = match &a.output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(out),
            };
            export(store.as_ref(), &a, &mut sink)?;
            sink.flush()?;
            Ok(0)
        }
        ReportsCommand::Summary(a) => summary_cmd(store.as_mut(), a, &mut out),
        ReportsCommand::Html(a) => html_cmd(store.as_mut(), a, &mut out),
    }
}

fn dash_filter(a: &DashArgs) -> anyhow::Result<super::store::DashFilter> {
    let now = crate::clock::now().map_err(anyhow::Error::msg)?;
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

fn summary_cmd(
    store: &mut dyn DashboardQueries,
    a: SummaryArgs,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let f = dash_filter(&a.dash)?;
    match &a.dash.domain {
        Some(d) => {
            let attr = super::serve::attributor(&a.dash.spf_config, a.dash.offline);
            let view = dashboard::domain(store, &attr, d, &f)?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                write!(out, "{}", dashboard::text::domain(&view))?;
            }
        }
        None => {
            let view = dashboard::overview(store, &f)?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                write!(out, "{}", dashboard::text::overview(&view))?;
            }
        }
    }
    Ok(0)
}

fn html_cmd(
    store: &mut dyn DashboardQueries,
    a: HtmlArgs,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    use dashboard::html::{self, Links};
    let f = dash_filter(&a.dash)?;
    let attr = super::serve::attributor(&a.dash.spf_config, a.dash.offline);
    let overview = dashboard::overview(store, &f)?;
    let domains_dir = a.out.join("domains");
    std::fs::create_dir_all(&domains_dir)
        .with_context(|| format!("creating {}", domains_dir.display()))?;
    let write = |path: PathBuf, text: String| {
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", path.display()))
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
    Ok(0)
}

fn parse_id(s: &str) -> anyhow::Result<(ReportKind, i64)> {
    let (kind, id) = match s.split_once(':') {
        Some(("aggregate", id)) => (ReportKind::Aggregate, id),
        Some(("tls", id)) => (ReportKind::Tls, id),
        Some(("failure", id)) => (ReportKind::Failure, id),
        Some((k, _)) => bail!("unknown report kind {k:?}: use aggregate, tls or failure"),
        None => (ReportKind::Aggregate, s),
    };
    let id = id
        .parse()
        .with_context(|| format!("report id {id:?} is not a number"))?;
    Ok((kind, id))
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
    fn list(&self, _: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
        Ok(Vec::new())
    }
    fn show(&self, _: ReportKind, _: i64) -> Result<Option<ReportDetail>, StoreError> {
        Ok(None)
    }
}

fn ingest_cmd(
    store: &mut dyn ReportStore,
    a: IngestArgs,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    if a.paths.is_empty() && a.mbox.is_empty() && a.maildir.is_empty() && a.imap.imap.is_none() {
        bail!("nothing to ingest: give files, directories, --mbox, --maildir or --imap");
    }
    // Checked before anything is read, so a bad URL or a missing password
    // fails fast.
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
        sources.push(Box::new(FileSource::new(a.paths, limits.max_input_bytes)));
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
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&total)?)?;
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
        for p in &total.invalid {
            writeln!(out, "invalid: {}: {}", p.origin, p.reason)?;
        }
        for p in &total.errors {
            writeln!(out, "error: {}: {}", p.origin, p.reason)?;
        }
    }
    Ok(if total.invalid.is_empty() && total.errors.is_empty() {
        0
    } else {
        1
    })
}

/// The IMAP settings of `a`; the password comes from a file or the
/// environment, never from the command line.
fn imap_config(url: &str, a: &ImapArgs) -> anyhow::Result<ImapConfig> {
    let url: ImapUrl = url.parse()?;
    let password = match &a.imap_password_file {
        Some(path) => Password::from_file(path)
            .with_context(|| format!("reading the IMAP password from {}", path.display()))?,
        None => match std::env::var(&a.imap_password_env) {
            Ok(p) => Password::new(p),
            Err(_) => bail!(
                "no IMAP password: set {} or give --imap-password-file",
                a.imap_password_env
            ),
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

fn list_id(r: &ReportRow) -> String {
    match r.kind {
        ReportKind::Aggregate => r.id.to_string(),
        k => format!("{}:{}", k.as_str(), r.id),
    }
}

fn write_table(out: &mut impl Write, rows: &[ReportRow]) -> std::io::Result<()> {
    let header = [
        "ID", "KIND", "ORG", "DOMAIN", "BEGIN", "END", "RECORDS", "MESSAGES",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                list_id(r),
                r.kind.as_str().to_owned(),
                r.org.clone(),
                r.domain.clone(),
                r.begin.clone(),
                r.end.clone(),
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

/// RFC 4180 field quoting.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
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
                &list_id(r),
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

fn write_detail(out: &mut impl Write, d: &ReportDetail) -> anyhow::Result<()> {
    let r = &d.row;
    writeln!(out, "{} report {}", r.kind.as_str(), list_id(r))?;
    writeln!(out, "  org:       {}", r.org)?;
    writeln!(out, "  report id: {}", r.report_id)?;
    writeln!(out, "  domain:    {}", r.domain)?;
    writeln!(out, "  range:     {} .. {}", r.begin, r.end)?;
    writeln!(out, "  details:   {}", serde_json::to_string(&d.details)?)?;
    if !d.records.is_empty() {
        writeln!(out, "  records:")?;
        for rec in &d.records {
            writeln!(
                out,
                "    {} x{} disposition={} dkim={} spf={} header_from={}",
                rec.source_ip,
                rec.count,
                rec.disposition,
                rec.dkim_aligned.as_deref().unwrap_or("-"),
                rec.spf_aligned.as_deref().unwrap_or("-"),
                rec.header_from
            )?;
        }
    }
    Ok(())
}

fn export(
    store: &dyn super::store_cli::AnyStore,
    a: &ExportArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let rows = store.list(a.domain.as_deref())?;
    match a.format {
        Format::Json | Format::Table => {
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
                write!(out, "\n{}", serde_json::to_string(&d)?)?;
            }
            writeln!(out, "\n]")?;
        }
        Format::Csv => {
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
            out.write_all(&buf)?;
            for r in rows.iter().filter(|r| r.kind == ReportKind::Aggregate) {
                let Some(d) = store.show(r.kind, r.id)? else {
                    continue;
                };
                let mut buf = Vec::new();
                for rec in &d.records {
                    csv_line(
                        &mut buf,
                        &[
                            &r.id.to_string(),
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
                out.write_all(&buf)?;
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
        assert_eq!(parse_id("12").expect("ok"), (ReportKind::Aggregate, 12));
        assert_eq!(parse_id("tls:3").expect("ok"), (ReportKind::Tls, 3));
        assert!(parse_id("x:3").is_err());
        assert!(parse_id("abc").is_err());
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
        assert_eq!(a.db, Some(PathBuf::from("x.db")));
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

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
