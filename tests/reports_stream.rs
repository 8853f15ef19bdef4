//! A 200,000-record report is parsed record by record: the visitor sees
//! each record once, in order, and nothing collects them.

use std::fmt::Write;

use mailauth::reports::parse::aggregate::{AggregateVisitor, SinkError, parse};
use mailauth::reports::parse::{AggregateHeader, AggregateSummary, Disposition, Record};

#[derive(Default)]
struct Count {
    headers: u64,
    records: u64,
    messages: u64,
    rejected: u64,
    last_ip: Option<std::net::IpAddr>,
    ends: u64,
}

impl AggregateVisitor for Count {
    fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
        assert_eq!(h.report_id, "big-1");
        self.headers += 1;
        Ok(true)
    }
    fn record(&mut self, r: &Record) -> Result<(), SinkError> {
        self.records += 1;
        self.messages += r.count;
        if r.disposition == Disposition::Reject {
            self.rejected += 1;
        }
        self.last_ip = Some(r.source_ip);
        Ok(())
    }
    fn end(&mut self, s: &AggregateSummary) -> Result<(), SinkError> {
        assert_eq!(s.records, self.records);
        self.ends += 1;
        Ok(())
    }
}

fn big_report(n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 330);
    s.push_str(
        "<?xml version=\"1.0\"?><feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">\
         <version>1.0</version><report_metadata><org_name>Big</org_name>\
         <email>r@big.example</email><report_id>big-1</report_id><date_range>\
         <begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>reject</p></policy_published>",
    );
    for i in 0..n {
        let disp = if i % 4 == 0 { "reject" } else { "none" };
        let _ = write!(
            s,
            "<record><row><source_ip>10.{}.{}.{}</source_ip><count>{}</count><policy_evaluated>\
             <disposition>{disp}</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>\
             <identifiers><envelope_from>example.com</envelope_from><header_from>example.com</header_from>\
             </identifiers><auth_results><dkim><domain>example.com</domain><selector>s1</selector>\
             <result>pass</result></dkim><spf><domain>example.com</domain><scope>mfrom</scope>\
             <result>fail</result></spf></auth_results></record>",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            i % 7 + 1
        );
    }
    s.push_str("</feedback>");
    s
}

#[test]
fn two_hundred_thousand_records_stream_through_a_callback() {
    let n = 200_000u32;
    let xml = big_report(n);
    let mut c = Count::default();
    let summary = parse(xml.as_bytes(), &mut c).expect("parses");
    assert_eq!(c.headers, 1);
    assert_eq!(c.ends, 1);
    assert_eq!(c.records, u64::from(n));
    assert_eq!(summary.records, u64::from(n));
    let want_messages: u64 = (0..u64::from(n)).map(|i| i % 7 + 1).sum();
    assert_eq!(c.messages, want_messages);
    assert_eq!(summary.messages, want_messages);
    assert_eq!(c.rejected, u64::from(n).div_ceil(4));
    let last = n - 1;
    assert_eq!(
        c.last_ip,
        Some(
            format!(
                "10.{}.{}.{}",
                (last >> 16) & 255,
                (last >> 8) & 255,
                last & 255
            )
            .parse()
            .expect("ip")
        )
    );
}

/// A plain-XML file over the streaming threshold goes through the file
/// source unread and is parsed as it is read: the database ends up with
/// exactly what the in-memory path stores for the same report.
#[test]
fn a_large_xml_file_is_stored_as_a_stream_like_in_memory() {
    use mailauth::reports::IngestLimits;
    use mailauth::reports::ingest::{self, FileSource, Source};
    use mailauth::reports::store::{ReportStore, SqliteStore, Table};

    let n = 40_000u32;
    let xml = big_report(n);
    assert!(xml.len() > 8 << 20, "the report must be over the threshold");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.xml");
    std::fs::write(&path, &xml).expect("write");

    let mut src = FileSource::new([path.clone()], 64 << 20);
    let item = src.next_item().expect("one item").expect("readable");
    assert!(item.stream && item.bytes.is_empty(), "not streamed");

    let limits = IngestLimits::default();
    let mut streamed = SqliteStore::open(&dir.path().join("s.db")).expect("db");
    let mut src = FileSource::new([path.clone()], 64 << 20);
    let s = ingest::run(&mut src, &mut streamed, &limits, &mut |_| {}).expect("run");
    assert!(s.invalid.is_empty() && s.errors.is_empty(), "{s:?}");
    assert_eq!((s.reports, s.records), (1, u64::from(n)));

    let mut in_memory = SqliteStore::open(&dir.path().join("m.db")).expect("db");
    let found = in_memory
        .ingest_item("big.xml", xml.as_bytes(), &limits)
        .expect("db ok")
        .expect("parses");
    assert_eq!(found[0].records, u64::from(n));
    assert_eq!(
        streamed.count(Table::Records).expect("count"),
        in_memory.count(Table::Records).expect("count")
    );
    let a = streamed.list(None).expect("list");
    let b = in_memory.list(None).expect("list");
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].records, a[0].messages, &a[0].report_id),
        (b[0].records, b[0].messages, &b[0].report_id)
    );

    // Over the input limit it is refused, never truncated.
    let mut small = SqliteStore::open(&dir.path().join("l.db")).expect("db");
    let tight = IngestLimits {
        max_input_bytes: (xml.len() as u64) - 1,
        ..IngestLimits::default()
    };
    let mut file = std::fs::File::open(&path).expect("open");
    let err = small
        .ingest_xml_stream("big.xml", &mut file, &tight)
        .expect("db ok")
        .expect_err("too large");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert_eq!(small.count(Table::Records).expect("count"), 0);
}
