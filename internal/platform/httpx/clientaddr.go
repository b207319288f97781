package httpx

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the reverse proxies whose forwarding headers are believed.
// The zero value trusts nobody: the client address is the TCP peer and every
// X-Forwarded-For and Forwarded header is ignored, since any client can send
// them.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads a comma-separated list of CIDR prefixes or single
// addresses ("10.0.0.0/8, 192.0.2.7, ::1"); "" trusts nobody.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an IP address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// String lists the prefixes as ParseTrustedProxies reads them.
func (t TrustedProxies) String() string {
	parts := make([]string, len(t))
	for i, p := range t {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func (t TrustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address of the client that sent r. When the TCP peer is a
// trusted proxy it is the rightmost hop of X-Forwarded-For (or, without that,
// of Forwarded's for= parameters) that is not itself a trusted proxy: the
// hops to the right of it were appended by proxies we trust, while anything to
// its left was written by the client and may be forged. A hop that is not an
// address (obfuscated, "unknown", garbage) ends the walk at the proxy that
// passed it on. From an untrusted peer the headers change nothing.
func (t TrustedProxies) ClientAddr(r *http.Request) string {
	peer := remoteIP(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !t.trusts(peer) {
		return peer.String()
	}
	hops := forwardedHops(r.Header)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := hopAddr(hops[i])
		if !a.IsValid() {
			break
		}
		client = a
		if !t.trusts(a) {
			break
		}
	}
	return client.String()
}

// remoteIP parses a "host:port" peer address.
func remoteIP(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// forwardedHops lists the forwarding chain, nearest the client first, from
// every X-Forwarded-For line, or every Forwarded for= when there is none.
func forwardedHops(h http.Header) []string {
	var hops []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, line := range xff {
			for _, hop := range strings.Split(line, ",") {
				hops = append(hops, strings.TrimSpace(hop))
			}
		}
		return hops
	}
	for _, line := range h.Values("Forwarded") {
		for _, elem := range strings.Split(line, ",") {
			hop := ""
			for _, pair := range strings.Split(elem, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
				if strings.EqualFold(k, "for") {
					hop = strings.Trim(v, `"`)
				}
			}
			hops = append(hops, hop)
		}
	}
	return hops
}

// hopAddr parses one hop: "192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]:4711"
// or "2001:db8::1"; anything else is the zero Addr.
func hopAddr(hop string) netip.Addr {
	if a, err := netip.ParseAddr(hop); err == nil {
		return a.Unmap().WithZone("")
	}
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if strings.HasPrefix(hop, "[") && strings.HasSuffix(hop, "]") {
		if a, err := netip.ParseAddr(hop[1 : len(hop)-1]); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}
