#!/usr/bin/env bash
# Godwit's benchmark suite: builds the binary, drives it with the load generator on
# SQLite and on PostgreSQL (tracing at 100% sampling, spans exported over OTLP to a
# local sink), runs pgbench on the same server with the same client count so every
# figure can be read as a ratio to what the database itself does, and runs the Go
# benchmarks. Writes a Markdown report (default: bench-results.md) and prints it,
# ending with the figures issue 8 sets and whether each was reached.
#
# Besides earn and checkout spread over many members and products, it measures
# contention on one row at BENCH_HOT_VUS clients: redemptions all by one member
# (loadgen --hot-member) and a flash sale of one product (loadgen --hot-product),
# each compared to pgbench updating one hot row with as many clients.
#
#   scripts/bench.sh [report.md]
#
# Environment: BENCH_DURATION (per load run, default 15s), BENCH_VUS (default 8),
# BENCH_HOT_VUS (default 64), BENCH_FLASH_STOCK (the flash-sale product's stock,
# default 100000: enough to last a run on this machine, so the figure is sales; set it
# low to measure a sell-out, whose 409 insufficient_stock answers are expected),
# GODWIT_BENCH_POSTGRES (a server's DSN; default the local test server; a database
# godwit_bench is created for pgbench), BENCH_SKIP_GO=1 skips the Go benchmarks
# (expiry included), BENCH_EXPIRE_MEMBERS (members BenchmarkExpire expires, default 10000).
#
# Beside each load run's throughput it reports the CPU time per operation of the
# `godwit serve` process and, on PostgreSQL, of the postgres server (postmaster, its
# backends and background processes, including children that exited), read from /proc
# every 250 ms during the load phase — so a reader can tell a CPU-bound figure (the two
# cores full) from a commit-bound one — and, when the server exports the histogram
# godwit_db_write_batch_size, the number and mean size of write batches in the run and
# their distribution over its buckets.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results.md}
dur=${BENCH_DURATION:-15s}
vus=${BENCH_VUS:-8}
hot=${BENCH_HOT_VUS:-64}
flash_stock=${BENCH_FLASH_STOCK:-100000}
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
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | ${6:-} | ${7:-} |"); }
notes=()
pgmaster="" # the postmaster's pid while a PostgreSQL server is measured, else empty

# cpusampler OUT PID [POSTMASTER]: every 250 ms appends "epoch_s serve_ticks pg_ticks"
# (utime+stime in clock ticks; pg_ticks sums the postmaster with its reaped children and
# its live children, 0 without a postmaster) until killed.
cat >"$work/cpusampler.py" <<'PY'
import os, sys, time
out, srv = sys.argv[1], int(sys.argv[2])
pm = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else 0
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # from field 3 (state) on
def ticks(pid, reaped=False):
    f = stat(pid)  # utime, stime, cutime, cstime are fields 14-17
    return int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if reaped else 0)
def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:  # no children file: scan /proc for the parent
        kids = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if int(stat(p)[1]) == pid:
                        kids.append(int(p))
                except (OSError, ValueError, IndexError):
                    pass
        return kids
with open(out, "a", buffering=1) as o:
    while True:
        try:
            t, sv = time.time(), ticks(srv)
        except OSError:
            break
        pg = 0
        if pm:
            try:
                pg = ticks(pm, True)
                for c in children(pm):
                    try:
                        pg += ticks(c)
                    except OSError:
                        pass  # exited: its time is in the postmaster's reaped children's
            except OSError:
                pg = 0
        o.write(f"{t:.4f} {sv} {pg}\n")
        time.sleep(0.25)
PY

# runstats REPORT CPULOG METRICS_BEFORE METRICS_AFTER → prints two table cells (CPU per
# operation; write batches) and a note on the batch size distribution ("-" when absent)
cat >"$work/runstats.py" <<'PY'
import json, os, re, sys, datetime
rep, cpulog, mbefore, mafter = sys.argv[1:5]
r = json.load(open(rep)); t = r["total"]; ops = t["count"]
st = r["started"]
m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", st)
frac = float("0" + (m.group(2) or ".0"))
start = datetime.datetime.fromisoformat(m.group(1) + m.group(3).replace("Z", "+00:00")).timestamp() + frac
end = start + r["elapsed_s"]
hz = os.sysconf("SC_CLK_TCK")
samples = []
if os.path.exists(cpulog):
    for line in open(cpulog):
        p = line.split()
        if len(p) == 3:
            samples.append((float(p[0]), int(p[1]), int(p[2])))
inner = [s for s in samples if start <= s[0] <= end]
cpu = "-"
if len(inner) >= 2 and ops > 0 and inner[-1][0] > inner[0][0]:
    (t1, s1, p1), (t2, s2, p2) = inner[0], inner[-1]
    srv_cores = (s2 - s1) / hz / (t2 - t1)  # CPU rate over the inner window, in cores
    pg_cores = (p2 - p1) / hz / (t2 - t1)
    per_op = lambda cores: cores * r["elapsed_s"] * 1000 / ops
    cpu = f"{per_op(srv_cores):.2f} ms"
    if p1 or p2:
        cpu += f" + {per_op(pg_cores):.2f} ms"
    cpu += f" ({srv_cores + pg_cores:.1f} cores)"
def hist(path):
    # godwit_db_write_batch_size{_unit}_bucket/_sum/_count, summed over label sets
    b, s, c = {}, 0.0, 0.0
    if not os.path.exists(path):
        return None
    found = False
    for line in open(path):
        mm = re.match(r"godwit_db_write_batch_size(?:_[a-z]+)?_(bucket|sum|count)(\{[^}]*\})?\s+(\S+)", line)
        if not mm:
            continue
        found = True
        v = float(mm.group(3))
        if mm.group(1) == "bucket":
            le = re.search(r'le="([^"]+)"', mm.group(2) or "").group(1)
            b[le] = b.get(le, 0.0) + v
        elif mm.group(1) == "sum":
            s += v
        else:
            c += v
    return (b, s, c) if found else None
after = hist(mafter)
batches, note = "-", "-"
if after:
    before = hist(mbefore) or ({}, 0.0, 0.0)
    n = after[2] - before[2]
    if n > 0:
        mean = (after[1] - before[1]) / n
        batches = f"{int(n)} × {mean:.1f}"
        les = sorted(after[0], key=lambda k: float("inf") if k == "+Inf" else float(k))
        prev, parts = 0.0, []
        for le in les:
            cum = after[0][le] - before[0].get(le, 0.0)
            if cum - prev > 0:
                parts.append(f"{'≤' + le if le != '+Inf' else '>' + les[-2]}: {100 * (cum - prev) / n:.0f}%")
            prev = cum
        note = f"{int(n)} write batches, mean size {mean:.1f} requests ({', '.join(parts)})"
print(cpu, batches, note, sep="\t")
PY

# start_server NAME DSN SAMPLER → sets $base, $srvpid, $datadir
start_server() {
  local name=$1 dsn=$2 sampler=$3
  datadir="$work/$name-data"
  local port=$(( 20000 + RANDOM % 10000 ))
  # Default rate limits: loadgen's load-test pass exempts its requests from them.
  # --demo: the demo catalogue and members loadgen drives (on by default only with SQLite).
  local args=(serve --addr "127.0.0.1:$port" --data-dir "$datadir" --log-level error --demo)
  [ -n "$dsn" ] && args+=(--db "$dsn")
  local t0; t0=$(date +%s%N)
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sinkport" OTEL_TRACES_SAMPLER="$sampler" \
    "$work/godwit" "${args[@]}" >"$work/$name.out" 2>"$work/$name.err" &
  srvpid=$!
  pids+=($srvpid)
  base="http://127.0.0.1:$port"
  # Up to 30 s: a fresh PostgreSQL schema runs every migration first.
  local ready=0
  for _ in $(seq 1 1500); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && { ready=1; break; }
    kill -0 "$srvpid" 2>/dev/null || break
    sleep 0.02
  done
  ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ "$ready" != 1 ]; then
    echo "$name server not ready after ${ready_ms} ms:" >&2; tail -5 "$work/$name.err" >&2
    exit 1
  fi
}

stop_server() { kill -INT "$srvpid" 2>/dev/null || true; wait "$srvpid" 2>/dev/null || true; }

# load LABEL MIX VUS [extra loadgen flags] → appends a row (failures named by
# problem code; CPU per operation; write batches) and notes on any rejections and the
# batch size distribution; sets $tput, $errs, $s5xx, $count, $rejected
load() {
  local label=$1 mix=$2 n=$3; shift 3
  rm -f "$work/r.json" "$work/cpu.log" "$work/m.before" "$work/m.after"
  curl -fsS "$base/metrics" >"$work/m.before" 2>/dev/null || true
  python3 "$work/cpusampler.py" "$work/cpu.log" "$srvpid" "$pgmaster" &
  local sampler=$!
  "$work/godwit" loadgen --target "$base" --data-dir "$datadir" --duration "$dur" --vus "$n" \
    --members 400 --mix "$mix" --decline-share -1 --no-verify --json "$work/r.json" "$@" >/dev/null 2>"$work/loadgen.err" \
    || { echo "loadgen failed for $label:" >&2; tail -5 "$work/loadgen.err" >&2; }
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  curl -fsS "$base/metrics" >"$work/m.after" 2>/dev/null || true
  if [ ! -s "$work/r.json" ]; then # no report at all: setup failed
    tput=0 errs=1 s5xx=0 count=0 rejected=0 last_p99=n/a
    row "$label" "-" "" "" "no report: $(tail -1 "$work/loadgen.err")"
    return
  fi
  local p50 p99 fails codes cpu batches bnote
  read -r tput p50 p99 errs s5xx count rejected fails codes < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); t=r["total"]
fmt=lambda m: ",".join(f"{k}={v}" for k,v in sorted(m.items(), key=lambda kv: -kv[1])) or "-"
print(round(t["throughput_per_s"]), t["p50_ms"], t["p99_ms"], t["errors"], t["status_5xx"], t["count"],
      t["rejected"], fmt(t["failures_by_code"]), fmt(t["errors_by_code"]))' "$work/r.json")
  IFS=$'\t' read -r cpu batches bnote < <(python3 "$work/runstats.py" "$work/r.json" "$work/cpu.log" "$work/m.before" "$work/m.after")
  local failed=$errs
  [ "$errs" != 0 ] && failed="**$errs** ($fails)"
  row "$label" "$tput/s" "$p50 ms" "$p99 ms" "$failed" "$cpu" "$batches"
  last_p99=$p99
  [ "$rejected" != 0 ] && notes+=("$label: $rejected of $count rejected as expected business outcomes ($codes).")
  [ "$bnote" != "-" ] && notes+=("$label: $bnote.")
  return 0
}

# hot_loads ENGINE → the two one-row contention runs at $hot clients; sets
# ${ENGINE}_redeem_hot and ${ENGINE}_flash (throughputs) and ${ENGINE}_redeem_ok and
# ${ENGINE}_flash_ok (1: no failure and no 5xx, only expected rejections)
hot_loads() {
  local engine=$1 name
  name=SQLite; [ "$engine" = pg ] && name=PostgreSQL
  load "$name hot-member redemption, $hot VUs" redeem=100 "$hot" --hot-member
  printf -v "${engine}_redeem_hot" %s "$tput"
  printf -v "${engine}_redeem_ok" %s "$(clean)"
  load "$name flash sale (one product), $hot VUs" checkout=100 "$hot" --hot-product --hot-product-stock "$flash_stock"
  printf -v "${engine}_flash" %s "$tput"
  printf -v "${engine}_flash_ok" %s "$(clean)"
  notes+=("$name flash sale: $((count - rejected)) of the $flash_stock units sold.")
}
clean() { if [ "$errs" = 0 ] && [ "$s5xx" = 0 ]; then echo 1; else echo 0; fi; }

pgbench_tps() { # CLIENTS [extra args]
  local c=$1; shift
  pgbench -n -c "$c" -j 2 -T "$secs" "$@" "$pgb" 2>/dev/null | awk '/^tps/ {print int($3)}'
}

# tracing_pairs ENGINE NAME → earn with tracing on and off on fresh servers (a fresh
# schema each on PostgreSQL), alternating, twice, so the shared machine's drift falls
# on both sides. Sets ${ENGINE}_earn and ${ENGINE}_earn_off: the means of the on and
# of the off runs, from which the earn targets and the tracing ratio are read.
tracing_pairs() {
  local engine=$1 name=$2 on=0 off=0 pair sampler label dsn sch
  for pair in 1 2; do
    for sampler in always_on always_off; do
      dsn=""; sch=""
      if [ "$engine" = pg ]; then
        sch="bench_$$_${sampler}_$pair"
        psql "$pg" -qc "CREATE SCHEMA $sch" >/dev/null
        dsn="${pg}${sep}search_path=$sch"
      fi
      start_server "$engine-$sampler-$pair" "$dsn" "$sampler"
      [ "$engine" = pg ] && pgmaster=$(postmaster_pid)
      label="tracing on"; [ "$sampler" = always_off ] && label="tracing off"
      load "$name earn, $vus VUs, $label (pair $pair)" earn=100 "$vus"
      if [ "$sampler" = always_on ]; then on=$((on + ${tput:-0})); else off=$((off + ${tput:-0})); fi
      stop_server
      pgmaster=""
      [ -n "$sch" ] && psql "$pg" -qc "DROP SCHEMA $sch CASCADE" >/dev/null
    done
  done
  printf -v "${engine}_earn" %s "$((on / 2))"
  printf -v "${engine}_earn_off" %s "$((off / 2))"
}
sep='?'; case "$pg" in *\?*) sep='&';; esac
# postmaster_pid → the local PostgreSQL server's postmaster (the checkpointer's parent),
# or nothing when the server is not on this machine (then only serve's CPU is reported)
postmaster_pid() {
  local ck; ck=$(psql "$pg" -Atc "select pid from pg_stat_activity where backend_type = 'checkpointer'" 2>/dev/null || true)
  [ -n "$ck" ] && [ -r "/proc/$ck/status" ] && awk '/^PPid:/ {print $2}' "/proc/$ck/status"
  return 0
}

echo "SQLite..." >&2
start_server sqlite "" always_on
sqlite_ready=$ready_ms
row "serve ready on an empty SQLite data dir" "${ready_ms} ms" "" "" ""
load "SQLite earn, $vus VUs (first run on a fresh server)" earn=100 "$vus"; sqlite_earn_p99=$last_p99
load "SQLite checkout, $vus VUs" checkout=100 "$vus"; sqlite_checkout=$tput; sqlite_checkout_p99=$last_p99
rss=$(ps -o rss= -p "$srvpid" | tr -d ' ')
rss_mb=$((rss / 1024))
row "SQLite resident memory after load" "$rss_mb MB" "" "" ""
hot_loads sqlite
stop_server
tracing_pairs sqlite SQLite
pg_earn=0; pg_earn_off=0; tpcb=0; hotrow=0; pg_checkout=0; pg_redeem_hot=0; pg_flash=0; pg_redeem_ok=0; pg_flash_ok=0; pg_earn_p99=n/a; pg_checkout_p99=n/a
if psql "$pg" -qc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL..." >&2
  schema="bench_$$"
  psql "$pg" -qc "CREATE SCHEMA $schema" >/dev/null
  dsn="${pg}${sep}search_path=$schema"
  start_server pg "$dsn" always_on
  pgmaster=$(postmaster_pid)
  load "PostgreSQL earn, $vus VUs (first run on a fresh schema)" earn=100 "$vus"; pg_earn_p99=$last_p99
  load "PostgreSQL checkout, $vus VUs" checkout=100 "$vus"; pg_checkout=$tput; pg_checkout_p99=$last_p99
  hot_loads pg
  stop_server
  pgmaster=""
  psql "$pg" -qc "DROP SCHEMA $schema CASCADE" >/dev/null
  tracing_pairs pg PostgreSQL

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

# Expiry: BenchmarkExpire expires BENCH_EXPIRE_MEMBERS members (seeded outside the timer).
expire_n=${BENCH_EXPIRE_MEMBERS:-10000}
expire_sqlite=n/a; expire_pg=n/a; expire_out=""
if [ "${BENCH_SKIP_GO:-}" != 1 ]; then
  echo "expiry benchmark..." >&2
  expire_out=$(GODWIT_TEST_POSTGRES="$pg" go test -run '^$' -bench BenchmarkExpire -benchtime "${expire_n}x" ./internal/loyalty/ 2>&1 | grep -E '^Benchmark' || true)
  members_per_s() { awk -v pat="$1" '$0 ~ pat { for (i = 2; i <= NF; i++) if ($i == "members/s") print int($(i-1)) }' <<<"$expire_out"; }
  expire_sqlite=$(members_per_s 'Expire/sqlite'); expire_sqlite=${expire_sqlite:-n/a}
  expire_pg=$(members_per_s 'Expire/postgres'); expire_pg=${expire_pg:-n/a}
  row "SQLite expiry, $expire_n members (BenchmarkExpire)" "$expire_sqlite members/s" "" "" ""
  row "PostgreSQL expiry, $expire_n members (BenchmarkExpire)" "$expire_pg members/s" "" "" ""
fi

ratio() { python3 -c '
import sys
try: a,b=float(sys.argv[1]),float(sys.argv[2])
except ValueError: a,b=0,0
print(f"{a/b:.2f}" if b else "n/a")' "$1" "$2"; }
# meets VALUE OP LIMIT (OP is >= or <) → yes, **no**, or n/a when VALUE is n/a
meets() {
  python3 -c '
import sys; v,op,lim=sys.argv[1:]
if v in ("n/a", "") or lim == "": print("n/a"); sys.exit()
v=float(v); lim=float(lim)
ok={">=": v>=lim, "<": v<lim, "<=": v<=lim}[op]
print("yes" if ok else "**no**")' "$1" "$2" "$3"
}
# both A B → yes when both are yes
both() { if [ "$1" = yes ] && [ "$2" = yes ]; then echo yes; elif [ "$1" = n/a ] || [ "$2" = n/a ]; then echo n/a; else echo "**no**"; fi; }
# hot_verdict RATIO OK MIN → the hot-row target: only expected rejections and ≥ MIN × the hot row
hot_verdict() {
  local r; r=$(meets "$1" ">=" "$3")
  if [ "$2" != 1 ]; then echo "**no** (failures)"; else echo "$r"; fi
}

{
  echo "### Run of $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB; $(go version | cut -d' ' -f3); $(psql "$pg" -Atc 'show server_version' 2>/dev/null | sed 's/^/PostgreSQL /' || echo 'no PostgreSQL')."
  echo "Command: \`BENCH_DURATION=$dur BENCH_VUS=$vus BENCH_HOT_VUS=$hot BENCH_FLASH_STOCK=$flash_stock scripts/bench.sh\` (loadgen closed model,"
  echo "$vus VUs, or $hot for the hot-row runs, $dur per run; 100% sampling with spans exported over OTLP/HTTP to a local sink"
  echo "unless marked 'tracing off'). Each earn or checkout operation is one activity POST, or cart + 1–3 items + checkout"
  echo "(several HTTP requests). Hot-member redemption: every redemption (one POST) is by one member, credited 10⁹ points"
  echo "first (\`loadgen --hot-member\`). Flash sale: every checkout is cart + 1 unit of one product + checkout, the product"
  echo "stocked with $flash_stock units (\`loadgen --hot-product\`)."
  echo
  echo "CPU/op: CPU time per operation of \`godwit serve\` (+ the PostgreSQL server's, all its processes, on"
  echo "PostgreSQL runs), from /proc over the load phase; in brackets the cores both kept busy (this machine has"
  echo "$(nproc), shared with the load generator). Write batches: number × mean size, from godwit_db_write_batch_size."
  echo
  echo "| measurement | throughput | p50 | p99 | failed | CPU/op: serve + PostgreSQL | write batches |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  if [ "${#notes[@]}" -gt 0 ]; then
    echo "Notes (rejections are expected business answers such as 409 insufficient_stock, not failures):"
    printf -- '- %s\n' "${notes[@]}"
    echo
  fi
  tr_sqlite=$(ratio "$sqlite_earn" "$sqlite_earn_off"); tr_pg=$(ratio "$pg_earn" "$pg_earn_off")
  earn_pg=$(ratio "$pg_earn" "$tpcb"); checkout_pg=$(ratio "$pg_checkout" "$tpcb")
  redeem_hot_pg=$(ratio "$pg_redeem_hot" "$hotrow"); flash_pg=$(ratio "$pg_flash" "$hotrow")
  echo "Earn figures below are the means of the two tracing-on runs of the alternating pairs."
  echo "Ratios: SQLite earn tracing on/off $tr_sqlite; PostgreSQL earn tracing on/off $tr_pg (means of two alternating pairs each);"
  echo "PostgreSQL earn / pgbench TPC-B $earn_pg; PostgreSQL checkout / pgbench TPC-B $checkout_pg;"
  echo "PostgreSQL hot-member redemption / pgbench hot row $redeem_hot_pg; PostgreSQL flash sale / pgbench hot row $flash_pg"
  echo "(SQLite against the same hot row, for reference: redemption $(ratio "$sqlite_redeem_hot" "$hotrow"), flash sale $(ratio "$sqlite_flash" "$hotrow"))."
  echo
  echo "Against the figures issue 14 sets (this run):"
  echo
  echo "| target | measured | reached? |"
  echo "|---|---|---|"
  echo "| Earn, PostgreSQL, $vus clients ≥ 1.0 × pgbench TPC-B $vus clients | $earn_pg × ($pg_earn/s vs $tpcb tps) | $(meets "$earn_pg" ">=" 1.0) |"
  echo "| Earn, SQLite, $vus clients ≥ 5,000/s | $sqlite_earn/s | $(meets "$sqlite_earn" ">=" 5000) |"
  echo "| Checkout, PostgreSQL ≥ 0.2 × pgbench TPC-B | $checkout_pg × ($pg_checkout/s) | $(meets "$checkout_pg" ">=" 0.2) |"
  echo "| Checkout, SQLite ≥ 1,000/s | $sqlite_checkout/s | $(meets "$sqlite_checkout" ">=" 1000) |"
  echo "| Hot-member redemption ($hot clients): only 409/422, ≥ 1.0 × pgbench hot row | PostgreSQL $redeem_hot_pg × ($pg_redeem_hot/s vs $hotrow tps) | $(hot_verdict "$redeem_hot_pg" "$pg_redeem_ok" 1.0) |"
  echo "| Flash sale on one product ($hot clients): only 409/422, ≥ 0.5 × pgbench hot row | PostgreSQL $flash_pg × ($pg_flash/s vs $hotrow tps) | $(hot_verdict "$flash_pg" "$pg_flash_ok" 0.5) |"
  echo "| Expiry ≥ 50,000 members/s, a span per member | SQLite $expire_sqlite/s, PostgreSQL $expire_pg/s | $(both "$(meets "$expire_sqlite" ">=" 50000)" "$(meets "$expire_pg" ">=" 50000)") |"
  echo "| Tracing cost: 100% sampling ≥ 0.95 × tracing off | SQLite $tr_sqlite, PostgreSQL $tr_pg | $(both "$(meets "$tr_sqlite" ">=" 0.95)" "$(meets "$tr_pg" ">=" 0.95)") |"
  echo "| p99 at $vus clients no worse than before issue 14 (run of 2026-11-22: earn 16.6 / 22.9 ms, checkout 50.1 / 115.5 ms, SQLite / PostgreSQL) | earn $sqlite_earn_p99 / $pg_earn_p99 ms, checkout $sqlite_checkout_p99 / $pg_checkout_p99 ms | $(both "$(both "$(meets "$sqlite_earn_p99" "<=" 16.6)" "$(meets "$pg_earn_p99" "<=" 22.9)")" "$(both "$(meets "$sqlite_checkout_p99" "<=" 50.1)" "$(meets "$pg_checkout_p99" "<=" 115.5)")") |"
  echo "| \`serve\` ready < 1 s on an empty SQLite dir; resident memory < 150 MB | $sqlite_ready ms; $rss_mb MB | $(both "$(meets "$sqlite_ready" "<" 1000)" "$(meets "$rss_mb" "<" 150)") |"
  if [ "${BENCH_SKIP_GO:-}" != 1 ]; then
    echo
    echo "Go benchmarks (\`GODWIT_TEST_POSTGRES=… go test -run '^\$' -bench 'BenchmarkEarn|BenchmarkRedeem|BenchmarkCheckout' -benchtime 2s ./internal/loyalty/ ./internal/checkout/\`, then \`-bench BenchmarkExpire -benchtime ${expire_n}x ./internal/loyalty/\`):"
    echo
    echo '```'
    GODWIT_TEST_POSTGRES="$pg" go test -run '^$' -bench 'BenchmarkEarn|BenchmarkRedeem|BenchmarkCheckout' -benchtime 2s ./internal/loyalty/ ./internal/checkout/ 2>&1 | grep -E '^(Benchmark|ok|FAIL)'
    echo "$expire_out"
    echo '```'
  fi
} >"$out"
cat "$out"
