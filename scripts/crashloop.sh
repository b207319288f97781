#!/usr/bin/env bash
# Crash loop: runs the load generator against `godwit serve`, kills serve with
# SIGKILL at a random moment, restarts it and, right after the restart, checks
# every invariant with `godwit verify --grace 2s`: work a kill interrupted may
# be reported "in flight, settles by T" (a checkout whose lease or retry window
# runs), but any violation fails the loop. Then (unless CRASHLOOP_SETTLE=0) it
# waits for that work to settle with `godwit verify --wait` and requires a clean
# report with nothing left in flight. Repeats [kills] times; fails on the first
# violation, or if serve does not come back. Prints counts at the end.
#
#   scripts/crashloop.sh [kills] [postgres-dsn]
#
# SQLite in a fresh data dir when no DSN is given; with a DSN, give it a
# database (or search_path schema) of its own: the run writes demo data and
# load into it. Serve runs with short reservation, checkout-lease and job
# intervals so that work interrupted by a kill is recovered within seconds, not
# the production 15 and 2 minutes.
#
# Environment:
#   CRASHLOOP_LEASE=3         seconds: --checkout-lease and --reservation-ttl
#   CRASHLOOP_MAX_RUN_MS=4000 the kill comes 1000..max ms into the load (after loadgen's setup)
#   CRASHLOOP_SETTLE=1        0 skips the settle check (verify right after the restart only)
#   CRASHLOOP_KEEP=0          1 keeps the work dir (data, logs) even on success;
#                             it is always kept after a violation
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
dsn=${2:-}
lease=${CRASHLOOP_LEASE:-3}
max_run=${CRASHLOOP_MAX_RUN_MS:-4000}
settle=${CRASHLOOP_SETTLE:-1}
keep=${CRASHLOOP_KEEP:-0}
# The jobs (recovery, reapers) run every second (± jitter); verify allows them
# this long to have run. Without it, verify right after a slow restart (5 s on
# a machine at load 30) can land between the end of a killed checkout's retry
# window and the next recovery pass, and report the checkout, and its charge,
# as violations that the pass a second later settles.
job_grace=2s
work=$(mktemp -d)
bin="$work/godwit"
go build -o "$bin" ./cmd/godwit
port=$(( 20000 + RANDOM % 20000 ))
base="http://127.0.0.1:$port"
db_args=()
[ -n "$dsn" ] && db_args=(--db "$dsn")
serve_pid=
load_pid=
# Counts for the summary.
survived=0
in_flight_seen=0   # "in flight" lines reported by the verify right after a restart
restarts_with_in_flight=0
violations=0
restart_ms_total=0
restart_ms_max=0
settle_ms_total=0
in_setup=0         # kills that came before the load started (loadgen's setup failed or took 30 s)
started=$(date +%s)

now_ms() { date +%s%3N; }

summary() {
  local errors=0 took=$(( $(date +%s) - started ))
  errors=$(grep -c '"level":"ERROR"' "$work/serve.err" 2>/dev/null || true)
  echo "crashloop: summary: engine=$([ -n "$dsn" ] && echo postgres || echo sqlite) kills=$survived/$kills violations=$violations" \
    "in_flight_findings=$in_flight_seen (after $restarts_with_in_flight restarts)" \
    "restart_ms_avg=$(( survived > 0 ? restart_ms_total / survived : 0 )) restart_ms_max=$restart_ms_max" \
    "settle_ms_avg=$(( survived > 0 ? settle_ms_total / survived : 0 )) kills_before_load=$in_setup" \
    "server_error_lines=${errors:-0} duration_s=$took"
  # The server's error log lines (up to five): a kill may interrupt work that
  # logs as it fails, but each is worth reading.
  grep '"level":"ERROR"' "$work/serve.err" 2>/dev/null | head -5 | cut -c1-400 | sed 's/^/crashloop: server error: /' || true
}

cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$violations" -gt 0 ] || [ "$keep" = 1 ]; then
    echo "crashloop: work dir kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

start_serve() {
  "$bin" serve --addr "127.0.0.1:$port" --data-dir "$work/data" "${db_args[@]}" --log-level warn --demo \
    --reservation-ttl "${lease}s" --checkout-lease "${lease}s" --recovery-interval 1s --reaper-interval 1s \
    --hold-reaper-interval 1s --outbox-interval 500ms >>"$work/serve.out" 2>>"$work/serve.err" &
  serve_pid=$!
  for _ in $(seq 1 400); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$serve_pid" 2>/dev/null || { echo "crashloop: serve exited:"; tail -20 "$work/serve.err"; summary; exit 1; }
    sleep 0.05
  done
  echo "crashloop: serve did not become ready"; summary; exit 1
}

# fail reports a violation found after kill $1 by the check named $2, whose
# report is in file $3, and ends the loop.
fail() {
  violations=$(grep -c '^  - ' "$3" || true)
  [ "$violations" -gt 0 ] || violations=1
  echo "crashloop: VIOLATION after kill $1 ($2):"
  cat "$3"
  summary
  exit 1
}

start_serve
token=$("$bin" token --data-dir "$work/data" "${db_args[@]}" admin crashloop)
for i in $(seq 1 "$kills"); do
  "$bin" loadgen --target "$base" --data-dir "$work/data" "${db_args[@]}" --duration 60s --vus 8 --members 20 \
    --no-verify --seed "$i" >"$work/loadgen.$i.out" 2>&1 &
  load_pid=$!
  # The kill lands in the load, not in loadgen's setup (creating and crediting
  # members takes seconds on PostgreSQL): wait for its first progress line,
  # printed one second into the load.
  for _ in $(seq 1 600); do
    grep -q 'req/s' "$work/loadgen.$i.out" 2>/dev/null && break
    kill -0 "$load_pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q 'req/s' "$work/loadgen.$i.out" 2>/dev/null || in_setup=$(( in_setup + 1 ))
  sleep "$(awk -v r="$RANDOM" -v m="$max_run" 'BEGIN { printf "%.3f", (r % (m - 1000)) / 1000 }')"
  kill -KILL "$serve_pid"
  killed_at=$(now_ms)
  wait "$serve_pid" 2>/dev/null || true
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  load_pid=
  start_serve
  ms=$(( $(now_ms) - killed_at ))
  restart_ms_total=$(( restart_ms_total + ms ))
  (( ms > restart_ms_max )) && restart_ms_max=$ms

  # Right after the restart: the interrupted checkouts are in flight (their
  # lease or retry window runs), nothing may be a violation.
  if ! "$bin" verify --target "$base" --token "$token" --grace "$job_grace" >"$work/verify.$i.now" 2>&1; then
    fail "$i" "verify right after the restart, ${ms} ms after the kill" "$work/verify.$i.now"
  fi
  n=$(grep -c '^  in flight: ' "$work/verify.$i.now" || true)
  in_flight_seen=$(( in_flight_seen + n ))
  (( n > 0 )) && restarts_with_in_flight=$(( restarts_with_in_flight + 1 ))

  if [ "$settle" != 0 ]; then
    # The leases run out, the retry window (one more lease) passes and the
    # recovery pass settles what nobody retried; verify --wait polls until
    # nothing is in flight. job_grace lets recovery and the reapers have run.
    t0=$(now_ms)
    if ! "$bin" verify --target "$base" --token "$token" --grace "$job_grace" --wait "$(( 3 * lease + 10 ))s" \
      >"$work/verify.$i.settled" 2>&1; then
      fail "$i" "verify after settling" "$work/verify.$i.settled"
    fi
    if grep -q '^  in flight: ' "$work/verify.$i.settled"; then
      echo "crashloop: work in flight did not settle after kill $i:"
      cat "$work/verify.$i.settled"; violations=1; summary; exit 1
    fi
    settle_ms_total=$(( settle_ms_total + $(now_ms) - t0 ))
  fi
  survived=$i
  ops=$(grep -oE '[0-9]+ operations' "$work/loadgen.$i.out" | head -1 || true)
  echo "crashloop: kill $i/$kills survived: restart ${ms} ms, $n in flight right after" \
    "(${ops:-no operations} of load before the kill)"
done
summary
