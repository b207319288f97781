#!/usr/bin/env bash
# Build, validate and run a local OpenTelemetry Collector for Godwit.
#
#   scripts/otelcol-local.sh [build]     build the collector (or reuse the cached one); print its path
#   scripts/otelcol-local.sh validate    build if needed, then `validate` deploy/otelcol/config.yaml
#   scripts/otelcol-local.sh start       start it in the background on loopback; print its OTLP/HTTP URL
#   scripts/otelcol-local.sh run         run it in the foreground on loopback
#
#   export GODWIT_OTELCOL=$(scripts/otelcol-local.sh)   # then: go test ./deploy/...
#
# The collector is built with the OpenTelemetry Collector Builder from deploy/otelcol/builder.yaml;
# the builder and every component are pinned to v0.160.0. A build takes minutes, so the binary is
# kept in ${OTELCOL_CACHE_DIR:-~/.cache/godwit/otelcol-v0.160.0}/<hash of the manifest>/ and reused
# while the manifest is unchanged. Build output goes to stderr; stdout carries only the result.
#
# Environment for validate/start/run (the configuration reads these; see its header):
#   OTELCOL_CONFIG            configuration file (default deploy/otelcol/config.yaml)
#   OTELCOL_GRPC_PORT         OTLP/gRPC port on 127.0.0.1 (default 14317)
#   OTELCOL_HTTP_PORT         OTLP/HTTP port on 127.0.0.1 (default 14318)
#   OTELCOL_METRICS_PORT      the collector's own metrics on 127.0.0.1 (default 18888)
#   OTELCOL_TRACES_ENDPOINT   where traces go (default http://127.0.0.1:4318, a local Jaeger)
#   OTELCOL_METRICS_ENDPOINT  where metrics go (default http://127.0.0.1:9090/api/v1/otlp)
#   OTELCOL_PIDFILE           start: pid file (default ${TMPDIR:-/tmp}/godwit-otelcol.pid)
#   OTELCOL_LOG               start: log file (default a temp file)
# Receivers and the metrics endpoint are always bound to 127.0.0.1 by this script.
set -euo pipefail

ocb_version=v0.160.0
root=$(cd "$(dirname "$0")/.." && pwd)
manifest="$root/deploy/otelcol/builder.yaml"
cache_root=${OTELCOL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/godwit/otelcol-${ocb_version}}

hash=$(sha256sum "$manifest" | cut -c1-16)
dir="$cache_root/$hash"
bin="$dir/otelcol-godwit"

log() { echo "otelcol-local: $*" >&2; }

build() {
	if [ -x "$bin" ]; then
		log "using cached $bin"
		return
	fi
	mkdir -p "$cache_root"
	# One build at a time per cache: a second caller waits and then finds the binary.
	exec 9>"$cache_root/.lock"
	flock 9
	if [ -x "$bin" ]; then
		log "using $bin (built meanwhile)"
		exec 9>&-
		return
	fi
	command -v go >/dev/null || { log "Go is not installed"; exit 1; }
	local builder="$cache_root/bin/builder"
	if [ ! -x "$builder" ]; then
		log "installing go.opentelemetry.io/collector/cmd/builder@${ocb_version}"
		# Outside the module, so Godwit's go.mod is not touched.
		(cd "${TMPDIR:-/tmp}" && GOBIN="$cache_root/bin" GOFLAGS=-mod=mod go install "go.opentelemetry.io/collector/cmd/builder@${ocb_version}")
	fi
	local work
	work=$(mktemp -d "$cache_root/build.XXXXXX")
	# The manifest's output_path is relative; build in a scratch directory instead.
	sed "s|^\([[:space:]]*output_path:\).*|\1 $work/src|" "$manifest" >"$work/builder.yaml"
	log "building the collector from $manifest (several minutes on a cold cache)"
	local start=$SECONDS
	if ! (cd "$work" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$builder" --config "$work/builder.yaml" >"$work/build.log" 2>&1); then
		log "build failed; its log:"
		tail -n 60 "$work/build.log" >&2
		exit 1
	fi
	mkdir -p "$dir.tmp.$$"
	mv "$work/src/otelcol-godwit" "$dir.tmp.$$/otelcol-godwit"
	cp "$manifest" "$dir.tmp.$$/builder.yaml"
	rm -rf "$dir"
	mv "$dir.tmp.$$" "$dir"
	rm -rf "$work"
	exec 9>&- # release the lock; a started collector must not inherit it
	log "built $bin in $((SECONDS - start))s"
}

# loopback sets the configuration's variables so nothing listens beyond 127.0.0.1.
loopback() {
	export OTELCOL_BIND=127.0.0.1
	export OTELCOL_GRPC_PORT=${OTELCOL_GRPC_PORT:-14317}
	export OTELCOL_HTTP_PORT=${OTELCOL_HTTP_PORT:-14318}
	export OTELCOL_METRICS_PORT=${OTELCOL_METRICS_PORT:-18888}
	export OTELCOL_TRACES_ENDPOINT=${OTELCOL_TRACES_ENDPOINT:-http://127.0.0.1:4318}
	export OTELCOL_METRICS_ENDPOINT=${OTELCOL_METRICS_ENDPOINT:-http://127.0.0.1:9090/api/v1/otlp}
	config=${OTELCOL_CONFIG:-$root/deploy/otelcol/config.yaml}
}

answers() {
	# An empty OTLP/JSON export is accepted (200) once the HTTP receiver is up.
	curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -d '{}' \
		"http://127.0.0.1:${OTELCOL_HTTP_PORT}/v1/traces" 2>/dev/null
}

case "${1:-build}" in
build)
	build
	echo "$bin"
	;;
validate)
	build
	loopback
	"$bin" validate --config "$config"
	log "$config is valid"
	;;
run)
	build
	loopback
	exec "$bin" --config "$config"
	;;
start)
	build
	loopback
	pidfile=${OTELCOL_PIDFILE:-${TMPDIR:-/tmp}/godwit-otelcol.pid}
	out=${OTELCOL_LOG:-$(mktemp "${TMPDIR:-/tmp}/godwit-otelcol.XXXXXX")}
	nohup "$bin" --config "$config" >"$out" 2>&1 &
	pid=$!
	echo "$pid" >"$pidfile"
	for _ in $(seq 1 150); do
		if answers; then
			log "pid $pid, log $out; stop with: kill \$(cat $pidfile)"
			echo "http://127.0.0.1:${OTELCOL_HTTP_PORT}"
			exit 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			log "the collector exited; its log:"
			cat "$out" >&2
			exit 1
		fi
		sleep 0.1
	done
	log "the collector did not answer within 15s; its log is $out"
	kill "$pid" 2>/dev/null || true
	exit 1
	;;
*)
	sed -n '2,8p' "$0" >&2
	exit 2
	;;
esac
