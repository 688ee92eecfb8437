package webhooks_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/webhooks"
)

// Refused sign-ins become one signin.throttled per organization and
// period, with a count per account; unknown accounts and other orgs'
// accounts are not in it, and an empty period writes nothing.
func TestThrottleNoticesAggregate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newSQLite(t), events.SigninThrottled)
	other, err := f.st.EnsureOrg(t.Context(), "other-"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	stranger := store.User{ID: uuid.NewString(), OrgID: other.ID, Email: uuid.NewString() + "@example.com", PasswordHash: "x"}
	if err := f.st.CreateUser(t.Context(), stranger); err != nil {
		t.Fatal(err)
	}
	n := webhooks.NewThrottleNotices(f.st, 0, f.clock.Now, nil)
	for range 7 {
		n.Observe(f.user.Email)
	}
	n.Observe("nobody@example.com")
	n.Observe(stranger.Email)
	if err := n.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := n.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.drain(t, f.disp)
	got := f.recv.deliveries()
	if len(got) != 1 || got[0].Type != events.SigninThrottled || got[0].OrganizationID != f.org.ID {
		t.Fatalf("received %+v, want one signin.throttled for the org", got)
	}
	b, _ := json.Marshal(got[0].Data)
	var d events.ThrottleData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Accounts) != 1 || d.Accounts[0].UserID != f.user.ID || d.Accounts[0].Attempts != 7 || d.From == "" || d.To == "" {
		t.Fatalf("data %s", b)
	}
}

// The accounts remembered per period are bounded.
func TestThrottleNoticesBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newSQLite(t), events.SigninThrottled)
	n := webhooks.NewThrottleNotices(f.st, 0, f.clock.Now, nil)
	for i := range webhooks.MaxThrottledAccounts {
		n.Observe(fmt.Sprintf("flood-%d@example.com", i))
	}
	n.Observe(f.user.Email) // one too many: dropped
	if err := n.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ds := f.deliveries(t); len(ds) != 0 {
		t.Fatalf("deliveries %+v: the account past the bound was counted", ds)
	}
}
