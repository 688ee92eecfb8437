package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
)

// Failover phases, as the test drives them.
const (
	phaseUp       = iota // the first primary serves
	phaseKilled          // it is being killed or is dead; the standby is not promoted yet
	phasePromoted        // the standby is the primary
)

// mintResult is one mint the load made.
type mintResult struct {
	startPhase, endPhase int32
	code                 int
	token                string
	err                  error
}

// A primary crashes under validation and mint load and its synchronous
// standby is promoted, with keymint given both hosts and
// target_session_attrs=read-write: cached validations never fail, mints
// fail with 503 only between the crash and the promotion's first success
// and then succeed on the new primary without restarting keymint, and
// every mint that was answered 200 is in the new primary.
func TestPostgresFailover(t *testing.T) {
	t.Parallel()
	pair := pgtest.StartPair(t)
	cfg := testConfig(t)
	cfg.DatabaseURL = pair.FailoverURL()
	cfg.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("failover-pepper-0123456789abcdef"))
	// Longer than the test: a cached token must never need the store.
	cfg.Cache.L1TTL = 30 * time.Minute
	const email, password = "failover@example.com", "a long test password"
	createUser(t, cfg, email, "acme", password, false)
	srv := startServer(t, cfg)

	client := &http.Client{Timeout: time.Minute}
	mint := func(ctx context.Context, name string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", srv.http+"/api-tokens", strings.NewReader(`{"displayData":{"name":"`+name+`"}}`))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-api-email", email)
		req.Header.Set("x-api-password", password)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return resp.StatusCode, "", err
		}
		if resp.StatusCode != http.StatusOK {
			if strings.Contains(string(body), password) {
				return resp.StatusCode, "", fmt.Errorf("the answer echoes the password: %s", body)
			}
			return resp.StatusCode, "", nil
		}
		var tok upsolverToken
		if err := json.Unmarshal(body, &tok); err != nil || tok.APIToken == "" {
			return resp.StatusCode, "", fmt.Errorf("mint answer %s: %v", body, err)
		}
		return resp.StatusCode, tok.APIToken, nil
	}

	// Tokens validated once, so cached.
	var cached []string
	for i := range 4 {
		code, tok, err := mint(context.Background(), fmt.Sprint("cached-", i))
		if err != nil || code != 200 {
			t.Fatalf("mint before the load: %d %v", code, err)
		}
		if v := validate(t, srv, tok); v["valid"] != true {
			t.Fatalf("validate %d before the load: %v", i, v)
		}
		cached = append(cached, tok)
	}

	var phase atomic.Int32
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup

	// Validation load on the cached tokens, over gRPC.
	var validations [3]atomic.Int64 // per phase
	var validationFailures atomic.Int64
	var firstValidationFailure atomic.Value
	for g := range 3 {
		wg.Go(func() {
			for i := g; ctx.Err() == nil; i++ {
				p := phase.Load()
				vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				r, err := srv.client.ValidateToken(vctx, &keymintv1.ValidateTokenRequest{Token: cached[i%len(cached)]})
				cancel()
				if ctx.Err() != nil {
					return
				}
				if err != nil || !r.GetValid() {
					validationFailures.Add(1)
					firstValidationFailure.CompareAndSwap(nil, fmt.Sprintf("phase %d: %v, %v", p, r, err))
					continue
				}
				validations[p].Add(1)
			}
		})
	}

	// Mint load.
	var mu sync.Mutex
	var results []mintResult
	okIn := [3]atomic.Int64{}     // 200s by start phase
	unavailable := atomic.Int64{} // 503s
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				start := phase.Load()
				code, tok, err := mint(ctx, fmt.Sprintf("load-%d-%d", g, i))
				if ctx.Err() != nil {
					return
				}
				r := mintResult{startPhase: start, endPhase: phase.Load(), code: code, token: tok, err: err}
				switch {
				case err == nil && code == 200:
					okIn[start].Add(1)
				case err == nil && code == http.StatusServiceUnavailable:
					unavailable.Add(1)
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}

	// Events, each awaited with a generous bound (the machine is loaded).
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				stopLoad()
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("mints on the first primary", func() bool { return okIn[phaseUp].Load() >= 5 })
	// The phase moves first: a mint that ends while the kill runs may fail.
	phase.Store(phaseKilled)
	pair.KillPrimary()
	waitFor("a mint refused while no primary runs", func() bool { return unavailable.Load() >= 1 })
	waitFor("validations while no primary runs", func() bool { return validations[phaseKilled].Load() >= 50 })
	// pgxpool pings a connection idle for over a second before handing it
	// out: past this, every connection to the dead primary is found dead
	// before a mint can use it (a real failover takes longer than this).
	time.Sleep(1500 * time.Millisecond)
	pair.Promote()
	phase.Store(phasePromoted)
	waitFor("mints on the promoted standby", func() bool { return okIn[phasePromoted].Load() >= 10 })
	waitFor("validations after the promotion", func() bool { return validations[phasePromoted].Load() >= 50 })
	stopLoad()
	wg.Wait()

	if n := validationFailures.Load(); n > 0 {
		t.Errorf("%d cached validations failed; first: %v", n, firstValidationFailure.Load())
	}
	// Mints: 200, or 503 for a mint that overlapped the outage and began
	// before the first success on the new primary.
	firstPromotedOK := -1
	var confirmed []string
	for i, r := range results {
		if r.code == 200 && r.err == nil {
			confirmed = append(confirmed, r.token)
			if r.startPhase == phasePromoted && firstPromotedOK < 0 {
				firstPromotedOK = i
			}
		}
	}
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("mint %d (phases %d..%d): %v", i, r.startPhase, r.endPhase, r.err)
		case r.code == 200:
		case r.code == http.StatusServiceUnavailable && r.endPhase >= phaseKilled && (r.startPhase < phasePromoted || i < firstPromotedOK):
		default:
			t.Errorf("mint %d (phases %d..%d) answered %d; want 200, or 503 during the failover", i, r.startPhase, r.endPhase, r.code)
		}
	}
	t.Logf("%d mints (%d confirmed, %d refused with 503), validations per phase %d/%d/%d",
		len(results), len(confirmed), unavailable.Load(), validations[0].Load(), validations[1].Load(), validations[2].Load())

	// Nothing confirmed is lost: a keymint with a cold cache, on the new
	// primary alone, validates every token that was answered 200.
	cfg2 := testConfig(t)
	cfg2.DatabaseURL = pair.StandbyURL
	cfg2.Pepper = cfg.Pepper
	srv2 := startServer(t, cfg2)
	for _, tok := range append(cached, confirmed...) {
		if v := validate(t, srv2, tok); v["valid"] != true {
			t.Errorf("a token answered 200 before or during the failover is not on the new primary: %v", v)
		}
	}
}
