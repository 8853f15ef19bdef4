//! The embedded default provider: one RFC 1035 master file per zone,
//! `<dir>/<zone>.zone`. Reading keeps every record (owned or not); writing
//! edits the file text in place (see `masterfile`), bumps the SOA serial,
//! and replaces the file atomically (temp file, fsync, rename) only if it is
//! still byte-for-byte what the plan read.

use std::path::{Path, PathBuf};

use super::{Capabilities, Change, Fetched, Provider, ProviderError};
use crate::masterfile;
use crate::record::{Name, RData, RType, RecordSet, Zone};

/// Settings of the zone-file provider.
#[derive(Clone, Debug)]
pub struct ZoneFileProvider {
    dir: PathBuf,
    /// The directory as the user wrote it, for messages and plans.
    label: String,
    /// Name servers written into a zone file mailauth creates.
    nameservers: Vec<Name>,
    default_ttl: u32,
}

impl ZoneFileProvider {
    pub fn new(dir: PathBuf, nameservers: Vec<Name>, default_ttl: u32) -> ZoneFileProvider {
        ZoneFileProvider {
            label: dir.display().to_string(),
            dir,
            nameservers,
            default_ttl,
        }
    }

    /// Names the provider after `label` (the directory as configured)
    /// rather than the resolved path.
    pub fn with_label(mut self, label: &str) -> ZoneFileProvider {
        self.label = label.to_string();
        self
    }

    pub fn path(&self, zone: &Name) -> PathBuf {
        self.dir.join(format!("{zone}.zone"))
    }

    fn io(&self, zone: &Name, path: &Path, source: std::io::Error) -> ProviderError {
        ProviderError::Io {
            provider: self.id(),
            zone: zone.to_string(),
            path: path.display().to_string(),
            source,
        }
    }

    fn read(&self, zone: &Name) -> Result<Option<String>, ProviderError> {
        let path = self.path(zone);
        match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| ProviderError::Parse {
                    provider: self.id(),
                    path: path.display().to_string(),
                    line: 0,
                    msg: format!("not UTF-8: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(zone, &path, e)),
        }
    }

    fn parse(&self, zone: &Name, text: &str) -> Result<masterfile::Parsed, ProviderError> {
        masterfile::parse(text, zone).map_err(|e| ProviderError::Parse {
            provider: self.id(),
            path: self.path(zone).display().to_string(),
            line: e.line,
            msg: e.msg,
        })
    }

    /// The text of a zone file created from scratch: SOA, NS, then `sets`.
    fn fresh(&self, zone: &Name, sets: &[RecordSet], serial: u32) -> String {
        let ns = if self.nameservers.is_empty() {
            vec![Name::parse("localhost").expect("static name")]
        } else {
            self.nameservers.clone()
        };
        let mut out = format!(
            "; zone {zone}, created by mailauth; records it does not manage may be added freely\n\
             $ORIGIN {}\n$TTL {}\n\
             @\tIN\tSOA\t{} hostmaster.{} ( {serial} 3600 900 1209600 300 )\n",
            zone.fqdn(),
            self.default_ttl,
            ns[0].fqdn(),
            zone.fqdn(),
        );
        for n in &ns {
            out.push_str(&format!("@\tIN\tNS\t{}\n", n.fqdn()));
        }
        for set in sets {
            for line in masterfile::render_set(set, zone) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    fn write_atomically(&self, zone: &Name, text: &str) -> Result<(), ProviderError> {
        let path = self.path(zone);
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(zone, &self.dir, e))?;
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
            .map_err(|e| self.io(zone, &path, e))
    }
}

/// FNV-1a over the file, with its length: a cheap, stable fingerprint
/// that tells whether the file changed since the plan read it.
fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}:{h:016x}", text.len())
}

const ABSENT: &str = "absent";

/// Today's date as `YYYYMMDD` for the SOA serial; a clock that cannot be
/// read (a bad `MAILAUTH_NOW`) is an error, never a serial of 1970.
fn today(provider: String, zone: &Name) -> Result<u32, ProviderError> {
    let now = crate::clock::now().map_err(|detail| ProviderError::Rejected {
        provider,
        zone: zone.to_string(),
        detail,
    })?;
    let (y, m, d) = crate::clock::civil(now);
    Ok((y as u32) * 10_000 + m * 100 + d)
}

impl Provider for ZoneFileProvider {
    fn id(&self) -> String {
        format!("zonefile:{}", self.label)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            types: vec![RType::Txt, RType::Cname, RType::Mx],
            max_txt_len: 65_000,
            cname: true,
        }
    }

    fn fetch(&self, zone: &Name) -> Result<Fetched, ProviderError> {
        match self.read(zone)? {
            None => Ok(Fetched {
                zone: Zone::new(zone.clone()),
                version: ABSENT.to_string(),
                exists: false,
            }),
            Some(text) => Ok(Fetched {
                zone: self.parse(zone, &text)?.zone(zone),
                version: fingerprint(&text),
                exists: true,
            }),
        }
    }

    fn apply(&self, zone: &Name, seen: &Fetched, changes: &[Change]) -> Result<(), ProviderError> {
        let current = self.read(zone)?;
        let version = current.as_deref().map_or(ABSENT.to_string(), fingerprint);
        if version != seen.version {
            return Err(ProviderError::Stale {
                provider: self.id(),
                zone: zone.to_string(),
                detail: format!("{} was modified", self.path(zone).display()),
            });
        }
        let text = match current {
            None => {
                let mut sets = Vec::new();
                for c in changes {
                    match c {
                        Change::Create { new } => sets.push(new.clone()),
                        other => {
                            return Err(ProviderError::Rejected {
                                provider: self.id(),
                                zone: zone.to_string(),
                                detail: format!(
                                    "cannot {} {} in a zone file that does not exist",
                                    match other {
                                        Change::Update { .. } => "update",
                                        _ => "delete",
                                    },
                                    other.name()
                                ),
                            });
                        }
                    }
                }
                self.fresh(zone, &sets, today(self.id(), zone)? * 100)
            }
            Some(text) => {
                let parsed = self.parse(zone, &text)?;
                let today = today(self.id(), zone)?;
                let serial = parsed
                    .records
                    .iter()
                    .find(|r| r.rtype == RType::Soa)
                    .and_then(|r| match &r.data {
                        RData::Raw(s) => s.split(' ').nth(2)?.parse::<u32>().ok(),
                        _ => None,
                    })
                    .map(|old| masterfile::bump_serial(old, today));
                masterfile::apply_edits(&text, &parsed, changes, serial)
            }
        };
        self.write_atomically(zone, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn create_fetch_update_and_stale() {
        let dir = tempfile::tempdir().unwrap();
        let p = ZoneFileProvider::new(dir.path().to_path_buf(), vec![], 3600);
        let zone = n("example.com");
        let seen = p.fetch(&zone).unwrap();
        assert!(!seen.exists);
        let dmarc = RecordSet::new(
            zone.child("_dmarc"),
            RType::Txt,
            3600,
            vec![RData::txt("v=DMARC1; p=none")],
        );
        p.apply(&zone, &seen, &[Change::Create { new: dmarc.clone() }])
            .unwrap();
        let seen = p.fetch(&zone).unwrap();
        assert_eq!(seen.zone.get(&dmarc.name, &RType::Txt), Some(&dmarc));
        // Someone edits the file after the plan read it.
        let path = p.path(&zone);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("www IN A 192.0.2.1\n");
        std::fs::write(&path, &text).unwrap();
        let err = p
            .apply(&zone, &seen, &[Change::Delete { old: dmarc }])
            .unwrap_err();
        assert!(matches!(err, ProviderError::Stale { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
