#!/usr/bin/env python3
"""Parse-only timing of parsedmarc for benches/reports.sh. Run with the
Python of a venv that has parsedmarc installed, without network (the bench
runs it inside `unshare -n`).

    parsedmarc_bench.py FILE_OR_DIR...

Parses every file with `parsedmarc.parse_report_file(path, offline=True)`
(no DNS, no geolocation download), keeps nothing, and prints one line:
"files reports records seconds" where records is the number of records
parsedmarc returned and seconds the wall time of the parsing alone.
"""
import logging
import os
import sys
import time

logging.disable(logging.CRITICAL)
import parsedmarc  # noqa: E402


def files(args):
    for a in args:
        if os.path.isdir(a):
            for root, _, names in os.walk(a):
                for n in sorted(names):
                    yield os.path.join(root, n)
        else:
            yield a


def main():
    paths = sorted(files(sys.argv[1:]))
    reports = records = 0
    start = time.monotonic()
    for p in paths:
        r = parsedmarc.parse_report_file(p, offline=True)
        if r["report_type"] == "aggregate":
            reports += 1
            records += len(r["report"]["records"])
        del r
    took = time.monotonic() - start
    print(len(paths), reports, records, f"{took:.2f}")


if __name__ == "__main__":
    main()
