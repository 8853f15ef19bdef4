//! The IMAP commands mailauth runs on the selected folder: list what is
//! there, fetch bodies without setting `\\Seen`, move a handled message
//! (UID MOVE, or UID COPY + STORE + UID EXPUNGE), and finish a move a
//! crash cut short.
//!
//! Owns the command strings and what their answers mean. Leaves the
//! connection and its timeouts to `conn`, and the order of fetch, commit
//! and move to `source`.

use std::collections::{HashMap, HashSet};

use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response};

use super::ImapConfig;
use super::ImapError;
use super::conn::{ImapSession, cmd, run_tagged};

/// How handled messages leave the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveMethod {
    /// RFC 6851 `UID MOVE`: atomic.
    Move,
    /// RFC 4315 `UID COPY`, `UID STORE +FLAGS (\Deleted)`, `UID EXPUNGE`.
    CopyExpunge,
}

/// A keyword the COPY fallback sets on a message before copying it (the
/// copy carries it too, RFC 9051 6.4.7: "the flags [...] SHOULD be
/// preserved"). After a crash, a message that carries it and is not yet
/// `\Deleted` may or may not have been copied: the next run looks for the
/// copy by Message-ID before copying again. A message carrying it and
/// `\Deleted` was copied: the next run expunges it. Never touches
/// messages someone else flagged `\Deleted`.
const MOVING_KEYWORD: &str = "$MailauthMoving";

/// Finishes what a crash cut short in the COPY fallback (see
/// [`MOVING_KEYWORD`]); the folder is selected again at the end.
pub(super) async fn finish_interrupted_moves(
    session: &mut ImapSession,
    cfg: &ImapConfig,
) -> Result<(), ImapError> {
    // Marked but not flagged: was the copy made? Look for it by
    // Message-ID in the destination folders.
    let marked = uid_search(session, cfg, &format!("UNDELETED KEYWORD {MOVING_KEYWORD}")).await?;
    if !marked.is_empty() {
        let set = uid_set(marked.into_iter().collect());
        let fetches = uid_fetch(session, cfg, &set, "(UID ENVELOPE)", "UID FETCH").await?;
        let mut by_id: Vec<(u32, String)> = fetches
            .iter()
            .filter_map(|f| {
                let id = f.message_id.as_ref()?;
                let id = std::str::from_utf8(id).ok()?;
                // Only ids that quote safely; others are copied again.
                let ok = !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
                Some((f.uid?, id.to_owned())).filter(|_| ok)
            })
            .collect();
        let mut copied = Vec::new();
        for folder in [&cfg.archive, &cfg.invalid] {
            if by_id.is_empty() {
                break;
            }
            cmd(cfg, "EXAMINE", session.examine(folder)).await?;
            let mut rest = Vec::new();
            for (uid, id) in by_id {
                let found = uid_search(
                    session,
                    cfg,
                    &format!("KEYWORD {MOVING_KEYWORD} HEADER Message-ID \"{id}\""),
                )
                .await?;
                if found.is_empty() {
                    rest.push((uid, id));
                } else {
                    copied.push(uid);
                }
            }
            by_id = rest;
        }
        cmd(cfg, "SELECT", session.select(&cfg.url.folder)).await?;
        if !copied.is_empty() {
            store_flags(session, cfg, &uid_set(copied), "\\Deleted").await?;
        }
    }
    // Copied and flagged: only the expunge is missing.
    let uids = uid_search(session, cfg, &format!("DELETED KEYWORD {MOVING_KEYWORD}")).await?;
    if uids.is_empty() {
        return Ok(());
    }
    uid_expunge(session, cfg, &uid_set(uids.into_iter().collect())).await
}

/// A UID set in RFC 9051 `sequence-set` form: `1,3,5`.
fn uid_set(mut uids: Vec<u32>) -> String {
    uids.sort_unstable();
    let parts: Vec<String> = uids.iter().map(u32::to_string).collect();
    parts.join(",")
}

/// `UID SEARCH UNDELETED`, then sizes by `UID FETCH 1:* (UID RFC822.SIZE)`,
/// sorted by UID (oldest first).
pub(super) async fn list_messages(
    session: &mut ImapSession,
    cfg: &ImapConfig,
) -> Result<Vec<(u32, u64)>, ImapError> {
    drain_unsolicited(session);
    let uids = uid_search(session, cfg, "UNDELETED").await?;
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<u32> = uids.into_iter().collect();
    wanted.sort_unstable();
    let mut out = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(500) {
        let set = uid_set(chunk.to_vec());
        let fetches = uid_fetch(session, cfg, &set, "(UID RFC822.SIZE)", "UID FETCH").await?;
        for f in fetches {
            if let Some(uid) = f.uid {
                out.push((uid, u64::from(f.size.unwrap_or(0))));
            }
        }
    }
    out.sort_unstable();
    out.dedup_by_key(|(uid, _)| *uid);
    Ok(out)
}

/// RFC 9051 6.4.5: "BODY.PEEK[<section>]<<partial>> An alternate form of
/// BODY[<section>] that does not implicitly set the \Seen flag."
pub(super) async fn fetch_bodies(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    uids: &[u32],
) -> Result<HashMap<u32, Vec<u8>>, ImapError> {
    let set = uid_set(uids.to_vec());
    let what = match (uids.first(), uids.last()) {
        (Some(first), Some(last)) if uids.len() > 1 => format!(
            "UID FETCH of {} message bodies (UIDs {first} to {last})",
            uids.len()
        ),
        _ => format!("UID FETCH of the message body of UID {set}"),
    };
    let fetches = uid_fetch(session, cfg, &set, "(UID BODY.PEEK[])", &what).await?;
    let mut out = HashMap::new();
    for f in fetches {
        // Unsolicited FETCH responses (flag changes) carry no body.
        if let (Some(uid), Some(body)) = (f.uid, f.body)
            && uids.contains(&uid)
        {
            out.insert(uid, body);
        }
    }
    Ok(out)
}

pub(super) async fn move_message(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    method: MoveMethod,
    uid: u32,
    folder: &str,
) -> Result<(), ImapError> {
    let set = uid.to_string();
    match method {
        // RFC 6851 3.1: "The MOVE command takes two arguments: a message
        // set (sequence numbers for MOVE, UIDs for UID MOVE) and a named
        // mailbox."
        MoveMethod::Move => cmd(cfg, "UID MOVE", session.uid_mv(&set, folder)).await?,
        // RFC 6851 3.3: "a client [...] can use COPY, STORE +FLAGS.SILENT
        // \Deleted, UID EXPUNGE" when the server has UIDPLUS (RFC 4315
        // 2.1: "UID EXPUNGE sequence-set").
        MoveMethod::CopyExpunge => {
            store_flags(session, cfg, &set, MOVING_KEYWORD).await?;
            cmd(cfg, "UID COPY", session.uid_copy(&set, folder)).await?;
            store_flags(session, cfg, &set, "\\Deleted").await?;
            uid_expunge(session, cfg, &set).await?;
        }
    }
    Ok(())
}

async fn store_flags(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    set: &str,
    flags: &str,
) -> Result<(), ImapError> {
    let command = format!("UID STORE {set} +FLAGS.SILENT ({flags})");
    run_tagged(session, cfg, &command, "UID STORE", |_| {}).await
}

/// `UID SEARCH query`, all of its answer; a `NO` or `BAD` is an error.
async fn uid_search(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    query: &str,
) -> Result<HashSet<u32>, ImapError> {
    let mut uids = HashSet::new();
    let command = format!("UID SEARCH {query}");
    run_tagged(session, cfg, &command, "UID SEARCH", |r| {
        // RFC 9051 7.3.4 (RFC 3501 7.2.5): `"SEARCH" *(SP nz-number)`.
        if let Response::MailboxData(MailboxDatum::Search(found)) = r {
            uids.extend(found.iter().copied());
        }
    })
    .await?;
    Ok(uids)
}

/// RFC 4315 2.1 `UID EXPUNGE sequence-set`: only these UIDs.
async fn uid_expunge(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    set: &str,
) -> Result<(), ImapError> {
    let command = format!("UID EXPUNGE {set}");
    run_tagged(session, cfg, &command, "UID EXPUNGE", |_| {}).await
}

/// What mailauth reads of one FETCH response.
#[derive(Debug, Default)]
struct Fetched {
    uid: Option<u32>,
    size: Option<u32>,
    /// `BODY[]`: the whole message.
    body: Option<Vec<u8>>,
    /// The envelope's Message-ID.
    message_id: Option<Vec<u8>>,
}

impl Fetched {
    /// RFC 9051 7.5.2: `msg-att = "(" (msg-att-dynamic / msg-att-static)
    /// *(SP (msg-att-dynamic / msg-att-static)) ")"`.
    fn from_attrs(attrs: &[AttributeValue<'_>]) -> Self {
        let mut f = Fetched::default();
        for a in attrs {
            match a {
                AttributeValue::Uid(uid) => f.uid = Some(*uid),
                AttributeValue::Rfc822Size(n) => f.size = Some(*n),
                AttributeValue::BodySection {
                    section: None,
                    data: Some(body),
                    ..
                }
                | AttributeValue::Rfc822(Some(body)) => f.body = Some(body.to_vec()),
                AttributeValue::Envelope(env) => {
                    f.message_id = env.message_id.as_ref().map(|id| id.to_vec());
                }
                _ => {}
            }
        }
        f
    }
}

/// `UID FETCH set query`, every response collected, under the I/O
/// timeout; a `NO` or `BAD` is an error, so a batch the server did not
/// deliver in full is never taken for a smaller one.
async fn uid_fetch(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    set: &str,
    query: &str,
    what: &str,
) -> Result<Vec<Fetched>, ImapError> {
    let mut out = Vec::new();
    let command = format!("UID FETCH {set} {query}");
    run_tagged(session, cfg, &command, what, |r| {
        if let Response::Fetch(_, attrs) = r {
            out.push(Fetched::from_attrs(attrs));
        }
    })
    .await?;
    Ok(out)
}

/// Unsolicited responses go to a bounded channel nobody reads: empty it
/// (and forget what [`run_tagged`] heard) so it never holds stale news:
/// the listing that follows sees what they announced.
fn drain_unsolicited(session: &mut ImapSession) {
    super::conn::take_news(session);
    while session.unsolicited_responses.try_recv().is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(vec![5, 1, 3]), "1,3,5");
        assert_eq!(uid_set(vec![7]), "7");
    }
}
