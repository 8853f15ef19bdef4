//! `mailauth keys …` commands and signer export: what they print, what they
//! write, and a scan of every output for private key material. Also checks
//! that OpenSSL 3 reads the keystore's PEM files and that `keys import`
//! adopts keys OpenSSL made.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use mailauth::keys::cli::{KeysArgs, run_to};
use mailauth::keys::config::{Algorithm, ExportConfig, ExportFormat, FamilyConfig, KeysConfig};
use mailauth::keys::export::export;
use mailauth::keys::lifecycle::{Observer, apply_due, plan, signing_keys};
use mailauth::keys::store::{KeyState, Keystore};
use mailauth::keys::time::{Span, Timestamp};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    keys: KeysArgs,
}

/// Everything the test saw printed.
#[derive(Default)]
struct Outputs(Vec<String>);

impl Outputs {
    fn run(
        &mut self,
        cfg: &KeysConfig,
        fams: &[(String, FamilyConfig)],
        now: Timestamp,
        argv: &[&str],
    ) -> Result<String, String> {
        let cli = Cli::try_parse_from(std::iter::once("keys").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let res = run_to(cli.keys, cfg, fams, now, &mut out);
        let text = String::from_utf8(out).unwrap();
        self.0.push(text.clone());
        match res {
            Ok(0) => Ok(text),
            Ok(code) => Err(format!("exit {code}: {text}")),
            Err(e) => {
                let msg = mailauth::http::error_chain(&e);
                self.0.push(msg.clone());
                Err(msg)
            }
        }
    }
}

struct Served;
impl Observer for Served {
    fn served_everywhere(&self, _: &str, _: &str, _: &[u8]) -> Result<bool, String> {
        Ok(true)
    }
}

fn families() -> Vec<(String, FamilyConfig)> {
    vec![
        (
            "example.com".into(),
            FamilyConfig::new("mail", Algorithm::Rsa),
        ),
        (
            "example.com".into(),
            FamilyConfig::new("ed", Algorithm::Ed25519),
        ),
        (
            "other.com".into(),
            FamilyConfig::new("mail", Algorithm::Rsa),
        ),
    ]
}

/// Base64 windows that any base64 encoding of a text containing `secret`
/// must contain, whatever its alignment: for each of the three byte
/// offsets, the encoding of `secret[o..]` without its last group.
fn windows(secret: &[u8]) -> Vec<String> {
    (0..3)
        .map(|o| {
            let s = STANDARD.encode(&secret[o..]);
            s[..(s.len() - 4).min(40)].to_string()
        })
        .collect()
}

/// Private key material to look for: the RSA private exponent and primes,
/// and the Ed25519 seed, of every PEM under `dir`. (Whole PEM lines would
/// also match the modulus, which the public key rightly shows.)
fn secrets(dir: &Path) -> Vec<String> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::traits::PrivateKeyParts as _;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "pem") {
                let pem = std::fs::read_to_string(&p).unwrap();
                let rsa_key = rsa::PrivateKey::from_pkcs8_pem(&pem)
                    .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(&pem));
                if let Ok(k) = rsa_key {
                    found.extend(windows(&k.d().to_be_bytes()));
                    for prime in k.primes() {
                        found.extend(windows(&prime.to_be_bytes()));
                    }
                } else {
                    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                    let der = STANDARD.decode(&body).unwrap();
                    assert_eq!(der.len(), 48, "{}", p.display());
                    found.extend(windows(&der[16..48]));
                }
            }
        }
    }
    found
}

fn openssl_reads(path: &Path) -> bool {
    Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn commands_export_and_no_key_material_in_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    let hook_out = tmp.path().join("hook.out");
    let cfg = KeysConfig {
        dir: tmp.path().join("keys"),
        export: Some(ExportConfig {
            format: ExportFormat::Opendkim,
            dir: tmp.path().join("opendkim"),
            hook: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("ls \"$MAILAUTH_EXPORT_DIR\" > {}", hook_out.display()),
            ]),
        }),
        authorities: Vec::new(),
    };
    let fams = families();
    let mut out = Outputs::default();
    let t0 = Timestamp::parse("2027-05-01T00:00:00Z").unwrap();

    let g = out
        .run(
            &cfg,
            &fams,
            t0,
            &["generate", "example.com", "--prefix", "mail"],
        )
        .unwrap();
    assert!(g.contains("generated mail-2027-05 for example.com"), "{g}");
    // Ambiguous family without --prefix is refused.
    let e = out
        .run(&cfg, &fams, t0, &["generate", "example.com"])
        .unwrap_err();
    assert!(e.contains("--prefix"), "{e}");
    out.run(
        &cfg,
        &fams,
        t0,
        &["rotate", "example.com", "--prefix", "ed"],
    )
    .unwrap();
    let again = out
        .run(
            &cfg,
            &fams,
            t0,
            &["rotate", "example.com", "--prefix", "ed"],
        )
        .unwrap();
    assert!(again.contains("already the next key"), "{again}");

    // Adoption: a key made by OpenSSL (PKCS#1, as opendkim-genkey writes).
    let legacy = tmp.path().join("legacy.pem");
    let st = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&legacy)
        .arg("2048")
        .stderr(std::process::Stdio::null())
        .status();
    let imported = st.is_ok_and(|s| s.success());
    if imported {
        let i = out
            .run(
                &cfg,
                &fams,
                t0,
                &[
                    "import",
                    "other.com",
                    "--selector",
                    "legacy",
                    "--key",
                    legacy.to_str().unwrap(),
                ],
            )
            .unwrap();
        assert!(i.contains("imported legacy for other.com"), "{i}");
        // A key of the wrong algorithm is refused.
        let e = out
            .run(
                &cfg,
                &fams,
                t0,
                &[
                    "import",
                    "example.com",
                    "--prefix",
                    "ed",
                    "--selector",
                    "x",
                    "--key",
                    legacy.to_str().unwrap(),
                ],
            )
            .unwrap_err();
        assert!(e.contains("ed25519"), "{e}");
    } else {
        eprintln!("=== SKIP part: openssl genrsa unavailable; import not exercised ===");
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "openssl is required under CI=true"
        );
    }

    // Drive the lifecycle until every family has an active key.
    let mut store = Keystore::open(&cfg.dir).unwrap();
    let t1 = t0.plus(Span::days(3));
    apply_due(&mut store, &fams, t0, &Served).unwrap();
    apply_due(&mut store, &fams, t1, &Served).unwrap();
    let signing: Vec<_> = signing_keys(store.state()).into_iter().cloned().collect();
    assert_eq!(signing.len(), 3, "{signing:?}");

    // OpenSSL 3 reads every key the keystore wrote, RSA and Ed25519 alike.
    for k in &store.state().keys {
        let p = store.private_path(&k.domain, &k.selector);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(openssl_reads(&p), "openssl cannot read {}", p.display());
    }

    let list = out.run(&cfg, &fams, t1, &["list"]).unwrap();
    assert!(
        list.contains("mail-2027-05") && list.contains("active"),
        "{list}"
    );
    let json = out
        .run(
            &cfg,
            &fams,
            t1,
            &["list", "--json", "--domain", "example.com"],
        )
        .unwrap();
    let keys: Vec<serde_json::Value> = serde_json::from_str(&json).expect("one JSON array");
    assert_eq!(keys.len(), 2, "{json}");
    let show = out.run(&cfg, &fams, t1, &["show", "ed-2027-05"]).unwrap();
    assert!(
        show.contains("record:     ed-2027-05._domainkey.example.com TXT \"v=DKIM1; k=ed25519; p="),
        "{show}"
    );
    // The CLI opens the keystore itself: one writer at a time.
    drop(store);
    let ex = out.run(&cfg, &fams, t1, &["export"]).unwrap();
    let mut store = Keystore::open(&cfg.dir).unwrap();
    assert!(
        ex.contains("exported mail-2027-05 (example.com)") && ex.contains("hook ran"),
        "{ex}"
    );

    // OpenDKIM tables name the exported key files.
    let od = tmp.path().join("opendkim");
    let kt = std::fs::read_to_string(od.join("KeyTable")).unwrap();
    let stbl = std::fs::read_to_string(od.join("SigningTable")).unwrap();
    for k in &signing {
        let key_file = od
            .join("keys")
            .join(&k.domain)
            .join(format!("{}.private", k.selector));
        assert!(key_file.exists());
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let name = format!("{}._domainkey.{}", k.selector, k.domain);
        assert!(
            kt.contains(&format!(
                "{name} {}:{}:{}",
                k.domain,
                k.selector,
                key_file.display()
            )),
            "{kt}"
        );
        assert!(stbl.contains(&format!("*@{} {name}", k.domain)), "{stbl}");
    }
    assert!(
        std::fs::read_to_string(&hook_out)
            .unwrap()
            .contains("KeyTable")
    );

    // A rotation: the old key file leaves the signer's directory once the
    // successor is active.
    let old = "mail-2027-05";
    let t2 = t0.plus(Span::days(200));
    apply_due(&mut store, &fams, t2, &Served).unwrap();
    apply_due(&mut store, &fams, t2.plus(Span::days(3)), &Served).unwrap();
    assert_eq!(
        store.state().get("example.com", old).unwrap().state,
        KeyState::Retired
    );
    drop(store);
    let ex = out
        .run(&cfg, &fams, t2.plus(Span::days(3)), &["export"])
        .unwrap();
    let store = Keystore::open(&cfg.dir).unwrap();
    assert!(
        ex.contains(&format!(
            "deleted {}",
            od.join("keys/example.com")
                .join(format!("{old}.private"))
                .display()
        )),
        "{ex}"
    );

    // rspamd and plain PEM formats.
    for format in [ExportFormat::Rspamd, ExportFormat::Pem] {
        let ecfg = ExportConfig {
            format,
            dir: tmp.path().join(format!("{format:?}")),
            hook: None,
        };
        let report = export(&store, &ecfg).unwrap();
        assert_eq!(report.keys.len(), 3);
        match format {
            ExportFormat::Rspamd => {
                let conf =
                    std::fs::read_to_string(ecfg.dir.join("dkim_signing_domains.conf")).unwrap();
                // Dual signing: both example.com keys under one domain entry.
                let ex_block = conf.split("\"other.com\"").next().unwrap();
                assert_eq!(ex_block.matches("selector = ").count(), 2, "{conf}");
                let map = std::fs::read_to_string(ecfg.dir.join("dkim_selectors.map")).unwrap();
                assert!(
                    map.lines().any(|l| l.starts_with("example.com mail-")),
                    "{map}"
                );
            }
            _ => {
                let sel = std::fs::read_to_string(ecfg.dir.join("selectors")).unwrap();
                let ed = signing_keys(store.state())
                    .into_iter()
                    .find(|k| k.prefix == "ed")
                    .unwrap()
                    .selector
                    .clone();
                assert_ne!(ed, "ed-2027-05", "ed rotated too");
                let line = format!("example.com {ed} ed25519-sha256 example.com/{ed}.pem");
                assert!(sel.lines().any(|l| l == line), "{sel}");
                assert!(
                    ecfg.dir
                        .join("example.com")
                        .join(format!("{ed}.pem"))
                        .exists()
                );
            }
        }
        // A failing hook is an error that names it.
        let bad = ExportConfig {
            hook: Some(vec!["false".into()]),
            ..ecfg
        };
        let e = export(&store, &bad).unwrap_err().to_string();
        assert!(e.contains("hook `false`"), "{e}");
    }

    // The plan (as JSON and text) and the state file are public too.
    let p = plan(&fams, store.state(), t2, &Served);
    out.0.push(serde_json::to_string(&p).unwrap());
    out.0.extend(p.iter().map(|t| t.to_string()));
    out.0
        .push(std::fs::read_to_string(cfg.dir.join("state.json")).unwrap());
    out.0.push(format!("{:?}", store));

    // The scan: no output holds a private key or a piece of one.
    let mut secret_bits = secrets(&cfg.dir);
    if imported {
        secret_bits.extend(secrets(tmp.path()));
    }
    assert!(secret_bits.len() > 20);
    // The scanner itself finds key material where it is.
    for k in &store.state().keys {
        let p = store.private_path(&k.domain, &k.selector);
        if let Ok(pem) = std::fs::read_to_string(&p) {
            assert!(
                secret_bits
                    .iter()
                    .any(|s| pem.replace('\n', "").contains(s.as_str())),
                "{}",
                k.selector
            );
        }
    }
    for o in &out.0 {
        assert!(!o.contains("PRIVATE KEY"), "key material in output: {o}");
        for s in &secret_bits {
            assert!(
                !o.contains(s.as_str()),
                "private key material in output: {o}"
            );
        }
    }
}

#[test]
fn export_with_no_active_key_is_refused_and_writes_nothing() {
    // It used to write empty KeyTable and SigningTable files and exit 0: a
    // signer reloaded on them stops signing.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = KeysConfig {
        dir: tmp.path().join("keys"),
        export: Some(ExportConfig {
            format: ExportFormat::Opendkim,
            dir: tmp.path().join("opendkim"),
            hook: None,
        }),
        authorities: Vec::new(),
    };
    let fams = families();
    let mut out = Outputs::default();
    let t0 = Timestamp::parse("2027-05-01T00:00:00Z").unwrap();
    // A generated key is pending: it does not sign yet.
    out.run(
        &cfg,
        &fams,
        t0,
        &["generate", "example.com", "--prefix", "mail"],
    )
    .unwrap();
    let e = out.run(&cfg, &fams, t0, &["export"]).unwrap_err();
    assert!(e.contains("no active key to export"), "{e}");
    assert!(!tmp.path().join("opendkim").exists());
}
