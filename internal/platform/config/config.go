// Package config reads command-line flags with GODWIT_* environment fallbacks,
// so every flag of every command can also be set from the environment.
package config

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName is the environment variable for flag name: "stripe-api-base" → "GODWIT_STRIPE_API_BASE".
func EnvName(flagName string) string {
	return "GODWIT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command
// line from its GODWIT_* environment variable. Flags win over the environment.
// Confirmations of destructive actions (--yes, --force) are read from the
// command line only.
//
// Flags may come before, between or after the positional arguments
// (`godwit token admin ops --secret X` as well as `godwit token --secret X
// admin ops`): the standard flag package stops at the first argument that is
// not a flag, which left a flag typed at the end of a command line silently
// taken for an argument. "--" still ends the flags; what follows it is
// positional even if it starts with "-". fs.Args() returns the positional
// arguments in order.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Parsing a lone "--" sets fs.Args() to the positional arguments and no flag.
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] || commandLineOnly(f.Name) {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s: %w", EnvName(f.Name), e)
			}
		}
	})
	return err
}

// commandLineOnly reports whether flag name confirms a destructive action
// (`migrate down --yes`, `backup --force`). Such a flag is never read from the
// environment: a GODWIT_YES exported once would otherwise confirm every later
// rollback silently.
func commandLineOnly(name string) bool {
	switch name {
	case "yes", "force":
		return true
	}
	return false
}
