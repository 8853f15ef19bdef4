//! The eleven items of the journey and the next step, decided from
//! [`Facts`]. Pure: no DNS, no database, no clock; the same facts always
//! give the same checklist.
//!
//! This file holds [`compute`], the shared judgements (findings per check,
//! the data window, the DMARC patch) and the parked profile; the items are
//! in `records` (1-4), `rollout` (5-9) and `extras` (10-11).

mod extras;
mod records;
mod rollout;

use serde_json::{Value, json};

use super::{Checklist, Facts, Item, NextAction, Settings, Status, percent};
use crate::record::dkim::{DkimKey, KeyType};
use crate::record::dmarc::Policy;
use crate::record::spf::Qualifier;
use crate::record::{RData, RType};
use crate::validate::{Check, Finding, Severity};

/// Computes the checklist.
pub fn compute(f: &Facts, s: &Settings) -> Checklist {
    let j = Journey { f, s };
    let mut items = vec![
        j.mx(),
        j.spf(),
        j.dkim(),
        j.dmarc(),
        j.flowing(),
        j.aligned(),
        j.quarantine(),
        j.reject(),
        j.subdomains(),
        j.transport(),
        j.bimi(),
    ];
    let non_sending = j.non_sending();
    if non_sending {
        parked_profile(&j, &mut items);
    }
    // Publishing DMARC in monitoring mode goes first whatever else is
    // open: it starts the weeks of report data every later step needs.
    let start_reports = items.iter().find(|i| {
        i.number == 4
            && i.status == Status::Open
            && f.dmarc.is_none()
            && matches!(i.next, Some(NextAction::Config(_)))
    });
    let next_step = start_reports
        .or_else(|| {
            items
                .iter()
                .find(|i| i.status == Status::Open && i.blocking && i.next.is_some())
        })
        .or_else(|| {
            items
                .iter()
                .find(|i| i.status == Status::Open && i.next.is_some())
        })
        .map(|i| i.number);
    Checklist {
        domain: f.domain.to_string(),
        in_config: f.in_config,
        parked: f.parked,
        items,
        next_step,
        settings: s.clone(),
    }
}

struct Journey<'a> {
    f: &'a Facts,
    s: &'a Settings,
}

fn item(number: u8, title: &str) -> Item {
    Item {
        number,
        title: title.to_string(),
        status: Status::Open,
        evidence: Vec::new(),
        blocking: true,
        next: None,
        why: None,
    }
}

fn done(mut i: Item, evidence: Vec<String>) -> Item {
    i.status = Status::Done;
    i.evidence = evidence;
    i
}

fn na(mut i: Item, why: &str) -> Item {
    i.status = Status::NotApplicable;
    i.blocking = false;
    i.evidence = vec![why.to_string()];
    i.next = None;
    i.why = None;
    i
}

fn blocked(mut i: Item, why: String) -> Item {
    i.status = Status::Blocked;
    i.why = Some(why);
    i
}

fn open(mut i: Item, next: NextAction, why: String) -> Item {
    i.status = Status::Open;
    i.next = Some(next);
    i.why = Some(why);
    i
}

impl Journey<'_> {
    fn findings(&self, check: Check) -> Vec<&Finding> {
        self.f
            .live
            .findings
            .iter()
            .filter(|x| x.check == check)
            .collect()
    }

    fn worst(&self, check: Check) -> Option<Severity> {
        self.findings(check).iter().map(|x| x.severity).max()
    }

    /// Validate's warnings and failures of `check`, except the unenforced
    /// `p=none` warning: the policy's stage is items 7 and 8, not a problem
    /// of the record.
    fn problems(&self, check: Check) -> Vec<&Finding> {
        self.findings(check)
            .into_iter()
            .filter(|x| x.severity >= Severity::Warn)
            .filter(|x| !(x.check == Check::Dmarc && x.message.starts_with("p=none:")))
            .collect()
    }

    fn passes(&self, check: Check) -> Vec<String> {
        self.findings(check)
            .iter()
            .filter(|x| x.severity <= Severity::Info)
            .map(|x| format!("live DNS: {}", x.message))
            .collect()
    }

    /// The action for a validate problem: publish what the config says,
    /// or the finding's own fix.
    fn fix(&self, p: &Finding) -> NextAction {
        let text = p
            .fix
            .clone()
            .unwrap_or_else(|| "see `mailauth validate`".to_string());
        if text.contains("mailauth apply") && self.f.in_config {
            NextAction::Apply { text }
        } else {
            NextAction::Manual { text }
        }
    }

    fn for_problem(&self, i: Item, p: &Finding) -> Item {
        if p.severity == Severity::TempError {
            return blocked(
                i,
                format!(
                    "DNS did not answer ({}): run the checklist again",
                    p.message
                ),
            );
        }
        let mut i = open(i, self.fix(p), format!("live DNS: {}", p.message));
        i.evidence = p.details.clone();
        i
    }

    fn propose(&self, summary: &str, patch: Value) -> NextAction {
        NextAction::Config(self.f.doc.propose(&self.f.domain, summary, patch))
    }

    fn report_mailbox(&self) -> String {
        self.s
            .reads
            .first()
            .cloned()
            .unwrap_or_else(|| format!("dmarc-reports@{}", self.f.domain))
    }

    /// Live MX is absent or the null MX, and reports show no mail that
    /// passes DMARC: a domain that sends and receives nothing.
    fn non_sending(&self) -> bool {
        if self.f.parked {
            return false;
        }
        let mx = self.findings(Check::Mx);
        let no_mail = mx
            .iter()
            .any(|x| x.message.starts_with("no MX records") || x.message.starts_with("null MX"));
        let sends = self
            .f
            .reports
            .as_ref()
            .is_some_and(|r| r.volume.dmarc_pass > 0);
        no_mail && !sends && !self.f.config.has_spf && !self.f.config.has_dkim
    }

    /// Whether the policy may advance: `Ok(why)` or `Err(missing)`.
    fn data_ok(&self) -> Result<String, String> {
        let Some(r) = &self.f.reports else {
            return Err(
                "no report database: pass `--db` with the database `mailauth reports ingest` fills"
                    .into(),
            );
        };
        if r.days < self.s.min_days {
            return Err(format!(
                "aggregate data from {} of the {} days needed",
                r.days, self.s.min_days
            ));
        }
        let v = r.volume;
        if v.messages == 0 {
            return Err(format!(
                "no aggregate data in the last {} days",
                self.s.window_days
            ));
        }
        let pct = percent(v.dmarc_pass, v.messages);
        if (v.dmarc_pass as f64) < self.s.pass_ratio * v.messages as f64 {
            return Err(format!(
                "only {} of {} messages ({pct}) passed DMARC over the last {} days; {}% is needed (item 6)",
                v.dmarc_pass,
                v.messages,
                self.s.window_days,
                self.s.pass_ratio * 100.0
            ));
        }
        Ok(format!(
            "{} of {} messages ({pct}) passed DMARC over the last {} days, with {} days of data",
            v.dmarc_pass, v.messages, self.s.window_days, r.days
        ))
    }

    fn policy(&self) -> Option<(Policy, bool)> {
        self.f
            .dmarc
            .as_ref()
            .map(|d| (d.effective_policy(), d.testing()))
    }

    /// A patch of the `dmarc` block: merged into the config's block, or,
    /// when the config has none, the live record's tags plus the change.
    fn dmarc_patch(&self, change: Value) -> Value {
        if self.f.config.has_dmarc {
            return json!({ "dmarc": change });
        }
        let mut block = json!({});
        if let Some(d) = &self.f.dmarc {
            block = json!({ "p": d.effective_policy().as_str() });
            let obj = block.as_object_mut().expect("object");
            if let Some(sp) = d.sp {
                obj.insert("sp".into(), json!(sp.as_str()));
            }
            if let Some(np) = d.np {
                obj.insert("np".into(), json!(np.as_str()));
            }
            if d.t == Some(true) {
                obj.insert("t".into(), json!(true));
            }
            if let Some(a) = d.adkim {
                obj.insert("adkim".into(), json!(a.as_str()));
            }
            if let Some(a) = d.aspf {
                obj.insert("aspf".into(), json!(a.as_str()));
            }
            let uris = |l: &[crate::record::dmarc::ReportUri]| -> Vec<String> {
                l.iter().map(|u| u.to_string()).collect()
            };
            if !d.rua.is_empty() {
                obj.insert("rua".into(), json!(uris(&d.rua)));
            }
            if !d.ruf.is_empty() {
                obj.insert("ruf".into(), json!(uris(&d.ruf)));
            }
        }
        super::merge(&mut block, &change);
        json!({ "dmarc": block })
    }
}

/// M3AAWG "Protecting Parked Domains": a domain that neither sends nor
/// receives gets `v=spf1 -all`, `p=reject`, a null MX and an empty DKIM
/// wildcard in one step (`parked: true`).
fn parked_profile(j: &Journey, items: &mut [Item]) {
    let mut patch = json!({"parked": true});
    let obj = patch.as_object_mut().expect("object");
    for k in ["spf", "dkim", "dmarc", "mta_sts", "tls_rpt"] {
        if j.f.doc.domain(&j.f.domain).get(k).is_some() {
            obj.insert(k.into(), Value::Null);
        }
    }
    let why = "the domain has no MX (or a null MX) and no report shows mail passing DMARC for it: it neither receives nor sends, so the parked profile blocks spoofing without affecting any mail".to_string();
    let mut first = true;
    for i in items.iter_mut() {
        match i.number {
            5 | 6 | 10 | 11 => {
                *i = na(
                    i.clone(),
                    "non-sending domain: the parked profile covers it",
                );
            }
            _ if i.status == Status::Done => {}
            _ => {
                i.status = Status::Open;
                if first {
                    i.next = Some(j.propose("apply the parked profile", patch.clone()));
                    i.why = Some(why.clone());
                    first = false;
                } else {
                    i.next = None;
                    i.why = Some("covered by the parked profile (see the next step)".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
