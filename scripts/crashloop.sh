#!/usr/bin/env bash
# Crash loop: runs the load generator against `godwit serve`, kills serve with
# SIGKILL at a random moment, restarts it, lets recovery run and checks every
# invariant with `godwit verify --grace 0s`. Repeats [kills] times; fails on
# the first violation, or if serve does not come back.
#
#   scripts/crashloop.sh [kills] [postgres-dsn]
#
# SQLite in a fresh data dir when no DSN is given. Serve runs with short
# reservation, checkout-lease and job intervals so that work interrupted by a
# kill is recovered within seconds, not the production 15 and 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
dsn=${2:-}
lease=${CRASHLOOP_LEASE:-3}           # seconds: --checkout-lease and --reservation-ttl
max_run=${CRASHLOOP_MAX_RUN_MS:-4000} # the kill comes 300..max_run ms into the load
work=$(mktemp -d)
bin="$work/godwit"
go build -o "$bin" ./cmd/godwit
port=$(( 20000 + RANDOM % 20000 ))
base="http://127.0.0.1:$port"
db_args=()
[ -n "$dsn" ] && db_args=(--db "$dsn")
serve_pid=
load_pid=
cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_serve() {
  "$bin" serve --addr "127.0.0.1:$port" --data-dir "$work/data" "${db_args[@]}" --log-level warn --demo \
    --reservation-ttl "${lease}s" --checkout-lease "${lease}s" --recovery-interval 1s --reaper-interval 1s \
    --hold-reaper-interval 1s --outbox-interval 500ms >>"$work/serve.out" 2>>"$work/serve.err" &
  serve_pid=$!
  for _ in $(seq 1 200); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$serve_pid" 2>/dev/null || { echo "crashloop: serve exited:"; tail -20 "$work/serve.err"; exit 1; }
    sleep 0.05
  done
  echo "crashloop: serve did not become ready"; exit 1
}

start_serve
token=$("$bin" token --data-dir "$work/data" "${db_args[@]}" admin crashloop)
survived=0
for i in $(seq 1 "$kills"); do
  "$bin" loadgen --target "$base" --data-dir "$work/data" "${db_args[@]}" --duration 60s --vus 8 --members 20 \
    --no-verify --seed "$i" >"$work/loadgen.$i.out" 2>&1 &
  load_pid=$!
  sleep "$(awk -v r="$RANDOM" -v m="$max_run" 'BEGIN { printf "%.3f", (300 + r % (m - 300)) / 1000 }')"
  kill -KILL "$serve_pid"
  wait "$serve_pid" 2>/dev/null || true
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  load_pid=
  start_serve
  # Leases and reservations of interrupted checkouts run out, then recovery and
  # the reapers settle them.
  sleep $(( 2 * lease + 1 ))  # the lease, then the retry window of one more lease
  curl -fsS -X POST -H "Authorization: Bearer $token" "$base/v1/admin/checkouts/recover" >"$work/recover.$i.json"
  sleep 1.5
  if ! "$bin" verify --target "$base" --token "$token" --grace 0s; then
    echo "crashloop: violations after kill $i (recovery said: $(cat "$work/recover.$i.json"))"
    exit 1
  fi
  survived=$i
  echo "crashloop: kill $i/$kills survived ($(grep -c . "$work/loadgen.$i.out" || true) loadgen lines)"
done
errors=$(grep -c '"level":"ERROR"' "$work/serve.err" || true)
echo "crashloop: $survived kills survived, 0 violations, $errors server error log lines"
