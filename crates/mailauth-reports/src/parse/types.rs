//! Typed DMARC aggregate report values (RFC 7489 Appendix C, RFC 9990).
//!
//! Owns the enums and structs a parsed aggregate report is made of and their
//! lenient parsing from reporter text. Leaves XML handling to `aggregate.rs`
//! and storage to `store.rs`.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// Defines a lowercase keyword enum with `parse` (case-insensitive, with
/// aliases) and `as_str`.
macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $name {
            /// Parses a reporter value, ignoring case and surrounding space.
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim();
                $(
                    if s.eq_ignore_ascii_case($text) $(|| s.eq_ignore_ascii_case($alias))* {
                        return Some(Self::$variant);
                    }
                )+
                None
            }

            /// The canonical lowercase spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum! {
    /// RFC 7489 Appendix C:
    /// `<xs:simpleType name="AlignmentType"> r = relaxed, s = strict`
    Alignment { Relaxed => "r" | "relaxed", Strict => "s" | "strict" }
}

keyword_enum! {
    /// RFC 7489 Appendix C: `<xs:simpleType name="DispositionType">`
    /// `none`, `quarantine`, `reject` (the policy requested in `p`, `sp`, `np`).
    PolicyAction { None => "none", Quarantine => "quarantine", Reject => "reject" }
}

keyword_enum! {
    /// RFC 9990 section 3.2 `ActionDispositionType`: what the receiver did;
    /// adds `pass` to the RFC 7489 values.
    Disposition { None => "none", Pass => "pass", Quarantine => "quarantine", Reject => "reject" }
}

keyword_enum! {
    /// RFC 7489 Appendix C: `<xs:simpleType name="DMARCResultType">`
    /// `pass`, `fail`. Some reporters put the underlying SPF/DKIM result
    /// here ("hardfail", "softfail", "none", "neutral", "temperror",
    /// "permerror"); none of them is an aligned pass, which is all this
    /// field says (RFC 7489 section 4.2: "passes ... and ... aligned"), so
    /// they read as `fail`.
    DmarcResult {
        Pass => "pass",
        Fail => "fail" | "hardfail" | "softfail" | "none" | "neutral" | "temperror" | "permerror",
    }
}

keyword_enum! {
    /// RFC 7489 Appendix C: `<xs:simpleType name="DKIMResultType">`
    /// `none pass fail policy neutral temperror permerror`.
    DkimResult {
        None => "none", Pass => "pass", Fail => "fail" | "hardfail", Policy => "policy",
        Neutral => "neutral", TempError => "temperror", PermError => "permerror",
    }
}

keyword_enum! {
    /// RFC 7489 Appendix C: `<xs:simpleType name="SPFResultType">`
    /// `none neutral pass fail softfail temperror permerror`.
    /// "hardfail" is a common non-standard alias of `fail`.
    SpfResult {
        None => "none", Neutral => "neutral", Pass => "pass", Fail => "fail" | "hardfail",
        SoftFail => "softfail", TempError => "temperror", PermError => "permerror",
    }
}

keyword_enum! {
    /// RFC 7489 Appendix C: `<xs:simpleType name="SPFDomainScope"> helo, mfrom`.
    SpfScope { Helo => "helo", Mfrom => "mfrom" }
}

keyword_enum! {
    /// RFC 7489 Appendix C: `<xs:simpleType name="PolicyOverrideType">`
    /// `forwarded sampled_out trusted_forwarder mailing_list local_policy other`;
    /// RFC 9990 adds `policy_test_mode`.
    PolicyOverride {
        Forwarded => "forwarded", SampledOut => "sampled_out",
        TrustedForwarder => "trusted_forwarder", MailingList => "mailing_list",
        LocalPolicy => "local_policy", PolicyTestMode => "policy_test_mode", Other => "other",
    }
}

/// One `<extensions>` child: its local element name and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    pub name: String,
    pub value: String,
}

/// RFC 7489 Appendix C `PolicyPublishedType` (+ RFC 9990 `np`, `testing`,
/// `discovery_method`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyPublished {
    pub domain: String,
    pub adkim: Option<Alignment>,
    pub aspf: Option<Alignment>,
    pub p: Option<PolicyAction>,
    pub sp: Option<PolicyAction>,
    pub np: Option<PolicyAction>,
    pub pct: Option<u8>,
    pub fo: Option<String>,
    /// RFC 9990: `<testing>` y/n.
    pub testing: Option<bool>,
    /// RFC 9990: `psl` or `treewalk`.
    pub discovery_method: Option<String>,
}

/// Everything of an aggregate report that precedes its records: the
/// `<version>`, `<report_metadata>` and `<policy_published>` elements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AggregateHeader {
    /// `<version>` text (`1.0`, `2.0`), absent in draft-era reports.
    pub version: Option<String>,
    /// Default namespace of `<feedback>` (RFC 9990:
    /// `urn:ietf:params:xml:ns:dmarc-2.0`), if any.
    pub namespace: Option<String>,
    pub org_name: String,
    pub email: Option<String>,
    pub extra_contact_info: Option<String>,
    pub report_id: String,
    /// Unix seconds, inclusive.
    pub date_begin: i64,
    pub date_end: i64,
    pub generator: Option<String>,
    /// `<error>` elements of the metadata.
    pub errors: Vec<String>,
    pub policy: PolicyPublished,
    /// What the parser recovered from (kept with the report).
    pub warnings: Vec<String>,
}

/// RFC 7489 Appendix C `PolicyOverrideReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideReason {
    pub kind: PolicyOverride,
    pub comment: Option<String>,
}

/// RFC 7489 Appendix C `DKIMAuthResultType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimAuth {
    pub domain: String,
    pub selector: Option<String>,
    pub result: DkimResult,
    pub human_result: Option<String>,
}

/// RFC 7489 Appendix C `SPFAuthResultType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfAuth {
    pub domain: String,
    pub scope: Option<SpfScope>,
    pub result: SpfResult,
    pub human_result: Option<String>,
}

/// One `<record>`: RFC 7489 Appendix C `RecordType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub source_ip: IpAddr,
    pub count: u64,
    pub disposition: Disposition,
    /// DMARC-aligned DKIM verdict (`policy_evaluated/dkim`).
    pub dkim: Option<DmarcResult>,
    /// DMARC-aligned SPF verdict (`policy_evaluated/spf`).
    pub spf: Option<DmarcResult>,
    pub reasons: Vec<OverrideReason>,
    pub envelope_to: Option<String>,
    pub envelope_from: Option<String>,
    pub header_from: String,
    pub dkim_results: Vec<DkimAuth>,
    pub spf_results: Vec<SpfAuth>,
    pub extensions: Vec<Extension>,
}
