package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// What the one-shot commands (migrate, expire, token, verify, loadgen) need
// of the application, so that they, like serve, build nothing themselves.

// Storage is where a command finds the database and the token signing
// secret: the settings every command that opens the database shares.
type Storage struct {
	DataDir string // holds the SQLite database and the secret by default
	DSN     string // a postgres:// URL or a SQLite path; default <DataDir>/godwit.db
	Secret  string // hex or at least 32 bytes; default read from (or generated into) <DataDir>/secret
	// MaxConns caps the connections the command opens (see
	// db.Options.MaxOpenConns); zero is db.DefaultMaxOpenConns.
	MaxConns int
}

// DefaultDBMaxConns and MinDBMaxConns bound Storage.MaxConns and Config.DBMaxConns.
const (
	DefaultDBMaxConns = db.DefaultMaxOpenConns
	MinDBMaxConns     = db.MinOpenConns
)

// CheckPool checks a pool size and, on PostgreSQL, that the write pipeline's
// writers fit in it (at most half the pool writes, so a writer that reads
// through the pool always finds a connection); flag names the settings in
// the error, as the caller spells them.
func CheckPool(dsn string, maxConns, writers int, flag func(setting string) string) error {
	if maxConns < MinDBMaxConns {
		return fmt.Errorf("%s must be at least %d, not %d", flag("max-conns"), MinDBMaxConns, maxConns)
	}
	if db.IsPostgresDSN(dsn) && writers > maxConns/2 {
		return fmt.Errorf("%s %d needs %s of at least %d: each writer holds a connection and may wait for a read through the pool, so at most half the pool writes",
			flag("writers"), writers, flag("max-conns"), 2*writers)
	}
	return nil
}

// DatabaseDSN is the database to open.
func (s Storage) DatabaseDSN() string {
	if s.DSN != "" {
		return s.DSN
	}
	return filepath.Join(s.DataDir, "godwit.db")
}

// SecretPath is the file the secret is kept in when Secret is empty.
func (s Storage) SecretPath() string { return filepath.Join(s.DataDir, "secret") }

// LoadSecret returns the signing secret and whether it was generated just now.
func (s Storage) LoadSecret() (secret []byte, created bool, err error) {
	if s.Secret != "" {
		secret, err := auth.DecodeSecret(s.Secret)
		return secret, false, err
	}
	return auth.LoadOrCreateSecret(s.SecretPath())
}

// Minter mints bearer tokens with the signing secret, for the commands that
// need one without asking a server.
type Minter struct{ keys *auth.Keys }

// NewMinter returns a Minter signing with secret.
func NewMinter(secret []byte) (*Minter, error) {
	keys, err := auth.NewKeys(secret, nil)
	if err != nil {
		return nil, err
	}
	return &Minter{keys: keys}, nil
}

// CheckScope reports whether s names a token scope: admin, service or member.
func CheckScope(s string) error {
	_, err := auth.ParseScope(s)
	return err
}

// Mint returns a token of scope (admin, service or member) for subject: a
// member id for member tokens, a name recorded as the actor otherwise.
func (m *Minter) Mint(scope, subject string, ttl time.Duration) (string, error) {
	sc, err := auth.ParseScope(scope)
	if err != nil {
		return "", err
	}
	return m.keys.Mint(sc, subject, ttl)
}

// Minter mints tokens with the app's signing secret.
func (a *App) Minter() *Minter { return &Minter{keys: a.Keys} }

// MintLoadTestPass returns a load-test pass (see auth.Keys.MintLoadTestPass).
func (m *Minter) MintLoadTestPass(subject string, ttl time.Duration) (string, error) {
	return m.keys.MintLoadTestPass(subject, ttl)
}

// MigrationState is one migration and whether it is applied.
type MigrationState struct {
	Version int64
	State   string
	Path    string
}

// Migrate applies pending migrations to the database at dsn, logging each to
// logOut, and returns every migration's state.
func Migrate(ctx context.Context, dsn string, logOut io.Writer) ([]MigrationState, error) {
	d, err := db.Open(ctx, dsn, db.Options{ApplicationName: "godwit-migrate"})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := db.Migrate(ctx, d, slog.New(slog.NewTextHandler(logOut, nil))); err != nil {
		return nil, err
	}
	st, err := db.MigrationStatus(ctx, d)
	if err != nil {
		return nil, err
	}
	out := make([]MigrationState, len(st))
	for i, s := range st {
		out[i] = MigrationState{Version: s.Source.Version, State: string(s.State), Path: s.Source.Path}
	}
	return out, nil
}

// DefaultExpireChunk is how many members an expiry run reads per query and
// expires per transaction.
const DefaultExpireChunk = loyalty.DefaultExpireChunk

// ExpireConfig is what RunExpire needs.
type ExpireConfig struct {
	DSN         string
	DBMaxConns  int       // zero: DefaultDBMaxConns
	ProgramFile string    // "" is the built-in program
	AsOf        time.Time // zero: now
	ChunkSize   int       // zero: DefaultExpireChunk
	// DryRun reports what would expire and writes nothing (loyalty.ExpireOptions.DryRun).
	DryRun bool
	// Progress, when set, is called after each chunk with the members done
	// and the candidates found at the start.
	Progress func(done, total int)
	// Observe sets telemetry up; ServiceName defaults to "godwit-expire".
	Observe TelemetryConfig
}

// ExpireReport summarises RunExpire.
type ExpireReport struct {
	Policy           string
	ExpiryMonths     int
	AsOf             time.Time
	Candidates       int // members examined
	AccountsAffected int // members who lost points (would lose, in a dry run)
	PointsExpired    int64
	DryRun           bool // nothing was written
}

// RunExpire runs the loyalty points expiry job once, as serve does every
// expiry interval, with telemetry set up from OTEL_* and flushed before it
// returns, so a run from cron is one trace (loyalty.expiration_batch).
func RunExpire(ctx context.Context, cfg ExpireConfig) (ExpireReport, error) {
	prog, err := loadProgram(cfg.ProgramFile)
	if err != nil {
		return ExpireReport{}, err
	}
	if cfg.Observe.ServiceName == "" {
		cfg.Observe.ServiceName = "godwit-expire"
	}
	tel, flush, err := cfg.Observe.setup(ctx)
	if err != nil {
		return ExpireReport{}, err
	}
	defer flush()
	d, err := openDatabase(ctx, Config{DSN: cfg.DSN, DBMaxConns: cfg.DBMaxConns}, tel, cfg.Observe.ServiceName)
	if err != nil {
		return ExpireReport{}, err
	}
	defer d.Close()
	loy, err := newLoyalty(base{db: d, now: time.Now, tel: tel, log: tel.Logger}, prog, nil)
	if err != nil {
		return ExpireReport{}, err
	}
	rep, err := loy.ExpireBatch(ctx, loyalty.ExpireOptions{Now: cfg.AsOf, ChunkSize: cfg.ChunkSize, Progress: cfg.Progress, DryRun: cfg.DryRun})
	if err != nil {
		return ExpireReport{}, fmt.Errorf("expire: %w", err)
	}
	return ExpireReport{
		Policy: rep.Policy, ExpiryMonths: prog.Expiry.Months, AsOf: rep.Now,
		Candidates: rep.Candidates, AccountsAffected: rep.AccountsAffected, PointsExpired: rep.TotalPointsExpired, DryRun: rep.DryRun,
	}, nil
}

// VerifyDatabase builds the whole application on the database (no jobs, no
// demo data), checks every invariant under one godwit.verify span and closes
// it again, flushing its telemetry: `godwit verify --db` run from cron is one
// trace. cfg.Observe.ServiceName defaults to "godwit-verify".
func VerifyDatabase(ctx context.Context, cfg Config, grace time.Duration) (_ VerifyReport, err error) {
	if cfg.Observe.ServiceName == "" {
		cfg.Observe.ServiceName = "godwit-verify"
	}
	cfg.Services, cfg.Demo = nil, false
	a, err := New(ctx, cfg)
	if err != nil {
		return VerifyReport{}, err
	}
	defer a.Close()
	ctx, span := a.tel.TracerProvider.Tracer(tracerName).Start(ctx, "godwit.verify")
	defer span.End()
	rep, err := a.Verify(ctx, grace)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return rep, err
	}
	span.SetAttributes(attribute.Int("verify.violations", len(rep.Violations)))
	return rep, nil
}

// tracerName is the instrumentation scope of the spans app starts itself.
const tracerName = "github.com/godwit-dev/godwit/internal/app"
