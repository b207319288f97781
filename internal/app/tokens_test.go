package app_test

import (
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestRevokedTokenIsRefusedOnEveryReplica revokes a token through one app and
// finds it refused by another app on the same database.
func TestRevokedTokenIsRefusedOnEveryReplica(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			dsn := dbtest.DSN(t, engine)
			one := newTestAppWith(t, app.Config{DSN: dsn})
			two := newTestAppWith(t, app.Config{DSN: dsn})
			s1, s2 := apitest.Server(t, one.Handler), apitest.Server(t, two.Handler)
			t.Cleanup(s1.Close)
			t.Cleanup(s2.Close)
			c1, c2 := client{t: t, base: s1.URL}, client{t: t, base: s2.URL}
			admin := mint(t, one, auth.ScopeAdmin, "ops")
			svc := mint(t, one, auth.ScopeService, "leaky")

			if code, _ := c2.call("POST", "/v1/members", svc, map[string]any{"name": "A", "email": "a@example.test"}, nil); code != 201 {
				t.Fatalf("service token before revocation: %d", code)
			}
			if code, body := c1.call("POST", "/v1/admin/tokens/revocations", admin, map[string]any{"token": svc}, nil); code != 201 {
				t.Fatalf("revoke: %d %v", code, body)
			}
			// The revoking replica refuses the token at once; another within 1 s
			// (each keeps the revoked set in memory and refreshes it).
			if code, body := c1.call("GET", "/v1/redemption-options", svc, nil, nil); code != 401 || body["code"] != "token_revoked" {
				t.Fatalf("revoked token on the revoking replica: %d %v", code, body)
			}
			deadline := time.Now().Add(time.Second)
			for {
				code, body := c2.call("GET", "/v1/redemption-options", svc, nil, nil)
				if code == 401 && body["code"] == "token_revoked" {
					break
				}
				if code != 200 || time.Now().After(deadline) {
					t.Fatalf("revoked token on the other replica, after up to 1 s: %d %v", code, body)
				}
				time.Sleep(10 * time.Millisecond)
			}
			code, body := c2.call("POST", "/v1/members", svc, map[string]any{"name": "B", "email": "b@example.test"}, nil)
			if code != 401 || body["code"] != "token_revoked" {
				t.Fatalf("revoked token on the other replica: %d %v", code, body)
			}
			if code, _ := c1.call("POST", "/v1/admin/tokens/revocations", admin, map[string]any{"token": "garbage"}, nil); code != 422 {
				t.Fatalf("revoking garbage: %d", code)
			}
			if code, _ := c1.call("POST", "/v1/admin/tokens/revocations", svc, map[string]any{"token": admin}, nil); code != 401 {
				t.Fatalf("a revoked token revoking another: %d", code)
			}
		})
	}
}
