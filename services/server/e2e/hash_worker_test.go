package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/server"
)

// workerRSS is the resident set of process pid in bytes (VmRSS), 0 when
// it is gone.
func workerRSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// The hashing worker (--hash-worker process) SIGKILLed with a sign-in in
// flight: that sign-in, with the right password, is answered 503 with
// Retry-After (not 401, not a hang, no password in the body), and the next
// one succeeds on a new worker.
func TestSignInWhenHashWorkerKilled(t *testing.T) {
	cfg := testConfig(t)
	cfg.HashWorker = server.HashWorkerProcess
	srv := startServer(t, cfg)
	const email, pw = "worker@example.com", "a long test password"
	createUser(t, cfg, email, "acme", pw, false)
	signIn := func() (int, string, string) {
		req := request(t, "POST", srv.http+"/api-tokens", map[string]string{
			"content-type": "application/json", "x-api-email": email, "x-api-password": pw,
		})
		resp, body := doReq(t, req, mintBody)
		return resp.StatusCode, resp.Header.Get("Retry-After"), body
	}
	if code, _, body := signIn(); code != 200 && code != 201 {
		t.Fatalf("sign-in = %d %s", code, body)
	}
	first := srv.srv.HashWorkerStats()
	if first.PID == 0 || first.Starts != 1 {
		t.Fatalf("worker %+v after a sign-in, want one running", first)
	}
	// Stopped, the worker reads nothing: the next sign-in's request waits
	// in it until the kill.
	if err := syscall.Kill(first.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code        int
		retry, body string
	}
	got := make(chan answer, 1)
	go func() {
		code, retry, body := signIn()
		got <- answer{code, retry, body}
	}()
	waitFor(t, "the sign-in's request in the worker", func() bool { return srv.srv.HashWorkerStats().Pending == 1 })
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.code != 503 || a.retry == "" || !strings.Contains(a.body, "retry shortly") || strings.Contains(a.body, pw) {
		t.Errorf("sign-in while the worker died = %d Retry-After %q %s, want 503 with Retry-After", a.code, a.retry, a.body)
	}
	if code, _, body := signIn(); code != 200 && code != 201 {
		t.Fatalf("sign-in after the worker died = %d %s", code, body)
	}
	if st := srv.srv.HashWorkerStats(); st.Starts != 2 || st.PID == first.PID || st.PID == 0 {
		t.Errorf("worker %+v, want a second one (first pid %d)", st, first.PID)
	}
	if logs := srv.logs.String(); !strings.Contains(logs, "hash worker exited") || strings.Contains(logs, pw) {
		t.Errorf("logs: want the worker's exit, never the password:\n%s", logs)
	}
}

// childPID is the one child process of pid, 0 without one.
func childPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// TestLoginFloodMemory for a real `keymint serve` process with its
// hashing worker (the default, --hash-worker process): a 60-way
// wrong-password flood at the default argon2 settings at GOMAXPROCS 1, 2
// and 4. The hashes' memory is the worker's: its RSS stays within its soft
// limit (slots × 64 MiB + 16 MiB) and its runtime, and keymint's RSS and
// the worker's together stay under --argon2-budget-mib + 128 MiB (the
// README's budget). Validations answer throughout.
func TestLoginFloodMemoryHashWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 64 MiB argon2 many times")
	}
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			cfg := testConfig(t)
			const email, pw = "floodworker@example.com", "a long test password"
			createUser(t, cfg, email, "acme", pw, false)
			t.Setenv("GOMAXPROCS", strconv.Itoa(procs))
			const budgetMiB = 256
			p := startProcess(t, "--data-dir", cfg.DataDir, "--argon2-memory-kib", "65536", "--argon2-time", "2",
				"--argon2-budget-mib", strconv.Itoa(budgetMiB), "--trusted-proxies", "127.0.0.1/32", "--cache-l1-ttl", "1h")
			conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			srv := &testServer{http: p.http, grpc: p.grpc, client: keymintv1.NewTokenServiceClient(conn), logs: &syncBuffer{}}
			secret := mintToken(t, srv, email, pw)
			loginFlood(t, srv, 2, 99)
			serve := p.cmd.Process.Pid
			worker := childPID(serve)
			if worker == 0 {
				t.Fatal("no hash worker after sign-ins")
			}
			var peakServe, peakWorker, peakSum atomic.Uint64
			raise := func(v *atomic.Uint64, n uint64) {
				for p := v.Load(); n > p && !v.CompareAndSwap(p, n); p = v.Load() {
				}
			}
			counts, validations := floodWhileValidating(t, srv, secret, func() {
				s, w := workerRSS(serve), workerRSS(worker)
				raise(&peakServe, s)
				raise(&peakWorker, w)
				raise(&peakSum, s+w)
			}, nil)
			if r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret}); err != nil || !r.GetValid() {
				t.Errorf("validation after the flood: %v %v", r, err)
			}
			slots := max(1, min(budgetMiB/64, procs-1))
			t.Logf("answers %v; %d hashing slots; peak RSS: keymint %d MiB, worker %d MiB, sum %d MiB; %d validations during",
				counts, slots, peakServe.Load()/mib, peakWorker.Load()/mib, peakSum.Load()/mib, validations)
			if w := childPID(serve); w != worker {
				t.Errorf("hash worker %d now, was %d: it restarted during the flood", w, worker)
			}
			if raceEnabled {
				return // the race detector's shadow memory: the bounds below do not apply
			}
			// The worker's soft limit, and its runtime and binary pages
			// (up to 48 MiB) over it.
			if w := peakWorker.Load(); w > uint64(slots)*64*mib+(16+48)*mib {
				t.Errorf("worker RSS peaked at %d MiB, over %d hashes of 64 MiB + 64 MiB", w/mib, slots)
			}
			if sum := peakSum.Load(); sum > (budgetMiB+128)*mib {
				t.Errorf("keymint + worker RSS peaked at %d MiB, over the %d MiB budget + 128 MiB", sum/mib, budgetMiB)
			}
		})
	}
}
