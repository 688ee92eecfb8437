package e2e

import (
	"bufio"
	"encoding/json"
	"github.com/keymint/keymint/services/server"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/events"
)

// hookReceiver is a real HTTP endpoint that verifies every request's
// Standard Webhooks signature with the official library.
type hookReceiver struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	wh  *standardwebhooks.Webhook
	// hold, when set, is where a request waits (a receiver that hangs).
	hold    chan struct{}
	holding chan string
	got     []events.Envelope
	arrived chan struct{}
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t, arrived: make(chan struct{}, 1000), holding: make(chan string, 10)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) setSecret(secret string) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.wh = wh
	r.mu.Unlock()
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	wh, hold := r.wh, r.hold
	r.mu.Unlock()
	if wh == nil || wh.Verify(body, req.Header) != nil {
		r.t.Errorf("a delivery's signature does not verify: %s", req.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if hold != nil {
		r.holding <- req.Header.Get("webhook-id")
		select {
		case <-hold:
		case <-req.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var env events.Envelope
	if err := json.Unmarshal(body, &env); err != nil || env.ID != req.Header.Get("webhook-id") {
		r.t.Errorf("payload %s (%v) does not match webhook-id %s", body, err, req.Header.Get("webhook-id"))
	}
	if strings.Contains(string(body), "km_") || strings.Contains(string(body), "whsec_") {
		r.t.Errorf("payload holds a secret: %s", body)
	}
	r.mu.Lock()
	r.got = append(r.got, env)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	r.arrived <- struct{}{}
}

func (r *hookReceiver) deliveries() []events.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Envelope(nil), r.got...)
}

// waitFor waits until n deliveries arrived; the bound only turns a hang
// into a failure.
func (r *hookReceiver) waitFor(n int) []events.Envelope {
	r.t.Helper()
	timeout := time.After(2 * time.Minute)
	for len(r.deliveries()) < n {
		select {
		case <-r.arrived:
		case <-timeout:
			r.t.Fatalf("received %d deliveries, want %d", len(r.deliveries()), n)
		}
	}
	return r.deliveries()
}

func tokenIDOf(t *testing.T, e events.Envelope) string {
	t.Helper()
	b, _ := json.Marshal(e.Data)
	var d events.TokenData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d.Token.ID
}

// The admin API end to end: only admins manage webhooks, bad input is a 400
// in the API's own words, the secret shows once, token and password changes
// arrive signed and in order, deliveries list and replay.
func TestWebhooksAPI(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhooks = server.WebhooksConfig{AllowPrivate: true, Poll: 20 * time.Millisecond}
	admin := account{"admin@example.com", "a long admin password"}
	member := account{"member@example.com", "a long member password"}
	createUser(t, cfg, admin.email, "acme", admin.password, true)
	createUser(t, cfg, member.email, "acme", member.password, false)
	srv := startServer(t, cfg)
	recv := newHookReceiver(t)

	if code, body := do(t, "POST", srv.http+"/v1/webhooks", member.headers(), `{"url":"`+recv.srv.URL+`","eventTypes":["*"]}`, nil); code != 403 {
		t.Fatalf("member creates a webhook: %d %s", code, body)
	}
	for _, bad := range []string{`{"url":"ftp://example.com","eventTypes":["*"]}`, `{"url":"` + recv.srv.URL + `"}`,
		`{"url":"` + recv.srv.URL + `","eventTypes":["token.nope"]}`, `{"eventTypes":["*"]}`} {
		code, body := do(t, "POST", srv.http+"/v1/webhooks", admin.headers(), bad, nil)
		if code != 400 || !strings.Contains(body, `"message"`) {
			t.Errorf("create %s: %d %s, want 400 with a message", bad, code, body)
		}
	}
	var created struct {
		Webhook struct{ ID string }
		Secret  string
	}
	if code, body := do(t, "POST", srv.http+"/v1/webhooks", admin.headers(), `{"url":"`+recv.srv.URL+`/hook","eventTypes":["*"]}`, &created); code != 200 || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create: %d %s", code, body)
	}
	recv.setSecret(created.Secret)
	if code, body := do(t, "GET", srv.http+"/v1/webhooks", admin.headers(), "", nil); code != 200 || strings.Contains(body, created.Secret) || !strings.Contains(body, created.Webhook.ID) {
		t.Fatalf("list: %d %s", code, body)
	}

	minted := admin.mint(t, srv, &keymintv1.CreateTokenRequest{Name: "ci"})
	rotated, err := srv.client.RotateToken(admin.ctx(), &keymintv1.RotateTokenRequest{Id: minted.Token.Id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.client.RevokeToken(admin.ctx(), &keymintv1.RevokeTokenRequest{Id: minted.Token.Id}); err != nil {
		t.Fatal(err)
	}
	got := recv.waitFor(3) // created, rotated (naming the successor), revoked
	var forOld []string
	for _, e := range got {
		if tokenIDOf(t, e) == minted.Token.Id {
			forOld = append(forOld, e.Type)
		}
	}
	if s := strings.Join(forOld, ","); s != "token.created,token.rotated,token.revoked" {
		t.Errorf("events of the first token: %s", s)
	}
	if b, _ := json.Marshal(got[1].Data); !strings.Contains(string(b), rotated.Token.Id) {
		t.Errorf("token.rotated names no successor: %s", b)
	}

	var list struct {
		Deliveries []struct {
			ID, EventID, State string
			Attempts           int
			LastStatusCode     int
		}
	}
	// Each attempt is recorded just after the receiver answered.
	waitUntil(t, "three deliveries recorded", 2*time.Minute, func() bool {
		list.Deliveries = nil
		do(t, "GET", srv.http+"/v1/webhooks/"+created.Webhook.ID+"/deliveries", admin.headers(), "", &list)
		done := 0
		for _, d := range list.Deliveries {
			if d.State != "pending" {
				done++
			}
		}
		return len(list.Deliveries) == 3 && done == 3
	})
	for _, d := range list.Deliveries {
		if d.State != "delivered" || d.Attempts != 1 || d.LastStatusCode != 204 {
			t.Errorf("delivery %+v", d)
		}
	}
	if code, body := do(t, "POST", srv.http+"/v1/webhook-deliveries/"+list.Deliveries[0].ID+":replay", admin.headers(), "{}", nil); code != 200 {
		t.Fatalf("replay: %d %s", code, body)
	}
	if got := recv.waitFor(4); got[3].ID != list.Deliveries[0].EventID {
		t.Errorf("replayed %s, want %s again", got[3].ID, list.Deliveries[0].EventID)
	}
	if code, _ := do(t, "POST", srv.http+"/v1/webhook-deliveries/999999:replay", admin.headers(), "{}", nil); code != 404 {
		t.Errorf("replay of an unknown delivery: %d", code)
	}
	if code, _ := do(t, "DELETE", srv.http+"/v1/webhooks/"+created.Webhook.ID, member.headers(), "", nil); code != 403 {
		t.Errorf("member deletes: %d", code)
	}
	if code, body := do(t, "DELETE", srv.http+"/v1/webhooks/"+created.Webhook.ID, admin.headers(), "", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := do(t, "GET", srv.http+"/v1/webhooks/"+created.Webhook.ID+"/deliveries", admin.headers(), "", nil); code != 404 {
		t.Errorf("deliveries of a deleted webhook: %d", code)
	}
}

// Without --webhooks-allow-private, loopback and plain-http URLs are
// refused at creation.
func TestWebhooksRefusePrivate(t *testing.T) {
	cfg := testConfig(t)
	admin := account{"admin@example.com", "a long admin password"}
	createUser(t, cfg, admin.email, "acme", admin.password, true)
	srv := startServer(t, cfg)
	for _, u := range []string{"http://127.0.0.1:1/x", "https://127.0.0.1/x", "https://localhost/x", "https://169.254.169.254/latest/meta-data", "https://[::1]/x"} {
		code, body := do(t, "POST", srv.http+"/v1/webhooks", admin.headers(), `{"url":"`+u+`","eventTypes":["*"]}`, nil)
		if code != 400 {
			t.Errorf("create %s: %d %s, want 400", u, code, body)
		}
	}
}

// keymintProcess is `keymint serve` as a child process.
type keymintProcess struct {
	cmd        *exec.Cmd
	http, grpc string
	done       chan error
}

func startProcess(t *testing.T, args ...string) *keymintProcess {
	t.Helper()
	cmd := exec.Command(keymintBinary(t), append([]string{"serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--log-format", "json", "--argon2-memory-kib", "64", "--argon2-time", "1"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &keymintProcess{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, HTTP, GRPC string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "keymint serving" {
				addr <- [2]string{line.HTTP, line.GRPC}
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	select {
	case a := <-addr:
		p.http, p.grpc = "http://"+a[0], a[1]
	case err := <-p.done:
		t.Fatalf("keymint exited before serving: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("keymint did not start")
	}
	waitReady(t, p.http)
	return p
}

// kill ends the process with SIGKILL: no shutdown, no flush.
func (p *keymintProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil // for the cleanup
}

// A keymint killed (SIGKILL) after the event was committed and while its
// delivery was in flight loses nothing: restarted, it delivers the event
// under the same webhook-id, signed.
func TestWebhookDeliveredAfterKill(t *testing.T) {
	cfg := testConfig(t)
	admin := account{"admin@example.com", "a long admin password"}
	createUser(t, cfg, admin.email, "acme", admin.password, true)
	args := []string{"--data-dir", cfg.DataDir, "--webhooks-allow-private", "--webhook-poll", "20ms",
		"--webhook-timeout", "2s", "--webhook-lease", "3s"}
	recv := newHookReceiver(t)
	recv.hold = make(chan struct{})
	defer close(recv.hold)

	p := startProcess(t, args...)
	var created struct {
		Webhook struct{ ID string }
		Secret  string
	}
	if code, body := do(t, "POST", p.http+"/v1/webhooks", admin.headers(), `{"url":"`+recv.srv.URL+`","eventTypes":["token.created"]}`, &created); code != 200 {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	recv.setSecret(created.Secret)
	var minted struct{ Token struct{ ID string } }
	if code, body := do(t, "POST", p.http+"/v1/tokens", admin.headers(), `{"name":"ci"}`, &minted); code != 200 {
		t.Fatalf("mint: %d %s", code, body)
	}
	// The delivery is in flight (committed, leased, the receiver holds it):
	// kill the server there.
	var first string
	select {
	case first = <-recv.holding:
	case <-time.After(2 * time.Minute):
		t.Fatal("the delivery never reached the receiver")
	}
	p.kill(t)
	recv.mu.Lock()
	recv.hold = nil
	recv.mu.Unlock()

	p = startProcess(t, args...)
	got := recv.waitFor(1)
	if got[0].ID != first || got[0].Type != events.TokenCreated || tokenIDOf(t, got[0]) != minted.Token.ID {
		t.Fatalf("after restart received %+v, want %s (webhook-id %s)", got[0], minted.Token.ID, first)
	}
	// The attempt is recorded just after the receiver answered.
	waitUntil(t, "the delivery recorded as delivered", 2*time.Minute, func() bool {
		var list struct {
			Deliveries []struct{ State string }
		}
		do(t, "GET", p.http+"/v1/webhooks/"+created.Webhook.ID+"/deliveries", admin.headers(), "", &list)
		return len(list.Deliveries) == 1 && list.Deliveries[0].State == "delivered"
	})
	if n := len(recv.deliveries()); n != 1 {
		t.Fatalf("received %d deliveries, want 1", n)
	}
}

// Refused sign-ins reach the org's webhooks as one aggregated
// signin.throttled, counting exactly the refused attempts.
func TestWebhookSigninThrottled(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhooks = server.WebhooksConfig{AllowPrivate: true, Poll: 20 * time.Millisecond}
	cfg.Abuse.AccountLimit, cfg.Abuse.IPLimit = "2/1h", "off"
	admin := account{"admin@example.com", "a long admin password"}
	createUser(t, cfg, admin.email, "acme", admin.password, true)
	srv := startServer(t, cfg)
	recv := newHookReceiver(t)
	var created struct {
		Webhook struct{ ID string }
		Secret  string
	}
	if code, body := do(t, "POST", srv.http+"/v1/webhooks", admin.headers(), `{"url":"`+recv.srv.URL+`","eventTypes":["signin.throttled"]}`, &created); code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	recv.setSecret(created.Secret)
	wrong := account{admin.email, "not the password at all"}
	refused := 0
	for range 6 {
		if code, _ := do(t, "GET", srv.http+"/v1/user", wrong.headers(), "", nil); code == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no attempt was throttled")
	}
	if err := srv.srv.FlushThrottleNotices(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := recv.waitFor(1)
	b, _ := json.Marshal(got[0].Data)
	var d events.ThrottleData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if got[0].Type != events.SigninThrottled || len(d.Accounts) != 1 || d.Accounts[0].Email != admin.email || d.Accounts[0].Attempts != int64(refused) {
		t.Fatalf("received %s %s, want %d refused attempts of %s", got[0].Type, b, refused, admin.email)
	}
}
