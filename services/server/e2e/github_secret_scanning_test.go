package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/secretscan"
	"github.com/keymint/keymint/services/secretscan/secretscantest"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/tokens"
)

// ghMatch is one element of GitHub's request.
type ghMatch struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// ghLabel is one element of keymint's answer.
type ghLabel struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// scanFixture is a keymint server with GitHub's endpoint on, keys from a
// file, and an org admin whose tokens get reported.
type scanFixture struct {
	srv      *testServer
	cfg      Config
	key      *secretscantest.Key
	keysPath string
	adminCtx context.Context
}

func newScanFixture(t *testing.T, mutate ...func(*Config)) *scanFixture {
	t.Helper()
	f := &scanFixture{key: secretscantest.NewKey(t)}
	f.keysPath = filepath.Join(t.TempDir(), "github-keys.json")
	if err := os.WriteFile(f.keysPath, secretscantest.KeyList(t, f.key, f.key), 0o600); err != nil {
		t.Fatal(err)
	}
	f.cfg = testConfig(t)
	f.cfg.Integrations.GitHubKeys = f.keysPath
	f.cfg.Integrations.GitHubKeysRefresh = time.Hour
	for _, m := range mutate {
		m(&f.cfg)
	}
	const email, pw = "owner@example.com", "secret scanning password"
	createUser(t, f.cfg, email, "scan-org", pw, true)
	f.srv = startServer(t, f.cfg)
	f.adminCtx = metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	return f
}

func (f *scanFixture) mint(t *testing.T, name string) *keymintv1.CreateTokenResponse {
	t.Helper()
	r, err := f.srv.client.CreateToken(f.adminCtx, &keymintv1.CreateTokenRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// post sends body to the GitHub endpoint with the given signature headers
// (empty: not sent).
func postGitHub(t *testing.T, base string, body []byte, keyID, sig string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+secretscan.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if keyID != "" {
		req.Header.Set("Github-Public-Key-Identifier", keyID)
	}
	if sig != "" {
		req.Header.Set("Github-Public-Key-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *scanFixture) valid(t *testing.T, secret string) bool {
	t.Helper()
	v, err := f.srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	return v.GetValid()
}

// leakEvents lists the org's token.leak_report audit events.
func (f *scanFixture) leakEvents(t *testing.T) []*keymintv1.AuditEvent {
	t.Helper()
	resp, err := keymintv1.NewAccountServiceClient(f.srv.conn).ListAuditEvents(f.adminCtx, &keymintv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*keymintv1.AuditEvent
	for _, e := range resp.GetEvents() {
		if e.GetAction() == audit.TokenLeakReport {
			out = append(out, e)
		}
	}
	return out
}

// eventually waits for cond, polling: an event (a revocation after the
// answer) the test cannot subscribe to. The bound is generous; it is not
// what the test measures.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestGitHubSecretScanning: GitHub's exact request, 5,000 matches in one,
// a mix of valid, revoked, unknown, malformed and other-prefix tokens with
// duplicates; unsigned and forged requests revoke nothing; labels only for
// keymint's format; revocations and audit events after the answer; the
// per-address leak limit does not apply to verified requests.
func TestGitHubSecretScanning(t *testing.T) {
	t.Parallel()
	f := newScanFixture(t)
	const live = 10
	var liveTokens []*keymintv1.CreateTokenResponse
	for i := range live {
		liveTokens = append(liveTokens, f.mint(t, fmt.Sprintf("live %d", i)))
	}
	revoked := f.mint(t, "revoked already")
	if _, err := f.srv.client.RevokeToken(f.adminCtx, &keymintv1.RevokeTokenRequest{Id: revoked.Token.Id}); err != nil {
		t.Fatal(err)
	}
	km, _ := tokens.NewFormat("km")
	other, _ := tokens.NewFormat("zz")
	const typ = "keymint_api_token"
	var matches []ghMatch
	add := func(tok, url string) {
		matches = append(matches, ghMatch{Token: tok, Type: typ, URL: url, Source: "commit"})
	}
	for i, tk := range liveTokens {
		add(tk.Secret, fmt.Sprintf("https://github.com/o/r/blob/c%d/a.env", i))
		add(tk.Secret, fmt.Sprintf("https://github.com/o/r/blob/c%d/a.env", i)) // exact duplicate
		add(tk.Secret, fmt.Sprintf("https://gist.github.com/x/%d", i))          // a second place
	}
	add(revoked.Secret, "https://github.com/o/r/issues/1")
	var unknown []string
	for len(matches) < 4000 {
		s, _ := km.Generate()
		unknown = append(unknown, s)
		add(s, "https://github.com/o/r/blob/main/x")
	}
	for len(matches) < 4500 {
		s, _ := other.Generate()
		add(s, "https://github.com/o/r/blob/main/y")
	}
	for i := 0; len(matches) < 5000; i++ {
		add(fmt.Sprintf("km_notatoken%d", i), "https://github.com/o/r/blob/main/z")
	}
	body, err := json.Marshal(matches)
	if err != nil {
		t.Fatal(err)
	}

	// Unsigned, forged, signed by an unknown key, or signed over other
	// bytes: 401, nothing revoked, nothing recorded.
	stranger := secretscantest.NewKey(t)
	for name, h := range map[string][2]string{
		"unsigned":     {"", ""},
		"no signature": {f.key.ID, ""},
		"forged":       {f.key.ID, stranger.Sign(t, body)},
		"unknown key":  {stranger.ID, stranger.Sign(t, body)},
		"other bytes":  {f.key.ID, f.key.Sign(t, append(body, ' '))},
	} {
		st, resp := postGitHub(t, f.srv.http, body, h[0], h[1])
		if st != http.StatusUnauthorized || strings.Contains(string(resp), "positive") {
			t.Fatalf("%s: %d %s, want 401", name, st, resp)
		}
	}
	if !f.valid(t, liveTokens[0].Secret) || len(f.leakEvents(t)) != 0 {
		t.Fatal("an unverified report revoked or recorded something")
	}

	start := time.Now()
	st, resp := postGitHub(t, f.srv.http, body, f.key.ID, f.key.Sign(t, body))
	t.Logf("5,000 matches answered in %v", time.Since(start))
	if st != http.StatusOK {
		t.Fatalf("signed report: %d %s", st, resp)
	}
	var labels []ghLabel
	if err := json.Unmarshal(resp, &labels); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{hashOf(revoked.Secret): "true_positive"}
	for _, tk := range liveTokens {
		want[hashOf(tk.Secret)] = "true_positive"
	}
	for _, s := range unknown {
		want[hashOf(s)] = "false_positive"
	}
	got := map[string]string{}
	for _, l := range labels {
		if l.TokenType != typ {
			t.Fatalf("label %+v: token_type", l)
		}
		if _, dup := got[l.TokenHash]; dup {
			t.Fatalf("two labels for one token: %+v", l)
		}
		got[l.TokenHash] = l.Label
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("labels: %d, want %d (live %d + revoked 1 true, %d false)", len(got), len(want), live, len(unknown))
	}
	if strings.Contains(string(resp), liveTokens[0].Secret) {
		t.Fatal("the answer echoes a token")
	}

	// Revoked after the answer, each with an audit event per place found.
	for _, tk := range liveTokens {
		eventually(t, "reported token revoked", func() bool { return !f.valid(t, tk.Secret) })
	}
	eventually(t, "audit events", func() bool { return len(f.leakEvents(t)) == 2*live+1 })
	adminID := liveTokens[0].Token.UserId
	places := map[string]bool{}
	for _, e := range f.leakEvents(t) {
		if e.GetActorEmail() != secretscan.Reporter || e.GetDetails()["source"] != "commit" || e.GetDetails()["url"] == "" ||
			e.GetSubjectUserId() != adminID {
			t.Fatalf("audit event %v", e)
		}
		places[e.GetTargetId()+" "+e.GetDetails()["url"]] = true
	}
	if len(places) != 2*live+1 {
		t.Fatalf("%d distinct (token, url) audit events, want %d", len(places), 2*live+1)
	}

	// A member sees the events about their own tokens, and no others.
	const memberEmail, memberPW = "member@example.com", "member test password"
	createUser(t, f.cfg, memberEmail, "scan-org", memberPW, false)
	memberCtx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", memberEmail, "x-api-password", memberPW))
	own, err := f.srv.client.CreateToken(memberCtx, &keymintv1.CreateTokenRequest{Name: "member's"})
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := json.Marshal([]ghMatch{{Token: own.Secret, Type: typ, URL: "https://github.com/m/r/blob/1/x", Source: "content"}})
	if st, resp := postGitHub(t, f.srv.http, ob, f.key.ID, f.key.Sign(t, ob)); st != 200 || !strings.Contains(string(resp), "true_positive") {
		t.Fatalf("member's token report: %d %s", st, resp)
	}
	accounts := keymintv1.NewAccountServiceClient(f.srv.conn)
	var memberEvents []*keymintv1.AuditEvent
	eventually(t, "the member's audit event", func() bool {
		r, err := accounts.ListAuditEvents(memberCtx, &keymintv1.ListAuditEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		memberEvents = r.GetEvents()
		return len(memberEvents) > 0
	})
	if len(memberEvents) != 1 || memberEvents[0].GetTargetId() != own.Token.Id || memberEvents[0].GetSubjectUserId() != own.Token.UserId ||
		memberEvents[0].GetDetails()["url"] != "https://github.com/m/r/blob/1/x" {
		t.Fatalf("member's events: %v", memberEvents)
	}

	// Verified requests are not held to the per-address leak-report limit
	// (10 at once, then one per 6 s).
	fresh := f.mint(t, "burst")
	small, _ := json.Marshal([]ghMatch{{Token: fresh.Secret, Type: typ, URL: "https://github.com/o/r/pull/2", Source: "pull_request_body"}})
	for i := range 15 {
		if st, resp := postGitHub(t, f.srv.http, small, f.key.ID, f.key.Sign(t, small)); st != 200 || !strings.Contains(string(resp), "true_positive") {
			t.Fatalf("verified request %d: %d %s", i+1, st, resp)
		}
	}
	eventually(t, "burst token revoked", func() bool { return !f.valid(t, fresh.Secret) })

	// The public endpoint keeps its anti-oracle answer.
	pub, _ := json.Marshal(map[string][]string{"tokens": {unknown[0], liveTokens[0].Secret}})
	presp, err := http.Post(f.srv.http+"/v1/tokens:report-leak", "application/json", bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != 200 || strings.TrimSpace(string(pb)) != `{"received":2}` {
		t.Fatalf("public leak endpoint: %d %s", presp.StatusCode, pb)
	}
	// Not JSON, or not an array: 400 after the signature, never a label.
	for _, b := range [][]byte{[]byte(`{"tokens":["x"]}`), []byte(`nope`)} {
		if st, _ := postGitHub(t, f.srv.http, b, f.key.ID, f.key.Sign(t, b)); st != 400 {
			t.Fatalf("%s: %d, want 400", b, st)
		}
	}
	for _, tk := range liveTokens {
		if strings.Contains(f.srv.logs.String(), tk.Secret) {
			t.Fatal("the server log holds a reported token")
		}
	}
}

// TestGitHubReportSurvivesCrash stops the processor between the answer and
// the revocations (it never runs on the first server), stops that server,
// and starts another on the same store: the recorded report is processed.
// On both stores.
func TestGitHubReportSurvivesCrash(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testGitHubReportSurvivesCrash(t, func(*Config) {})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testGitHubReportSurvivesCrash(t, func(c *Config) {
			c.DatabaseURL = pgtest.NewDatabase(t)
			c.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
		})
	})
}

func testGitHubReportSurvivesCrash(t *testing.T, storeCfg func(*Config)) {
	f := newScanFixture(t, storeCfg, func(c *Config) {
		c.leakPassHook = func(ctx context.Context) bool {
			<-ctx.Done() // the first server never processes
			return false
		}
	})
	tk := f.mint(t, "leaked")
	body, _ := json.Marshal([]ghMatch{{Token: tk.Secret, Type: "keymint_api_token", URL: "https://github.com/o/r/blob/1/.env", Source: "content"}})
	st, resp := postGitHub(t, f.srv.http, body, f.key.ID, f.key.Sign(t, body))
	if st != 200 || !strings.Contains(string(resp), "true_positive") {
		t.Fatalf("report: %d %s", st, resp)
	}
	// Answered, recorded, not yet revoked.
	if !f.valid(t, tk.Secret) {
		t.Fatal("revoked although the processor never ran")
	}
	f.srv.stop()

	cfg := f.cfg
	cfg.leakPassHook = nil
	f.srv = startServer(t, cfg)
	eventually(t, "the recorded report processed after restart", func() bool { return !f.valid(t, tk.Secret) })
	eventually(t, "its audit event", func() bool { return len(f.leakEvents(t)) == 1 })
	e := f.leakEvents(t)[0]
	if e.GetTargetId() != tk.Token.Id || e.GetDetails()["url"] != "https://github.com/o/r/blob/1/.env" || e.GetDetails()["source"] != "content" {
		t.Fatalf("audit event %v", e)
	}
}
