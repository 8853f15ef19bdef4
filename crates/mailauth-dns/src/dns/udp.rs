//! The plain UDP path of a [`super::Resolver`] made with
//! [`super::Resolver::plain_udp`]: one question to one server, sent and
//! waited for by the calling thread on a blocking socket, with no runtime,
//! no futures and no lookup machinery in between.
//!
//! This module owns that exchange: encoding the question as hickory
//! encodes it (the same header flags and EDNS(0) OPT record), a fresh
//! socket on a random source port per query, accepting only the datagram
//! that answers it, and deciding whether the answer is one of the plain
//! kinds it may hand back itself: records of the asked type at the asked
//! name, "no data", NXDOMAIN, or no answer at all within the budget.
//! Everything else (a truncated answer, which needs TCP; a CNAME chain; an
//! error code such as SERVFAIL or REFUSED; records of another class; an
//! answer that does not decode; a socket error) is [`Outcome::Other`], and
//! the resolver then asks the question again through hickory, whose
//! handling of those cases stays the one the rest of the crate sees. It
//! decides nothing about the records themselves.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, Record, RecordType};

/// How one server is asked: what the hickory resolver of the same
/// configuration would send, and for how long it would wait.
#[derive(Clone, Debug)]
pub(super) struct Plain {
    pub server: SocketAddr,
    /// Tries, each on a new socket with a new ID.
    pub attempts: usize,
    /// How long one try waits for its answer.
    pub per_attempt: Duration,
    /// The RD bit (RFC 1035 §4.1.1).
    pub recursion_desired: bool,
    /// The UDP payload size advertised in an OPT record, when EDNS(0) is
    /// on.
    pub edns_payload: Option<u16>,
}

/// What one question came back with on the plain path.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    /// The answer records, all of the asked type at the asked name.
    Records(Vec<Record>),
    /// NOERROR with an empty answer section.
    NoData,
    /// NXDOMAIN with an empty answer section.
    NxDomain,
    /// No acceptable answer within any of the tries.
    Timeout,
    /// Anything else: to be asked through hickory.
    Other,
}

/// How many random ports are tried before the system picks one (as
/// hickory does when a random port is taken).
const RANDOM_PORT_TRIES: usize = 10;

impl Plain {
    /// Asks (`qname`, `rtype`), trying at most until `deadline`.
    pub fn ask(&self, qname: &Name, rtype: RecordType, deadline: Instant) -> Outcome {
        for _ in 0..self.attempts.max(1) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let until = deadline.min(now + self.per_attempt);
            if let Some(outcome) = self.try_once(qname, rtype, until) {
                return outcome;
            }
        }
        Outcome::Timeout
    }

    /// One try; `None` when no acceptable answer came before `until`.
    fn try_once(&self, qname: &Name, rtype: RecordType, until: Instant) -> Option<Outcome> {
        let id = match random_u16() {
            Some(id) => id,
            None => return Some(Outcome::Other),
        };
        let query = self.encode(id, qname, rtype);
        let socket = match bind_random(self.server) {
            Ok(s) => s,
            Err(_) => return Some(Outcome::Other),
        };
        if socket.send_to(&query, self.server).is_err() {
            return Some(Outcome::Other);
        }
        let mut buf = [0u8; 4096];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if socket.set_read_timeout(Some(left)).is_err() {
                return Some(Outcome::Other);
            }
            let (len, from) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Some(Outcome::Other),
            };
            // RFC 5452 §9.1: "resolver implementations MUST match responses
            // to all of the following attributes of the query: Source
            // address against query destination address; Destination
            // address against query source address; Destination port
            // against query source port; Query ID; Query name; Query class
            // and type". The socket is this query's alone (its address and
            // port); the rest is checked here, and anything else that
            // arrives is ignored, as hickory ignores it.
            if from != self.server {
                continue;
            }
            if len == buf.len() {
                // Possibly cut short by the buffer: let hickory read it.
                return Some(Outcome::Other);
            }
            let Ok(message) = Message::from_vec(&buf[..len]) else {
                return Some(Outcome::Other);
            };
            if !answers_query(&message, id, qname, rtype) {
                continue;
            }
            return Some(judge(message, qname, rtype));
        }
    }

    /// The query as hickory writes it: header (ID, RD as configured, one
    /// question), the question (class IN), and an OPT record (RFC 6891
    /// §6.1.2: owner the root, type 41, CLASS the payload size, TTL the
    /// extended RCODE, version and flags, all zero here, no options) when
    /// EDNS(0) is on.
    fn encode(&self, id: u16, qname: &Name, rtype: RecordType) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&id.to_be_bytes());
        // RFC 1035 §4.1.1: QR=0 (query), OPCODE=0 (QUERY), RD as asked.
        out.push(if self.recursion_desired { 0x01 } else { 0x00 });
        out.push(0x00);
        let arcount: u16 = if self.edns_payload.is_some() { 1 } else { 0 };
        for count in [1u16, 0, 0, arcount] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        // RFC 1035 §4.1.2: QNAME as a sequence of labels, each a length
        // octet followed by that number of octets, ending with the zero
        // length octet of the root.
        for label in qname.iter() {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out.extend_from_slice(&u16::from(rtype).to_be_bytes());
        out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        if let Some(payload) = self.edns_payload {
            out.push(0);
            out.extend_from_slice(&u16::from(RecordType::OPT).to_be_bytes());
            out.extend_from_slice(&payload.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        out
    }
}

/// Whether `message` is the response to the query with `id` for (`qname`,
/// `rtype`, IN): names compared without regard to case (RFC 4343 §3).
fn answers_query(message: &Message, id: u16, qname: &Name, rtype: RecordType) -> bool {
    message.metadata.id == id
        && message.metadata.message_type == MessageType::Response
        && message.queries.len() == 1
        && message.queries[0].name() == qname
        && message.queries[0].query_type() == rtype
        && message.queries[0].query_class() == DNSClass::IN
}

/// What a response to the query says, when it is one of the plain kinds.
fn judge(message: Message, qname: &Name, rtype: RecordType) -> Outcome {
    if message.metadata.truncation {
        return Outcome::Other;
    }
    let foreign_class = message
        .answers
        .iter()
        .chain(&message.authorities)
        .chain(&message.additionals)
        .any(|r| r.dns_class != DNSClass::IN);
    if foreign_class {
        return Outcome::Other;
    }
    let code = message.metadata.response_code;
    if message.answers.is_empty() {
        // An SOA question may be "answered" by the SOA of the authority
        // section; hickory reads those itself.
        if rtype == RecordType::SOA {
            return Outcome::Other;
        }
        return match code {
            ResponseCode::NoError => Outcome::NoData,
            ResponseCode::NXDomain => Outcome::NxDomain,
            _ => Outcome::Other,
        };
    }
    let plain = code == ResponseCode::NoError
        && message
            .answers
            .iter()
            .all(|r| r.record_type() == rtype && &r.name == qname);
    if plain {
        Outcome::Records(message.answers)
    } else {
        Outcome::Other
    }
}

/// A random 16-bit value (the query ID, a source port).
fn random_u16() -> Option<u16> {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).ok()?;
    Some(u16::from_be_bytes(b))
}

/// A UDP socket of the server's address family on a random source port.
/// RFC 5452 §9.2: "Resolver implementations MUST use an unpredictable
/// source port for outgoing queries from the range of available ports
/// (53, or 1024 and above) that is as large as possible and practicable";
/// so, as hickory does, a port drawn from 1024-65535, and the system's
/// choice when random ports are taken.
fn bind_random(server: SocketAddr) -> std::io::Result<UdpSocket> {
    let any = |port| match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
    };
    for _ in 0..RANDOM_PORT_TRIES {
        let Some(port) = random_u16() else { break };
        if port < 1024 {
            continue;
        }
        match UdpSocket::bind(any(port)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    UdpSocket::bind(any(0))
}

#[cfg(test)]
mod tests {
    use super::super::testserver::{Server, response};
    use super::*;
    use hickory_resolver::proto::op::Edns;
    use hickory_resolver::proto::rr::RData;
    use hickory_resolver::proto::rr::rdata::{CNAME, TXT};

    fn plain(server: SocketAddr, attempts: usize, per_attempt: Duration) -> Plain {
        Plain {
            server,
            attempts,
            per_attempt,
            recursion_desired: true,
            edns_payload: Some(1232),
        }
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn txt(owner: &Name, text: &str) -> Record {
        Record::from_rdata(
            owner.clone(),
            300,
            RData::TXT(TXT::new(vec![text.to_string()])),
        )
    }

    #[test]
    fn the_query_is_the_bytes_hickory_sends() {
        // A TXT query of hickory 0.26's resolver (RD, EDNS(0) with a
        // payload of 1232), as captured on the wire.
        let hickory: &[u8] = b"\xcd\x23\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\
            \x06d00002\x04test\x00\x00\x10\x00\x01\
            \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
        let p = plain("127.0.0.1:53".parse().unwrap(), 2, Duration::from_secs(1));
        let q = p.encode(0xcd23, &name("d00002.test."), RecordType::TXT);
        assert_eq!(q, hickory);
        // Without recursion (a propagation check's server) nor EDNS.
        let p = Plain {
            recursion_desired: false,
            edns_payload: None,
            ..p
        };
        let q = p.encode(7, &name("a.example."), RecordType::SOA);
        let m = Message::from_vec(&q).expect("decodes");
        assert_eq!(m.metadata.id, 7);
        assert!(!m.metadata.recursion_desired);
        assert_eq!(m.metadata.message_type, MessageType::Query);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name(), &name("a.example."));
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        assert_eq!(m.queries[0].query_class(), DNSClass::IN);
        assert!(m.edns.is_none());
        assert!(m.additionals.is_empty());
    }

    #[test]
    fn answers_come_back_and_stray_datagrams_are_ignored() {
        let server = Server::start(|q| {
            let owner = q.queries[0].name().clone();
            vec![
                // Another ID, then another question: not the answer.
                response(q, |r| {
                    r.metadata.id = q.metadata.id.wrapping_add(1);
                    r.add_answer(txt(&owner, "wrong id"));
                }),
                response(q, |r| {
                    r.queries[0].set_name(name("other.example."));
                    r.add_answer(txt(&owner, "wrong question"));
                }),
                response(q, |r| {
                    r.add_answer(txt(&owner, "v=spf1 -all"));
                }),
            ]
        });
        let p = plain(server.addr, 1, Duration::from_secs(10));
        let qname = name("A.Example.");
        let deadline = Instant::now() + Duration::from_secs(10);
        match p.ask(&qname, RecordType::TXT, deadline) {
            Outcome::Records(records) => {
                assert_eq!(records, vec![txt(&qname, "v=spf1 -all")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_kinds_and_the_rest() {
        type Edit = fn(&mut Message);
        fn case(what: &str, edit: Edit, want: Outcome) -> (&str, Edit, Outcome) {
            (what, edit, want)
        }
        let cases = vec![
            case("no data", |_| {}, Outcome::NoData),
            case(
                "nxdomain",
                |r| r.metadata.response_code = ResponseCode::NXDomain,
                Outcome::NxDomain,
            ),
            case(
                "servfail",
                |r| r.metadata.response_code = ResponseCode::ServFail,
                Outcome::Other,
            ),
            case(
                "refused",
                |r| r.metadata.response_code = ResponseCode::Refused,
                Outcome::Other,
            ),
            case(
                "truncated",
                |r| r.metadata.truncation = true,
                Outcome::Other,
            ),
            case(
                "cname",
                |r| {
                    let owner = r.queries[0].name().clone();
                    r.add_answer(Record::from_rdata(
                        owner,
                        300,
                        RData::CNAME(CNAME(name("target.example."))),
                    ));
                },
                Outcome::Other,
            ),
            case(
                "a record at another name",
                |r| {
                    r.add_answer(txt(&name("elsewhere.example."), "v=spf1 -all"));
                },
                Outcome::Other,
            ),
            case(
                "another class",
                |r| {
                    let owner = r.queries[0].name().clone();
                    let mut rec = txt(&owner, "v=spf1 -all");
                    rec.dns_class = DNSClass::CH;
                    r.add_answer(rec);
                },
                Outcome::Other,
            ),
            case(
                "edns in the answer",
                |r| {
                    let owner = r.queries[0].name().clone();
                    r.add_answer(txt(&owner, "v=spf1 -all"));
                    r.edns = Some(Edns::new());
                },
                Outcome::Records(vec![txt(&name("a.example."), "v=spf1 -all")]),
            ),
        ];
        for (what, edit, want) in cases {
            let server = Server::start(move |q| vec![response(q, edit)]);
            let p = plain(server.addr, 1, Duration::from_secs(10));
            let deadline = Instant::now() + Duration::from_secs(10);
            assert_eq!(
                p.ask(&name("a.example."), RecordType::TXT, deadline),
                want,
                "{what}"
            );
        }
        // An SOA question without an SOA answer is hickory's to read.
        let server = Server::start(|q| vec![response(q, |_| {})]);
        let p = plain(server.addr, 1, Duration::from_secs(10));
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            p.ask(&name("a.example."), RecordType::SOA, deadline),
            Outcome::Other
        );
    }

    #[test]
    fn each_try_is_a_new_socket_and_a_silent_server_times_out() {
        let server = Server::start(|_| Vec::new());
        let p = plain(server.addr, 3, Duration::from_millis(100));
        let start = Instant::now();
        let out = p.ask(
            &name("a.example."),
            RecordType::TXT,
            start + Duration::from_secs(10),
        );
        assert_eq!(out, Outcome::Timeout);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Three tries, from three sockets: the source ports differ.
        let sources = server.sources.lock().unwrap().clone();
        assert_eq!(sources.len(), 3, "{sources:?}");
        let mut ports: Vec<u16> = sources.iter().map(|s| s.port()).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 3, "{sources:?}");
        assert!(ports.iter().all(|p| *p >= 1024), "{ports:?}");
        // The overall deadline cuts the tries short.
        let start = Instant::now();
        let out = p.ask(
            &name("a.example."),
            RecordType::TXT,
            start + Duration::from_millis(150),
        );
        assert_eq!(out, Outcome::Timeout);
        assert!(start.elapsed() < Duration::from_secs(2));
        let sent = server.sources.lock().unwrap().len();
        assert!((4..=5).contains(&sent), "{sent}");
    }
}
