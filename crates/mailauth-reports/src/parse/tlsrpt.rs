//! SMTP TLS reports (RFC 8460 section 4, JSON).
//!
//! Owns JSON bytes → [`TlsReport`]. Leaves decompression and MIME to
//! `container.rs`, storage to `store.rs`.

use serde::{Deserialize, Serialize};

use super::ParseError;

/// RFC 8460 section 4.4 allows `mx-host` as a list; some reporters send a
/// single string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// RFC 8460 section 4.3: `"date-range": {"start-datetime", "end-datetime"}`
/// (RFC 3339 date-time strings, kept as sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DateRange {
    pub start_datetime: String,
    pub end_datetime: String,
}

/// RFC 8460 section 4.3 `policy`: `policy-type` (`tlsa`, `sts`,
/// `no-policy-found`), `policy-string`, `policy-domain`, `mx-host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TlsPolicy {
    pub policy_type: String,
    #[serde(default, deserialize_with = "one_or_many")]
    pub policy_string: Vec<String>,
    pub policy_domain: String,
    #[serde(default, deserialize_with = "one_or_many")]
    pub mx_host: Vec<String>,
}

/// RFC 8460 section 4.3 `summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TlsSummary {
    #[serde(default)]
    pub total_successful_session_count: u64,
    #[serde(default)]
    pub total_failure_session_count: u64,
}

/// RFC 8460 section 4.3 `failure-details` entry; result types in 4.4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TlsFailure {
    pub result_type: String,
    #[serde(default)]
    pub sending_mta_ip: Option<String>,
    #[serde(default)]
    pub receiving_mx_hostname: Option<String>,
    #[serde(default)]
    pub receiving_mx_helo: Option<String>,
    #[serde(default)]
    pub receiving_ip: Option<String>,
    #[serde(default)]
    pub failed_session_count: u64,
    #[serde(default)]
    pub additional_information: Option<String>,
    #[serde(default)]
    pub failure_reason_code: Option<String>,
}

/// One `policies` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TlsPolicyResult {
    pub policy: TlsPolicy,
    #[serde(default)]
    pub summary: TlsSummary,
    #[serde(default)]
    pub failure_details: Vec<TlsFailure>,
}

/// RFC 8460 section 4.3 report:
/// `organization-name`, `date-range`, `contact-info`, `report-id`, `policies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TlsReport {
    pub organization_name: String,
    pub date_range: DateRange,
    #[serde(default)]
    pub contact_info: Option<String>,
    pub report_id: String,
    #[serde(default)]
    pub policies: Vec<TlsPolicyResult>,
}

impl TlsReport {
    /// Every string without C0 controls but tab, LF and CR
    /// ([`super::clean_text`]): JSON writes NUL as `\u0000`.
    fn clean_text(&mut self) {
        use super::{clean_opt, clean_text};
        clean_text(&mut self.organization_name);
        clean_text(&mut self.date_range.start_datetime);
        clean_text(&mut self.date_range.end_datetime);
        clean_opt(&mut self.contact_info);
        clean_text(&mut self.report_id);
        for p in &mut self.policies {
            clean_text(&mut p.policy.policy_type);
            clean_text(&mut p.policy.policy_domain);
            p.policy.policy_string.iter_mut().for_each(clean_text);
            p.policy.mx_host.iter_mut().for_each(clean_text);
            for f in &mut p.failure_details {
                clean_text(&mut f.result_type);
                for s in [
                    &mut f.sending_mta_ip,
                    &mut f.receiving_mx_hostname,
                    &mut f.receiving_mx_helo,
                    &mut f.receiving_ip,
                    &mut f.additional_information,
                    &mut f.failure_reason_code,
                ] {
                    clean_opt(s);
                }
            }
        }
    }
}

/// Parses an RFC 8460 JSON report (a UTF-8 BOM is tolerated).
pub fn parse(bytes: &[u8]) -> Result<TlsReport, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut report: TlsReport = serde_json::from_slice(bytes).map_err(|e| ParseError::Json {
        line: e.line(),
        msg: e.to_string(),
    })?;
    report.clean_text();
    if report.organization_name.trim().is_empty() {
        return Err(ParseError::MissingField {
            field: "organization-name".to_owned(),
        });
    }
    if report.report_id.trim().is_empty() {
        return Err(ParseError::MissingField {
            field: "report-id".to_owned(),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_host_string_or_list() {
        let base = r#"{"organization-name":"o","date-range":{"start-datetime":"a","end-datetime":"b"},
            "report-id":"r","policies":[{"policy":{"policy-type":"sts","policy-domain":"d","mx-host":MX},
            "summary":{"total-successful-session-count":1,"total-failure-session-count":2}}]}"#;
        for (mx, want) in [(r#""m""#, vec!["m"]), (r#"["a","b"]"#, vec!["a", "b"])] {
            let r = parse(base.replace("MX", mx).as_bytes()).expect("parses");
            assert_eq!(r.policies[0].policy.mx_host, want);
            assert_eq!(r.policies[0].summary.total_failure_session_count, 2);
        }
    }

    #[test]
    fn control_characters_are_removed() {
        let j = r#"{"organization-name":"o\u0000\u001b]0;x\u0007","date-range":{"start-datetime":"a","end-datetime":"b"},
            "report-id":"r\u0000","policies":[{"policy":{"policy-type":"sts","policy-domain":"d\u0001"},
            "failure-details":[{"result-type":"t","additional-information":"a\tb\u0000"}]}]}"#;
        let r = parse(j.as_bytes()).expect("parses");
        assert_eq!(r.organization_name, "o]0;x");
        assert_eq!(r.report_id, "r");
        assert_eq!(r.policies[0].policy.policy_domain, "d");
        assert_eq!(
            r.policies[0].failure_details[0]
                .additional_information
                .as_deref(),
            Some("a\tb")
        );
    }

    #[test]
    fn missing_report_id_rejected() {
        let j = r#"{"organization-name":"o","date-range":{"start-datetime":"a","end-datetime":"b"},"report-id":" "}"#;
        assert!(matches!(
            parse(j.as_bytes()),
            Err(ParseError::MissingField { .. })
        ));
    }
}
