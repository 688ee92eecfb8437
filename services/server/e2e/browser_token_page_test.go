package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// chromiumPath is Debian's chromium, which scripts/install-deps.sh installs.
const chromiumPath = "/usr/bin/chromium"

// requireChromium skips the test when chromium is missing, or fails it under
// make test (KEYMINT_TEST_REQUIRE_SERVICES=1), which installs it first.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("KEYMINT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is missing and KEYMINT_TEST_REQUIRE_SERVICES=1: run scripts/install-deps.sh (apt-get install chromium)", chromiumPath)
		}
		t.Skipf("%s is missing; run make test, which installs it", chromiumPath)
	}
}

// newChromium starts a headless chromium with its own profile and returns a
// tab context that ends with the test (or after timeout).
func newChromium(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

// TestBrowserTokenPage drives the web page in headless chromium as a person
// would: sign in, generate a token, read its secret from the dialog, use it
// with the REST API, check a reload never shows it again, revoke it in the
// page, and see the API refuse it. Screenshots of the list and the reveal
// dialog, on a laptop and on a phone screen, are kept in a directory the test
// log names.
func TestBrowserTokenPage(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	cfg := testConfig(t)
	const email, password = "web@example.com", "browser test password"
	const newPassword = "a new browser password"
	createUser(t, cfg, email, "acme", password, false)
	srv := startServer(t, cfg)
	p := openTokenPage(t, srv)

	p.signIn(email, password)
	p.refusedScope()
	secret, tokenID := p.generate()
	phoneSecret := p.phoneToken(tokenID)
	p.rotate(secret, tokenID)
	p.revoke(secret, tokenID)
	p.changePassword(password, newPassword)
	p.signOutAndIn(email, newPassword)

	if errs := p.errors.list(); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
	for _, s := range []string{secret, phoneSecret, password, newPassword} {
		if strings.Contains(srv.logs.String(), s) {
			t.Fatal("server log contains a secret or password")
		}
	}
}

// tokenPage is the web page in a headless chromium tab, with the helpers
// TestBrowserTokenPage's steps share.
type tokenPage struct {
	t   *testing.T
	ctx context.Context
	srv *testServer
	// shots is where screenshots go; downloads where the browser saves.
	shots, downloads string
	desktop, phone   chromedp.Action[chromedp.Void]
	errors           *pageErrorLog
}

// openTokenPage starts chromium on a blank page, watching it for errors from
// before the page first loads, with downloads allowed.
func openTokenPage(t *testing.T, srv *testServer) *tokenPage {
	t.Helper()
	shots, err := os.MkdirTemp("", "keymint-browser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", shots)
	p := &tokenPage{t: t, ctx: newChromium(t, 90*time.Second), srv: srv, shots: shots, downloads: t.TempDir(),
		desktop: chromedp.EmulateViewport(1280, 900),
		phone:   chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))}
	// Uncaught exceptions, console.error calls and console messages of level
	// error other than failed requests (a CSP violation is one) fail the test
	// at the end. Subscribed before the page first loads.
	p.act("start chromium", chromedp.Navigate("about:blank"))
	p.errors = watchPageErrors(p.ctx)
	if _, err := chromedp.Call(p.ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the Log domain: %v", err)
	}
	if _, err := chromedp.CallBrowser(p.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior:     cdpbrowser.SetDownloadBehaviorBehaviorAllow,
		DownloadPath: p.downloads,
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	return p
}

func (p *tokenPage) act(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func (p *tokenPage) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (p *tokenPage) eval(js string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluate %q: %v", js, err)
	}
	return s
}

// screenshot saves the whole page, or only the viewport for a modal
// dialog (its backdrop covers the viewport, not the whole page).
func (p *tokenPage) screenshot(name string) {
	p.t.Helper()
	// Let the layout settle (fonts, dialog animation) before the shot.
	p.act("settle", chromedp.Sleep(150*time.Millisecond))
	shot := chromedp.FullScreenshot(100)
	if strings.Contains(name, "reveal") || strings.Contains(name, "confirm") {
		shot = chromedp.CaptureScreenshot()
	}
	buf, err := chromedp.Run(p.ctx, shot)
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(p.shots, name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// signIn signs in with the keyboard, after a wrong password.
func (p *tokenPage) signIn(email, password string) {
	t := p.t
	// Sign in, with the keyboard: a wrong password first.
	p.act("open the page", p.desktop, chromedp.Navigate(p.srv.http+"/"), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	p.screenshot("signin-desktop.png")
	if d := p.eval(`getComputedStyle(document.getElementById('account')).display`); d != "none" {
		t.Fatalf("account controls shown before sign-in (display %s)", d)
	}
	p.act("wrong password",
		chromedp.SendKeys(chromedp.CSS("#signin-email"), email),
		chromedp.SendKeys(chromedp.CSS("#signin-password"), "not the password"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#alert")))
	if msg := p.text("#alert"); !strings.Contains(msg, "do not match") || strings.Contains(msg, "{") {
		t.Fatalf("wrong password shows %q", msg)
	}
	p.act("sign in",
		chromedp.SendKeys(chromedp.CSS("#signin-password"), password+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#tokens-view")),
		chromedp.WaitVisible(chromedp.CSS("#empty")))
	if who := p.text("#who"); who != email {
		t.Fatalf("signed in as %q", who)
	}
	if c := p.eval(`document.cookie`); strings.Contains(c, "keymint_session") {
		t.Fatal("the session cookie is readable from JavaScript: it must be HttpOnly")
	}
}

// refusedScope has the server refuse a scope: the dialog says why under
// the field, in plain words; then the dialog is cancelled.
func (p *tokenPage) refusedScope() {
	t := p.t
	// A server-side refusal shows in the dialog as a sentence, not JSON.
	p.act("bad scope",
		chromedp.Click(chromedp.CSS("#generate")),
		chromedp.WaitVisible(chromedp.CSS("#generate-dialog[open]")),
		chromedp.SendKeys(chromedp.CSS("#gen-name"), "bad"),
		chromedp.SendKeys(chromedp.CSS("#gen-scopes"), "no!good"),
		chromedp.Click(chromedp.CSS("#generate-submit")),
		chromedp.WaitVisible(chromedp.CSS("#gen-scopes-error")))
	// The refusal is in plain words under its field, tied to it, and goes
	// once the field is edited.
	if msg := p.text("#gen-scopes-error"); !strings.Contains(msg, "Scope") || strings.Contains(msg, "{") || strings.Contains(msg, "scopes") {
		t.Fatalf("bad scope shows %q", msg)
	}
	if d := p.eval(`document.getElementById('gen-scopes').getAttribute('aria-describedby') + ' ' + document.getElementById('gen-scopes').getAttribute('aria-invalid')`); !strings.Contains(d, "gen-scopes-error") || !strings.Contains(d, "true") {
		t.Fatalf("the scopes field is not tied to its error: %q", d)
	}
	p.act("fix the scope", chromedp.SendKeys(chromedp.CSS("#gen-scopes"), kb.Backspace), chromedp.WaitNotVisible(chromedp.CSS("#gen-scopes-error")))
	// Cancel: the next Generate opens an empty form.
	p.act("cancel", chromedp.Click(chromedp.CSS("#generate-dialog [data-close]")),
		chromedp.WaitNotVisible(chromedp.CSS("#generate-dialog")))
}

// generate makes a token in the page and returns its secret and id:
// shown once, usable, copied and downloaded, then never shown again.
func (p *tokenPage) generate() (string, string) {
	t := p.t
	// Generate a token; the reveal dialog shows its secret once. The
	// form starts empty (the refused one was cancelled).
	p.act("generate",
		chromedp.Click(chromedp.CSS("#generate")),
		chromedp.WaitVisible(chromedp.CSS("#generate-dialog[open]")),
		chromedp.SendKeys(chromedp.CSS("#gen-name"), "deploy bot"),
		chromedp.SendKeys(chromedp.CSS("#gen-description"), "Pushes releases from CI"),
		chromedp.SendKeys(chromedp.CSS("#gen-scopes"), "deploy:read deploy:write"),
		chromedp.SetValue(chromedp.CSS("#gen-expiry"), "7776000"),
		chromedp.Click(chromedp.CSS("#generate-submit")),
		chromedp.WaitVisible(chromedp.CSS("#reveal-dialog[open]")))
	secret, err := chromedp.Run(p.ctx, chromedp.Value(chromedp.CSS("#reveal-secret")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "km_") || len(secret) != 52 {
		t.Fatalf("reveal dialog shows %d characters, not a token", len(secret))
	}
	if w := p.text("#reveal-warning"); !strings.Contains(w, "you will not see this secret again") {
		t.Fatalf("reveal warning reads %q", w)
	}
	p.screenshot("reveal-desktop.png")

	// The secret works with the REST API.
	v := validate(t, p.srv, secret)
	if v["valid"] != true {
		t.Fatalf("the revealed secret does not validate: %v", v)
	}
	tokenID, _ := v["tokenId"].(string)
	if code, body := do(t, "GET", p.srv.http+"/api/user/tokens", map[string]string{"Authorization": "Bearer " + secret}, "", nil); code != http.StatusOK || !strings.Contains(body, tokenID) {
		t.Fatalf("GET /api/user/tokens with the secret = %d %s", code, body)
	}

	// Copy and Download.
	p.act("copy", chromedp.Click(chromedp.CSS("#copy-secret")))
	waitText(t, p.ctx, "#copy-status", "Cop", "Selected")
	p.act("download", chromedp.Click(chromedp.CSS("#download-secret")))
	file := filepath.Join(p.downloads, "keymint-token-deploy-bot.txt")
	waitFile(t, file)
	if b, err := os.ReadFile(file); err != nil || string(b) != secret+"\n" {
		t.Fatalf("downloaded file holds %d bytes, want the secret and a newline (%v)", len(b), err)
	}

	// Closing the dialog forgets the secret; the list shows the token.
	p.act("close the reveal dialog",
		chromedp.Click(chromedp.CSS("#reveal-done")),
		chromedp.WaitNotVisible(chromedp.CSS("#reveal-dialog")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-token-id="`+tokenID+`"]`)))
	waitForgotten(t, p.eval, secret, "after closing the dialog")
	// The list reloads as the dialog closes; read the row once it is back.
	// The list may render more than once (each load replaces the rows),
	// so the row is read until it holds everything, not once.
	waitAllText(t, p.ctx, `tr[data-token-id="`+tokenID+`"]`,
		"deploy bot", "Pushes releases from CI", "deploy:read", "deploy:write", secret[:9], "Active")
	p.screenshot("list-desktop.png")

	// A reload never shows the secret again.
	p.act("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`tr[data-token-id="`+tokenID+`"]`)))
	if got := pageHolds(t, p.eval, secret); got != "" {
		t.Fatalf("after a reload the page holds the secret in %s", got)
	}
	return secret, tokenID
}

// phoneToken shows the list (with tokenID's row) on a phone screen, makes a
// token with limits there and returns its secret: Escape asks before the
// secret goes.
func (p *tokenPage) phoneToken(tokenID string) string {
	t := p.t
	// The phone layout, and a reveal dialog on it.
	p.act("phone", p.phone, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`tr[data-token-id="`+tokenID+`"]`)))
	p.screenshot("list-phone.png")
	p.act("generate on a phone",
		chromedp.Click(chromedp.CSS("#generate")),
		chromedp.WaitVisible(chromedp.CSS("#generate-dialog[open]")),
		chromedp.SendKeys(chromedp.CSS("#gen-name"), "phone token"),
		// Limits, under their disclosure.
		chromedp.Click(chromedp.CSS("#gen-limits summary")),
		chromedp.SendKeys(chromedp.CSS("#gen-cidrs"), "10.0.0.0/8"),
		chromedp.SendKeys(chromedp.CSS("#gen-uses"), "5"),
		chromedp.SendKeys(chromedp.CSS("#gen-rate"), "10"),
		chromedp.Click(chromedp.CSS("#generate-submit")),
		chromedp.WaitVisible(chromedp.CSS("#reveal-dialog[open]")))
	phoneSecret, err := chromedp.Run(p.ctx, chromedp.Value(chromedp.CSS("#reveal-secret")))
	if err != nil || !strings.HasPrefix(phoneSecret, "km_") {
		t.Fatalf("phone reveal: %v", err)
	}
	p.screenshot("reveal-phone.png")
	// Escape asks first (the secret cannot be shown again); closing then
	// forgets the secret too.
	p.act("escape", chromedp.KeyEvent(kb.Escape), chromedp.WaitVisible(chromedp.CSS("#reveal-ask")))
	if v, _ := chromedp.Run(p.ctx, chromedp.Value(chromedp.CSS("#reveal-secret"))); v != phoneSecret {
		t.Fatal("Escape dropped the secret before the person confirmed")
	}
	p.act("close without it", chromedp.Click(chromedp.CSS("#reveal-close-anyway")), chromedp.WaitNotVisible(chromedp.CSS("#reveal-dialog")))
	waitForgotten(t, p.eval, phoneSecret, "after Escape")
	waitText(t, p.ctx, "#token-rows", "5 uses left")
	if rows := p.text("#token-rows"); !strings.Contains(rows, "10 per minute") || !strings.Contains(rows, "10.0.0.0/8") {
		t.Fatalf("the limited token's row lacks its limits: %q", rows)
	}
	return phoneSecret
}

// rotate rotates the token in the page with an hour's grace.
func (p *tokenPage) rotate(secret, tokenID string) {
	t := p.t
	// Rotate in the page: the new secret shows once in the reveal dialog,
	// and the old one keeps working through the grace period.
	p.act("rotate", p.desktop, chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] .menu-button`)),
		chromedp.Click(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] .menu-button`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] button.rotate`)),
		chromedp.Click(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] button.rotate`)),
		chromedp.WaitVisible(chromedp.CSS("#rotate-dialog[open]")),
		chromedp.SetValue(chromedp.CSS("#rotate-grace"), "3600"),
		chromedp.Click(chromedp.CSS("#rotate-confirm")),
		chromedp.WaitVisible(chromedp.CSS("#reveal-dialog[open]")))
	rotated, err := chromedp.Run(p.ctx, chromedp.Value(chromedp.CSS("#reveal-secret")))
	if err != nil || !strings.HasPrefix(rotated, "km_") || rotated == secret {
		t.Fatalf("rotation reveals %d characters (%v)", len(rotated), err)
	}
	if title := p.text("#reveal-title"); !strings.Contains(title, "rotated") {
		t.Fatalf("reveal dialog after a rotation is titled %q", title)
	}
	if v := validate(t, p.srv, rotated); v["valid"] != true || v["tokenId"] == tokenID {
		t.Fatalf("the rotated secret: %v", v)
	}
	if v := validate(t, p.srv, secret); v["valid"] != true {
		t.Fatalf("the old secret in its grace period: %v", v)
	}
	p.act("close the rotation's reveal dialog", chromedp.Click(chromedp.CSS("#reveal-done")),
		chromedp.WaitNotVisible(chromedp.CSS("#reveal-dialog")))
	waitForgotten(t, p.eval, rotated, "after closing the rotation's dialog")
	waitText(t, p.ctx, `tr[data-token-id="`+tokenID+`"]`, "Rotating")
}

// revoke revokes the token in the page; the API refuses it after.
func (p *tokenPage) revoke(secret, tokenID string) {
	t := p.t
	// Revoke in the page, after the confirmation.
	p.act("revoke", p.desktop, chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] .menu-button`)),
		chromedp.Click(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] .menu-button`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] button.revoke`)),
		chromedp.Click(chromedp.CSS(`tr[data-token-id="`+tokenID+`"] button.revoke`)),
		chromedp.WaitVisible(chromedp.CSS("#revoke-dialog[open]")))
	// After a rotation two rows share the name: the dialog names the hint.
	if msg := p.text("#revoke-text"); !strings.Contains(msg, "deploy bot") || !strings.Contains(msg, secret[:9]) || !strings.Contains(msg, "cannot be undone") {
		t.Fatalf("revoke confirmation reads %q", msg)
	}
	p.screenshot("revoke-confirm-desktop.png")
	p.act("confirm revoke",
		chromedp.Click(chromedp.CSS("#revoke-confirm")),
		chromedp.WaitVisible(chromedp.CSS("#notice")))
	// The list shows active tokens by default; "All" brings the revoked one.
	p.eval(`(() => { const s = document.getElementById('f-status'); s.value = 'inactive'; s.dispatchEvent(new Event('change')); return ''; })()`)
	waitText(t, p.ctx, `tr[data-token-id="`+tokenID+`"]`, "Revoked")
	if n := p.text("#notice"); !strings.Contains(n, "revoked") {
		t.Fatalf("notice after revoke reads %q", n)
	}
	p.screenshot("list-revoked-desktop.png")

	// The API refuses the revoked token.
	if v := validate(t, p.srv, secret); v["valid"] != false || v["reason"] != "REVOKED" {
		t.Fatalf("validate after revoking in the page: %v", v)
	}
	if code, _ := do(t, "GET", p.srv.http+"/api/user/tokens", map[string]string{"Authorization": "Bearer " + secret}, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("the revoked token still lists tokens: %d", code)
	}
}

// changePassword changes the password in the page.
func (p *tokenPage) changePassword(password, newPassword string) {
	t := p.t
	// Change the password in the page: a mismatch is caught in the dialog,
	// a good change is confirmed.
	p.act("change password, mismatched",
		chromedp.Click(chromedp.CSS("#change-password")),
		chromedp.WaitVisible(chromedp.CSS("#password-dialog[open]")),
		chromedp.SendKeys(chromedp.CSS("#pw-current"), password),
		chromedp.SendKeys(chromedp.CSS("#pw-new"), newPassword),
		chromedp.SendKeys(chromedp.CSS("#pw-confirm"), newPassword+"x"),
		chromedp.Click(chromedp.CSS("#password-submit")),
		chromedp.WaitVisible(chromedp.CSS("#password-error")))
	if msg := p.text("#password-error"); !strings.Contains(msg, "differ") {
		t.Fatalf("mismatched passwords show %q", msg)
	}
	p.act("change password",
		chromedp.KeyEvent(kb.Backspace),
		chromedp.Click(chromedp.CSS("#password-submit")),
		chromedp.WaitNotVisible(chromedp.CSS("#password-dialog")),
		chromedp.WaitVisible(chromedp.CSS("#notice")))
	if n := p.text("#notice"); !strings.Contains(n, "password is changed") {
		t.Fatalf("notice after the password change reads %q", n)
	}
}

// signOutAndIn signs out, stays out across a reload, and signs in again
// with the new password.
func (p *tokenPage) signOutAndIn(email, newPassword string) {
	t := p.t
	// Sign out; a reload stays signed out.
	p.act("sign out",
		chromedp.Click(chromedp.CSS("#sign-out")),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	if !strings.Contains(p.eval(`document.getElementById('tokens-view').hidden ? 'hidden' : 'shown'`), "hidden") {
		t.Fatal("token list shown after signing out and reloading")
	}
	// The new password signs in.
	p.act("sign in again",
		chromedp.SendKeys(chromedp.CSS("#signin-email"), email),
		chromedp.SendKeys(chromedp.CSS("#signin-password"), newPassword+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#tokens-view")))
}

// pageErrorLog collects what a page reports as going wrong.
type pageErrorLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *pageErrorLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *pageErrorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// watchPageErrors records the tab's uncaught exceptions, console.error calls
// and error-level log entries (CSP violations among them) until ctx ends.
// Failed requests are left out: the page expects some (a 401 before sign-in).
func watchPageErrors(ctx context.Context) *pageErrorLog {
	l := &pageErrorLog{}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			l.add("exception: " + ev.ExceptionDetails.Text)
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				l.add(fmt.Sprintf("console.error with %d arguments", len(ev.Args)))
			}
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				l.add(fmt.Sprintf("%s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		}
	}()
	return l
}

// pageHolds reports where in the page (markup, form fields, web storage) a
// secret still is; empty when nowhere.
func pageHolds(t *testing.T, eval func(string) string, secret string) string {
	t.Helper()
	return eval(fmt.Sprintf(`(() => {
		const s = %q, where = [];
		if (document.documentElement.outerHTML.includes(s)) where.push('markup');
		for (const e of document.querySelectorAll('input, textarea')) if (e.value.includes(s)) where.push('#' + e.id);
		if (JSON.stringify(localStorage).includes(s)) where.push('localStorage');
		if (JSON.stringify(sessionStorage).includes(s)) where.push('sessionStorage');
		return where.join(', ');
	})()`, secret))
}

// waitText waits until the element's text holds one of wants.
func waitText(t *testing.T, ctx context.Context, sel string, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil {
			last = s
			for _, w := range wants {
				if strings.Contains(s, w) {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s reads %q, want one of %q", sel, last, wants)
}

// waitAllText waits until the text of sel holds every one of wants (a
// generous bound: a list that re-renders replaces its rows meanwhile).
func waitAllText(t *testing.T, ctx context.Context, sel string, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil {
			last = s
			missing := false
			for _, w := range wants {
				missing = missing || !strings.Contains(s, w)
			}
			if !missing {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s reads %q, want all of %q", sel, last, wants)
}

// waitFile waits until a download has landed.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	t.Fatalf("download %s never arrived; the directory holds %q", filepath.Base(path), names)
}

// waitForgotten waits until the page holds the secret nowhere.
func waitForgotten(t *testing.T, eval func(string) string, secret, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		where := pageHolds(t, eval, secret)
		if where == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s the page still holds the secret in %s", when, where)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
