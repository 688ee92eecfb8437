package e2e

import (
	"github.com/keymint/keymint/services/server"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/events"
)

// TestBrowserWebhooks drives the page's webhook section as an org admin:
// add a webhook, read its secret once from the dialog, see a signed event
// arrive with it, list the deliveries and replay one.
func TestBrowserWebhooks(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	cfg := testConfig(t)
	cfg.Webhooks = server.WebhooksConfig{AllowPrivate: true, Poll: 20 * time.Millisecond}
	admin := account{"web-admin@example.com", "browser admin password"}
	createUser(t, cfg, admin.email, "acme", admin.password, true)
	srv := startServer(t, cfg)
	recv := newHookReceiver(t)

	ctx := newChromium(t, 90*time.Second)
	act := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	act("start chromium", chromedp.Navigate("about:blank"))
	pageErrors := watchPageErrors(ctx)
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the Log domain: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	act("sign in", chromedp.Navigate(srv.http+"/#webhooks"), chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SendKeys(chromedp.CSS("#signin-email"), admin.email),
		chromedp.SendKeys(chromedp.CSS("#signin-password"), admin.password+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#webhooks-view")), chromedp.WaitVisible(chromedp.CSS("#wh-empty")))

	act("refused url", chromedp.SendKeys(chromedp.CSS("#wh-url"), "ftp://example.com/x"),
		chromedp.Click(chromedp.CSS("#wh-add")), chromedp.WaitVisible(chromedp.CSS("#webhook-error")))
	if msg := text("#webhook-error"); !strings.Contains(msg, "http") || strings.Contains(msg, "{") {
		t.Fatalf("refused url shows %q", msg)
	}
	act("add", chromedp.SetValue(chromedp.CSS("#wh-url"), recv.srv.URL+"/hook"),
		chromedp.Click(chromedp.CSS("#wh-add")), chromedp.WaitVisible(chromedp.CSS("#reveal-dialog[open]")))
	secret, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#reveal-secret")))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("revealed %q, %v", secret, err)
	}
	recv.setSecret(secret)
	act("close the secret", chromedp.Click(chromedp.CSS("#reveal-done")), chromedp.WaitNotVisible(chromedp.CSS("#reveal-dialog")))
	if s := text("#webhook-rows"); !strings.Contains(s, recv.srv.URL) || strings.Contains(s, "whsec_") {
		t.Fatalf("webhook list shows %q", s)
	}

	minted := admin.mint(t, srv, &keymintv1.CreateTokenRequest{Name: "ci"})
	if got := recv.waitFor(1); got[0].Type != events.TokenCreated || tokenIDOf(t, got[0]) != minted.Token.Id {
		t.Fatalf("received %+v", got[0])
	}
	// The attempt is recorded just after the receiver answered: reload the
	// list until it says so.
	deadline := time.Now().Add(time.Minute)
	for {
		act("deliveries", chromedp.Click(chromedp.CSS("#webhook-rows button")), chromedp.WaitVisible(chromedp.CSS("#deliveries")))
		if strings.Contains(text("#delivery-rows"), "delivered") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries show %q", text("#delivery-rows"))
		}
	}
	act("replay", chromedp.Click(chromedp.CSS("#delivery-rows button")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := recv.waitFor(2); got[1].ID != got[0].ID {
		t.Fatalf("replay sent %s, want %s again", got[1].ID, got[0].ID)
	}
	if errs := pageErrors.list(); len(errs) > 0 {
		t.Fatalf("page errors: %v", errs)
	}
}
