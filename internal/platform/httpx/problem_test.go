package httpx_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

func TestReply(t *testing.T) {
	w := httptest.NewRecorder()
	if err := httpx.Reply(w, http.StatusOK, map[string]int{"n": 1}, nil); err != nil || w.Code != http.StatusOK || w.Body.String() != "{\"n\":1}\n" {
		t.Errorf("result: %v, %d %q", err, w.Code, w.Body.String())
	}
	failed := errors.New("boom")
	w = httptest.NewRecorder()
	if err := httpx.Reply(w, http.StatusOK, map[string]int{}, failed); err != failed || w.Body.Len() != 0 {
		t.Errorf("failure: %v, wrote %q", err, w.Body.String())
	}
	if httpx.Created(false) != http.StatusCreated || httpx.Created(true) != http.StatusOK {
		t.Error("Created: want 201, or 200 for a replay")
	}
}
