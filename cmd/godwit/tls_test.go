package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// and its key as PEM files and returns their paths and the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "godwit test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestServeTLS serves HTTPS with a generated self-signed certificate: a
// client that trusts it gets answers over TLS (HTTP/2), one that does not
// is refused at the handshake, plain HTTP to the port gets no API, and a
// godwit client command trusts it through SSL_CERT_FILE — as split-mode
// peers with https URLs do.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, cert := selfSigned(t)
	s := startServer(t, []string{"GODWIT_TLS_KEY=" + keyFile}, "--data-dir", t.TempDir(), "--tls-cert", certFile, "--log-level", "warn")
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("serve announced %s, want an https URL", s.base)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	res, err := trusting.Get(s.base + "/v1/admin/traces?limit=1")
	if err != nil {
		t.Fatalf("HTTPS with the certificate trusted: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || res.TLS == nil || !res.TLS.HandshakeComplete || res.ProtoMajor != 2 {
		t.Fatalf("HTTPS answer: %d %s TLS=%v %s", res.StatusCode, res.Proto, res.TLS != nil, body)
	}
	req, _ := http.NewRequest("GET", s.base+"/v1/admin/traces", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if res, err := trusting.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("admin call over HTTPS: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	if _, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.base + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the certificate: %v, want a certificate error", err)
	}
	plain := "http://" + strings.TrimPrefix(s.base, "https://")
	if res, err := http.Get(plain + "/healthz"); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "ok") {
			t.Errorf("plain HTTP to the HTTPS port: %d %s", res.StatusCode, b)
		}
	}

	cmd := exec.Command(binary, "verify", "--target", s.base, "--token", s.token)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "verify: ok") {
		t.Errorf("verify --target over HTTPS with SSL_CERT_FILE: %v\n%s", err, out)
	}
	if err, _ := s.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}
}

// --tls-cert and --tls-key go together, and bad files are refused at start.
func TestServeTLSFlags(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"cert only", nil, []string{"--tls-cert", certFile}, "go together"},
		{"key only, from the environment", map[string]string{"GODWIT_TLS_KEY": keyFile}, nil, "go together"},
		{"missing file", nil, []string{"--tls-cert", certFile + ".nope", "--tls-key", keyFile}, "no such file"},
		{"key and cert swapped", nil, []string{"--tls-cert", keyFile, "--tls-key", certFile}, "--tls-cert"},
		{"both", nil, []string{"--tls-cert", certFile, "--tls-key", keyFile}, ""},
		{"both from the environment", map[string]string{"GODWIT_TLS_CERT": certFile, "GODWIT_TLS_KEY": keyFile}, nil, ""},
		{"neither", nil, nil, ""},
	} {
		f, err := serveConfig(t, c.env, append([]string{"--data-dir", t.TempDir()}, c.args...)...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		case c.want == "" && (f.tls != nil) != (len(c.args) > 0 || len(c.env) > 0):
			t.Errorf("%s: TLS config %v", c.name, f.tls != nil)
		}
	}
}

// TestSplitPeerOverHTTPS: a split-mode peer served over HTTPS is called at
// its https URL; the caller trusts the certificate through SSL_CERT_FILE.
// The cart process asks the catalog process for the price of what is added.
func TestSplitPeerOverHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	certFile, keyFile, _ := selfSigned(t)
	dataDir := t.TempDir()
	catalog := startServer(t, nil, "--data-dir", dataDir, "--services", "catalog", "--tls-cert", certFile, "--tls-key", keyFile, "--log-level", "warn")
	cart := startServer(t, []string{"SSL_CERT_FILE=" + certFile}, "--data-dir", dataDir, "--services", "cart",
		"--peer", "catalog="+catalog.base, "--log-level", "warn")
	post := func(path, body string) (int, string) {
		t.Helper()
		res, err := http.Post(cart.base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := post("/v1/carts", `{}`)
	if code != http.StatusCreated {
		t.Fatalf("create cart: %d %s", code, body)
	}
	id := strings.Split(strings.SplitN(body, `"id":"`, 2)[1], `"`)[0]
	if code, body := post("/v1/carts/"+id+"/items", `{"product_id":"prod_demo_backpack","quantity":1}`); code != http.StatusOK || !strings.Contains(body, "prod_demo_backpack") {
		t.Fatalf("add an item (the price comes from the HTTPS catalog): %d %s", code, body)
	}
	for _, s := range []*server{cart, catalog} {
		if err, _ := s.stop(t); err != nil {
			t.Fatalf("exit: %v\n%s", err, s.stderr)
		}
	}
}
