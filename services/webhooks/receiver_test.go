package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/keymint/keymint/services/events"
)

// receiver is a real HTTP endpoint that verifies every delivery's
// signature with the Standard Webhooks library and records what it got.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu sync.Mutex
	// fail answers 503 to the next fail requests (a receiver that is down).
	fail int
	// got holds verified deliveries in arrival order; bad counts requests
	// whose signature did not verify.
	got    []events.Envelope
	counts map[string]int
	bad    int
	// arrived is signalled after each verified delivery.
	arrived chan struct{}
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh, counts: map[string]int{}, arrived: make(chan struct{}, 10000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The library checks the timestamp against the wall clock; tests that
	// move an injected clock far ahead check the signature alone.
	if err := r.wh.VerifyIgnoringTimestamp(body, req.Header); err != nil {
		r.bad++
		r.t.Errorf("signature does not verify: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.fail > 0 {
		r.fail--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var env events.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		r.t.Errorf("payload is not JSON: %v", err)
	}
	if env.ID != req.Header.Get("webhook-id") {
		r.t.Errorf("payload id %q, header %q", env.ID, req.Header.Get("webhook-id"))
	}
	r.got = append(r.got, env)
	r.counts[env.ID]++
	w.WriteHeader(http.StatusNoContent)
	r.arrived <- struct{}{}
}

func (r *receiver) deliveries() []events.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Envelope(nil), r.got...)
}

// waitFor waits until n verified deliveries arrived in all (an event, not
// a sleep; the bound is only there to fail rather than hang).
func (r *receiver) waitFor(ctx context.Context, n int) {
	r.t.Helper()
	for len(r.deliveries()) < n {
		select {
		case <-r.arrived:
		case <-ctx.Done():
			r.t.Fatalf("received %d deliveries, want %d", len(r.deliveries()), n)
		case <-time.After(2 * time.Minute):
			r.t.Fatalf("received %d deliveries after 2 minutes, want %d", len(r.deliveries()), n)
		}
	}
}
