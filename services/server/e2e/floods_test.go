package e2e

import (
	"bytes"
	"context"
	"fmt"
	"github.com/keymint/keymint/services/server"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/store"
)

// The flood tests measure this process's heap, so they do not run in
// parallel with other tests (Go runs every sequential top-level test before
// the parallel ones start), and they assert memory (heap in use after a
// forced collection, against a bound) and liveness (a validation answers
// during and after), never how long anything took.

// heapInUse is the heap in use after a forced collection: what is live.
func heapInUse() uint64 {
	runtime.GC()
	return heapInUseNow(newHeapSamples())
}

// newHeapSamples are the runtime/metrics whose sum is MemStats.HeapInuse.
// They are read without stopping the world, as runtime.ReadMemStats does:
// a sampler calling that every 20 ms on a loaded machine stops the server
// for as long as the kernel takes to run each of its threads once.
func newHeapSamples() []metrics.Sample {
	return []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
}

// heapInUseNow is the heap in use now, read into samples.
func heapInUseNow(samples []metrics.Sample) uint64 {
	metrics.Read(samples)
	return samples[0].Value.Uint64() + samples[1].Value.Uint64()
}

const mib = 1 << 20

// mustValidate checks that a validation of secret answers valid.
func mustValidate(t *testing.T, srv *testServer, secret string) {
	t.Helper()
	r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret})
	if err != nil || !r.GetValid() {
		t.Fatalf("validation: %v %v", r, err)
	}
}

// metadataFlood opens n gRPC streams on one raw HTTP/2 connection, each
// with about size bytes of metadata and never finished (as 20 streams of
// 400 KB once held 830 MB of heap), and returns once the server has
// refused every one or dropped the connection, leaving the connection open
// for the caller to close.
func metadataFlood(t *testing.T, addr string, n, size int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// Read everything the server sends; count streams it ended.
	ended := make(chan uint32, n)
	readerDone := make(chan struct{})
	var wmu sync.Mutex
	go func() {
		defer close(readerDone)
		rf := http2.NewFramer(io.Discard, c)
		rf.SetMaxReadFrameSize(1 << 20)
		for {
			f, err := rf.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					_ = fr.WriteSettingsAck()
					wmu.Unlock()
				}
			case *http2.RSTStreamFrame:
				ended <- f.StreamID
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					ended <- f.StreamID
				}
			case *http2.GoAwayFrame:
				return
			}
		}
	}()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for i := range n {
		block.Reset()
		for _, h := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "keymint"},
			{":path", keymintv1.TokenService_WatchRevocations_FullMethodName}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
		}
		for j := 0; j*8192 < size; j++ {
			_ = enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", j), Value: strings.Repeat("p", 8192), Sensitive: true})
		}
		b := block.Bytes()
		id := uint32(2*i + 1)
		wmu.Lock()
		const chunk = 16 << 10
		first := min(chunk, len(b))
		err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:first], EndHeaders: first == len(b)})
		for off := first; err == nil && off < len(b); off += chunk {
			end := min(off+chunk, len(b))
			err = fr.WriteContinuation(id, end == len(b), b[off:end])
		}
		wmu.Unlock()
		if err != nil {
			break // the server dropped the connection
		}
	}
	// Every stream refused, or the connection dropped. Both are events; the
	// bound is a backstop for a server that holds the streams (the bug).
	backstop := time.After(time.Minute)
	for got := 0; got < n; {
		select {
		case <-ended:
			got++
		case <-readerDone:
			return c
		case <-backstop:
			t.Errorf("the server neither refused %d of %d oversized streams nor dropped the connection", n-got, n)
			return c
		}
	}
	return c
}

// A metadata flood (50 streams of 400 KB of metadata each, on one
// connection and on several) leaves the heap where it was, and validations
// keep answering.
func TestMetadataFlood(t *testing.T) {
	srv := startServer(t, testConfig(t))
	const email, pw = "meta@example.com", "a long test password"
	createUser(t, srv.cfg, email, "acme", pw, false)
	secret := mintToken(t, srv, email, pw)
	mustValidate(t, srv, secret)
	before := heapInUse()
	var wg sync.WaitGroup
	conns := make([]net.Conn, 4)
	for i := range conns {
		wg.Go(func() { conns[i] = metadataFlood(t, srv.grpc, 50, 400<<10) })
	}
	// A validation answers during the flood...
	mustValidate(t, srv, secret)
	wg.Wait()
	// Measured with the flood's connections still open.
	after := heapInUse()
	for _, c := range conns {
		c.Close()
	}
	t.Logf("heap in use %d MiB before, %d MiB after 200 streams of 400 KiB metadata", before/mib, after/mib)
	if after > before+32*mib {
		t.Errorf("heap in use grew from %d to %d MiB", before/mib, after/mib)
	}
	// ...and after it.
	mustValidate(t, srv, secret)
	// A call with metadata over the limit is refused by the server itself
	// (here grpc-go's client refuses to send it, having read the server's
	// SETTINGS_MAX_HEADER_LIST_SIZE).
	if _, err := srv.client.ValidateToken(outgoing("x@example.com", strings.Repeat("p", 64<<10)),
		&keymintv1.ValidateTokenRequest{Token: secret}); err == nil {
		t.Error("64 KiB of metadata accepted")
	}
}

// floodWhileValidating sends two rounds of 60 wrong-password sign-ins while
// one goroutine validates secret over and over and another calls sample
// every 20 ms. It checks that the flood got only refusals (401, 429, 503),
// with some sign-ins checked, and that validations were answered during it;
// it returns the answers by status and the validations made. cause, if not
// nil, adds the server's view to a failed validation's error.
func floodWhileValidating(t *testing.T, srv *testServer, secret string, sample func(), cause func() string) (map[int]int, int64) {
	t.Helper()
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			sample()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	var validations atomic.Int64
	var load sync.WaitGroup
	load.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret})
			if err != nil || !r.GetValid() {
				why := ""
				if cause != nil {
					why = "; the server's cause: " + cause()
				}
				t.Errorf("validation during the flood: %v %v%s", r, err, why)
				return
			}
			validations.Add(1)
		}
	})
	counts := map[int]int{}
	for round := range 2 {
		for code, n := range loginFlood(t, srv, 60, round) {
			counts[code] += n
		}
	}
	close(stop)
	load.Wait()
	sampler.Wait()
	for code := range counts {
		if code != 401 && code != 503 && code != 429 {
			t.Errorf("flood answered %d", code)
		}
	}
	if counts[401] == 0 {
		t.Error("no sign-in was checked: nothing was measured")
	}
	if validations.Load() == 0 {
		t.Error("no validation answered during the flood")
	}
	return counts, validations.Load()
}

// loginFlood sends n concurrent wrong-password sign-ins (REST and gRPC,
// each from its own client address) and returns the statuses answered.
func loginFlood(t *testing.T, srv *testServer, n int, round int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	for i := range n {
		wg.Go(func() {
			email := fmt.Sprintf("flood%d-%d@example.com", round, i)
			req := request(t, "POST", srv.http+"/api-tokens", map[string]string{
				"content-type": "application/json", "x-api-email": email, "x-api-password": "a wrong password",
				"x-forwarded-for": fmt.Sprintf("10.%d.%d.1", round, i),
			})
			req.Body = io.NopCloser(strings.NewReader(mintBody))
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts
}

// A 60-way wrong-password flood with keymint's default argon2 settings
// (64 MiB per hash, a 256 MiB budget) at GOMAXPROCS 1, 2 and 4: the hashes
// in flight never exceed the budget, at most GOMAXPROCS-1 of them (1 at
// GOMAXPROCS 1), the live heap after the flood is back where it was, the
// heap during it stays near the soft memory limit keymint serve sets (the
// slots' hashes + 64 MiB), and validations answer throughout.
func TestLoginFloodMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 64 MiB argon2 many times")
	}
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			cfg := testConfig(t)
			cfg.Argon2MemoryKiB = 64 << 10
			cfg.Argon2Time = 2
			cfg.Argon2BudgetMiB = 256
			cfg.Abuse.TrustedProxies = "127.0.0.1/32"
			// As in TestLoginFlood: the validations are served from L1, as in
			// production between refills. What is tested is that hashing
			// never starves them; a refill from SQLite on a machine at load
			// 48 can outlast the cache's 5 s load bound, and then is a 503
			// by design (a slow store is retried, not waited on).
			cfg.Cache.L1TTL = time.Hour
			srv := startServer(t, cfg)
			const email, pw = "floodmem@example.com", "a long test password"
			createUser(t, cfg, email, "acme", pw, false)
			secret := mintToken(t, srv, email, pw)
			st := srv.srv.HasherStats()
			if want := max(1, min(4, procs-1)); st.Slots != want || st.Paced != (procs == 1) {
				t.Fatalf("hasher %+v at GOMAXPROCS %d, want %d slots", st, procs, want)
			}
			// Warm up what the first sign-ins build (the gateway's connection,
			// the throttle's caches), so that what stays is what the flood
			// left.
			loginFlood(t, srv, 2, 99)
			before := heapInUse()
			// keymint serve's soft limit (services/server/memory.go), over what is live now.
			limit, _ := server.MemoryLimit(0, int64(st.Slots)*int64(cfg.Argon2MemoryKiB)<<10, 0)
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(before) + limit))
			defer debug.SetGCPercent(debug.SetGCPercent(server.DefaultGCPercent))

			var peak atomic.Uint64
			samples := newHeapSamples()
			counts, validations := floodWhileValidating(t, srv, secret, func() {
				inUse := heapInUseNow(samples)
				for p := peak.Load(); inUse > p && !peak.CompareAndSwap(p, inUse); p = peak.Load() {
				}
			}, func() string { return rpcFailures(srv) })
			mustValidate(t, srv, secret)
			after := heapInUse()
			st = srv.srv.HasherStats()
			t.Logf("answers %v; hasher %+v; heap in use %d MiB before, peak %d MiB, %d MiB after; %d validations during",
				counts, st, before/mib, peak.Load()/mib, after/mib, validations)
			if int64(st.Peak)*int64(cfg.Argon2MemoryKiB)<<10 > int64(cfg.Argon2BudgetMiB)<<20 {
				t.Errorf("%d hashes of 64 MiB at once over a 256 MiB budget", st.Peak)
			}
			// No hash's memory (64 MiB) outlives the flood.
			if after > before+32*mib {
				t.Errorf("live heap grew from %d to %d MiB", before/mib, after/mib)
			}
			// The soft limit can be overshot while a collection catches up
			// (on a loaded machine more so): 128 MiB of slack, two hashes.
			// Without the limit (GOGC 400 alone) the heap went past 800 MiB.
			if p := peak.Load(); p > before+uint64(limit)+128*mib {
				t.Errorf("heap in use peaked at %d MiB, over the soft limit %d MiB + two hashes", p/mib, (before+uint64(limit))/mib)
			}
		})
	}
}

// A validation with a huge required-scope list (140,000 scopes, 957 KiB)
// is refused with INVALID_ARGUMENT over gRPC and 400 over REST, with a clear
// message; a flood of them leaves the heap as it was, and validations keep
// answering.
func TestRequiredScopesFlood(t *testing.T) {
	srv := startServer(t, testConfig(t))
	const email, pw = "scopes@example.com", "a long test password"
	createUser(t, srv.cfg, email, "acme", pw, false)
	secret := mintToken(t, srv, email, pw, "read")
	scopes := make([]string, 140_000)
	for i := range scopes {
		scopes[i] = fmt.Sprintf("s%d", i%10_000)
	}
	big := &keymintv1.ValidateTokenRequest{Token: secret, RequiredScopes: scopes}
	_, err := srv.client.ValidateToken(context.Background(), big)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "at most 64 required scopes") {
		t.Fatalf("140,000 required scopes over gRPC: %v", err)
	}
	body := `{"token":"` + secret + `","requiredScopes":["` + strings.Join(scopes[:80_000], `","`) + `"]}`
	resp, out := doReq(t, request(t, "POST", srv.http+"/v1/tokens:validate", nil), body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(out, "at most 64 required scopes") {
		t.Fatalf("80,000 required scopes over REST: %d %.200s", resp.StatusCode, out)
	}
	// 64 is still fine, and matched.
	r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret, RequiredScopes: append(scopes[:63:63], "read")})
	if err != nil || r.GetValid() || r.GetReason() != keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE {
		t.Fatalf("64 required scopes: %v %v", r, err)
	}
	before := heapInUse()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if _, err := srv.client.ValidateToken(context.Background(), big); status.Code(err) != codes.InvalidArgument {
					t.Errorf("flood call: %v", err)
				}
			}
		})
	}
	mustValidate(t, srv, secret)
	wg.Wait()
	after := heapInUse()
	if after > before+16*mib {
		t.Errorf("heap in use grew from %d to %d MiB", before/mib, after/mib)
	}
	mustValidate(t, srv, secret)
}

// leakCounts counts the store work leak reports cause.
type leakCounts struct {
	store.Store
	lookups, revokes, audits atomic.Int64
}

func (c *leakCounts) GetTokenByDigest(ctx context.Context, d [][]byte) (store.Token, error) {
	c.lookups.Add(1)
	return c.Store.GetTokenByDigest(ctx, d)
}

func (c *leakCounts) RevokeToken(ctx context.Context, id string, at time.Time, events ...store.Event) (store.Token, error) {
	c.revokes.Add(1)
	return c.Store.RevokeToken(ctx, id, at, events...)
}

func (c *leakCounts) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	if e.Action == audit.TokenLeakRevoke {
		c.audits.Add(1)
	}
	return c.Store.AppendAuditEvent(ctx, e)
}

// A leak report naming one token 100 times costs one lookup, one
// revocation and one audit event, and still answers that it received 100;
// a flood of such reports leaves the heap as it was.
func TestLeakReportDuplicates(t *testing.T) {
	cfg := testConfig(t)
	counts := &leakCounts{}
	cfg.storeHook = func(s store.Store) store.Store { counts.Store = s; return counts }
	srv := startServer(t, cfg)
	const email, pw = "leaks@example.com", "a long test password"
	createUser(t, cfg, email, "acme", pw, false)
	secret := mintToken(t, srv, email, pw)
	other := mintToken(t, srv, email, pw)
	lookups := counts.lookups.Load()
	report := make([]string, 100)
	for i := range report {
		report[i] = secret
	}
	r, err := srv.client.ReportLeakedTokens(context.Background(), &keymintv1.ReportLeakedTokensRequest{Tokens: report})
	if err != nil || r.GetReceived() != 100 {
		t.Fatalf("report: %v %v", r, err)
	}
	srv.srv.WaitTokens() // the revocations run after the answer
	if n := counts.lookups.Load() - lookups; n != 1 {
		t.Errorf("%d store lookups for one token reported 100 times", n)
	}
	if n, a := counts.revokes.Load(), counts.audits.Load(); n != 1 || a != 1 {
		t.Errorf("%d revocations and %d audit events for one token reported 100 times", n, a)
	}
	mustValidate(t, srv, other)
	// A flood of duplicate reports (each answered, or refused by the
	// per-address limit) leaves the heap where it was.
	before := heapInUse()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := srv.client.ReportLeakedTokens(context.Background(), &keymintv1.ReportLeakedTokensRequest{Tokens: report})
			if err != nil && status.Code(err) != codes.ResourceExhausted {
				t.Errorf("report: %v", err)
			}
		})
	}
	wg.Wait()
	srv.srv.WaitTokens()
	if after := heapInUse(); after > before+16*mib {
		t.Errorf("heap in use grew from %d to %d MiB", before/mib, after/mib)
	}
	if n := counts.revokes.Load(); n != 1 {
		t.Errorf("%d revocations in all, want 1", n)
	}
	mustValidate(t, srv, other)
}

// rpcFailures returns the causes the server logged for failed RPCs, for a
// test's failure message: which dependency failed, and how.
func rpcFailures(srv *testServer) string {
	var out []string
	for line := range strings.Lines(srv.logs.String()) {
		if strings.Contains(line, `"msg":"rpc failed"`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}
