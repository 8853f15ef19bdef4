//! Command-line arguments and the commands that tie the pipeline together.
//! Parsing is clap's; each command loads the workspace, calls the library,
//! prints, and returns an exit code. Errors carry their exit code to `main`
//! (`exit` gives each error its code).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::{self, OutputFormat};
use crate::plan::{self, Plan, Style};
use crate::workspace::Workspace;

mod apply;
mod exit;

pub use exit::{Exit, Failure};

#[derive(Parser, Debug)]
#[command(
    name = "mailauth",
    version,
    about = "SPF, DKIM, DMARC, MTA-STS and TLS-RPT for a fleet of domains, as code"
)]
pub struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        env = "MAILAUTH_CONFIG",
        default_value = "mailauth.yaml"
    )]
    pub config: PathBuf,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show what apply would change in DNS.
    #[command(after_help = "Examples:
  mailauth plan                          every domain, a Terraform-like view
  mailauth plan -d example.com --out plan.json
  mailauth plan --format markdown        a pull-request comment
  mailauth plan --detailed-exitcode      0 in sync, 2 changes, 1 error")]
    Plan(PlanArgs),
    /// Change DNS to match the config (from a saved plan, or planning first).
    #[command(after_help = "Examples:
  mailauth apply plan.json               exactly the reviewed plan, or nothing
  mailauth apply --auto-approve          plan and apply now (CI, no terminal)")]
    Apply(ApplyArgs),
    /// Print the records the config implies: BIND master-file syntax, or
    /// octoDNS, dnscontrol or Terraform config (`--format`).
    #[command(after_help = "Examples:
  mailauth emit
  mailauth emit -d example.com >> /etc/bind/db.example.com
  mailauth emit --mta-sts www  policy files under www/<domain>/.well-known/
  mailauth emit --format octodns -d example.com > config/example.com.yaml
  mailauth emit --format terraform --terraform-provider route53 > mailauth.tf")]
    Emit(EmitArgs),
    /// Print the JSON Schema of the config file (for editors), or of a
    /// command's JSON output.
    #[command(after_help = "Examples:
  mailauth schema > mailauth.schema.json
  mailauth schema --list                 the outputs with a schema
  mailauth schema --output plan          what `plan --format json` prints")]
    Schema(SchemaArgs),
    /// Check live DNS as receivers see it, against the config.
    #[command(after_help = "Examples:
  mailauth validate                      every domain of the config
  mailauth validate example.com --json
  mailauth validate --nameserver 192.0.2.53 --fail-on warn")]
    Validate(crate::validate::cli::ValidateArgs),
    /// Write mailauth.yaml entries from what domains publish (live DNS, a
    /// provider, or a zone file), so the next plan changes nothing.
    Import(crate::import::cli::ImportArgs),
    /// Evaluate SPF (RFC 7208 check_host) for a client IP and sender.
    #[command(after_help = "Example:
  mailauth spf check --ip 192.0.2.10 --sender user@example.com")]
    Spf(crate::spf::cli::SpfArgs),
    /// Ingest DMARC aggregate, failure and TLS reports; list, show, export.
    #[command(after_help = "Examples:
  mailauth reports ingest reports/            files, .gz, .zip, .eml, mbox, Maildir
  mailauth reports ingest --imap imaps://dmarc@mail.example.com/INBOX --watch
  mailauth reports summary --since 30d
  mailauth reports html --out site/")]
    Reports(crate::reports::cli::ReportsArgs),
    /// Report store: apply migrations, copy SQLite into PostgreSQL.
    #[command(after_help = "Examples:
  mailauth store migrate --store postgres://mailauth@db.example/dmarc
  mailauth store copy --from mailauth.db --to postgres://mailauth@db.example/dmarc")]
    Store(crate::reports::store_cli::StoreArgs),
    /// DKIM keys: list, show, generate, rotate, import, export for the signer.
    #[command(after_help = "Examples:
  mailauth keys list
  mailauth keys rotate example.com --prefix mail
  mailauth keys export")]
    Keys(crate::keys::cli::KeysArgs),
    /// Analyse a received message: Received chain, identities, DKIM, SPF
    /// and DMARC evaluated now, and disagreements with recorded results.
    #[command(after_help = "Examples:
  mailauth inspect message.eml
  mailauth inspect - --json < message.eml
  mailauth inspect --failure-report 12")]
    Inspect(crate::inspect::cli::InspectArgs),
    /// The onboarding checklist of one domain, with the next safe step toward p=reject.
    #[command(after_help = "Examples:
  mailauth checklist example.com
  mailauth checklist example.com --format markdown")]
    Checklist(crate::checklist::cli::ChecklistArgs),
    /// Serve the report dashboards over HTTP (read-only, loopback by default).
    #[command(after_help = "Example:
  mailauth serve --listen 127.0.0.1:8080")]
    Serve(crate::reports::serve::ServeArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  mailauth completions bash > /etc/bash_completion.d/mailauth
  mailauth completions zsh > \"${fpath[1]}/_mailauth\"
  mailauth completions fish > ~/.config/fish/completions/mailauth.fish")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command.
    #[command(after_help = "Examples:
  mailauth man | man -l -
  mailauth man --dir /usr/local/share/man/man1")]
    Man {
        /// Write mailauth.1 and a page per subcommand (mailauth-plan.1, …)
        /// into DIR instead of printing mailauth.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The formats of `plan`.
const PLAN_FORMATS: &[OutputFormat] = &[
    OutputFormat::Text,
    OutputFormat::Json,
    OutputFormat::Markdown,
];

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Only these domains (repeatable).
    #[arg(short, long = "domain")]
    pub domains: Vec<String>,
    /// Save the plan to FILE, for `mailauth apply FILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format: text, json (what `--out` saves), or markdown (a
    /// pull-request comment).
    #[arg(long, default_value = "text", value_parser = output::parser(PLAN_FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Show whole record values (the default when stdout is not a terminal);
    /// on a terminal long tokens such as DKIM keys are shortened.
    #[arg(long)]
    pub full: bool,
    /// Report store read for policy hints (an SQLite file only when it
    /// exists; the config's `store:` when no flag or MAILAUTH_STORE says).
    #[command(flatten)]
    pub store: crate::reports::store_cli::StoreOptions,
}

#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// The schema of this command output instead of the config file's
    /// (names: `mailauth schema --list`).
    #[arg(long, value_name = "NAME", conflicts_with = "list")]
    pub output: Option<String>,
    /// List the output names, each with the command that prints it.
    #[arg(long)]
    pub list: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A plan saved by `plan --out`; without it, apply plans first.
    pub plan: Option<PathBuf>,
    /// Only these domains (when planning now).
    #[arg(short, long = "domain")]
    pub domains: Vec<String>,
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Allow plans that delete more owned records than `defaults.max_deletes`.
    #[arg(long)]
    pub force: bool,
    /// Show whole record values (the default when stdout is not a terminal).
    #[arg(long)]
    pub full: bool,
}

#[derive(Args, Debug)]
pub struct EmitArgs {
    /// Only these domains (repeatable).
    #[arg(short, long = "domain")]
    pub domains: Vec<String>,
    /// Also write each domain's MTA-STS policy file to
    /// DIR/<domain>/.well-known/mta-sts.txt (for any web server).
    #[arg(long = "mta-sts", value_name = "DIR")]
    pub mta_sts: Option<PathBuf>,
    /// Output format: a BIND master-file fragment, or the native config of
    /// another DNS tool (docs/providers.md, "Bridges").
    #[arg(long, value_enum, default_value_t = EmitFormat::Zone)]
    pub format: EmitFormat,
    /// With `--format terraform`: whose DNS resources to write.
    #[arg(long, value_enum, required_if_eq("format", "terraform"))]
    pub terraform_provider: Option<EmitTerraform>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitFormat {
    /// BIND master-file syntax.
    Zone,
    /// octoDNS YamlProvider zone file (one domain per run).
    Octodns,
    /// dnscontrol D_EXTEND() records.
    Dnscontrol,
    /// Terraform resources (needs --terraform-provider).
    Terraform,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitTerraform {
    Cloudflare,
    Route53,
    Google,
}

/// How a plan is shown: colour per `--color` (auto: on a terminal unless
/// NO_COLOR is set); whole values with `--full` and whenever stdout is not a
/// terminal (a CI log or a file keeps every octet), long tokens shortened
/// on a terminal.
fn style(choice: ColorChoice, full: bool) -> Style {
    Style {
        color: color_enabled(choice),
        full: full || !std::io::stdout().is_terminal(),
    }
}

/// `--color` resolved: `auto` colours a terminal unless `NO_COLOR` is set
/// (<https://no-color.org>).
pub fn color_enabled(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    }
}

pub fn run(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Command::Plan(args) => plan_cmd(&cli.config, cli.color, args),
        Command::Apply(args) => apply::apply_cmd(&cli.config, cli.color, args),
        Command::Emit(args) => emit_cmd(&cli.config, args),
        Command::Validate(args) => {
            // No config file is fine: the named domains are judged on what
            // they publish.
            let ws = cli.config.exists().then(|| load(&cli.config)).transpose()?;
            Ok(crate::validate::cli::run(
                ws.as_ref(),
                args,
                color_enabled(cli.color),
            )?)
        }
        Command::Import(args) => {
            let ws = cli.config.exists().then(|| load(&cli.config)).transpose()?;
            Ok(crate::import::cli::run(&cli.config, ws.as_ref(), args)?)
        }
        Command::Spf(args) => Ok(crate::spf::cli::run(args)?),
        Command::Reports(args) => Ok(crate::reports::cli::run(args, &cli.config)?),
        Command::Store(args) => {
            crate::reports::store_cli::run(args, &cli.config, &mut std::io::stdout())
                .map_err(Failure::from)
        }
        Command::Keys(args) => {
            let ws = load(&cli.config)?;
            let keys = ws.keys_config().ok_or_else(|| {
                Failure::new(
                    Exit::Usage,
                    format!(
                        "{}: no `keys:` block (keys: {{ dir: keys }})",
                        ws.path.display()
                    ),
                )
            })?;
            let now = crate::clock::clock(None)?;
            Ok(crate::keys::cli::run(args, &keys, &ws.families(), now)?)
        }
        Command::Inspect(args) => {
            let ws = cli.config.exists().then(|| load(&cli.config)).transpose()?;
            Ok(crate::inspect::cli::run(ws.as_ref(), args)?)
        }
        Command::Checklist(args) => {
            let ws = if cli.config.exists() {
                Some(load(&cli.config)?)
            } else {
                None
            };
            Ok(crate::checklist::cli::run(ws.as_ref(), args)?)
        }
        Command::Serve(args) => Ok(crate::reports::serve::run(&cli.config, args)?),
        Command::Schema(args) => schema_cmd(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "mailauth", &mut script);
            // A closed pipe ends quietly (141), see `main`.
            let mut out = crate::reports::cli::PipeStdout::lock();
            out.write_all(&script)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::new(Exit::Error, format!("completions: {e}")))?;
            Ok(Exit::Success.code())
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            let fail = |e: std::io::Error| Failure::new(Exit::Error, format!("man: {e}"));
            match dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).map_err(fail)?;
                    clap_mangen::generate_to(Cli::command(), &dir).map_err(fail)?;
                }
                None => {
                    let mut out = Vec::new();
                    clap_mangen::Man::new(Cli::command())
                        .render(&mut out)
                        .map_err(fail)?;
                    let mut stdout = crate::reports::cli::PipeStdout::lock();
                    stdout
                        .write_all(&out)
                        .and_then(|()| stdout.flush())
                        .map_err(fail)?;
                }
            }
            Ok(Exit::Success.code())
        }
    }
}

/// `schema`: the config file's schema, one output's, or the list of
/// outputs. A closed pipe ends quietly (141), see `main`.
fn schema_cmd(args: SchemaArgs) -> Result<i32, Failure> {
    use crate::output_schema::{OUTPUTS, find};
    let text = if args.list {
        let width = OUTPUTS.iter().map(|o| o.name.len()).max().unwrap_or(0);
        OUTPUTS
            .iter()
            .map(|o| format!("{:<width$}  mailauth {}\n", o.name, o.command))
            .collect()
    } else if let Some(name) = &args.output {
        let Some(out) = find(name) else {
            let names: Vec<&str> = OUTPUTS.iter().map(|o| o.name).collect();
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "schema --output: no output named {:?}; one of: {}",
                    crate::reports::dashboard::text::terminal_safe(name),
                    names.join(", ")
                ),
            ));
        };
        serde_json::to_string_pretty(&out.schema()).expect("a schema serialises") + "\n"
    } else {
        crate::config::schema::json_schema() + "\n"
    };
    let mut out = crate::reports::cli::PipeStdout::lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(Exit::Error, format!("schema: {e}")))?;
    Ok(Exit::Success.code())
}

/// Loads the workspace and prints the config's warnings to stderr, each
/// located like an error.
fn load(path: &Path) -> Result<Workspace, Failure> {
    let ws = Workspace::load(path)?;
    print_config_warnings(&ws);
    Ok(ws)
}

pub fn print_config_warnings(ws: &Workspace) {
    for w in &ws.config.warnings {
        eprintln!("warning: {}:{w}", ws.path.display());
    }
}

fn plan_cmd(config: &Path, color: ColorChoice, args: PlanArgs) -> Result<i32, Failure> {
    let detailed = args.detailed_exitcode;
    let result = (|| {
        let ws = load(config)?;
        let domains = ws
            .select(&args.domains)
            .map_err(|e| Failure::new(Exit::Usage, e))?;
        let now = crate::clock::clock(None)?;
        let mut plan = ws.plan_at(&domains, now);
        add_policy_hints(&ws, &args.store, &mut plan);
        tls_rpt_guard(&ws, &args.store, now, &mut plan);
        let format = OutputFormat::chosen(args.format, args.json);
        let out = match format {
            OutputFormat::Json => {
                // The served records a plan shows are the provider's text.
                crate::output::json_for_terminal(&plan).expect("plan serialises") + "\n"
            }
            OutputFormat::Markdown => plan::render_markdown(&plan),
            _ => plan::render_text(&plan, style(color, args.full)),
        };
        print!("{out}");
        if let Some(path) = &args.out {
            save_plan(&plan, path)?;
            if format == OutputFormat::Text {
                println!(
                    "Saved the plan to {}; apply it with `mailauth apply {}`.",
                    path.display(),
                    path.display()
                );
            }
        }
        let failed = plan.errors().count();
        if failed > 0 {
            return Err(Failure::new(
                Exit::Error,
                format!("{failed} zone(s) could not be planned"),
            ));
        }
        Ok(if detailed && plan.has_changes() {
            Exit::Usage
        } else {
            Exit::Success
        }
        .code())
    })();
    // Terraform's convention: with --detailed-exitcode every error is 1.
    result.map_err(|f| {
        if detailed {
            Failure::new(Exit::Error, f.message)
        } else {
            f
        }
    })
}

/// One line per domain whose report data shows that its DMARC policy can
/// safely advance (`mailauth checklist DOMAIN` explains it in full).
/// The store is opened read-only: a plan writes nothing anywhere. A store
/// that cannot be read gives no hints (and no error: the plan is about
/// DNS); one that needs `mailauth store migrate` says so in a note.
fn add_policy_hints(
    ws: &Workspace,
    opts: &crate::reports::store_cli::StoreOptions,
    plan: &mut Plan,
) {
    let store = match opts.choose_in(Some(ws)).and_then(|c| c.open_read_only()) {
        Ok(Some(store)) => store,
        Ok(None) => return,
        Err(e) if e.is_older_schema() => {
            eprintln!("note: no policy hints: {e}");
            return;
        }
        Err(_) => return,
    };
    let store: &dyn crate::reports::store::ChecklistQueries = store.as_ref();
    let mut seen = std::collections::BTreeSet::new();
    for z in plan.zones.iter_mut() {
        let Ok(name) = crate::record::Name::parse(&z.zone) else {
            continue;
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(hint) = crate::checklist::plan_hint(ws, Some(store), &name) {
            z.notes.push(format!("hint: {hint}"));
        }
    }
}

/// How far back TLS-RPT failures hold up `mode: enforce`.
const TLS_RPT_GUARD_DAYS: i64 = 14;

/// RFC 8460 reports say whether senders already fail to reach the domain
/// over TLS; switching MTA-STS to `enforce` while they do turns those
/// failures into mail that is not delivered (RFC 8461 §5: "senders MUST NOT
/// deliver" to an MX that fails validation). A plan that changes the
/// `_mta-sts` record of an enforcing policy while the report store holds
/// TLS-RPT failures for the domain in the last 14 days needs `--force`,
/// like the MX-coverage guard. No store, or one that cannot be read: no
/// guard (the plan says so).
fn tls_rpt_guard(
    ws: &Workspace,
    opts: &crate::reports::store_cli::StoreOptions,
    now: crate::keys::time::Timestamp,
    plan: &mut Plan,
) {
    let enforcing = |zone: &str| -> bool {
        let Ok(name) = crate::record::Name::parse(zone) else {
            return false;
        };
        ws.domain(&name)
            .and_then(|d| d.mta_sts.as_ref())
            .and_then(|sts| crate::desired::mta_sts_policy(sts).ok())
            .is_some_and(|p| p.mode == crate::record::mtasts::Mode::Enforce)
    };
    let changes_sts = |z: &plan::ZonePlan| {
        let record = format!("_mta-sts.{}", z.zone.trim_end_matches('.'));
        z.changes
            .iter()
            .any(|c| c.rtype == "TXT" && c.name.trim_end_matches('.') == record)
    };
    if !plan
        .zones
        .iter()
        .any(|z| z.error.is_none() && changes_sts(z) && enforcing(&z.zone))
    {
        return;
    }
    let store = match opts.choose_in(Some(ws)).and_then(|c| c.open_read_only()) {
        Ok(Some(store)) => store,
        Ok(None) => return,
        Err(e) => {
            for z in plan.zones.iter_mut().filter(|z| changes_sts(z)) {
                z.notes.push(format!(
                    "mta_sts: TLS-RPT failures not checked before enforcing: {e}"
                ));
            }
            return;
        }
    };
    let now = now.0;
    for z in plan.zones.iter_mut() {
        if z.error.is_some() || !changes_sts(z) || !enforcing(&z.zone) {
            continue;
        }
        let filter = crate::reports::dashq::DashFilter {
            domain: Some(z.zone.trim_end_matches('.').to_string()),
            since: Some(now.saturating_sub(TLS_RPT_GUARD_DAYS * 86_400)),
            until: None,
            source: None,
        };
        let rows = match store.dash_tls(&filter) {
            Ok(rows) => rows,
            Err(e) => {
                z.notes.push(format!(
                    "mta_sts: TLS-RPT failures not checked before enforcing: {e}"
                ));
                continue;
            }
        };
        let failed: i64 = rows.iter().map(|r| r.failed).fold(0, i64::saturating_add);
        if failed == 0 {
            continue;
        }
        let mut types: Vec<String> = rows
            .iter()
            .flat_map(|r| r.failure_types.iter())
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        types.truncate(5);
        let msg = format!(
            "mta_sts mode enforce: TLS-RPT reports show {failed} failed session(s) for {} in the last {TLS_RPT_GUARD_DAYS} days ({}); enforcing would turn them into undelivered mail: fix them first, or apply needs --force",
            z.zone.trim_end_matches('.'),
            types.join(", ")
        );
        z.needs_force = Some(match z.needs_force.take() {
            Some(prev) => format!("{prev}; {msg}"),
            None => msg,
        });
    }
}

fn save_plan(plan: &Plan, path: &Path) -> Result<(), Failure> {
    let json = serde_json::to_string_pretty(plan).expect("plan serialises");
    crate::fsutil::write_atomic(path, json.as_bytes(), 0o644).map_err(|e| {
        Failure::new(
            Exit::Error,
            format!("{}: cannot write the plan: {e}", path.display()),
        )
    })
}

fn emit_cmd(config: &Path, args: EmitArgs) -> Result<i32, Failure> {
    let ws = load(config)?;
    let domains = ws
        .select(&args.domains)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    let bridge = match (args.format, args.terraform_provider) {
        (EmitFormat::Zone, _) => None,
        (EmitFormat::Octodns, _) => Some(crate::bridge::Format::Octodns),
        (EmitFormat::Dnscontrol, _) => Some(crate::bridge::Format::Dnscontrol),
        (EmitFormat::Terraform, p) => Some(crate::bridge::Format::Terraform(match p {
            Some(EmitTerraform::Route53) => crate::bridge::TerraformProvider::Route53,
            Some(EmitTerraform::Google) => crate::bridge::TerraformProvider::Google,
            _ => crate::bridge::TerraformProvider::Cloudflare,
        })),
    };
    let mut failed = 0;
    if let Some(dir) = &args.mta_sts {
        let files = crate::publish::policy_files(&ws, &domains)
            .map_err(|e| Failure::new(Exit::Error, e))?;
        for f in &files {
            let path =
                crate::publish::write_tree(dir, f).map_err(|e| Failure::new(Exit::Error, e))?;
            eprintln!("{}: MTA-STS policy written to {}", f.domain, path.display());
        }
    }
    let mut bridged = Vec::new();
    for d in &domains {
        match ws.desired(d) {
            Ok(want) => {
                let mut sets = want.sets.clone();
                if let Some((spf, ttl)) = &want.spf {
                    sets.insert(
                        0,
                        crate::record::RecordSet::new(
                            d.clone(),
                            crate::record::RType::Txt,
                            *ttl,
                            vec![spf.clone()],
                        ),
                    );
                }
                if bridge.is_some() {
                    bridged.push(crate::bridge::DomainRecords {
                        domain: d.clone(),
                        sets,
                    });
                    continue;
                }
                println!("; {d}: records managed by mailauth");
                if want.spf.is_some() {
                    println!(
                        "; the SPF record shares the apex TXT RRset: when other TXT records are there, the RRset keeps its TTL (one TTL per RRset, RFC 2181 §5.2)"
                    );
                }
                print!("{}", crate::masterfile::render_records(d, &sets));
                println!();
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if let Some(format) = bridge {
        // A bridge file is read whole by another tool: print all or nothing.
        if failed > 0 {
            return Ok(Exit::Error.code());
        }
        let text = crate::bridge::render(format, &bridged)
            .map_err(|e| Failure::new(Exit::Usage, e.to_string()))?;
        print!("{text}");
        return Ok(Exit::Success.code());
    }
    Ok(if failed > 0 {
        Exit::Error
    } else {
        Exit::Success
    }
    .code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command line shown in an `Examples:` section, split into
    /// arguments (up to a shell redirection or pipe).
    fn examples(cmd: &clap::Command, out: &mut Vec<(String, Vec<String>)>) {
        if let Some(help) = cmd.get_after_help() {
            for line in help.to_string().lines() {
                let Some(rest) = line.trim_start().strip_prefix("mailauth ") else {
                    continue;
                };
                let mut argv = vec!["mailauth".to_string()];
                for word in rest.split_whitespace() {
                    if [">", ">>", "<", "|"].contains(&word) {
                        break;
                    }
                    argv.push(word.to_string());
                }
                // Two or more spaces start the comment of an example.
                let shown = rest.split("  ").next().unwrap_or(rest);
                argv.truncate(1 + shown.split_whitespace().count());
                out.push((cmd.get_name().to_string(), argv));
            }
        }
        for sub in cmd.get_subcommands() {
            examples(sub, out);
        }
    }

    #[test]
    fn every_example_in_the_help_parses() {
        let mut all = Vec::new();
        examples(&Cli::command(), &mut all);
        assert!(all.len() >= 25, "{} examples", all.len());
        for (cmd, argv) in all {
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("`{cmd}` help example {argv:?} does not parse:\n{e}");
            }
        }
    }

    #[test]
    fn every_command_has_an_example_and_every_argument_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            let is_group = cmd.has_subcommands();
            if !is_group
                && !cmd
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("Example"))
                && path.split(' ').count() <= 2
            {
                missing.push(format!("{path}: no example"));
            }
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if ["help", "version"].contains(&id) || a.is_hide_set() {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path}: argument `{id}` has no description"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    /// `--color` is global: before or after `validate`, it reaches the
    /// command.
    #[test]
    fn validate_takes_the_global_color_flag() {
        for argv in [
            ["mailauth", "--color", "always", "validate", "example.com"],
            ["mailauth", "validate", "example.com", "--color", "always"],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            assert!(matches!(cli.command, Command::Validate(_)));
            assert_eq!(cli.color, ColorChoice::Always, "{argv:?}");
            assert!(color_enabled(cli.color));
        }
        let cli = Cli::try_parse_from(["mailauth", "validate", "--color", "never"]).unwrap();
        assert!(!color_enabled(cli.color));
    }

    /// The store flags are one group: global under `reports` (they may
    /// follow its subcommand), and the same on every command that takes
    /// them.
    #[test]
    fn the_store_flags_are_one_group_wherever_they_are_taken() {
        let cli = Cli::try_parse_from(["mailauth", "reports", "list", "--db", "x.db"]).unwrap();
        let Command::Reports(r) = cli.command else {
            panic!("not reports")
        };
        assert_eq!(r.store.db.as_deref(), Some(Path::new("x.db")));
        let cli = Cli::try_parse_from(["mailauth", "reports", "--store", "sqlite://y.db", "list"])
            .unwrap();
        let Command::Reports(r) = cli.command else {
            panic!("not reports")
        };
        assert_eq!(r.store.store.as_deref(), Some("sqlite://y.db"));
        assert!(
            Cli::try_parse_from(["mailauth", "reports", "list", "--db", "a", "--store", "b"])
                .is_err()
        );
        let help = |path: &[&str]| {
            let mut cmd = Cli::command();
            for p in path {
                cmd = cmd.find_subcommand(p).unwrap().clone();
            }
            let arg = |id: &str| {
                cmd.get_arguments().find(|a| a.get_id() == id).map(|a| {
                    (
                        a.get_help().map(ToString::to_string),
                        a.get_value_names().map(|v| v.to_vec()),
                    )
                })
            };
            [arg("db"), arg("store"), arg("store_password_file")]
        };
        let reports = help(&["reports"]);
        assert!(reports.iter().all(Option::is_some), "{reports:?}");
        for cmd in [&["plan"][..], &["checklist"], &["inspect"], &["serve"]] {
            assert_eq!(help(cmd), reports, "{cmd:?}");
        }
    }

    #[test]
    fn completions_and_the_manual_are_generated() {
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "mailauth", &mut out);
        let bash = String::from_utf8(out).unwrap();
        assert!(
            bash.contains("mailauth__plan") || bash.contains("plan"),
            "{bash}"
        );
        let dir = tempfile::tempdir().unwrap();
        clap_mangen::generate_to(Cli::command(), dir.path()).unwrap();
        for page in ["mailauth.1", "mailauth-plan.1", "mailauth-reports.1"] {
            let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
            assert!(text.contains(".TH"), "{page}");
        }
    }
}
