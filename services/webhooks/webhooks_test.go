package webhooks_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
	"github.com/keymint/keymint/services/webhooks"
)

func TestSignVerifiesWithStandardWebhooks(t *testing.T) {
	t.Parallel()
	secret, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q lacks whsec_", secret)
	}
	body := []byte(`{"type":"token.created"}`)
	ts := time.Now()
	sig, err := webhooks.Sign(secret, "msg_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sig)
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("library rejects our signature: %v", err)
	}
	want, err := wh.Sign("msg_1", ts, body)
	if err != nil || want != sig {
		t.Fatalf("library signs %q, we sign %q (%v)", want, sig, err)
	}
	h.Set("webhook-signature", sig[:len(sig)-2]+"AA")
	if err := wh.Verify(body, h); err == nil {
		t.Fatal("a damaged signature verifies")
	}
}

func TestSealer(t *testing.T) {
	t.Parallel()
	key, created, err := webhooks.LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "d", "webhook-key"))
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKeyFile = %v, %v", created, err)
	}
	s, err := webhooks.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("whsec_abc", "ep1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "whsec_abc") {
		t.Fatal("sealed secret holds the plaintext")
	}
	if got, err := s.Open(sealed, "ep1"); err != nil || got != "whsec_abc" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, "ep2"); err == nil {
		t.Fatal("a secret sealed for one endpoint opens for another")
	}
	if _, err := webhooks.ParseKey("c2hvcnQ="); err == nil {
		t.Fatal("a short key parses")
	}
}

func TestGuard(t *testing.T) {
	t.Parallel()
	g := webhooks.Guard{}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
		"fd00:ec2::254", "fe80::1", "0.0.0.0", "::", "100.64.0.1", "::ffff:127.0.0.1", "224.0.0.1", "255.255.255.255"} {
		if !g.Forbidden(netip.MustParseAddr(ip)) {
			t.Errorf("%s allowed", ip)
		}
	}
	for _, ip := range []string{"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"} {
		if g.Forbidden(netip.MustParseAddr(ip)) {
			t.Errorf("%s refused", ip)
		}
	}
	ctx := t.Context()
	for _, u := range []string{"http://93.184.216.34/x", "https://127.0.0.1/x", "https://[::1]:8443/", "https://169.254.169.254/latest",
		"https://localhost/x", "https://user:pw@93.184.216.34/", "ftp://93.184.216.34/", "/relative", "https://93.184.216.34/#frag"} {
		if _, err := g.CheckURL(ctx, u); err == nil {
			t.Errorf("CheckURL(%s) accepted", u)
		}
	}
	if _, err := g.CheckURL(ctx, "https://93.184.216.34/hook"); err != nil {
		t.Errorf("CheckURL(public) = %v", err)
	}
	if _, err := (webhooks.Guard{AllowPrivate: true}).CheckURL(ctx, "http://127.0.0.1:9/x"); err != nil {
		t.Errorf("CheckURL(loopback, allowed) = %v", err)
	}
}

// The sender checks the address it dials, not only the one seen at
// creation: a name that resolves to loopback at delivery is refused, and
// nothing reaches the receiver.
func TestSenderRefusesPrivateAtDial(t *testing.T) {
	t.Parallel()
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	t.Cleanup(srv.Close)
	s := webhooks.NewSender(webhooks.Guard{}, 5*time.Second)
	url := "https://localhost:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:] + "/hook"
	_, err := s.Send(t.Context(), url, "msg_1", time.Now(), "v1,x", []byte("{}"))
	if !errors.Is(err, webhooks.ErrForbiddenAddress) {
		t.Fatalf("Send(localhost) = %v, want ErrForbiddenAddress", err)
	}
	if _, err := s.Send(t.Context(), srv.URL, "msg_1", time.Now(), "v1,x", []byte("{}")); err == nil {
		t.Fatal("Send(http://127.0.0.1) went through without --webhooks-allow-private")
	}
	if hits != 0 {
		t.Fatalf("receiver got %d requests", hits)
	}
}

// Redirects are not followed: a 3xx is a failed attempt, and the redirect
// target hears nothing.
func TestSenderNoRedirect(t *testing.T) {
	t.Parallel()
	target := 0
	dst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { target++ }))
	t.Cleanup(dst.Close)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, dst.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(src.Close)
	s := webhooks.NewSender(webhooks.Guard{AllowPrivate: true}, 5*time.Second)
	status, err := s.Send(t.Context(), src.URL, "msg_1", time.Now(), "v1,x", []byte("{}"))
	if err != nil || status != http.StatusTemporaryRedirect || target != 0 {
		t.Fatalf("Send = %d, %v; target hit %d times", status, err, target)
	}
}

// clock is a test clock moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is an org with a user, a webhook endpoint pointing at a verifying
// receiver, and a dispatcher over a store.
type fixture struct {
	st     store.Store
	org    store.Org
	user   store.User
	sealer *webhooks.Sealer
	clock  *clock
	recv   *receiver
	ep     store.WebhookEndpoint
	disp   *webhooks.Dispatcher
}

func newSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keymint.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newFixture(t *testing.T, st store.Store, types ...string) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{st: st, clock: &clock{t: time.Now().UTC().Truncate(time.Microsecond)}}
	var err error
	f.org, err = st.EnsureOrg(ctx, "acme-"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	f.user = store.User{ID: uuid.NewString(), OrgID: f.org.ID, Email: uuid.NewString() + "@example.com", PasswordHash: "x"}
	if err := st.CreateUser(ctx, f.user); err != nil {
		t.Fatal(err)
	}
	key, _, err := webhooks.LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "webhook-key"))
	if err != nil {
		t.Fatal(err)
	}
	f.sealer, _ = webhooks.NewSealer(key)
	secret, _ := webhooks.NewSecret()
	f.recv = newReceiver(t, secret)
	f.ep = f.endpoint(t, f.recv.srv.URL, secret, types...)
	f.disp = f.dispatcher("a")
	return f
}

func (f *fixture) endpoint(t *testing.T, url, secret string, types ...string) store.WebhookEndpoint {
	t.Helper()
	if len(types) == 0 {
		types = []string{events.All}
	}
	ep := store.WebhookEndpoint{ID: uuid.NewString(), OrgID: f.org.ID, URL: url, EventTypes: types, Enabled: true}
	var err error
	if ep.Secret, err = f.sealer.Seal(secret, ep.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateWebhookEndpoint(t.Context(), ep, 10); err != nil {
		t.Fatal(err)
	}
	return ep
}

func (f *fixture) dispatcher(owner string) *webhooks.Dispatcher {
	return webhooks.NewDispatcher(webhooks.DispatcherConfig{Store: f.st, Sealer: f.sealer, Owner: owner, Now: f.clock.Now,
		Sender: webhooks.NewSender(webhooks.Guard{AllowPrivate: true}, 10*time.Second),
		Audit:  audit.New(audit.Config{Store: f.st})})
}

// mint creates a token with its token.created event, as tokens.Service does.
func (f *fixture) mint(t *testing.T, ttl time.Duration) store.Token {
	t.Helper()
	now := f.clock.Now()
	tok := store.Token{ID: uuid.NewString(), OrgID: f.org.ID, UserID: f.user.ID, Name: "ci", Hint: "km_x",
		Digest: []byte(uuid.NewString()), PepperID: "1", Scopes: []string{"read"}, CreatedBy: f.user.ID, CreatedAt: now}
	if ttl > 0 {
		tok.ExpiresAt = now.Add(ttl)
	}
	if err := f.st.CreateToken(t.Context(), tok, events.TokenEvent(events.TokenCreated, tok, now, nil)); err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) revoke(t *testing.T, tok store.Token) {
	t.Helper()
	at := f.clock.Now()
	tok.RevokedAt = at
	if _, err := f.st.RevokeToken(t.Context(), tok.ID, at, events.TokenEvent(events.TokenRevoked, tok, at, nil)); err != nil {
		t.Fatal(err)
	}
}

// drain steps the dispatcher until it finds nothing due at the test clock.
func (f *fixture) drain(t *testing.T, d *webhooks.Dispatcher) int {
	t.Helper()
	total := 0
	for {
		n, err := d.Step(t.Context())
		if err != nil {
			t.Fatalf("Step: %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

func (f *fixture) deliveries(t *testing.T) []store.WebhookDelivery {
	t.Helper()
	ds, err := f.st.ListWebhookDeliveries(t.Context(), store.DeliveryFilter{OrgID: f.org.ID})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// Every event of a token reaches the endpoint, signed, in order, with a
// payload that holds no secret.
func TestDispatchSignedInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newSQLite(t))
	var toks []store.Token
	for range 5 {
		toks = append(toks, f.mint(t, time.Hour))
	}
	for _, tok := range toks {
		f.revoke(t, tok)
	}
	f.revoke(t, toks[0]) // revoked already: no second event
	f.drain(t, f.disp)
	got := f.recv.deliveries()
	if len(got) != 10 {
		t.Fatalf("received %d deliveries, want 10", len(got))
	}
	seen := map[string][]string{}
	for _, e := range got {
		var d struct {
			Token events.Token `json:"token"`
		}
		b, _ := json.Marshal(e.Data)
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		if e.Version != events.SchemaVersion || e.OrganizationID != f.org.ID || strings.Contains(string(b), "km_x") {
			t.Errorf("payload %s", b)
		}
		seen[d.Token.ID] = append(seen[d.Token.ID], e.Type)
	}
	for _, tok := range toks {
		if s := strings.Join(seen[tok.ID], ","); s != "token.created,token.revoked" {
			t.Errorf("token %s: events %s, want created then revoked", tok.ID, s)
		}
	}
	for _, d := range f.deliveries(t) {
		if d.State != store.DeliveryDelivered || d.Attempts != 1 || d.LastStatus != http.StatusNoContent {
			t.Errorf("delivery %+v", d)
		}
	}
}

// A receiver that is down gets retries with growing delays, then the event;
// the attempts are listed, and a replay sends the same webhook-id again.
func TestDispatchRetriesUntilReceiverUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newSQLite(t))
	f.recv.fail = 3
	tok := f.mint(t, 0)
	var lastNext time.Time
	for i := range 3 {
		if n := f.drain(t, f.disp); n != 1 {
			t.Fatalf("attempt %d: stepped %d deliveries, want 1", i+1, n)
		}
		d := f.deliveries(t)[0]
		if d.State != store.DeliveryPending || d.Attempts != i+1 || d.LastStatus != 503 || d.LastError != "HTTP 503" {
			t.Fatalf("after attempt %d: %+v", i+1, d)
		}
		wait := d.NextAttemptAt.Sub(d.LastAttemptAt)
		if lo, hi := webhooks.BackoffBase<<i/2, webhooks.BackoffBase<<i; wait < lo || wait > hi {
			t.Errorf("retry %d after %v, want within [%v, %v]", i+1, wait, lo, hi)
		}
		if !d.NextAttemptAt.After(lastNext) {
			t.Errorf("next attempt %v not after the previous %v", d.NextAttemptAt, lastNext)
		}
		lastNext = d.NextAttemptAt
		if n := f.drain(t, f.disp); n != 0 {
			t.Fatalf("a retry went out %d times before it was due", n)
		}
		f.clock.Add(wait)
	}
	f.drain(t, f.disp)
	got := f.recv.deliveries()
	if len(got) != 1 || got[0].Type != events.TokenCreated {
		t.Fatalf("received %v, want the token.created of %s", got, tok.ID)
	}
	d := f.deliveries(t)[0]
	if d.State != store.DeliveryDelivered || d.Attempts != 4 || d.LastStatus != 204 {
		t.Fatalf("delivery %+v", d)
	}
	ep, _ := f.st.GetWebhookEndpoint(t.Context(), f.org.ID, f.ep.ID)
	if !ep.FailingSince.IsZero() || !ep.Enabled {
		t.Errorf("endpoint after a success: %+v", ep)
	}
	if _, err := f.st.ReplayWebhookDelivery(t.Context(), f.org.ID, d.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.drain(t, f.disp)
	got = f.recv.deliveries()
	if len(got) != 2 || got[1].ID != got[0].ID {
		t.Fatalf("replay delivered %v, want the same webhook-id again", got)
	}
}

// A delivery is given up after the retry period; an endpoint failing for
// DisableAfter is disabled, with an audit event and a webhook.disabled
// notice to the org's other endpoints.
func TestDispatchGivesUpAndDisables(t *testing.T) {
	t.Parallel()
	st := newSQLite(t)
	f := newFixture(t, st)
	f.recv.fail = 1 << 30
	secret, _ := webhooks.NewSecret()
	watcher := newReceiver(t, secret)
	f.endpoint(t, watcher.srv.URL, secret, events.WebhookDisabled)
	d := webhooks.NewDispatcher(webhooks.DispatcherConfig{Store: st, Sealer: f.sealer, Now: f.clock.Now,
		Sender: webhooks.NewSender(webhooks.Guard{AllowPrivate: true}, 10*time.Second), Audit: audit.New(audit.Config{Store: st}),
		RetryFor: 2 * time.Hour, DisableAfter: 5 * time.Hour})
	f.mint(t, 0)
	// Attempts at 0h, 1h, 2h: the last is past the retry period.
	for range 4 {
		f.drain(t, d)
		f.clock.Add(time.Hour)
	}
	ds := f.deliveries(t)
	if len(ds) != 1 || ds[0].State != store.DeliveryFailed || ds[0].Attempts != 3 {
		t.Fatalf("deliveries %+v, want one given up after 3 attempts", ds)
	}
	if ep, _ := st.GetWebhookEndpoint(t.Context(), f.org.ID, f.ep.ID); !ep.Enabled || ep.FailingSince.IsZero() {
		t.Fatalf("endpoint %+v, want enabled and failing", ep)
	}
	// A second event fails at 4h and 5h: the endpoint has failed 5 hours.
	f.mint(t, 0)
	for range 2 {
		f.drain(t, d)
		f.clock.Add(time.Hour)
	}
	ep, _ := st.GetWebhookEndpoint(t.Context(), f.org.ID, f.ep.ID)
	if ep.Enabled || ep.DisabledAt.IsZero() {
		t.Fatalf("endpoint %+v, want disabled", ep)
	}
	if ds := f.deliveries(t); len(ds) != 3 || ds[1].State != store.DeliveryFailed || ds[1].Attempts != 2 {
		t.Fatalf("deliveries %+v, want the second given up by the disabling", ds)
	}
	f.mint(t, 0)
	if ds := f.deliveries(t); len(ds) != 3 {
		t.Fatalf("a disabled endpoint got a delivery queued: %+v", ds)
	}
	f.drain(t, d)
	got := watcher.deliveries()
	if len(got) != 1 || got[0].Type != events.WebhookDisabled {
		t.Fatalf("watcher received %v, want one webhook.disabled", got)
	}
	if b, _ := json.Marshal(got[0].Data); !strings.Contains(string(b), f.ep.ID) || strings.Contains(string(b), "whsec_") {
		t.Errorf("webhook.disabled data %s", b)
	}
	evs, err := st.ListAuditEvents(t.Context(), store.AuditFilter{OrgID: f.org.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Action != audit.WebhookDisabled || evs[0].TargetID != f.ep.ID {
		t.Fatalf("audit %+v, want one webhook.disabled", evs)
	}
}

// A dispatcher that dies between claiming (the event is committed and
// leased) and recording its attempt loses nothing: once its lease runs out,
// another replica (or the restarted one) delivers under the same id.
func TestDispatchAfterLostLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newSQLite(t))
	f.mint(t, 0)
	claimed, err := f.st.ClaimWebhookDeliveries(t.Context(), "dead", f.clock.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %v, %v", claimed, err)
	}
	if n := f.drain(t, f.disp); n != 0 {
		t.Fatalf("delivered %d under another's live lease", n)
	}
	f.clock.Add(time.Minute)
	f.drain(t, f.disp)
	if got := f.recv.deliveries(); len(got) != 1 || got[0].ID != claimed[0].Event.ID {
		t.Fatalf("received %v, want %s", got, claimed[0].Event.ID)
	}
}

// The expiry warning fires once for a token minted with a short TTL and a
// short window, however often and by however many schedulers the clock is
// scanned; token.expired follows once at expiry. Driven by the test clock.
func TestSchedulerExpiryOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newSQLite(t), events.TokenExpiring, events.TokenExpired)
	tok := f.mint(t, time.Hour)
	young := f.mint(t, 5*time.Minute) // minted inside the window: no warning
	f.mint(t, 0)                      // never expires
	newSched := func() *webhooks.Scheduler {
		return webhooks.NewScheduler(webhooks.SchedulerConfig{Store: f.st, Now: f.clock.Now, Windows: []time.Duration{10 * time.Minute}})
	}
	a, b := newSched(), newSched()
	step := func(s *webhooks.Scheduler) int {
		n, err := s.Step(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := step(a); n != 0 {
		t.Fatalf("notices at mint time: %d", n)
	}
	f.clock.Add(51 * time.Minute)
	// young expired meanwhile: its token.expired goes out with tok's warning.
	if n := step(a); n != 2 {
		t.Fatalf("notices inside the window: %d, want tok's warning and young's expiry", n)
	}
	if n := step(a) + step(b); n != 0 {
		t.Fatalf("notices on rescans: %d, want none", n)
	}
	f.clock.Add(10 * time.Minute)
	if n := step(b) + step(a); n != 1 {
		t.Fatalf("notices after expiry: %d, want one token.expired", n)
	}
	f.drain(t, f.disp)
	var got []string
	for _, e := range f.recv.deliveries() {
		b, _ := json.Marshal(e.Data)
		var d events.TokenData
		_ = json.Unmarshal(b, &d)
		got = append(got, e.Type+":"+d.Token.ID)
	}
	want := []string{"token.expiring:" + tok.ID, "token.expired:" + young.ID, "token.expired:" + tok.ID}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("received %v, want %v", got, want)
	}
}

// An organization's own windows replace the defaults for its tokens.
func TestSchedulerOrgWindows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newSQLite(t), events.TokenExpiring)
	if _, err := f.st.UpdateOrgPolicy(t.Context(), f.org.ID, store.OrgPolicy{ExpiryWarnings: []time.Duration{30 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	tok := f.mint(t, time.Hour)
	s := webhooks.NewScheduler(webhooks.SchedulerConfig{Store: f.st, Now: f.clock.Now, Windows: []time.Duration{10 * time.Minute}})
	step := func() int {
		n, err := s.Step(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	f.clock.Add(29 * time.Minute)
	if n := step(); n != 0 {
		t.Fatalf("notices 31 minutes before expiry: %d", n)
	}
	f.clock.Add(2 * time.Minute)
	if n := step(); n != 1 {
		t.Fatalf("notices inside the org's 30m window: %d, want 1", n)
	}
	f.clock.Add(20 * time.Minute) // inside the default 10m window, which the org does not use
	if n := step(); n != 0 {
		t.Fatalf("notices in a default window the org replaced: %d", n)
	}
	f.drain(t, f.disp)
	got := f.recv.deliveries()
	if len(got) != 1 || tokenID(t, got[0]) != tok.ID {
		t.Fatalf("received %v", got)
	}
	if b, _ := json.Marshal(got[0].Data); !strings.Contains(string(b), `"windowSeconds":1800`) {
		t.Errorf("data %s", b)
	}
}

func tokenID(t *testing.T, e events.Envelope) string {
	t.Helper()
	b, _ := json.Marshal(e.Data)
	var d events.TokenData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d.Token.ID
}
