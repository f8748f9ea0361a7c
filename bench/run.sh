#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md on one machine: a private redis-server, a release
# `sluice up --redis` gateway, and `sluice bench` as subscribers and paced publisher.
# Usage: bench/run.sh [scenario…]   scenarios: idle ws2000 enforce2000 sse2000 max10 max1000
# handshake correlator log (default: all). The stream scenarios run the gateway without its correlator, so
# they measure fan-out alone; `correlator` measures the correlator alone.
# Needs redis-server and curl; raises the open-files limit for 10,000 sockets.
set -euo pipefail
cd "$(dirname "$0")/.."

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# SLUICE_BIN runs an already built binary instead of building one.
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release -q -p sluice; fi
SLUICE=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
http_port=$(free_port)
start_stack() {
  stop_stack
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
  rm -rf "$work/data"
  RUST_LOG=warn $SLUICE up --listen "127.0.0.1:$http_port" --data-dir "$work/data" \
    --redis "redis://127.0.0.1:$redis_port/" --no-correlator ${GATEWAY_ARGS:-} >"$work/gateway.log" 2>&1 &
  gateway=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done
  if ! kill -0 "$gateway" 2>/dev/null; then cat "$work/gateway.log" >&2; exit 1; fi
  token=$(cat "$work/data/admin.token")
}
stop_stack() {
  if [ -n "${gateway:-}" ]; then kill "$gateway" 2>/dev/null || true; wait "$gateway" 2>/dev/null || true; fi
  if [ -f "$work/redis.pid" ]; then kill "$(cat "$work/redis.pid")" 2>/dev/null || true; rm -f "$work/redis.pid"; sleep 0.5; fi
}
trap 'stop_stack; rm -rf "$work"' EXIT

# A fresh account on PLAN, with the plan edited to allow 20,000 connections (its other limits
# untouched), so thousands of subscribers fit under its cap. `enterprise` has no rate limit
# ("limits off"); `pro` enforces 2,000/s per connection, never reached at these rates
# ("limits on": the limiter runs for every delivery).
bench_token() {
  local plan=$1
  curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$http_port/v1/admin/plans" | python3 -c '
import json, sys
plan = [p for p in json.load(sys.stdin)["plans"] if p["name"] == sys.argv[1]][0]
plan["max_connections"] = 20000
print(json.dumps(plan))' "$plan" | curl -sf -X PUT -H "Authorization: Bearer $token" \
    -H 'content-type: application/json' -d @- "http://127.0.0.1:$http_port/v1/admin/plans/$plan" >/dev/null
  $SLUICE accounts create "bench-$plan" --plan "$plan" --data-dir "$work/data" >/dev/null
  $SLUICE tokens create --account "bench-$plan" --data-dir "$work/data" 2>/dev/null
}

bench() {
  # Each measurement gets a fresh Redis and gateway, so no backlog carries over.
  start_stack
  echo "### sluice bench $*"
  local plan=${BENCH_PLAN:-enterprise}
  echo "(account on plan $plan)"
  $SLUICE bench --url "http://127.0.0.1:$http_port" --token "$(bench_token "$plan")" \
    --redis "redis://127.0.0.1:$redis_port/" --gateway-pid "$gateway" "$@"
  echo
}

handshake() {
  # The same 20,000 authenticated upgrades with the token cache on (default) and off, with the
  # accounts in SQLite, and in PostgreSQL when BENCH_PG_ADMIN_URL names a server to create a
  # scratch database on (e.g. postgres://postgres:postgres@127.0.0.1:5432/postgres).
  local stores="sqlite"
  if [ -n "${BENCH_PG_ADMIN_URL:-}" ]; then stores="sqlite postgres"; fi
  for store in $stores; do
    for ttl in 60s 0s; do
      local database_args=""
      if [ "$store" = postgres ]; then
        stop_stack
        psql "$BENCH_PG_ADMIN_URL" -qc 'DROP DATABASE IF EXISTS sluice_bench WITH (FORCE)' -c 'CREATE DATABASE sluice_bench' >/dev/null
        database_args="--database ${BENCH_PG_ADMIN_URL%/*}/sluice_bench"
      fi
      GATEWAY_ARGS="--token-cache-ttl $ttl $database_args" start_stack
      echo "### sluice bench --handshakes 20000 (accounts in $store, --token-cache-ttl $ttl)"
      $SLUICE bench --url "http://127.0.0.1:$http_port" --token "$token" --gateway-pid "$gateway" --handshakes 20000
      echo
    done
  done
}

correlator() {
  start_stack
  echo "### sluice bench-correlator (1 and 3 providers per scanner; end to end on Redis)"
  RUST_LOG=warn $SLUICE bench-correlator --providers 1
  RUST_LOG=warn $SLUICE bench-correlator --providers 3 --redis "redis://127.0.0.1:$redis_port/" --e2e-scanners 100000
  echo
}

log() {
  # The log backends side by side; the SQLite files go in the scratch directory (on the same
  # file system as the default --data-dir would be when it is run from the repository).
  start_stack
  echo "### sluice bench-log (memory, SQLite with and without a sync per batch, Redis)"
  RUST_LOG=warn $SLUICE bench-log --dir "$work/bench-log" --redis "redis://127.0.0.1:$redis_port/" ${BENCH_LOG_ARGS:-}
  echo
}

scenarios=${*:-idle ws2000 enforce2000 sse2000 max10 max1000 handshake correlator log}
for scenario in $scenarios; do
  case $scenario in
    idle)    bench --idle --subscribers 10000 ;;
    ws2000)  bench --subscribers 2000 --transport ws --rate 100 --duration 15s ;;
    sse2000) bench --subscribers 2000 --transport sse --rate 100 --duration 15s ;;
    enforce2000) BENCH_PLAN=pro bench --subscribers 2000 --transport ws --rate 100 --duration 15s ;;
    max10)   for rate in 4000 8000 12000 16000; do bench --subscribers 10 --rate "$rate" --duration 10s; done ;;
    max1000) for rate in 50 75 100; do bench --subscribers 1000 --rate "$rate" --duration 10s; done ;;
    handshake) handshake ;;
    correlator) correlator ;;
    log) log ;;
    *) echo "unknown scenario $scenario" >&2; exit 64 ;;
  esac
done
