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
use crate::reports::cli::ReportsError;
use crate::reports::store_cli::StoreCliError;

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

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::new(Exit::Error, format!("{e:#}"))
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
    fn a_bad_clock_is_an_error_naming_mailauth_now() {
        let e = crate::clock::clock(Some("yesterday-ish")).unwrap_err();
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert!(f.message.starts_with("MAILAUTH_NOW: "), "{f:?}");
    }
}
