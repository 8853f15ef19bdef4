//! Semantic checks serde cannot express. Every problem is collected (not
//! just the first), each with its location and field path.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::{Config, Domain, HostList, Located, SelectorConfig, StoreConfig};
use crate::record::Name;

/// Errors (the config is refused) and warnings (it is used, and the
/// warning printed).
struct Problems {
    errors: Vec<Located>,
    warnings: Vec<Located>,
}

fn located<T>(s: &Spanned<T>, field: String, message: String, hint: Option<&str>) -> Located {
    Located {
        line: s.referenced.line() as usize,
        column: s.referenced.column() as usize,
        field,
        message,
        hint: hint.map(str::to_string),
    }
}

impl Problems {
    fn at<T>(&mut self, s: &Spanned<T>, field: String, message: String, hint: Option<&str>) {
        self.errors.push(located(s, field, message, hint));
    }

    fn warn<T>(&mut self, s: &Spanned<T>, field: String, message: String, hint: Option<&str>) {
        self.warnings.push(located(s, field, message, hint));
    }
}

/// RFC 2181 §8: a TTL is "an unsigned number, with a minimum value of 0,
/// and a maximum value of 2147483647"; values above are treated as 0 by
/// receivers. mailauth also refuses 0 (a record nobody may cache).
pub const MAX_TTL: u32 = 2_147_483_647;

/// Checks `config`; returns (errors, warnings), each in no particular order.
pub(super) fn check(config: &Config) -> (Vec<Located>, Vec<Located>) {
    let mut p = Problems {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    if let Some(store) = &config.store {
        check_store(&mut p, store);
    }
    let mut seen: HashMap<String, &Spanned<String>> = HashMap::new();
    let mut domains: Vec<_> = config.domains.iter().collect();
    domains.sort_by_key(|(k, _)| (k.referenced.line(), k.referenced.column()));
    for (name, domain) in domains {
        let field = format!("domains.{}", name.value);
        match Name::parse(&name.value) {
            Err(e) => p.at(
                name,
                field.clone(),
                format!("invalid domain name: {e}"),
                None,
            ),
            Ok(n) => {
                if let Some(first) = seen.insert(n.to_string(), name) {
                    p.at(
                        name,
                        field.clone(),
                        format!(
                            "domain `{}` is declared twice (first at line {})",
                            n,
                            first.referenced.line()
                        ),
                        Some("names are case-insensitive and a trailing dot does not matter"),
                    );
                }
                if n.as_str().split('.').count() < 2 {
                    p.at(
                        name,
                        field.clone(),
                        format!("`{n}` is not a domain below a public suffix"),
                        None,
                    );
                }
            }
        }
        let ttl = domain.ttl.unwrap_or(config.defaults.ttl);
        check_domain(&mut p, name, &field, domain, ttl);
        if config.keys.is_none() {
            for (i, sel) in domain
                .dkim
                .iter()
                .flat_map(|d| d.selectors.iter())
                .enumerate()
            {
                if let Some(prefix) = &sel.prefix {
                    p.at(
                        prefix,
                        format!("{field}.dkim.selectors[{i}].prefix"),
                        "a rotated key family needs a keystore".into(),
                        Some("add `keys: { dir: keys }` at the top level"),
                    );
                }
            }
        }
        for (i, prov) in domain.providers.iter().enumerate() {
            if !config.providers.contains_key(&prov.value) {
                let known: Vec<&str> = config.providers.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "declare it under the top-level `providers:` map".to_string()
                } else {
                    format!("known providers: {}", known.join(", "))
                };
                p.at(
                    prov,
                    format!("{field}.providers[{i}]"),
                    format!("no provider named `{}`", prov.value),
                    Some(&hint),
                );
            }
        }
    }
    (p.errors, p.warnings)
}

/// The report store URL: a known scheme, and no password in it (RFC 3986
/// section 3.2.1: `userinfo = user [ ":" password ]`; libpq also reads a
/// `password=` query parameter). The password is never echoed.
fn check_store(p: &mut Problems, s: &Spanned<StoreConfig>) {
    let url = s.value.url();
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let sqlite = url.starts_with("sqlite:") || !url.contains("://");
    let field = match s.value {
        StoreConfig::Url(_) => "store",
        StoreConfig::Table(_) => "store.url",
    };
    if !postgres && !sqlite {
        p.at(
            s,
            field.into(),
            "unsupported store URL".into(),
            Some("use sqlite://PATH, a file path, or postgres://USER@HOST:PORT/DB"),
        );
        return;
    }
    if url.is_empty() || url == "sqlite://" || url == "sqlite:" {
        p.at(s, field.into(), "the store URL is empty".into(), None);
        return;
    }
    if postgres {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let in_userinfo = authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
        let in_query = rest.split_once('?').is_some_and(|(_, q)| {
            q.split('&').any(|kv| {
                kv.split('=')
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("password"))
            })
        });
        if in_userinfo || in_query {
            p.at(
                s,
                field.into(),
                "the store URL holds a password; a config file is no place for it".into(),
                Some(
                    "remove it from the URL and name a file holding it with `password_file:`, or set MAILAUTH_STORE_PASSWORD",
                ),
            );
        }
    } else if s.value.password_file().is_some() {
        p.at(
            s,
            "store.password_file".into(),
            "password_file is for a postgres:// store; an SQLite store has no password".into(),
            None,
        );
    }
}

fn check_domain(p: &mut Problems, name: &Spanned<String>, field: &str, d: &Domain, ttl: u32) {
    if d.parked && (d.spf.is_some() || d.dkim.is_some() || d.dmarc.is_some()) {
        p.at(
            name,
            field.to_string(),
            "a parked domain publishes its own SPF, DKIM and DMARC records; remove spf/dkim/dmarc or `parked: true`".into(),
            None,
        );
    }
    if d.ttl == Some(0) {
        p.at(
            name,
            format!("{field}.ttl"),
            "ttl must be at least 1".into(),
            None,
        );
    }
    if d.ttl.is_some_and(|t| t > MAX_TTL) {
        p.at(
            name,
            format!("{field}.ttl"),
            format!("ttl must be at most {MAX_TTL} (RFC 2181 §8)"),
            None,
        );
    }
    if let Some(spf) = &d.spf {
        for (i, net) in spf.ip4.iter().enumerate() {
            if parse_net::<std::net::Ipv4Addr>(&net.value, 32).is_err() {
                p.at(
                    net,
                    format!("{field}.spf.ip4[{i}]"),
                    format!("`{}` is not an IPv4 address or CIDR network", net.value),
                    Some("write e.g. 192.0.2.0/24 or 192.0.2.10"),
                );
            }
        }
        for (i, net) in spf.ip6.iter().enumerate() {
            if parse_net::<std::net::Ipv6Addr>(&net.value, 128).is_err() {
                p.at(
                    net,
                    format!("{field}.spf.ip6[{i}]"),
                    format!("`{}` is not an IPv6 address or CIDR network", net.value),
                    Some("write e.g. 2001:db8::/32"),
                );
            }
        }
        for (i, inc) in spf.include.iter().enumerate() {
            if Name::parse(&inc.value).is_err() || !inc.value.contains('.') {
                p.at(
                    inc,
                    format!("{field}.spf.include[{i}]"),
                    format!("`{}` is not a domain name", inc.value),
                    None,
                );
            }
        }
        if let (Some(r), Some(_)) = (&spf.redirect, spf.all) {
            p.at(
                r,
                format!("{field}.spf.redirect"),
                "`redirect` and `all` exclude each other (RFC 7208 §6.1: redirect is ignored when all is present)".into(),
                Some("keep `redirect` to delegate the whole policy, or `all` to end the record here"),
            );
        }
        // RFC 7208 §4.6.4: at most 10 DNS-querying terms in the whole
        // evaluation; a record whose own terms already exceed that can
        // never evaluate.
        let hosts = |h: &Option<HostList>| match h {
            None | Some(HostList::Enabled(false)) => 0,
            Some(HostList::Enabled(true)) => 1,
            Some(HostList::Names(n)) => n.len(),
        };
        // Flattened includes cost no lookup: count only the kept ones.
        let includes = if spf.flatten == crate::spf::flatten::Mode::Never {
            spf.include.len()
        } else {
            spf.keep.len()
        };
        let lookups = includes
            + spf.exists.len()
            + hosts(&spf.a)
            + hosts(&spf.mx)
            + usize::from(spf.redirect.is_some());
        if lookups > 10 {
            p.at(
                name,
                format!("{field}.spf"),
                format!(
                    "this SPF record needs {lookups} DNS lookups by itself; RFC 7208 §4.6.4 allows 10"
                ),
                Some("replace includes by ip4/ip6 networks, or split senders across subdomains"),
            );
        }
    }
    if let Some(spf) = &d.spf {
        check_flatten(p, field, spf);
    }
    if let Some(dmarc) = &d.dmarc {
        if let Some(fo) = &dmarc.fo {
            check_fo(p, &format!("{field}.dmarc.fo"), fo);
        }
        if let Some(psd) = &dmarc.psd
            && !["y", "n", "u"].contains(&psd.value.to_ascii_lowercase().as_str())
        {
            p.at(
                psd,
                format!("{field}.dmarc.psd"),
                format!("`{}` is not y, n or u (RFC 9989 §4.7)", psd.value),
                None,
            );
        }
        for (tag, list) in [("rua", &dmarc.rua), ("ruf", &dmarc.ruf)] {
            for (i, uri) in list.iter().enumerate() {
                if let Err(e) = check_mailto(&uri.value) {
                    p.at(
                        uri,
                        format!("{field}.dmarc.{tag}[{i}]"),
                        e,
                        Some("write mailto:dmarc-reports@example.com"),
                    );
                }
            }
        }
    }
    if let Some(v) = &d.verbatim {
        check_verbatim(p, field, d, v);
    }
    if let Some(tls) = &d.tls_rpt {
        for (i, uri) in tls.rua.iter().enumerate() {
            let v = uri.value.to_ascii_lowercase();
            if !(v.starts_with("https://") || check_mailto(&uri.value).is_ok()) {
                p.at(
                    uri,
                    format!("{field}.tls_rpt.rua[{i}]"),
                    format!("`{}` is neither a mailto: nor an https: URI", uri.value),
                    None,
                );
            }
        }
    }
    if let Some(sts) = &d.mta_sts {
        if let Some(id_span) = &sts.id {
            let id = &id_span.value;
            if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                p.at(
                    id_span,
                    format!("{field}.mta_sts.id"),
                    format!("`{id}` is not 1 to 32 letters and digits (RFC 8461 §3.1)"),
                    Some("leave `id` out: mailauth derives it from the policy"),
                );
            }
        }
        // RFC 8461 §3.2: max_age is "up to 31557600" seconds (a year).
        if let Some(age) = sts.max_age.filter(|a| *a > 31_557_600) {
            p.at(
                &sts.mode,
                format!("{field}.mta_sts.max_age"),
                format!("{age} is more than 31557600 seconds (RFC 8461 §3.2)"),
                Some("604800 (a week) is the usual value"),
            );
        }
        if !["enforce", "testing", "none"].contains(&sts.mode.value.as_str()) {
            p.at(
                &sts.mode,
                format!("{field}.mta_sts.mode"),
                format!("`{}` is not enforce, testing or none", sts.mode.value),
                Some("RFC 8461 §3.2: mode is enforce, testing or none"),
            );
        } else if sts.mode.value != "none" && sts.mx.is_empty() {
            // RFC 8461 §3.2: mx is "required at least once, except when
            // mode is "none"".
            p.at(
                &sts.mode,
                format!("{field}.mta_sts.mx"),
                format!(
                    "mode {} needs at least one `mx` pattern (RFC 8461 §3.2)",
                    sts.mode.value
                ),
                Some("list the MX hosts, e.g. mx: [mx1.example.com, \"*.example.net\"]"),
            );
        }
        for (i, mx) in sts.mx.iter().enumerate() {
            let text = format!("version: STSv1\nmode: none\nmx: {}\nmax_age: 1\n", mx.value);
            if mx.value.contains(['\n', '\r'])
                || text.parse::<crate::record::mtasts::MtaStsPolicy>().is_err()
            {
                p.at(
                    mx,
                    format!("{field}.mta_sts.mx[{i}]"),
                    format!("`{}` is not a host name or `*.` and a domain", mx.value),
                    Some("write e.g. mx1.example.com or \"*.example.net\""),
                );
            }
        }
        if let Some(publish) = &sts.publish {
            check_publish(p, &format!("{field}.mta_sts.publish"), publish);
        }
    }
    if let Some(bimi) = &d.bimi {
        check_bimi(p, name, &format!("{field}.bimi"), d, bimi);
    }
    if let Some(dkim) = &d.dkim {
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, sel) in dkim.selectors.iter().enumerate() {
            let sel_field = format!("{field}.dkim.selectors[{i}]");
            check_selector(p, &sel_field, name, sel, &mut names);
            check_family(p, &sel_field, sel, ttl);
        }
    }
}

/// `mta_sts.publish`: exactly one of `dir` and `url`; a URL is `https://`,
/// or `http://` to a loopback address (nothing crosses a network in clear).
fn check_publish(p: &mut Problems, field: &str, publish: &Spanned<super::PublishConfig>) {
    match (&publish.value.dir, &publish.value.url) {
        (Some(_), None) => {}
        (None, Some(url)) => {
            let lower = url.to_ascii_lowercase();
            let host = lower
                .split_once("://")
                .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
                .unwrap_or("");
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.split_once(']').map(|(a, _)| a))
                .unwrap_or_else(|| host.split(':').next().unwrap_or(""));
            let loopback = bare == "localhost"
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            let ok = (lower.starts_with("https://") || (lower.starts_with("http://") && loopback))
                && !bare.is_empty();
            if !ok {
                p.at(
                    publish,
                    format!("{field}.url"),
                    format!("`{url}` is not an https:// URL (http:// only to a loopback address)"),
                    Some("write e.g. https://www.example.com/dav/mta-sts.txt"),
                );
            }
        }
        _ => p.at(
            publish,
            field.to_string(),
            "publish needs exactly one of `dir` (a web root) and `url` (an HTTP PUT target)".into(),
            None,
        ),
    }
}

/// `bimi`: the record parses (HTTPS URLs), the selector is a DNS label, and
/// DMARC enforces. BIMI (draft-brand-indicators-for-message-identification
/// §4.4 and the BIMI Group's receiver guidance) is only honoured for mail
/// under a DMARC policy of quarantine or reject on the domain and its
/// subdomains, not in testing mode.
fn check_bimi(
    p: &mut Problems,
    name: &Spanned<String>,
    field: &str,
    d: &Domain,
    bimi: &super::BimiConfig,
) {
    use super::PolicyConfig;
    if let Some(sel) = &bimi.selector {
        let ok = !sel.value.is_empty()
            && sel.value.len() <= 63
            && sel
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            p.at(
                sel,
                format!("{field}.selector"),
                format!(
                    "`{}` is not one DNS label (letters, digits, `-`, `_`)",
                    sel.value
                ),
                None,
            );
        }
    }
    if bimi.declined {
        if let Some(l) = bimi.logo.as_ref().or(bimi.authority.as_ref()) {
            p.at(
                l,
                field.to_string(),
                "`declined: true` publishes `v=BIMI1; l=; a=;`: remove `logo` and `authority`"
                    .into(),
                None,
            );
        }
        return;
    }
    let Some(logo) = &bimi.logo else {
        p.at(
            name,
            format!("{field}.logo"),
            "a BIMI record needs `logo` (or `declined: true`)".into(),
            Some("logo: https://example.com/bimi/logo.svg"),
        );
        return;
    };
    for (sub, value) in [("logo", Some(logo)), ("authority", bimi.authority.as_ref())] {
        if let Some(v) = value
            && !(v.value.to_ascii_lowercase().starts_with("https://")
                && v.value.len() > 8
                && v.value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b','))
        {
            p.at(
                v,
                format!("{field}.{sub}"),
                format!("`{}` is not an https:// URL", v.value),
                None,
            );
        }
    }
    // Parked domains publish p=reject, sp=reject.
    if d.parked {
        return;
    }
    let enforcing =
        |pc: PolicyConfig| matches!(pc, PolicyConfig::Quarantine | PolicyConfig::Reject);
    let reason = match &d.dmarc {
        None => Some("the domain has no `dmarc` block".to_string()),
        Some(m) if !enforcing(m.p) => Some("dmarc.p is none".to_string()),
        Some(m) if m.t == Some(true) => Some("dmarc.t is y (testing mode)".to_string()),
        Some(m) if m.sp == Some(PolicyConfig::None) => Some("dmarc.sp is none".to_string()),
        Some(_) => None,
    };
    if let Some(reason) = reason {
        p.at(
            logo,
            field.to_string(),
            format!("BIMI needs an enforcing DMARC policy, and {reason}"),
            Some("BIMI needs dmarc p=quarantine or p=reject, without t=y, and sp not none"),
        );
    }
}

fn check_selector(
    p: &mut Problems,
    field: &str,
    domain: &Spanned<String>,
    sel: &SelectorConfig,
    names: &mut HashMap<String, usize>,
) {
    let kinds = [
        sel.public_key.is_some(),
        sel.cname.is_some(),
        sel.prefix.is_some(),
    ];
    let at: &Spanned<String> = sel
        .name
        .as_ref()
        .or(sel.prefix.as_ref())
        .or(sel.public_key.as_ref())
        .or(sel.cname.as_ref())
        .unwrap_or(domain);
    if kinds.iter().filter(|k| **k).count() != 1 {
        p.at(
            at,
            field.to_string(),
            "a selector needs exactly one of `public_key`, `cname` or `prefix`".into(),
            Some("public_key: a key managed elsewhere; cname: delegated to an ESP; prefix: keys mailauth generates and rotates"),
        );
        return;
    }
    let label = match (&sel.name, &sel.prefix) {
        (Some(n), None) => n,
        (None, Some(prefix)) => prefix,
        (Some(n), Some(_)) => {
            p.at(
                n,
                format!("{field}.name"),
                "a rotated family is named by `prefix`, not `name`".into(),
                None,
            );
            return;
        }
        (None, None) => {
            p.at(
                at,
                field.to_string(),
                "this selector needs a `name`".into(),
                None,
            );
            return;
        }
    };
    // RFC 6376 §3.1: selector = sub-domain *( "." sub-domain )
    let ok = !label.value.is_empty()
        && label.value.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !ok {
        p.at(
            label,
            field.to_string(),
            format!(
                "`{}` is not a valid selector (letters, digits, `-`, `_`, dots between labels)",
                label.value
            ),
            None,
        );
    }
    let key = label.value.to_ascii_lowercase();
    if let Some(line) = names.insert(key.clone(), label.referenced.line() as usize) {
        p.at(
            label,
            field.to_string(),
            format!("selector `{key}` is declared twice (first at line {line})"),
            None,
        );
    }
    if let Some(pk) = &sel.public_key {
        use base64::Engine;
        let compact: String = pk.value.split_whitespace().collect();
        if base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .is_err()
        {
            p.at(
                pk,
                format!("{field}.public_key"),
                "public_key is not valid base64".into(),
                None,
            );
        }
    }
    if let Some(target) = &sel.cname
        && Name::parse(&target.value).is_err()
    {
        p.at(
            target,
            format!("{field}.cname"),
            format!("`{}` is not a domain name", target.value),
            None,
        );
    }
    if let Some(bits) = &sel.bits
        && ![1024, 2048, 3072, 4096].contains(&bits.value)
    {
        p.at(
            bits,
            format!("{field}.bits"),
            format!("{} is not one of 1024, 2048, 3072, 4096", bits.value),
            Some("RFC 8301 requires at least 1024; 2048 is the default"),
        );
    }
}

/// A rotated key family's durations and their relations (the rules of
/// [`crate::keys::config::FamilyConfig::validate`]), each located at the
/// field that breaks it; its warnings (1024-bit RSA) as warnings.
fn check_family(p: &mut Problems, field: &str, sel: &SelectorConfig, ttl: u32) {
    if sel.prefix.is_none() {
        return;
    }
    // Every duration that does not parse, each at its own line.
    let mut unparsed = false;
    for name in [
        "rotate_every",
        "activate_after",
        "retire_after",
        "revoke_after",
    ] {
        let value = match name {
            "rotate_every" => &sel.rotate_every,
            "activate_after" => &sel.activate_after,
            "retire_after" => &sel.retire_after,
            _ => &sel.revoke_after,
        };
        if let Some(v) = value
            && let Err(e) = crate::clock::Span::parse(&v.value)
        {
            unparsed = true;
            p.at(
                v,
                format!("{field}.{name}"),
                e.to_string(),
                Some("durations are <number><unit>, units w, d, h, m, s: 180d, 1d12h"),
            );
        }
    }
    if unparsed {
        return;
    }
    let Some(result) = sel.family(ttl) else {
        return;
    };
    match result {
        Err(e) => {
            if let Some(at) = sel.family_field_span(e.field) {
                p.at(at, format!("{field}.{}", e.field), e.message, None);
            }
        }
        Ok(_) => {
            for w in sel.family_warnings(ttl) {
                match &sel.bits {
                    Some(bits) => p.warn(bits, format!("{field}.bits"), w, Some("bits: 2048")),
                    None => {
                        if let Some(prefix) = &sel.prefix {
                            p.warn(prefix, field.to_string(), w, None);
                        }
                    }
                }
            }
        }
    }
}

/// `fo` (RFC 9989 §4.7 with RFC 9991 §3): `0` (report when every
/// mechanism fails) and `1` (when any fails) are alternatives, so a value
/// holding both says two contradictory things and receivers fall back to
/// the default `0`; `d` and `s` may be added to either. Each option once.
/// RFC 7489 §6.3's grammar allowed any colon-separated list: mailauth
/// reads such published records, but does not write them.
fn check_fo(p: &mut Problems, field: &str, fo: &Spanned<String>) {
    let opts: Vec<String> = fo
        .value
        .split(':')
        .map(|o| o.trim().to_ascii_lowercase())
        .collect();
    if let Some(bad) = opts
        .iter()
        .find(|o| !["0", "1", "d", "s"].contains(&o.as_str()))
    {
        p.at(
            fo,
            field.to_string(),
            format!("`{bad}` is not a failure reporting option (0, 1, d or s, separated by `:`)"),
            None,
        );
        return;
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = opts.iter().find(|o| !seen.insert(o.as_str())) {
        p.at(
            fo,
            field.to_string(),
            format!("`{dup}` is given twice"),
            None,
        );
        return;
    }
    if seen.contains("0") && seen.contains("1") {
        p.at(
            fo,
            field.to_string(),
            "`0` and `1` exclude each other: 0 asks for a report when every mechanism fails, 1 when any fails".into(),
            Some("keep `1` for the most reports, or `0`; add `d` or `s` as needed, e.g. `1:d:s`"),
        );
    }
}

/// Accepts `a.b.c.d`, `a.b.c.d/n` and the IPv6 forms.
pub(crate) fn parse_net<A: std::str::FromStr>(s: &str, max: u8) -> Result<(A, Option<u8>), ()> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| ())?)),
        None => (s, None),
    };
    if prefix.is_some_and(|p| p > max) {
        return Err(());
    }
    Ok((addr.parse::<A>().map_err(|_| ())?, prefix))
}

/// RFC 9989 §4.7 / RFC 7489 §6.2: report URIs are `mailto:` URIs (with an
/// optional `!size` suffix in RFC 7489).
pub(crate) fn check_mailto(uri: &str) -> Result<(), String> {
    let Some(rest) = uri
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("mailto:"))
        .map(|_| &uri[7..])
    else {
        return Err(format!("`{uri}` is not a mailto: URI"));
    };
    let addr = rest.split('!').next().unwrap_or_default();
    match addr.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && Name::parse(domain).is_ok() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{uri}` does not hold an address like user@example.com"
        )),
    }
}

/// The flattening settings of `spf:` (see `spf::flatten`).
fn check_flatten(p: &mut Problems, field: &str, spf: &crate::config::SpfConfig) {
    if let Some(b) = &spf.lookup_budget
        && !(1..=10).contains(&b.value)
    {
        p.at(
            b,
            format!("{field}.spf.lookup_budget"),
            format!(
                "lookup_budget {} must be between 1 and 10 (RFC 7208 §4.6.4 allows 10)",
                b.value
            ),
            None,
        );
    }
    for (i, k) in spf.keep.iter().enumerate() {
        if !spf
            .include
            .iter()
            .any(|inc| inc.value.eq_ignore_ascii_case(&k.value))
        {
            p.at(
                k,
                format!("{field}.spf.keep[{i}]"),
                format!("`{}` is not one of the includes of this record", k.value),
                Some("list in `keep` only names that are in `include`"),
            );
        }
    }
    if let Some(c) = &spf.chain {
        let sample = c.value.replace("{n}", "1");
        let label_ok = !sample.is_empty()
            && sample.len() <= 63
            && sample
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !c.value.contains("{n}") || !label_ok {
            p.at(
                c,
                format!("{field}.spf.chain"),
                format!(
                    "`{}` must contain {{n}} and otherwise letters, digits, `-` and `_` (one DNS label)",
                    c.value
                ),
                Some("write e.g. _spf{n}"),
            );
        }
    }
    if let Some(m) = &spf.max_shrink
        && m.value > 100
    {
        p.at(
            m,
            format!("{field}.spf.max_shrink"),
            format!("max_shrink {} is not a percentage (0-100)", m.value),
            None,
        );
    }
    for (i, r) in spf.resolvers.iter().enumerate() {
        if crate::dns::parse_nameserver(&r.value).is_err() {
            p.at(
                r,
                format!("{field}.spf.resolvers[{i}]"),
                format!("`{}` is not an IP address or IP:PORT", r.value),
                Some("write e.g. 192.0.2.53 or 127.0.0.1:5353"),
            );
        }
    }
}

/// `verbatim:` values are published as written: each excludes its typed
/// field, holds printable text only (it reaches DNS and terminals), and
/// the SPF one must be an SPF record, since the apex TXT RRset is shared.
fn check_verbatim(p: &mut Problems, field: &str, d: &Domain, v: &crate::config::VerbatimConfig) {
    let typed = [
        ("spf", &v.spf, d.spf.is_some() || d.parked),
        ("dmarc", &v.dmarc, d.dmarc.is_some() || d.parked),
        ("mta_sts", &v.mta_sts, d.mta_sts.is_some()),
        ("tls_rpt", &v.tls_rpt, d.tls_rpt.is_some()),
    ];
    let mut values: Vec<(String, &Spanned<String>)> = Vec::new();
    for (key, value, clash) in typed {
        let Some(value) = value else { continue };
        if clash {
            p.at(
                value,
                format!("{field}.verbatim.{key}"),
                format!(
                    "`verbatim.{key}` and `{key}` (or `parked`) both declare the record; keep one"
                ),
                None,
            );
        }
        values.push((format!("{field}.verbatim.{key}"), value));
    }
    let declared: Vec<String> = d
        .dkim
        .iter()
        .flat_map(|k| &k.selectors)
        .filter_map(|s| s.name.as_ref().map(|n| n.value.to_ascii_lowercase()))
        .collect();
    for (sel, value) in &v.dkim {
        let f = format!("{field}.verbatim.dkim.{sel}");
        if crate::record::Name::parse(sel).is_err() || sel.is_empty() {
            p.at(value, f.clone(), format!("`{sel}` is not a selector"), None);
        }
        if declared.contains(&sel.to_ascii_lowercase()) || d.parked {
            p.at(
                value,
                f.clone(),
                format!("selector `{sel}` is also declared under dkim.selectors (or the domain is parked); keep one"),
                None,
            );
        }
        values.push((f, value));
    }
    for (f, value) in values {
        if value.value.is_empty() || value.value.chars().any(|c| c.is_control()) {
            p.at(
                value,
                f,
                "a verbatim record must be non-empty printable text".into(),
                None,
            );
        }
    }
    if let Some(spf) = &v.spf
        && !crate::ownership::is_spf(&spf.value)
    {
        p.at(
            spf,
            format!("{field}.verbatim.spf"),
            "not an SPF record: it must start with `v=spf1`".into(),
            None,
        );
    }
}
