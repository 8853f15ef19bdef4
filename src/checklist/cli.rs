//! The `checklist` command's arguments and driver: load the config when
//! there is one, build the resolver (system, or `--nameserver`), open the
//! report store (SQLite only when the file exists), compute and print. The
//! subcommand itself is declared in `cli`.

use std::time::Duration;

use clap::Args;

use super::{ChecklistError, Settings, Sources, compute, gather, render};
use crate::dns::Resolver;
use crate::output::{self, OutputFormat};
use crate::record::Name;
use crate::reports::store::ChecklistQueries;
use crate::reports::store_cli::StoreOptions;
use crate::workspace::Workspace;

/// The formats of `checklist`.
const FORMATS: &[OutputFormat] = &[
    OutputFormat::Text,
    OutputFormat::Json,
    OutputFormat::Markdown,
    OutputFormat::Html,
];

#[derive(Args, Debug, Clone)]
pub struct ChecklistArgs {
    /// The domain (in the config or not).
    pub domain: String,
    /// The report store `mailauth reports ingest` fills (SQLite or
    /// PostgreSQL). A missing SQLite file is not created: the report items
    /// then say the data is missing.
    #[command(flatten)]
    pub store: StoreOptions,
    /// A mailbox `mailauth reports ingest` reads (repeatable): a DMARC rua
    /// address listed here counts as read.
    #[arg(long = "reads", value_name = "ADDRESS")]
    pub reads: Vec<String>,
    /// Output format: text (default), markdown (a pull-request or issue
    /// comment), html (a page), json.
    #[arg(long, default_value = "text", value_parser = output::parser(FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Resolve through this server instead of the system resolver:
    /// IP or IP:PORT. Repeatable.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub nameservers: Vec<String>,
    /// Days of aggregate data needed before the policy may advance.
    #[arg(long, default_value_t = 14, value_name = "DAYS")]
    pub min_days: i64,
    /// Share of volume (percent) that must pass DMARC over 14 days.
    #[arg(long, default_value_t = 98.0, value_name = "PERCENT")]
    pub pass_percent: f64,
    /// Seconds one DNS query may take in all (its attempts share them).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub timeout: f64,
}

/// Runs `mailauth checklist`; prints the checklist and returns 0.
/// `ws` is `None` when there is no config file.
pub fn run(ws: Option<&Workspace>, args: ChecklistArgs) -> Result<i32, ChecklistError> {
    let domain = Name::parse(&args.domain).map_err(|message| ChecklistError::Domain {
        value: args.domain.clone(),
        message,
    })?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(ChecklistError::Settings {
            message: "--timeout must be a positive number of seconds".into(),
        });
    }
    if !(0.0..=100.0).contains(&args.pass_percent) || args.min_days < 0 {
        return Err(ChecklistError::Settings {
            message: "--pass-percent must be 0..100 and --min-days not negative".into(),
        });
    }
    let servers = args
        .nameservers
        .iter()
        .map(|s| {
            crate::validate::parse_nameserver(s).map_err(|e| ChecklistError::Settings {
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(ChecklistError::Settings {
            message: "--timeout must be a positive number of seconds".into(),
        });
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let resolver = if servers.is_empty() {
        Resolver::system_within(Some(timeout))?
    } else {
        Resolver::with_nameservers(&servers, timeout)?
    };
    let store = args
        .store
        .choose_in(ws)
        // Read-only: a checklist leaves the store as it found it.
        .and_then(|c| c.open_read_only())
        .map_err(|e| ChecklistError::Store {
            source: crate::reports::store::StoreError::Backend {
                source: Box::new(e),
            },
        })?;
    let now = crate::clock::now().map_err(|message| ChecklistError::Settings { message })?;
    let mut settings = Settings::new(now);
    settings.min_days = args.min_days;
    settings.pass_ratio = args.pass_percent / 100.0;
    settings.reads = args.reads.clone();
    let src = Sources {
        ws,
        resolver: &resolver,
        store: store.as_deref().map(|s| s as &dyn ChecklistQueries),
        senders: store
            .as_deref()
            .map(|s| s as &dyn crate::reports::dashq::DashboardQueries),
    };
    let facts = gather(&src, &domain, &settings)?;
    let list = compute(&facts, &settings);
    let out = match OutputFormat::chosen(args.format, args.json) {
        OutputFormat::Markdown => render::render_markdown(&list),
        OutputFormat::Html => render::render_html(&list),
        OutputFormat::Json => render::render_json(&list),
        _ => render::render_text(&list),
    };
    print!("{out}");
    Ok(0)
}
