//! The MTA-STS policy file as code: rendered from the `mta_sts` block
//! (RFC 8461 §3.2, see [`crate::desired::mta_sts_policy`]), written as a
//! tree for any web server (`emit --mta-sts DIR`), and uploaded by `apply`
//! to the `mta_sts.publish` target (a web root, or an HTTP PUT) **before**
//! any DNS change: a sender that sees the new `_mta-sts` id must find the
//! new policy (RFC 8461 §3.3: the id "MUST uniquely identify a given
//! instance of a policy").
//!
//! This module writes files and sends PUT requests; it decides nothing
//! about DNS, and the policy text comes from `desired`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::PublishConfig;
use crate::http::{error_chain, install_crypto_provider, user_agent};
use crate::record::Name;
use crate::validate::mtasts::{MAX_POLICY_SIZE, WELL_KNOWN};
use crate::workspace::Workspace;

/// One domain's policy file and where `apply` uploads it.
#[derive(Clone, Debug)]
pub struct PolicyFile {
    pub domain: Name,
    /// CRLF line ends, as rendered.
    pub text: String,
    pub target: Option<PublishConfig>,
}

/// The policy files of `domains` that have an `mta_sts` block, or the
/// first domain whose block does not render.
pub fn policy_files(ws: &Workspace, domains: &[Name]) -> Result<Vec<PolicyFile>, String> {
    let mut out = Vec::new();
    for (name, d) in crate::desired::domains(&ws.config) {
        if !domains.contains(&name) {
            continue;
        }
        let Some(cfg) = &d.mta_sts else { continue };
        let policy = crate::desired::mta_sts_policy(cfg)
            .map_err(|(field, m)| format!("{name}: {field}: {m}"))?;
        out.push(PolicyFile {
            domain: name,
            text: policy.to_string(),
            target: cfg.publish.as_ref().map(|p| p.value.clone()),
        });
    }
    Ok(out)
}

/// `DIR/<domain>/.well-known/mta-sts.txt`, written atomically (a reader
/// sees the old file or the new one, never half of one).
pub fn write_tree(dir: &Path, file: &PolicyFile) -> Result<PathBuf, String> {
    write_web_root(&dir.join(file.domain.as_str()), &file.text)
}

/// `<root>/.well-known/mta-sts.txt`; unchanged content is not rewritten.
fn write_web_root(root: &Path, text: &str) -> Result<PathBuf, String> {
    let path = root.join(WELL_KNOWN.trim_start_matches('/'));
    if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(path);
    }
    let parent = path.parent().expect("a file in .well-known");
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    Ok(path)
}

/// Uploads `file` to its target (relative directories start at the
/// config's directory) and says where it went. An HTTP target is read back
/// after the PUT: the upload counts only when the same URL serves exactly
/// the new policy.
pub fn publish(ws: &Workspace, file: &PolicyFile) -> Result<String, String> {
    let Some(target) = &file.target else {
        return Ok(String::new());
    };
    match (&target.dir, &target.url) {
        (Some(dir), _) => {
            let path = write_web_root(&ws.resolve(dir), &file.text)?;
            Ok(path.display().to_string())
        }
        (None, Some(url)) => {
            put(url, &file.text)?;
            Ok(url.clone())
        }
        (None, None) => Err("mta_sts.publish has neither `dir` nor `url`".into()),
    }
}

/// HTTP PUT of the policy (RFC 9110 §9.3.4), then a GET of the same URL
/// that must return it byte for byte. Redirects are not followed.
fn put(url: &str, text: &str) -> Result<(), String> {
    install_crypto_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .user_agent(user_agent())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?;
    let runtime = crate::rt::runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let resp = http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(text.to_string())
            .send()
            .await
            .map_err(|e| format!("PUT {url}: {}", error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!(
                "PUT {url}: HTTP {}: the policy was not stored",
                status.as_u16()
            ));
        }
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url} after the PUT: {}", error_chain(&e)))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!(
                "GET {url} after the PUT: HTTP {}",
                resp.status().as_u16()
            ));
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("GET {url} after the PUT: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_POLICY_SIZE {
                return Err(format!("GET {url} after the PUT: larger than the policy"));
            }
            body.extend_from_slice(&chunk);
        }
        if body != text.as_bytes() {
            return Err(format!(
                "GET {url} after the PUT does not return the new policy"
            ));
        }
        Ok(())
    })
}

/// The guard on `mode: enforce` (RFC 8461 §5: an enforcing sender refuses
/// to deliver to an MX host the policy does not match): when this plan
/// changes the `_mta-sts` record of a domain whose policy enforces, every
/// MX host of the zone as the provider holds it must match an `mx`
/// pattern. Returns why not, for the plan's `needs_force`.
pub fn enforce_guard(
    cfg: &crate::config::MtaStsConfig,
    zone: &crate::record::Zone,
    changes: &[crate::plan::ChangeJson],
) -> Option<String> {
    use crate::record::{RData, RType};
    let policy = crate::desired::mta_sts_policy(cfg).ok()?;
    if policy.mode != crate::record::mtasts::Mode::Enforce {
        return None;
    }
    let record = zone.origin.child("_mta-sts").to_string();
    if !changes
        .iter()
        .any(|c| c.name.trim_end_matches('.') == record && c.rtype == "TXT")
    {
        return None;
    }
    let mx = zone.get(&zone.origin, &RType::Mx)?;
    let uncovered: Vec<String> = mx
        .data
        .iter()
        .filter_map(|d| match d {
            RData::Mx { exchange, .. } if !exchange.as_str().is_empty() => {
                Some(exchange.to_string())
            }
            _ => None,
        })
        .filter(|host| !policy.mx_matches(host))
        .collect();
    if uncovered.is_empty() {
        return None;
    }
    Some(format!(
        "mta_sts mode enforce: MX host(s) {} match no `mta_sts.mx` pattern, and enforcing senders would refuse to deliver to them; add them to mta_sts.mx, or apply needs --force",
        uncovered.join(", ")
    ))
}
