package deploytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// binary is the godwit executable, built once for every test here.
var binary string

// root is the repository root (tests run in deploy/deploytest).
var root = filepath.Join("..", "..")

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "godwit-deploytest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "godwit")
	build := exec.Command("go", "build", "-o", binary, "./cmd/godwit")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building godwit:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// process is a child process stopped (SIGTERM, then kill) when the test ends.
type process struct {
	cmd    *exec.Cmd
	stderr *testlog.Buffer
	done   chan error
}

func startProcess(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{cmd: cmd, stderr: &testlog.Buffer{}, done: make(chan error, 1)}
	if cmd.Stderr == nil {
		cmd.Stderr = p.stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// godwit is a running `godwit serve`.
type godwit struct {
	*process
	base string
}

// startGodwit runs `godwit serve --addr 127.0.0.1:0 args...` and waits until it listens.
func startGodwit(t *testing.T, env []string, args ...string) *godwit {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &godwit{process: startProcess(t, cmd)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if after, ok := strings.CutPrefix(sc.Text(), "Godwit listening on "); ok {
				ready <- strings.Fields(after)[0]
			}
		}
	}()
	select {
	case g.base = <-ready:
	case err := <-g.done:
		t.Fatalf("godwit serve %v exited early: %v\nstderr:\n%s", args, err, g.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("godwit serve %v did not start\nstderr:\n%s", args, g.stderr)
	}
	return g
}

// mint runs `godwit token` with the shared secret.
func mint(t *testing.T, secret, scope, subject string) string {
	t.Helper()
	out, err := exec.Command(binary, "token", "--secret", secret, scope, subject).Output()
	if err != nil {
		t.Fatalf("godwit token %s %s: %v", scope, subject, err)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	return lines[len(lines)-1]
}

// call sends a JSON request and decodes a JSON answer.
func call(t *testing.T, method, url, token string, body any, hdr ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
