package catalog_test

import (
	"context"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestSeedDemoIsIdempotentAcrossReplicas(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var wg sync.WaitGroup
		inserted := make([]int, 3)
		for i := range inserted {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := catalog.New(catalog.Config{DB: d}).SeedDemo(ctx)
				if err != nil {
					t.Error(err)
				}
				inserted[i] = n
			}()
		}
		wg.Wait()
		ps, err := catalog.New(catalog.Config{DB: d}).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 8 || inserted[0]+inserted[1]+inserted[2] != 8 {
			t.Fatalf("products %d, inserted %v", len(ps), inserted)
		}
		for _, p := range ps {
			if p.Available <= 0 || p.Price.Currency != "USD" || p.Price.Amount <= 0 {
				t.Errorf("bad demo product %+v", p)
			}
		}
		if n, _ := catalog.New(catalog.Config{DB: d}).SeedDemo(ctx); n != 0 {
			t.Errorf("second seed inserted %d", n)
		}
	})
}
