//! The dashboards as a person sees them: pages rendered by real headless
//! Chromium (DOM dumps and screenshots), from the static site on the file
//! system and from `mailauth serve` on loopback, against a store filled
//! from the sample reports. Missing Chromium: SKIP, or FAIL under CI=true.

use crate::dashboard;
use crate::support::chromium;

use dashboard::{Server, bin, commas, expected, fill, text_after};

fn html_site(db: &std::path::Path, out: &std::path::Path) {
    let o = bin()
        .args(["reports", "--db"])
        .arg(db)
        .args(["html", "--offline", "--out"])
        .arg(out)
        .output()
        .expect("run html");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn static_site_renders_charts_and_tables() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    fill(&db);
    let want = expected(&db);
    let total: i64 = want.values().map(|e| e.messages).sum();
    let site = dir.path().join("site");
    html_site(&db, &site);

    let dom = chromium::dump_dom(&chromium, &chromium::file_url(&site.join("index.html")));
    // KPI card and per-domain rows, numbers formatted.
    let kpi = text_after(&dom, "data-kpi=\"messages\"", "</div>").expect("messages KPI");
    assert_eq!(kpi, commas(total));
    for (domain, e) in &want {
        let row = text_after(&dom, &format!("<tr data-domain=\"{domain}\">"), "</tr>")
            .unwrap_or_else(|| panic!("no row for {domain}"));
        assert!(
            row.starts_with(&format!("{domain} {}", commas(e.messages))),
            "{row}"
        );
    }
    // Both charts, with one bar segment per non-zero (bucket, series).
    assert_eq!(count(&dom, "<svg id=\"chart-dmarc\""), 1);
    assert_eq!(count(&dom, "<svg id=\"chart-disposition\""), 1);
    assert!(count(&dom, "data-series=\"pass\"") > 0);
    assert!(count(&dom, "data-series=\"fail\"") > 0);
    assert!(count(&dom, "data-series=\"reject\"") > 0);
    // Colour-blind-safe palette, no external resources.
    assert!(dom.contains("fill=\"#0072B2\"") && dom.contains("fill=\"#D55E00\""));
    assert!(!dom.contains("<script"), "no JavaScript");
    assert!(
        !dom.contains("http://") && !dom.contains("https://"),
        "no external resource"
    );
    // TLS-RPT and failure report tables are present.
    assert!(dom.contains("<table id=\"tls\""));
    assert!(dom.contains("<table id=\"failures\""));

    // The domain page linked from the overview opens from the file system.
    let link = "domains/d-example.com.html";
    assert!(dom.contains(&format!("href=\"{link}\"")));
    let page = chromium::dump_dom(&chromium, &chromium::file_url(&site.join(link)));
    let e = &want["example.com"];
    let (top_ip, top_n) = e
        .by_ip
        .iter()
        .max_by_key(|(ip, n)| (**n, std::cmp::Reverse(*ip)))
        .expect("ips");
    let first = text_after(&page, "<tr data-ip=", "</tr>").expect("a source row");
    assert!(
        first.starts_with(&format!("{top_ip} - {}", commas(*top_n))),
        "{first}"
    );
    assert!(page.contains("<table id=\"failing\""));
    assert!(page.contains("<table id=\"policy\""));
    assert!(page.contains("href=\"../index.html\""));

    // Screenshot at a laptop size.
    let png = dir.path().join("overview.png");
    let (w, h) = chromium::screenshot(
        &chromium,
        &chromium::file_url(&site.join("index.html")),
        &png,
    );
    assert_eq!((w, h), (1400, 1000));
    assert!(
        std::fs::metadata(&png).expect("png").len() > 20_000,
        "a blank page compresses to almost nothing"
    );
}

#[test]
fn live_server_pages_in_the_browser() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    fill(&db);
    let want = expected(&db);
    let server = Server::start(&db);
    let base = format!("http://127.0.0.1:{}", server.port);

    let dom = chromium::dump_dom(&chromium, &format!("{base}/"));
    assert!(dom.contains("<form class=\"filter\""), "filters in the URL");
    let row = text_after(&dom, "<tr data-domain=\"test.net\">", "</tr>").expect("row");
    assert!(
        row.starts_with(&format!("test.net {}", commas(want["test.net"].messages))),
        "{row}"
    );
    assert!(dom.contains("href=\"/domain/test.net\""));

    // Domain page filtered to one source: one row, and its link keeps the filter.
    let e = &want["example.com"];
    let (ip, n) = e.by_ip.iter().next().expect("an ip");
    let dom = chromium::dump_dom(&chromium, &format!("{base}/domain/example.com?source={ip}"));
    assert_eq!(
        count(&dom, "<tr data-ip="),
        1 + usize::from(*n > 0 && dom.contains("<table id=\"failing\""))
    );
    let first = text_after(&dom, "<tr data-ip=", "</tr>").expect("row");
    assert!(
        first.starts_with(&format!("{ip} - {}", commas(*n))),
        "{first}"
    );
    assert!(dom.contains(&format!("Showing source <code>{ip}</code> only")));

    // A range with nothing in it explains itself.
    let dom = chromium::dump_dom(&chromium, &format!("{base}/?until=1975-01-01"));
    assert!(dom.contains("No aggregate reports in this range"), "{dom}");
    assert!(!dom.contains("<table id=\"domains\""));
}

#[test]
fn hostile_report_values_are_inert() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    let xml = r#"<?xml version="1.0"?>
<feedback>
  <report_metadata>
    <org_name>&lt;img src=x onerror=alert(1)&gt;</org_name>
    <email>x@evil.test</email>
    <report_id>xss-1</report_id>
    <date_range><begin>1700000000</begin><end>1700086399</end></date_range>
  </report_metadata>
  <policy_published><domain>evil"&gt;&lt;b&gt;x.test</domain><p>none</p></policy_published>
  <record>
    <row><source_ip>192.0.2.1</source_ip><count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>x.test</header_from></identifiers>
    <auth_results><spf><domain>&lt;script&gt;alert(2)&lt;/script&gt;</domain><result>fail</result></spf></auth_results>
  </record>
</feedback>"#;
    let report = dir.path().join("evil.xml");
    std::fs::write(&report, xml).expect("write");
    let out = bin()
        .args(["reports", "--db"])
        .arg(&db)
        .arg("ingest")
        .arg(&report)
        .output()
        .expect("ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let site = dir.path().join("site");
    html_site(&db, &site);
    let dom = chromium::dump_dom(&chromium, &chromium::file_url(&site.join("index.html")));
    assert!(!dom.contains("<img"), "report text became markup");
    assert!(!dom.contains("<b>"), "report text became markup");
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "shown as text"
    );
    let pages: Vec<_> = std::fs::read_dir(site.join("domains"))
        .expect("dir")
        .collect();
    assert_eq!(pages.len(), 1);
    let page = pages[0].as_ref().expect("entry").path();
    let dom = chromium::dump_dom(&chromium, &chromium::file_url(&page));
    assert!(!dom.contains("<script"), "no script element");
    assert!(dom.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
}

#[test]
fn unauthorised_senders_stand_out() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    fill(&db);
    let config = dashboard::write_config(dir.path());
    let server = Server::start_with_config(&db, &config);
    let dom = chromium::dump_dom(
        &chromium,
        &format!("http://127.0.0.1:{}/domain/example.com", server.port),
    );
    // Inside the configured ip4 range: authorised, and by which mechanism.
    let row = text_after(
        &dom,
        "<tr data-ip=\"209.85.220.69\" data-verdict=\"authorised\">",
        "</tr>",
    )
    .expect("209.85.220.69 authorised");
    assert!(row.contains("ip4:209.85.220.0/24"), "{row}");
    // Outside it, no aligned DKIM signature: flagged.
    let row = text_after(
        &dom,
        "<tr data-ip=\"199.230.200.36\" data-verdict=\"unauthorised\">",
        "</tr>",
    )
    .expect("199.230.200.36 flagged");
    assert!(row.contains("not authorised"), "{row}");
    // Outside it, but signed by example.com: authorised by DKIM.
    assert!(dom.contains("<tr data-ip=\"54.240.48.94\" data-verdict=\"authorised\">"));
}

#[test]
fn sources_view_names_services_and_real_failures() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    fill(&db);
    let config = dashboard::write_config(dir.path());
    let server = Server::start_with_config(&db, &config);
    let dom = chromium::dump_dom(
        &chromium,
        &format!("http://127.0.0.1:{}/domain/example.com", server.port),
    );
    let raw = |open: &str, close: &str| -> String {
        let start = dom.find(open).unwrap_or_else(|| panic!("{open} in page"));
        let end = start + dom[start..].find(close).expect("closed");
        dom[start..end].to_owned()
    };
    let services = raw("<table id=\"services\">", "</table>");
    assert!(
        services.contains("data-service=\"amazon-ses\""),
        "{services}"
    );
    let text = text_after(&dom, "<table id=\"services\">", "</table>").expect("services");
    assert!(
        text.contains("unknown: "),
        "unknown sources grouped: {text}"
    );
    assert!(
        dom.contains("id=\"real-failures\""),
        "real-failure count shown"
    );
    // Authorised by the config's ip4 mechanism: named as such.
    let row = text_after(
        &dom,
        "<tr data-ip=\"209.85.220.69\" data-verdict=\"authorised\">",
        "</tr>",
    )
    .expect("209.85.220.69");
    assert!(
        row.contains("own (config)") && row.contains("by config"),
        "{row}"
    );
    // Named from the catalogue.
    let row = text_after(
        &dom,
        "<tr data-ip=\"54.240.48.94\" data-verdict=\"authorised\">",
        "</tr>",
    )
    .expect("54.240.48.94");
    assert!(row.contains("Amazon SES"), "{row}");
    // A stranger failing everything is a real failure, shown with why; the
    // "real failures only" filter hides rows by their class.
    assert!(dom.contains("<input type=\"checkbox\" id=\"real-only\">"));
    let failing = raw("<table id=\"failing\">", "</table>");
    let start = failing
        .find("<tr data-ip=\"199.230.200.36\"")
        .expect("199.230.200.36 failing");
    let row = &failing[start..start + failing[start..].find("</tr>").expect("row end")];
    assert!(row.contains("data-class=\"suspicious\""), "{row}");
    assert!(
        row.contains("unknown sender with no aligned SPF or DKIM"),
        "{row}"
    );
}
