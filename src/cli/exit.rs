//! Exit codes: the README's table as [`Exit`], and the one place where each
//! error a command can end with gets its code ([`Failure`] and its `From`
//! conversions). Leaves the errors themselves to the libraries, and the
//! printing of the message to `main`.
//!
//! The typed errors are matched variant by variant, with no catch-all arm,
//! so that a new variant does not compile until it is given its code here.

use crate::apply::ApplyError;
use crate::checklist::ChecklistError;
use crate::config::ConfigError;
use crate::http::error_chain;
use crate::import::cli::ImportCliError;
use crate::inspect::cli::InspectCliError;
use crate::keys::cli::KeysCliError;
use crate::reports::cli::ReportsError;
use crate::reports::store_cli::StoreCliError;
use crate::spf::cli::SpfCliError;
use crate::validate::ResolverFlagsError;
use crate::validate::cli::ValidateCliError;

/// The README's table: the same codes for every command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: success: nothing found; with `plan --detailed-exitcode`, no
    /// changes.
    Success,
    /// 1: an error (a zone could not be planned or applied, a stale plan,
    /// a store or network failure, …).
    Error,
    /// 2: a usage error or an invalid config; with `plan
    /// --detailed-exitcode`, changes are pending.
    Usage,
    /// 3: findings (validate, inspect, spf check, reports alerts).
    Findings,
    /// 141: standard output was closed before the command finished (128 +
    /// SIGPIPE, as a shell reports a Unix tool killed by it).
    ClosedStdout,
}

impl Exit {
    /// The process exit status.
    pub const fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Findings => 3,
            Exit::ClosedStdout => 141,
        }
    }
}

/// A command's error: its message for standard error, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub fn code(&self) -> i32 {
        self.exit.code()
    }
}

/// Every problem of an invalid config is a usage error.
impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure::new(Exit::Usage, e.to_string())
    }
}

/// Apply's errors are all 1: each means the apply could not be done as
/// planned (a stale plan, moved key steps, a provider or keystore that
/// failed), not that the command line was wrong.
impl From<ApplyError> for Failure {
    fn from(e: ApplyError) -> Failure {
        let exit = match &e {
            ApplyError::Fetch { .. }
            | ApplyError::Stale { .. }
            | ApplyError::KeysMoved { .. }
            | ApplyError::KeyPlan(_)
            | ApplyError::Observer(_)
            | ApplyError::NoKeysBlock
            | ApplyError::Keystore { .. }
            | ApplyError::Key(_)
            | ApplyError::Renamed { .. }
            | ApplyError::Export(_)
            | ApplyError::BadPlan(_)
            | ApplyError::Desired(_)
            | ApplyError::NoRecord { .. }
            | ApplyError::Policy(_)
            | ApplyError::Publish { .. } => Exit::Error,
        };
        Failure::new(exit, e.to_string())
    }
}

/// A store that cannot be read (or needs `store migrate`) is not a usage
/// error: 1, like the other store failures; the rest is what the user gave
/// (a domain, the config, the clock): 2.
impl From<ChecklistError> for Failure {
    fn from(e: ChecklistError) -> Failure {
        let exit = match &e {
            ChecklistError::Store { .. } => Exit::Error,
            ChecklistError::ConfigRead { .. }
            | ChecklistError::Domain { .. }
            | ChecklistError::Desired { .. }
            | ChecklistError::Resolver(_)
            | ChecklistError::Settings { .. } => Exit::Usage,
        };
        Failure::new(exit, e.to_string())
    }
}

/// A `MAILAUTH_NOW` that is not a time: an error, never 1970.
impl From<crate::keys::time::TimeError> for Failure {
    fn from(e: crate::keys::time::TimeError) -> Failure {
        Failure::new(Exit::Error, format!("MAILAUTH_NOW: {e}"))
    }
}

/// The report commands and `serve`: an invalid config (read for its
/// `store:` or `alerts:`) exits 2, like every config error, and so do bad
/// arguments (a report id that is not one); everything else is 1.
impl From<ReportsError> for Failure {
    fn from(e: ReportsError) -> Failure {
        let exit = match &e {
            ReportsError::ReportId(_) | ReportsError::Config(_) => Exit::Usage,
            ReportsError::StoreCli(s) => store_cli_exit(s),
            ReportsError::Invalid(_)
            | ReportsError::NoStore(_)
            | ReportsError::Store(_)
            | ReportsError::Ingest(_)
            | ReportsError::Dashboard(_)
            | ReportsError::Alerts(_)
            | ReportsError::AsnDb(_)
            | ReportsError::Serve(_)
            | ReportsError::Clock(_)
            | ReportsError::File { .. }
            | ReportsError::Output(_)
            | ReportsError::Json(_)
            | ReportsError::Imap(_) => Exit::Error,
        };
        Failure::new(exit, e.chain())
    }
}

/// `store` (migrate, copy): `store copy` the wrong way round and an
/// invalid config are usage errors, the rest 1.
impl From<StoreCliError> for Failure {
    fn from(e: StoreCliError) -> Failure {
        let exit = store_cli_exit(&e);
        Failure::new(exit, ReportsError::StoreCli(e).chain())
    }
}

/// `--nameserver` and `--timeout` (of `validate` and `import`): a flag
/// that is not one is a usage error; a resolver that cannot be built, 1.
fn resolver_flags_exit(e: &ResolverFlagsError) -> Exit {
    match e {
        ResolverFlagsError::Timeout | ResolverFlagsError::Nameserver(_) => Exit::Usage,
        ResolverFlagsError::Resolver(_) => Exit::Error,
    }
}

/// `validate`: a bad argument, a name that is not a domain among them, is
/// a usage error (as in `import` and `checklist`); the resolver and the CA
/// files, 1. No config file and no domain named stays 1, as it has always
/// been.
impl From<ValidateCliError> for Failure {
    fn from(e: ValidateCliError) -> Failure {
        let exit = match &e {
            ValidateCliError::Resolver(r) => resolver_flags_exit(r),
            ValidateCliError::Selector { .. }
            | ValidateCliError::Authority(_)
            | ValidateCliError::PolicyTimeout
            | ValidateCliError::Selection(_)
            | ValidateCliError::ConnectTo(_) => Exit::Usage,
            ValidateCliError::NoDomain | ValidateCliError::Fetcher(_) => Exit::Error,
        };
        Failure::new(exit, error_chain(&e))
    }
}

/// `import`: a bad argument (a name that is not a domain, `--zone-file`
/// with several, a `--provider` the config does not have, a bad
/// `--selector`, `--nameserver`, `--timeout` or `--connect-to`) is a usage
/// error; the sources it reads and the config file it writes, 1.
impl From<ImportCliError> for Failure {
    fn from(e: ImportCliError) -> Failure {
        let exit = match &e {
            ImportCliError::Resolver(r) => resolver_flags_exit(r),
            ImportCliError::Domain(_)
            | ImportCliError::ZoneFileDomains
            | ImportCliError::NoConfig { .. }
            | ImportCliError::NoDefaultProvider { .. }
            | ImportCliError::NoSuchProvider { .. }
            | ImportCliError::Selector { .. }
            | ImportCliError::ConnectTo(_) => Exit::Usage,
            ImportCliError::ZoneFileRead { .. }
            | ImportCliError::ZoneFile { .. }
            | ImportCliError::Provider(_)
            | ImportCliError::Fetcher(_)
            | ImportCliError::ReadBack { .. }
            | ImportCliError::Json(_)
            | ImportCliError::ConfigRead { .. }
            | ImportCliError::Merge { .. }
            | ImportCliError::MergedInvalid(_)
            | ImportCliError::ConfigWrite { .. } => Exit::Error,
        };
        Failure::new(exit, error_chain(&e))
    }
}

/// `spf check`: a `--nameserver` that is not one is a usage error; the
/// resolver and the output, 1.
impl From<SpfCliError> for Failure {
    fn from(e: SpfCliError) -> Failure {
        let exit = match &e {
            SpfCliError::Nameserver(_) => Exit::Usage,
            SpfCliError::Resolver(_) | SpfCliError::Json(_) => Exit::Error,
        };
        Failure::new(exit, error_chain(&e))
    }
}

/// `keys`: an invalid `keys:` block or family, and arguments that name no
/// family or several (a domain, `--prefix`, `--domain`), are usage errors,
/// like a missing `keys.export`; a selector no key has, the keystore, the
/// key file, the export and the output, 1.
impl From<KeysCliError> for Failure {
    fn from(e: KeysCliError) -> Failure {
        let exit = match &e {
            KeysCliError::Config(_)
            | KeysCliError::NoSuchFamily { .. }
            | KeysCliError::NoFamily { .. }
            | KeysCliError::SeveralFamilies { .. }
            | KeysCliError::SeveralKeys { .. }
            | KeysCliError::NoExport => Exit::Usage,
            KeysCliError::NoKey { .. }
            | KeysCliError::NothingToExport { .. }
            | KeysCliError::KeyFile { .. }
            | KeysCliError::Store(_)
            | KeysCliError::Lifecycle(_)
            | KeysCliError::Export(_)
            | KeysCliError::Output(_)
            | KeysCliError::Json(_) => Exit::Error,
        };
        Failure::new(exit, error_chain(&e))
    }
}

/// `inspect`: a bad `--now`, no message, and store options the way
/// `store_cli_exit` judges them are usage errors; the message, the clock,
/// the store and the report in it, DNS and the output, 1.
impl From<InspectCliError> for Failure {
    fn from(e: InspectCliError) -> Failure {
        let exit = match &e {
            InspectCliError::StoreCli(s) => store_cli_exit(s),
            InspectCliError::Now { .. } | InspectCliError::NoMessage => Exit::Usage,
            InspectCliError::Clock(_)
            | InspectCliError::Message(_)
            | InspectCliError::NoStore(_)
            | InspectCliError::Store(_)
            | InspectCliError::NoReport { .. }
            | InspectCliError::WrongKind { .. }
            | InspectCliError::NoHeaders { .. }
            | InspectCliError::SourceIp { .. }
            | InspectCliError::Dns(_)
            | InspectCliError::Json(_)
            | InspectCliError::Output(_) => Exit::Error,
        };
        Failure::new(exit, error_chain(&e))
    }
}

fn store_cli_exit(e: &StoreCliError) -> Exit {
    match e {
        StoreCliError::Config(_) | StoreCliError::CopyDirection { .. } => Exit::Usage,
        StoreCliError::Scheme { .. }
        | StoreCliError::PasswordFile { .. }
        | StoreCliError::NoPostgres
        | StoreCliError::Store(_)
        | StoreCliError::Output { .. } => Exit::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_readmes_table() {
        let readme = include_str!("../../README.md");
        let table = &readme[readme.find("## Exit codes").unwrap()..];
        for exit in [
            Exit::Success,
            Exit::Error,
            Exit::Usage,
            Exit::Findings,
            Exit::ClosedStdout,
        ] {
            let row = format!("\n| {} | ", exit.code());
            assert!(table.contains(&row), "{exit:?}: no row {row:?}");
        }
    }

    #[test]
    fn a_stale_plan_and_a_bad_credential_are_told_apart_and_both_exit_1() {
        let stale = ApplyError::Stale {
            zone: "example.com".into(),
            provider: "zonefile:zones".into(),
        };
        let auth = ApplyError::Fetch {
            zone: "example.com".into(),
            provider: "powerdns:api".into(),
            source: Box::new(crate::provider::ProviderError::Auth {
                provider: "powerdns:api".into(),
                zone: "example.com".into(),
                detail: "401".into(),
            }),
        };
        assert!(stale.plan_again());
        assert!(!auth.plan_again());
        assert_eq!(Failure::from(stale).code(), 1);
        let f = Failure::from(auth);
        assert_eq!(f.code(), 1);
        assert!(f.message.contains("credentials rejected: 401"), "{f:?}");
    }

    #[test]
    fn a_config_error_or_a_bad_report_id_is_a_usage_error() {
        let e = StoreCliError::CopyDirection {
            from: "a".into(),
            to: "b".into(),
        };
        assert_eq!(Failure::from(e).exit, Exit::Usage);
        let e = ReportsError::StoreCli(StoreCliError::CopyDirection {
            from: "a".into(),
            to: "b".into(),
        });
        assert_eq!(Failure::from(e).exit, Exit::Usage);
        let e = crate::reports::store::parse_report_id("not-an-id").unwrap_err();
        assert_eq!(Failure::from(ReportsError::from(e)).exit, Exit::Usage);
        let e = ReportsError::NoStore("sqlite://x.db".into());
        assert_eq!(Failure::from(e).exit, Exit::Error);
    }

    #[test]
    fn a_reports_error_reads_as_its_chain_of_causes() {
        let e = ReportsError::File {
            what: "creating out/domains".into(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(f.message, "creating out/domains: denied");
    }

    #[test]
    fn validate_exits_2_on_a_name_that_is_not_a_domain_and_1_with_nothing_to_check() {
        let f = Failure::from(ValidateCliError::Selection(
            crate::validate::ValidateError::Selection {
                message: "name `a..b` has an empty label".into(),
            },
        ));
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(f.message, "name `a..b` has an empty label");
        let f = Failure::from(ValidateCliError::NoDomain);
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(
            f.message,
            "no config file and no domain named: name the domains to check (`mailauth validate example.com`)"
        );
    }

    #[test]
    fn validate_exits_2_on_a_bad_flag_and_1_when_the_resolver_fails() {
        let f = Failure::from(ValidateCliError::Selector { value: "".into() });
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(
            f.message,
            r#"--selector "": not a valid selector (DNS labels)"#
        );
        let e = crate::validate::resolver_from_flags(&[], 0.0).unwrap_err();
        let f = Failure::from(ValidateCliError::from(e));
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(f.message, "--timeout must be a positive number of seconds");
        let e = crate::validate::resolver_from_flags(&["not-an-ip".into()], 2.0).unwrap_err();
        let f = Failure::from(ValidateCliError::from(e));
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(
            f.message,
            "`--nameserver not-an-ip`: expected IP or IP:PORT"
        );
        let e = crate::validate::parse_authority("ns1.example.com").unwrap_err();
        assert_eq!(
            Failure::from(ValidateCliError::Authority(e)).exit,
            Exit::Usage
        );
        assert_eq!(
            Failure::from(ValidateCliError::PolicyTimeout).exit,
            Exit::Usage
        );
        let e = "example.com:443".parse::<crate::validate::mtasts::ConnectTo>();
        let f = Failure::from(ValidateCliError::ConnectTo(e.unwrap_err()));
        assert_eq!(f.exit, Exit::Usage);
        let e = ValidateCliError::Resolver(ResolverFlagsError::Resolver(
            crate::dns::ResolveError::Setup {
                detail: "no nameservers".into(),
            },
        ));
        assert_eq!(Failure::from(e).exit, Exit::Error);
        let e = ValidateCliError::Fetcher(crate::validate::mtasts::PolicyError::CaFile {
            path: "ca.pem".into(),
            detail: "No such file or directory".into(),
        });
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(f.message, "ca.pem: No such file or directory");
    }

    #[test]
    fn import_exits_2_on_a_bad_argument_and_1_on_a_file_it_cannot_read() {
        let f = Failure::from(ImportCliError::ZoneFileDomains);
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(
            f.message,
            "--zone-file reads one zone: name exactly one domain"
        );
        let e = ImportCliError::NoSuchProvider {
            config: "mailauth.yaml".into(),
            name: "primry".into(),
        };
        assert_eq!(Failure::from(e).exit, Exit::Usage);
        let e = crate::validate::resolver_from_flags(&[], f64::NAN).unwrap_err();
        assert_eq!(Failure::from(ImportCliError::from(e)).exit, Exit::Usage);
        // The path, then the cause, as the message always read.
        let e = ImportCliError::ZoneFileRead {
            path: "zones/missing.zone".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        };
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(f.message, "zones/missing.zone: not found");
        let origin = crate::record::Name::parse("example.com").unwrap();
        let Err(error) = crate::masterfile::parse("@ IN TXT\n", &origin) else {
            panic!("`@ IN TXT` without data read as a record");
        };
        let line = error.line;
        let f = Failure::from(ImportCliError::ZoneFile {
            path: "example.com.zone".into(),
            error,
        });
        assert_eq!(f.exit, Exit::Error);
        assert!(
            f.message.starts_with(&format!("example.com.zone:{line}: ")),
            "{f:?}"
        );
        let e = ImportCliError::Merge {
            path: "mailauth.yaml".into(),
            source: crate::import::merge::MergeError::NoDomains,
        };
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(
            f.message,
            "mailauth.yaml: no top-level `domains:` mapping in block style to add to"
        );
        let e = ImportCliError::Provider(crate::provider::ProviderError::Auth {
            provider: "powerdns".into(),
            zone: String::new(),
            detail: "no API key".into(),
        });
        assert_eq!(Failure::from(e).exit, Exit::Error);
        // A provider error that names its cause says it once.
        let e = crate::provider::ProviderError::Io {
            provider: "rfc2136".into(),
            zone: String::new(),
            path: "tsig.key".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        };
        let f = Failure::from(ImportCliError::Provider(e));
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(f.message, "rfc2136: zone : tsig.key: not found");
    }

    #[test]
    fn spf_exits_2_on_a_bad_nameserver_and_1_when_the_resolver_fails() {
        let e = crate::dns::parse_nameserver("nope").unwrap_err();
        let f = Failure::from(SpfCliError::from(e));
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(f.message, "`--nameserver nope`: expected IP or IP:PORT");
        let e = SpfCliError::Resolver(crate::dns::ResolveError::Setup {
            detail: "no nameservers".into(),
        });
        assert_eq!(Failure::from(e).exit, Exit::Error);
    }

    #[test]
    fn keys_exits_2_on_a_family_it_cannot_choose_and_1_on_a_key_it_cannot_find() {
        let e = KeysCliError::SeveralFamilies {
            domain: "example.com".into(),
            prefixes: vec!["mail".into(), "ed".into()],
        };
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(
            f.message,
            "domain example.com has several dkim selector families (mail, ed); choose one with --prefix"
        );
        let e = crate::keys::config::ConfigError::Keys {
            field: "dir",
            reason: "must not be empty".into(),
        };
        let f = Failure::from(KeysCliError::from(e));
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(f.message, "keys: dir: must not be empty");
        assert_eq!(Failure::from(KeysCliError::NoExport).exit, Exit::Usage);
        let f = Failure::from(KeysCliError::NoKey {
            selector: "nope".into(),
        });
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(f.message, "no key with selector nope");
        let e = KeysCliError::KeyFile {
            path: "legacy.pem".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        };
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(f.message, "reading legacy.pem: not found");
    }

    #[test]
    fn inspect_exits_2_on_a_bad_now_and_1_on_a_message_or_report_it_cannot_read() {
        let f = Failure::from(InspectCliError::Now {
            value: "soon".into(),
        });
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(
            f.message,
            "--now `soon`: expected RFC 3339 UTC or unix seconds"
        );
        assert_eq!(Failure::from(InspectCliError::NoMessage).exit, Exit::Usage);
        let f = Failure::from(InspectCliError::NoReport { id: 999 });
        assert_eq!(f.exit, Exit::Error);
        let e = crate::inspect::read_message("/nonexistent/message.eml", false).unwrap_err();
        assert_eq!(Failure::from(InspectCliError::from(e)).exit, Exit::Error);
        let source = "10.0.0".parse::<std::net::IpAddr>().unwrap_err();
        let f = Failure::from(InspectCliError::SourceIp {
            id: 7,
            ip: "10.0.0".into(),
            source,
        });
        assert_eq!(f.exit, Exit::Error);
        assert_eq!(
            f.message,
            "failure report #7: Source-IP `10.0.0` is not an IP address: invalid IP address syntax"
        );
        let e = crate::clock::clock(Some("yesterday-ish")).unwrap_err();
        let f = Failure::from(InspectCliError::Clock(e));
        assert_eq!(f.exit, Exit::Error);
        assert!(f.message.starts_with("MAILAUTH_NOW: "), "{f:?}");
        let e = InspectCliError::StoreCli(StoreCliError::CopyDirection {
            from: "a".into(),
            to: "b".into(),
        });
        assert_eq!(Failure::from(e).exit, Exit::Usage);
    }

    #[test]
    fn a_bad_clock_is_an_error_naming_mailauth_now() {
        let e = crate::clock::clock(Some("yesterday-ish")).unwrap_err();
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert!(f.message.starts_with("MAILAUTH_NOW: "), "{f:?}");
    }
}
