package smtp_test

import (
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	smtpmock "github.com/mocktools/go-smtp-mock/v2"

	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/notify/smtp"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

const (
	recipient = "ada.lovelace@example.com"
	password  = "hunter2-smtp-secret"
)

// mockServer starts go-smtp-mock on 127.0.0.1 and returns it with its address.
func mockServer(t *testing.T) (*smtpmock.Server, string) {
	t.Helper()
	srv := smtpmock.New(smtpmock.ConfigurationAttr{
		HostAddress:              "127.0.0.1",
		MultipleMessageReceiving: true,
		MultipleRcptto:           true,
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv, fmt.Sprintf("127.0.0.1:%d", srv.PortNumber())
}

func newSender(t *testing.T, addr string) *smtp.Sender {
	t.Helper()
	s, err := smtp.New(smtp.Config{Addr: addr, TLS: smtp.NoTLS, From: "Godwit Shop <shop@godwit.test>",
		MessageIDDomain: "mail.godwit.test", HELO: "client.godwit.test", ConnectTimeout: 2 * time.Second, SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const orderText = "Thank you for your order ord_42!\n\n2 x Trail map <1:25k> & compass\nTotal: 59.90 EUR\n\nPoints earned: 599"

// received parses the one message the mock server got.
type received struct {
	Header    mail.Header
	PlainText string
	HTML      string
}

func parseReceived(t *testing.T, raw string) received {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	out := received{Header: m.Header}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			out.PlainText = strings.ReplaceAll(string(b), "\r\n", "\n")
		case "text/html":
			out.HTML = strings.ReplaceAll(string(b), "\r\n", "\n")
		}
	}
	return out
}

func checkMessage(t *testing.T, got received, wantID string, date time.Time) {
	t.Helper()
	h := got.Header
	for k, want := range map[string]string{
		"Message-Id":   "<" + wantID + "@mail.godwit.test>",
		"Mime-Version": "1.0",
	} {
		if h.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "shop@godwit.test" {
		t.Errorf("From = %q", h.Get("From"))
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != recipient {
		t.Errorf("To = %q", h.Get("To"))
	}
	if subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); subj != "Your Godwit order ord_42 — confirmed" {
		t.Errorf("Subject = %q", subj)
	}
	if d, err := h.Date(); err != nil || !d.Equal(date) {
		t.Errorf("Date = %q (%v), want %v", h.Get("Date"), err, date)
	}
	if strings.TrimRight(got.PlainText, "\n") != orderText {
		t.Errorf("text part:\n%q\nwant\n%q", got.PlainText, orderText)
	}
	for _, want := range []string{"Thank you for your order ord_42!", "2 x Trail map &lt;1:25k&gt; &amp; compass<br>", "Total: 59.90 EUR", "<p>Points earned: 599</p>"} {
		if !strings.Contains(got.HTML, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, got.HTML)
		}
	}
	if strings.Contains(got.HTML, "<1:25k>") {
		t.Error("HTML part carries unescaped text")
	}
}

func email(id string, date time.Time) notify.Email {
	return notify.Email{ID: id, To: "Ada Lovelace <" + recipient + ">", Subject: "Your Godwit order ord_42 — confirmed", Text: orderText, Date: date}
}

func TestSendOnce(t *testing.T) {
	srv, addr := mockServer(t)
	date := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	if err := newSender(t, addr).Send(context.Background(), email("msg_once", date)); err != nil {
		t.Fatal(err)
	}
	msgs, err := srv.WaitForMessages(1, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	checkMessage(t, parseReceived(t, msgs[0].MsgRequest()), "msg_once", date)
}

// TestRetriesDeliverOnce is the acceptance: a confirmation queued in the outbox
// and delivered by notify's worker through SMTP arrives exactly once when the
// relay refuses the first two attempts with 451, and every attempt carries the
// same Message-ID.
func TestRetriesDeliverOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		srv, upstream := mockServer(t)
		fr := newFront(t, upstream, 2, "451 4.3.0 Try again later, "+recipient)
		var mu sync.Mutex
		now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

		var id string
		err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			var err error
			id, err = notify.Enqueue(ctx, tx, clock(), notify.Message{Kind: "order_confirmation", Reference: "ord_42",
				To: "Ada Lovelace <" + recipient + ">", Subject: "Your Godwit order ord_42 — confirmed", Body: orderText})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		sender := newSender(t, fr.addr())
		logged := &strings.Builder{}
		w := notify.NewWorker(notify.WorkerConfig{DB: d, Sender: errorLog{sender, logged}, Now: clock, BaseBackoff: time.Minute, MaxAttempts: 5})

		var sent []int
		for range 4 {
			n, err := w.DeliverDue(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, n)
			advance(10 * time.Minute)
		}
		if diff := cmp.Diff([]int{0, 0, 1, 0}, sent); diff != "" {
			t.Errorf("sent per DeliverDue (-want +got):\n%s", diff)
		}
		msgs, err := srv.WaitForMessages(1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Every DeliverDue has returned, so every accepted message is already in the mock.
		if len(srv.Messages()) != 1 {
			t.Fatalf("%d messages arrived, want exactly 1", len(srv.Messages()))
		}
		got := parseReceived(t, msgs[0].MsgRequest())
		checkMessage(t, got, id, time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC))
		want := "<" + id + "@mail.godwit.test>"
		if diff := cmp.Diff([]string{want, want}, fr.refusedIDs()); diff != "" {
			t.Errorf("Message-IDs of the refused attempts (-want +got):\n%s", diff)
		}
		if !strings.Contains(logged.String(), "reply 451 4.3.0") || !strings.Contains(logged.String(), "(transient)") {
			t.Errorf("logged errors %q lack the reply code", logged.String())
		}
		if strings.Contains(logged.String(), recipient) || strings.Contains(logged.String(), "Try again later") {
			t.Errorf("logged errors leak the address or the server text: %q", logged.String())
		}
	})
}

// errorLog records the text of every error the sender returns, the way a
// caller would log it.
type errorLog struct {
	s   *smtp.Sender
	log *strings.Builder
}

func (e errorLog) Send(ctx context.Context, m notify.Email) error {
	err := e.s.Send(ctx, m)
	if err != nil {
		fmt.Fprintln(e.log, err.Error())
	}
	return err
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name, reply   string
		wantPermanent bool
		wantText      string
	}{
		{"mailbox unavailable", "550 5.1.1 <" + recipient + ">: Recipient address rejected", true, "smtp: send failed: reply 550 5.1.1 (permanent)"},
		{"greylisted", "451 4.7.1 Greylisted, please try again", false, "smtp: send failed: reply 451 4.7.1 (transient)"},
		{"mailbox full", "452 4.2.2 Mailbox full for " + recipient, false, "smtp: send failed: reply 452 4.2.2 (transient)"},
		{"policy", "554 5.7.1 Message rejected", true, "smtp: send failed: reply 554 5.7.1 (permanent)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, upstream := mockServer(t)
			fr := newFront(t, upstream, 1, tc.reply)
			err := newSender(t, fr.addr()).Send(context.Background(), email("msg_c", time.Now()))
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := smtp.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("IsPermanent = %v, want %v (%v)", got, tc.wantPermanent, err)
			}
			if err.Error() != tc.wantText {
				t.Errorf("error = %q, want %q", err.Error(), tc.wantText)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		// Port 1 on loopback: nothing listens there.
		s2, err := smtp.New(smtp.Config{Addr: "127.0.0.1:1", TLS: smtp.NoTLS, From: "shop@godwit.test", ConnectTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = s2.Send(context.Background(), email("msg_u", time.Now()))
		if err == nil || smtp.IsPermanent(err) || !strings.HasPrefix(err.Error(), "smtp: connect failed") {
			t.Errorf("err = %v, want a transient connect failure", err)
		}
	})
	t.Run("bad recipient", func(t *testing.T) {
		_, addr := mockServer(t)
		e := email("msg_b", time.Now())
		e.To = "not an address"
		err := newSender(t, addr).Send(context.Background(), e)
		if !smtp.IsPermanent(err) || strings.Contains(err.Error(), "not an address") {
			t.Errorf("err = %v, want permanent without the address", err)
		}
	})
}

func TestConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  smtp.Config
	}{
		{"no port", smtp.Config{Addr: "mail.example.com", From: "a@b.test"}},
		{"bad tls", smtp.Config{Addr: "mail.example.com:587", TLS: "ssl", From: "a@b.test"}},
		{"auth without tls", smtp.Config{Addr: "mail.example.com:25", TLS: smtp.NoTLS, Username: "u", Password: password, From: "a@b.test"}},
		{"bad from", smtp.Config{Addr: "mail.example.com:587", From: "nobody"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := smtp.New(tc.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestTextToHTML(t *testing.T) {
	got := smtp.TextToHTML("A <b>", "Hi <script>alert(1)</script>\nline 2\n\n\"quoted\" & more")
	want := "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>A &lt;b&gt;</title></head>\n<body>\n" +
		"<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;<br>\nline 2</p>\n<p>&#34;quoted&#34; &amp; more</p>\n</body></html>\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
