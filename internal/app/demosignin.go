package app

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// CodeDemoSignInLocalOnly is the error code (Forbidden) of a demo sign-in that
// did not come straight from a browser on this machine.
const CodeDemoSignInLocalOnly = "demo_sign_in_local_only"

// DemoByDefault says whether serve seeds demo data and offers demo sign-in
// when --demo is not given: on SQLite, where a newcomer first runs Godwit,
// but not on PostgreSQL, where real members live.
func DemoByDefault(dsn string) bool { return !db.IsPostgresDSN(dsn) }

// forwardingHeaders are set by reverse proxies. A request carrying any of
// them, even empty, came through something else on this machine, and that
// something may be serving the whole network.
var forwardingHeaders = []string{"Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Via"}

// demoSignInAllowed decides whether r may use demo sign-in, which mints tokens
// without credentials. Only a browser on this machine talking straight to a
// loopback listener may: the connection is loopback at both ends (a request
// that reached a public address is refused even from this machine), the Host
// header names loopback (a page on another site that rebinds its own name to
// 127.0.0.1 sends its own name: DNS rebinding), and no proxy stands between
// (any forwarding header refuses). Trusted proxies do not relax this.
func demoSignInAllowed(r *http.Request) error {
	refuse := func(why string) error {
		return errs.Coded(errs.Forbidden, CodeDemoSignInLocalOnly, "demo sign-in is only available to a browser on this machine (%s); use a token", why)
	}
	if !loopbackAddr(r.RemoteAddr) {
		return refuse("the connection does not come from loopback")
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || !loopbackAddr(local.String()) {
		return refuse("the request did not reach a loopback address")
	}
	if !loopbackHost(r.Host) {
		return refuse("the Host header does not name localhost")
	}
	for name := range r.Header {
		if strings.HasPrefix(name, "X-Forwarded-") || containsFold(forwardingHeaders, name) {
			return refuse("the request came through a proxy")
		}
	}
	return nil
}

// loopbackAddr says whether a "host:port" address is a loopback IP.
func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// loopbackHost says whether a Host header ("localhost:8080", "127.0.0.1",
// "[::1]:8080") names this machine's loopback interface.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
