//! `mailauth inspect`: analyse a received message the way a receiver does.
//! It reads the Received trace (which server handed the message to whom,
//! what a trusted server recorded and what is only claimed), the
//! identities (From, Return-Path, HELO, DKIM `d=`), evaluates DKIM, SPF and
//! DMARC now against DNS, compares that with the Authentication-Results and
//! ARC headers already in the message, and says why DMARC passes or fails.
//!
//! Owns: message header splitting ([`message`]), the DKIM verifier
//! ([`dkim`]), the trace parser ([`received`]), DMARC evaluation for one
//! message ([`dmarc`]), recorded results ([`authres`]) and the report (the
//! command is `mailauth::inspect::cli`, beside the command line). It leaves
//! alone: SPF evaluation (`crate::spf`), the record syntaxes
//! (`crate::record`), DNS transport (any [`SpfDns`]), and the config (read
//! only, to suggest a fix).

pub mod arc;
pub mod authres;
pub mod dkim;
pub mod dmarc;
pub mod message;
pub mod received;
mod report;

use std::net::IpAddr;

use serde::Serialize;

use crate::spf::{CheckOptions, SpfDns, SpfOutcome, SpfResult};
pub use report::{render_text, suggest_fixes};

/// Errors that stop an inspection (per-check problems are part of the
/// report instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    #[error("{source_name}: cannot read the message: {detail}")]
    Read { source_name: String, detail: String },
    #[error("{source_name}: not a message: {detail}")]
    NotAMessage { source_name: String, detail: String },
    #[error("{source_name}: no message/rfc822 or text/rfc822-headers part to inspect")]
    NoEmbedded { source_name: String },
}

/// How to inspect.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The receiving organisation's hosts and authserv-ids (`.example.com`
    /// matches subdomains).
    pub trusted: Vec<String>,
    /// The connecting IP to check SPF for, instead of the one the trusted
    /// boundary hop recorded.
    pub ip: Option<IpAddr>,
    /// Where `ip` comes from, for the explanation (default `--ip`).
    pub ip_source: Option<String>,
    /// Evaluation time, unix seconds.
    pub now: u64,
    /// `raw` is only the header section of the message (a
    /// `text/rfc822-headers` copy): body hashes are not checked.
    pub headers_only: bool,
}

/// One identity of the message and who vouches for it.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `header.from`, `smtp.mailfrom`, `smtp.helo`, `dkim.d`, `client.ip`.
    pub kind: &'static str,
    pub value: String,
    pub domain: Option<String>,
    /// Where it comes from and whether anything authenticates it.
    pub source: String,
    /// Recorded by a server the user trusts (as opposed to a claim).
    pub recorded: bool,
}

/// The SPF check made now.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpfCheck {
    pub ip: IpAddr,
    /// `--ip`, or the Received field the address came from.
    pub ip_source: String,
    /// The domain checked (MAIL FROM domain, or HELO for a null sender).
    pub domain: String,
    pub sender: String,
    pub helo: Option<String>,
    pub outcome: SpfOutcome,
}

/// Everything `inspect` found.
#[derive(schemars::JsonSchema, Clone, Debug, Serialize)]
pub struct Inspection {
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub hops: Vec<received::Hop>,
    /// Index of the lowest trusted hop (the organisation's boundary).
    pub boundary: Option<usize>,
    /// The first server outside the organisation, as recorded.
    pub first_outside: Option<String>,
    pub identities: Vec<Identity>,
    pub from_domain: Option<String>,
    pub dkim: Vec<dkim::Verdict>,
    pub spf: Option<SpfCheck>,
    pub dmarc: Option<dmarc::DmarcOutcome>,
    pub recorded: Vec<authres::AuthResults>,
    pub arc: authres::ArcChain,
    /// The ARC chain validated now (RFC 8617 §5.2).
    pub arc_verdict: arc::ArcVerdict,
    /// Where the results recorded in the message differ from now.
    pub disagreements: Vec<String>,
    /// Other observations (missing From, several From, clock skew…).
    pub notes: Vec<String>,
    /// Config changes that would fix a failure (filled by the CLI when the
    /// From domain is managed).
    pub fixes: Vec<String>,
}

impl Inspection {
    /// Whether DMARC passes and nothing recorded disagrees.
    pub fn is_clean(&self) -> bool {
        self.dmarc
            .as_ref()
            .is_some_and(|d| d.result == dmarc::DmarcResult::Pass)
            && self.disagreements.is_empty()
    }
}

/// Inspects `raw` (a whole message or just its header section).
pub fn inspect(raw: &[u8], dns: &dyn SpfDns, opts: &Options) -> Inspection {
    let mut msg = message::Message::parse(raw);
    msg.headers_only = opts.headers_only;
    let mut notes = Vec::new();
    if opts.headers_only {
        notes.push(
            "only the header fields of the message are available: DKIM and ARC signatures are checked over the header fields, body hashes cannot be".into(),
        );
    }
    let first = |n: &str| msg.first(n).map(|h| h.value());

    // Received chain, top (newest) first.
    let values: Vec<String> = msg.all("Received").map(|h| h.value()).collect();
    let hops = received::chain(&values, &opts.trusted);
    if opts.trusted.is_empty() && !hops.is_empty() {
        notes.push(
            "no --trusted hosts given: only the topmost Received field is taken as recorded by your own server".into(),
        );
    }
    for h in &hops {
        if h.delay.is_some_and(|d| d < 0) {
            notes.push(format!(
                "Received #{} is timestamped {}s before the hop below it: a clock is wrong or a field is forged",
                h.index,
                -h.delay.unwrap_or(0)
            ));
        }
    }
    let boundary = received::boundary(&hops).cloned();
    let first_outside = boundary.as_ref().map(|b| {
        let name = b.from_rdns.clone().or_else(|| b.from.clone());
        let mut out = match (name, b.from_ip) {
            // `from [192.0.2.1]`: the address literal is the name.
            (Some(n), Some(ip)) if n.trim_matches(['[', ']']) == ip.to_string() => {
                format!("[{ip}]")
            }
            (Some(n), Some(ip)) => format!("{n} [{ip}]"),
            (Some(n), None) => n,
            (None, Some(ip)) => format!("[{ip}]"),
            (None, None) => "(unnamed)".to_string(),
        };
        if let Some(h) = &b.helo {
            out.push_str(&format!(" (HELO {h})"));
        }
        out
    });

    // Identities.
    let mut identities = Vec::new();
    let from_values: Vec<String> = msg.all("From").map(|h| h.value()).collect();
    let from_addrs: Vec<String> = from_values
        .iter()
        .flat_map(|v| message::mailboxes(v))
        .collect();
    let from_domains: Vec<String> = {
        let mut d: Vec<String> = from_addrs
            .iter()
            .filter_map(|a| message::address_domain(a))
            .collect();
        d.dedup();
        d
    };
    // RFC 9989 §4.5 (as RFC 7489 §6.6.1): messages with no From domain, or
    // several From fields / addresses with different domains, cannot be
    // evaluated reliably.
    if from_values.len() > 1 {
        notes.push(format!(
            "{} From fields: RFC 5322 allows one; receivers typically reject such messages",
            from_values.len()
        ));
    }
    if from_domains.len() > 1 {
        notes.push(format!(
            "From names several domains ({}): DMARC cannot pick one",
            from_domains.join(", ")
        ));
    }
    let from_domain = (from_domains.len() == 1).then(|| from_domains[0].clone());
    if from_addrs.is_empty() {
        notes.push("the message has no From address: DMARC cannot be evaluated".into());
    }
    for a in &from_addrs {
        identities.push(Identity {
            kind: "header.from",
            value: a.clone(),
            domain: message::address_domain(a),
            source: "From header, written by the sender: a claim until DMARC passes".into(),
            recorded: false,
        });
    }
    let return_path = first("Return-Path").map(|v| {
        message::mailboxes(&v)
            .into_iter()
            .next()
            .unwrap_or_default()
    });
    let bhop = boundary.clone();
    let sender = return_path
        .clone()
        .or_else(|| bhop.as_ref().and_then(|h| h.envelope_from.clone()));
    if let Some(s) = &sender {
        identities.push(Identity {
            kind: "smtp.mailfrom",
            value: if s.is_empty() { "<>".into() } else { s.clone() },
            domain: message::address_domain(s),
            source: if return_path.is_some() {
                "Return-Path: the MAIL FROM the client gave, a claim until SPF passes".into()
            } else {
                "envelope-from in the boundary Received field: a claim until SPF passes".into()
            },
            recorded: false,
        });
    }
    if let Some(h) = bhop
        .as_ref()
        .and_then(|h| h.helo_name().map(str::to_string))
    {
        identities.push(Identity {
            kind: "smtp.helo",
            value: h.clone(),
            domain: Some(h.to_ascii_lowercase()),
            source: "HELO/EHLO name the client gave: a claim".into(),
            recorded: false,
        });
    }
    let client_ip = opts.ip.or(bhop.as_ref().and_then(|h| h.from_ip));
    if let Some(ip) = client_ip {
        identities.push(Identity {
            kind: "client.ip",
            value: ip.to_string(),
            domain: None,
            source: match (&opts.ip, &bhop) {
                (Some(_), _) => {
                    format!("given with {}", opts.ip_source.as_deref().unwrap_or("--ip"))
                }
                (None, Some(h)) => format!(
                    "recorded by {} (Received #{}), a server you trust",
                    h.by.as_deref().unwrap_or("?"),
                    h.index
                ),
                (None, None) => String::new(),
            },
            recorded: opts.ip.is_none(),
        });
    }

    // DKIM.
    let dkim = dkim::verify_all(dns, &msg, opts.now);
    for v in &dkim {
        if let Some(d) = &v.domain {
            identities.push(Identity {
                kind: "dkim.d",
                value: format!("{d} (s={})", v.selector.as_deref().unwrap_or("?")),
                domain: Some(d.clone()),
                source: format!("DKIM-Signature, {}", v.result),
                recorded: v.result == dkim::DkimResult::Pass,
            });
        }
    }

    // SPF, RFC 7208 §2.4 with the connecting IP of the trusted hop.
    let spf = match (client_ip, &sender) {
        (Some(ip), Some(s)) => {
            let helo = bhop
                .as_ref()
                .and_then(|h| h.helo_name().map(str::to_string));
            let copts = CheckOptions {
                timestamp: Some(opts.now),
                ..CheckOptions::default()
            };
            let outcome = crate::spf::check_sender(dns, ip, s, helo.as_deref(), &copts);
            let domain = message::address_domain(s)
                .or_else(|| helo.clone())
                .unwrap_or_default();
            Some(SpfCheck {
                ip,
                ip_source: match (&opts.ip, &bhop) {
                    (Some(_), _) => opts.ip_source.clone().unwrap_or_else(|| "--ip".into()),
                    (None, Some(h)) => format!("Received #{}", h.index),
                    (None, None) => String::new(),
                },
                domain,
                sender: s.clone(),
                helo,
                outcome,
            })
        }
        (None, _) => {
            notes.push("no connecting IP (no trusted Received field records one, and no --ip): SPF not evaluated".into());
            None
        }
        (Some(_), None) => {
            notes.push("no envelope sender (no Return-Path): SPF not evaluated".into());
            None
        }
    };

    // DMARC.
    let dmarc = from_domain.as_ref().map(|fd| {
        let spf_id = spf
            .as_ref()
            .filter(|s| !s.domain.is_empty())
            .map(|s| (s.domain.as_str(), s.outcome.result.as_str()));
        let dkim_ids: Vec<(String, String)> = dkim
            .iter()
            .filter_map(|v| Some((v.domain.clone()?, v.result.as_str().to_string())))
            .collect();
        dmarc::evaluate(dns, fd, spf_id, &dkim_ids)
    });

    // Recorded results.
    let mut recorded = Vec::new();
    let mut arc_fields = Vec::new();
    for (i, h) in msg.headers.iter().enumerate() {
        if h.is("Authentication-Results") {
            if let Some(mut ar) = authres::parse(i, &h.value(), false) {
                ar.trusted = received::host_matches(&ar.authserv_id, &opts.trusted);
                recorded.push(ar);
            }
        } else if h.is("ARC-Seal")
            || h.is("ARC-Message-Signature")
            || h.is("ARC-Authentication-Results")
        {
            arc_fields.push((i, h.name.clone(), h.value()));
        }
    }
    let arc = authres::arc_chain(&arc_fields);
    let arc_verdict = arc::verify_chain(dns, &msg);
    let mut disagreements = Vec::new();
    for ar in &recorded {
        let who = format!(
            "Authentication-Results from {}{}",
            ar.authserv_id,
            if ar.trusted {
                ""
            } else {
                " (not a trusted authserv-id)"
            }
        );
        compare(
            &who,
            &ar.results,
            &dkim,
            spf.as_ref(),
            dmarc.as_ref(),
            Some(&arc_verdict),
            &mut disagreements,
        );
    }
    for set in &arc.sets {
        if let Some(aar) = &set.aar {
            let who = format!(
                "ARC-Authentication-Results i={} from {}",
                set.instance, aar.authserv_id
            );
            // Only DKIM and DMARC: SPF in an earlier ARC hop was checked
            // for a different connecting IP.
            let results: Vec<_> = aar
                .results
                .iter()
                .filter(|r| r.method != "spf")
                .cloned()
                .collect();
            compare(
                &who,
                &results,
                &dkim,
                None,
                dmarc.as_ref(),
                // The earlier hop saw the chain as it was then.
                None,
                &mut disagreements,
            );
        }
    }
    for p in &arc.problems {
        notes.push(format!("ARC: {p}"));
    }

    Inspection {
        subject: first("Subject"),
        message_id: first("Message-ID"),
        hops,
        boundary: boundary.as_ref().map(|b| b.index),
        first_outside,
        identities,
        from_domain,
        dkim,
        spf,
        dmarc,
        recorded,
        arc,
        arc_verdict,
        disagreements,
        notes,
        fixes: Vec::new(),
    }
}

fn pass_or_not(r: &str) -> bool {
    r == "pass"
}

/// Flags each recorded result that differs from the one computed now.
fn compare(
    who: &str,
    results: &[authres::MethodResult],
    dkim: &[dkim::Verdict],
    spf: Option<&SpfCheck>,
    dmarc: Option<&dmarc::DmarcOutcome>,
    arc: Option<&arc::ArcVerdict>,
    out: &mut Vec<String>,
) {
    for r in results {
        match r.method.as_str() {
            "spf" => {
                let Some(s) = spf else { continue };
                // The identity the recorded check was for: the MAIL FROM
                // domain, or the HELO name for a null reverse-path.
                let recorded_domain = r
                    .prop("smtp.mailfrom")
                    .filter(|m| !m.is_empty() && *m != "<>")
                    .map(|m| message::address_domain(m).unwrap_or_else(|| m.to_ascii_lowercase()))
                    .or_else(|| r.prop("smtp.helo").map(|h| h.to_ascii_lowercase()));
                if recorded_domain.as_deref().is_some_and(|d| d != s.domain) {
                    continue;
                }
                let now = s.outcome.result;
                if r.result != now.as_str() && !(r.result == "none" && now == SpfResult::None) {
                    out.push(format!(
                        "{who} says spf={} for {}, but checking {} now gives {}",
                        r.result, s.domain, s.ip, now
                    ));
                }
            }
            "dkim" => {
                let d = r
                    .prop("header.d")
                    .or(r.prop("header.i").and_then(|i| i.rsplit('@').next()));
                let b = r.prop("header.b");
                let s = r.prop("header.s");
                let matches: Vec<&dkim::Verdict> = dkim
                    .iter()
                    .filter(|v| {
                        let b_ok = match (b, &v.signature) {
                            (Some(b), Some(sig)) => b_tag_matches(sig, b),
                            _ => true,
                        };
                        let d_ok =
                            d.is_none_or(|d| v.domain.as_deref() == Some(&d.to_ascii_lowercase()));
                        let s_ok = s
                            .is_none_or(|s| v.selector.as_deref() == Some(&s.to_ascii_lowercase()));
                        b_ok && d_ok && s_ok
                    })
                    .collect();
                if r.result == "none" {
                    if !dkim.is_empty() {
                        out.push(format!(
                            "{who} says dkim=none, but the message has {} DKIM signature(s)",
                            dkim.len()
                        ));
                    }
                    continue;
                }
                let Some(v) = matches.first() else {
                    out.push(format!(
                        "{who} reports dkim={} for d={} but the message has no such signature now",
                        r.result,
                        d.unwrap_or("?")
                    ));
                    continue;
                };
                if pass_or_not(&r.result) != (v.result == dkim::DkimResult::Pass) {
                    out.push(format!(
                        "{who} says dkim={} for d={}, but verifying now gives {}{}",
                        r.result,
                        v.domain.as_deref().unwrap_or("?"),
                        v.result,
                        v.error
                            .as_ref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ));
                }
            }
            "arc" => {
                if let Some(a) = arc
                    && r.result != a.cv
                {
                    out.push(format!(
                        "{who} says arc={}, but validating the chain now gives {}",
                        r.result, a.cv
                    ));
                }
            }
            "dmarc" => {
                let Some(m) = dmarc else { continue };
                if r.result != m.result.as_str() {
                    out.push(format!(
                        "{who} says dmarc={}, but evaluating now gives {}",
                        r.result,
                        m.result.as_str()
                    ));
                }
            }
            _ => {}
        }
    }
}

/// RFC 6008 §4: `header.b` holds a prefix of the signature's `b=` value
/// (at least 8 characters), identifying which signature a result is for.
fn b_tag_matches(sig: &dkim::Signature, prefix: &str) -> bool {
    use base64::Engine as _;
    let full = base64::engine::general_purpose::STANDARD.encode(&sig.b);
    full.starts_with(prefix)
}

/// Reads a message from `path` (`-` for stdin). With `embedded`, returns
/// the message inside a failure report instead.
pub fn read_message(path: &str, embedded: bool) -> Result<message::Original, InspectError> {
    use std::io::Read as _;
    let mut raw = Vec::new();
    let res = if path == "-" {
        std::io::stdin().read_to_end(&mut raw).map(|_| ())
    } else {
        std::fs::read(path).map(|b| raw = b)
    };
    res.map_err(|e| InspectError::Read {
        source_name: path.to_string(),
        detail: e.to_string(),
    })?;
    let msg = message::Message::parse(&raw);
    if msg.headers.is_empty() {
        return Err(InspectError::NotAMessage {
            source_name: path.to_string(),
            detail: "no header fields at the start".into(),
        });
    }
    if embedded {
        return msg.embedded().ok_or_else(|| InspectError::NoEmbedded {
            source_name: path.to_string(),
        });
    }
    Ok(message::Original {
        bytes: raw,
        headers_only: false,
    })
}
