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
