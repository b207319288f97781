package app_test

import (
	"encoding/json"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Two unrelated guests who happen to send the same Idempotency-Key each get
// their own checkout; a guest's retry replays its own (issue 16, fix 8).
func TestGuestsSharingAnIdempotencyKeyDoNotCollide(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: engine, cfg: app.Config{Demo: true}})
			products := r.must("GET", "/v1/products", "", nil, nil)["products"].([]any)
			productID := products[0].(map[string]any)["id"].(string)
			key := idem("guest-shared")
			checkout := func(cart, email string) (int, map[string]any, string, string) {
				body, _ := json.Marshal(map[string]any{"cart_id": cart, "payment": map[string]any{"token": "tok_visa"}, "email": email})
				code, raw, hdr := r.raw("POST", "/v1/checkout", "", body, key)
				var m map[string]any
				_ = json.Unmarshal(raw, &m)
				return code, m, string(raw), hdr.Get("Idempotency-Replayed")
			}
			cartA, cartB := r.cartWith("", productID), r.cartWith("", productID)
			codeA, a, rawA, _ := checkout(cartA, "guest.a@example.test")
			codeB, b, rawB, replayedB := checkout(cartB, "guest.b@example.test")
			if codeA != 201 || codeB != 201 || replayedB != "" {
				t.Fatalf("two guests, one key: %d %s / %d %s", codeA, rawA, codeB, rawB)
			}
			if a["order_id"] == b["order_id"] {
				t.Fatalf("both guests got order %v", a["order_id"])
			}
			code, _, raw, replayed := checkout(cartA, "guest.a@example.test")
			if code != 201 || replayed != "true" || raw != rawA {
				t.Fatalf("guest A's retry: %d replayed=%q %s", code, replayed, raw)
			}
			if code, m, raw, _ := checkout(cartA, "someone.else@example.test"); code != 422 || m["code"] != "idempotency_key_reused" {
				t.Fatalf("same cart and key, other body: %d %s", code, raw)
			}
			var orders int
			if err := r.a.DB.Read().QueryRow(`SELECT COUNT(*) FROM orders`).Scan(&orders); err != nil {
				t.Fatal(err)
			}
			if orders != 2 {
				t.Fatalf("orders = %d, want 2", orders)
			}
		})
	}
}
