//! A minimal MaxMind DB writer (format 2.0) for ASN databases in tests:
//! an IPv6 search tree with IPv4 networks under `::/96`, 24-bit records,
//! and one map per network with `autonomous_system_number` and
//! `autonomous_system_organization`, the layout of GeoLite2-ASN and DB-IP
//! ASN Lite. Networks must not overlap.

use ipnet::IpNet;

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// A control byte (type, size), an extended type byte, a size byte.
fn ctrl(kind: u8, size: usize, out: &mut Vec<u8>) {
    assert!(size < 285, "test values are small");
    let small = size.min(29) as u8;
    if kind > 7 {
        out.push(small);
        out.push(kind - 7);
    } else {
        out.push((kind << 5) | small);
    }
    if size >= 29 {
        out.push((size - 29) as u8);
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    ctrl(2, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

fn uint(kind: u8, v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    ctrl(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

/// The bytes of a database mapping each network to (ASN, organisation).
pub fn asn_database(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    let mut data = Vec::new();
    for (net, asn, org) in entries {
        let net: IpNet = net.parse().expect("network");
        let (bits, len): (u128, u8) = match net {
            IpNet::V4(n) => (u128::from(u32::from(n.network())), 96 + n.prefix_len()),
            IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
        };
        let offset = data.len() as u32;
        ctrl(7, 2, &mut data);
        string("autonomous_system_number", &mut data);
        uint(6, u64::from(*asn), &mut data);
        string("autonomous_system_organization", &mut data);
        string(org, &mut data);
        let mut node = 0usize;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                nodes[node][bit] = Rec::Data(offset);
                break;
            }
            node = match nodes[node][bit] {
                Rec::Node(n) => n as usize,
                Rec::Empty => {
                    nodes.push([Rec::Empty, Rec::Empty]);
                    let n = nodes.len() - 1;
                    nodes[node][bit] = Rec::Node(n as u32);
                    n
                }
                Rec::Data(_) => panic!("overlapping networks"),
            };
        }
    }
    let count = nodes.len() as u32;
    let mut out = Vec::new();
    for pair in &nodes {
        for r in pair {
            let v = match *r {
                Rec::Empty => count,
                Rec::Node(n) => n,
                Rec::Data(off) => count + 16 + off,
            };
            out.extend_from_slice(&v.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    ctrl(7, 7, &mut out);
    string("binary_format_major_version", &mut out);
    uint(5, 2, &mut out);
    string("binary_format_minor_version", &mut out);
    uint(5, 0, &mut out);
    string("node_count", &mut out);
    uint(6, u64::from(count), &mut out);
    string("record_size", &mut out);
    uint(5, 24, &mut out);
    string("ip_version", &mut out);
    uint(5, 6, &mut out);
    string("database_type", &mut out);
    string("GeoLite2-ASN", &mut out);
    string("build_epoch", &mut out);
    uint(9, 1_767_225_600, &mut out);
    out
}
