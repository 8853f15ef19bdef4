//! One connection to the IMAP server: TCP, TLS (implicit or STARTTLS),
//! the greeting, login, and the timeouts every command runs under.
//!
//! Owns the transport (which remembers end-of-stream, so a command whose
//! answer stopped short is an error, not a short answer), certificate
//! checks, the plaintext policy, choosing MOVE or COPY + EXPUNGE from the
//! capabilities, reading a command's answer up to its tagged completion
//! ([`run_tagged`]: a `NO` or `BAD` is an error, never an empty answer),
//! and turning async-imap errors into [`ImapError`]s that name the server
//! and the command. Leaves what is done on the selected
//! folder to `mailbox`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_imap::imap_proto::{Response, Status};
use async_imap::{Client, Session};
use futures_util::StreamExt as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_rustls::client::TlsStream;

use super::mailbox::{MoveMethod, finish_interrupted_moves};
use super::{ImapConfig, ImapError, Security};

/// The TCP connection, with or without TLS (one type for the session),
/// remembering whether the server closed it.
pub(super) struct Conn {
    io: Io,
    /// A read returned end-of-stream.
    eof: bool,
    /// An `EXISTS` or `RECENT` came in the answer to a command that
    /// [`run_tagged`] read (async-imap's unsolicited channel only hears of
    /// the commands it reads itself).
    news: bool,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn new(io: Io) -> Self {
        Conn {
            io,
            eof: false,
            news: false,
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.io {
            Io::Plain(_) => "Conn::Plain",
            Io::Tls(_) => "Conn::Tls",
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            this.eof = true;
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub(super) type ImapSession = Session<Conn>;

/// The tokio runtime an IMAP connection runs on: the process's shared one
/// (`rt`).
pub(super) fn runtime() -> Result<&'static Runtime, ImapError> {
    crate::rt::runtime().map_err(|source| ImapError::Runtime { source })
}

/// Runs one command future with the I/O timeout, naming it in errors.
pub(super) async fn cmd<T>(
    cfg: &ImapConfig,
    command: &str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(cfg.io_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(async_imap::error::Error::ConnectionLost)) => Err(ImapError::Broken {
            server: server(cfg),
            command: command.to_owned(),
            reason: "the server closed the connection before completing the command".to_owned(),
        }),
        Ok(Err(async_imap::error::Error::Io(e))) => Err(ImapError::Broken {
            server: server(cfg),
            command: command.to_owned(),
            reason: if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the server closed the connection in the middle of a response".to_owned()
            } else {
                e.to_string()
            },
        }),
        Ok(Err(source)) => Err(ImapError::Command {
            server: server(cfg),
            command: command.to_owned(),
            source,
        }),
        Err(_) => Err(ImapError::Timeout {
            server: server(cfg),
            command: command.to_owned(),
            secs: cfg.io_timeout.as_secs(),
        }),
    }
}

/// RFC 9051 2.2.2: "The server completion result response indicates the
/// success or failure of the operation." async-imap ends the response
/// stream of FETCH, SEARCH, STORE, EXPUNGE and LIST quietly when the
/// server closes the connection between two responses, as if the tagged
/// completion had come: a partial answer would pass for a whole one. The
/// connection remembers end-of-stream; after such a command it is an
/// error.
pub(super) fn still_open(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    command: &str,
) -> Result<(), ImapError> {
    if session.as_mut().eof {
        return Err(ImapError::Broken {
            server: server(cfg),
            command: command.to_owned(),
            reason: "the server closed the connection before completing the command".to_owned(),
        });
    }
    Ok(())
}

/// Whether mail arrived according to a command [`run_tagged`] read since
/// the last call.
pub(super) fn take_news(session: &mut ImapSession) -> bool {
    std::mem::take(&mut session.as_mut().news)
}

/// How a command [`run_tagged`] sent was completed.
enum Completion {
    Ok,
    /// `NO` or `BAD`, with the server's text.
    Refused {
        status: &'static str,
        text: String,
    },
    /// End-of-stream before the tagged completion.
    Closed,
}

/// RFC 9051 7.1: "The tagged response indicates the result of the
/// operation [...]: OK indicates success, NO indicates failure, BAD
/// indicates a protocol error". async-imap's FETCH, SEARCH, STORE and
/// EXPUNGE read their answer up to the tagged completion and drop it
/// unread, so a `NO` to `UID FETCH` would pass for an empty answer and
/// its messages would be skipped without a word. This sends `command`
/// itself and reads the answer response by response: `each` sees every
/// untagged response of it, and the run ends with an error naming `what`
/// and the server's text unless the tagged completion is `OK`. An
/// `EXISTS` or `RECENT` in the answer is remembered for [`take_news`].
pub(super) async fn run_tagged(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    command: &str,
    what: &str,
    mut each: impl FnMut(&Response<'_>),
) -> Result<(), ImapError> {
    use async_imap::imap_proto::MailboxDatum;
    let done = cmd(cfg, what, async {
        let id = session.run_command(command).await?;
        loop {
            let Some(resp) = session.read_response().await? else {
                return Ok(Completion::Closed);
            };
            match resp.parsed() {
                Response::Done {
                    tag,
                    status,
                    outcome,
                } if *tag == id => {
                    let status = match status {
                        Status::Ok => return Ok(Completion::Ok),
                        Status::No => "NO",
                        Status::Bad => "BAD",
                        // Not a completion result RFC 9051 allows in a
                        // tagged response: not a success either.
                        Status::PreAuth => "PREAUTH",
                        Status::Bye => "BYE",
                    };
                    let mut text = match &outcome.code {
                        Some(code) => format!("[{code:?}] "),
                        None => String::new(),
                    };
                    text.push_str(outcome.information.as_deref().unwrap_or(""));
                    return Ok(Completion::Refused {
                        status,
                        text: text.trim_end().to_owned(),
                    });
                }
                Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_)) => {
                    session.as_mut().news = true;
                }
                other => each(other),
            }
        }
    })
    .await?;
    match done {
        Completion::Ok => Ok(()),
        Completion::Refused { status, text } => Err(ImapError::Refused {
            server: server(cfg),
            command: what.to_owned(),
            status: status.to_owned(),
            text,
        }),
        Completion::Closed => Err(ImapError::Broken {
            server: server(cfg),
            command: what.to_owned(),
            reason: "the server closed the connection before completing the command".to_owned(),
        }),
    }
}

pub(super) fn server(cfg: &ImapConfig) -> String {
    format!("{}:{}", cfg.url.host, cfg.url.port)
}

pub(super) fn closed(cfg: &ImapConfig) -> ImapError {
    ImapError::Closed {
        server: server(cfg),
    }
}

pub(super) fn is_setup_error(e: &ImapError) -> bool {
    matches!(
        e,
        ImapError::Url { .. }
            | ImapError::PlainRefused { .. }
            | ImapError::CaFile { .. }
            | ImapError::Tls { .. }
            | ImapError::Login { .. }
            | ImapError::NoMove { .. }
    )
}

pub(super) fn is_connection_error(e: &ImapError) -> bool {
    match e {
        ImapError::Command { source, .. } => matches!(
            source,
            async_imap::error::Error::Io(_) | async_imap::error::Error::ConnectionLost
        ),
        ImapError::Timeout { .. } | ImapError::Closed { .. } | ImapError::Broken { .. } => true,
        _ => false,
    }
}

fn tls_config(cfg: &ImapConfig) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let ca_err = |reason: String| ImapError::CaFile {
                path: path.clone(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no CERTIFICATE in the file".to_owned()));
            }
            for c in certs {
                roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A broken system certificate is skipped, as browsers do.
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls {
            host: cfg.url.host.clone(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn tls_wrap(cfg: &ImapConfig, tcp: TcpStream) -> Result<Conn, ImapError> {
    let tls_err = |reason: String| ImapError::Tls {
        host: cfg.url.host.clone(),
        reason,
    };
    let name = ServerName::try_from(cfg.url.host.clone()).map_err(|e| tls_err(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config(cfg)?);
    match tokio::time::timeout(cfg.io_timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Conn::new(Io::Tls(Box::new(s)))),
        Ok(Err(e)) => Err(tls_err(e.to_string())),
        Err(_) => Err(tls_err("handshake timed out".to_owned())),
    }
}

/// Reads the server greeting: RFC 9051 7.1.1 `greeting = "*" SP
/// (resp-cond-auth / resp-cond-bye) CRLF`.
async fn greeting(cfg: &ImapConfig, client: &mut Client<Conn>) -> Result<(), ImapError> {
    let resp = cmd(cfg, "greeting", async {
        client.read_response().await.map_err(Into::into)
    })
    .await?
    .ok_or_else(|| closed(cfg))?;
    match resp.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        other => Err(ImapError::Login {
            server: server(cfg),
            user: cfg.url.user.clone(),
            reason: format!("unexpected greeting {other:?}"),
        }),
    }
}

/// Connects and logs in, and prepares the folders.
pub(super) async fn open(cfg: &ImapConfig) -> Result<(ImapSession, MoveMethod, u32), ImapError> {
    let addr = format!("{}:{}", cfg.url.host, cfg.url.port);
    let tcp = match tokio::time::timeout(
        cfg.connect_timeout,
        TcpStream::connect((cfg.url.host.as_str(), cfg.url.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(ImapError::Connect { addr, source }),
        Err(_) => {
            return Err(ImapError::Connect {
                addr,
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let client = match cfg.url.security {
        Security::Tls => {
            let mut client = Client::new(tls_wrap(cfg, tcp).await?);
            greeting(cfg, &mut client).await?;
            client
        }
        Security::StartTls => {
            let mut client = Client::new(Conn::new(Io::Plain(tcp)));
            greeting(cfg, &mut client).await?;
            // RFC 9051 6.2.1: "A [TLS] negotiation begins immediately after
            // the CRLF at the end of the tagged OK response from the
            // server." A server without STARTTLS answers BAD or NO.
            let started = cmd(cfg, "STARTTLS", async {
                client.run_command_and_check_ok("STARTTLS", None).await
            })
            .await;
            match started {
                Ok(()) => {
                    let Conn {
                        io: Io::Plain(tcp), ..
                    } = client.into_inner()
                    else {
                        return Err(closed(cfg));
                    };
                    // The greeting is not repeated after STARTTLS.
                    Client::new(tls_wrap(cfg, tcp).await?)
                }
                Err(ImapError::Command {
                    source: async_imap::error::Error::Bad(_) | async_imap::error::Error::No(_),
                    ..
                }) => {
                    if cfg.allow_plain || cfg.url.is_loopback() {
                        client
                    } else {
                        return Err(ImapError::PlainRefused {
                            host: cfg.url.host.clone(),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    let login = tokio::time::timeout(
        cfg.io_timeout,
        client.login(&cfg.url.user, cfg.password.expose()),
    )
    .await;
    let mut session = match login {
        Ok(Ok(s)) => s,
        Ok(Err((e, _))) => {
            return Err(ImapError::Login {
                server: server(cfg),
                user: cfg.url.user.clone(),
                reason: e.to_string(),
            });
        }
        Err(_) => {
            return Err(ImapError::Timeout {
                server: server(cfg),
                command: "LOGIN".to_owned(),
                secs: cfg.io_timeout.as_secs(),
            });
        }
    };
    let caps = cmd(cfg, "CAPABILITY", session.capabilities()).await?;
    let method = if caps.has_str("MOVE") && !cfg.force_copy_fallback {
        MoveMethod::Move
    } else if caps.has_str("UIDPLUS") {
        MoveMethod::CopyExpunge
    } else {
        return Err(ImapError::NoMove {
            server: server(cfg),
        });
    };
    for folder in [&cfg.archive, &cfg.invalid] {
        ensure_folder(&mut session, cfg, folder).await?;
    }
    let mailbox = cmd(cfg, "SELECT", session.select(&cfg.url.folder)).await?;
    // Without UIDVALIDITY (RFC 9051 requires it) UIDs still work within
    // this connection; 0 only shows in origins.
    let uid_validity = mailbox.uid_validity.unwrap_or(0);
    if method == MoveMethod::CopyExpunge {
        finish_interrupted_moves(&mut session, cfg).await?;
    }
    Ok((session, method, uid_validity))
}

/// Creates `folder` unless `LIST` shows it exists.
async fn ensure_folder(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    folder: &str,
) -> Result<(), ImapError> {
    let names: Vec<_> = cmd(cfg, "LIST", async {
        let stream = session.list(Some(""), Some(folder)).await?;
        stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<async_imap::error::Result<Vec<_>>>()
    })
    .await?;
    still_open(session, cfg, "LIST")?;
    if names.is_empty() {
        cmd(cfg, "CREATE", session.create(folder)).await?;
    }
    Ok(())
}
