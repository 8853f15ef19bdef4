//! The eleven items of the journey and the next step, decided from
//! [`Facts`]. Pure: no DNS, no database, no clock; the same facts always
//! give the same checklist.

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

    /// RFC 7505 §3: "a domain that advertises a single MX RR with an
    /// RDLENGTH of 1 and an exchange of "." does not accept mail".
    fn mx(&self) -> Item {
        let i = item(1, "MX present (or a null MX for a non-sending domain)");
        if let Some(p) = self.problems(Check::Mx).first() {
            if p.severity == Severity::Warn && p.message.starts_with("no MX records") {
                let mut i = open(
                    i,
                    NextAction::Manual {
                        text: "publish MX records at your DNS provider (mailauth does not manage MX); or, if the domain takes no mail, see the parked profile".into(),
                    },
                    format!("live DNS: {}", p.message),
                );
                i.evidence = vec![format!("live DNS: {}", p.message)];
                return i;
            }
            return self.for_problem(i, p);
        }
        match self.worst(Check::Mx) {
            None => blocked(i, "the MX check did not run".into()),
            Some(_) => done(i, self.passes(Check::Mx)),
        }
    }

    /// RFC 7208 §4.5 (one record), §4.6.4 (at most 10 lookups), §5.1
    /// (`all`): checked by validate; here only `-all`/`~all` is added.
    fn spf(&self) -> Item {
        let i = item(
            2,
            "SPF: exactly one record, at most 10 lookups, ends in -all or ~all",
        );
        if let Some(p) = self.problems(Check::Spf).first() {
            if !self.f.config.has_spf && p.message.starts_with("no SPF record") {
                let patch = json!({ "spf": { "mx": true, "all": "softfail" } });
                return open(
                    i,
                    self.propose("publish an SPF record", patch),
                    format!(
                        "no SPF record: receivers cannot tell which hosts send for {}; add an `include:` or `ip4:` for every service that sends as it (report data lists the senders) before moving to `all: fail`",
                        self.f.domain
                    ),
                );
            }
            // RFC 7208 §4.6.4: over 10 lookups is a permerror; flattening
            // fits the record in the budget.
            if self.f.config.has_spf && p.message.contains("DNS-querying terms") {
                let mut next = self.propose(
                    "flatten SPF includes to fit 10 lookups",
                    json!({"spf": {"flatten": "auto"}}),
                );
                if let NextAction::Config(c) = &mut next {
                    c.note = Some(
                        "the flattened records depend on what the includes resolve to: `mailauth plan` shows them".into(),
                    );
                }
                return open(
                    i,
                    next,
                    format!(
                        "{}; `flatten: auto` replaces as many includes as needed by their networks and tells you when an ESP changes them",
                        p.message
                    ),
                );
            }
            return self.for_problem(i, p);
        }
        let Some(spf) = &self.f.spf else {
            return blocked(i, "no single SPF record could be read".into());
        };
        let ends_well = spf.redirect().is_some()
            || matches!(spf.all(), Some(Qualifier::Fail) | Some(Qualifier::SoftFail));
        if !ends_well {
            return open(
                i,
                if self.f.config.has_spf {
                    self.propose(
                        "end the SPF record with ~all",
                        json!({"spf": {"all": "softfail"}}),
                    )
                } else {
                    NextAction::Manual {
                        text: "end the SPF record with `-all` or `~all`".into(),
                    }
                },
                "without `-all` or `~all` the record authorises nothing against spoofing".into(),
            );
        }
        done(i, self.passes(Check::Spf))
    }

    /// RFC 8301 §3.2: "Signers SHOULD use RSA keys of at least 2048 bits."
    fn dkim(&self) -> Item {
        let mut i = item(
            3,
            "DKIM: a 2048-bit RSA selector (optionally plus Ed25519) published and matching our key; rotation scheduled",
        );
        let findings = self.findings(Check::Dkim);
        if self.f.parked {
            return match self.problems(Check::Dkim).first() {
                Some(p) => self.for_problem(i, p),
                None => done(i, self.passes(Check::Dkim)),
            };
        }
        let suffix = self.f.domain.child("_domainkey");
        let mut good = Vec::new();
        let mut weak = Vec::new();
        for set in &self.f.desired.sets {
            if !set.name.is_within(&suffix) || set.name == suffix {
                continue;
            }
            let sel = set
                .name
                .as_str()
                .strip_suffix(suffix.as_str())
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_string();
            let tag = format!("selector `{sel}`:");
            let passed = findings
                .iter()
                .any(|x| x.severity == Severity::Pass && x.message.starts_with(&tag));
            if !passed {
                continue;
            }
            match (&set.rtype, set.data.first()) {
                (RType::Cname, Some(RData::Cname(t))) => good.push(format!(
                    "selector `{sel}` delegated to {t} (its operator holds the key)"
                )),
                (RType::Txt, Some(d)) => {
                    let key: Option<DkimKey> = d.txt_value().and_then(|v| v.parse().ok());
                    match key {
                        Some(k) if k.key_type() == KeyType::Ed25519 => {
                            i.evidence
                                .push(format!("selector `{sel}`: Ed25519, published and matching"));
                        }
                        Some(k) => match k.rsa_bits() {
                            Some(b) if b >= 2048 => good.push(format!(
                                "selector `{sel}`: {b}-bit RSA, published and matching"
                            )),
                            Some(b) => weak.push(format!("selector `{sel}`: only {b}-bit RSA")),
                            None => {}
                        },
                        None => {}
                    }
                }
                _ => {}
            }
        }
        i.evidence.splice(0..0, good.iter().cloned());
        i.evidence.extend(weak.iter().cloned());
        for (prefix, every) in &self.f.config.rotations {
            i.evidence
                .push(format!("family `{prefix}` rotates every {every}"));
        }
        let family = json!({
            "prefix": "mail",
            "bits": 2048,
            "rotate_every": "180d",
            "retire_after": "7d"
        });
        let mut selectors: Vec<Value> = self
            .f
            .doc
            .domain(&self.f.domain)
            .pointer("/dkim/selectors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let has_family = !self.f.config.prefixes.is_empty();
        if !has_family {
            selectors.push(family);
        }
        let add_family = |summary: &str| {
            let mut action = self.propose(summary, json!({"dkim": {"selectors": selectors}}));
            if let NextAction::Config(c) = &mut action {
                c.note = Some(
                    "then run `mailauth keys generate` and `mailauth apply`: the first key is published once generated".into(),
                );
            }
            action
        };
        if let Some(p) = self
            .problems(Check::Dkim)
            .into_iter()
            .find(|p| p.severity >= Severity::TempError)
            && good.is_empty()
        {
            return self.for_problem(i, p);
        }
        if good.is_empty() {
            if has_family && self.f.config.rotations.is_empty() {
                return blocked(
                    i,
                    "the config's key family has no published key yet: run `mailauth keys generate` and `mailauth apply`".into(),
                );
            }
            if has_family {
                return open(
                    i,
                    NextAction::Apply {
                        text: "run `mailauth keys generate` and `mailauth apply` to publish the family's first key".into(),
                    },
                    "no 2048-bit RSA key is published yet; without DKIM, DMARC passes only through SPF, which forwarding breaks".into(),
                );
            }
            let why = if weak.is_empty() {
                "no 2048-bit RSA key is published; without DKIM, DMARC passes only through SPF, which forwarding breaks"
            } else {
                "keys under 2048 bits are discouraged (RFC 8301 §3.2): generate a 2048-bit family and rotate to it"
            };
            return open(
                i,
                add_family("add a rotated 2048-bit DKIM key family"),
                why.into(),
            );
        }
        if self.f.config.rotations.is_empty() {
            i.blocking = false;
            i.evidence.push("no rotation scheduled".into());
            return open(
                i,
                add_family("schedule DKIM key rotation"),
                "a key family with `rotate_every` makes mailauth generate, publish and retire keys on schedule; the current selectors stay published".into(),
            );
        }
        i.status = Status::Done;
        i
    }

    /// RFC 9990 §3 (kept from RFC 7489 §7.1): reports to a domain outside
    /// the policy's organizational domain need `<domain>._report._dmarc.<rua
    /// domain>`.
    fn dmarc(&self) -> Item {
        let i = item(
            4,
            "DMARC published, rua to a mailbox mailauth reads, external rua authorised",
        );
        if self.f.parked {
            return match self.problems(Check::Dmarc).first() {
                Some(p) => self.for_problem(i, p),
                None => done(i, self.passes(Check::Dmarc)),
            };
        }
        let mailbox = self.report_mailbox();
        let Some(d) = &self.f.dmarc else {
            if self.f.config.has_dmarc
                && let Some(p) = self.problems(Check::Dmarc).first()
            {
                return self.for_problem(i, p);
            }
            return open(
                i,
                self.propose(
                    "publish DMARC in monitoring mode",
                    self.dmarc_patch(json!({"p": "none", "rua": [format!("mailto:{mailbox}")]})),
                ),
                "p=none changes no delivery: it only asks receivers for aggregate reports, the data every later step needs".into(),
            );
        };
        if d.rua.is_empty() {
            return open(
                i,
                self.propose(
                    "ask for aggregate reports",
                    self.dmarc_patch(json!({"rua": [format!("mailto:{mailbox}")]})),
                ),
                format!(
                    "without rua no receiver sends reports, so no later step can be judged safe{}",
                    if self.s.reads.is_empty() {
                        "; replace the address with a mailbox `mailauth reports ingest` reads and pass it with `--reads`"
                    } else {
                        ""
                    }
                ),
            );
        }
        if let Some(p) = self.problems(Check::Dmarc).first() {
            return self.for_problem(i, p);
        }
        let mut evidence = self.passes(Check::Dmarc);
        let rua: Vec<String> = d
            .rua
            .iter()
            .map(|u| u.address.to_ascii_lowercase())
            .collect();
        let read: Vec<&String> = rua
            .iter()
            .filter(|a| {
                self.s.reads.iter().any(|r| {
                    r.trim_start_matches("mailto:")
                        .eq_ignore_ascii_case(a.trim_start_matches("mailto:"))
                })
            })
            .collect();
        let arriving = self.f.reports.as_ref().is_some_and(|r| r.days > 0);
        if !read.is_empty() {
            evidence.push(format!(
                "rua {} is read by mailauth (--reads)",
                read.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if arriving {
            evidence.push("aggregate reports for the domain are in the report database".into());
        }
        if read.is_empty() && !arriving {
            let mut i = open(
                i,
                NextAction::Manual {
                    text: format!(
                        "have `mailauth reports ingest` read {} (Maildir, mbox or IMAP), or pass `--reads ADDRESS` if it already does",
                        rua.join(", ")
                    ),
                },
                "no report for the domain is in the database and no `--reads` address matches rua"
                    .into(),
            );
            i.evidence = evidence;
            return i;
        }
        done(i, evidence)
    }

    fn flowing(&self) -> Item {
        let mut i = item(
            5,
            &format!(
                "Reports flowing: aggregate data from at least {} days",
                self.s.min_days
            ),
        );
        if self.f.parked {
            return na(i, "parked: the domain sends no mail to report on");
        }
        let Some(r) = &self.f.reports else {
            return blocked(
                i,
                "no report database: pass `--db` with the database `mailauth reports ingest` fills"
                    .into(),
            );
        };
        i.evidence.push(format!(
            "aggregate data from {} day(s) in the last 30 days",
            r.days
        ));
        if r.days >= self.s.min_days {
            i.status = Status::Done;
            return i;
        }
        if self.f.dmarc.as_ref().is_none_or(|d| d.rua.is_empty()) {
            return blocked(i, "no rua yet (item 4)".into());
        }
        open(
            i,
            NextAction::Wait {
                text: format!(
                    "keep ingesting reports: {} more day(s) of data are needed",
                    self.s.min_days - r.days
                ),
            },
            "receivers send one aggregate report a day; a policy step judged on fewer days can miss weekly or monthly senders".into(),
        )
    }

    fn aligned(&self) -> Item {
        let mut i = item(
            6,
            &format!(
                "All legitimate sources aligned: at least {}% of volume passes DMARC over {} days",
                self.s.pass_ratio * 100.0,
                self.s.window_days
            ),
        );
        if self.f.parked {
            return na(i, "parked: the domain sends no mail");
        }
        let Some(r) = &self.f.reports else {
            return blocked(
                i,
                "no report database: pass `--db` with the database `mailauth reports ingest` fills"
                    .into(),
            );
        };
        let v = r.volume;
        if v.messages == 0 {
            return blocked(
                i,
                format!("no aggregate data in the last {} days", self.s.window_days),
            );
        }
        i.evidence.push(format!(
            "{} of {} messages ({}) passed DMARC over the last {} days",
            v.dmarc_pass,
            v.messages,
            percent(v.dmarc_pass, v.messages),
            self.s.window_days
        ));
        for (src, why) in &r.failing {
            let mut ids = Vec::new();
            if !src.spf_domains.is_empty() {
                ids.push(format!("spf {}", src.spf_domains.join(",")));
            }
            if !src.dkim_domains.is_empty() {
                ids.push(format!("dkim d={}", src.dkim_domains.join(",")));
            }
            if !src.dkim_selectors.is_empty() {
                ids.push(format!("s={}", src.dkim_selectors.join(",")));
            }
            i.evidence.push(format!(
                "failing: {} ({} messages; {}): {}",
                src.source_ip,
                src.messages,
                if ids.is_empty() {
                    "no identities".to_string()
                } else {
                    ids.join("; ")
                },
                why.join("; ")
            ));
        }
        // Forwarded and mailing-list mail fails DMARC whatever the domain
        // does: it does not hold back an enforcing policy.
        if r.forwarded > 0 {
            i.evidence.push(format!(
                "{} failing messages are forwarding or mailing lists (SPF broken by the forwarder, DKIM of the domain intact, or the receiver said so): counted as passing here",
                r.forwarded
            ));
        }
        let passing = v.dmarc_pass.saturating_add(r.forwarded).min(v.messages);
        if (passing as f64) >= self.s.pass_ratio * v.messages as f64 {
            i.status = Status::Done;
            return i;
        }
        open(
            i,
            NextAction::Manual {
                text: "fix the failing sources listed: add the legitimate ones to spf/dkim (or have them sign with DKIM d=<domain>); leave spoofers failing".into(),
            },
            "an enforcing policy would quarantine or reject the legitimate mail among the failing sources".into(),
        )
    }

    fn quarantine(&self) -> Item {
        let i = item(7, "p=quarantine (first with t=y, RFC 9989)");
        let Some((p, testing)) = self.policy() else {
            return blocked(i, "no DMARC record yet (item 4)".into());
        };
        match (p, testing) {
            (Policy::Reject, _) | (Policy::Quarantine, false) => {
                done(i, vec![format!("live DNS: p={}", p.as_str())])
            }
            (Policy::None, _) => match self.data_ok() {
                Ok(why) => open(
                    i,
                    self.propose(
                        "quarantine in testing mode",
                        self.dmarc_patch(json!({"p": "quarantine", "t": true})),
                    ),
                    format!(
                        "safe now: {why}; t=y (RFC 9989 testing mode) asks receivers to apply a less strict policy while the reports confirm it"
                    ),
                ),
                Err(missing) => blocked(i, format!("not yet: {missing}")),
            },
            (Policy::Quarantine, true) => match self.data_ok() {
                Ok(why) => {
                    let mut i = open(
                        i,
                        self.propose("leave testing mode", self.dmarc_patch(json!({"t": null}))),
                        format!("safe now: {why}"),
                    );
                    i.evidence = vec!["live DNS: p=quarantine with t=y".into()];
                    i
                }
                Err(missing) => blocked(i, format!("not yet: {missing}")),
            },
        }
    }

    fn reject(&self) -> Item {
        let i = item(8, "p=reject");
        let Some((p, testing)) = self.policy() else {
            return blocked(i, "no DMARC record yet (item 4)".into());
        };
        match (p, testing) {
            (Policy::Reject, false) => done(i, vec!["live DNS: p=reject".into()]),
            (Policy::Quarantine, false) | (Policy::Reject, true) => match self.data_ok() {
                Ok(why) => open(
                    i,
                    self.propose(
                        "reject",
                        self.dmarc_patch(json!({"p": "reject", "t": null})),
                    ),
                    format!("safe now: {why} under p=quarantine"),
                ),
                Err(missing) => blocked(i, format!("not yet: {missing}")),
            },
            _ => blocked(i, "after p=quarantine (item 7)".into()),
        }
    }

    /// RFC 9989 §4.7 (`p`): "Policy applies to the domain queried and to
    /// subdomains, unless subdomain policy is explicitly described using
    /// the "sp" or "np" tags." An absent `np` falls back to `sp`, and an
    /// absent `sp` to `p`.
    fn subdomains(&self) -> Item {
        let mut i = item(9, "sp and np for subdomains and non-existent subdomains");
        let Some(d) = &self.f.dmarc else {
            return blocked(i, "no DMARC record yet (item 4)".into());
        };
        let p = d.effective_policy();
        let sp = d.sp.unwrap_or(p);
        let np = d.np.or(d.sp).unwrap_or(p);
        let from = |set: bool, inherited: &str| if set { "set" } else { inherited }.to_string();
        i.evidence.push(format!(
            "live DNS: sp={} ({}), np={} ({})",
            sp.as_str(),
            from(d.sp.is_some(), "from p"),
            np.as_str(),
            if d.np.is_some() {
                "set".to_string()
            } else {
                from(false, if d.sp.is_some() { "from sp" } else { "from p" })
            },
        ));
        i.blocking = false;
        if np != Policy::Reject {
            return open(
                i,
                self.propose(
                    "reject mail from non-existent subdomains",
                    self.dmarc_patch(json!({"np": "reject"})),
                ),
                "safe at any stage: names that do not exist in DNS send no legitimate mail".into(),
            );
        }
        if sp == Policy::Reject {
            i.status = Status::Done;
            return i;
        }
        if p != Policy::Reject || d.testing() {
            return blocked(i, "sp follows p: settle p=reject first (item 8)".into());
        }
        open(
            i,
            self.propose(
                "reject for subdomains too",
                self.dmarc_patch(json!({"sp": null})),
            ),
            "the domain itself is at p=reject; dropping sp makes subdomains follow it. Check `mailauth reports list` for subdomains that send before applying".into(),
        )
    }

    fn transport(&self) -> Item {
        let mut i = item(10, "MTA-STS and TLS-RPT");
        i.blocking = false;
        if self.f.parked {
            return na(i, "parked: the null MX receives no mail");
        }
        let checks = [Check::MtaSts, Check::TlsRpt];
        if let Some(p) = checks.iter().flat_map(|c| self.problems(*c)).next() {
            let mut i = self.for_problem(i, p);
            i.blocking = false;
            return i;
        }
        i.evidence = checks.iter().flat_map(|c| self.passes(*c)).collect();
        if !self.f.config.has_tls_rpt {
            let mailbox = self
                .s
                .reads
                .first()
                .cloned()
                .unwrap_or_else(|| format!("tls-reports@{}", self.f.domain));
            return open(
                i,
                self.propose(
                    "ask for SMTP TLS reports",
                    json!({"tls_rpt": {"rua": [format!("mailto:{mailbox}")]}}),
                ),
                "TLS-RPT only asks senders for reports (RFC 8460); it changes no delivery".into(),
            );
        }
        if !self.f.config.has_mta_sts {
            let mut action = self.propose(
                "announce MTA-STS in testing mode",
                json!({"mta_sts": {"id": "1", "mode": "testing", "mx": [format!("*.{}", self.f.domain)]}}),
            );
            if let NextAction::Config(c) = &mut action {
                c.note = Some(format!(
                    "serve the policy at https://mta-sts.{}/.well-known/mta-sts.txt first, with mx lines for your real MX hosts",
                    self.f.domain
                ));
            }
            return open(
                i,
                action,
                "mode testing reports TLS failures (via TLS-RPT) without refusing delivery (RFC 8461 §5)".into(),
            );
        }
        i.status = Status::Done;
        i
    }

    fn bimi(&self) -> Item {
        let mut i = item(11, "BIMI readiness (requires an enforcing policy)");
        i.blocking = false;
        if self.f.parked {
            return na(i, "parked: the domain sends no mail");
        }
        let Some(d) = &self.f.dmarc else {
            return blocked(i, "no DMARC record yet (item 4)".into());
        };
        let p = d.effective_policy();
        let sp = d.sp.unwrap_or(p);
        let enforcing =
            matches!(p, Policy::Quarantine | Policy::Reject) && sp != Policy::None && !d.testing();
        if !enforcing {
            return blocked(
                i,
                "BIMI needs p=quarantine or p=reject, sp not none, and no t=y".into(),
            );
        }
        // The validate engine's BIMI check: the record's syntax, and (when
        // it fetches) the logo and the evidence document.
        if let Some(problem) = self.problems(Check::Bimi).first() {
            let mut i = self.for_problem(i, problem);
            i.blocking = false;
            return i;
        }
        let passes = self.passes(Check::Bimi);
        if self.f.config.has_bimi && !passes.is_empty() {
            return done(i, passes);
        }
        if self.f.config.has_bimi {
            return open(
                i,
                NextAction::Apply {
                    text: "run `mailauth apply` to publish the BIMI record".into(),
                },
                "the config declares a BIMI record that is not published yet".into(),
            );
        }
        done(
            i,
            vec![format!(
                "p={} without t=y: ready for a BIMI record at default._bimi.{}: add `bimi: {{ logo: URL, authority: URL }}` to the config",
                p.as_str(),
                self.f.domain
            )],
        )
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
mod tests {
    use super::*;
    use crate::checklist::{ConfigDoc, ConfigFacts, ReportFacts, plan_lines};
    use crate::diff::Desired;
    use crate::record::Name;
    use crate::reports::store::Volume;
    use crate::validate::DomainReport;

    /// A domain outside the config whose live DNS passes every check the
    /// findings list, with `dmarc` published and `days`/`volume` of data.
    fn facts(dmarc: &str, days: i64, messages: i64, pass: i64) -> Facts {
        let domain = Name::parse("shop.test").unwrap();
        let findings = vec![
            Finding::pass(Check::Mx, "MX 10 mx.shop.test"),
            Finding::pass(Check::Spf, "one record"),
            Finding::pass(Check::Dmarc, "one record"),
        ];
        Facts {
            domain: domain.clone(),
            doc: ConfigDoc::empty(),
            in_config: false,
            parked: false,
            desired: Desired {
                origin: domain,
                sets: Vec::new(),
                spf: None,
            },
            config: ConfigFacts::default(),
            live: DomainReport {
                domain: "shop.test".into(),
                status: Severity::Pass,
                findings,
            },
            dmarc: Some(dmarc.parse().unwrap()),
            spf: Some("v=spf1 mx -all".parse().unwrap()),
            reports: Some(ReportFacts {
                days,
                volume: Volume {
                    messages,
                    dmarc_pass: pass,
                },
                failing: Vec::new(),
                forwarded: 0,
            }),
        }
    }

    fn status(c: &Checklist, n: u8) -> Status {
        c.item(n).unwrap().status
    }

    #[test]
    fn quarantine_advances_to_reject_keeping_live_tags() {
        let f = facts(
            "v=DMARC1; p=quarantine; rua=mailto:d@shop.test",
            30,
            1000,
            995,
        );
        let c = compute(&f, &Settings::new(0));
        assert_eq!(status(&c, 7), Status::Done);
        assert_eq!(status(&c, 8), Status::Open);
        let Some(NextAction::Config(p)) = &c.item(8).unwrap().next else {
            panic!("item 8 proposes no config change: {:?}", c.item(8));
        };
        // The domain is not in the config: the proposal carries the live
        // record's tags, so the plan only raises the policy.
        assert!(
            p.yaml.contains("p: reject") && p.yaml.contains("rua: [mailto:d@shop.test]"),
            "{}",
            p.yaml
        );
        let lines = plan_lines(&p.plan);
        assert!(
            lines.contains(&"+     \"v=DMARC1; p=reject; rua=mailto:d@shop.test\"".to_string()),
            "{lines:#?}"
        );
        // BIMI is ready under an enforced quarantine.
        assert_eq!(status(&c, 11), Status::Done);
        // A broken BIMI record, as validate reports it, keeps the item open
        // with validate's message.
        let mut broken = f.clone();
        broken.live.findings.push(Finding::fail(
            Check::Bimi,
            "default._bimi.shop.test: BIMI tag `l` has invalid value `http://x`",
            "publish `v=BIMI1; l=https://…/logo.svg; a=https://…/vmc.pem`",
        ));
        let c = compute(&broken, &Settings::new(0));
        let item = c.item(11).unwrap();
        assert_ne!(item.status, Status::Done, "{item:?}");
        assert!(format!("{item:?}").contains("BIMI tag `l`"), "{item:?}");
    }

    #[test]
    fn thresholds_block_policy_steps() {
        let s = Settings::new(0);
        // 97.9%: below 98%.
        let c = compute(
            &facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 1000, 979),
            &s,
        );
        assert_eq!(status(&c, 6), Status::Open);
        assert_eq!(status(&c, 7), Status::Blocked);
        assert!(c.item(7).unwrap().why.as_deref().unwrap().contains("97.9%"));
        // 98.0% exactly passes.
        let c = compute(
            &facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 1000, 980),
            &s,
        );
        assert_eq!(status(&c, 7), Status::Open);
        // Without DKIM (item 3) the journey does not advance: DMARC that
        // passes through SPF alone breaks on forwarding.
        assert_eq!(c.next_step, Some(3));
        // Enough alignment, too few days.
        let c = compute(
            &facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 13, 1000, 1000),
            &s,
        );
        assert_eq!(status(&c, 5), Status::Open);
        assert_eq!(status(&c, 7), Status::Blocked);
        // t=y under quarantine with bad data stays.
        let c = compute(
            &facts(
                "v=DMARC1; p=quarantine; t=y; rua=mailto:d@shop.test",
                30,
                100,
                50,
            ),
            &s,
        );
        assert_eq!(status(&c, 7), Status::Blocked);
        assert_eq!(status(&c, 11), Status::Blocked, "t=y is not enforcing");
    }

    #[test]
    fn temporary_dns_failure_blocks_instead_of_proposing() {
        let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 10, 10);
        f.live.findings.retain(|x| x.check != Check::Spf);
        f.live.findings.push(Finding::new(
            Check::Spf,
            Severity::TempError,
            "apex TXT query: timed out",
        ));
        let c = compute(&f, &Settings::new(0));
        assert_eq!(status(&c, 2), Status::Blocked);
        assert!(c.item(2).unwrap().next.is_none());
        assert!(
            c.item(2)
                .unwrap()
                .why
                .as_deref()
                .unwrap()
                .contains("timed out")
        );
    }

    #[test]
    fn spf_over_the_lookup_limit_proposes_flatten_auto() {
        let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 10, 10);
        f.config.has_spf = true;
        f.live.findings.retain(|x| x.check != Check::Spf);
        f.live.findings.push(Finding::fail(
            Check::Spf,
            "12 DNS-querying terms in the tree; receivers stop at 10 and return permerror (RFC 7208 §4.6.4)",
            "flatten or drop includes",
        ));
        let c = compute(&f, &Settings::new(0));
        let item = c.item(2).unwrap();
        assert_eq!(item.status, Status::Open);
        let Some(NextAction::Config(p)) = &item.next else {
            panic!("item 2 proposes no config change: {item:?}");
        };
        assert!(p.yaml.contains("flatten: auto"), "{}", p.yaml);
        assert!(p.note.as_deref().unwrap().contains("mailauth plan"));
        assert!(
            item.why
                .as_deref()
                .unwrap()
                .contains("12 DNS-querying terms")
        );
    }

    #[test]
    fn rua_without_read_evidence_stays_open() {
        let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 0, 0, 0);
        let mut s = Settings::new(0);
        let c = compute(&f, &s);
        assert_eq!(status(&c, 4), Status::Open);
        s.reads = vec!["mailto:D@shop.test".into()];
        let c = compute(&f, &s);
        assert_eq!(status(&c, 4), Status::Done, "{:?}", c.item(4));
        s.reads.clear();
        f.reports = Some(ReportFacts {
            days: 1,
            ..ReportFacts::default()
        });
        assert_eq!(status(&compute(&f, &s), 4), Status::Done);
    }

    #[test]
    fn forwarded_volume_does_not_block_alignment() {
        let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 1000, 900);
        let s = Settings::new(0);
        assert_eq!(status(&compute(&f, &s), 6), Status::Open);
        if let Some(r) = f.reports.as_mut() {
            r.forwarded = 95;
        }
        let c = compute(&f, &s);
        assert_eq!(status(&c, 6), Status::Done, "{:?}", c.item(6));
        assert!(
            c.item(6)
                .unwrap()
                .evidence
                .iter()
                .any(|e| e.starts_with("95 failing messages are forwarding")),
            "{:?}",
            c.item(6)
        );
    }
}
