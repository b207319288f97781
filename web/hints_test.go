package web_test

import (
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/web"
)

// TestSignInHintsUseTheTokenCommandsSyntax keeps the sign-in hints in step with
// `godwit token [flags] admin|service|member <subject>`.
func TestSignInHintsUseTheTokenCommandsSyntax(t *testing.T) {
	h := web.Handler(web.Config{})
	for asset, want := range map[string]string{
		"/ui/assets/ops.js":    "godwit token admin <name>",
		"/ui/assets/member.js": "godwit token member <id>",
	} {
		body := get(t, h, "GET", asset, "", "").Body.String()
		if !strings.Contains(body, want) {
			t.Errorf("%s lacks the hint %q", asset, want)
		}
		if strings.Contains(body, "godwit token --scope") {
			t.Errorf("%s still shows the nonexistent --scope flag", asset)
		}
	}
}
