package program_test

import (
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
)

func TestPointValueParsesExactly(t *testing.T) {
	p := mustParse(t, withEdits(t, `  USD: "0.0100"`, `  USD: "0.0125"`, `  EUR: "0.0092"`, `  JPY: "1.5"`))
	got := map[string]string{}
	for _, v := range p.PointValues {
		got[v.Currency] = v.String()
	}
	if len(p.PointValues) != 2 || p.PointValues[0].Currency != "JPY" || got["JPY"] != "1.5" || got["USD"] != "0.0125" {
		t.Fatalf("point values %v, want JPY 1.5 then USD 0.0125", p.PointValues)
	}
	for _, c := range []struct {
		v      program.PointValue
		points int64
		want   money.Money
	}{
		{p.PointValues[1], 1000, money.Money{Amount: 1250, Currency: "USD"}},
		{p.PointValues[1], 2, money.Money{Amount: 3, Currency: "USD"}},   // 2.5 cents rounds up
		{p.PointValues[1], -2, money.Money{Amount: -3, Currency: "USD"}}, // and down, away from zero
		{p.PointValues[1], 1, money.Money{Amount: 1, Currency: "USD"}},   // 1.25 cents
		{p.PointValues[0], 3, money.Money{Amount: 5, Currency: "JPY"}},   // 4.5 yen
		{p.PointValues[1], 1 << 62, money.Money{Amount: 5764607523034234880, Currency: "USD"}},
	} {
		got, err := c.v.Money(c.points)
		if err != nil || got != c.want {
			t.Errorf("%s × %d = %v, %v; want %v", c.v, c.points, got, err, c.want)
		}
	}
	if _, err := (program.PointValue{Currency: "USD", Scaled: 1 << 40}).Money(1 << 60); err == nil {
		t.Error("an overflowing value was not refused")
	}
}

func TestPointValueInvalid(t *testing.T) {
	for _, c := range []struct{ edit, want string }{
		{`  USD: "0.01.0"`, "point_value.USD"},
		{`  USD: "-0.01"`, "point_value.USD"},
		{`  USD: "0"`, "point_value.USD: must be greater than 0"},
		{`  USD: "0.000000001"`, "more than 8 decimal places"},
		{`  XXX: "0.01"`, "point_value.XXX"},
	} {
		_, err := program.Parse(withEdits(t, `  USD: "0.0100"`, c.edit))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.edit, err, c.want)
		}
	}
}
