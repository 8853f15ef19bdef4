#!/usr/bin/env python3
"""Zones with one planted problem each, for benches/checkdmarc_compare.sh.

Usage: gen_problem_zones.py WORKDIR PER_CLASS

Writes WORKDIR/zones/<domain>.zone (one per domain, plus test. and
provider.test. that the records point into) and WORKDIR/domains.tsv
(domain, planted class). Every domain is clean except for its class's
problem; `clean` domains have none.
"""
import sys, os
work = sys.argv[1]; per = int(sys.argv[2])
z = f"{work}/zones"; os.makedirs(z, exist_ok=True)
def soa(o):
    return f"$TTL 300\n@ IN SOA ns.test. hostmaster.{o}. 1 3600 600 86400 300\n@ IN NS ns.test.\n"
open(f"{z}/test.zone","w").write(soa("test")+"ns IN A 127.0.0.1\n")
inc = "".join(f'i{i} IN TXT "v=spf1 -all"\n' for i in range(1, 12))
open(f"{z}/provider.test.zone","w").write(soa("provider.test")+inc+'*._report._dmarc.reports IN TXT "v=DMARC1"\nreports IN MX 10 mx\nmx IN A 127.0.0.1\n')
GOOD_SPF = '@ IN TXT "v=spf1 ip4:192.0.2.0/24 -all"\n'
GOOD_DMARC = '_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@reports.provider.test"\n'
GOOD_MX = "@ IN MX 10 mail\nmail IN A 192.0.2.25\n"
GOOD_STS = '_mta-sts IN TXT "v=STSv1; id=20260101"\n_smtp._tls IN TXT "v=TLSRPTv1; rua=mailto:tls@reports.provider.test"\n'
def d(spf=GOOD_SPF, dmarc=GOOD_DMARC, mx=GOOD_MX, sts=GOOD_STS):
    return spf + dmarc + mx + sts
CLASSES = {
 "clean": d(),
 "spf-missing": d(spf=""),
 "spf-multiple": d(spf=GOOD_SPF + '@ IN TXT "v=spf1 mx -all"\n'),
 "spf-plus-all": d(spf='@ IN TXT "v=spf1 ip4:192.0.2.0/24 +all"\n'),
 "spf-neutral-all": d(spf='@ IN TXT "v=spf1 ip4:192.0.2.0/24 ?all"\n'),
 "spf-ptr": d(spf='@ IN TXT "v=spf1 ptr -all"\n'),
 "spf-lookups": d(spf='@ IN TXT "v=spf1 ' + " ".join(f"include:i{i}.provider.test" for i in range(1, 7)) + '" " ' + " ".join(f"include:i{i}.provider.test" for i in range(7, 12)) + ' -all"\n'),
 "spf-void": d(spf='@ IN TXT "v=spf1 a:nx1.provider.test a:nx2.provider.test a:nx3.provider.test -all"\n'),
 "spf-syntax": d(spf='@ IN TXT "v=spf1 ip4:192.0.2.300 -all"\n'),
 "dmarc-missing": d(dmarc=""),
 "dmarc-multiple": d(dmarc=GOOD_DMARC + '_dmarc IN TXT "v=DMARC1; p=none"\n'),
 "dmarc-syntax": d(dmarc='_dmarc IN TXT "v=DMARC1; p=bogus"\n'),
 "dmarc-p-none": d(dmarc='_dmarc IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@reports.provider.test"\n'),
 "dmarc-pct": d(dmarc='_dmarc IN TXT "v=DMARC1; p=reject; pct=50; rua=mailto:dmarc@reports.provider.test"\n'),
 "dmarc-rua-unauthorised": d(dmarc='_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@other.provider.test"\n'),
 "mx-missing": d(mx=""),
 "mx-null-plus-others": d(mx="@ IN MX 0 .\n" + GOOD_MX),
 "mta-sts-bad-id": d(sts='_mta-sts IN TXT "v=STSv1; id=bad-id!"\n_smtp._tls IN TXT "v=TLSRPTv1; rua=mailto:tls@reports.provider.test"\n'),
 "tls-rpt-no-rua": d(sts='_mta-sts IN TXT "v=STSv1; id=20260101"\n_smtp._tls IN TXT "v=TLSRPTv1;"\n'),
 "tls-rpt-bad-uri": d(sts='_mta-sts IN TXT "v=STSv1; id=20260101"\n_smtp._tls IN TXT "v=TLSRPTv1; rua=ftp://x.provider.test"\n'),
}
names = []
for cls, body in CLASSES.items():
    for i in range(per):
        name = f"{cls}-{i:02d}.test"
        names.append((name, cls))
        open(f"{z}/{name}.zone", "w").write(soa(name) + body)
open(f"{work}/domains.tsv", "w").write("".join(f"{n}\t{c}\n" for n, c in names))
