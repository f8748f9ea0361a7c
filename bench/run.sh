#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md on one machine: a private redis-server, a release
# `sluice up --redis` gateway, and `sluice bench` as subscribers and paced publisher.
# Usage: bench/run.sh [scenario…]   scenarios: idle ws2000 sse2000 max10 max1000 (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p sluice
SLUICE=target/release/sluice
work=$(mktemp -d)
redis_port=$((20000 + RANDOM % 20000))
http_port=$((40000 + RANDOM % 20000))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
RUST_LOG=warn $SLUICE up --listen "127.0.0.1:$http_port" --data-dir "$work/data" \
  --redis "redis://127.0.0.1:$redis_port/" >"$work/gateway.log" 2>&1 &
gateway=$!
cleanup() { kill "$gateway" 2>/dev/null || true; kill "$(cat "$work/redis.pid")" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done
token=$(cat "$work/data/admin.token")

bench() {
  echo "### sluice bench $*"
  $SLUICE bench --url "http://127.0.0.1:$http_port" --token "$token" \
    --redis "redis://127.0.0.1:$redis_port/" --gateway-pid "$gateway" "$@"
  echo
}

scenarios=${*:-idle ws2000 sse2000 max10 max1000}
for scenario in $scenarios; do
  case $scenario in
    idle)    bench --idle --subscribers 10000 ;;
    ws2000)  bench --subscribers 2000 --transport ws --rate 100 --duration 15s ;;
    sse2000) bench --subscribers 2000 --transport sse --rate 100 --duration 15s ;;
    max10)   for rate in 5000 10000 20000; do bench --subscribers 10 --rate "$rate" --duration 10s; done ;;
    max1000) for rate in 100 200 400; do bench --subscribers 1000 --rate "$rate" --duration 10s; done ;;
    *) echo "unknown scenario $scenario" >&2; exit 64 ;;
  esac
done
