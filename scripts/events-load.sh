#!/usr/bin/env bash
# Issue 20's load runs with event delivery on, against the built binary:
#
# 1. Delivery under load, SQLite then PostgreSQL: `godwit serve --nats … --webhook-allow-private`,
#    scripts/eventsink subscribed to every event type (it verifies signatures and counts
#    deliveries by webhook-id, and counts the events on the NATS stream), then
#    `godwit loadgen --duration $EVENTS_DURATION` with its default mix and verify. After the run
#    eventsink checks that every event written since it subscribed was delivered by webhook and
#    is on the stream, none twice; its exit status says so.
# 2. The cost of delivery on earn throughput: `loadgen --mix earn=100` against fresh servers,
#    alternating with delivery (a webhook subscription and --nats) and without (no subscription,
#    no NATS; the event rows are written either way, in the earning's own statement), for
#    EVENTS_PAIRS pairs per engine, then pgbench TPC-B with as many clients on the same server.
#
#   scripts/events-load.sh
#
# Environment: EVENTS_DURATION (delivery runs, default 60s), EVENTS_EARN_DURATION (each earn
# run, default 20s), EVENTS_VUS (default 8), EVENTS_PAIRS (default 2), EVENTS_NATS (default
# nats://127.0.0.1:4222), GODWIT_BENCH_POSTGRES (default the local test server; a schema per
# server and a database godwit_events_bench for pgbench are created and dropped).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${EVENTS_DURATION:-60s}
earn_dur=${EVENTS_EARN_DURATION:-20s}
vus=${EVENTS_VUS:-8}
pairs=${EVENTS_PAIRS:-2}
nats=${EVENTS_NATS:-nats://127.0.0.1:4222}
pg=${GODWIT_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
export PGOPTIONS="-c client_min_messages=warning"
sep='?'; [[ $pg == *\?* ]] && sep='&'

work=$(mktemp -d)
pids=()
schemas=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for s in "${schemas[@]}"; do psql "$pg" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/godwit" ./cmd/godwit
go build -o "$work/eventsink" ./scripts/eventsink

# new_dsn ENGINE → sets $dsn (a fresh PostgreSQL schema, or empty for SQLite)
new_dsn() {
  dsn=""
  if [ "$1" = postgres ]; then
    local s="events_$$_$RANDOM"
    psql "$pg" -qc "CREATE SCHEMA $s" >/dev/null
    schemas+=("$s")
    dsn="${pg}${sep}search_path=$s"
  fi
}

# start_server NAME [serve flags…] → sets $base, $srvpid, $datadir, $dbpath, $admin
start_server() {
  local name=$1; shift
  datadir="$work/$name-data"
  local port=$(( 20000 + RANDOM % 10000 ))
  local args=(serve --addr "127.0.0.1:$port" --data-dir "$datadir" --log-level error --demo "$@")
  dbpath="$datadir/godwit.db"
  local dbargs=()
  if [ -n "$dsn" ]; then args+=(--db "$dsn"); dbpath=$dsn; dbargs=(--db "$dsn"); fi
  OTEL_TRACES_SAMPLER=always_off "$work/godwit" "${args[@]}" >"$work/$name.out" 2>"$work/$name.err" &
  srvpid=$!
  pids+=("$srvpid")
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 1500); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$srvpid" 2>/dev/null || { cat "$work/$name.err" >&2; exit 1; }
    sleep 0.02
  done
  admin=$("$work/godwit" token --data-dir "$datadir" "${dbargs[@]}" admin ops)
}

stop_server() { kill -INT "$srvpid" 2>/dev/null || true; wait "$srvpid" 2>/dev/null || true; }

# start_sink NAME [--nats URL] → sets $sinkpid
start_sink() {
  local name=$1; shift
  "$work/eventsink" --target "$base" --token "$admin" --db "$dbpath" --wait 10m "$@" >"$work/$name.sink" 2>"$work/$name.sink.err" &
  sinkpid=$!
  pids+=("$sinkpid")
  for _ in $(seq 1 250); do grep -q subscribed "$work/$name.sink.err" 2>/dev/null && return; sleep 0.02; done
  cat "$work/$name.sink.err" >&2; exit 1
}

status=0
echo "## Delivery under load ($dur, default mix, webhook + NATS)"
for engine in sqlite postgres; do
  new_dsn "$engine"
  start_server "deliver-$engine" --webhook-allow-private --nats "$nats"
  start_sink "deliver-$engine" --nats "$nats"
  echo "### $engine"
  echo '```'
  "$work/godwit" loadgen --target "$base" --data-dir "$datadir" --duration "$dur" 2>/dev/null || status=1
  kill -INT "$sinkpid"
  wait "$sinkpid" || status=1
  cat "$work/deliver-$engine.sink"
  echo '```'
  stop_server
done

echo
echo "## Earn throughput with and without delivery ($earn_dur each, $vus VUs, alternating)"
echo
echo "| engine | pair | delivery | earn ops/s | p50 ms | p99 ms | failed |"
echo "|---|---|---|---|---|---|---|"
for engine in sqlite postgres; do
  for pair in $(seq 1 "$pairs"); do
    for mode in on off; do
      new_dsn "$engine"
      if [ "$mode" = on ]; then
        start_server "earn-$engine-$mode-$pair" --webhook-allow-private --nats "$nats"
        start_sink "earn-$engine-$mode-$pair" --nats "$nats"
      else
        start_server "earn-$engine-$mode-$pair"
      fi
      json="$work/earn-$engine-$mode-$pair.json"
      "$work/godwit" loadgen --target "$base" --data-dir "$datadir" --mix earn=100 --vus "$vus" \
        --duration "$earn_dur" --no-verify --json "$json" >/dev/null 2>&1
      if [ "$mode" = on ]; then kill -INT "$sinkpid"; wait "$sinkpid" || status=1; fi
      stop_server
      python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["total"]; print("| %s | %s | %s | %.0f | %.2f | %.2f | %d |" % (sys.argv[2], sys.argv[3], sys.argv[4], t["throughput_per_s"], t["p50_ms"], t["p99_ms"], t["errors"]))' \
        "$json" "$engine" "$pair" "$mode"
      [ "$mode" = on ] && sed 's/^/  /' "$work/earn-$engine-$mode-$pair.sink" >&2
    done
  done
done

psql "$pg" -qc "DROP DATABASE IF EXISTS godwit_events_bench" >/dev/null
psql "$pg" -qc "CREATE DATABASE godwit_events_bench" >/dev/null
pgb="${pg%%/test*}/godwit_events_bench${pg#*/test}"
pgbench -q -i -s 8 "$pgb" >/dev/null 2>&1
tps=$(pgbench -n -c "$vus" -j 2 -T "${earn_dur%s}" "$pgb" 2>/dev/null | awk '/^tps/ {print int($3)}')
psql "$pg" -qc "DROP DATABASE godwit_events_bench" >/dev/null
echo
echo "pgbench TPC-B-like, $vus clients, ${earn_dur}: $tps tps"
exit $status
