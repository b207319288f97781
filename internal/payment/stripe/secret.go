package stripe

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadSecretKey returns the Stripe secret key from exactly one source: env is
// the value of GODWIT_STRIPE_SECRET_KEY as the caller read it, file is the
// --stripe-secret-key-file path. A file is read whole and trimmed of
// surrounding whitespace (a trailing newline is common). Errors name the
// source, never the key.
func LoadSecretKey(env, file string) (string, error) {
	var key, from string
	switch {
	case env != "" && file != "":
		return "", errors.New("stripe: set either GODWIT_STRIPE_SECRET_KEY or --stripe-secret-key-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("stripe: read --stripe-secret-key-file: %w", err)
		}
		key, from = strings.TrimSpace(string(b)), "--stripe-secret-key-file"
	case env != "":
		key, from = strings.TrimSpace(env), "GODWIT_STRIPE_SECRET_KEY"
	default:
		return "", errors.New("stripe: no secret key: set GODWIT_STRIPE_SECRET_KEY or --stripe-secret-key-file")
	}
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("%w (from %s)", err, from)
	}
	return key, nil
}
