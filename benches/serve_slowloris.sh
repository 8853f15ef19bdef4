#!/usr/bin/env bash
# Load test of `mailauth serve` under a slowloris attack, loopback only.
#
# Starts `mailauth serve --offline` on an empty store on a free loopback
# port, then (scripts in Python, standard library only):
# - SLOW clients (default 32, the connection cap) each open a connection,
#   send a request line and then one header line every 100 ms without ever
#   ending the head, reconnecting whenever the server drops them;
# - once they are all connected, NORMAL clients (default 200) start at
#   once, each sending one `GET /api/overview` and reading the whole
#   answer (at most 30 s each).
# It prints the status counts and the p50 / p99 / max latency of the normal
# clients (connect to last byte), RUNS times (default 3). Bounded: the slow
# clients stop when the normal ones are done.
#
#   benches/serve_slowloris.sh                # release build
#   PROFILE=debug NORMAL=50 benches/serve_slowloris.sh
set -euo pipefail

SLOW=${SLOW:-32}
NORMAL=${NORMAL:-200}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-release}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$PROFILE" = release ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
else
    cargo build --quiet --manifest-path "$ROOT/Cargo.toml"
fi
BIN=$TARGET/$PROFILE/mailauth
DB=$WORK/reports.db
"$BIN" reports --db "$DB" list >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" -c "$WORK/absent.yaml" serve --offline --db "$DB" --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
PID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null && break
    sleep 0.1
done

for run in $(seq "$RUNS"); do
python3 - "$PORT" "$SLOW" "$NORMAL" <<'PY'
import socket, sys, threading, time

port, slow, normal = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stop = threading.Event()
opened = [0]
dropped = [0]
lock = threading.Lock()

def slowloris():
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.05)
            continue
        with lock:
            opened[0] += 1
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
            while not stop.is_set():
                time.sleep(0.1)
                s.sendall(b"X-Slow: 1\r\n")
        except OSError:
            with lock:
                dropped[0] += 1
        finally:
            s.close()

latencies, statuses = [], {}
def client():
    t0 = time.monotonic()
    status = "error"
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.settimeout(30)
        s.sendall(b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        status = buf.split(b" ", 2)[1].decode() if buf else "closed"
    except OSError as e:
        status = type(e).__name__
    dt = time.monotonic() - t0
    with lock:
        latencies.append(dt)
        statuses[status] = statuses.get(status, 0) + 1

slows = [threading.Thread(target=slowloris, daemon=True) for _ in range(slow)]
for t in slows:
    t.start()
deadline = time.monotonic() + 10
while opened[0] < slow and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.5)
clients = [threading.Thread(target=client) for _ in range(normal)]
t0 = time.monotonic()
for t in clients:
    t.start()
for t in clients:
    t.join()
wall = time.monotonic() - t0
time.sleep(0.3)  # let dropped slow clients notice
stop.set()
latencies.sort()
pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))]
print("slow=%d normal=%d statuses=%s p50=%.3fs p99=%.3fs max=%.3fs wall=%.2fs slow-connections=%d slow-dropped=%d"
      % (slow, normal, dict(sorted(statuses.items())), pct(0.50), pct(0.99), latencies[-1], wall, opened[0], dropped[0]))
PY
done
