package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/godwit-dev/godwit/internal/app"
)

const backupHelp = `backup [--data-dir DIR | --db FILE] [--force] DEST

Writes a consistent copy of the embedded SQLite database to the file DEST while
servers keep serving: the copy is the database as of one commit (SQLite's VACUUM
INTO in a read transaction, which blocks no writer), checked with PRAGMA
quick_check and moved into place only when complete. DEST must not exist unless
--force is given. The copy is not encrypted and holds members' names and emails
(mode 0600).

The token signing secret is not in the copy: keep <data-dir>/secret (or the
GODWIT_SECRET value) with it, or tokens issued before the restore stop working.

Restore: stop every godwit process using the database, delete godwit.db-wal and
godwit.db-shm beside the database, copy DEST over godwit.db, start again and run
'godwit verify'. PostgreSQL is backed up with pg_dump or pg_basebackup, not with
this command. See docs/operations.md, "Backups and restore".`

func runBackup(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "backup", backupHelp)
	var common commonFlags
	common.register(fs)
	force := fs.Bool("force", false, "replace DEST if it exists")
	flags, positional := splitArgs(fs, args)
	if err := parseFlags(e, fs, flags); err != nil {
		return err
	}
	positional = append(positional, fs.Args()...)
	if len(positional) != 1 {
		fmt.Fprintln(e.stderr, "godwit backup: want one argument, the file to write the copy to (e.g. godwit backup /var/backups/godwit.db)")
		return errUsage
	}
	res, err := app.Backup(ctx, common.DatabaseDSN(), positional[0], *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup: %s -> %s (%d bytes, schema version %d, quick_check ok, %d ms)\n",
		res.Source, res.Path, res.Bytes, res.SchemaVersion, res.Took.Milliseconds())
	secret := common.SecretPath()
	if common.Secret != "" {
		secret = "the --secret / GODWIT_SECRET value"
	}
	fmt.Fprintf(e.stdout, "backup: the token signing secret is not in the copy: keep %s with it\n", secret)
	return nil
}

// splitArgs separates flags from positional arguments wherever they stand,
// so `backup DEST --force` works like `backup --force DEST`. A flag that
// takes a value and is written without "=" takes the next argument with it.
func splitArgs(fs *flag.FlagSet, args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(positional, args[i+1:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return flags, positional
}
