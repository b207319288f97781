package main

import (
	"context"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
)

func runToken(_ context.Context, e env, args []string) error {
	fs := newFlagSet(e, "token", "token [flags] admin|service|member <subject>\n\n"+
		"Mints a bearer token signed with the server's secret. <subject> is a member id for\n"+
		"member tokens, and a name (recorded as the actor) for admin and service tokens.")
	var common commonFlags
	common.register(fs)
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(e.stderr, "godwit token: want exactly two arguments: a scope (admin, service or member) and a subject")
		return errUsage
	}
	if err := app.CheckScope(fs.Arg(0)); err != nil {
		return err
	}
	secret, created, err := common.LoadSecret()
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(e.stderr, "godwit token: generated a new secret in %s; a running server must use the same one\n", common.SecretPath())
	}
	m, err := app.NewMinter(secret)
	if err != nil {
		return err
	}
	tok, err := m.Mint(fs.Arg(0), fs.Arg(1), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}
