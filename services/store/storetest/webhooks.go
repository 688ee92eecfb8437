package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

func newEndpoint(orgID string, types ...string) store.WebhookEndpoint {
	return store.WebhookEndpoint{
		ID:         uuid.NewString(),
		OrgID:      orgID,
		URL:        "https://hooks.example.com/" + uuid.NewString(),
		EventTypes: types,
		Secret:     randomBytes(40),
		Enabled:    true,
		CreatedAt:  base,
	}
}

func newEvent(orgID, typ, subject string) store.Event {
	return store.Event{ID: "msg_" + uuid.NewString(), OrgID: orgID, Type: typ, Subject: subject,
		Payload: []byte(`{"type":"` + typ + `"}`), CreatedAt: base}
}

func createEndpoints(t *testing.T, s store.Store, endpoints ...store.WebhookEndpoint) {
	t.Helper()
	for _, e := range endpoints {
		if err := s.CreateWebhookEndpoint(t.Context(), e, 10); err != nil {
			t.Fatalf("CreateWebhookEndpoint: %v", err)
		}
	}
}

// deliveriesByEndpoint lists an org's deliveries as endpoint id -> event ids, oldest first.
func deliveriesByEndpoint(t *testing.T, s store.Store, orgID string) map[string][]string {
	t.Helper()
	ds := must(s.ListWebhookDeliveries(t.Context(), store.DeliveryFilter{OrgID: orgID}))(t)
	out := map[string][]string{}
	for i := len(ds) - 1; i >= 0; i-- {
		out[ds[i].EndpointID] = append(out[ds[i].EndpointID], ds[i].EventID)
	}
	return out
}

func testWebhookEndpoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, _ := newOrgUser(t, s, "acme", "alice@example.com")
	other, _ := newOrgUser(t, s, "globex", "bob@example.com")
	a, b := newEndpoint(org.ID, "token.created", "token.revoked"), newEndpoint(org.ID, "*")
	createEndpoints(t, s, a, b)
	got := must(s.GetWebhookEndpoint(ctx, org.ID, a.ID))(t)
	if got.URL != a.URL || fmt.Sprint(got.EventTypes) != fmt.Sprint(a.EventTypes) || string(got.Secret) != string(a.Secret) ||
		!got.Enabled || !got.CreatedAt.Equal(base) || !got.DisabledAt.IsZero() || !got.FailingSince.IsZero() {
		t.Errorf("GetWebhookEndpoint = %+v, want %+v", got, a)
	}
	_, err := s.GetWebhookEndpoint(ctx, other.ID, a.ID)
	checkErr(t, "GetWebhookEndpoint(other org)", err, store.ErrNotFound)
	list := must(s.ListWebhookEndpoints(ctx, org.ID))(t)
	if len(list) != 2 {
		t.Errorf("ListWebhookEndpoints = %d endpoints, want 2", len(list))
	}
	checkErr(t, "CreateWebhookEndpoint(over the limit)", s.CreateWebhookEndpoint(ctx, newEndpoint(org.ID, "*"), 2), store.ErrConflict)
	checkErr(t, "DeleteWebhookEndpoint(other org)", s.DeleteWebhookEndpoint(ctx, other.ID, a.ID), store.ErrNotFound)
	if err := s.DeleteWebhookEndpoint(ctx, org.ID, a.ID); err != nil {
		t.Fatalf("DeleteWebhookEndpoint: %v", err)
	}
	checkErr(t, "DeleteWebhookEndpoint(again)", s.DeleteWebhookEndpoint(ctx, org.ID, a.ID), store.ErrNotFound)
}

// Events reach exactly the subscribed, enabled endpoints of their org, in
// the transaction of the change; a revocation that changes nothing writes
// nothing.
func testOutboxFanOut(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	other, _ := newOrgUser(t, s, "globex", "bob@example.com")
	created, all, foreign := newEndpoint(org.ID, "token.created"), newEndpoint(org.ID, "*"), newEndpoint(other.ID, "*")
	createEndpoints(t, s, created, all, foreign)

	tok := newToken(org.ID, u.ID, base)
	e1 := newEvent(org.ID, "token.created", tok.ID)
	if err := s.CreateToken(ctx, tok, e1); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	e2 := newEvent(org.ID, "token.revoked", tok.ID)
	must(s.RevokeToken(ctx, tok.ID, base.Add(time.Second), e2))(t)
	// Revoked already: the event is not written.
	must(s.RevokeToken(ctx, tok.ID, base.Add(2*time.Second), newEvent(org.ID, "token.revoked", tok.ID)))(t)
	succ := newToken(org.ID, u.ID, base)
	tok2 := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	e3 := newEvent(org.ID, "token.rotated", tok2.ID)
	must(s.RotateToken(ctx, tok2.ID, succ, base.Add(time.Hour), e3))(t)
	e4 := newEvent(org.ID, "user.password_changed", u.ID)
	if err := s.UpdatePasswordHash(ctx, u.ID, "h", e4); err != nil {
		t.Fatal(err)
	}
	// A failed change writes no event.
	_, err := s.RotateToken(ctx, tok.ID, newToken(org.ID, u.ID, base), base, newEvent(org.ID, "token.rotated", tok.ID))
	checkErr(t, "RotateToken(revoked)", err, store.ErrConflict)

	got := deliveriesByEndpoint(t, s, org.ID)
	want := map[string][]string{created.ID: {e1.ID}, all.ID: {e1.ID, e2.ID, e3.ID, e4.ID}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deliveries = %v, want %v", got, want)
	}
	if got := deliveriesByEndpoint(t, s, other.ID); len(got) != 0 {
		t.Errorf("other org's deliveries = %v, want none", got)
	}
	if err := s.AppendEvents(ctx, newEvent(other.ID, "signin.throttled", "x")); err != nil {
		t.Fatal(err)
	}
	if got := deliveriesByEndpoint(t, s, other.ID); len(got[foreign.ID]) != 1 {
		t.Errorf("other org's deliveries after AppendEvents = %v, want one", got)
	}
}

// Claims lease deliveries, honour one subject's order, record outcomes
// and the endpoint's health; replays queue the event again.
func testOutboxClaimFinish(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, _ := newOrgUser(t, s, "acme", "alice@example.com")
	ep := newEndpoint(org.ID, "*")
	createEndpoints(t, s, ep)
	first, second, other := newEvent(org.ID, "token.created", "t1"), newEvent(org.ID, "token.revoked", "t1"), newEvent(org.ID, "token.created", "t2")
	if err := s.AppendEvents(ctx, first, second, other); err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Minute)
	claimed := must(s.ClaimWebhookDeliveries(ctx, "a", now, time.Minute, 10))(t)
	ids := map[string]store.ClaimedDelivery{}
	for _, c := range claimed {
		ids[c.Event.ID] = c
	}
	if len(claimed) != 2 || ids[first.ID].Delivery.ID == 0 || ids[other.ID].Delivery.ID == 0 {
		t.Fatalf("claimed %d deliveries %v, want the first of t1 and t2's", len(claimed), ids)
	}
	c := ids[first.ID]
	if c.Endpoint.URL != ep.URL || string(c.Endpoint.Secret) != string(ep.Secret) || string(c.Event.Payload) != string(first.Payload) ||
		c.Event.Type != first.Type || c.Delivery.State != store.DeliveryPending {
		t.Errorf("claimed %+v", c)
	}
	if again := must(s.ClaimWebhookDeliveries(ctx, "b", now, time.Minute, 10))(t); len(again) != 0 {
		t.Fatalf("a second claimer got %d leased deliveries", len(again))
	}
	// A failure schedules a retry and marks the endpoint failing.
	failAt := now.Add(time.Second)
	fs := must(s.FinishWebhookDelivery(ctx, "a", store.DeliveryAttempt{DeliveryID: c.Delivery.ID, At: failAt, Status: 503,
		Error: "HTTP 503", Latency: 1500 * time.Microsecond, RetryAt: failAt.Add(time.Minute)}))(t)
	if !fs.Equal(failAt) {
		t.Errorf("failing since %v, want %v", fs, failAt)
	}
	_, err := s.FinishWebhookDelivery(ctx, "b", store.DeliveryAttempt{DeliveryID: ids[other.ID].Delivery.ID, At: failAt, OK: true})
	checkErr(t, "FinishWebhookDelivery(not the lease owner)", err, store.ErrConflict)
	// The retry is not due yet, and the second event of t1 waits behind it.
	if got := must(s.ClaimWebhookDeliveries(ctx, "b", failAt, time.Minute, 10))(t); len(got) != 0 {
		t.Fatalf("claimed %d deliveries before the retry was due", len(got))
	}
	// A lapsed lease is claimable again: the other delivery, after "a" died.
	later := failAt.Add(2 * time.Minute)
	got := must(s.ClaimWebhookDeliveries(ctx, "b", later, time.Minute, 10))(t)
	if len(got) != 2 {
		t.Fatalf("claimed %d deliveries after the retry was due and a's lease lapsed, want 2", len(got))
	}
	for _, g := range got {
		fs = must(s.FinishWebhookDelivery(ctx, "b", store.DeliveryAttempt{DeliveryID: g.Delivery.ID, At: later, Status: 204, OK: true}))(t)
	}
	if !fs.IsZero() {
		t.Errorf("failing since %v after a success, want zero", fs)
	}
	got = must(s.ClaimWebhookDeliveries(ctx, "b", later, time.Minute, 10))(t)
	if len(got) != 1 || got[0].Event.ID != second.ID {
		t.Fatalf("claimed %v, want t1's second event now that its first is delivered", got)
	}
	must(s.FinishWebhookDelivery(ctx, "b", store.DeliveryAttempt{DeliveryID: got[0].Delivery.ID, At: later, Status: 400, Error: "HTTP 400"}))(t)

	list := must(s.ListWebhookDeliveries(ctx, store.DeliveryFilter{OrgID: org.ID, EndpointID: ep.ID}))(t)
	if len(list) != 3 {
		t.Fatalf("ListWebhookDeliveries = %d, want 3", len(list))
	}
	byEvent := map[string]store.WebhookDelivery{}
	for _, d := range list {
		byEvent[d.EventID] = d
	}
	if d := byEvent[first.ID]; d.State != store.DeliveryDelivered || d.Attempts != 2 || d.LastStatus != 204 || !d.DoneAt.Equal(later) {
		t.Errorf("first delivery = %+v", d)
	}
	if d := byEvent[second.ID]; d.State != store.DeliveryFailed || d.Attempts != 1 || d.LastStatus != 400 || d.LastError != "HTTP 400" {
		t.Errorf("second delivery = %+v", d)
	}
	page := must(s.ListWebhookDeliveries(ctx, store.DeliveryFilter{OrgID: org.ID, Limit: 2}))(t)
	rest := must(s.ListWebhookDeliveries(ctx, store.DeliveryFilter{OrgID: org.ID, BeforeID: page[1].ID}))(t)
	if len(page) != 2 || len(rest) != 1 || page[0].ID <= page[1].ID || rest[0].ID >= page[1].ID {
		t.Errorf("pages %v then %v", page, rest)
	}

	r := must(s.ReplayWebhookDelivery(ctx, org.ID, byEvent[second.ID].ID, later))(t)
	if r.EventID != second.ID || r.State != store.DeliveryPending || r.ID <= byEvent[second.ID].ID {
		t.Errorf("replay = %+v", r)
	}
	_, err = s.ReplayWebhookDelivery(ctx, "another-org", byEvent[second.ID].ID, later)
	checkErr(t, "ReplayWebhookDelivery(other org)", err, store.ErrNotFound)
	if got := must(s.ClaimWebhookDeliveries(ctx, "c", later, time.Minute, 10))(t); len(got) != 1 || got[0].Event.ID != second.ID {
		t.Fatalf("claimed %v, want the replay", got)
	}

	// Disabling gives up pending deliveries and writes its notice once.
	notice := newEvent(org.ID, "webhook.disabled", ep.ID)
	if changed := must(s.DisableWebhookEndpoint(ctx, ep.ID, later, notice))(t); !changed {
		t.Error("DisableWebhookEndpoint changed nothing")
	}
	if changed := must(s.DisableWebhookEndpoint(ctx, ep.ID, later, notice))(t); changed {
		t.Error("DisableWebhookEndpoint(disabled) changed something")
	}
	if e := must(s.GetWebhookEndpoint(ctx, org.ID, ep.ID))(t); e.Enabled || !e.DisabledAt.Equal(later) {
		t.Errorf("disabled endpoint = %+v", e)
	}
	if got := must(s.ClaimWebhookDeliveries(ctx, "c", later.Add(time.Hour), time.Minute, 10))(t); len(got) != 0 {
		t.Fatalf("claimed %d deliveries of a disabled endpoint", len(got))
	}
	if n := must(s.PruneWebhookOutbox(ctx, later.Add(time.Second)))(t); n != 4 {
		t.Errorf("PruneWebhookOutbox = %d, want 4 finished deliveries", n)
	}
}

// Concurrent claimers never get the same delivery.
func testOutboxClaimConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, _ := newOrgUser(t, s, "acme", "alice@example.com")
	createEndpoints(t, s, newEndpoint(org.ID, "*"), newEndpoint(org.ID, "*"))
	const events = 40
	var evs []store.Event
	for i := range events {
		evs = append(evs, newEvent(org.ID, "token.created", fmt.Sprint("t", i)))
	}
	if err := s.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[int64]int{}
		wg   sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("w", w)
			for {
				got, err := s.ClaimWebhookDeliveries(ctx, owner, base.Add(time.Minute), time.Hour, 3)
				if err != nil {
					t.Errorf("ClaimWebhookDeliveries: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				for _, c := range got {
					mu.Lock()
					seen[c.Delivery.ID]++
					mu.Unlock()
					if _, err := s.FinishWebhookDelivery(ctx, owner, store.DeliveryAttempt{DeliveryID: c.Delivery.ID,
						At: base.Add(time.Minute), OK: true, Status: 200}); err != nil {
						t.Errorf("FinishWebhookDelivery: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 2*events {
		t.Errorf("claimed %d distinct deliveries, want %d", len(seen), 2*events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %d claimed %d times", id, n)
		}
	}
}

// Expiry notices: found through the expiry range, recorded once however
// many recorders race, never for a revoked or rotated token.
func testExpiryNotices(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	createEndpoints(t, s, newEndpoint(org.ID, "*"))
	mk := func(created time.Time, ttl time.Duration) store.Token {
		tok := newToken(org.ID, u.ID, created)
		tok.ExpiresAt = created.Add(ttl)
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	soon := mk(base, 2*time.Hour)
	young := mk(base.Add(90*time.Minute), 40*time.Minute) // minted inside the window
	mk(base, 48*time.Hour)                                // far off
	revoked := mk(base, 2*time.Hour)
	must(s.RevokeToken(ctx, revoked.ID, base))(t)
	noExpiry := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, noExpiry); err != nil {
		t.Fatal(err)
	}
	now := base.Add(90 * time.Minute)
	q := store.ExpiryQuery{After: now, Until: now.Add(time.Hour), MinLifetime: time.Hour, Notice: "expiring:3600", Limit: 10}
	got := must(s.ExpiringTokens(ctx, q))(t)
	if len(got) != 1 || got[0].ID != soon.ID {
		t.Fatalf("ExpiringTokens = %v, want only %s", got, soon.ID)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		recorded int
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.RecordTokenNotice(ctx, soon.ID, q.Notice, now, newEvent(org.ID, "token.expiring", soon.ID))
			if err != nil {
				t.Errorf("RecordTokenNotice: %v", err)
			}
			if ok {
				mu.Lock()
				recorded++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if recorded != 1 {
		t.Fatalf("RecordTokenNotice recorded %d times, want once", recorded)
	}
	if got := must(s.ExpiringTokens(ctx, q))(t); len(got) != 0 {
		t.Errorf("ExpiringTokens after the notice = %v, want none", got)
	}
	if ok := must(s.RecordTokenNotice(ctx, revoked.ID, q.Notice, now))(t); ok {
		t.Error("RecordTokenNotice recorded a notice for a revoked token")
	}
	if ok := must(s.RecordTokenNotice(ctx, young.ID, "expired", now))(t); !ok {
		t.Error("RecordTokenNotice(another notice) = false")
	}
	if d := deliveriesByEndpoint(t, s, org.ID); len(d) != 1 {
		t.Errorf("deliveries = %v, want one endpoint's", d)
	} else {
		for _, evs := range d {
			if len(evs) != 1 {
				t.Errorf("deliveries = %v, want one token.expiring", d)
			}
		}
	}
}

// An organization's own warning windows: listed by OrgExpiryWindows, and
// ExpiringTokens keeps a window's tokens to the organizations using it.
func testExpiryWindowsPerOrg(t *testing.T, s store.Store) {
	ctx := t.Context()
	own, u := newOrgUser(t, s, "acme", "alice@example.com")
	dflt, v := newOrgUser(t, s, "globex", "bob@example.com")
	if _, err := s.UpdateOrgPolicy(ctx, own.ID, store.OrgPolicy{ExpiryWarnings: []time.Duration{30 * time.Minute, 48 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if got := must(s.GetOrg(ctx, own.ID))(t).Policy.ExpiryWarnings; fmt.Sprint(got) != "[30m0s 48h0m0s]" {
		t.Fatalf("ExpiryWarnings = %v", got)
	}
	if got := must(s.OrgExpiryWindows(ctx))(t); fmt.Sprint(got) != "[30m0s 48h0m0s]" {
		t.Fatalf("OrgExpiryWindows = %v", got)
	}
	mk := func(orgID, userID string) store.Token {
		tok := newToken(orgID, userID, base)
		tok.ExpiresAt = base.Add(2 * time.Hour)
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a, b := mk(own.ID, u.ID), mk(dflt.ID, v.ID)
	now := base.Add(time.Hour + 45*time.Minute)
	q := store.ExpiryQuery{After: now, Until: now.Add(30 * time.Minute), MinLifetime: 30 * time.Minute, Notice: "expiring:1800",
		Window: 30 * time.Minute, Limit: 10}
	if got := must(s.ExpiringTokens(ctx, q))(t); len(got) != 1 || got[0].ID != a.ID {
		t.Errorf("window of acme only: %v, want acme's token", got)
	}
	q.DefaultWindow = true
	if got := must(s.ExpiringTokens(ctx, q))(t); len(got) != 2 {
		t.Errorf("window of acme and the default: %d tokens, want both", len(got))
	}
	q.Window, q.Notice = time.Hour, "expiring:3600"
	q.DefaultWindow = true
	if got := must(s.ExpiringTokens(ctx, q))(t); len(got) != 1 || got[0].ID != b.ID {
		t.Errorf("a default window acme does not use: %v, want globex's token", got)
	}
}
