//! TLS for the PostgreSQL connection: the `sslmode` and `sslrootcert`
//! parameters of the store URL (libpq's names and meanings, a subset), the
//! default when the URL names none, and a `MakeTlsConnect` over
//! tokio-rustls (ring, no OpenSSL) for the `postgres` crate.
//!
//! Owns only how the connection is secured; the URL's other parameters,
//! the password and everything after the connection stay with the store.
//!
//! Modes (PostgreSQL 15 §34.19.3 "Protection Provided in Different
//! Modes", table 34.1; the note on `require` is §34.19.1 "Client
//! Verification of Server Certificates"):
//! - `disable`: plain TCP;
//! - `require`: TLS or no connection. "If a root CA file exists, the
//!   behavior of sslmode=require will be the same as that of verify-ca":
//!   with `sslrootcert` the chain is checked against it (not the name),
//!   without it the certificate is not checked (encryption only);
//! - `verify-full`: TLS, the chain checked against `sslrootcert` (or the
//!   system's roots when none is given) and the host name (or IP address)
//!   checked against the certificate.
//!
//! `prefer` and `allow` (TLS if the server offers it, else plain) and
//! `verify-ca` are refused: a silent fallback to plain TCP would send the
//! password in clear. Without `sslmode`, a loopback host or a Unix socket
//! gets `disable`, any other host `verify-full`.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::Socket;
use postgres::config::{Host, SslMode as PgSslMode};
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `sslmode` as mailauth supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Require,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings taken out of a store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `None`: not in the URL (the default applies once the host is known).
    pub mode: Option<SslMode>,
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of the URL's query (the
/// `postgres` crate knows neither `verify-full` nor `sslrootcert`);
/// returns the URL without them and the settings, or why they are wrong.
pub fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let mut settings = TlsSettings {
        mode: None,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), settings));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                settings.mode = Some(match percent_decode(value)?.as_str() {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    other @ ("allow" | "prefer" | "verify-ca") => {
                        return Err(format!(
                            "sslmode={other} is not supported (disable, require or verify-full): \
                             mailauth never falls back to plain TCP and checks the host name \
                             when it checks the certificate"
                        ));
                    }
                    other => {
                        return Err(format!(
                            "sslmode={other:?} is not one of disable, require, verify-full"
                        ));
                    }
                });
            }
            "sslrootcert" => {
                let path = percent_decode(value)?;
                if path.is_empty() {
                    return Err("sslrootcert is empty".to_string());
                }
                settings.root_cert = Some(PathBuf::from(path));
            }
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                return Err(format!(
                    "{key} is not supported (client certificates and CRLs are not)"
                ));
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, settings))
}

/// RFC 3986 §2.1 percent-decoding of one query value (UTF-8).
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// Whether every host of the connection is this machine: a Unix socket,
/// `localhost`, 127.0.0.0/8 or ::1.
pub fn all_local(hosts: &[Host]) -> bool {
    !hosts.is_empty()
        && hosts.iter().all(|h| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => crate::http::is_loopback_host(name),
        })
}

/// The mode in force: the URL's, else `disable` for a local server and
/// `verify-full` for any other.
pub fn effective_mode(settings: &TlsSettings, hosts: &[Host]) -> SslMode {
    settings.mode.unwrap_or(if all_local(hosts) {
        SslMode::Disable
    } else {
        SslMode::VerifyFull
    })
}

/// The mode as the `postgres` crate takes it: TLS or nothing, never a
/// fallback.
pub fn pg_mode(mode: SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Require | SslMode::VerifyFull => PgSslMode::Require,
    }
}

/// A connector for `require` / `verify-full` (see the module comment).
pub fn connector(mode: SslMode, root_cert: Option<&Path>) -> Result<MakeRustls, String> {
    crate::http::install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match root_cert {
        Some(path) => Some(Arc::new(read_roots(path)?)),
        None if mode == SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                // A broken system certificate is skipped, as browsers do.
                let _ = roots.add(c);
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
        (_, roots) => {
            let chain = match roots {
                Some(roots) => Some(
                    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoNameCheck { chain, provider }))
        }
    }
    .with_no_client_auth();
    Ok(MakeRustls {
        config: Arc::new(config),
    })
}

fn read_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let err = |e: String| format!("sslrootcert {}: {e}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE in the file".to_string()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| err(e.to_string()))?;
    }
    Ok(roots)
}

/// `require`: the chain is checked against `chain`'s roots when there are
/// some (libpq's verify-ca), never the name; without roots nothing is
/// checked but the handshake signatures (encryption against a passive
/// listener only).
#[derive(Debug)]
struct NoNameCheck {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoNameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => {
                // The chain is good (the name is checked after it).
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Makes one TLS connector per connection, for the host it connects to.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding (SCRAM-SHA-256, not -PLUS).
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_leave_the_url() {
        let (url, s) = split_url(
            "postgres://u@db.example:5432/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .expect("ok");
        assert_eq!(url, "postgres://u@db.example:5432/x?application_name=a");
        assert_eq!(s.mode, Some(SslMode::VerifyFull));
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (url, s) = split_url("postgres://u@h/x").expect("ok");
        assert_eq!((url.as_str(), s.mode), ("postgres://u@h/x", None));
        for bad in ["prefer", "allow", "verify-ca", "yes"] {
            let err = split_url(&format!("postgres://u@h/x?sslmode={bad}")).expect_err(bad);
            assert!(err.contains("sslmode"), "{err}");
        }
        assert!(split_url("postgres://u@h/x?sslcert=c.pem").is_err());
    }

    #[test]
    fn default_is_disable_on_loopback_only() {
        let none = TlsSettings {
            mode: None,
            root_cert: None,
        };
        let tcp = |h: &str| vec![Host::Tcp(h.to_string())];
        assert_eq!(effective_mode(&none, &tcp("127.0.0.1")), SslMode::Disable);
        assert_eq!(effective_mode(&none, &tcp("localhost")), SslMode::Disable);
        assert_eq!(effective_mode(&none, &tcp("::1")), SslMode::Disable);
        assert_eq!(
            effective_mode(&none, &tcp("db.example")),
            SslMode::VerifyFull
        );
        assert_eq!(effective_mode(&none, &tcp("10.0.0.5")), SslMode::VerifyFull);
        let mixed = vec![Host::Tcp("127.0.0.1".into()), Host::Tcp("db".into())];
        assert_eq!(effective_mode(&none, &mixed), SslMode::VerifyFull);
        let set = TlsSettings {
            mode: Some(SslMode::Require),
            root_cert: None,
        };
        assert_eq!(effective_mode(&set, &tcp("127.0.0.1")), SslMode::Require);
    }
}
