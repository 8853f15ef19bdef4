//! The element names of the aggregate report grammar (RFC 7489 Appendix C,
//! RFC 9990 Appendix A) as a closed set, matched on the local name so any
//! namespace prefix reads the same.

/// Element names the grammar knows; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    Feedback,
    Version,
    ReportMetadata,
    OrgName,
    Email,
    ExtraContactInfo,
    ReportId,
    DateRange,
    Begin,
    End,
    Error,
    Generator,
    PolicyPublished,
    Domain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    Record,
    Row,
    SourceIp,
    Count,
    PolicyEvaluated,
    Disposition,
    Dkim,
    Spf,
    Reason,
    Type,
    Comment,
    Identifiers,
    EnvelopeTo,
    EnvelopeFrom,
    HeaderFrom,
    AuthResults,
    Selector,
    Result,
    HumanResult,
    Scope,
    Extensions,
    Other,
}

/// Number of [`Tag`]s (`Other` is the last): `tag as usize` indexes an
/// array of this length.
pub(super) const COUNT: usize = Tag::Other as usize + 1;

pub(super) fn tag(local: &str) -> Tag {
    match local {
        "feedback" => Tag::Feedback,
        "version" => Tag::Version,
        "report_metadata" => Tag::ReportMetadata,
        "org_name" => Tag::OrgName,
        "email" => Tag::Email,
        "extra_contact_info" => Tag::ExtraContactInfo,
        "report_id" => Tag::ReportId,
        "date_range" => Tag::DateRange,
        "begin" => Tag::Begin,
        "end" => Tag::End,
        "error" => Tag::Error,
        "generator" => Tag::Generator,
        "policy_published" => Tag::PolicyPublished,
        "domain" => Tag::Domain,
        "adkim" => Tag::Adkim,
        "aspf" => Tag::Aspf,
        "p" => Tag::P,
        "sp" => Tag::Sp,
        "np" => Tag::Np,
        "pct" => Tag::Pct,
        "fo" => Tag::Fo,
        "testing" => Tag::Testing,
        "discovery_method" => Tag::DiscoveryMethod,
        "record" => Tag::Record,
        "row" => Tag::Row,
        "source_ip" => Tag::SourceIp,
        "count" => Tag::Count,
        "policy_evaluated" => Tag::PolicyEvaluated,
        "disposition" => Tag::Disposition,
        "dkim" => Tag::Dkim,
        "spf" => Tag::Spf,
        "reason" => Tag::Reason,
        "type" => Tag::Type,
        "comment" => Tag::Comment,
        "identifiers" => Tag::Identifiers,
        "envelope_to" => Tag::EnvelopeTo,
        "envelope_from" => Tag::EnvelopeFrom,
        "header_from" => Tag::HeaderFrom,
        "auth_results" => Tag::AuthResults,
        "selector" => Tag::Selector,
        "result" => Tag::Result,
        "human_result" => Tag::HumanResult,
        "scope" => Tag::Scope,
        "extensions" | "extension" => Tag::Extensions,
        _ => Tag::Other,
    }
}

pub(super) fn local_name(qname: &str) -> &str {
    // A byte scan: names are short, and a `str` pattern search costs more
    // than the scan (it showed in profiles of large reports).
    match qname.bytes().rposition(|b| b == b':') {
        Some(i) => &qname[i + 1..],
        None => qname,
    }
}
