#!/usr/bin/env bash
# Runs every Go fuzz target with -fuzz for a fixed time each, one target at a
# time (go test accepts -fuzz for a single package and target). Fails on the
# first finding; the failing input is saved under the package's
# testdata/fuzz/<Target>/ and is replayed by plain `go test` from then on.
#
#   scripts/fuzz.sh [seconds-per-target] [target-regexp]
#
# Prints one line per target with the inputs tried ("execs").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
only=${2:-.}
parallel=${FUZZ_PARALLEL:-2}
status=0
summary=()
# Every package holding a Fuzz function, and its targets.
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    [[ "$target" =~ $only ]] || continue
    echo "== $pkg $target (${seconds}s)"
    log=$(mktemp)
    if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "${seconds}s" -parallel "$parallel" >"$log" 2>&1; then
      execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
      summary+=("ok    $target: $execs inputs")
    else
      status=1
      execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
      summary+=("FAIL  $target: after $execs inputs")
      tail -n 40 "$log"
    fi
    rm -f "$log"
  done
done < <(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' --include='*_test.go' cmd internal | sort)
echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
