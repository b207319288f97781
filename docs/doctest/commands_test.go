package doctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

const (
	// blockTimeout bounds a block that is not marked `serves`: one that runs longer is
	// most likely a server started without the marker.
	blockTimeout = 45 * time.Second
	// serveTimeout bounds how long a `serves` block may take to listen and answer /readyz.
	serveTimeout = 30 * time.Second
)

// prelude is sourced by bash (BASH_ENV) before each block: the block fails at its first
// failing command, an unset variable is an error, and `go run ./cmd/godwit …` runs the binary
// this test built instead of compiling another. BASH_ENV is unset so scripts a block runs
// start as they would in an operator's shell.
//
// A block of a session document gets DOCTEST_SESSION, a file: the prelude sources it (the
// variables the blocks before this one set) and, when the block exits, writes back every
// variable the block's shell has that it did not start with, so the next block sees them.
const prelude = `unset BASH_ENV
set -euo pipefail
go() {
  if [ "${1-}" = run ] && [ "${2-}" = ./cmd/godwit ]; then shift 2; godwit "$@"; else command go "$@"; fi
}
if [ -n "${DOCTEST_SESSION-}" ]; then
  __doctest_session=$DOCTEST_SESSION
  unset DOCTEST_SESSION
  __doctest_before=" $(compgen -v | tr '\n' ' ') "
  if [ -f "$__doctest_session" ]; then . "$__doctest_session"; fi
  __doctest_save() {
    local name
    for name in $(compgen -v); do
      case "$__doctest_before" in *" $name "*) continue ;; esac
      case "$name" in BASH* | _ | __doctest_* | name | FUNCNAME | PIPESTATUS) continue ;; esac
      declare -p "$name"
    done >"$__doctest_session"
  }
  trap __doctest_save EXIT
fi
`

// TestDocumentCommands runs every `sh` block of README.md, docs/operations.md and docs/api.md
// with bash, from the repository root, against a fresh server, and fails naming the block's
// file:line with its output when a command fails. The blocks of a session document (docs/api.md)
// share their shell variables, in order. What a block may assume is in docs/development.md.
func TestDocumentCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the documents' commands are not run (they build and start servers)")
	}
	var all []block
	env := newDocEnv(t)
	for _, d := range documents {
		blocks, err := parseBlocks(root, d.file)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, blocks...)
		if d.session {
			env.sessions[d.file] = filepath.Join(t.TempDir(), "session.sh")
		}
	}
	before := rootEntries(t)
	for _, b := range all {
		if b.lang != "sh" {
			continue
		}
		t.Run(fmt.Sprintf("%s:%d", b.file, b.line), func(t *testing.T) {
			switch b.directive {
			case "skip":
				t.Skipf("%s:%d: doc-test: skip (%s)", b.file, b.line, b.reason)
			case "serves":
				env.runServing(t, b)
			default:
				env.run(t, b)
			}
		})
	}
	for name := range rootEntries(t) {
		if !before[name] {
			t.Errorf("the documents' commands left %s in the repository root: a command writes where it should not (or the block needs GODWIT_DATA_DIR)", name)
			_ = os.RemoveAll(filepath.Join(root, name))
		}
	}
}

// docEnv is what every block runs with: the built binary on PATH and a running server.
type docEnv struct {
	binDir  string
	dataDir string // the server's: `godwit token` there signs with its secret
	api     string // the server's base URL
	prelude string // file holding prelude
	// sessions maps a session document to the file its blocks pass their variables on in.
	sessions map[string]string
}

func newDocEnv(t *testing.T) *docEnv {
	t.Helper()
	tmp := t.TempDir()
	e := &docEnv{binDir: filepath.Join(tmp, "bin"), dataDir: filepath.Join(tmp, "data"), prelude: filepath.Join(tmp, "prelude.sh"), sessions: map[string]string{}}
	build := exec.Command("go", "build", "-o", filepath.Join(e.binDir, "godwit"), "./cmd/godwit")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building godwit: %v\n%s", err, out)
	}
	if err := os.WriteFile(e.prelude, []byte(prelude), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(filepath.Join(e.binDir, "godwit"), "serve", "--addr", "127.0.0.1:0", "--data-dir", e.dataDir)
	srv.Env = cleanEnv()
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &testlog.Buffer{}
	srv.Stdout, srv.Stderr = out, out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() { stopGroup(srv.Process.Pid, done) })
	deadline := time.Now().Add(serveTimeout)
	var err error
	if e.api, err = listening(out, done, deadline); err != nil {
		t.Fatalf("the documents' server: %v\n%s", err, out)
	}
	if code, err := readyz(e.api, time.Until(deadline)); code != http.StatusOK {
		t.Fatalf("the documents' server answers /readyz %d (%v)\n%s", code, err, out)
	}
	return e
}

// listening waits until out says a server listens and returns its base URL. done receives the
// process's exit, and is left holding it.
func listening(out *testlog.Buffer, done chan error, deadline time.Time) (string, error) {
	for {
		if m := listeningRe.FindStringSubmatch(out.String()); m != nil {
			return m[1], nil
		}
		select {
		case err := <-done:
			done <- err
			return "", fmt.Errorf("exited (%v) before a server listened", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no server listening after %v", serveTimeout)
		}
	}
}

// listeningRe finds the address `godwit serve` prints once it listens.
var listeningRe = regexp.MustCompile(`Godwit listening on (\S+)`)

// cleanEnv is this process's environment without the GODWIT_* and OTEL_* settings it may have
// (a block must say what it sets), keeping the test suite's own GODWIT_TEST_*.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if (strings.HasPrefix(kv, "GODWIT_") && !strings.HasPrefix(kv, "GODWIT_TEST_")) || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// command is bash running the block, in its own process group so that stopping it stops
// everything it started. A block that starts a server gets its own empty data directory.
func (e *docEnv) command(t *testing.T, b block, dataDir string) *exec.Cmd {
	// The documents address a local server by its default address; this test's listens elsewhere.
	text := strings.NewReplacer("http://127.0.0.1:8080", e.api, "http://localhost:8080", e.api).Replace(b.text)
	cmd := exec.Command("bash", "-c", text)
	cmd.Dir = root
	cmd.Env = append(cleanEnv(),
		"PATH="+e.binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BASH_ENV="+e.prelude,
		"GODWIT_DATA_DIR="+dataDir,
		"GODWIT_ADDR=127.0.0.1:0", // a server a block starts picks a free port
	)
	if state, ok := e.sessions[b.file]; ok {
		cmd.Env = append(cmd.Env, "DOCTEST_SESSION="+state)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A process the block leaves behind holding its output must not keep Wait waiting.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// run runs a block to its end and fails when it exits non-zero or outlives blockTimeout.
func (e *docEnv) run(t *testing.T, b block) {
	cmd := e.command(t, b, e.dataDir)
	out := &testlog.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer stopGroup(cmd.Process.Pid, done) // and whatever the block left running
	select {
	case err := <-done:
		done <- err
		if err != nil {
			b.fail(t, fmt.Sprintf("failed (%v)", err), out.String())
		}
	case <-time.After(blockTimeout):
		b.fail(t, fmt.Sprintf("still running after %v: a block that starts a server needs <!-- doc-test: serves --> above it", blockTimeout), out.String())
	}
}

// runServing runs a block whose last command is `godwit serve`: it must print that it
// listens, answer /readyz with 200, and exit 0 on SIGINT.
func (e *docEnv) runServing(t *testing.T, b block) {
	cmd := e.command(t, b, t.TempDir())
	out := &testlog.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer stopGroup(cmd.Process.Pid, done)
	deadline := time.Now().Add(serveTimeout)
	base, err := listening(out, done, deadline)
	if err != nil {
		b.fail(t, err.Error(), out.String())
		return
	}
	if code, err := readyz(base, time.Until(deadline)); code != http.StatusOK {
		b.fail(t, fmt.Sprintf("the server it started answers /readyz %d (%v)", code, err), out.String())
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the deferred stopGroup
		if err != nil {
			b.fail(t, fmt.Sprintf("the server exited with %v on SIGINT", err), out.String())
		}
	case <-time.After(15 * time.Second):
		b.fail(t, "the server ignored SIGINT for 15 s", out.String())
	}
}

// readyz polls base/readyz until it answers 200 or within is over.
func readyz(base string, within time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		res, err := http.DefaultClient.Do(req)
		code := 0
		if err == nil {
			code = res.StatusCode
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
		if code == http.StatusOK {
			return code, nil
		}
		select {
		case <-ctx.Done():
			return code, errors.Join(err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fail reports the block by file:line with its commands and output.
func (b block) fail(t *testing.T, what, output string) {
	t.Helper()
	t.Errorf("%s:%d: %s\n--- the block (bash's \"line N\" is line %d+N of %s)\n%s--- its output\n%s",
		b.file, b.line, what, b.line, b.file, b.text, output)
}

// stopGroup stops a process group: SIGINT, then SIGKILL after 10 s. done receives the leader's
// exit and is left holding it.
func stopGroup(pid int, done chan error) {
	select {
	case err := <-done:
		done <- err
		_ = syscall.Kill(-pid, syscall.SIGKILL) // anything the leader left running
		return
	default:
	}
	_ = syscall.Kill(-pid, syscall.SIGINT)
	select {
	case err := <-done:
		done <- err
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		done <- <-done
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// rootEntries lists the repository root, to catch a command that writes there.
func rootEntries(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// TestSessionVariables checks the prelude's session mode on its own (no server): a block
// sees the variables the blocks before it set, values with quotes and newlines intact, and
// a block outside the session sees none of them.
func TestSessionVariables(t *testing.T) {
	tmp := t.TempDir()
	prel := filepath.Join(tmp, "prelude.sh")
	if err := os.WriteFile(prel, []byte(prelude), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(tmp, "session.sh")
	runBlock := func(session bool, text string) (string, error) {
		cmd := exec.Command("bash", "-c", text)
		cmd.Env = append(cleanEnv(), "BASH_ENV="+prel)
		if session {
			cmd.Env = append(cmd.Env, "DOCTEST_SESSION="+state)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := runBlock(true, `one=1; json=$(printf '{"a": "it'"'"'s",\n "b": 2}'); arr=(x "y z")`); err != nil {
		t.Fatalf("first block: %v\n%s", err, out)
	}
	if out, err := runBlock(true, `two=$((one + 1))`); err != nil {
		t.Fatalf("second block: %v\n%s", err, out)
	}
	out, err := runBlock(true, `printf '%s|%s|%s|%s' "$one" "$two" "$json" "${arr[1]}"`)
	if want := "1|2|{\"a\": \"it's\",\n \"b\": 2}|y z"; err != nil || out != want {
		t.Errorf("third block printed %q (%v), want %q", out, err, want)
	}
	if out, err := runBlock(false, `echo "$one"`); err == nil || !strings.Contains(out, "unbound variable") {
		t.Errorf("a block outside the session saw the session's variables: %q (%v)", out, err)
	}
	// A failing block still fails: the exit trap does not swallow its status.
	if _, err := runBlock(true, `false; echo never`); err == nil {
		t.Error("a failing session block exited 0")
	}
}
