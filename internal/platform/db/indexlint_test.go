package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// firstLintedMigration is the first PostgreSQL migration held to
// lintPostgresIndexes. The ones before it have run on every deployment
// already, and changing a migration that has run changes nothing.
const firstLintedMigration = 49

var (
	createTableRe = regexp.MustCompile(`^CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w."]+)`)
	createIndexRe = regexp.MustCompile(`^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?([\w."]+)\s+ON\s+(?:ONLY\s+)?([\w."]+)`)
	dropIndexRe   = regexp.MustCompile(`^DROP\s+INDEX\s+(CONCURRENTLY\s+)?(IF\s+EXISTS\s+)?([\w."]+)`)
	addUniqueRe   = regexp.MustCompile(`^ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?([\w."]+)\s+ADD\s+(?:CONSTRAINT\s+[\w."]+\s+)?(UNIQUE|PRIMARY\s+KEY)\b(.*)$`)
)

// lintPostgresIndexes returns what in a PostgreSQL migration's Up section
// would block writes to an existing table while an index builds, or could
// not be run again after failing halfway. CREATE INDEX holds a lock that
// blocks every insert, update and delete on the table for the whole build
// (minutes on a large ledger, with every replica's checkout waiting), and
// migrations run as replicas start. So, on a table the migration does not
// create itself:
//   - an index is built with CREATE INDEX CONCURRENTLY, which PostgreSQL
//     refuses inside a transaction: the file says -- +goose NO TRANSACTION;
//   - each such build is preceded by DROP INDEX CONCURRENTLY IF EXISTS of
//     the same name: a build that fails or is interrupted leaves an INVALID
//     index behind, and goose (which records the version only at the end)
//     runs the whole file again on the next start;
//   - an index is dropped with DROP INDEX CONCURRENTLY;
//   - a UNIQUE or PRIMARY KEY constraint is added USING INDEX, an index
//     built concurrently first.
func lintPostgresIndexes(src string) []string {
	up, _, _ := strings.Cut(src, "-- +goose Down")
	noTx := strings.Contains(up, "-- +goose NO TRANSACTION")
	var problems []string
	created := map[string]bool{}
	dropped := map[string]bool{}
	for _, stmt := range sqlStatements(up) {
		if m := createTableRe.FindStringSubmatch(stmt); m != nil {
			created[bare(m[1])] = true
			continue
		}
		if m := dropIndexRe.FindStringSubmatch(stmt); m != nil {
			if m[1] == "" {
				problems = append(problems, fmt.Sprintf("%q: drop indexes with DROP INDEX CONCURRENTLY", stmt))
			}
			if m[1] != "" && !noTx {
				problems = append(problems, fmt.Sprintf("%q: CONCURRENTLY needs -- +goose NO TRANSACTION", stmt))
			}
			dropped[bare(m[3])] = m[2] != ""
			continue
		}
		if m := createIndexRe.FindStringSubmatch(stmt); m != nil {
			index, table := bare(m[2]), bare(m[3])
			switch {
			case created[table]:
				// A table made in this migration is empty: nothing waits.
			case m[1] == "":
				problems = append(problems, fmt.Sprintf("%q: %s exists already; build the index with CREATE INDEX CONCURRENTLY", stmt, table))
			case !noTx:
				problems = append(problems, fmt.Sprintf("%q: CONCURRENTLY needs -- +goose NO TRANSACTION", stmt))
			case !dropped[index]:
				problems = append(problems, fmt.Sprintf("%q: precede it with DROP INDEX CONCURRENTLY IF EXISTS %s, so a rerun after a failed build does not keep an invalid index", stmt, index))
			}
			continue
		}
		if m := addUniqueRe.FindStringSubmatch(stmt); m != nil && !created[bare(m[1])] && !strings.Contains(m[3], "USING INDEX") {
			problems = append(problems, fmt.Sprintf("%q: build a unique index CONCURRENTLY first and add the constraint USING INDEX", stmt))
		}
	}
	return problems
}

// sqlStatements splits SQL into statements, without comments, upper-cased,
// on one line each. Good enough for DDL (no semicolons inside literals).
func sqlStatements(src string) []string {
	var b strings.Builder
	for line := range strings.SplitSeq(src, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line + " ")
	}
	var out []string
	for stmt := range strings.SplitSeq(b.String(), ";") {
		if s := strings.Join(strings.Fields(stmt), " "); s != "" {
			out = append(out, strings.ToUpper(s))
		}
	}
	return out
}

func bare(name string) string {
	name = strings.Trim(name, `"`)
	if i := strings.LastIndex(name, "."); i >= 0 {
		name = name[i+1:]
	}
	return strings.Trim(name, `"`)
}

// TestPostgresIndexMigrationsAreNonBlocking holds every PostgreSQL migration
// from firstLintedMigration on to lintPostgresIndexes.
func TestPostgresIndexMigrationsAreNonBlocking(t *testing.T) {
	entries, err := fs.ReadDir(migrations, "migrations/postgres")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			t.Errorf("%s: no version number", e.Name())
			continue
		}
		if v < firstLintedMigration {
			continue
		}
		b, err := fs.ReadFile(migrations, "migrations/postgres/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range lintPostgresIndexes(string(b)) {
			t.Errorf("%s: %s", e.Name(), p)
		}
	}
}

func TestIndexLint(t *testing.T) {
	const noTx = "-- +goose NO TRANSACTION\n-- +goose Up\n"
	for _, c := range []struct {
		name, sql string
		problems  int
		want      string
	}{
		{"plain index on an existing table", "-- +goose Up\nCREATE INDEX orders_x ON orders (x);\n", 1, "CONCURRENTLY"},
		{"concurrently inside a transaction", "-- +goose Up\nDROP INDEX CONCURRENTLY IF EXISTS orders_x;\nCREATE INDEX CONCURRENTLY orders_x ON orders (x);\n", 2, "NO TRANSACTION"},
		{"concurrently without the drop first", noTx + "CREATE INDEX CONCURRENTLY orders_x ON orders (x);\n", 1, "DROP INDEX CONCURRENTLY IF EXISTS"},
		{"unique index, schema-qualified", noTx + "create unique index public.orders_x on public.orders (x);", 1, "CONCURRENTLY"},
		{"blocking drop", noTx + "DROP INDEX orders_x;\n", 1, "DROP INDEX CONCURRENTLY"},
		{"unique constraint built in place", "-- +goose Up\nALTER TABLE orders ADD CONSTRAINT orders_x UNIQUE (x);\n", 1, "USING INDEX"},
		{"the pattern", noTx + "-- why\nDROP INDEX CONCURRENTLY IF EXISTS orders_x;\nCREATE INDEX CONCURRENTLY orders_x\n    ON orders (x) WHERE x > 0;\n" +
			"ALTER TABLE orders ADD CONSTRAINT orders_y UNIQUE USING INDEX orders_y;\n-- +goose Down\nDROP INDEX orders_x;\n", 0, ""},
		{"a new table's indexes", "-- +goose Up\nCREATE TABLE things (id TEXT PRIMARY KEY, x BIGINT);\nCREATE INDEX things_x ON things (x);\nALTER TABLE things ADD UNIQUE (x);\n", 0, ""},
		{"a comment mentioning CREATE INDEX", "-- +goose Up\n-- CREATE INDEX a ON b (c);\nALTER TABLE orders ADD COLUMN note TEXT;\n", 0, ""},
	} {
		got := lintPostgresIndexes(c.sql)
		if len(got) != c.problems || (c.want != "" && !strings.Contains(strings.Join(got, "\n"), c.want)) {
			t.Errorf("%s: %d problems %q, want %d mentioning %q", c.name, len(got), got, c.problems, c.want)
		}
	}
}

// TestConcurrentIndexMigrationRunsOnPostgres runs a migration written as
// lintPostgresIndexes asks through goose, with the migration lock, against
// PostgreSQL: it builds a valid index while another session keeps writing
// to the table. The same file without NO TRANSACTION fails, which is why
// the rule asks for it.
func TestConcurrentIndexMigrationRunsOnPostgres(t *testing.T) {
	ctx := context.Background()
	d := internalPostgres(t)
	files := fstest.MapFS{
		"00001_t.sql": {Data: []byte("-- +goose Up\nCREATE TABLE t (id BIGINT PRIMARY KEY, x BIGINT NOT NULL);\n" +
			"INSERT INTO t SELECT g, g % 97 FROM generate_series(1, 20000) g;\n-- +goose Down\nDROP TABLE t;\n")},
	}
	p, err := newProviderFS(ctx, d, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	index := "-- +goose Up\nDROP INDEX CONCURRENTLY IF EXISTS t_x;\nCREATE INDEX CONCURRENTLY t_x ON t (x);\n-- +goose Down\nDROP INDEX CONCURRENTLY IF EXISTS t_x;\n"
	if probs := lintPostgresIndexes("-- +goose NO TRANSACTION\n" + index); len(probs) != 0 {
		t.Fatalf("the fixture breaks the rule: %v", probs)
	}
	files["00002_t_x.sql"] = &fstest.MapFile{Data: []byte(index)}
	p, err = newProviderFS(ctx, d, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err == nil || !strings.Contains(err.Error(), "transaction block") {
		t.Fatalf("CONCURRENTLY inside goose's transaction: %v, want PostgreSQL's refusal", err)
	}

	files["00002_t_x.sql"] = &fstest.MapFile{Data: []byte("-- +goose NO TRANSACTION\n" + index)}
	p, err = newProviderFS(ctx, d, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop, writes := make(chan struct{}), make(chan error, 1)
	go func() {
		var n int
		for i := 30000; ; i++ {
			select {
			case <-stop:
				if n == 0 {
					writes <- fmt.Errorf("no write ran")
					return
				}
				writes <- nil
				return
			default:
			}
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := d.write.ExecContext(c, `INSERT INTO t (id, x) VALUES ($1, $2)`, i, i%97)
			cancel()
			if err != nil {
				writes <- err
				return
			}
			n++
		}
	}()
	_, err = p.Up(ctx)
	close(stop)
	if werr := <-writes; werr != nil {
		t.Errorf("writes while the index built: %v", werr)
	}
	if err != nil {
		t.Fatalf("NO TRANSACTION CONCURRENTLY migration: %v", err)
	}
	var valid bool
	if err := d.write.QueryRowContext(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = 't_x'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("t_x valid=%v err=%v", valid, err)
	}
}

// internalPostgres opens a fresh schema on GODWIT_TEST_POSTGRES for tests
// inside this package (dbtest imports db, so it cannot be used here).
func internalPostgres(t *testing.T) *DB {
	t.Helper()
	base := os.Getenv("GODWIT_TEST_POSTGRES")
	if base == "" {
		t.Skip("GODWIT_TEST_POSTGRES not set; PostgreSQL tests skipped")
	}
	ctx := context.Background()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("gwt_lint_%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	d, err := Open(ctx, base+sep+"search_path="+schema, Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestEveryMigrationHasADown: `godwit migrate down` can step back over any
// migration, because each one says how to undo itself.
func TestEveryMigrationHasADown(t *testing.T) {
	for _, e := range []Engine{SQLite, Postgres} {
		entries, err := fs.ReadDir(migrations, migrationDir(e))
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if !hasDown(e, en.Name()) {
				t.Errorf("%s/%s: no statements under -- +goose Down", e, en.Name())
			}
		}
		if hasDown(e, "00000_missing.sql") {
			t.Error("hasDown found a Down section in a file that does not exist")
		}
	}
}
