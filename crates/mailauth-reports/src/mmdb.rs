//! A reader of MaxMind DB files (the format of GeoLite2-ASN and DB-IP ASN
//! Lite) for the autonomous system of a source IP.
//!
//! Owns the file format: metadata, the binary search tree and the data
//! section decoder, every offset and length bounds-checked, so a crafted
//! file gives an [`MmdbError`], never a panic, a loop or a large
//! allocation. Leaves the use of the answer (identification, grouping) to
//! `reports::sources`, and where the file comes from to the caller.
//!
//! Format: MaxMind DB File Format Specification 2.0
//! (<https://maxmind.github.io/MaxMind-DB/>).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// "The metadata section ... begins with the byte sequence
/// `\xab\xcd\xefMaxMind.com`" and is found by "searching for the last
/// occurrence of this sequence" in the file's last 128 KiB.
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
const METADATA_WINDOW: usize = 128 * 1024;
/// "the data section starts after a 16-byte separator of zeros".
const DATA_SEPARATOR: usize = 16;
/// Largest database read: GeoLite2-ASN is about 10 MB, DB-IP ASN Lite
/// about 40 MB.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// Nesting of maps, arrays and pointers followed in one value.
const MAX_DEPTH: usize = 32;
/// Values decoded for one lookup: a record of an ASN database has a few;
/// the cap stops a file whose pointers fan out exponentially.
const MAX_VALUES: usize = 10_000;

/// What went wrong with a database: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MmdbError {
    #[error("ASN database {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ASN database {path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("ASN database {path}: not a MaxMind DB file: {msg}")]
    Format { path: PathBuf, msg: String },
}

/// The autonomous system a database names for an address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Asn {
    /// `autonomous_system_number`.
    pub number: u32,
    /// `autonomous_system_organization`, if the record has one.
    pub organization: Option<String>,
    /// The network of the record (`192.0.2.0/24`).
    pub network: String,
}

impl Asn {
    /// `AS64500 Example Net` (the organisation without control characters).
    pub fn label(&self) -> String {
        match &self.organization {
            Some(o) => format!(
                "AS{} {}",
                self.number,
                o.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect::<String>()
                    .trim()
            ),
            None => format!("AS{}", self.number),
        }
    }
}

/// A decoded data-section value (only what an ASN record needs is kept
/// whole; other values are decoded for their length and dropped).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Uint(u128),
    Int(i32),
    Map(Vec<(String, Value)>),
    Array(Vec<Value>),
    Other,
}

/// An open database, held in memory.
#[derive(Debug)]
pub struct Mmdb {
    path: PathBuf,
    bytes: Vec<u8>,
    node_count: u32,
    record_size: u16,
    ip_version: u16,
    tree_bytes: usize,
    /// First node of IPv4 lookups in an IPv6 tree (after 96 zero bits).
    ipv4_start: u32,
    /// `database_type` from the metadata.
    pub database_type: String,
}

type Res<T> = Result<T, String>;

struct Decoder<'a> {
    /// The data section (or the metadata section).
    data: &'a [u8],
    /// Values left to decode.
    budget: usize,
    /// Whether pointers may be followed (not in metadata).
    pointers: bool,
}

impl Decoder<'_> {
    fn byte(&self, at: usize) -> Res<u8> {
        self.data
            .get(at)
            .copied()
            .ok_or_else(|| format!("data offset {at} past the end"))
    }

    fn slice(&self, at: usize, len: usize) -> Res<&[u8]> {
        at.checked_add(len)
            .and_then(|end| self.data.get(at..end))
            .ok_or_else(|| format!("{len} bytes at data offset {at} past the end"))
    }

    fn be(&self, at: usize, len: usize) -> Res<u128> {
        if len > 16 {
            return Err(format!("integer of {len} bytes at data offset {at}"));
        }
        Ok(self
            .slice(at, len)?
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b)))
    }

    /// Decodes the value at `at`; returns it and the offset after it.
    fn decode(&mut self, at: usize, depth: usize) -> Res<(Value, usize)> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| format!("more than {MAX_VALUES} values in one record"))?;
        let ctrl = self.byte(at)?;
        let mut pos = at + 1;
        let mut kind = ctrl >> 5;
        // §"Pointer - 1": the size bits are `SSVVV`.
        if kind == 1 {
            if !self.pointers {
                return Err("a pointer in the metadata".to_owned());
            }
            let ss = (ctrl >> 3) & 0x3;
            let vvv = u128::from(ctrl & 0x7);
            let (len, base): (usize, u128) = match ss {
                0 => (1, 0),
                1 => (2, 2048),
                2 => (3, 526_336),
                _ => (4, 0),
            };
            let raw = self.be(pos, len)?;
            let target = if ss == 3 {
                raw
            } else {
                ((vvv << (8 * len)) | raw) + base
            };
            let target = usize::try_from(target).map_err(|_| "pointer out of range")?;
            // "a pointer to a pointer" is invalid: libmaxminddb and the Go
            // reader refuse it too, and it would allow cycles.
            if self.byte(target)? >> 5 == 1 {
                return Err(format!("pointer at data offset {at} to a pointer"));
            }
            let (v, _) = self.decode(target, depth + 1)?;
            return Ok((v, pos + len));
        }
        // §"Extended" types: type 0 means the next byte plus 7.
        if kind == 0 {
            let ext = self.byte(pos)?;
            pos += 1;
            kind = ext
                .checked_add(7)
                .filter(|k| *k >= 8)
                .ok_or_else(|| format!("extended type {ext} at data offset {at}"))?;
        }
        // §"Payload Size": below 29 the size itself; 29, 30, 31 add one,
        // two or three bytes.
        let small = usize::from(ctrl & 0x1f);
        let size = match small {
            0..=28 => small,
            29 => 29 + self.be(pos, 1)? as usize,
            30 => 285 + self.be(pos, 2)? as usize,
            _ => 65_821 + self.be(pos, 3)? as usize,
        };
        pos += match small {
            29 => 1,
            30 => 2,
            31 => 3,
            _ => 0,
        };
        let value = match kind {
            2 => {
                let s = std::str::from_utf8(self.slice(pos, size)?)
                    .map_err(|_| format!("string at data offset {at} is not UTF-8"))?;
                pos += size;
                Value::Str(s.to_owned())
            }
            // double (8 bytes), float (4 bytes)
            3 | 15 => {
                let want = if kind == 3 { 8 } else { 4 };
                if size != want {
                    return Err(format!("float of {size} bytes at data offset {at}"));
                }
                self.slice(pos, size)?;
                pos += size;
                Value::Other
            }
            // bytes
            4 => {
                self.slice(pos, size)?;
                pos += size;
                Value::Other
            }
            // uint16, uint32, uint64, uint128
            5 | 6 | 9 | 10 => {
                let max = match kind {
                    5 => 2,
                    6 => 4,
                    9 => 8,
                    _ => 16,
                };
                if size > max {
                    return Err(format!("integer of {size} bytes at data offset {at}"));
                }
                let v = self.be(pos, size)?;
                pos += size;
                Value::Uint(v)
            }
            8 => {
                if size > 4 {
                    return Err(format!("int32 of {size} bytes at data offset {at}"));
                }
                let v = self.be(pos, size)? as u32;
                pos += size;
                Value::Int(v as i32)
            }
            7 => {
                let mut entries = Vec::new();
                for _ in 0..size {
                    let (k, next) = self.decode(pos, depth + 1)?;
                    let Value::Str(k) = k else {
                        return Err(format!("map key at data offset {pos} is not a string"));
                    };
                    let (v, next) = self.decode(next, depth + 1)?;
                    pos = next;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            11 => {
                let mut items = Vec::new();
                for _ in 0..size {
                    let (v, next) = self.decode(pos, depth + 1)?;
                    pos = next;
                    items.push(v);
                }
                Value::Array(items)
            }
            // boolean: the value is the size
            14 => Value::Other,
            other => return Err(format!("type {other} at data offset {at}")),
        };
        Ok((value, pos))
    }
}

fn field<'a>(map: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn uint(map: &[(String, Value)], key: &str) -> Res<u128> {
    match field(map, key) {
        Some(Value::Uint(v)) => Ok(*v),
        Some(_) => Err(format!("metadata {key} is not an unsigned integer")),
        None => Err(format!("metadata has no {key}")),
    }
}

impl Mmdb {
    /// Reads and checks a database file.
    pub fn open(path: &Path) -> Result<Mmdb, MmdbError> {
        use std::io::Read;
        let read = |source| MmdbError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(MmdbError::TooLarge {
                path: path.to_owned(),
            });
        }
        Mmdb::from_bytes(path, bytes)
    }

    /// Checks a database held in memory; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Mmdb, MmdbError> {
        Mmdb::parse(path, bytes).map_err(|msg| MmdbError::Format {
            path: path.to_owned(),
            msg,
        })
    }

    fn parse(path: &Path, bytes: Vec<u8>) -> Res<Mmdb> {
        let window = bytes.len().saturating_sub(METADATA_WINDOW);
        let marker = bytes[window..]
            .windows(METADATA_MARKER.len())
            .rposition(|w| w == METADATA_MARKER)
            .map(|i| window + i)
            .ok_or("no metadata marker (\\xab\\xcd\\xefMaxMind.com)")?;
        let meta_start = marker + METADATA_MARKER.len();
        let mut dec = Decoder {
            data: &bytes[meta_start..],
            budget: MAX_VALUES,
            pointers: false,
        };
        let Value::Map(meta) = dec.decode(0, 0)?.0 else {
            return Err("metadata is not a map".to_owned());
        };
        let major = uint(&meta, "binary_format_major_version")?;
        if major != 2 {
            return Err(format!("binary format version {major}, want 2"));
        }
        let node_count = u32::try_from(uint(&meta, "node_count")?)
            .map_err(|_| "node_count over 2^32".to_owned())?;
        let record_size = match uint(&meta, "record_size")? {
            r @ (24 | 28 | 32) => r as u16,
            r => return Err(format!("record_size {r}, want 24, 28 or 32")),
        };
        let ip_version = match uint(&meta, "ip_version")? {
            v @ (4 | 6) => v as u16,
            v => return Err(format!("ip_version {v}, want 4 or 6")),
        };
        let database_type = match field(&meta, "database_type") {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        };
        // "The search tree section is record_size * 2 / 8 * node_count
        // bytes"; the separator and the data section follow, before the
        // metadata marker.
        let tree_bytes = (u64::from(record_size) * 2 / 8)
            .checked_mul(u64::from(node_count))
            .and_then(|t| usize::try_from(t).ok())
            .filter(|t| t.saturating_add(DATA_SEPARATOR) <= marker)
            .ok_or_else(|| {
                format!("{node_count} nodes of {record_size} bits do not fit in the file")
            })?;
        if node_count == 0 {
            return Err("node_count 0".to_owned());
        }
        let mut db = Mmdb {
            path: path.to_owned(),
            node_count,
            record_size,
            ip_version,
            tree_bytes,
            ipv4_start: 0,
            database_type,
            bytes,
        };
        db.bytes.truncate(marker);
        if ip_version == 6 {
            let mut node = 0;
            for _ in 0..96 {
                if node >= node_count {
                    break;
                }
                node = db.record(node, false)?;
            }
            db.ipv4_start = node;
        }
        Ok(db)
    }

    /// The path the database was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One record of a node: left (bit 0) or right (bit 1).
    /// §"Node Layout": 24 bits are 3 bytes each; 28 bits share the middle
    /// byte (its high nibble belongs to the left record); 32 bits are 4.
    fn record(&self, node: u32, right: bool) -> Res<u32> {
        let width = usize::from(self.record_size) * 2 / 8;
        let at = node as usize * width;
        let b = self
            .bytes
            .get(at..at + width)
            .filter(|_| at + width <= self.tree_bytes)
            .ok_or_else(|| format!("node {node} outside the search tree"))?;
        let be = |s: &[u8]| s.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x));
        Ok(match (self.record_size, right) {
            (24, false) => be(&b[0..3]),
            (24, true) => be(&b[3..6]),
            (28, false) => (u32::from(b[3] & 0xf0) << 20) | be(&b[0..3]),
            (28, true) => (u32::from(b[3] & 0x0f) << 24) | be(&b[4..7]),
            (_, false) => be(&b[0..4]),
            (_, true) => be(&b[4..8]),
        })
    }

    /// The ASN record of `ip`, `None` if the database has none for it
    /// (or has no ASN fields in it).
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<Asn>, MmdbError> {
        self.lookup_inner(ip).map_err(|msg| MmdbError::Format {
            path: self.path.clone(),
            msg,
        })
    }

    fn lookup_inner(&self, ip: IpAddr) -> Res<Option<Asn>> {
        let ip = ip.to_canonical();
        // An IPv4 address in an IPv6 tree starts at the node of `::/96`
        // ("IPv4 addresses in an IPv6 tree"); the walk counts its own bits.
        let (bits, len, mut node): (u128, u32, u32) = match ip {
            IpAddr::V4(v4) if self.ip_version == 6 => {
                (u128::from(u32::from(v4)) << 96, 32, self.ipv4_start)
            }
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32, 0),
            IpAddr::V6(_) if self.ip_version == 4 => return Ok(None),
            IpAddr::V6(v6) => (u128::from(v6), 128, 0),
        };
        // The walk is bounded by the address length: no loop whatever the
        // records say.
        let mut depth = 0;
        while depth < len && node < self.node_count {
            let bit = (bits >> (127 - depth)) & 1 == 1;
            node = self.record(node, bit)?;
            depth += 1;
        }
        if node == self.node_count {
            return Ok(None);
        }
        if node < self.node_count {
            return Err(format!("search tree deeper than {len} bits"));
        }
        // §"Search Lookup Algorithm": the data section offset is
        // (record - node_count) - 16.
        let offset = (node - self.node_count) as usize;
        let offset = offset
            .checked_sub(DATA_SEPARATOR)
            .ok_or_else(|| format!("record {node} points into the separator"))?;
        let data_start = self.tree_bytes + DATA_SEPARATOR;
        let mut dec = Decoder {
            data: &self.bytes[data_start..],
            budget: MAX_VALUES,
            pointers: true,
        };
        let Value::Map(rec) = dec.decode(offset, 0)?.0 else {
            return Ok(None);
        };
        let number = match field(&rec, "autonomous_system_number") {
            Some(Value::Uint(n)) => u32::try_from(*n).ok(),
            Some(Value::Int(n)) => u32::try_from(*n).ok(),
            _ => None,
        };
        let Some(number) = number else {
            return Ok(None);
        };
        let organization = match field(&rec, "autonomous_system_organization") {
            Some(Value::Str(s)) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        };
        let prefix = depth;
        let network = match ip {
            IpAddr::V4(v4) => ipnet::Ipv4Net::new(v4, prefix as u8)
                .map(|n| n.trunc().to_string())
                .unwrap_or_default(),
            IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, prefix as u8)
                .map(|n| n.trunc().to_string())
                .unwrap_or_default(),
        };
        Ok(Some(Asn {
            number,
            organization,
            network,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        Mmdb::from_bytes(Path::new("x.mmdb"), bytes.to_vec())
            .expect_err("bad file")
            .to_string()
    }

    /// Metadata map of `n` entries from (key, encoded value) pairs.
    fn meta(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = METADATA_MARKER.to_vec();
        out.push(0xe0 | entries.len() as u8);
        for (k, v) in entries {
            out.push(0x40 | k.len() as u8);
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    fn u16v(v: u16) -> Vec<u8> {
        let mut o = vec![0xa2];
        o.extend_from_slice(&v.to_be_bytes());
        o
    }

    fn u32v(v: u32) -> Vec<u8> {
        let mut o = vec![0xc4];
        o.extend_from_slice(&v.to_be_bytes());
        o
    }

    fn std_meta(nodes: u32) -> Vec<u8> {
        meta(&[
            ("binary_format_major_version", u16v(2)),
            ("node_count", u32v(nodes)),
            ("record_size", u16v(24)),
            ("ip_version", u16v(4)),
        ])
    }

    #[test]
    fn crafted_files_are_errors() {
        assert!(err(b"").contains("no metadata marker"), "{}", err(b""));
        assert!(err(b"junk").contains("x.mmdb"));
        // Truncated metadata map.
        let mut m = METADATA_MARKER.to_vec();
        m.push(0xe5);
        assert!(err(&m).contains("past the end"), "{}", err(&m));
        // A tree larger than the file.
        let e = err(&std_meta(1_000_000));
        assert!(e.contains("do not fit"), "{e}");
        // A pointer in the metadata.
        let mut m = METADATA_MARKER.to_vec();
        m.extend_from_slice(&[0x20, 0x00]);
        assert!(err(&m).contains("pointer"), "{}", err(&m));
        // A map claiming 2^24 entries.
        let mut m = METADATA_MARKER.to_vec();
        m.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(err(&m).contains("past the end"), "{}", err(&m));
        // Deep nesting: arrays of arrays (extended type 11).
        let mut m = METADATA_MARKER.to_vec();
        for _ in 0..100 {
            m.extend_from_slice(&[0x01, 0x04]);
        }
        assert!(err(&m).contains("deeper"), "{}", err(&m));
    }

    #[test]
    fn loops_in_the_tree_end() {
        // One node whose both records point to itself (node 0): the walk
        // stops after 32 bits with an error.
        let mut f = vec![0u8; 6];
        f.extend_from_slice(&[0u8; 16]);
        f.extend(std_meta(1));
        let db = Mmdb::from_bytes(Path::new("x.mmdb"), f).expect("opens");
        let e = db.lookup("192.0.2.1".parse().unwrap()).expect_err("loop");
        assert!(e.to_string().contains("deeper than 32"), "{e}");
        // Records pointing past the data section.
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0u8; 16]);
        f.extend(std_meta(1));
        let db = Mmdb::from_bytes(Path::new("x.mmdb"), f).expect("opens");
        let e = db.lookup("192.0.2.1".parse().unwrap()).expect_err("bad");
        assert!(e.to_string().contains("past the end"), "{e}");
    }

    #[test]
    fn pointer_cycles_end() {
        // A data record that is a pointer to itself-through-a-map.
        let mut d = Decoder {
            data: &[0xe1, 0x41, b'a', 0x20, 0x00],
            budget: MAX_VALUES,
            pointers: true,
        };
        let e = d.decode(0, 0).expect_err("cycle");
        assert!(e.contains("deeper"), "{e}");
        let mut d = Decoder {
            data: &[0x20, 0x00],
            budget: MAX_VALUES,
            pointers: true,
        };
        assert!(d.decode(0, 0).expect_err("self").contains("to a pointer"));
    }
}
