package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// doReq sends req with body and returns the response and its body.
func doReq(t *testing.T, req *http.Request, body string) (*http.Response, string) {
	t.Helper()
	if body != "" {
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// request builds a request with headers.
func request(t *testing.T, method, url string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// jsonMessageIs reports whether body is a status JSON with this message.
func jsonMessageIs(body, msg string) bool {
	var e struct {
		Message string `json:"message"`
	}
	return json.Unmarshal([]byte(body), &e) == nil && e.Message == msg
}
