package webhooks_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/webhooks"
)

// Two replicas sharing PostgreSQL, both dispatching the whole time, deliver
// each event exactly once when nothing fails, and a token's events in order.
// The leases outlast any attempt here by far, so the count is exact however
// loaded the machine is.
func TestTwoReplicasDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	open := func() store.Store {
		st, err := postgres.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st1, st2 := open(), open()
	f := newFixture(t, st1)
	const tokens = 30
	for range tokens {
		tok := f.mint(t, time.Hour)
		f.revoke(t, tok)
	}
	replica := func(st store.Store, owner string) *webhooks.Dispatcher {
		return webhooks.NewDispatcher(webhooks.DispatcherConfig{Store: st, Sealer: f.sealer, Owner: owner, Now: f.clock.Now,
			Sender: webhooks.NewSender(webhooks.Guard{AllowPrivate: true}, time.Minute), Lease: time.Hour,
			Poll: 5 * time.Millisecond, Concurrency: 3})
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i, st := range []store.Store{st1, st2} {
		d := replica(st, []string{"a", "b"}[i])
		wg.Add(1)
		go func() { defer wg.Done(); d.Run(ctx) }()
	}
	f.recv.waitFor(t.Context(), 2*tokens)
	cancel()
	wg.Wait()

	got := f.recv.deliveries()
	if len(got) != 2*tokens {
		t.Fatalf("received %d deliveries, want %d", len(got), 2*tokens)
	}
	order := map[string][]string{}
	for _, e := range got {
		if n := f.recv.counts[e.ID]; n != 1 {
			t.Errorf("event %s received %d times", e.ID, n)
		}
		b, _ := json.Marshal(e.Data)
		var d events.TokenData
		_ = json.Unmarshal(b, &d)
		order[d.Token.ID] = append(order[d.Token.ID], e.Type)
	}
	for id, types := range order {
		if len(types) != 2 || types[0] != events.TokenCreated || types[1] != events.TokenRevoked {
			t.Errorf("token %s: %v, want created then revoked", id, types)
		}
	}
	for _, d := range f.deliveries(t) {
		if d.State != store.DeliveryDelivered || d.Attempts != 1 {
			t.Errorf("delivery %+v, want delivered at the first attempt", d)
		}
	}
}
