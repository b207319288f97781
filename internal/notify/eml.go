package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// FileSender writes each email as an RFC 5322 message, <Dir>/<id>.eml. The
// file name is the message id and is written atomically (temp file + rename),
// so a repeated delivery of one message leaves one file.
type FileSender struct {
	Dir  string
	From string // default "Godwit Shop <shop@godwit.invalid>"
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Send implements Sender.
func (f FileSender) Send(_ context.Context, e Email) error {
	if !safeID.MatchString(e.ID) {
		return errors.New("notify: unsafe message id")
	}
	to, err := mail.ParseAddress(e.To)
	if err != nil {
		return errors.New("notify: invalid recipient address")
	}
	from := f.From
	if from == "" {
		from = "Godwit Shop <shop@godwit.invalid>"
	}
	if err := os.MkdirAll(f.Dir, 0o750); err != nil {
		return fmt.Errorf("notify: mail dir: %w", err)
	}
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", from)
	hdr("To", to.String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", e.Subject))
	hdr("Date", e.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	hdr("Message-ID", "<"+e.ID+"@godwit.invalid>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `text/plain; charset="utf-8"`)
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(e.Text, "\r\n", "\n"), "\n", "\r\n"))); err != nil {
		return fmt.Errorf("notify: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("notify: encode body: %w", err)
	}
	final := filepath.Join(f.Dir, e.ID+".eml")
	tmp, err := os.CreateTemp(f.Dir, ".tmp-"+e.ID+"-*")
	if err != nil {
		return fmt.Errorf("notify: write mail: %w", err)
	}
	if _, err := tmp.Write(b.Bytes()); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("notify: write mail: %w", err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("notify: write mail: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("notify: write mail: %w", err)
	}
	return nil
}
