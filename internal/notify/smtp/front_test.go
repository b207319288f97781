package smtp_test

import (
	"bufio"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
)

// front is a test-only SMTP server on 127.0.0.1 that answers the first
// failFirst connections itself, accepting the whole message and then refusing
// it with reply, and passes every later connection through to next (the
// go-smtp-mock server), which cannot be told to fail only some attempts.
type front struct {
	ln        net.Listener
	next      string
	failFirst int
	reply     string // e.g. "451 4.3.0 Try again later"

	mu         sync.Mutex
	conns      int
	messageIDs []string // Message-ID of each message the front refused
	wg         sync.WaitGroup
}

func newFront(t *testing.T, next string, failFirst int, reply string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{ln: ln, next: next, failFirst: failFirst, reply: reply}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() { _ = ln.Close(); f.wg.Wait() })
	return f
}

func (f *front) addr() string { return f.ln.Addr().String() }

func (f *front) refusedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.messageIDs...)
}

func (f *front) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns++
		n := f.conns
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			if n <= f.failFirst {
				f.refuse(c)
				return
			}
			f.pass(c)
		}()
	}
}

// refuse speaks just enough SMTP to take a message and turn it down.
func (f *front) refuse(c net.Conn) {
	r := bufio.NewReader(c)
	say := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	say("220 front.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-front.test")
			say("250-8BITMIME")
			say("250 ENHANCEDSTATUSCODES")
		case strings.HasPrefix(cmd, "HELO"):
			say("250 front.test")
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), cmd == "RSET", cmd == "NOOP":
			say("250 2.0.0 OK")
		case cmd == "DATA":
			say("354 Go ahead")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				data.WriteString(l)
			}
			if m, err := mail.ReadMessage(strings.NewReader(data.String())); err == nil {
				f.mu.Lock()
				f.messageIDs = append(f.messageIDs, m.Header.Get("Message-ID"))
				f.mu.Unlock()
			}
			say(f.reply)
		case cmd == "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("502 5.5.2 Command not implemented")
		}
	}
}

// pass relays the connection byte for byte to the real test server.
func (f *front) pass(c net.Conn) {
	up, err := net.Dial("tcp", f.next)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
	<-done
}
