//! Items 10 and 11: transport security (MTA-STS, TLS-RPT) and BIMI, which
//! never block the policy journey.

use super::*;

impl Journey<'_> {
    pub(super) fn transport(&self) -> Item {
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

    pub(super) fn bimi(&self) -> Item {
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
