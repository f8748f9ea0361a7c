#!/usr/bin/env bash
# What a TAXII page costs on a large log, beside the same page size from `GET /v1/indicators`:
# fills a fresh `sluice up` (embedded SQLite log) with N distinct indicators over HTTP (batches
# of 1,000), then times each request and reads the node's CPU time (utime + stime, from
# /proc/<pid>/stat) around it: the first TAXII page (which builds the node's version index from
# the whole log), later pages from the start and the middle of the log, a manifest page, and the feed.
# Usage: bench/taxii.sh [N]   (default 1000000). Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000000}
repeats=${REPEATS:-5}
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release -q -p sluice; fi
SLUICE=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
node=""
trap '[ -n "$node" ] && kill "$node" 2>/dev/null; rm -rf "$work"' EXIT

RUST_LOG=warn $SLUICE up --listen "127.0.0.1:$port" --data-dir "$work/data" --no-correlator \
  --log-max-entries "$((count + 1000))" --log-max-bytes 8GiB --feed-rate 0 --taxii-rate 0 \
  >"$work/out.log" 2>"$work/err.log" &
node=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
kill -0 "$node" 2>/dev/null || { cat "$work/err.log" >&2; exit 1; }
token=$(cat "$work/data/admin.token")
echo "filling the log with $count indicators" >&2
middle=$(python3 - "$port" "$token" "$count" <<'PY'
import datetime, json, sys, urllib.request
port, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
middle = None
for start in range(0, count, 1000):
    if middle is None and start >= count // 2:
        # Entries are added at the node's clock: everything after this is the second half.
        middle = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    batch = [{"indicator": "5.%d.%d.%d" % (n >> 16 & 255, n >> 8 & 255, n & 255), "itype": "ipv4",
              "tags": ["scanner", "ssh"], "confidence": 7, "tlp": "green",
              "description": "ssh brute force against the sensor"}
             for n in range(start, min(start + 1000, count))]
    request = urllib.request.Request("http://127.0.0.1:%s/v1/indicators" % port,
        data=json.dumps(batch).encode(), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
print(middle.replace("+00:00", "Z"))
PY
)
sleep 1
ticks=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$ticks" '{printf "%d", ($14 + $15) * 1000 / t}' "/proc/$node/stat"; }
taxii="-H Accept:application/taxii+json;version=2.1 -u taxii:$token"
collections=$(curl -sf $taxii "http://127.0.0.1:$port/taxii2/api/collections/")
id=$(python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin)["collections"] if c["alias"]=="indicators"][0])' <<<"$collections")
objects="http://127.0.0.1:$port/taxii2/api/collections/$id/objects/"

# One request: prints wall ms, node CPU ms, bytes.
measure() {
  local before after
  before=$(cpu_ms)
  read -r seconds bytes < <(curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "$@")
  after=$(cpu_ms)
  printf '%.1f %d %d\n' "$(python3 -c "print($seconds * 1000)")" "$((after - before))" "$bytes"
}
row() {
  local name=$1; shift
  local results=()
  for _ in $(seq 1 "$repeats"); do results+=("$(measure "$@")"); done
  printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin]
wall = statistics.median(r[0] for r in rows); cpu = statistics.median(r[1] for r in rows)
print("| %s | %.1f ms | %.0f ms | %d |" % (sys.argv[1], wall, cpu, rows[0][2]))' "$name"
}
echo "| request ($count entries; median of $repeats, node CPU from /proc) | wall | node CPU | bytes |"
echo "|---|---|---|---|"
# The first one builds the version index: measured once.
printf '%s\n' "$(measure $taxii "$objects?limit=1000")" | awk -v n="$count" '{printf "| first TAXII page (builds the index of %d objects) | %s ms | %s ms | %s |\n", n, $1, $2, $3}'
row "TAXII page of 1,000 from the start" $taxii "$objects?limit=1000"
row "TAXII page of 1,000 from the middle (added_after)" $taxii "$objects?limit=1000&added_after=$middle"
row "TAXII manifest page of 1,000" $taxii "http://127.0.0.1:$port/taxii2/api/collections/$id/manifest/?limit=1000"
row "GET /v1/indicators?limit=1000 (newest first, scans the window)" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/indicators?limit=1000"
rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$node/status")
echo
echo "node RSS after: $rss MiB"
