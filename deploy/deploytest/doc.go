// Package deploytest checks the deployment files in deploy/ against the real thing: the compose
// file and Prometheus configuration against the godwit binary's flags, the dashboard and alert
// queries against the metric names a server serves, and (when GODWIT_OTELCOL names a collector
// built by scripts/otelcol-local.sh) the collector configuration by sending real traffic through
// it. It has no non-test code.
package deploytest
