package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runFlood sends wrong-password sign-ins (POST /api-tokens with x-api-email
// and x-api-password), c at a time in a closed loop, until SIGTERM or -d,
// sampling the server's RSS every 100 ms; it writes one Result with the
// answers by HTTP status.
func runFlood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	name := fs.String("name", "flood", "name of this run in the report")
	url := fs.String("url", "http://127.0.0.1:8080/api-tokens", "keymint sign-in URL")
	email := fs.String("email", "bench@example.com", "a known account: every other sign-in names it, the rest unknown ones")
	conc := fs.Int("c", 60, "sign-ins in flight")
	dur := fs.Duration("d", 10*time.Minute, "longest run; SIGTERM ends it sooner")
	pid := fs.Int("pid", 0, "server process to sample RSS of")
	out := fs.String("out", "", "append the JSON result to this file")
	_ = fs.Parse(args)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	ctx, cancelDur := context.WithTimeout(ctx, *dur)
	defer cancelDur()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}

	var mu sync.Mutex
	statuses := map[string]int{}
	var lats []int64
	var calls, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range *conc {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				who := *email
				if (w+n)%2 == 1 {
					who = fmt.Sprintf("flood-%d-%d@example.com", w, n)
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", *url, strings.NewReader(`{"displayData":{"name":"flood"}}`))
				req.Header.Set("content-type", "application/json")
				req.Header.Set("x-api-email", who)
				req.Header.Set("x-api-password", "a wrong password, guess "+strconv.Itoa(n))
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil && errs.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				calls.Add(1)
				mu.Lock()
				statuses[strconv.Itoa(resp.StatusCode)]++
				lats = append(lats, time.Since(start).Nanoseconds())
				mu.Unlock()
			}
		})
	}
	rss := &rssSampler{pid: *pid}
	tick := time.NewTicker(100 * time.Millisecond)
sampling:
	for {
		rss.sample()
		select {
		case <-ctx.Done():
			break sampling
		case <-tick.C:
		}
	}
	tick.Stop()
	elapsed := time.Since(t0)
	wg.Wait()
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(p*float64(len(lats)-1))]) / 1e3
	}
	r := Result{Name: *name, Calls: calls.Load(), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		RPS: float64(calls.Load()) / elapsed.Seconds(), P50us: pct(0.5), P99us: pct(0.99), Concurrency: *conc,
		RSSStartMB: rss.first, RSSMaxMB: rss.max, RSSEndMB: rss.last, Statuses: statuses}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
	if *out == "" {
		return nil
	}
	f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(line, '\n'))
	return err
}

// printFloodRows adds the login-flood scenario to the bench table: per
// GOMAXPROCS, validation p99 during the flood against without it (goal:
// at most 3×), the flood's answers and the server's peak RSS (its
// hashing worker's included).
func printFloodRows(byName map[string][]Result) {
	for _, procs := range []string{"1", "2", "4"} {
		base, during, flood := byName["flood-base-p"+procs], byName["flood-during-p"+procs], byName["flood-signins-p"+procs]
		if len(base) == 0 || len(during) == 0 || len(flood) == 0 {
			continue
		}
		b, d, f := median(base), median(during), flood[0]
		p99 := d.P99us / max(b.P99us, 1)
		fmt.Printf("| gRPC validation during %d wrong-password sign-ins, GOMAXPROCS=%s (sign-ins answered %v, peak RSS keymint + hash worker %.0f MB) | %.0f | %.0f (no flood) | %.2f | | for reference | %.0f / %.0f µs | %.1f (goal ≤ 3) | %s |\n",
			f.Concurrency, procs, f.Statuses, f.RSSMaxMB, d.RPS, b.RPS, d.RPS/max(b.RPS, 1), d.P99us, b.P99us, p99, verdict(p99 <= 3, "p99 above"))
	}
}
