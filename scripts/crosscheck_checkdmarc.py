#!/usr/bin/env python3
"""Cross-check of SPF lookup counts: mailauth validate versus checkdmarc.

Usage: crosscheck_checkdmarc.py PORT MAILAUTH_JSON

PORT is a loopback DNS server serving the fixture zones; MAILAUTH_JSON is
the output of `mailauth validate --json` against the same server. For each
domain, prints the DNS-lookup and void-lookup totals of the SPF tree as
both tools count them, or the error each reports, and exits 1 when the
counts of a domain both tools could count differ. Run it from
benches/validate.sh, which installs checkdmarc into a venv.
"""

import json
import logging
import re
import sys

logging.disable(logging.CRITICAL)

import checkdmarc.spf as cspf  # noqa: E402
import dns.nameserver  # noqa: E402

COUNTS = re.compile(r"(\d+) DNS lookups \(limit 10\), (\d+) void lookups")


def mailauth_counts(report):
    """(lookups, void) from the SPF summary finding, or None."""
    for f in report["findings"]:
        if f["check"] == "spf":
            m = COUNTS.search(f["message"])
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def mailauth_errors(report):
    return [f["message"] for f in report["findings"]
            if f["check"] == "spf" and f["severity"] in ("fail", "temperror")]


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    ns = [dns.nameserver.Do53Nameserver("127.0.0.1", port)]
    doc = json.load(open(path))
    disagree = 0
    print(f"{'domain':<16} {'mailauth':<12} {'checkdmarc':<12} notes")
    for report in doc["domains"]:
        domain = report["domain"]
        ours = mailauth_counts(report)
        try:
            r = cspf.check_spf(domain, nameservers=ns, timeout=1.0)
            # checkdmarc 6 leaves a count out (or None) when it stopped early.
            theirs = (r.get("dns_lookups"), r.get("void_dns_lookups"))
            theirs_err = r.get("error")
        except Exception as e:  # older versions raise on errors
            theirs = (None, None)
            theirs_err = f"{type(e).__name__}: {e}"
        show = lambda v: "?" if v is None else str(v)
        fmt = lambda c: "-" if c is None else f"{show(c[0])}/{show(c[1])}"
        note = ""
        if ours is not None and any(
            t is not None and t != o for o, t in zip(ours, theirs)
        ):
            disagree += 1
            note = "DIFFERENT"
        if theirs_err:
            note += ("; " if note else "") + "checkdmarc: " + theirs_err
        errs = mailauth_errors(report)
        if errs:
            note += ("; " if note else "") + "mailauth: " + errs[0]
        print(f"{domain:<16} {fmt(ours):<12} {fmt(theirs):<12} {note}")
    print(f"counts as lookups/void; {disagree} domain(s) with different counts")
    sys.exit(1 if disagree else 0)


if __name__ == "__main__":
    main()
