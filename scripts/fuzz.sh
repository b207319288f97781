#!/usr/bin/env bash
# Runs every Go fuzz target with -fuzz for a fixed time or a fixed number of
# inputs each, one target at a time (go test accepts -fuzz for a single
# package and target). A finding fails the target (the others still run); the
# failing input is saved under the package's testdata/fuzz/<Target>/ and is
# replayed by plain `go test` from then on.
#
#   scripts/fuzz.sh [seconds-per-target | Nx] [target-regexp]
#
#   scripts/fuzz.sh 10              # 10 s per target
#   scripts/fuzz.sh 1000000x        # 1,000,000 inputs per target (go test -fuzztime 1000000x)
#   scripts/fuzz.sh 60 'Body$'      # only the targets matching the regexp
#
# FUZZ_PARALLEL (default 2) sets go test -parallel, the fuzzing workers.
# FUZZ_MINIMIZE (default 200x) sets -fuzzminimizetime: how much each new
# interesting input (and a failing one) is minimized. A count, not a time: Go
# kills and restarts a worker whose minimization runs out of time, and the app
# targets rebuild the app (seconds) in every new worker; Go's default, 60 s,
# stopped a 1,000,000-input FuzzParse run for a minute per new input. A
# failing input is saved either way; minimize it further by hand if need be.
# Prints one line per target with the inputs tried ("execs") and the time.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-10}
only=${2:-.}
if [[ "$budget" =~ ^[0-9]+x$ ]]; then
  fuzztime=$budget # a number of inputs
elif [[ "$budget" =~ ^[0-9]+$ ]]; then
  fuzztime=${budget}s
else
  echo "fuzz.sh: the budget is seconds (10) or a number of inputs (1000000x), not $budget" >&2
  exit 2
fi
parallel=${FUZZ_PARALLEL:-2}
minimize=${FUZZ_MINIMIZE:-200x}
status=0
summary=()
# Every package holding a Fuzz function, and its targets.
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    [[ "$target" =~ $only ]] || continue
    echo "== $pkg $target ($fuzztime, -parallel $parallel) $(date -u +%H:%M:%S)"
    log=$(mktemp)
    start=$(date +%s)
    if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" \
      -parallel "$parallel" >"$log" 2>&1; then
      execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
      summary+=("ok    $target: $execs inputs in $(( $(date +%s) - start )) s")
    else
      status=1
      execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
      summary+=("FAIL  $target: after $execs inputs in $(( $(date +%s) - start )) s")
      tail -n 40 "$log"
    fi
    echo "${summary[-1]}"
    rm -f "$log"
  done
done < <(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' --include='*_test.go' cmd internal | sort)
echo "== fuzz summary ($fuzztime per target)"
printf '%s\n' "${summary[@]}"
exit $status
