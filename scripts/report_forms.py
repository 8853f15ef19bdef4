#!/usr/bin/env python3
"""Writes each aggregate report of a directory in the forms reporters send
it, for benches/reports_rss.sh:

    report_forms.py IN_DIR OUT_DIR

For every `...large-N.xml` in IN_DIR, OUT_DIR gets `report-N.xml` (a copy),
`report-N.xml.gz`, `report-N.zip` (one deflated entry), and two mails:
`report-N.gz.eml` and `report-N.zip.eml`, with the .xml.gz or the .zip as a
base64 attachment (RFC 2045 section 6.8, 76-character lines) beside a
text part, as Google and Microsoft send them.
"""
import base64
import gzip
import os
import re
import shutil
import sys
import zipfile


def mail(name, ctype, data):
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    head = (
        "From: noreply-dmarc-support@google.com\r\n"
        "To: dmarc@example.com\r\n"
        f"Subject: Report domain: example.com Submitter: google.com Report-ID: {name}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="000000000000b0undary"\r\n'
        "\r\n"
        "--000000000000b0undary\r\n"
        "Content-Type: text/plain; charset=\"UTF-8\"\r\n"
        "\r\n"
        "This is an aggregate report from google.com.\r\n"
        "--000000000000b0undary\r\n"
        f'Content-Type: {ctype}; name="{name}"\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
    ).encode()
    return head + b64 + b"--000000000000b0undary--\r\n"


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(src)):
        m = re.search(r"large-(\d+)\.xml$", name)
        if not m:
            continue
        n = m.group(1)
        base = os.path.join(out, f"report-{n}")
        shutil.copyfile(os.path.join(src, name), base + ".xml")
        with open(base + ".xml", "rb") as f:
            xml = f.read()
        gz = gzip.compress(xml, compresslevel=6, mtime=0)
        with open(base + ".xml.gz", "wb") as f:
            f.write(gz)
        with zipfile.ZipFile(base + ".zip", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(name, xml)
        with open(base + ".zip", "rb") as f:
            zipped = f.read()
        with open(base + ".gz.eml", "wb") as f:
            f.write(mail(name + ".gz", "application/gzip", gz))
        with open(base + ".zip.eml", "wb") as f:
            f.write(mail(name[:-4] + ".zip", "application/zip", zipped))
        del xml


if __name__ == "__main__":
    main()
