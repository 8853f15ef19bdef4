//! Items 5 to 9: reports flowing, legitimate sources aligned, and the
//! policy steps (quarantine, reject, subdomains) they allow.

use super::*;

impl Journey<'_> {
    pub(super) fn flowing(&self) -> Item {
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

    pub(super) fn aligned(&self) -> Item {
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

    pub(super) fn quarantine(&self) -> Item {
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

    pub(super) fn reject(&self) -> Item {
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
    pub(super) fn subdomains(&self) -> Item {
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
}
