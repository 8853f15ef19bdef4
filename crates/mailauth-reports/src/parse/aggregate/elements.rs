//! The grammar: what each element start, text and end means to the report
//! being read (RFC 7489 Appendix C, RFC 9990 Appendix A), and the checks
//! that reject a report whose data is unambiguously broken, or whose
//! nesting or counts are past the limits ([`Options`]).

use super::*;

impl<V: AggregateVisitor + ?Sized> State<'_, V> {
    pub(super) fn parent(&self) -> Option<Tag> {
        self.stack.last().copied()
    }

    pub(super) fn grandparent(&self) -> Option<Tag> {
        self.stack.len().checked_sub(2).map(|i| self.stack[i])
    }

    pub(super) fn open(&mut self, e: &BytesStart<'_>) -> Result<(), ParseError> {
        let qname = e.name().into_inner();
        let t = tag(local_name(qname));
        if self.stack.len() >= self.opts.max_depth {
            return Err(ParseError::TooLarge {
                what: "XML element nesting (max_xml_depth)".to_owned(),
                limit: self.opts.max_depth as u64,
            });
        }
        if self.ext_depth.is_some_and(|d| self.stack.len() == d + 1) {
            self.ext_name.clear();
            self.ext_name.push_str(&strip_controls(local_name(qname)));
        }
        match t {
            Tag::Feedback => {
                self.seen_feedback = true;
                // The namespace of <feedback> itself: the default one, or
                // the one bound to its prefix (`<dmarc:feedback>`).
                let ns_attr = match qname.split_once(':') {
                    Some((prefix, _)) => format!("xmlns:{prefix}"),
                    None => "xmlns".to_owned(),
                };
                // Without quick-xml's duplicate check, which compares each
                // attribute with every one before it (quadratic).
                for attr in e.attributes().with_checks(false).flatten() {
                    if attr.key.into_inner() == ns_attr
                        && let Ok(v) = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    {
                        self.header.namespace = Some(strip_controls(v.trim()).into_owned());
                    }
                }
            }
            Tag::Record if self.ext_depth.is_none() => {
                self.send_header()?;
                self.record.reset();
            }
            Tag::Extensions if self.ext_depth.is_none() => {
                self.ext_depth = Some(self.stack.len());
            }
            _ => {}
        }
        self.stack.push(t);
        self.open_counts[t as usize] += 1;
        // Text before stray markup inside a value (`bad<xml.net`) stays
        // with the value; only known elements start a new one.
        if t != Tag::Other {
            self.text.clear();
        }
        Ok(())
    }

    /// An end tag: close back to the matching open element; ignore an end
    /// tag nothing matches (stray markup).
    /// A stray end tag costs O(1) (the count of open `t` is zero); a
    /// matched one looks at the entries it closes and no others, so the
    /// whole document costs O(its tags).
    pub(super) fn close(&mut self, t: Tag) -> Result<(), ParseError> {
        if self.open_counts[t as usize] == 0 {
            self.repaired += 1;
            return Ok(());
        }
        let Some(pos) = self.stack.iter().rposition(|&s| s == t) else {
            self.repaired += 1;
            return Ok(());
        };
        self.stack_steps += (self.stack.len() - pos) as u64;
        while self.stack.len() > pos + 1 {
            self.repaired += 1;
            self.close_top()?;
        }
        self.close_top()
    }

    pub(super) fn close_top(&mut self) -> Result<(), ParseError> {
        let Some(t) = self.stack.pop() else {
            return Ok(());
        };
        self.open_counts[t as usize] -= 1;
        if let Some(d) = self.ext_depth {
            if self.stack.len() == d {
                self.ext_depth = None;
                self.text.clear();
                return Ok(());
            }
            if self.stack.len() == d + 1 {
                let ext = Extension {
                    name: std::mem::take(&mut self.ext_name),
                    value: take(&mut self.text).unwrap_or_default(),
                };
                if self.open_counts[Tag::Record as usize] > 0 {
                    self.record.extensions.push(ext);
                } else {
                    self.report_extensions.push(ext);
                }
            }
            return Ok(());
        }
        let parent = self.parent();
        let grandparent = self.grandparent();
        let h = &mut self.header;
        let r = &mut self.record;
        match (parent, t) {
            (Some(Tag::Feedback), Tag::Version) => h.version = take(&mut self.text),
            (Some(Tag::ReportMetadata), Tag::OrgName) => {
                h.org_name = take(&mut self.text).unwrap_or_default();
            }
            (Some(Tag::ReportMetadata), Tag::Email) => h.email = take(&mut self.text),
            (Some(Tag::ReportMetadata), Tag::ExtraContactInfo) => {
                h.extra_contact_info = take(&mut self.text);
            }
            (Some(Tag::ReportMetadata), Tag::ReportId) => {
                h.report_id = take(&mut self.text).unwrap_or_default();
            }
            (Some(Tag::ReportMetadata), Tag::Error) => {
                if let Some(e) = take(&mut self.text) {
                    h.errors.push(e);
                }
            }
            (Some(Tag::ReportMetadata), Tag::Generator) => h.generator = take(&mut self.text),
            (Some(Tag::DateRange), Tag::Begin) => self.begin = take(&mut self.text),
            (Some(Tag::DateRange), Tag::End) => self.end = take(&mut self.text),
            (Some(Tag::PolicyPublished), _) => self.policy_field(t)?,
            (Some(Tag::Row), Tag::SourceIp) => r.source_ip.fill(&mut self.text),
            (Some(Tag::Row), Tag::Count) => r.count.fill(&mut self.text),
            (Some(Tag::PolicyEvaluated), Tag::Disposition) => {
                r.disposition.fill(&mut self.text);
            }
            (Some(Tag::PolicyEvaluated), Tag::Dkim) => r.dkim.fill(&mut self.text),
            (Some(Tag::PolicyEvaluated), Tag::Spf) => r.spf.fill(&mut self.text),
            (Some(Tag::PolicyEvaluated), Tag::Reason) => {
                let comment = r.reason_comment.take();
                let kind = match r.reason_type.get() {
                    // An empty <reason/> says nothing.
                    None if comment.is_none() => return Ok(()),
                    None => PolicyOverride::Other,
                    Some(raw) => PolicyOverride::parse(raw).unwrap_or_else(|| {
                        // An unknown override type is still an override:
                        // keep it as `other` and say what it was.
                        h.warnings.push(format!(
                            "record {}: unknown policy override type {raw:?} read as \"other\"",
                            self.records + 1
                        ));
                        PolicyOverride::Other
                    }),
                };
                r.reason_type.clear();
                r.reasons.push(OverrideReason { kind, comment });
            }
            (Some(Tag::Reason), Tag::Type) => r.reason_type.fill(&mut self.text),
            (Some(Tag::Reason), Tag::Comment) => r.reason_comment = take(&mut self.text),
            (Some(Tag::Identifiers), Tag::EnvelopeTo) => r.envelope_to = take(&mut self.text),
            (Some(Tag::Identifiers), Tag::EnvelopeFrom) => {
                r.envelope_from = take(&mut self.text);
            }
            (Some(Tag::Identifiers), Tag::HeaderFrom) => r.header_from = take(&mut self.text),
            (Some(Tag::Dkim | Tag::Spf), _) if grandparent == Some(Tag::AuthResults) => match t {
                Tag::Domain => r.auth_domain = take(&mut self.text),
                Tag::Selector => r.auth_selector = take(&mut self.text),
                Tag::Result => r.auth_result.fill(&mut self.text),
                Tag::HumanResult => r.auth_human = take(&mut self.text),
                Tag::Scope => r.auth_scope.fill(&mut self.text),
                _ => self.text.clear(),
            },
            (Some(Tag::AuthResults), Tag::Dkim) => self.push_dkim()?,
            (Some(Tag::AuthResults), Tag::Spf) => self.push_spf()?,
            (_, Tag::Record) => self.finish_record()?,
            (_, Tag::Other) => {}
            _ => self.text.clear(),
        }
        Ok(())
    }

    pub(super) fn invalid(&self, field: &str, value: &str) -> ParseError {
        ParseError::InvalidValue {
            field: field.to_owned(),
            value: value.to_owned(),
            record: self.current_record(),
        }
    }

    pub(super) fn current_record(&self) -> Option<u64> {
        (self.open_counts[Tag::Record as usize] > 0).then_some(self.records + 1)
    }

    pub(super) fn policy_field(&mut self, t: Tag) -> Result<(), ParseError> {
        let Some(v) = take(&mut self.text) else {
            return Ok(());
        };
        let p = &mut self.header.policy;
        let action = |field: &str| {
            PolicyAction::parse(&v).ok_or_else(|| ParseError::InvalidValue {
                field: format!("policy_published/{field}"),
                value: v.clone(),
                record: None,
            })
        };
        let align = |field: &str| {
            Alignment::parse(&v).ok_or_else(|| ParseError::InvalidValue {
                field: format!("policy_published/{field}"),
                value: v.clone(),
                record: None,
            })
        };
        match t {
            Tag::Domain => p.domain = v.trim_end_matches('.').to_ascii_lowercase(),
            Tag::Adkim => p.adkim = Some(align("adkim")?),
            Tag::Aspf => p.aspf = Some(align("aspf")?),
            Tag::P => p.p = Some(action("p")?),
            Tag::Sp => p.sp = Some(action("sp")?),
            Tag::Np => p.np = Some(action("np")?),
            Tag::Pct => {
                // Integer per the schema; "100.0" is seen too.
                let pct = v
                    .parse::<u8>()
                    .ok()
                    .or_else(|| {
                        v.parse::<f64>()
                            .ok()
                            .filter(|f| (0.0..=100.0).contains(f))
                            .map(|f| f.round() as u8)
                    })
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| self.invalid("policy_published/pct", &v))?;
                self.header.policy.pct = Some(pct);
            }
            Tag::Fo => p.fo = Some(v),
            Tag::Testing => {
                p.testing = Some(match v.to_ascii_lowercase().as_str() {
                    "y" | "yes" | "true" => true,
                    "n" | "no" | "false" => false,
                    _ => return Err(self.invalid("policy_published/testing", &v)),
                });
            }
            Tag::DiscoveryMethod => p.discovery_method = Some(v.to_ascii_lowercase()),
            _ => {}
        }
        Ok(())
    }

    pub(super) fn push_dkim(&mut self) -> Result<(), ParseError> {
        let r = &mut self.record;
        let domain = r.auth_domain.take().unwrap_or_default();
        let selector = r.auth_selector.take();
        let human_result = r.auth_human.take();
        r.auth_scope.clear();
        let result = match self.record.auth_result.get() {
            Some(v) => {
                DkimResult::parse(v).ok_or_else(|| self.invalid("auth_results/dkim/result", v))?
            }
            None => DkimResult::None,
        };
        self.record.auth_result.clear();
        self.record.dkim_results.push(DkimAuth {
            domain,
            selector,
            result,
            human_result,
        });
        Ok(())
    }

    pub(super) fn push_spf(&mut self) -> Result<(), ParseError> {
        let r = &mut self.record;
        let domain = r.auth_domain.take().unwrap_or_default();
        let human_result = r.auth_human.take();
        r.auth_selector = None;
        let r = &self.record;
        let scope = match r.auth_scope.get() {
            Some(v) => {
                Some(SpfScope::parse(v).ok_or_else(|| self.invalid("auth_results/spf/scope", v))?)
            }
            None => None,
        };
        let result = match r.auth_result.get() {
            Some(v) => {
                SpfResult::parse(v).ok_or_else(|| self.invalid("auth_results/spf/result", v))?
            }
            None => SpfResult::None,
        };
        self.record.auth_scope.clear();
        self.record.auth_result.clear();
        self.record.spf_results.push(SpfAuth {
            domain,
            scope,
            result,
            human_result,
        });
        Ok(())
    }

    /// Checks the header once, then hands it to the visitor.
    pub(super) fn send_header(&mut self) -> Result<(), ParseError> {
        if self.header_sent {
            return Ok(());
        }
        self.header_sent = true;
        let h = &mut self.header;
        if h.org_name.is_empty() {
            // parsedmarc does the same: the reporter is named by its address.
            let from_email = h
                .email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.trim_matches(['<', '>', ' ']).to_owned())
                .filter(|d| !d.is_empty());
            match from_email {
                Some(d) => {
                    h.warnings
                        .push("empty <org_name>: taken from the <email> domain".to_owned());
                    h.org_name = d;
                }
                None => {
                    return Err(ParseError::MissingField {
                        field: "report_metadata/org_name".to_owned(),
                    });
                }
            }
        }
        if h.report_id.is_empty() {
            return Err(ParseError::MissingField {
                field: "report_metadata/report_id".to_owned(),
            });
        }
        if h.policy.domain.is_empty() {
            return Err(ParseError::MissingField {
                field: "policy_published/domain".to_owned(),
            });
        }
        let ts = |v: &Option<String>, field: &str| -> Result<i64, ParseError> {
            let v = v.as_deref().ok_or_else(|| ParseError::MissingField {
                field: format!("report_metadata/date_range/{field}"),
            })?;
            // Some reporters write fractional seconds.
            let int = v.split('.').next().unwrap_or(v);
            int.parse::<i64>().map_err(|_| ParseError::InvalidValue {
                field: format!("report_metadata/date_range/{field}"),
                value: v.to_owned(),
                record: None,
            })
        };
        h.date_begin = ts(&self.begin, "begin")?;
        h.date_end = ts(&self.end, "end")?;
        if h.date_end < h.date_begin {
            return Err(ParseError::InvalidValue {
                field: "report_metadata/date_range".to_owned(),
                value: format!("{}..{}", h.date_begin, h.date_end),
                record: None,
            });
        }
        // RFC 7489 section 7.2: "reports ... SHOULD cover ... a 24-hour
        // period"; longer ranges are kept but noted.
        if h.date_end - h.date_begin > 86_400 + 1 {
            h.warnings.push(format!(
                "date range spans {} hours (more than 24)",
                (h.date_end - h.date_begin + 3599) / 3600
            ));
        }
        self.accepted = self
            .visitor
            .header(&self.header)
            .map_err(|source| ParseError::Sink { source })?;
        Ok(())
    }

    pub(super) fn finish_record(&mut self) -> Result<(), ParseError> {
        let d = &mut self.record;
        let n = self.records + 1;
        let bad = |field: &str, value: &str| ParseError::InvalidValue {
            field: field.to_owned(),
            value: value.to_owned(),
            record: Some(n),
        };
        let ip = d
            .source_ip
            .get()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let source_ip: IpAddr = ip.parse().map_err(|_| bad("row/source_ip", ip))?;
        let count_s = d.count.get().unwrap_or_default();
        let count: u64 = count_s.parse().map_err(|_| bad("row/count", count_s))?;
        // A count no reporter can have seen (the dashboards sum them):
        // refused, so one report cannot overflow every later sum.
        if count > self.opts.max_count {
            return Err(ParseError::TooLarge {
                what: format!("row/count {count} in record {n} (max_record_count)"),
                limit: self.opts.max_count,
            });
        }
        let messages = self.messages.saturating_add(count);
        if messages > self.opts.max_messages {
            return Err(ParseError::TooLarge {
                what: format!(
                    "the report's total of row/count, {messages} at record {n} (max_report_messages),"
                ),
                limit: self.opts.max_messages,
            });
        }
        let disp = d.disposition.get().unwrap_or_default();
        let disposition =
            Disposition::parse(disp).ok_or_else(|| bad("policy_evaluated/disposition", disp))?;
        let dmarc = |v: &Slot, field: &str| -> Result<Option<DmarcResult>, ParseError> {
            match v.get() {
                None => Ok(None),
                Some(v) => DmarcResult::parse(v).map(Some).ok_or_else(|| bad(field, v)),
            }
        };
        let dkim = dmarc(&d.dkim, "policy_evaluated/dkim")?;
        let spf = dmarc(&d.spf, "policy_evaluated/spf")?;
        let header_from = d
            .header_from
            .take()
            .ok_or_else(|| bad("identifiers/header_from", ""))?;
        let record = Record {
            source_ip,
            count,
            disposition,
            dkim,
            spf,
            reasons: std::mem::take(&mut d.reasons),
            envelope_to: d.envelope_to.take(),
            envelope_from: d.envelope_from.take(),
            header_from,
            dkim_results: std::mem::take(&mut d.dkim_results),
            spf_results: std::mem::take(&mut d.spf_results),
            extensions: std::mem::take(&mut d.extensions),
        };
        d.reset();
        self.records = n;
        self.messages = messages;
        if self.accepted {
            self.visitor
                .record_owned(record)
                .map_err(|source| ParseError::Sink { source })?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<AggregateSummary, ParseError> {
        if !self.seen_feedback {
            return Err(ParseError::NotAReport {
                detail: "no <feedback> element".to_owned(),
            });
        }
        self.send_header()?;
        if self.controls > 0 {
            self.header.warnings.push(format!(
                "{} control character(s) removed from text",
                self.controls
            ));
        }
        if self.repaired > 0 {
            self.header.warnings.push(format!(
                "malformed XML: {} tag(s) closed or ignored to recover",
                self.repaired
            ));
        }
        let mut summary = AggregateSummary {
            header: self.header,
            records: self.records,
            messages: self.messages,
            accepted: self.accepted,
            extensions: self.report_extensions,
        };
        if summary.accepted {
            summary.accepted = self
                .visitor
                .end(&summary)
                .map_err(|source| ParseError::Sink { source })?;
        }
        Ok(summary)
    }
}
