#!/usr/bin/env bash
# Parse cost per MiB of aggregate reports, normal and adversarial, with the
# release binary: `mailauth reports ingest --dry-run FILE` (parse and count,
# no store), RUNS runs per file (default 5), the median wall time divided by
# the file's size in MiB.
#
# Shapes (generated here, deterministic; each SIZES_MIB big, default 4 and
# 12: 4 MiB files are parsed whole, files over 8 MiB as a stream):
#   normal  a valid report of ordinary records
#   deep    255 nested unknown elements opened and closed, again and again
#           (the deepest the depth limit, 256, lets through)
#   stray   255 open elements, then stray end tags of a known element that
#           is not open (`</p>`): the old O(open x stray) case
#   stray-qx  the same after a comment, so quick-xml reads it (the fallback
#           for what the fast tokenizer leaves alone)
#   text    a valid report whose <org_name> is one huge text token
#   attrs   a valid report whose <feedback> start tag carries the rest of
#           the file as attributes (an attribute flood)
# The goal (issue 15): each adversarial MiB costs at most 3x a normal MiB.
#
#   benches/parse_adversarial.sh
#   MAILAUTH=path/to/mailauth RUNS=3 SIZES_MIB="1 8" benches/parse_adversarial.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=${RUNS:-5}
SIZES_MIB=${SIZES_MIB:-"4 12"}
if [ -z "${MAILAUTH:-}" ]; then
    (cd "$ROOT" && cargo build --release --locked -q)
    MAILAUTH=$TARGET/release/mailauth
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python3 - "$MAILAUTH" "$WORK" "$RUNS" $SIZES_MIB <<'PY'
import json, os, statistics, subprocess, sys, time

mailauth, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
sizes = [int(s) for s in sys.argv[4:]]
MIB = 1 << 20

HEAD = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback{attrs}><report_metadata>"
        "<org_name>{org}</org_name><email>r@bench.example</email><report_id>bench</report_id>"
        "<date_range><begin>1718236800</begin><end>1718323199</end></date_range>"
        "</report_metadata><policy_published><domain>example.com</domain><p>none</p>"
        "</policy_published>\n")

def record(i):
    return ("<record><row><source_ip>10.%d.%d.%d</source_ip><count>%d</count><policy_evaluated>"
            "<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>"
            "<identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim>"
            "<domain>example.com</domain><result>pass</result><selector>s%d</selector></dkim><spf>"
            "<domain>bounce%d.example.com</domain><result>fail</result></spf></auth_results></record>\n"
            % ((i >> 16) & 255, (i >> 8) & 255, i & 255, i % 97 + 1, i % 13, i % 1009))

def fill(head, unit, size, tail):
    n = max(0, (size - len(head) - len(tail)) // len(unit))
    return head + unit * n + tail

def shape(name, size):
    if name == "normal":
        out, i = [HEAD.format(attrs="", org="bench")], 0
        total = len(out[0])
        while total < size:
            r = record(i); out.append(r); total += len(r); i += 1
        return "".join(out) + "</feedback>\n"
    if name == "deep":
        return fill("<feedback>", "<x>" * 255 + "</x>" * 255, size, "</feedback>")
    if name == "stray":
        return fill("<feedback>" + "<a>" * 255, "</p>", size, "</feedback>")
    if name == "stray-qx":
        return fill("<!-- c --><feedback>" + "<a>" * 255, "</p>", size, "</feedback>")
    if name == "text":
        head = HEAD.format(attrs="", org="{ORG}")
        doc = head + record(0) + "</feedback>\n"
        return doc.replace("{ORG}", "y" * max(0, size - len(doc)))
    if name == "attrs":
        doc = HEAD.format(attrs="{A}", org="bench") + record(0) + "</feedback>\n"
        unit = ' a="1"'
        n = max(0, (size - len(doc)) // len(unit))
        return doc.replace("{A}", "".join(' a%d="1"' % i for i in range(n))[: size - len(doc)].rsplit(" ", 1)[0])
    raise ValueError(name)

def run(path):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run([mailauth, "reports", "ingest", "--dry-run", "--json", path],
                           capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        out = p.stdout
    s = json.loads(out)
    what = "%d report(s)" % s["reports"] if s["reports"] else \
        "refused: " + (s["invalid"] + s["errors"])[0]["reason"][:60]
    return statistics.median(times), times, what

print("mailauth:", mailauth, "| runs per file:", runs)
print("%-7s %8s %12s %12s %7s  %s" % ("shape", "MiB", "median s", "s per MiB", "x norm", "outcome"))
for size in sizes:
    base = None
    for name in ["normal", "deep", "stray", "stray-qx", "text", "attrs"]:
        path = os.path.join(work, "%s-%d.xml" % (name, size))
        with open(path, "w") as f:
            f.write(shape(name, size * MIB))
        mib = os.path.getsize(path) / MIB
        med, times, what = run(path)
        per = med / mib
        if base is None:
            base = per
        print("%-7s %8.2f %12.3f %12.4f %7.2f  %s" % (name, mib, med, per, per / base, what))
        os.remove(path)
PY
