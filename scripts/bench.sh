#!/usr/bin/env bash
# Godwit's benchmark suite: builds the binary, drives it with the load generator on
# SQLite and on PostgreSQL (tracing at 100% sampling, spans exported over OTLP to a
# local sink), runs pgbench on the same server with the same client count so every
# figure can be read as a ratio to what the database itself does, and runs the Go
# benchmarks. Writes a Markdown report (default: bench-results.md) and prints it.
#
#   scripts/bench.sh [report.md]
#
# Environment: BENCH_DURATION (per load run, default 15s), BENCH_VUS (default 8),
# BENCH_HOT_VUS (default 64), GODWIT_BENCH_POSTGRES (a server's DSN; default the
# local test server; a database godwit_bench is created for pgbench), BENCH_SKIP_GO=1
# skips the Go benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results.md}
dur=${BENCH_DURATION:-15s}
vus=${BENCH_VUS:-8}
hot=${BENCH_HOT_VUS:-64}
pg=${GODWIT_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
secs=${dur%s}
export PGOPTIONS="-c client_min_messages=warning"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building..." >&2
go build -o "$work/godwit" ./cmd/godwit
go build -o "$work/otlpsink" ./scripts/otlpsink
sinkport=$(( 30000 + RANDOM % 10000 ))
"$work/otlpsink" -addr "127.0.0.1:$sinkport" >"$work/sink.out" 2>&1 &
pids+=($!)

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }

# start_server NAME DSN SAMPLER → sets $base, $srvpid, $datadir
start_server() {
  local name=$1 dsn=$2 sampler=$3
  datadir="$work/$name-data"
  local port=$(( 20000 + RANDOM % 10000 ))
  local args=(serve --addr "127.0.0.1:$port" --data-dir "$datadir" --log-level error --rate-limit-anonymous 0 --rate-limit-member 0)
  [ -n "$dsn" ] && args+=(--db "$dsn")
  local t0; t0=$(date +%s%N)
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sinkport" OTEL_TRACES_SAMPLER="$sampler" \
    "$work/godwit" "${args[@]}" >"$work/$name.out" 2>"$work/$name.err" &
  srvpid=$!
  pids+=($srvpid)
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.02
  done
  ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}

stop_server() { kill -INT "$srvpid" 2>/dev/null || true; wait "$srvpid" 2>/dev/null || true; }

# load LABEL MIX VUS [extra loadgen flags] → appends a row, sets $tput
load() {
  local label=$1 mix=$2 n=$3; shift 3
  "$work/godwit" loadgen --target "$base" --data-dir "$datadir" --duration "$dur" --vus "$n" \
    --members 400 --mix "$mix" --decline-share -1 --no-verify --json "$work/r.json" "$@" >/dev/null 2>"$work/loadgen.err" \
    || { echo "loadgen failed for $label:" >&2; tail -5 "$work/loadgen.err" >&2; }
  read -r tput p50 p99 errs < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); t=r["total"]
print(round(t["throughput_per_s"]), t["p50_ms"], t["p99_ms"], t["errors"])' "$work/r.json")
  row "$label" "$tput/s" "$p50 ms" "$p99 ms" "$errs"
}

pgbench_tps() { # CLIENTS [extra args]
  local c=$1; shift
  pgbench -n -c "$c" -j 2 -T "$secs" "$@" "$pgb" 2>/dev/null | awk '/^tps/ {print int($3)}'
}

echo "SQLite..." >&2
start_server sqlite "" always_on
row "serve ready on an empty SQLite data dir" "${ready_ms} ms" "" "" ""
load "SQLite earn, $vus VUs" earn=100 "$vus"; sqlite_earn=$tput
load "SQLite checkout, $vus VUs" checkout=100 "$vus"
rss=$(ps -o rss= -p "$srvpid" | tr -d ' ')
row "SQLite resident memory after load" "$((rss / 1024)) MB" "" "" ""
stop_server
start_server sqlite-notrace "" always_off
load "SQLite earn, tracing off" earn=100 "$vus"; sqlite_earn_off=$tput
stop_server

pg_earn=0; pg_earn_off=0; tpcb=0; hotrow=0
if psql "$pg" -qc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL..." >&2
  schema="bench_$$"
  psql "$pg" -qc "CREATE SCHEMA $schema" >/dev/null
  sep='?'; case "$pg" in *\?*) sep='&';; esac
  dsn="${pg}${sep}search_path=$schema"
  start_server pg "$dsn" always_on
  load "PostgreSQL earn, $vus VUs" earn=100 "$vus"; pg_earn=$tput
  load "PostgreSQL checkout, $vus VUs" checkout=100 "$vus"
  stop_server
  start_server pg-notrace "$dsn" always_off
  load "PostgreSQL earn, tracing off" earn=100 "$vus"; pg_earn_off=$tput
  stop_server
  psql "$pg" -qc "DROP SCHEMA $schema CASCADE" >/dev/null

  psql "$pg" -qc "DROP DATABASE IF EXISTS godwit_bench" >/dev/null
  psql "$pg" -qc "CREATE DATABASE godwit_bench" >/dev/null
  pgb=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path="/godwit_bench").geturl())' "$pg")
  pgbench -q -i -s 8 "$pgb" >/dev/null 2>&1
  tpcb=$(pgbench_tps "$vus")
  printf 'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1;\n' >"$work/hot.sql"
  hotrow=$(pgbench_tps "$hot" -f "$work/hot.sql")
  psql "$pg" -qc "DROP DATABASE godwit_bench" >/dev/null
  row "pgbench TPC-B-like, $vus clients" "$tpcb tps" "" "" ""
  row "pgbench one hot row, $hot clients" "$hotrow tps" "" "" ""
fi

ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.2f}" if b else "n/a")' "$1" "$2"; }

{
  echo "### Run of $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB; $(go version | cut -d' ' -f3); $(psql "$pg" -Atc 'show server_version' 2>/dev/null | sed 's/^/PostgreSQL /' || echo 'no PostgreSQL')."
  echo "Command: \`BENCH_DURATION=$dur BENCH_VUS=$vus scripts/bench.sh\` (loadgen closed model, $vus VUs, $dur per run;"
  echo "100% sampling with spans exported over OTLP/HTTP to a local sink unless marked 'tracing off'). Each earn or"
  echo "checkout operation is one activity POST, or cart + 1–3 items + checkout (several HTTP requests)."
  echo
  echo "| measurement | throughput | p50 | p99 | failed |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Ratios: SQLite earn tracing on/off $(ratio "$sqlite_earn" "$sqlite_earn_off"); PostgreSQL earn tracing on/off $(ratio "$pg_earn" "$pg_earn_off");"
  echo "PostgreSQL earn / pgbench TPC-B $(ratio "$pg_earn" "$tpcb")."
  if [ "${BENCH_SKIP_GO:-}" != 1 ]; then
    echo
    echo "Go benchmarks (\`GODWIT_TEST_POSTGRES=… go test -run '^\$' -bench 'BenchmarkEarn|BenchmarkRedeem|BenchmarkCheckout' -benchtime 2s ./internal/...\`):"
    echo
    echo '```'
    GODWIT_TEST_POSTGRES="$pg" go test -run '^$' -bench 'BenchmarkEarn|BenchmarkRedeem|BenchmarkCheckout' -benchtime 2s ./internal/loyalty/ ./internal/checkout/ 2>&1 | grep -E '^(Benchmark|ok|FAIL)'
    echo '```'
  fi
} >"$out"
cat "$out"
