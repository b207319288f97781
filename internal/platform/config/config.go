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
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
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
