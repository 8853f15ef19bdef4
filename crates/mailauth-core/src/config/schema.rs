//! The JSON Schema of the config file (draft 2020-12), for editors such as
//! yaml-language-server. Kept beside the config types; a test checks that
//! every field the types accept is described here.

use serde_json::{Value, json};

fn string_list(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

fn policy(description: &str) -> Value {
    json!({"enum": ["none", "quarantine", "reject"], "description": description})
}

/// The schema as pretty JSON.
pub fn json_schema() -> String {
    let host_list = json!({
        "oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
        "description": "true for the domain itself, or a list of host names"
    });
    let selector = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "A DKIM selector: exactly one of public_key, cname or prefix",
        "properties": {
            "name": {"type": "string", "description": "Selector name (for public_key and cname)"},
            "public_key": {"type": "string", "description": "Base64 public key published as given (key managed elsewhere)"},
            "key_type": {"enum": ["rsa", "ed25519"], "description": "Key type of public_key (default rsa)"},
            "cname": {"type": "string", "description": "Delegate the selector to an ESP by CNAME"},
            "testing": {"type": "boolean", "description": "Publish with t=y"},
            "prefix": {"type": "string", "description": "A rotated family of generated keys: <prefix>-YYYY-MM"},
            "algorithm": {"enum": ["rsa", "ed25519"], "description": "Family algorithm (default rsa)"},
            "bits": {"enum": [1024, 2048, 3072, 4096], "description": "RSA key size (default 2048)"},
            "rotate_every": {"type": "string", "description": "Rotation period, e.g. 180d"},
            "activate_after": {"type": "string", "description": "Minimum time between publishing a key and signing with it, e.g. 2d"},
            "retire_after": {"type": "string", "description": "How long a retired key stays published, e.g. 7d"},
            "revoke_after": {"type": "string", "description": "How long a revoked (empty p=) record stays before removal, e.g. 7d"}
        }
    });
    let domain = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "providers": string_list("Named providers (from the top-level providers map) this domain is pushed to"),
            "ttl": {"type": "integer", "minimum": 1, "description": "TTL of this domain's records"},
            "parked": {"type": "boolean", "description": "Non-sending domain: v=spf1 -all, p=reject, null MX, empty DKIM wildcard"},
            "spf": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "include": string_list("include: mechanisms"),
                    "ip4": string_list("ip4: networks (CIDR)"),
                    "ip6": string_list("ip6: networks (CIDR)"),
                    "a": host_list.clone(),
                    "mx": host_list,
                    "exists": string_list("exists: mechanisms"),
                    "redirect": {"type": "string", "description": "redirect= modifier (instead of all)"},
                    "all": {"enum": ["fail", "softfail", "neutral"], "description": "-all, ~all or ?all (default fail)"},
                    "flatten": {"enum": ["never", "auto", "always"], "description": "Replace includes by their networks: never (default), auto (as needed to fit lookup_budget), always"},
                    "lookup_budget": {"type": "integer", "minimum": 1, "maximum": 10, "description": "Most DNS lookups the published record may need (default 10)"},
                    "keep": string_list("Includes never flattened"),
                    "chain": {"type": "string", "description": "Chained record names, {n} from 1 (default _spf{n})"},
                    "max_shrink": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Percent of an include's recorded ranges that may disappear before apply needs --force (default 50)"},
                    "resolvers": string_list("Servers (IP[:PORT]) asked for flattened includes (default: the system resolver)")
                }
            },
            "dkim": {
                "type": "object", "additionalProperties": false, "required": ["selectors"],
                "properties": {"selectors": {"type": "array", "items": selector}}
            },
            "dmarc": {
                "type": "object", "additionalProperties": false, "required": ["p"],
                "properties": {
                    "p": policy("Policy for the domain"),
                    "sp": policy("Policy for subdomains"),
                    "np": policy("Policy for non-existent subdomains (RFC 9989)"),
                    "t": {"type": "boolean", "description": "Testing mode t=y (RFC 9989)"},
                    "adkim": {"enum": ["r", "s", "relaxed", "strict"]},
                    "aspf": {"enum": ["r", "s", "relaxed", "strict"]},
                    "rua": string_list("Aggregate report mailto: URIs"),
                    "ruf": string_list("Failure report mailto: URIs"),
                    "fo": {"type": "string", "description": "Failure reporting options, e.g. 1 or d:s"},
                    "psd": {"enum": ["y", "n", "u"], "description": "Public suffix domain flag (RFC 9989)"}
                }
            },
            "mta_sts": {
                "type": "object", "additionalProperties": false, "required": ["mode"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}$", "description": "Policy id (default: derived from the policy's content)"},
                    "mode": {"enum": ["enforce", "testing", "none"]},
                    "mx": string_list("MX patterns of the policy"),
                    "max_age": {"type": "integer", "minimum": 0, "maximum": 31557600},
                    "publish": {
                        "type": "object", "additionalProperties": false,
                        "description": "Where apply uploads the policy file before changing the TXT record: exactly one of dir and url",
                        "properties": {
                            "dir": {"type": "string", "description": "Web root: the file goes to <dir>/.well-known/mta-sts.txt"},
                            "url": {"type": "string", "description": "URL the file is PUT to (https://, or http:// to loopback)"}
                        }
                    }
                }
            },
            "bimi": {
                "type": "object", "additionalProperties": false,
                "description": "The <selector>._bimi TXT record; needs an enforcing DMARC policy",
                "properties": {
                    "selector": {"type": "string", "description": "Selector (default `default`)"},
                    "logo": {"type": "string", "description": "l=: HTTPS URL of the SVG Tiny PS logo"},
                    "authority": {"type": "string", "description": "a=: HTTPS URL of the evidence document (VMC or CMC, PEM)"},
                    "declined": {"type": "boolean", "description": "Publish the declination record v=BIMI1; l=; a=;"}
                }
            },
            "tls_rpt": {
                "type": "object", "additionalProperties": false, "required": ["rua"],
                "properties": {"rua": string_list("mailto: or https: report URIs")}
            },
            "verbatim": {
                "type": "object", "additionalProperties": false,
                "description": "Records published exactly as written, for what the typed fields cannot express; each excludes the typed field of the same name",
                "properties": {
                    "spf": {"type": "string", "description": "The apex v=spf1 record"},
                    "dmarc": {"type": "string", "description": "The _dmarc TXT record"},
                    "mta_sts": {"type": "string", "description": "The _mta-sts TXT record"},
                    "tls_rpt": {"type": "string", "description": "The _smtp._tls TXT record"},
                    "dkim": {"type": "object", "additionalProperties": {"type": "string"}, "description": "DKIM key records by selector"}
                }
            }
        }
    });
    let provider = json!({
        "type": "object",
        "required": ["kind"],
        "oneOf": [
            {"properties": {"kind": {"const": "zonefile"}, "dir": {"type": "string"}, "nameservers": {"type": "array", "items": {"type": "string"}}}, "additionalProperties": false},
            {"properties": {
                "kind": {"const": "rfc2136"},
                "server": {"type": "string", "description": "primary server host:port"},
                "key_name": {"type": "string"},
                "algorithm": {"enum": ["hmac-sha256", "hmac-sha512"]},
                "secret_env": {"type": "string", "description": "environment variable holding the base64 TSIG secret"},
                "secret_file": {"type": "string", "description": "file holding the secret or a tsig-keygen key clause"},
                "timeout_secs": {"type": "integer"}, "retries": {"type": "integer"}
             }, "required": ["server", "key_name"], "additionalProperties": false},
            {"properties": {
                "kind": {"const": "powerdns"},
                "url": {"type": "string"}, "server_id": {"type": "string"},
                "secret_env": {"type": "string"}, "secret_file": {"type": "string"},
                "nameservers": {"type": "array", "items": {"type": "string"}},
                "timeout_secs": {"type": "integer"}, "retries": {"type": "integer"},
                "allow_plain_http": {"type": "boolean", "description": "Allow an http:// URL to a host other than loopback (the API key then crosses the network in clear)"}
             }, "required": ["url"], "additionalProperties": false},
            {"properties": {
                "kind": {"const": "cloudflare"},
                "base_url": {"type": "string"}, "secret_env": {"type": "string"}, "secret_file": {"type": "string"},
                "page_size": {"type": "integer"}, "timeout_secs": {"type": "integer"}, "retries": {"type": "integer"},
                "allow_plain_http": {"type": "boolean", "description": "Allow an http:// base_url to a host other than loopback (the token then crosses the network in clear)"}
             }, "additionalProperties": false}
        ]
    });
    let alerts = json!({
        "type": "object", "additionalProperties": false,
        "description": "Rules and notifiers of `mailauth reports alerts`",
        "properties": {
            "window": {"type": "string", "default": "1d", "description": "How far back each run looks (1d, 12h, 2w)"},
            "new_source_messages": {"type": "integer", "minimum": 0, "default": 10, "description": "An unidentified source sending more messages than this (0: off)"},
            "fail_rate_percent": {"type": "number", "minimum": 0, "default": 20, "description": "A domain's DMARC fail rate over this percentage"},
            "fail_rate_min_messages": {"type": "integer", "minimum": 0, "default": 20, "description": "Messages a domain needs before its fail rate counts (0: off)"},
            "new_reporter": {"type": "boolean", "default": true, "description": "A reporter whose first report falls in the window"},
            "unauthorised_service": {"type": "boolean", "default": true, "description": "A catalogue service sending as the domain, not authorised by its SPF or aligned DKIM"},
            "suspicious_messages": {"type": "integer", "minimum": 0, "default": 100, "description": "Failing messages from suspicious sources over this (0: off)"},
            "known_source_fail_messages": {"type": "integer", "minimum": 0, "default": 10, "description": "A source with DMARC passes before the window failing at least this many messages in it (0: off)"},
            "pass_rate_drop_points": {"type": "number", "minimum": 0, "default": 20, "description": "A domain's DMARC pass rate on the last complete UTC day lower than the day before by more than these points"},
            "pass_rate_drop_min_messages": {"type": "integer", "minimum": 0, "default": 20, "description": "Messages each of the two days needs for the pass-rate drop rule (0: off)"},
            "reporter_silent_days": {"type": "integer", "minimum": 0, "default": 3, "description": "A major reporter sending nothing for more than these days (0: off)"},
            "reporter_silent_min_reports": {"type": "integer", "minimum": 0, "default": 10, "description": "Reports a reporter must have sent to count as major (0: off)"},
            "failure_reports": {"type": "boolean", "default": true, "description": "A failure report (RUF) for a domain arriving in the window"},
            "tls_failed_sessions": {"type": "integer", "minimum": 0, "default": 1, "description": "A TLS-RPT policy domain with at least this many failed sessions in the window (0: off)"},
            "webhook": {
                "type": "object", "additionalProperties": false, "required": ["url"],
                "properties": {
                    "url": {"type": "string", "description": "https:// (http:// only to loopback); JSON POST"},
                    "token_env": {"type": "string", "description": "Environment variable holding the bearer token"},
                    "token_file": {"type": "string", "description": "File holding the bearer token"},
                    "slack": {"type": "boolean", "description": "Send {\"text\": ...} (Slack incoming webhook)"}
                }
            },
            "email": {
                "type": "object", "additionalProperties": false, "required": ["server", "from", "to"],
                "properties": {
                    "server": {"type": "string", "description": "host:port of the MTA or submission server; STARTTLS required unless loopback"},
                    "from": {"type": "string"},
                    "to": string_list("Recipients"),
                    "username": {"type": "string", "description": "AUTH PLAIN user (sent only over TLS)"},
                    "password_env": {"type": "string", "description": "Environment variable holding the password"},
                    "password_file": {"type": "string", "description": "File holding the password"},
                    "ca_file": {"type": "string", "description": "PEM CA of the server's certificate (default: system roots)"}
                }
            }
        }
    });
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mailauth configuration",
        "type": "object",
        "additionalProperties": false,
        "required": ["domains"],
        "properties": {
            "provider": provider.clone(),
            "providers": {"type": "object", "additionalProperties": provider, "description": "Named providers"},
            "defaults": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "ttl": {"type": "integer", "minimum": 1, "default": 3600},
                    "max_deletes": {"type": "integer", "minimum": 0, "default": 3}
                }
            },
            "keys": {
                "type": "object", "additionalProperties": false, "required": ["dir"],
                "properties": {
                    "dir": {"type": "string", "description": "Keystore directory (0700): state file and private keys"},
                    "authorities": string_list("Servers (IP[:PORT]) asked whether a new key is served, instead of the NS set"),
                    "export": {
                        "type": "object", "additionalProperties": false, "required": ["format", "dir"],
                        "properties": {
                            "format": {"enum": ["opendkim", "rspamd", "pem"]},
                            "dir": {"type": "string"},
                            "hook": {"type": "array", "items": {"type": "string"}, "description": "Command run after an export"}
                        }
                    }
                }
            },
            "store": {
                "description": "Report store of reports, serve, checklist and the plan hint (--store, --db and MAILAUTH_STORE win over it)",
                "oneOf": [
                    {"type": "string", "description": "sqlite://PATH, a file path, or postgres://USER@HOST:PORT/DB (no password)"},
                    {
                        "type": "object", "additionalProperties": false, "required": ["url"],
                        "properties": {
                            "url": {"type": "string", "description": "sqlite://PATH, a file path, or postgres://USER@HOST:PORT/DB (no password)"},
                            "password_file": {"type": "string", "description": "File holding the PostgreSQL password (else MAILAUTH_STORE_PASSWORD)"}
                        }
                    }
                ]
            },
            "alerts": alerts,
            "domains": {"type": "object", "additionalProperties": domain}
        }
    });
    serde_json::to_string_pretty(&schema).expect("static schema")
}
