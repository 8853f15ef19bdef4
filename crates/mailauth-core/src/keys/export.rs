//! Hands the active keys to a signer: OpenDKIM (KeyTable, SigningTable, key
//! files), rspamd (`dkim_signing` domain config, selector and path maps, key
//! files), or a plain directory of PEM files with a `selectors` list. Which
//! keys are active is decided by `lifecycle::signing_keys`; the `activate`
//! transition switches them, and the next export follows. Every file is
//! written atomically, key files before the tables that name them; key
//! files of keys no longer active are then deleted. An optional hook runs
//! afterwards (to reload the signer).
//!
//! Owns the file formats; leaves file ownership (the signer's user may need
//! to read the 0600 key files) to the hook or the operator.
//!
//! OpenDKIM reads the output with:
//! ```text
//! KeyTable      file:<dir>/KeyTable
//! SigningTable  refile:<dir>/SigningTable
//! MultipleSignatures yes      # for dual RSA + Ed25519 signing
//! ```
//! rspamd: `.include "<dir>/dkim_signing_domains.conf"` inside
//! `dkim_signing.conf`, or `selector_map`/`path_map` pointing at
//! `dkim_selectors.map` and `dkim_paths.map` (one key per domain, RSA first).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::config::{Algorithm, ExportConfig, ExportFormat};
use super::lifecycle::signing_keys;
use super::store::{Keystore, StoreError, create_private_dir, write_atomic};

/// Errors exporting keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("export to {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("export hook `{command}` failed: {detail}")]
    Hook { command: String, detail: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// (domain, selector) of each exported key.
    pub keys: Vec<(String, String)>,
    /// Every file written (tables and key files).
    pub written: Vec<PathBuf>,
    /// Stale key files deleted.
    pub deleted: Vec<PathBuf>,
    pub hook_ran: bool,
}

struct Item {
    domain: String,
    selector: String,
    algorithm: Algorithm,
    path: PathBuf,
}

/// Writes the active keys of `store` for the signer in `cfg`, then runs the
/// hook. The keystore must have been opened with its private keys.
pub fn export(store: &Keystore, cfg: &ExportConfig) -> Result<ExportReport, ExportError> {
    let dir = std::path::absolute(&cfg.dir).map_err(io_err(&cfg.dir))?;
    create_private_dir(&dir).map_err(io_err(&dir))?;
    let keydir = match cfg.format {
        ExportFormat::Pem => dir.clone(),
        ExportFormat::Opendkim | ExportFormat::Rspamd => dir.join("keys"),
    };
    create_private_dir(&keydir).map_err(io_err(&keydir))?;

    let mut items = Vec::new();
    let mut written = Vec::new();
    for k in signing_keys(store.state()) {
        let pem = store.private_pem(&k.domain, &k.selector)?;
        let path = match cfg.format {
            ExportFormat::Opendkim | ExportFormat::Pem => {
                let d = keydir.join(&k.domain);
                create_private_dir(&d).map_err(io_err(&d))?;
                let ext = if cfg.format == ExportFormat::Pem {
                    "pem"
                } else {
                    "private"
                };
                d.join(format!("{}.{ext}", k.selector))
            }
            ExportFormat::Rspamd => keydir.join(format!("{}.{}.key", k.domain, k.selector)),
        };
        write_atomic(&path, pem.expose().as_bytes(), 0o600).map_err(io_err(&path))?;
        written.push(path.clone());
        items.push(Item {
            domain: k.domain.clone(),
            selector: k.selector.clone(),
            algorithm: k.algorithm,
            path,
        });
    }

    let tables = match cfg.format {
        ExportFormat::Opendkim => opendkim_tables(&items),
        ExportFormat::Rspamd => rspamd_tables(&items),
        ExportFormat::Pem => vec![("selectors", pem_selectors(&items, &dir))],
    };
    for (name, text) in tables {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes(), 0o644).map_err(io_err(&path))?;
        written.push(path);
    }

    let keep: BTreeSet<&Path> = items.iter().map(|i| i.path.as_path()).collect();
    let deleted = delete_stale(&keydir, cfg.format, &keep)?;

    let mut hook_ran = false;
    if let Some(hook) = &cfg.hook {
        run_hook(hook, &dir)?;
        hook_ran = true;
    }
    Ok(ExportReport {
        keys: items.into_iter().map(|i| (i.domain, i.selector)).collect(),
        written,
        deleted,
        hook_ran,
    })
}

/// OpenDKIM KeyTable (`keyname domain:selector:keypath`) and a refile
/// SigningTable (`pattern keyname`); every active key of a domain signs
/// (one line each), which with `MultipleSignatures yes` dual-signs.
fn opendkim_tables(items: &[Item]) -> Vec<(&'static str, String)> {
    let mut kt = String::from("# Written by mailauth keys export; do not edit.\n");
    let mut st = kt.clone();
    for i in items {
        let name = format!("{}._domainkey.{}", i.selector, i.domain);
        kt.push_str(&format!(
            "{name} {}:{}:{}\n",
            i.domain,
            i.selector,
            i.path.display()
        ));
        st.push_str(&format!("*@{} {name}\n", i.domain));
    }
    vec![("KeyTable", kt), ("SigningTable", st)]
}

fn rspamd_tables(items: &[Item]) -> Vec<(&'static str, String)> {
    let header = "# Written by mailauth keys export; do not edit.\n";
    let mut conf = format!("{header}domain {{\n");
    let mut domains: Vec<&str> = items.iter().map(|i| i.domain.as_str()).collect();
    domains.dedup();
    let mut selectors = header.to_string();
    let mut paths = header.to_string();
    for d in domains {
        conf.push_str(&format!("  \"{d}\" {{\n    selectors [\n"));
        let mine: Vec<&Item> = items.iter().filter(|i| i.domain == d).collect();
        for i in &mine {
            conf.push_str(&format!(
                "      {{ path = \"{}\"; selector = \"{}\"; }}\n",
                i.path.display(),
                i.selector
            ));
        }
        conf.push_str("    ]\n  }\n");
        // The maps hold one key per domain: RSA first, as every verifier
        // understands it (RFC 8463 §5).
        if let Some(first) = mine
            .iter()
            .min_by_key(|i| (i.algorithm != Algorithm::Rsa, i.selector.clone()))
        {
            selectors.push_str(&format!("{d} {}\n", first.selector));
            paths.push_str(&format!("{d} {}\n", first.path.display()));
        }
    }
    conf.push_str("}\n");
    vec![
        ("dkim_signing_domains.conf", conf),
        ("dkim_selectors.map", selectors),
        ("dkim_paths.map", paths),
    ]
}

fn pem_selectors(items: &[Item], dir: &Path) -> String {
    let mut s = String::from("# domain selector algorithm key-file (relative to this file)\n");
    for i in items {
        let rel = i.path.strip_prefix(dir).unwrap_or(&i.path);
        s.push_str(&format!(
            "{} {} {} {}\n",
            i.domain,
            i.selector,
            i.algorithm.signature_algorithm(),
            rel.display()
        ));
    }
    s
}

fn delete_stale(
    keydir: &Path,
    format: ExportFormat,
    keep: &BTreeSet<&Path>,
) -> Result<Vec<PathBuf>, ExportError> {
    let mut deleted = Vec::new();
    let ext = match format {
        ExportFormat::Opendkim => "private",
        ExportFormat::Pem => "pem",
        ExportFormat::Rspamd => "key",
    };
    let mut candidates = Vec::new();
    let entries = fs::read_dir(keydir).map_err(io_err(keydir))?;
    for e in entries {
        let p = e.map_err(io_err(keydir))?.path();
        if p.is_dir() && format != ExportFormat::Rspamd {
            for f in fs::read_dir(&p).map_err(io_err(&p))? {
                candidates.push(f.map_err(io_err(&p))?.path());
            }
        } else {
            candidates.push(p);
        }
    }
    for p in candidates {
        if p.extension().is_some_and(|e| e == ext) && !keep.contains(p.as_path()) {
            fs::remove_file(&p).map_err(io_err(&p))?;
            deleted.push(p);
        }
    }
    deleted.sort();
    Ok(deleted)
}

fn run_hook(hook: &[String], dir: &Path) -> Result<(), ExportError> {
    let command = hook.join(" ");
    let Some((prog, args)) = hook.split_first() else {
        return Err(ExportError::Hook {
            command,
            detail: "empty command".into(),
        });
    };
    let out = Command::new(prog)
        .args(args)
        .env("MAILAUTH_EXPORT_DIR", dir)
        .output()
        .map_err(|e| ExportError::Hook {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(ExportError::Hook {
            command,
            detail: format!("{}: {}", out.status, stderr.trim()),
        })
    }
}
