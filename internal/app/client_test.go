package app_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	godwit "github.com/godwit-dev/godwit/api/client"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestGeneratedClientDrivesTheAPI walks earn → statement → cart → checkout
// with the generated client against a real app held to the document, so the
// client is known to compile, to speak the server's language and to decode
// its answers (a refusal included).
func TestGeneratedClientDrivesTheAPI(t *testing.T) {
	ctx := context.Background()
	a := newTestAppWith(t, app.Config{DSN: dbtest.DSN(t, db.SQLite), Demo: true})
	srv := apitest.Server(t, a.Handler)
	bearer := func(s auth.Scope, sub string) godwit.RequestEditorFn {
		tok, err := a.Keys.Mint(s, sub, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+tok)
			return nil
		}
	}
	c, err := godwit.NewClientWithResponses(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	service := bearer(auth.ScopeService, "airline")

	id := "m_client"
	m, err := c.CreateMemberWithResponse(ctx, nil, godwit.NewMember{Id: &id, Name: "Cli Ent", Email: "cli@example.com"}, service)
	if err != nil || m.JSON201 == nil {
		t.Fatalf("create member: %v %s", err, body(m))
	}
	miles, fare := int64(2475), "Y"
	earn, err := c.PostActivityWithResponse(ctx, id, nil, godwit.Activity{
		Type: godwit.ActivityTypeFlight, ExternalId: "PNR-CLIENT-1",
		Flight: &godwit.FlightDetails{DistanceMiles: &miles, FareClass: &fare},
	}, service)
	if err != nil || earn.JSON201 == nil || earn.JSON201.TotalPointsEarned <= 0 {
		t.Fatalf("post activity: %v %s", err, body(earn))
	}
	st, err := c.GetStatementWithResponse(ctx, id, nil, bearer(auth.ScopeMember, id))
	if err != nil || st.JSON200 == nil || len(st.JSON200.Entries) != 1 || st.JSON200.Entries[0].Points != earn.JSON201.TotalPointsEarned {
		t.Fatalf("statement: %v %s", err, body(st))
	}
	other, err := c.GetStatementWithResponse(ctx, id, nil, bearer(auth.ScopeMember, "someone-else"))
	if err != nil || other.StatusCode() != http.StatusForbidden || other.ApplicationproblemJSONDefault == nil ||
		other.ApplicationproblemJSONDefault.Code != "forbidden" {
		t.Fatalf("another member's statement: %v %s", err, body(other))
	}

	products, err := c.ListProductsWithResponse(ctx)
	if err != nil || products.JSON200 == nil || products.JSON200.Products == nil || len(*products.JSON200.Products) == 0 {
		t.Fatalf("products: %v %s", err, body(products))
	}
	p := (*products.JSON200.Products)[0]
	cart, err := c.CreateCartWithResponse(ctx, godwit.CartInput{})
	if err != nil || cart.JSON201 == nil {
		t.Fatalf("create cart: %v %s", err, body(cart))
	}
	added, err := c.AddCartItemWithResponse(ctx, cart.JSON201.Id, godwit.AddItemInput{ProductId: p.Id, Quantity: 1})
	if err != nil || added.JSON200 == nil || added.JSON200.Total.Amount != p.Price.Amount {
		t.Fatalf("add item: %v %s", err, body(added))
	}
	email := "guest@example.com"
	req := godwit.CheckoutRequest{CartId: cart.JSON201.Id, Email: &email}
	req.Payment.Token = "tok_visa"
	out, err := c.CheckoutWithResponse(ctx, &godwit.CheckoutParams{IdempotencyKey: "client-checkout-1"}, req)
	if err != nil || out.JSON201 == nil || out.JSON201.Status != godwit.CheckoutResultStatusConfirmed {
		t.Fatalf("checkout: %v %s", err, body(out))
	}
}

// body is a generated response's raw body, for a failure message.
func body(r any) string {
	v := reflect.ValueOf(r)
	if v.IsNil() {
		return "<no response>"
	}
	return string(v.Elem().FieldByName("Body").Bytes())
}
