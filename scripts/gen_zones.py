#!/usr/bin/env python3
"""Generates N empty DNS zones, a BIND configuration serving them with RFC
2136 updates and AXFR allowed for one TSIG key, and a mailauth config that
declares SPF, DMARC and two DKIM selectors for every zone.

    gen_zones.py --out DIR --zones 1000 --port PORT --keys k1.b64,k2.b64,... \
        --tsig DIR/tsig.key
    gen_zones.py --out DIR --zones 1000 --port PORT --keys ... --tsig ... \
        --change-every 10 --config-name mailauth-changed.yaml

Writes
  DIR/zones/<zone>.zone     SOA + NS only: mailauth apply adds the rest
  DIR/named.conf            one primary zone per domain, dynamic (journal)
  DIR/mailauth.yaml         provider rfc2136 + the domains
  DIR/domains.txt           the zone names, one a line

With --change-every K, every K-th domain (d00000, d00010, ...) gets
`p: quarantine` instead of `p: reject` in its DMARC policy: one changed
RRset per such zone. Only the config is written in that mode.

Public keys are base64 SubjectPublicKeyInfo (what
`openssl pkey -pubout -outform DER | base64 -w0` prints); selector s1 and
s2 of domain i use keys i and i+1 (mod the number of keys).
"""
import argparse
import os


def zone_name(i):
    return f"d{i:05d}.test"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", required=True, help="comma-separated files of base64 public keys")
    ap.add_argument("--tsig", required=True, help="BIND key file from tsig-keygen")
    ap.add_argument("--key-name", default="mailauth-key")
    ap.add_argument("--change-every", type=int, default=0)
    ap.add_argument("--config-name", default="mailauth.yaml")
    a = ap.parse_args()

    keys = []
    for path in a.keys.split(","):
        with open(path) as f:
            keys.append(f.read().strip())
    if len(keys) < 2:
        raise SystemExit("need at least two public keys")

    out = os.path.abspath(a.out)
    names = [zone_name(i) for i in range(a.zones)]

    if not a.change_every:
        zdir = os.path.join(out, "zones")
        os.makedirs(zdir, exist_ok=True)
        os.makedirs(os.path.join(out, "run"), exist_ok=True)
        for z in names:
            with open(os.path.join(zdir, f"{z}.zone"), "w") as f:
                f.write(
                    "$TTL 300\n"
                    f"@ IN SOA ns.test. hostmaster.{z}. 1 3600 600 86400 300\n"
                    "@ IN NS ns.test.\n"
                )
        with open(os.path.join(out, "named.conf"), "w") as f:
            f.write(f'include "{os.path.abspath(a.tsig)}";\n')
            f.write(
                f'options {{ directory "{out}/run"; pid-file "{out}/run/named.pid";\n'
                f'  session-keyfile "{out}/run/session.key";\n'
                f"  listen-on port {a.port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n"
                "  recursion no; allow-query { 127.0.0.1; }; dnssec-validation no;\n"
                "  notify no; };\n"
                "controls { };\n"
            )
            for z in names:
                zf = os.path.join(zdir, f"{z}.zone")
                f.write(
                    f'zone "{z}" {{ type primary; file "{zf}"; journal "{zf}.jnl";\n'
                    f'  allow-update {{ key "{a.key_name}"; }};\n'
                    f'  allow-transfer {{ key "{a.key_name}"; }}; }};\n'
                )
        with open(os.path.join(out, "domains.txt"), "w") as f:
            f.write("\n".join(names) + "\n")

    cfg = [
        "provider:",
        "  kind: rfc2136",
        f"  server: 127.0.0.1:{a.port}",
        f"  key_name: {a.key_name}",
        "  algorithm: hmac-sha256",
        f"  secret_file: {os.path.abspath(a.tsig)}",
        "defaults:",
        "  ttl: 300",
        "domains:",
    ]
    for i, z in enumerate(names):
        changed = a.change_every and i % a.change_every == 0
        p = "quarantine" if changed else "reject"
        cfg += [
            f"  {z}:",
            "    spf: { ip4: [192.0.2.0/24], include: [_spf.provider.test], all: fail }",
            f"    dmarc: {{ p: {p}, rua: [mailto:dmarc@reports.provider.test] }}",
            "    dkim:",
            "      selectors:",
        ]
        for s in (1, 2):
            cfg += [
                f"        - name: s{s}",
                f"          public_key: {keys[(i + s - 1) % len(keys)]}",
            ]
    with open(os.path.join(out, a.config_name), "w") as f:
        f.write("\n".join(cfg) + "\n")


if __name__ == "__main__":
    main()
