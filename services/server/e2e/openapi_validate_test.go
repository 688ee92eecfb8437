package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/hashworker"
	"github.com/keymint/keymint/services/sidecar"
)

// Every request the end-to-end tests of this package send to a keymint
// server over http.DefaultClient, and every answer, is checked against the
// served OpenAPI document (kin-openapi's openapi3filter), so the document
// and the behaviour cannot drift apart:
//
//   - a request the document describes and accepts must get an answer the
//     document allows for it (status, headers, body schema);
//   - a request the document refuses (bad input, missing credentials) must
//     get a 4xx the document allows;
//   - a request for a path or method the document does not describe must
//     get a JSON 404 or a 405 with Allow.
//
// TestMain fails the run when any exchange broke these rules, listing them.

// specCheck is the package's validator over the embedded document.
var specCheck = newSpecChecker()

// TestMain installs the validating transport on http.DefaultClient.
func TestMain(m *testing.M) {
	// This binary is the hashing worker of the in-process servers that
	// hash in one (--hash-worker process).
	hashworker.Dispatch()
	// keymint reads a request body as JSON whatever its Content-Type (the
	// document's "*/*" bodies); curl -d sends a form type.
	openapi3filter.RegisterBodyDecoder("*/*", openapi3filter.JSONBodyDecoder)
	// A form body is JSON to the /v1 routes, and a real form to RFC 7662
	// introspection: try JSON first, then the form decoder.
	formDecoder := openapi3filter.RegisteredBodyDecoder("application/x-www-form-urlencoded")
	openapi3filter.RegisterBodyDecoder("application/x-www-form-urlencoded", func(body io.Reader, h http.Header, schema *openapi3.SchemaRef, enc openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		if v, err := openapi3filter.JSONBodyDecoder(bytes.NewReader(b), h, schema, enc); err == nil {
			return v, nil
		}
		return formDecoder(bytes.NewReader(b), h, schema, enc)
	})
	http.DefaultClient = &http.Client{Transport: &specTransport{next: http.DefaultTransport}}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if problems := specCheck.report(); len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "OpenAPI drift: %d exchanges do not match proto/keymint/v1/openapi.json:\n", len(problems))
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  "+p)
		}
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

type specChecker struct {
	doc    *openapi3.T
	router routers.Router
	err    error

	mu       sync.Mutex
	hosts    map[string]bool
	problems []string
	// seen counts the exchanges checked per method, path and status.
	seen map[string]int
}

// maxChecksPerShape bounds the exchanges checked per method, path and
// status: the floods of the abuse tests repeat one exchange hundreds of
// times, and validating each would load the machine those tests measure.
const maxChecksPerShape = 20

func newSpecChecker() *specChecker {
	c := &specChecker{hosts: map[string]bool{}, seen: map[string]int{}}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(keymintv1.OpenAPI)
	if err == nil {
		err = doc.Validate(context.Background())
	}
	if err == nil {
		c.router, err = gorillamux.NewRouter(doc)
	}
	c.doc, c.err = doc, err
	return c
}

// watch marks base (a keymint server's HTTP URL) as one whose exchanges are
// checked; other servers the tests run (nginx, upstreams, sidecars) are not
// keymint's REST API.
func (c *specChecker) watch(base string) {
	u, err := url.Parse(base)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.hosts[u.Host] = true
	c.mu.Unlock()
}

func (c *specChecker) watched(host string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[host]
}

func (c *specChecker) fail(req *http.Request, status int, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The path only: queries may hold what a test pasted there.
	c.problems = append(c.problems, fmt.Sprintf("%s %s -> %d: %s", req.Method, req.URL.Path, status, fmt.Sprintf(format, args...)))
}

func (c *specChecker) report() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return []string{"the document does not load: " + c.err.Error()}
	}
	return slices.Clone(c.problems)
}

// specTransport checks each exchange with a watched keymint server.
type specTransport struct{ next http.RoundTripper }

func (s *specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !specCheck.watched(req.URL.Host) || specCheck.err != nil {
		return s.next.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	respBody, rerr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if rerr != nil {
		return resp, nil
	}
	specCheck.check(req, reqBody, resp, respBody)
	return resp, nil
}

// check applies the rules above to one exchange.
func (c *specChecker) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	key := fmt.Sprint(req.Method, " ", req.URL.Path, " ", resp.StatusCode)
	c.mu.Lock()
	c.seen[key]++
	n := c.seen[key]
	c.mu.Unlock()
	if n > maxChecksPerShape {
		return
	}
	// HEAD is described as the GET it answers like.
	probe := req.Clone(context.Background())
	head := req.Method == http.MethodHead
	if head {
		probe.Method = http.MethodGet
	}
	probe.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, pathParams, err := c.router.FindRoute(probe)
	if err != nil && req.URL.Path == sidecar.ForwardAuthPath {
		// Forward-auth answers any method, which OpenAPI cannot list.
		return
	}
	if err != nil {
		switch {
		case resp.StatusCode == http.StatusNotFound:
		case resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "":
		default:
			c.fail(req, resp.StatusCode, "undescribed route answered other than 404 or 405 with Allow (%v)", err)
			return
		}
		if !isJSON(resp.Header.Get("Content-Type")) || !bytes.Contains(respBody, []byte(`"code"`)) {
			c.fail(req, resp.StatusCode, "routing error is not keymint's error JSON: %.120q", respBody)
		}
		return
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc: credentialsPresent,
		// The document says read-only fields sent back are ignored (the
		// PATCH round-trip), and they are.
		ExcludeReadOnlyValidations: true,
		IncludeResponseStatus:      true,
		MultiError:                 false,
	}
	if strings.HasPrefix(route.Path, "/api-tokens") && !json.Valid(reqBody) {
		// The documented leniency of the Upsolver routes: raw line breaks
		// inside JSON strings, which no JSON decoder takes.
		reqOpts := *opts
		reqOpts.ExcludeRequestBody = true
		opts = &reqOpts
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: pathParams, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && (resp.StatusCode < 400 || resp.StatusCode > 499) {
		c.fail(req, resp.StatusCode, "the document refuses this request (%v) but keymint answered %d", short(reqErr), resp.StatusCode)
		return
	}
	respOpts := *opts
	ct := resp.Header.Get("Content-Type")
	if head || !(isJSON(ct) || strings.HasPrefix(ct, "text/plain")) {
		respOpts.ExcludeResponseBody = true
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &respOpts,
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.fail(req, resp.StatusCode, "answer breaks the document: %v", short(err))
	}
}

// credentialsPresent accepts a security scheme when the request carries its
// credential; keymint itself decides whether the credential is good.
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && s.Scheme == "bearer":
		if req.Header.Get("Authorization") != "" {
			return nil
		}
	case s.Type == "apiKey" && s.In == "header":
		if req.Header.Get(s.Name) != "" {
			return nil
		}
	case s.Type == "apiKey" && s.In == "cookie":
		for _, name := range []string{s.Name, "__Host-" + s.Name} {
			if _, err := req.Cookie(name); err == nil {
				return nil
			}
		}
	}
	return errors.New("credential missing")
}

func isJSON(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/json"
}

// short keeps an error's first line, without the schema dump kin-openapi
// appends.
func short(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// TestOpenAPIValidatorCatchesDrift: the checker itself flags an answer the
// document does not allow and passes one it does, so the suite-wide check
// cannot pass vacuously.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	c := newSpecChecker()
	if c.err != nil {
		t.Fatal(c.err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://keymint.test/healthz", nil)
	ok := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
	c.check(req, nil, ok, []byte(`{"status":"ok"}`))
	bad := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
	c.check(req, nil, bad, []byte(`{"state":1}`))
	teapot := &http.Response{StatusCode: 418, Header: http.Header{"Content-Type": {"application/json"}}}
	c.check(req, nil, teapot, []byte(`{"code":3,"message":"x","details":[]}`))
	wrongRoute, _ := http.NewRequest(http.MethodGet, "http://keymint.test/nowhere", nil)
	c.check(wrongRoute, nil, &http.Response{StatusCode: 200, Header: http.Header{}}, nil)
	if got := c.report(); len(got) != 3 {
		t.Fatalf("checker problems = %q, want 3 (bad body, undocumented status, undescribed route)", got)
	}
}
