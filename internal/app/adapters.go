package app

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/godwit-dev/godwit/internal/notify/smtp"
	"github.com/godwit-dev/godwit/internal/payment/stripe"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// PaymentConfig chooses how cards are charged.
type PaymentConfig struct {
	// Provider is "simulator" (the default, built on the database) or "stripe".
	Provider string
	// StripeSecretKey is the Stripe key itself; StripeKeyFile a file holding
	// it. Set one of them for "stripe".
	StripeSecretKey, StripeKeyFile string
	// StripeAPIBase replaces Stripe's API URL (e.g. stripe-mock's).
	StripeAPIBase string
	// StripeReturnURL is where Stripe sends the customer back after a 3-D
	// Secure authentication; with it, a requires_action charge's next
	// action is a redirect_to_url the storefront can follow.
	StripeReturnURL string
}

// SMTPConfig is the relay confirmations are sent through. An empty Addr
// means no relay: confirmations are written as .eml files instead.
type SMTPConfig struct {
	Addr, TLS string
	Username  string
	// Password is the password itself; PasswordFile a file holding it. Set
	// at most one of them.
	Password, PasswordFile string
	From, HELO             string
}

// buildAdapters builds the external adapters cfg asks for, unless cfg already
// carries them (PaymentProvider, Sender).
func buildAdapters(cfg Config, tel *telemetry.Telemetry) (adapters, error) {
	ad := adapters{provider: cfg.PaymentProvider, smtp: cfg.Sender}
	if ad.provider == nil {
		switch cfg.Payment.Provider {
		case "", "simulator":
		case "stripe":
			p, err := newStripe(cfg.Payment, tel)
			if err != nil {
				return ad, err
			}
			ad.provider = p
		default:
			return ad, fmt.Errorf("--payment must be simulator or stripe, not %q", cfg.Payment.Provider)
		}
	}
	if ad.smtp == nil && cfg.SMTP.Addr != "" {
		s, err := newSMTP(cfg.SMTP)
		if err != nil {
			return ad, err
		}
		ad.smtp = s
	}
	return ad, nil
}

func newStripe(c PaymentConfig, tel *telemetry.Telemetry) (*stripe.Provider, error) {
	key, err := stripe.LoadSecretKey(c.StripeSecretKey, c.StripeKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--payment stripe: %w", err)
	}
	p, err := stripe.New(stripe.Config{SecretKey: key, APIBase: c.StripeAPIBase, ReturnURL: c.StripeReturnURL, TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		return nil, fmt.Errorf("--payment stripe: %w", err)
	}
	return p, nil
}

func newSMTP(c SMTPConfig) (*smtp.Sender, error) {
	password := c.Password
	if c.PasswordFile != "" {
		if password != "" {
			return nil, errors.New("set either --smtp-password-file or GODWIT_SMTP_PASSWORD, not both")
		}
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	s, err := smtp.New(smtp.Config{Addr: c.Addr, TLS: c.TLS, Username: c.Username, Password: password, From: c.From, HELO: c.HELO})
	if err != nil {
		return nil, fmt.Errorf("--smtp-addr: %w", err)
	}
	return s, nil
}
