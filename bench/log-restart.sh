#!/usr/bin/env bash
# How long `sluice up` takes to come back with a full embedded log, and what it then holds in
# memory: fills a fresh data directory with N indicators over HTTP (batches of 1,000), stops the
# node, starts it again and reports the log's own "log resumed" line and the process's RSS
# against a node started on an empty log.
# Usage: bench/log-restart.sh [N]   (default 200000). Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-200000}
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release -q -p sluice; fi
SLUICE=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
node=""
trap '[ -n "$node" ] && kill "$node" 2>/dev/null; rm -rf "$work"' EXIT

start() {
  RUST_LOG=info $SLUICE up --listen "127.0.0.1:$port" --data-dir "$work/data" --no-correlator \
    >"$work/out.log" 2>"$work/err.log" &
  node=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  cat "$work/err.log" >&2; exit 1
}
stop() { kill "$node"; wait "$node" || true; node=""; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$node/status"; }

start
empty_rss=$(rss_mib)
token=$(cat "$work/data/admin.token")
python3 - "$port" "$token" "$count" <<'EOF'
import json, sys, urllib.request
port, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for start in range(0, count, 1000):
    batch = [{"indicator": "5.%d.%d.%d" % (n >> 16 & 255, n >> 8 & 255, n & 255), "itype": "ipv4",
              "tags": ["scanner", "ssh"], "confidence": 7, "tlp": "green",
              "description": "ssh brute force against the sensor"}
             for n in range(start, min(start + 1000, count))]
    request = urllib.request.Request("http://127.0.0.1:%s/v1/indicators" % port,
        data=json.dumps(batch).encode(), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
EOF
filled_rss=$(rss_mib)
stop
file_mib=$(du -m "$work/data/log.db" | cut -f1)
start
echo "empty log: RSS $empty_rss MiB; after appending $count: RSS $filled_rss MiB; log.db $file_mib MiB"
grep -o 'log resumed: .*' "$work/err.log" | head -1
echo "after the restart: RSS $(rss_mib) MiB"
stop
