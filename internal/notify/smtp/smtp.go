// Package smtp is a notify.Sender that delivers confirmations to an SMTP relay,
// built on github.com/wneessen/go-mail.
//
// Each Email becomes one multipart/alternative message with a plain-text part
// (the email's text) and an HTML part derived from it. Its Message-ID is made
// from Email.ID, which the outbox keeps across retries, so a relay (or the
// recipient's mail system) can recognise a repeated delivery as the same
// message. Errors say what failed and the SMTP reply code, never the addresses,
// the server's reply text or the credentials; IsPermanent separates a 5xx
// refusal (retrying will not help) from a 4xx or network failure.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"net"
	"net/mail"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// TLS modes.
const (
	// StartTLS upgrades the connection with STARTTLS and refuses to send if
	// the server does not offer it (usually port 587).
	StartTLS = "starttls"
	// StartTLSOpportunistic uses STARTTLS when offered and plain text otherwise.
	StartTLSOpportunistic = "starttls-opportunistic"
	// ImplicitTLS speaks TLS from the first byte (SMTPS, usually port 465).
	ImplicitTLS = "tls"
	// NoTLS never encrypts; only for a relay on the same host or in tests.
	NoTLS = "none"
)

// Auth mechanisms.
const (
	AuthPlain = "plain"
	AuthLogin = "login"
)

// Config configures the sender.
type Config struct {
	// Addr is the relay's host:port.
	Addr string
	// TLS is one of StartTLS (default), StartTLSOpportunistic, ImplicitTLS, NoTLS.
	TLS string
	// TLSConfig overrides the TLS client configuration (e.g. a private CA);
	// ServerName defaults to Addr's host.
	TLSConfig *tls.Config
	// Username and Password enable SMTP authentication when Username is set.
	// Credentials are only sent over TLS (the library refuses PLAIN/LOGIN on an
	// unencrypted connection), so auth with TLS NoTLS fails.
	Username, Password string
	// Auth is AuthPlain (default) or AuthLogin.
	Auth string
	// From is the sender, e.g. "Godwit Shop <shop@example.com>".
	From string
	// MessageIDDomain is the right-hand side of Message-IDs; default godwit.local.
	MessageIDDomain string
	// HELO is the name sent in EHLO/HELO; default the library's (the hostname).
	HELO string
	// ConnectTimeout bounds the dial and TLS handshake; default 10s.
	ConnectTimeout time.Duration
	// SendTimeout bounds each SMTP command and the whole delivery; default 30s.
	SendTimeout time.Duration
	// Now stamps emails that carry no Date; default time.Now.
	Now func() time.Time
}

// Sender is a notify.Sender over SMTP. It is safe for concurrent use; each Send
// opens its own connection.
type Sender struct {
	cfg  Config
	host string
	port int
	from *mail.Address
}

var _ notify.Sender = (*Sender)(nil)

// New checks cfg and returns a Sender. It does not connect.
func New(cfg Config) (*Sender, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("smtp: address must be host:port")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("smtp: invalid port in address")
	}
	if cfg.TLS == "" {
		cfg.TLS = StartTLS
	}
	switch cfg.TLS {
	case StartTLS, StartTLSOpportunistic, ImplicitTLS, NoTLS:
	default:
		return nil, fmt.Errorf("smtp: TLS mode must be %s, %s, %s or %s", StartTLS, StartTLSOpportunistic, ImplicitTLS, NoTLS)
	}
	if cfg.Auth == "" {
		cfg.Auth = AuthPlain
	}
	if cfg.Auth != AuthPlain && cfg.Auth != AuthLogin {
		return nil, fmt.Errorf("smtp: auth must be %s or %s", AuthPlain, AuthLogin)
	}
	if cfg.Username != "" && cfg.TLS == NoTLS {
		return nil, errors.New("smtp: authentication needs TLS; credentials are never sent in clear text")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, errors.New("smtp: invalid From address")
	}
	if cfg.MessageIDDomain == "" {
		cfg.MessageIDDomain = "godwit.local"
	}
	if !domainPattern.MatchString(cfg.MessageIDDomain) {
		return nil, errors.New("smtp: invalid Message-ID domain")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 30 * time.Second
	}
	defaults.Fill(defaults.Fields{Now: &cfg.Now})
	return &Sender{cfg: cfg, host: host, port: port, from: from}, nil
}

var (
	domainPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)

// MessageID returns the Message-ID (without angle brackets) for an outbox
// message id: the same id always gives the same Message-ID.
func (s *Sender) MessageID(emailID string) string {
	return emailID + "@" + s.cfg.MessageIDDomain
}

// Send implements notify.Sender: one connection, one message.
func (s *Sender) Send(ctx context.Context, e notify.Email) error {
	msg, err := s.build(e)
	if err != nil {
		return err
	}
	client, err := s.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout+s.cfg.SendTimeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(ctx, err)
	}
	return nil
}

// build renders e as a message with a text and an HTML alternative.
func (s *Sender) build(e notify.Email) (*gomail.Msg, error) {
	if !idPattern.MatchString(e.ID) {
		return nil, &Error{Stage: "compose", Permanent: true, reason: "unusable message id"}
	}
	to, err := mail.ParseAddress(e.To)
	if err != nil {
		return nil, &Error{Stage: "compose", Permanent: true, reason: "invalid recipient address"}
	}
	m := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP), gomail.WithNoDefaultUserAgent())
	m.FromMailAddress(s.from)
	m.ToMailAddress(to)
	m.Subject(e.Subject)
	date := e.Date
	if date.IsZero() {
		date = s.cfg.Now()
	}
	m.SetDateWithValue(date)
	m.SetMessageIDWithValue(s.MessageID(e.ID))
	text := strings.ReplaceAll(e.Text, "\r\n", "\n")
	m.SetBodyString(gomail.TypeTextPlain, text)
	m.AddAlternativeString(gomail.TypeTextHTML, TextToHTML(e.Subject, text))
	return m, nil
}

// TextToHTML renders plain text as a minimal HTML document: every character
// escaped, paragraphs at blank lines and line breaks kept. Nothing in the text
// can become markup.
func TextToHTML(title, text string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</title></head>\n<body>\n")
	for para := range strings.SplitSeq(strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n")), "\n\n") {
		para = strings.Trim(para, "\n")
		if para == "" {
			continue
		}
		lines := strings.Split(para, "\n")
		for i, l := range lines {
			lines[i] = html.EscapeString(l)
		}
		b.WriteString("<p>")
		b.WriteString(strings.Join(lines, "<br>\n"))
		b.WriteString("</p>\n")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

func (s *Sender) client() (*gomail.Client, error) {
	tc := s.cfg.TLSConfig
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		tc = tc.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = s.host
	}
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.cfg.SendTimeout),
		gomail.WithTLSConfig(tc),
		gomail.WithDialContextFunc((&net.Dialer{Timeout: s.cfg.ConnectTimeout}).DialContext),
	}
	switch s.cfg.TLS {
	case StartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case StartTLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case ImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case NoTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(s.cfg.HELO))
	}
	if s.cfg.Username != "" {
		mech := gomail.SMTPAuthPlain
		if s.cfg.Auth == AuthLogin {
			mech = gomail.SMTPAuthLogin
		}
		opts = append(opts, gomail.WithSMTPAuth(mech), gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return nil, &Error{Stage: "configure", Permanent: true, reason: "invalid client configuration"}
	}
	return c, nil
}

// Error is a failed delivery. Its text carries the stage, the SMTP reply code
// and enhanced status code when there was one, never addresses, the server's
// reply text or credentials (Unwrap gives the library's error, which may hold
// all three: do not log it).
type Error struct {
	// Stage is where it failed: compose, configure, connect, send.
	Stage string
	// Code is the SMTP reply code (e.g. 451, 550), or 0 without a reply.
	Code int
	// Enhanced is the RFC 3463 enhanced status code (e.g. 5.1.1), if any.
	Enhanced string
	// Permanent reports that a retry cannot succeed.
	Permanent bool
	reason    string
	err       error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("smtp: ")
	b.WriteString(e.Stage)
	b.WriteString(" failed")
	if e.Code != 0 {
		b.WriteString(": reply ")
		b.WriteString(strconv.Itoa(e.Code))
		if e.Enhanced != "" {
			b.WriteString(" " + e.Enhanced)
		}
	}
	if e.reason != "" {
		b.WriteString(": " + e.reason)
	}
	if e.Permanent {
		b.WriteString(" (permanent)")
	} else {
		b.WriteString(" (transient)")
	}
	return b.String()
}

// Unwrap returns the underlying library or network error.
func (e *Error) Unwrap() error { return e.err }

// IsPermanent reports whether err is a delivery failure that retrying will not
// fix: a 5xx reply (unknown mailbox, message refused, authentication rejected)
// or a message that cannot be composed. 4xx replies, timeouts and network
// failures are transient. An error of another kind is treated as transient.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// classify turns a go-mail error into an *Error.
func classify(ctx context.Context, err error) error {
	out := &Error{Stage: "send", err: err}
	if strings.HasPrefix(err.Error(), "dial failed") {
		out.Stage = "connect"
	}
	var se *gomail.SendError
	var te *textproto.Error
	var ne net.Error
	switch {
	case errors.As(err, &se) && se.ErrorCode() != 0:
		out.Code, out.Enhanced = se.ErrorCode(), se.EnhancedStatusCode()
	case errors.As(err, &te):
		out.Code = te.Code
		out.Enhanced = enhancedCode(te.Msg)
	case ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()):
		out.reason = "timed out"
	case errors.As(err, &se):
		out.reason = se.Reason.String()
	default:
		out.reason = "connection or protocol failure"
	}
	out.Permanent = out.Code >= 500 && out.Code < 600
	return out
}

var enhancedPattern = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}\b`)

func enhancedCode(msg string) string { return enhancedPattern.FindString(msg) }
