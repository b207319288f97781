package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// PostgreSQL faults beyond "it goes away" (TestDatabaseOutage): Godwit's
// backends terminated in the middle of their transactions, a statement
// cancelled by statement_timeout, the server restarted under load. Each runs
// mixed load (guest checkouts, earning, redemptions, member transfers) whose
// client retries every answer that is not final (a 5xx, or a problem with
// Retry-After) with the same Idempotency-Key until it is, as a careful client
// does, and keeps what each final answer acknowledged. Afterwards nothing
// acknowledged is missing, nothing is applied twice (every member's balance is
// exactly what the acknowledged operations say), verify is clean, and the
// service answers again without a restart.

// faultLease is the checkout and Idempotency-Key lease of the fault tests: a
// request whose process lost its database mid-way is taken over by its retry
// this long after.
const faultLease = 2 * time.Second

// faultRig is a real app on dsn with a short lease and a seeded load.
func faultRig(t *testing.T, dsn string) (*rig, *mixedLoad) {
	t.Helper()
	logs := &testlog.Buffer{}
	r := newRig(t, rigOptions{dsn: dsn, logOut: logs, cfg: app.Config{Demo: true, CheckoutLease: faultLease}})
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "ERROR") || strings.Contains(line, "WARN") {
					t.Log(line)
				}
			}
		}
	})
	return r, newMixedLoad(t, r)
}

// mixedLoad is the fault tests' client: workers run operations until told to
// stop, each retried with its Idempotency-Key until its answer is final.
type mixedLoad struct {
	base    string
	hc      *http.Client
	service string
	members []string
	tokens  map[string]string
	initial int64 // each member's balance before the load
	product string
	option  string // the redemption option redeemed
	prefix  string // of every external id and key of this load

	seq atomic.Int64

	mu          sync.Mutex
	change      map[string]int64 // member → balance change the acknowledged operations make
	earns       []string         // external ids of acknowledged earnings
	orders      []string         // order ids of acknowledged checkouts
	redemptions []string
	transfers   []string
	finals      map[string]int // "op status" of final answers
	notFinal    map[int]int    // status of answers retried (0: no answer)
	notFinalBy  map[string]int // their problem codes
	unfinished  []string       // operations without a final answer in time
	slowest     time.Duration  // the longest single answer
}

func newMixedLoad(t *testing.T, r *rig) *mixedLoad {
	t.Helper()
	l := &mixedLoad{
		base: r.srv.URL, hc: &http.Client{Timeout: 30 * time.Second},
		service: r.token(auth.ScopeService, "fault-load"), tokens: map[string]string{}, initial: 50_000,
		prefix: nextKey("pgfault"), change: map[string]int64{},
		finals: map[string]int{}, notFinal: map[int]int{}, notFinalBy: map[string]int{},
	}
	admin := r.token(auth.ScopeAdmin, "fault-admin")
	for i := range 6 {
		id := fmt.Sprintf("fault-m%d-%s", i, l.prefix)
		r.must("POST", "/v1/members", l.service, map[string]any{"id": id, "name": "Fault Member", "email": "fault.member@example.test"}, nil)
		r.must("POST", "/v1/admin/members/"+id+"/adjustments", admin, map[string]any{"points": l.initial, "reason": "fault test float"}, idem("float"))
		l.members = append(l.members, id)
		l.tokens[id] = r.token(auth.ScopeMember, id)
	}
	products, _ := r.must("GET", "/v1/products", "", nil, nil)["products"].([]any)
	if len(products) == 0 {
		t.Fatal("the demo catalog is empty")
	}
	l.product = products[0].(map[string]any)["id"].(string)
	r.must("PUT", "/v1/admin/inventory/"+l.product, admin, map[string]any{"available": 100_000}, nil)
	options, _ := r.must("GET", "/v1/redemption-options", "", nil, nil)["options"].([]any)
	cheapest := int64(1 << 62)
	for _, o := range options {
		o := o.(map[string]any)
		if p := int64(o["points"].(float64)); p < cheapest {
			cheapest, l.option = p, o["id"].(string)
		}
	}
	if l.option == "" {
		t.Fatal("no redemption option")
	}
	return l
}

// send makes one attempt; code 0 means no answer.
func (l *mixedLoad) send(method, path, token, key string, body any) (int, map[string]any, http.Header) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, l.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	res, err := l.hc.Do(req)
	l.mu.Lock()
	l.slowest = max(l.slowest, time.Since(start))
	l.mu.Unlock()
	if err != nil {
		return 0, nil, nil
	}
	defer res.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &m)
	return res.StatusCode, m, res.Header
}

// final sends the request until its answer is final — not a 5xx, not a
// problem with Retry-After, not a lost connection — with the same key each
// time, for up to a minute.
func (l *mixedLoad) final(op, method, path, token, key string, body any) (int, map[string]any) {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		code, m, h := l.send(method, path, token, key, body)
		if code != 0 && code < 500 && h.Get("Retry-After") == "" {
			l.mu.Lock()
			l.finals[fmt.Sprintf("%s %d", op, code)]++
			l.mu.Unlock()
			return code, m
		}
		l.mu.Lock()
		l.notFinal[code]++
		if c, _ := m["code"].(string); c != "" {
			l.notFinalBy[c]++
		}
		l.mu.Unlock()
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
	}
	l.mu.Lock()
	l.unfinished = append(l.unfinished, op+" "+path+" "+key)
	l.mu.Unlock()
	return 0, nil
}

func (l *mixedLoad) key(op string) string {
	return fmt.Sprintf("%s-%s-%d", l.prefix, op, l.seq.Add(1))
}

// run starts workers that run random operations until stop is closed and
// returns a wait for them to finish their last operation.
func (l *mixedLoad) run(workers int, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.one(rng)
			}
		})
	}
	return wg.Wait
}

// one runs one random operation.
func (l *mixedLoad) one(rng *rand.Rand) {
	m := l.members[rng.IntN(len(l.members))]
	switch n := rng.IntN(10); {
	case n < 3:
		l.checkout()
	case n < 6:
		l.earn(m, rng)
	case n < 8:
		l.redeem(m)
	default:
		to := l.members[rng.IntN(len(l.members))]
		if to == m {
			to = l.members[(rng.IntN(len(l.members)-1)+1+indexOf(l.members, m))%len(l.members)]
		}
		l.transfer(m, to)
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func (l *mixedLoad) earn(member string, rng *rand.Rand) {
	ext := l.key("earn")
	code, m := l.final("earn", "POST", "/v1/members/"+member+"/activities", l.service, ext, flight(ext, 500+rng.IntN(2500)))
	if code == 201 {
		l.mu.Lock()
		l.change[member] += int64(m["total_points_earned"].(float64))
		l.earns = append(l.earns, ext)
		l.mu.Unlock()
	}
}

func (l *mixedLoad) redeem(member string) {
	code, m := l.final("redeem", "POST", "/v1/members/"+member+"/redemptions", l.tokens[member], l.key("redeem"), map[string]any{"option_id": l.option})
	if code == 201 {
		l.mu.Lock()
		l.change[member] -= int64(m["points_deducted"].(float64))
		l.redemptions = append(l.redemptions, m["redemption_id"].(string))
		l.mu.Unlock()
	}
}

func (l *mixedLoad) transfer(from, to string) {
	code, m := l.final("transfer", "POST", "/v1/members/"+from+"/transfers", l.tokens[from], l.key("transfer"), map[string]any{"to_member_id": to, "points": 100})
	if code == 201 {
		l.mu.Lock()
		p := int64(m["points"].(float64))
		l.change[from] -= p
		l.change[to] += p
		l.transfers = append(l.transfers, m["transfer_id"].(string))
		l.mu.Unlock()
	}
}

// checkout is a guest checkout of one unit: a cart, its item, the checkout.
// The cart steps carry no key; a retried item add may add a second unit,
// which the checkout then buys (the stock stays exact either way).
func (l *mixedLoad) checkout() {
	code, cart := l.final("cart", "POST", "/v1/carts", "", "", map[string]any{})
	if code != 201 {
		return
	}
	id := cart["id"].(string)
	if code, _ := l.final("cart item", "POST", "/v1/carts/"+id+"/items", "", "", map[string]any{"product_id": l.product, "quantity": 1}); code >= 300 {
		return
	}
	code, m := l.final("checkout", "POST", "/v1/checkout", "", l.key("checkout"),
		map[string]any{"cart_id": id, "payment": map[string]any{"token": "tok_visa"}, "email": "fault.guest@example.test"})
	if code == 201 {
		l.mu.Lock()
		l.orders = append(l.orders, m["order_id"].(string))
		l.mu.Unlock()
	}
}

// summary is the load's outcome in one line.
func (l *mixedLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("acknowledged: %d checkouts, %d earnings, %d redemptions, %d transfers; final answers %v; retried answers %v (codes %v); slowest answer %s",
		len(l.orders), len(l.earns), len(l.redemptions), len(l.transfers), l.finals, l.notFinal, l.notFinalBy, l.slowest.Round(time.Millisecond))
}

// baseline counts what exists before the load, so that check can tell the
// load's effects apart.
type baseline struct{ orders, charges, redemptions, transfers int64 }

func (l *mixedLoad) baseline(t *testing.T, d *sql.DB) baseline {
	t.Helper()
	return baseline{
		orders:      countRows(t, d, `SELECT COUNT(*) FROM orders`),
		charges:     countRows(t, d, `SELECT COUNT(*) FROM payment_charges WHERE status = 'succeeded'`),
		redemptions: countRows(t, d, `SELECT COUNT(*) FROM loyalty_redemptions WHERE status = 'success'`),
		transfers:   countRows(t, d, `SELECT COUNT(*) FROM loyalty_transfers WHERE status = 'completed'`),
	}
}

func countRows(t *testing.T, d *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// check asserts that nothing the load was told is lost and nothing is
// doubled: every operation got a final answer; each acknowledged earning,
// order, redemption and transfer exists once and nothing else was made; each
// order has one live charge; every member's balance is the initial one plus
// exactly the acknowledged changes, with no points left held; and verify
// reports no violation.
func (l *mixedLoad) check(t *testing.T, r *rig, before baseline) {
	t.Helper()
	d := r.a.DB.Read()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.unfinished) > 0 {
		t.Errorf("%d operations never got a final answer (the service did not recover): %v", len(l.unfinished), l.unfinished)
	}
	if len(l.orders)+len(l.earns)+len(l.redemptions)+len(l.transfers) == 0 {
		t.Fatal("the load acknowledged nothing")
	}
	if n := countRows(t, d, `SELECT COUNT(*) FROM loyalty_activities WHERE external_id LIKE $1`, l.prefix+"-earn-%"); n != int64(len(l.earns)) {
		t.Errorf("%d activities stored, %d acknowledged", n, len(l.earns))
	}
	for _, ext := range l.earns {
		if countRows(t, d, `SELECT COUNT(*) FROM loyalty_activities WHERE external_id = $1`, ext) != 1 {
			t.Errorf("acknowledged earning %s is not stored once", ext)
		}
	}
	if n := countRows(t, d, `SELECT COUNT(*) FROM orders`) - before.orders; n != int64(len(l.orders)) {
		t.Errorf("%d orders made, %d acknowledged", n, len(l.orders))
	}
	if n := countRows(t, d, `SELECT COUNT(*) FROM payment_charges WHERE status = 'succeeded'`) - before.charges; n != int64(len(l.orders)) {
		t.Errorf("%d live charges made, %d orders acknowledged", n, len(l.orders))
	}
	for _, id := range l.orders {
		if countRows(t, d, `SELECT COUNT(*) FROM orders o JOIN payment_charges c ON c.id = o.charge_id AND c.status = 'succeeded' WHERE o.id = $1 AND o.status = 'confirmed'`, id) != 1 {
			t.Errorf("acknowledged order %s is not confirmed with one live charge", id)
		}
	}
	if n := countRows(t, d, `SELECT COUNT(*) FROM loyalty_redemptions WHERE status = 'success'`) - before.redemptions; n != int64(len(l.redemptions)) {
		t.Errorf("%d redemptions made, %d acknowledged", n, len(l.redemptions))
	}
	if n := countRows(t, d, `SELECT COUNT(*) FROM loyalty_transfers WHERE status = 'completed'`) - before.transfers; n != int64(len(l.transfers)) {
		t.Errorf("%d transfers made, %d acknowledged", n, len(l.transfers))
	}
	for _, m := range l.members {
		var balance, held int64
		if err := d.QueryRowContext(context.Background(), `SELECT balance, held FROM loyalty_members WHERE id = $1`, m).Scan(&balance, &held); err != nil {
			t.Fatal(err)
		}
		if want := l.initial + l.change[m]; balance != want || held != 0 {
			t.Errorf("member %s: balance %d (held %d), want %d (held 0): acknowledged operations lost or applied twice", m, balance, held, want)
		}
	}
	requireVerified(t, r.a, 0)
}

// recovers checks that the service answers by itself, without a restart:
// each kind of request succeeds at its first attempt.
func (l *mixedLoad) recovers(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, _, _ := l.send("GET", "/readyz", "", "", nil)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	m, to := l.members[0], l.members[1]
	ext := l.key("earn")
	code, earned, _ := l.send("POST", "/v1/members/"+m+"/activities", l.service, ext, flight(ext, 1000))
	if code == 201 {
		l.mu.Lock()
		l.change[m] += int64(earned["total_points_earned"].(float64))
		l.earns = append(l.earns, ext)
		l.mu.Unlock()
	} else {
		t.Errorf("earn after the fault: %d %v, want it answered at the first attempt", code, earned)
	}
	code, moved, _ := l.send("POST", "/v1/members/"+m+"/transfers", l.tokens[m], l.key("transfer"), map[string]any{"to_member_id": to, "points": 100})
	if code == 201 {
		l.mu.Lock()
		l.change[m] -= 100
		l.change[to] += 100
		l.transfers = append(l.transfers, moved["transfer_id"].(string))
		l.mu.Unlock()
	} else {
		t.Errorf("transfer after the fault: %d %v, want it answered at the first attempt", code, moved)
	}
	if code, body, _ := l.send("GET", "/v1/members/"+m, l.tokens[m], "", nil); code != 200 {
		t.Errorf("balance after the fault: %d %v", code, body)
	}
	if code, body, _ := l.send("POST", "/v1/carts", "", "", map[string]any{}); code != 201 {
		t.Errorf("cart after the fault: %d %v", code, body)
	}
}

// TestPostgresBackendsTerminated terminates Godwit's own PostgreSQL backends
// (found by their application_name) every 150 ms under mixed load: those
// inside a transaction (active or idle in transaction) each time, the idle
// ones of the pool every fifth time. The client retries what is not final with
// the same key; afterwards nothing acknowledged is lost or doubled, verify is
// clean, and the service answers at the first attempt again.
func TestPostgresBackendsTerminated(t *testing.T) {
	dsn, name, admin := dedicatedDatabase(t)
	r, l := faultRig(t, dsn)
	before := l.baseline(t, r.a.DB.Read())

	stop, killerDone := make(chan struct{}), make(chan struct{})
	var midTx, idle int64
	go func() {
		defer close(killerDone)
		ctx := context.Background()
		for tick := 1; ; tick++ {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			var inTx, other int64
			err := admin.QueryRowContext(ctx, `SELECT
					COUNT(*) FILTER (WHERE xact_start IS NOT NULL AND pg_terminate_backend(pid)),
					COUNT(*) FILTER (WHERE xact_start IS NULL AND $3 AND pg_terminate_backend(pid))
				FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()`,
				name, "godwit", tick%5 == 0).Scan(&inTx, &other)
			if err != nil {
				t.Errorf("terminate: %v", err)
				return
			}
			midTx += inTx
			idle += other
		}
	}()
	wait := l.run(4, stop)
	time.Sleep(6 * time.Second)
	close(stop)
	<-killerDone
	wait()
	t.Logf("terminated %d backends inside a transaction and %d idle ones; %s", midTx, idle, l.summary())
	if midTx < 5 {
		t.Fatalf("only %d backends were terminated inside a transaction: the test did not test", midTx)
	}
	l.recovers(t)
	l.check(t, r, before)
	if n := l.notFinal[500]; n > 0 {
		t.Errorf("%d answers were 500 (a bug's answer); a lost connection should answer 503", n)
	}
}

// TestPostgresStatementTimeout runs Godwit with statement_timeout (set in the
// DSN, as an operator may) and holds row locks from another session so that
// an earning, a transfer and a checkout wait on them until the timeout
// cancels the statement: each answers 503 database_timeout (a problem that
// says to retry, not a hang and not a 500) and writes nothing; once the locks
// are gone, the same requests with the same keys succeed.
func TestPostgresStatementTimeout(t *testing.T) {
	dsn, _, _ := dedicatedDatabase(t)
	r, l := faultRig(t, withParam(t, dsn, "statement_timeout", "1500"))
	ctx := context.Background()
	m, to := l.members[0], l.members[1]
	var timeout string
	if err := r.a.DB.Read().QueryRowContext(ctx, `SHOW statement_timeout`).Scan(&timeout); err != nil || timeout != "1500ms" {
		t.Fatalf("statement_timeout = %q (%v), want 1500ms", timeout, err)
	}
	code, cart := l.final("cart", "POST", "/v1/carts", "", "", map[string]any{})
	if code != 201 {
		t.Fatalf("cart: %d", code)
	}
	cartID := cart["id"].(string)
	if code, _ := l.final("cart item", "POST", "/v1/carts/"+cartID+"/items", "", "", map[string]any{"product_id": l.product, "quantity": 1}); code >= 300 {
		t.Fatalf("cart item: %d", code)
	}
	before := fingerprint(t, r.a.DB)

	// Another session (of another application) takes the rows' locks.
	locker, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	ltx, err := locker.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql string
		arg string
	}{
		{`SELECT 1 FROM loyalty_members WHERE id = $1 FOR UPDATE`, m},
		{`SELECT 1 FROM inventory WHERE product_id = $1 FOR UPDATE`, l.product},
	} {
		if _, err := ltx.ExecContext(ctx, q.sql, q.arg); err != nil {
			t.Fatal(err)
		}
	}
	requests := []struct {
		name, method, path, token, key string
		body                           any
	}{
		{"earn", "POST", "/v1/members/" + m + "/activities", l.service, l.key("earn"), nil},
		{"transfer", "POST", "/v1/members/" + m + "/transfers", l.tokens[m], l.key("transfer"), map[string]any{"to_member_id": to, "points": 100}},
		{"checkout", "POST", "/v1/checkout", "", l.key("checkout"), map[string]any{"cart_id": cartID, "payment": map[string]any{"token": "tok_visa"}, "email": "fault.guest@example.test"}},
	}
	requests[0].body = flight(requests[0].key, 1000)
	for _, rq := range requests {
		start := time.Now()
		code, body, h := l.send(rq.method, rq.path, rq.token, rq.key, rq.body)
		took := time.Since(start)
		if code != 503 || body["code"] != httpx.CodeDatabaseTimeout || h.Get("Retry-After") == "" {
			t.Errorf("%s while its row is locked: %d %v (Retry-After %q) after %s, want 503 %s with Retry-After",
				rq.name, code, body, h.Get("Retry-After"), took.Round(time.Millisecond), httpx.CodeDatabaseTimeout)
		}
		t.Logf("%s answered %d %v after %s", rq.name, code, body["code"], took.Round(time.Millisecond))
	}
	if d := diff(before, fingerprint(t, r.a.DB), "idempotency_keys"); d != "" {
		t.Errorf("requests that timed out wrote: %s", d)
	}
	if err := ltx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for _, rq := range requests {
		if code, body, _ := l.send(rq.method, rq.path, rq.token, rq.key, rq.body); code != 201 {
			t.Errorf("%s retried with its key once the lock is gone: %d %v", rq.name, code, body)
		}
	}
	l.recovers(t)
	requireVerified(t, r.a, 0)
}

// withParam sets a query parameter of a DSN; pgx sends parameters it does
// not know to the server as run-time settings.
func withParam(t *testing.T, dsn, key, value string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// cluster is a throwaway PostgreSQL server a test starts with the Debian
// server binaries (initdb, pg_ctl), on a free port, in a directory of its own.
type cluster struct {
	t    *testing.T
	bin  string // the directory of initdb and pg_ctl
	dir  string
	data string
	port int
	uid  int // run the binaries as this user; -1: as this process
}

// startCluster starts a throwaway cluster, stopped and removed at cleanup. It
// skips the test, saying why, where the server binaries are absent, or when
// running as root (as CI does) without a postgres user to run them as:
// initdb refuses to run as root.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		t.Skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): the restart test needs initdb and pg_ctl (Debian's postgresql package)")
	}
	sort.Slice(initdbs, func(i, j int) bool { return versionOf(initdbs[i]) < versionOf(initdbs[j]) })
	c := &cluster{t: t, bin: filepath.Dir(initdbs[len(initdbs)-1]), uid: -1}
	gid := -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no postgres user: initdb refuses to run as root, and the restart test runs it as postgres")
		}
		if _, err := osexec.LookPath("runuser"); err != nil {
			t.Skip("running as root without runuser: the restart test runs initdb as the postgres user through it")
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	dir, err := os.MkdirTemp("", "godwit-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir, c.data = dir, filepath.Join(dir, "data")
	if c.uid >= 0 {
		if err := os.Chown(dir, c.uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.command("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop").Run()
		_ = os.RemoveAll(dir)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, dir), "start")
	return c
}

// versionOf is the major version in a /usr/lib/postgresql/<v>/bin path.
func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// DSN is the cluster's postgres database.
func (c *cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func (c *cluster) command(name string, args ...string) *osexec.Cmd {
	path := filepath.Join(c.bin, name)
	var cmd *osexec.Cmd
	if c.uid >= 0 {
		cmd = osexec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = osexec.Command(path, args...)
	}
	cmd.Dir = c.dir // the postgres user may not enter the test's directory
	// pg_ctl leaves the server running; should it hold the output open, do
	// not wait for it.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *cluster) run(name string, args ...string) {
	c.t.Helper()
	if out, err := c.command(name, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", name, args, err, out, log)
	}
}

// restart restarts the server with pg_ctl's shutdown mode: fast (sessions
// terminated, a clean shutdown) or immediate (the server crashes and replays
// its WAL on start).
func (c *cluster) restart(mode string) time.Duration {
	c.t.Helper()
	start := time.Now()
	// -l again: without it the new server would write to pg_ctl's output.
	c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-m", mode, "-w", "-t", "60", "restart")
	return time.Since(start)
}

// TestPostgresServerRestarted restarts a throwaway PostgreSQL server under
// mixed load, once with a fast shutdown and once with an immediate one (a
// crash: the server replays its WAL): every operation still gets a final
// answer, nothing acknowledged is lost or doubled, verify is clean, and the
// service answers again by itself, without a restart of its own.
func TestPostgresServerRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("the restart test starts a PostgreSQL cluster of its own; skipped in -short mode")
	}
	c := startCluster(t)
	r, l := faultRig(t, c.DSN())
	before := l.baseline(t, r.a.DB.Read())
	stop := make(chan struct{})
	wait := l.run(4, stop)
	var took []string
	for _, mode := range []string{"fast", "immediate"} {
		time.Sleep(1500 * time.Millisecond)
		took = append(took, fmt.Sprintf("%s %s", mode, c.restart(mode).Round(time.Millisecond)))
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wait()
	t.Logf("restarts: %s; %s", strings.Join(took, ", "), l.summary())
	l.recovers(t)
	l.check(t, r, before)
}
