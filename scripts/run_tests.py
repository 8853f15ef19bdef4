#!/usr/bin/env python3
"""Runs the workspace's test executables, several at a time.

`cargo test` runs its test binaries one after another, and most of ours
spend their time waiting on servers, processes and timeouts, not on the
CPU. This runner takes the executables `cargo test --no-run
--message-format=json` built (read from the file given by --built) and
runs them side by side, each as `cargo test` would: from its package's
directory, with `--test-threads`.

Every binary running at the same time gets a slice of the loopback port
range of its own (MAILAUTH_TEST_PORTS=LOW-HIGH, read by the harness's
`free_port`), so that two processes never pick the same port for their
servers.

The binaries named by --solo run afterwards, one at a time and with the
default number of test threads: they bound time and memory or kill
processes (tests/README.md).

Each binary's output is printed whole when it ends, with its wall time;
the exit status is 1 when any binary failed (or could not start), and the
failing binaries are named at the end.

    scripts/run_tests.py --built target/test-binaries.json --threads 6 \\
        --solo faults --solo limits_config
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# The range `free_port` picks from: below the kernel's ephemeral ports.
PORT_LOW = 10_000
PORT_HIGH = 32_767


def executables(built):
    """The test executables in cargo's messages, in build order, once each."""
    seen = set()
    found = []
    with open(built, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("reason") != "compiler-artifact":
                continue
            exe = msg.get("executable")
            if not exe or not msg.get("profile", {}).get("test"):
                continue
            if exe in seen:
                continue
            seen.add(exe)
            target = msg["target"]
            found.append(
                {
                    "name": target["name"],
                    "kind": target["kind"][0],
                    "src": target["src_path"],
                    "exe": exe,
                    "cwd": os.path.dirname(msg["manifest_path"]),
                }
            )
    return found


def label(t):
    return f"{t['name']} ({t['kind']}: {os.path.relpath(t['src'])})"


def start(t, args, ports):
    env = dict(os.environ)
    env["MAILAUTH_TEST_PORTS"] = f"{ports[0]}-{ports[1]}"
    out = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            [t["exe"], *args],
            cwd=t["cwd"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    except OSError as e:
        out.close()
        return None, None, str(e)
    return proc, out, None


def finish(t, out, status, began):
    out.seek(0)
    sys.stdout.write(f"\n==== {label(t)}: exit {status}, {time.monotonic() - began:.1f} s\n")
    sys.stdout.flush()
    sys.stdout.buffer.write(out.read())
    sys.stdout.flush()
    out.close()


def run_group(tests, args, together):
    """Runs `tests` `together` at a time; returns the names that failed."""
    failed = []
    slices = max(1, min(together, len(tests)))
    width = (PORT_HIGH - PORT_LOW + 1) // slices
    free = list(range(slices))
    running = []  # (test, proc, out, began, slice)
    queue = list(tests)
    while queue or running:
        while queue and free:
            t = queue.pop(0)
            s = free.pop(0)
            ports = (PORT_LOW + s * width, PORT_LOW + (s + 1) * width - 1)
            began = time.monotonic()
            proc, out, err = start(t, args, ports)
            if proc is None:
                sys.stdout.write(f"\n==== {label(t)}: could not start: {err}\n")
                failed.append(t["name"])
                free.append(s)
                continue
            running.append((t, proc, out, began, s))
        still = []
        for t, proc, out, began, s in running:
            status = proc.poll()
            if status is None:
                still.append((t, proc, out, began, s))
                continue
            finish(t, out, status, began)
            if status != 0:
                failed.append(t["name"])
            free.append(s)
        running = still
        if running:
            time.sleep(0.1)
    return failed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--built", required=True, help="cargo's JSON messages of `cargo test --no-run`")
    p.add_argument("--threads", type=int, default=6, help="--test-threads of the binaries run together")
    p.add_argument("--jobs", type=int, default=0, help="binaries at a time (default: all)")
    p.add_argument("--solo", action="append", default=[], help="a binary run afterwards, alone")
    opts = p.parse_args()

    tests = executables(opts.built)
    if not tests:
        sys.exit(f"run_tests.py: no test executable in {opts.built}")
    unknown = set(opts.solo) - {t["name"] for t in tests}
    if unknown:
        sys.exit(f"run_tests.py: --solo names no test executable: {', '.join(sorted(unknown))}")
    together = [t for t in tests if t["name"] not in opts.solo]
    alone = [t for t in tests if t["name"] in opts.solo]

    began = time.monotonic()
    failed = run_group(together, ["--test-threads", str(opts.threads)], opts.jobs or len(together))
    failed += run_group(alone, [], 1)
    print(f"\nrun_tests.py: {len(tests)} test executables in {time.monotonic() - began:.1f} s")
    if failed:
        print(f"run_tests.py: failed: {' '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
