//! SPF evaluation (RFC 7208): `check_host()` for a client address and
//! identity, the entry point the `spf check` command calls, and `analyze()`,
//! a one-pass walk of a domain's include/redirect tree for validation, and
//! flattening (`flatten`): includes replaced by the networks they pass,
//! packed into chained records, with upstream drift detection.
//!
//! This module owns evaluation only: the record type and its parser are in
//! `record::spf`, and DNS comes through the [`SpfDns`] trait (an in-memory
//! [`MemoryDns`] is here; resolvers that talk to servers live elsewhere).

mod analyze;
mod dns;
mod eval;
pub mod flatten;
mod macros;

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

pub use analyze::{SpfNode, SpfTree, analyze};
pub use dns::{DnsError, MemRecord, MemoryDns, MxRecord, QType, SpfDns, reverse_name};
pub use eval::EvalError;

/// RFC 7208 §2.6: the results of `check_host()`.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The lower-case name used in Received-SPF and Authentication-Results.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of one evaluation. The defaults are the RFC's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// `%{r}`: "domain name of host performing the check" (§7.3); RFC 7208
    /// says to use "unknown" when it is not a fully qualified name.
    pub receiver: String,
    /// `%{t}` in seconds since the epoch; `None` reads the system clock.
    pub timestamp: Option<u64>,
    /// §4.6.4: at most 10 DNS-querying terms.
    pub max_lookups: usize,
    /// §4.6.4: at most 2 void lookups (a SHOULD, configurable).
    pub max_void_lookups: usize,
    /// §4.6.4: at most 10 names per `mx` and per `ptr`.
    pub max_names_per_lookup: usize,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            receiver: "unknown".to_string(),
            timestamp: None,
            max_lookups: 10,
            max_void_lookups: 2,
            max_names_per_lookup: 10,
        }
    }
}

/// The term that decided the result and the domain whose record holds it.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Matched {
    pub domain: String,
    /// The directive as rendered canonically, e.g. `include:_spf.example.com`.
    pub term: String,
}

/// What `check_host()` found.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpfOutcome {
    pub result: SpfResult,
    /// The explanation from `exp=` for a "fail" (§6.2), when the record has
    /// one and it could be fetched and expanded. `None` means the receiver's
    /// default explanation applies, see [`SpfOutcome::explanation_or_default`].
    pub explanation: Option<String>,
    pub matched: Option<Matched>,
    /// DNS-querying terms evaluated (limit 10, §4.6.4).
    pub lookups: usize,
    /// Lookups that found nothing (limit 2, §4.6.4).
    pub void_lookups: usize,
    /// Why the result is "temperror" or "permerror".
    pub problem: Option<String>,
    /// What was evaluated, one line per step, indented by include depth.
    pub trace: Vec<String>,
}

/// The explanation used when a failing record gives none.
pub const DEFAULT_EXPLANATION: &str = "the sender's SPF policy does not authorize this host";

impl SpfOutcome {
    pub fn explanation_or_default(&self) -> &str {
        self.explanation.as_deref().unwrap_or(DEFAULT_EXPLANATION)
    }
}

impl fmt::Display for SpfOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.result)?;
        if let Some(m) = &self.matched {
            write!(f, " ({} in {})", m.term, m.domain)?;
        }
        writeln!(f)?;
        if let Some(p) = &self.problem {
            writeln!(f, "problem: {p}")?;
        }
        if self.result == SpfResult::Fail {
            writeln!(f, "explanation: {}", self.explanation_or_default())?;
        }
        writeln!(
            f,
            "dns lookups: {}/10, void lookups: {}/2",
            self.lookups, self.void_lookups
        )?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// RFC 7208 §4: `check_host(<ip>, <domain>, <sender>)`. `sender` is the
/// MAIL FROM address (or `postmaster@<helo>` for a HELO check, §2.3); `helo`
/// is the HELO/EHLO name for the `%{h}` macro.
pub fn check_host(
    dns: &dyn SpfDns,
    ip: IpAddr,
    domain: &str,
    sender: &str,
    helo: &str,
    opts: &CheckOptions,
) -> SpfOutcome {
    let mut ctx = eval::Ctx::new(dns, opts, ip, sender, helo);
    let (result, explanation, matched, problem) = match ctx.check_host(domain) {
        Ok(e) => {
            let explanation = match (&e.exp, e.result) {
                (Some((d, spec)), SpfResult::Fail) => ctx.explanation(d, spec),
                _ => None,
            };
            (e.result, explanation, e.matched, None)
        }
        Err(EvalError::Temp { detail }) => (SpfResult::TempError, None, None, Some(detail)),
        Err(EvalError::Perm { detail }) => (SpfResult::PermError, None, None, Some(detail)),
    };
    if let Some(p) = &problem {
        ctx.trace.push(format!("{result}: {p}"));
    }
    SpfOutcome {
        result,
        explanation,
        matched,
        lookups: ctx.lookups,
        void_lookups: ctx.voids,
        problem,
        trace: ctx.trace,
    }
}

/// The MAIL FROM check (RFC 7208 §2.4), as `mailauth spf check --ip IP
/// --sender ADDR [--helo HOST]` runs it: the domain is the part of `sender`
/// after the last `@`; an empty sender (`MAIL FROM:<>`) checks
/// `postmaster@<helo>` instead (§2.4 "When the reverse-path is null, this
/// document defines the "MAIL FROM" identity to be the mailbox composed of
/// the local-part "postmaster" and the "HELO" identity").
pub fn check_sender(
    dns: &dyn SpfDns,
    ip: IpAddr,
    sender: &str,
    helo: Option<&str>,
    opts: &CheckOptions,
) -> SpfOutcome {
    let sender = sender.trim_start_matches('<').trim_end_matches('>');
    if sender.is_empty() {
        return match helo {
            Some(h) => check_helo(dns, ip, h, opts),
            None => SpfOutcome {
                result: SpfResult::None,
                explanation: None,
                matched: None,
                lookups: 0,
                void_lookups: 0,
                problem: Some("empty sender and no HELO name: nothing to check".into()),
                trace: Vec::new(),
            },
        };
    }
    let domain = sender.rsplit_once('@').map_or(sender, |(_, d)| d);
    check_host(dns, ip, domain, sender, helo.unwrap_or(""), opts)
}

/// The HELO check (RFC 7208 §2.3): `check_host(ip, helo, postmaster@helo)`.
pub fn check_helo(dns: &dyn SpfDns, ip: IpAddr, helo: &str, opts: &CheckOptions) -> SpfOutcome {
    check_host(dns, ip, helo, &format!("postmaster@{helo}"), helo, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn dns() -> MemoryDns {
        let mut d = MemoryDns::new();
        d.add_txt(
            "example.com",
            "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all exp=why.%{d}",
        )
        .add_txt("_spf.example.net", "v=spf1 a:mail.example.net ~all")
        .insert(
            "mail.example.net",
            MemRecord::A(Ipv4Addr::new(198, 51, 100, 7)),
        )
        .add_txt(
            "why.example.com",
            "%{i} may not send for %{d} (at %{t}, seen by %{r})",
        );
        d
    }

    fn opts() -> CheckOptions {
        CheckOptions {
            receiver: "mx.example.org".into(),
            timestamp: Some(1_700_000_000),
            ..CheckOptions::default()
        }
    }

    #[test]
    fn pass_fail_and_explanation() {
        let d = dns();
        let o = check_sender(
            &d,
            "198.51.100.7".parse().unwrap(),
            "a@example.com",
            None,
            &opts(),
        );
        assert_eq!(o.result, SpfResult::Pass, "{o}");
        assert_eq!(o.matched.as_ref().unwrap().term, "include:_spf.example.net");
        assert_eq!(o.lookups, 2);
        let o = check_sender(
            &d,
            "203.0.113.9".parse().unwrap(),
            "a@example.com",
            None,
            &opts(),
        );
        assert_eq!(o.result, SpfResult::Fail, "{o}");
        assert_eq!(
            o.explanation.as_deref(),
            Some(
                "203.0.113.9 may not send for example.com (at 1700000000, seen by mx.example.org)"
            )
        );
        assert_eq!(o.matched.unwrap().term, "-all");
    }

    #[test]
    fn helo_and_null_sender() {
        let mut d = dns();
        d.add_txt("helo.example.com", "v=spf1 a -all").insert(
            "helo.example.com",
            MemRecord::A(Ipv4Addr::new(192, 0, 2, 99)),
        );
        let ip: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(
            check_sender(&d, ip, "", Some("helo.example.com"), &opts()).result,
            SpfResult::Pass
        );
        assert_eq!(
            check_helo(
                &d,
                "192.0.2.98".parse().unwrap(),
                "helo.example.com",
                &opts()
            )
            .result,
            SpfResult::Fail
        );
        assert_eq!(
            check_sender(&d, ip, "<>", None, &opts()).result,
            SpfResult::None
        );
    }

    #[test]
    fn temperror_and_lookup_counts() {
        let mut d = MemoryDns::new();
        d.add_txt(
            "example.com",
            "v=spf1 a:x.example.com a:y.example.com exists:z.example.com -all",
        )
        .timeout("z.example.com");
        let o = check_host(
            &d,
            "192.0.2.1".parse().unwrap(),
            "example.com",
            "a@example.com",
            "h",
            &opts(),
        );
        assert_eq!(o.result, SpfResult::TempError, "{o}");
        assert_eq!(o.lookups, 3);
        assert_eq!(o.void_lookups, 2);
        assert!(o.problem.unwrap().contains("z.example.com"));
    }
}
