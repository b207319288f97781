#!/usr/bin/env bash
# Start stripe-mock on 127.0.0.1 (HTTP and HTTPS), installing it first if
# needed, wait until it answers, and print its HTTP address.
#
#   export GODWIT_TEST_STRIPE_MOCK=$(scripts/stripe-mock.sh)
#   go test ./internal/payment/stripe/
#
# Environment: STRIPE_MOCK_VERSION (default v0.203.0), STRIPE_MOCK_HTTP
# (127.0.0.1:12111), STRIPE_MOCK_HTTPS (127.0.0.1:12112), STRIPE_MOCK_LOG
# (a file for its output; default a temp file). Its pid is written to
# ${STRIPE_MOCK_PIDFILE:-${TMPDIR:-/tmp}/godwit-stripe-mock.pid}; stop it with
# kill "$(cat that-file)". If something already answers as stripe-mock on the
# HTTP address, the script reuses it.
set -euo pipefail

version=${STRIPE_MOCK_VERSION:-v0.203.0}
http_addr=${STRIPE_MOCK_HTTP:-127.0.0.1:12111}
https_addr=${STRIPE_MOCK_HTTPS:-127.0.0.1:12112}
pidfile=${STRIPE_MOCK_PIDFILE:-${TMPDIR:-/tmp}/godwit-stripe-mock.pid}
url="http://${http_addr}"

answers() {
	# stripe-mock names itself in a response header; anything else on the port is not it.
	curl -fsS -o /dev/null -D - -u sk_test_godwit: "${url}/v1/balance" 2>/dev/null | grep -qi '^stripe-mock-version:'
}

if answers; then
	echo "$url"
	exit 0
fi

bin=$(command -v stripe-mock || true)
if [ -z "$bin" ]; then
	gobin=$(go env GOBIN)
	[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
	if [ ! -x "$gobin/stripe-mock" ]; then
		echo "installing github.com/stripe/stripe-mock@${version}" >&2
		# Outside the module, so Godwit's go.mod is not touched.
		(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go install "github.com/stripe/stripe-mock@${version}")
	fi
	bin="$gobin/stripe-mock"
fi

log=${STRIPE_MOCK_LOG:-$(mktemp "${TMPDIR:-/tmp}/stripe-mock.XXXXXX")}
# stripe-mock binds every interface unless told otherwise: give both ports an address.
nohup "$bin" -http-addr "$http_addr" -https-addr "$https_addr" >"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

for _ in $(seq 1 100); do
	if answers; then
		echo "stripe-mock pid $pid, log $log" >&2
		echo "$url"
		exit 0
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "stripe-mock exited; its log:" >&2
		cat "$log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "stripe-mock did not answer at $url within 10s; its log is $log" >&2
kill "$pid" 2>/dev/null || true
exit 1
