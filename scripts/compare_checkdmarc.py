#!/usr/bin/env python3
"""Side-by-side of mailauth validate and checkdmarc on planted problems.

Usage: compare_checkdmarc.py PORT DOMAINS_TSV MAILAUTH_JSON

Runs checkdmarc (its Python API: its command line reaches port 53 only)
against the loopback server on PORT, reads `mailauth validate --json` of the
same domains, and prints a Markdown table: per planted class, on how many
domains each tool reports the problem, and on how many of the clean domains
each reports it (false alarms). Run from benches/checkdmarc_compare.sh.
"""

import json
import logging
import sys
import warnings

logging.disable(logging.CRITICAL)
warnings.simplefilter("ignore")

import checkdmarc  # noqa: E402
import dns.nameserver  # noqa: E402

# class -> (mailauth: check, needle in a warn/fail message),
#          (checkdmarc: section, needle in its error or a warning)
RULES = {
    "spf-missing": (("spf", "no SPF record"), ("spf", "does not exist")),
    "spf-multiple": (("spf", "SPF records at the apex"), ("spf", "multiple SPF")),
    "spf-plus-all": (("spf", "+all"), ("spf", "+all")),
    "spf-neutral-all": (("spf", "?all"), ("spf", "?all")),
    "spf-ptr": (("spf", "ptr"), ("spf", "ptr")),
    "spf-lookups": (("spf", "DNS-querying terms"), ("spf", "maximum DNS lookups")),
    "spf-void": (("spf", "void lookups"), ("spf", "void DNS lookups")),
    "spf-syntax": (("spf", "does not parse"), ("spf", "not a valid")),
    "dmarc-missing": (("dmarc", "no DMARC record"), ("dmarc", "does not exist")),
    "dmarc-multiple": (("dmarc", "DMARC records at _dmarc"), ("dmarc", "Multiple DMARC")),
    "dmarc-syntax": (("dmarc", "does not parse"), ("dmarc", "Tag p must")),
    "dmarc-p-none": (("dmarc", "p=none"), ("dmarc", "p tag value of none")),
    "dmarc-pct": (("dmarc", "pct="), ("dmarc", "pct tag")),
    "dmarc-rua-unauthorised": (("dmarc", "not authorised"), ("dmarc", "does not indicate")),
    "mx-missing": (("mx", "no MX records"), ("mx", "has no MX records")),
    "mx-null-plus-others": (("mx", "null MX next to"), ("mx", "null MX record (0 .) alongside")),
    "mta-sts-bad-id": (("mta-sts", "does not parse"), ("mta_sts", "id value")),
    "tls-rpt-no-rua": (("tls-rpt", "does not parse"), ("smtp_tls_reporting", "")),
    "tls-rpt-bad-uri": (("tls-rpt", "does not parse"), ("smtp_tls_reporting", "")),
}


def ours(report, check, needle):
    return any(f["check"] == check and f["severity"] in ("warn", "fail")
               and needle in f["message"] for f in report["findings"])


def theirs(result, section, needle):
    s = result.get(section) or {}
    texts = [s.get("error") or ""] + list(s.get("warnings") or [])
    if section == "smtp_tls_reporting":
        return s.get("valid") is False
    return any(needle in t for t in texts if t)


def main():
    port, tsv, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    planted = dict(line.rstrip("\n").split("\t") for line in open(tsv))
    mine = {r["domain"]: r for r in json.load(open(path))["domains"]}
    ns = [dns.nameserver.Do53Nameserver("127.0.0.1", port)]
    results = checkdmarc.check_domains(sorted(planted), nameservers=ns, timeout=1.0)
    if isinstance(results, dict):
        results = [results]
    cd = {r["domain"]: r for r in results}
    clean = [d for d, c in planted.items() if c == "clean"]
    print(f"{len(planted)} domains, {len(clean)} of them clean, "
          f"checkdmarc {checkdmarc.__version__}\n")
    print("| planted problem | domains | mailauth finds | checkdmarc finds "
          "| false alarms on clean domains (mailauth / checkdmarc) |")
    print("|---|---|---|---|---|")
    for cls, ((mc, mn), (cs, cn)) in RULES.items():
        doms = [d for d, c in planted.items() if c == cls]
        a = sum(ours(mine[d], mc, mn) for d in doms)
        b = sum(theirs(cd[d], cs, cn) for d in doms)
        fa = sum(ours(mine[d], mc, mn) for d in clean)
        fb = sum(theirs(cd[d], cs, cn) for d in clean)
        print(f"| {cls} | {len(doms)} | {a} | {b} | {fa} / {fb} |")
    # The raw verdicts of one domain per class, for the explanations.
    print()
    for cls in RULES:
        d = next(d for d, c in planted.items() if c == cls)
        mc, cs = RULES[cls][0][0], RULES[cls][1][0]
        m = [f"{f['severity']}: {f['message']}" for f in mine[d]["findings"]
             if f["check"] == mc and f["severity"] in ("warn", "fail")]
        s = cd[d].get(cs) or {}
        c = [s.get("error")] + list(s.get("warnings") or [])
        print(f"- {cls}: mailauth {m[:2]}; checkdmarc {[x for x in c if x][:2]}")


if __name__ == "__main__":
    main()
