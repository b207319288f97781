package payment

import "github.com/godwit-dev/godwit/internal/platform/cardnum"

// ContainsCardNumber reports whether b holds something that looks like a
// primary account number: a run of 13–19 digits, optionally grouped by single
// spaces or hyphens, that passes the Luhn check (see cardnum.Contains).
// Checkout refuses such requests before anything is decoded, stored or logged;
// httpx refuses them in every decoded string and path parameter too.
func ContainsCardNumber(b []byte) bool { return cardnum.Contains(b) }
