package loyalty

// Pure fuzz targets of the request bodies that move points: each feeds
// arbitrary bytes through the code a handler runs to turn a request into a
// checked domain value (httpx.Decode on a request like the API's, then the
// checks that need no database), thousands of inputs a second. The app's
// FuzzActivityBody, FuzzRedemptionBody and FuzzTransferBody send bodies
// through the whole app instead, a few dozen a second.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/cardnum"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// fzMember is the member whose endpoints the targets post to.
const fzMember = "m-fuzz-self"

// fzRequest is a POST with body as the API hands it to a handler: a JSON
// content type, the route's body limit (httpx.DefaultMaxBody), the caller's
// principal in the context and, when key is not empty, an Idempotency-Key.
func fzRequest(path string, body []byte, p *auth.Principal, key string) *http.Request {
	r := httptest.NewRequest("POST", path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, httpx.DefaultMaxBody)
	if p != nil {
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
	}
	return r
}

// fzRefusal asserts err is a refusal a client can act on: a typed error
// whose kind maps to a 4xx status, with a code. It returns a summary for
// comparing two refusals.
func fzRefusal(t *testing.T, err error, input any) string {
	t.Helper()
	e, ok := errs.As(err)
	if !ok {
		t.Fatalf("untyped error %v for %q", err, input)
	}
	if st := httpx.StatusOf(err); st < 400 || st > 499 {
		t.Fatalf("status %d (%s %s: %v) for %q", st, e.Kind, e.Code, err, input)
	}
	if e.Code == "" || e.Code == string(errs.Internal) {
		t.Fatalf("refusal without a code: %v for %q", err, input)
	}
	return fmt.Sprintf("%s|%s|%s|%v", e.Kind, e.Code, e.Message, e.Details)
}

// fzText asserts a string of an accepted value is text every store keeps and
// holds no card number (httpx.Decode's guarantees).
func fzText(t *testing.T, field, s string) {
	t.Helper()
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		t.Fatalf("accepted %s %q: not storable text", field, s)
	}
	if cardnum.Contains(s) {
		t.Fatalf("accepted %s %q: holds a card number", field, s)
	}
}

// fzKey is the Idempotency-Key the middleware would let through: an invalid
// one is refused before the handler runs, so it stands for no key here.
func fzKey(key string) string {
	if idempotency.ValidateKey(key) != nil {
		return ""
	}
	return key
}

// fzNow is the clock of FuzzActivityRequest.
var fzNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// decodeEarning is what POST /v1/members/{id}/activities does with a body
// before the database: decodeActivity, then Earn's validateActivity.
func decodeEarning(s *Service, body []byte) (Activity, program.BaseResult, error) {
	a, err := decodeActivity(fzRequest("/v1/members/"+fzMember+"/activities", body, &auth.Principal{Scope: auth.ScopeService, Subject: "fuzz"}, ""))
	if err != nil {
		return Activity{}, program.BaseResult{}, err
	}
	base, err := s.validateActivity(&a, fzNow)
	return a, base, err
}

// activityBody is the request body that describes an accepted activity.
func activityBody(a Activity) []byte {
	req := activityRequest{Type: a.Type, ExternalID: a.ExternalID, OccurredAt: a.OccurredAt.Format(time.RFC3339Nano)}
	amount := a.Amount
	switch a.Type {
	case program.ActivityFlight:
		f := a.Flight
		req.Flight = &flightJSON{DistanceMiles: f.DistanceMiles, FareClass: f.FareClass, Cabin: f.Cabin, Origin: f.Origin, Destination: f.Destination}
	case program.ActivityHotel:
		req.Hotel = &hotelJSON{Amount: &amount, Nights: a.Nights}
	case program.ActivityCardSpend:
		req.CardSpend = &cardSpendJSON{Amount: &amount, MerchantCategory: a.MerchantCategory}
	case program.ActivityPurchase:
		req.Purchase = &purchaseJSON{Amount: &amount, OrderID: a.OrderID}
	}
	b, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzActivityRequest: an earning's body is accepted only as a known
// activity type carrying exactly its own details, an external id of 1–200
// bytes, an occurred_at in UTC within the last 12 months and 5 minutes
// ahead, no negative nights, storable text without card numbers, and base
// points in [0, program.MaxActivityPoints] with status points 0 or the base;
// every refusal is a typed 4xx error; the same body gives the same answer;
// an accepted activity, written back as a body, is accepted as itself with
// the same points.
func FuzzActivityRequest(f *testing.F) {
	s := &Service{prog: program.Default()}
	for _, b := range []string{
		`{"type":"flight","external_id":"fz-1","occurred_at":"2026-06-01T10:00:00Z","flight":{"distance_miles":1200,"fare_class":"Y","cabin":"economy","origin":"JFK","destination":"LAX"}}`,
		`{"type":"flight","external_id":"fz-2","flight":{"distance_miles":9223372036854775807,"fare_class":"F","cabin":"first","origin":"JFK","destination":"JFK"}}`,
		`{"type":"flight","external_id":"fz-3","occurred_at":"2026-06-15T12:04:59.999999999+00:00","flight":{"distance_miles":1,"fare_class":"J"}}`,
		`{"type":"hotel","external_id":"fz-h","occurred_at":"2026-01-01T10:00:00Z","hotel":{"amount":{"amount":12000,"currency":"USD"},"nights":2}}`,
		`{"type":"hotel","external_id":"fz-h2","hotel":{"amount":{"amount":1,"currency":"EUR"},"nights":-1}}`,
		`{"type":"card_spend","external_id":"fz-c","occurred_at":"2026-01-01T10:00:00Z","card_spend":{"amount":{"amount":-5,"currency":"USD"},"merchant_category":"5411"}}`,
		`{"type":"card_spend","external_id":"fz-c2","card_spend":{"amount":{"amount":4599,"currency":"USD"},"merchant_category":"4511"}}`,
		`{"type":"purchase","external_id":"order:o-1","purchase":{"amount":{"amount":3490,"currency":"USD"},"order_id":"o-1"}}`,
		`{"type":"purchase","external_id":"fz-p","purchase":{"order_id":"o-2"}}`,
		`{"type":"flight","external_id":"fz-4","occurred_at":"0001-01-01T00:00:00Z","flight":{"distance_miles":10,"fare_class":"Y"}}`,
		`{"type":"flight","external_id":"fz-5","occurred_at":"2025-06-15T12:00:00Z","flight":{"distance_miles":10,"fare_class":"Y"},"hotel":{"nights":1}}`,
		`{"type":"flight","external_id":" ","flight":{"distance_miles":10,"fare_class":"Y"}}`,
		`{"type":"cruise","external_id":"fz-6"}`,
		`{"type":"flight","external_id":"4111111111111111","flight":{"distance_miles":10,"fare_class":"Y"}}`,
		``, `{}`, `null`, `[]`, `{"x":1}`, `{"type":"hotel","hotel":{"amount":{"amount":1e999}}}`, "{\"\xff\":1}",
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, base, err := decodeEarning(s, body)
		a2, base2, err2 := decodeEarning(s, body)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(a, a2) || base != base2 {
			t.Fatalf("two answers for %q: %+v %+v %v / %+v %+v %v", body, a, base, err, a2, base2, err2)
		}
		if err != nil {
			if fzRefusal(t, err, body) != fzRefusal(t, err2, body) {
				t.Fatalf("two refusals for %q: %v / %v", body, err, err2)
			}
			return
		}
		if !program.IsActivityType(a.Type) || (a.Flight != nil) != (a.Type == program.ActivityFlight) {
			t.Fatalf("accepted type %q with flight details %v: %q", a.Type, a.Flight != nil, body)
		}
		if strings.TrimSpace(a.ExternalID) == "" || len(a.ExternalID) > maxExternalIDLen {
			t.Fatalf("accepted external_id %q", a.ExternalID)
		}
		if a.OccurredAt.Location() != time.UTC || a.OccurredAt.After(fzNow.Add(futureSkew)) || a.OccurredAt.Before(program.AddMonths(fzNow, -retroMonths)) {
			t.Fatalf("accepted occurred_at %v (now %v): %q", a.OccurredAt, fzNow, body)
		}
		if a.Nights < 0 {
			t.Fatalf("accepted %d nights: %q", a.Nights, body)
		}
		if base.BasePoints < 0 || base.BasePoints > program.MaxActivityPoints || (base.StatusPoints != 0 && base.StatusPoints != base.BasePoints) {
			t.Fatalf("accepted with %+v: %q", base, body)
		}
		texts := []string{a.ExternalID, a.MerchantCategory, a.OrderID, a.Amount.Currency}
		if fl := a.Flight; fl != nil {
			texts = append(texts, fl.FareClass, fl.Cabin, fl.Origin, fl.Destination)
		}
		for _, s := range texts {
			fzText(t, "text", s)
		}
		again := activityBody(a)
		a3, base3, err := decodeEarning(s, again)
		if err != nil || !reflect.DeepEqual(a3, a) || base3 != base {
			t.Fatalf("accepted %q as %+v %+v; written back as %s: %+v %+v %v", body, a, base, again, a3, base3, err)
		}
	})
}

// decodeRedeem is what POST /v1/members/{id}/redemptions does with a request
// before the database: decodeRedemption, then Redeem's checkRedemption.
func decodeRedeem(s *Service, body []byte, key string) (string, string, program.RedemptionOption, error) {
	optionID, reference, err := decodeRedemption(fzRequest("/v1/members/"+fzMember+"/redemptions", body, &auth.Principal{Scope: auth.ScopeMember, Subject: fzMember}, key))
	if err != nil {
		return "", "", program.RedemptionOption{}, err
	}
	opt, err := s.checkRedemption(optionID, reference)
	return optionID, reference, opt, err
}

// FuzzRedemptionRequest: a redemption is accepted only for an option of the
// catalogue (the option returned is that option, its price within
// [1, program.MaxActivityPoints]) with the reference "member:<id>:<key>" of
// at most 200 bytes, or none without a key; every refusal is a typed 4xx
// error; the same request gives the same answer; an accepted option id,
// written back as a body, is accepted as the same option.
func FuzzRedemptionRequest(f *testing.F) {
	prog := program.Default()
	s := &Service{prog: prog}
	for _, o := range prog.Options() {
		f.Add(mustBody(redeemRequest{OptionID: o.ID}), "k-1")
	}
	for _, b := range []string{`{"option_id":"nope"}`, `{"option_id":""}`, `{}`, `{"option_id":1}`, `{"option_id":"\u0000"}`, `{"option_id":"x","y":1}`} {
		f.Add([]byte(b), "")
	}
	f.Add(mustBody(redeemRequest{OptionID: prog.Options()[0].ID}), strings.Repeat("k", 255))
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		key = fzKey(key)
		id, ref, opt, err := decodeRedeem(s, body, key)
		id2, ref2, opt2, err2 := decodeRedeem(s, body, key)
		if (err == nil) != (err2 == nil) || id != id2 || ref != ref2 || !reflect.DeepEqual(opt, opt2) {
			t.Fatalf("two answers for %q: %q %v / %q %v", body, id, err, id2, err2)
		}
		if err != nil {
			if fzRefusal(t, err, body) != fzRefusal(t, err2, body) {
				t.Fatalf("two refusals for %q: %v / %v", body, err, err2)
			}
			return
		}
		want, ok := prog.Option(id)
		if !ok || opt.ID != id || !reflect.DeepEqual(opt, want) {
			t.Fatalf("accepted option %q as %+v", id, opt)
		}
		if opt.Points < 1 || opt.Points > program.MaxActivityPoints {
			t.Fatalf("option %q costs %d points", id, opt.Points)
		}
		wantRef := ""
		if key != "" {
			wantRef = "member:" + fzMember + ":" + key
		}
		if ref != wantRef || len(ref) > maxReferenceLen {
			t.Fatalf("key %q: reference %q", key, ref)
		}
		again := mustBody(redeemRequest{OptionID: id})
		if id3, ref3, opt3, err := decodeRedeem(s, again, key); err != nil || id3 != id || ref3 != ref || !reflect.DeepEqual(opt3, opt) {
			t.Fatalf("accepted %q; written back as %s: %q %v", body, again, id3, err)
		}
	})
}

// decodeTransferCheck is what POST /v1/members/{id}/transfers does with a
// request before the database: decodeTransfer, then Transfer's
// checkTransfer.
func decodeTransferCheck(s *Service, body []byte, key string) (TransferRequest, checkedTransfer, error) {
	req, err := decodeTransfer(fzRequest("/v1/members/"+fzMember+"/transfers", body, &auth.Principal{Scope: auth.ScopeMember, Subject: fzMember}, key))
	if err != nil {
		return TransferRequest{}, checkedTransfer{}, err
	}
	c, err := s.checkTransfer(fzMember, req)
	return req, c, err
}

// FuzzTransferRequest: a transfer is accepted only naming exactly one of a
// partner of the program and another member; to a member within the
// program's minimum and yearly limit, to a partner at least its minimum, a
// multiple of its increment, and turned into floor(points × ratio) units
// (checked here in big integers); points in [1, program.MaxActivityPoints];
// the reference "member:<id>:<key>" of at most 200 bytes, or none; every
// refusal is a typed 4xx error; the same request gives the same answer; an
// accepted transfer, written back as a body, is accepted as itself.
func FuzzTransferRequest(f *testing.F) {
	prog := program.Default()
	s := &Service{prog: prog}
	points := func(n int64) *int64 { return &n }
	for _, r := range []transferRequest{
		{ToMemberID: "m-other", Points: points(100)},
		{ToMemberID: fzMember, Points: points(100)},
		{ToMemberID: "m-other", Points: points(99)},
		{ToMemberID: "m-other", Points: points(100_001)},
		{ToMemberID: "m-other", Points: points(9223372036854775807)},
		{ToMemberID: "m-other"},
		{PartnerID: "nope", Points: points(3000)},
		{PartnerID: "northwind-airways", ToMemberID: "m-other", Points: points(1)},
	} {
		f.Add(mustBody(r), "k-1")
	}
	for _, pt := range prog.Partners {
		f.Add(mustBody(transferRequest{PartnerID: pt.ID, Points: points(pt.MinimumPoints)}), "k-2")
		f.Add(mustBody(transferRequest{PartnerID: pt.ID, Points: points(pt.MinimumPoints + pt.Increment/2)}), "")
		f.Add(mustBody(transferRequest{PartnerID: pt.ID, Points: points(program.MaxActivityPoints / pt.Increment * pt.Increment)}), "")
	}
	for _, b := range []string{`{}`, `{"points":-1}`, `{"points":1e999}`, `{"points":1.5,"to_member_id":"m"}`, `{"to_member_id":"m","points":"100"}`} {
		f.Add([]byte(b), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		key = fzKey(key)
		req, c, err := decodeTransferCheck(s, body, key)
		req2, c2, err2 := decodeTransferCheck(s, body, key)
		if (err == nil) != (err2 == nil) || req != req2 || !reflect.DeepEqual(c, c2) {
			t.Fatalf("two answers for %q: %+v %+v %v / %+v %+v %v", body, req, c, err, req2, c2, err2)
		}
		if err != nil {
			if fzRefusal(t, err, body) != fzRefusal(t, err2, body) {
				t.Fatalf("two refusals for %q: %v / %v", body, err, err2)
			}
			return
		}
		if req.Points < 1 || req.Points > program.MaxActivityPoints {
			t.Fatalf("accepted %d points: %q", req.Points, body)
		}
		switch {
		case req.ToMemberID != "" && req.PartnerID == "":
			r := prog.MemberTransfers
			if c.kind != TransferMember || req.ToMemberID == fzMember || req.Points < r.MinimumPoints || req.Points > r.YearlyLimit {
				t.Fatalf("accepted a member transfer %+v (%s): %q", req, c.kind, body)
			}
			fzText(t, "to_member_id", req.ToMemberID)
		case req.PartnerID != "" && req.ToMemberID == "":
			pt, ok := prog.Partner(req.PartnerID)
			if c.kind != TransferPartner || !ok || !reflect.DeepEqual(c.partner, pt) || req.Points < pt.MinimumPoints || req.Points%pt.Increment != 0 {
				t.Fatalf("accepted a partner transfer %+v as %+v: %q", req, c, body)
			}
			units := new(big.Int).Mul(big.NewInt(req.Points), big.NewInt(pt.RatioUnits))
			units.Quo(units, big.NewInt(pt.RatioPoints))
			if !units.IsInt64() || c.units != units.Int64() || c.units < 0 {
				t.Fatalf("%d points to %s (%d:%d) became %d units, not %s", req.Points, pt.ID, pt.RatioPoints, pt.RatioUnits, c.units, units)
			}
		default:
			t.Fatalf("accepted %+v naming neither or both: %q", req, body)
		}
		wantRef := ""
		if key != "" {
			wantRef = "member:" + fzMember + ":" + key
		}
		if req.Reference != wantRef || len(req.Reference) > maxReferenceLen {
			t.Fatalf("key %q: reference %q", key, req.Reference)
		}
		again := mustBody(transferRequest{PartnerID: req.PartnerID, ToMemberID: req.ToMemberID, Points: &req.Points})
		if req3, c3, err := decodeTransferCheck(s, again, key); err != nil || req3 != req || !reflect.DeepEqual(c3, c) {
			t.Fatalf("accepted %q as %+v; written back as %s: %+v %v", body, req, again, req3, err)
		}
	})
}

func mustBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
