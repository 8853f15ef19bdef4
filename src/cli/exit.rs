//! Exit codes: the README's table as [`Exit`], and the one place where each
//! error a command can end with gets its code ([`Failure`] and its `From`
//! conversions). Leaves the errors themselves to the libraries, and the
//! printing of the message to `main`.
//!
//! The typed errors are matched variant by variant, with no catch-all arm,
//! so that a new variant does not compile until it is given its code here.
//! The report commands still end with an `anyhow` chain; [`store_failure`]
//! reads the typed errors out of it.

use crate::apply::ApplyError;
use crate::checklist::ChecklistError;
use crate::config::ConfigError;
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

/// The report commands' `anyhow` chains: an invalid config (read for its
/// `store:`) exits 2, like every config error, and so do bad arguments: a
/// report id that is not one, `store copy` the wrong way round; anything
/// else 1.
pub fn store_failure(e: anyhow::Error) -> Failure {
    let usage = e.chain().any(|c| {
        c.downcast_ref::<ConfigError>().is_some()
            || c.downcast_ref::<crate::reports::store::ReportIdError>()
                .is_some()
            || matches!(
                c.downcast_ref::<StoreCliError>(),
                Some(StoreCliError::Config(_) | StoreCliError::CopyDirection { .. })
            )
    });
    Failure::new(
        if usage { Exit::Usage } else { Exit::Error },
        format!("{e:#}"),
    )
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
        let e = anyhow::Error::new(StoreCliError::CopyDirection {
            from: "a".into(),
            to: "b".into(),
        })
        .context("store copy");
        assert_eq!(store_failure(e).exit, Exit::Usage);
        let e = anyhow::anyhow!("connection refused").context("store");
        assert_eq!(store_failure(e).exit, Exit::Error);
    }

    #[test]
    fn a_bad_clock_is_an_error_naming_mailauth_now() {
        let e = crate::clock::clock(Some("yesterday-ish")).unwrap_err();
        let f = Failure::from(e);
        assert_eq!(f.exit, Exit::Error);
        assert!(f.message.starts_with("MAILAUTH_NOW: "), "{f:?}");
    }
}
