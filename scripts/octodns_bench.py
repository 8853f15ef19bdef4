#!/usr/bin/env python3
"""octoDNS side of benches/plan_bind.sh. Run with the Python of a venv that
has octodns and octodns-bind installed.

    octodns_bench.py config --out DIR --domains domains.txt --port PORT --tsig tsig.key
        writes DIR/octodns.yaml: a YamlProvider `config` (DIR/config/) as
        the source of every zone and octodns_bind.Rfc2136Provider `bind`
        (AXFR to read, RFC 2136 to write, the TSIG key of the BIND server)
        as the target; octoDNS's default of one worker.
    octodns_bench.py dump --out DIR --domains domains.txt [--change-every K]
        reads every zone from the server through the `bind` provider (AXFR)
        and writes it as the octoDNS YAML source of that zone: octoDNS then
        wants what is served. With --change-every K, every K-th zone's DMARC
        record gets p=quarantine instead of p=reject, the same change the
        mailauth config gets.
    octodns_bench.py count LOG
        sums octoDNS's plan summaries (Creates=, Updates=, Deletes=) in LOG
        and prints "creates updates deletes zones".
"""
import argparse
import os
import re
import sys


def domains(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def tsig_secret(path):
    text = open(path).read()
    m = re.search(r'secret\s+"([^"]+)"', text)
    if not m:
        raise SystemExit(f"{path}: no secret in the key file")
    m2 = re.search(r'key\s+"([^"]+)"', text)
    return (m2.group(1) if m2 else "mailauth-key"), m.group(1)


def config(a):
    key_name, secret = tsig_secret(a.tsig)
    out = os.path.abspath(a.out)
    os.makedirs(os.path.join(out, "config"), exist_ok=True)
    lines = [
        "providers:",
        "  config:",
        "    class: octodns.provider.yaml.YamlProvider",
        f"    directory: {out}/config",
        "    default_ttl: 300",
        "    enforce_order: false",
        "  bind:",
        "    class: octodns_bind.Rfc2136Provider",
        "    host: 127.0.0.1",
        f"    port: {a.port}",
        f"    key_name: {key_name}",
        f"    key_secret: {secret}",
        "    key_algorithm: hmac-sha256",
        "zones:",
    ]
    for d in domains(a.domains):
        lines += [f"  {d}.:", "    sources: [config]", "    targets: [bind]"]
    with open(os.path.join(out, "octodns.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def dump(a):
    import logging

    logging.disable(logging.CRITICAL)
    from octodns.manager import Manager

    out = os.path.abspath(a.out)
    m = Manager(os.path.join(out, "octodns.yaml"))
    names = domains(a.domains)
    for d in names:
        m.dump(zone=f"{d}.", output_dir=os.path.join(out, "config"), sources=["bind"])
    if a.change_every:
        for i in range(0, len(names), a.change_every):
            path = os.path.join(out, "config", f"{names[i]}.yaml")
            text = open(path).read()
            if text.count("p=reject") != 1:
                raise SystemExit(f"{path}: expected one p=reject")
            open(path, "w").write(text.replace("p=reject", "p=quarantine"))


def count(a):
    text = open(a.log).read()
    totals = [0, 0, 0]
    zones = 0
    for m in re.finditer(r"Summary: Creates=(\d+), Updates=(\d+), Deletes=(\d+)", text):
        zones += 1
        for i in range(3):
            totals[i] += int(m.group(i + 1))
    print(*totals, zones)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("--out", required=True)
    c.add_argument("--domains", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--tsig", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--out", required=True)
    d.add_argument("--domains", required=True)
    d.add_argument("--change-every", type=int, default=0)
    n = sub.add_parser("count")
    n.add_argument("log")
    a = ap.parse_args()
    {"config": config, "dump": dump, "count": count}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
