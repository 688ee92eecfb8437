package sidecar

import (
	"net/http"
	"testing"
)

// discardWriter is the least ResponseWriter: the benchmark measures the
// handler's own work, not a recorder's.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkForwardAuth is an nginx-style forward-auth allow around a
// validator that answers at once: the handler's own share of a call.
func BenchmarkForwardAuth(b *testing.B) {
	cfg := testConfig(b)
	cfg.Style = StyleNginx
	h := NewForwardAuth(cfg)
	r, _ := http.NewRequest(http.MethodGet, "http://keymint"+ForwardAuthPath, nil)
	r.Header.Set("Authorization", "Bearer good")
	r.Header.Set("X-Original-URI", "/reports")
	r.Header.Set("X-Original-Method", "GET")
	r.RemoteAddr = "127.0.0.1:40000"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}
