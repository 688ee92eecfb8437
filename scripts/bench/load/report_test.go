package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The report is one table with each ratio beside its target, and a missed
// target is a verdict in it, not an error.
func TestReportTable(t *testing.T) {
	var lines []string
	add := func(r Result) {
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
	}
	for range 3 {
		add(Result{Name: "grpc-echo", RPS: 1000, ServerCPU: 0.5, P99us: 100})
		add(Result{Name: "grpc-keymint-l1", RPS: 950, ServerCPU: 0.5, P99us: 120}) // 0.95 per CPU-s
		add(Result{Name: "http-echo", RPS: 1000, ServerCPU: 0.5, P99us: 100})
		add(Result{Name: "rest-keymint-l1", RPS: 700, ServerCPU: 0.5, P99us: 200})  // 0.7 < 0.8, p99 2.0
		add(Result{Name: "http-echo-again", RPS: 1050, ServerCPU: 0.5, P99us: 100}) // the echo 5 % off itself
		add(Result{Name: "grpc-trace-off", RPS: 1000, ServerCPU: 0.5, P99us: 100})
		add(Result{Name: "grpc-trace-1pct", RPS: 1000, ServerCPU: 0.52, P99us: 100}) // 4 % more CPU per call
	}
	add(Result{Name: "idle", RSSStartMB: 33, RSSMaxMB: 33, RSSEndMB: 33, RSSMinMB: 33})
	add(Result{Name: "grpc-keymint-l1-long", Seconds: 60, RPS: 900, RSSStartMB: 70, RSSMinMB: 69, RSSMaxMB: 76, RSSEndMB: 75})
	file := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() {
		if err := runReport([]string{file}); err != nil {
			t.Fatalf("report: %v", err)
		}
	})
	for _, want := range []string{
		"| gRPC `ValidateToken`, cached | 950 | 1000 | 0.95 (0.95-0.95) | 0.95 (0.95-0.95) | ≥ 0.9 per CPU-s | 120 / 100 µs | 1.20 | meets |",
		"| REST `POST /v1/tokens:validate`, cached | 700 | 1000 | 0.70 (0.70-0.70) | 0.70 (0.70-0.70) | ≥ 0.8 calls/s | 200 / 100 µs | 2.00 | RATIO BELOW, P99 ABOVE (ratio short by 0.10; the run's noise ±0.05) |",
		"| noise: bare `net/http` against itself, one run later | 1050 | 1000 | 1.05 (1.05-1.05) |",
		"| gRPC `ValidateToken`, tracing on (1 % sampled) / off | 1000 | 1000 | 1.00 (1.00-1.00) | 0.96 (0.96-0.96) | ≥ 0.952 per CPU-s (≤ 5 % more CPU per call) | 100 / 100 µs | (1.00) | meets |",
		"| idle RSS after start (`keymint serve`) | 33.0 MB | | | | ≤ 40 MB | | | meets |",
		"drift 6 MB | | ± 10 MB | | | meets |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "| case |"); n != 1 {
		t.Errorf("%d table headers, want one:\n%s", n, out)
	}
	if strings.Contains(out, "ext_authz") {
		t.Errorf("a row without runs was printed:\n%s", out)
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, savedErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	f()
	os.Stdout, os.Stderr = saved, savedErr
	w.Close()
	return <-done
}
