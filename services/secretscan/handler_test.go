package secretscan

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// failReader fails the test if anything reads it.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("the body of an unsigned request was read")
	return 0, io.EOF
}

func TestUnsignedRefusedBeforeReading(t *testing.T) {
	t.Parallel()
	h := NewHandler(Config{})
	for _, hdr := range [][2]string{{"", ""}, {"id", ""}, {"", "sig"}} {
		req := httptest.NewRequest(http.MethodPost, Path, failReader{t})
		if hdr[0] != "" {
			req.Header.Set("Github-Public-Key-Identifier", hdr[0])
		}
		if hdr[1] != "" {
			req.Header.Set("Github-Public-Key-Signature", hdr[1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("%v: %d, want 401", hdr, rec.Code)
		}
	}
}

// With every slot taken, a request waits, then gets 503 with Retry-After;
// its body is never read.
func TestInFlightBounded(t *testing.T) {
	t.Parallel()
	h := NewHandler(Config{})
	for range MaxInFlight {
		h.slots <- struct{}{}
	}
	req := httptest.NewRequest(http.MethodPost, Path, failReader{t})
	req.Header.Set("Github-Public-Key-Identifier", "id")
	req.Header.Set("Github-Public-Key-Signature", "sig")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %v, want 503 with Retry-After", rec.Code, rec.Header())
	}
}
