package money_test

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/money"
)

func TestExponent(t *testing.T) {
	tests := []struct {
		code   string
		want   int
		wantOK bool
	}{
		{"USD", 2, true}, {"EUR", 2, true}, {"GBP", 2, true}, {"JPY", 0, true},
		{"CHF", 2, true}, {"CAD", 2, true}, {"AUD", 2, true}, {"SEK", 2, true},
		{"NOK", 2, true}, {"DKK", 2, true}, {"SGD", 2, true}, {"HKD", 2, true},
		{"NZD", 2, true}, {"KRW", 0, true}, {"INR", 2, true}, {"BRL", 2, true},
		{"MXN", 2, true}, {"CNY", 2, true}, {"KWD", 3, true},
		{"usd", 0, false}, {"", 0, false}, {"XXX", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got, ok := money.Exponent(tt.code)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Exponent(%q) = %d, %v; want %d, %v", tt.code, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestUnitSize(t *testing.T) {
	for code, want := range map[string]int64{"USD": 100, "JPY": 1, "KWD": 1000} {
		got, ok := money.UnitSize(code)
		if !ok || got != want {
			t.Errorf("UnitSize(%q) = %d, %v; want %d", code, got, ok, want)
		}
	}
	if _, ok := money.UnitSize("ZZZ"); ok {
		t.Error("UnitSize(ZZZ) ok = true")
	}
}

func TestCurrenciesSortedAndKnown(t *testing.T) {
	cs := money.Currencies()
	for i, c := range cs {
		if i > 0 && cs[i-1] >= c {
			t.Fatalf("Currencies not sorted at %d: %v", i, cs)
		}
		if _, ok := money.Exponent(c); !ok {
			t.Errorf("Currencies lists %q which Exponent does not know", c)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name                 string
		m                    money.Money
		valid, nonNeg, posit error
	}{
		{"positive", money.Money{Amount: 1, Currency: "USD"}, nil, nil, nil},
		{"zero", money.Money{Amount: 0, Currency: "JPY"}, nil, nil, money.ErrInvalidAmount},
		{"negative", money.Money{Amount: -5, Currency: "EUR"}, nil, money.ErrInvalidAmount, money.ErrInvalidAmount},
		{"unknown currency", money.Money{Amount: 5, Currency: "ABC"}, money.ErrUnknownCurrency, money.ErrUnknownCurrency, money.ErrUnknownCurrency},
		{"lower case code", money.Money{Amount: 5, Currency: "usd"}, money.ErrUnknownCurrency, money.ErrUnknownCurrency, money.ErrUnknownCurrency},
		{"empty currency", money.Money{Amount: 5}, money.ErrUnknownCurrency, money.ErrUnknownCurrency, money.ErrUnknownCurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, "Validate", tt.m.Validate(), tt.valid)
			checkErr(t, "ValidateNonNegative", tt.m.ValidateNonNegative(), tt.nonNeg)
			checkErr(t, "ValidatePositive", tt.m.ValidatePositive(), tt.posit)
		})
	}
}

func TestNew(t *testing.T) {
	m, err := money.New(-250, "GBP")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if diff := cmp.Diff(money.Money{Amount: -250, Currency: "GBP"}, m); diff != "" {
		t.Errorf("New (-want +got):\n%s", diff)
	}
	if _, err := money.New(1, "GBX"); !errors.Is(err, money.ErrUnknownCurrency) {
		t.Errorf("New(GBX) error = %v, want ErrUnknownCurrency", err)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name string
		m    money.Money
		want string
	}{
		{"dollars and cents", money.Money{Amount: 1234, Currency: "USD"}, "12.34 USD"},
		{"cents only", money.Money{Amount: 5, Currency: "EUR"}, "0.05 EUR"},
		{"zero", money.Money{Amount: 0, Currency: "USD"}, "0.00 USD"},
		{"negative", money.Money{Amount: -5, Currency: "EUR"}, "-0.05 EUR"},
		{"negative whole", money.Money{Amount: -1200, Currency: "CHF"}, "-12.00 CHF"},
		{"yen", money.Money{Amount: 1500, Currency: "JPY"}, "1500 JPY"},
		{"won negative", money.Money{Amount: -7, Currency: "KRW"}, "-7 KRW"},
		{"three digits", money.Money{Amount: 1234, Currency: "KWD"}, "1.234 KWD"},
		{"unknown", money.Money{Amount: 1234, Currency: "XYZ"}, "1234 XYZ"},
		{"min int64", money.Money{Amount: math.MinInt64, Currency: "USD"}, "-92233720368547758.08 USD"},
		{"max int64", money.Money{Amount: math.MaxInt64, Currency: "USD"}, "92233720368547758.07 USD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAddSubMul(t *testing.T) {
	usd := func(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }
	tests := []struct {
		name    string
		op      func() (money.Money, error)
		want    money.Money
		wantErr error
	}{
		{"add", func() (money.Money, error) { return usd(150).Add(usd(275)) }, usd(425), nil},
		{"add negative", func() (money.Money, error) { return usd(150).Add(usd(-275)) }, usd(-125), nil},
		{"add mismatch", func() (money.Money, error) { return usd(1).Add(money.Money{Amount: 1, Currency: "EUR"}) }, money.Money{}, money.ErrCurrencyMismatch},
		{"add overflow", func() (money.Money, error) { return usd(math.MaxInt64).Add(usd(1)) }, money.Money{}, money.ErrOverflow},
		{"add to max", func() (money.Money, error) { return usd(math.MaxInt64 - 1).Add(usd(1)) }, usd(math.MaxInt64), nil},
		{"sub", func() (money.Money, error) { return usd(100).Sub(usd(250)) }, usd(-150), nil},
		{"sub mismatch", func() (money.Money, error) { return usd(1).Sub(money.Money{Amount: 1, Currency: "JPY"}) }, money.Money{}, money.ErrCurrencyMismatch},
		{"sub overflow", func() (money.Money, error) { return usd(math.MinInt64).Sub(usd(1)) }, money.Money{}, money.ErrOverflow},
		{"mul", func() (money.Money, error) { return usd(1999).Mul(3) }, usd(5997), nil},
		{"mul zero", func() (money.Money, error) { return usd(1999).Mul(0) }, usd(0), nil},
		{"mul overflow", func() (money.Money, error) { return usd(math.MaxInt64/2 + 1).Mul(2) }, money.Money{}, money.ErrOverflow},
		{"mul negative overflow", func() (money.Money, error) { return usd(math.MinInt64).Mul(-1) }, money.Money{}, money.ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.op()
			checkErr(t, tt.name, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIntHelpers(t *testing.T) {
	tests := []struct {
		name    string
		op      func() (int64, error)
		want    int64
		wantErr error
	}{
		{"add", func() (int64, error) { return money.AddInt64(2, 3) }, 5, nil},
		{"add overflow", func() (int64, error) { return money.AddInt64(math.MaxInt64, 1) }, 0, money.ErrOverflow},
		{"add underflow", func() (int64, error) { return money.AddInt64(math.MinInt64, -1) }, 0, money.ErrOverflow},
		{"add mixed signs at edges", func() (int64, error) { return money.AddInt64(math.MaxInt64, math.MinInt64) }, -1, nil},
		{"sub", func() (int64, error) { return money.SubInt64(2, 3) }, -1, nil},
		{"sub min", func() (int64, error) { return money.SubInt64(0, math.MinInt64) }, 0, money.ErrOverflow},
		{"sub to min", func() (int64, error) { return money.SubInt64(-1, math.MaxInt64) }, math.MinInt64, nil},
		{"mul", func() (int64, error) { return money.MulInt64(-4, 5) }, -20, nil},
		{"mul overflow", func() (int64, error) { return money.MulInt64(1<<32, 1<<31) }, 0, money.ErrOverflow},
		{"mul to min", func() (int64, error) { return money.MulInt64(1<<62, -2) }, math.MinInt64, nil},
		{"muldiv floor", func() (int64, error) { return money.MulDivFloor(7, 3, 2) }, 10, nil},
		{"muldiv floor negative", func() (int64, error) { return money.MulDivFloor(-7, 3, 2) }, -11, nil},
		{"muldiv floor negative exact", func() (int64, error) { return money.MulDivFloor(-8, 3, 2) }, -12, nil},
		{"muldiv ceil", func() (int64, error) { return money.MulDivCeil(7, 3, 2) }, 11, nil},
		{"muldiv ceil exact", func() (int64, error) { return money.MulDivCeil(8, 3, 2) }, 12, nil},
		{"muldiv ceil negative", func() (int64, error) { return money.MulDivCeil(-7, 3, 2) }, -10, nil},
		{"muldiv wide intermediate", func() (int64, error) { return money.MulDivFloor(math.MaxInt64, 10000, 10000) }, math.MaxInt64, nil},
		{"muldiv result too big", func() (int64, error) { return money.MulDivFloor(math.MaxInt64, 3, 2) }, 0, money.ErrOverflow},
		{"muldiv min int64", func() (int64, error) { return money.MulDivFloor(math.MinInt64, 1, 1) }, math.MinInt64, nil},
		{"muldiv divide by zero", func() (int64, error) { return money.MulDivFloor(1, 1, 0) }, 0, money.ErrDivideByZero},
		{"muldiv zero product", func() (int64, error) { return money.MulDivFloor(0, -5, 3) }, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.op()
			checkErr(t, tt.name, err, tt.wantErr)
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func checkErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Errorf("%s: unexpected error %v", what, got)
		}
		return
	}
	if !errors.Is(got, want) {
		t.Errorf("%s: error = %v, want %v", what, got, want)
	}
}
