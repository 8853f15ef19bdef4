//! Where the AWS credentials come from: the standard environment
//! variables, then the shared credentials and config files (profiles), as
//! the AWS SDKs look for them; never the mailauth config. The secret is
//! never printed (`Debug` shows the key id and the source only).

use super::*;

/// An AWS access key, with its session token when temporary.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they were found, for messages (never the secret).
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    // The secret and the token stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Finds credentials the way the AWS CLI does, for the parts that need no
/// network: an explicit `profile` first; else `AWS_ACCESS_KEY_ID` +
/// `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); else the profile named
/// by `AWS_PROFILE` (or `default`) in the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`), then in
/// the config file (`AWS_CONFIG_FILE`, default `~/.aws/config`, where a
/// profile's section is `[profile NAME]`). `env` reads a variable.
pub fn resolve_credentials(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, String> {
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if profile.is_none()
        && let Some(id) = var("AWS_ACCESS_KEY_ID")
    {
        let secret = var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_string()
        })?;
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: var("AWS_SESSION_TOKEN"),
            source: "environment (AWS_ACCESS_KEY_ID)".to_string(),
        });
    }
    let name = profile
        .map(str::to_string)
        .or_else(|| var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_string());
    let home = var("HOME").map(PathBuf::from);
    let file = |var_name: &str, rel: &str| -> Option<PathBuf> {
        var(var_name)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(rel)))
    };
    let mut looked = Vec::new();
    let candidates = [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            name.clone(),
        ),
        (
            file("AWS_CONFIG_FILE", ".aws/config"),
            if name == "default" {
                name.clone()
            } else {
                format!("profile {name}")
            },
        ),
    ];
    for (path, section) in candidates {
        let Some(path) = path else { continue };
        looked.push(format!("[{section}] in {}", path.display()));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let keys = ini_section(&text, &section);
        let id = keys.get("aws_access_key_id");
        let secret = keys.get("aws_secret_access_key");
        match (id, secret) {
            (Some(id), Some(secret)) => {
                return Ok(Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: keys.get("aws_session_token").cloned(),
                    source: format!("profile {name} in {}", path.display()),
                });
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(format!(
                    "{}: [{section}] has only one of aws_access_key_id and aws_secret_access_key",
                    path.display()
                ));
            }
            (None, None) => {}
        }
    }
    Err(format!(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put \
         aws_access_key_id/aws_secret_access_key in profile {name:?} ({})",
        if looked.is_empty() {
            "no HOME to find the AWS files in".to_string()
        } else {
            format!("looked for {}", looked.join(", "))
        }
    ))
}

/// `key = value` lines of the `[section]` of an INI file (the AWS shared
/// files); keys lower-cased, `#`/`;` comment lines skipped.
pub(super) fn ini_section(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = head.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

// ------------------------------------------------------------ SigV4
