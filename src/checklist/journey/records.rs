//! Items 1 to 4: the published records (MX, SPF, DKIM, DMARC), each
//! judged from validate's findings for it.

use super::*;

impl Journey<'_> {
    /// RFC 7505 §3: "a domain that advertises a single MX RR with an
    /// RDLENGTH of 1 and an exchange of "." does not accept mail".
    pub(super) fn mx(&self) -> Item {
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
    pub(super) fn spf(&self) -> Item {
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
    pub(super) fn dkim(&self) -> Item {
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
    pub(super) fn dmarc(&self) -> Item {
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
}
