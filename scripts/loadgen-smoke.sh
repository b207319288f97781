#!/usr/bin/env bash
# Starts `godwit serve` on a fresh data dir (SQLite, or PostgreSQL when a DSN is
# given), runs the load generator against it for a few seconds, and fails on any
# 5xx, transport error or invariant violation (loadgen runs verify at the end).
#
#   scripts/loadgen-smoke.sh [seconds] [postgres-dsn]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
dsn=${2:-}
work=$(mktemp -d)
bin="$work/godwit"
go build -o "$bin" ./cmd/godwit
port=$(( 20000 + RANDOM % 20000 ))
# The server keeps its default rate limits: loadgen sends a load-test pass (minted
# with the data dir's secret) that exempts its requests, so its few members and one
# loopback IP are not throttled (see `godwit loadgen -h`).
# --demo: the demo catalogue and members loadgen drives (on by default only with SQLite).
args=(serve --addr "127.0.0.1:$port" --data-dir "$work/data" --log-level warn --demo)
[ -n "$dsn" ] && args+=(--db "$dsn")
"$bin" "${args[@]}" >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "serve exited:"; cat "$work/serve.err"; exit 1; }
  sleep 0.1
done
status=0
"$bin" loadgen --target "http://127.0.0.1:$port" --data-dir "$work/data" --duration "${seconds}s" \
  --vus 8 --members 40 --verify-grace 0s || status=$?
if grep -q '"level":"ERROR"' "$work/serve.err"; then
  echo "server logged errors:"; grep '"level":"ERROR"' "$work/serve.err" | head -20
  status=1
fi
exit $status
