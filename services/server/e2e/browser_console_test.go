package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// axePath is axe-core as gateway/web/a11y pins it (make test installs it).
func axePath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../../gateway/web/a11y/node_modules/axe-core/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("KEYMINT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is missing: npm ci --prefix gateway/web/a11y", p)
		}
		t.Skipf("%s is missing; run make test, which installs it", p)
	}
	return p
}

// console drives the web console in one chromium tab: each step waits for
// a condition in the page, never for time, and a failing step leaves a
// screenshot in $TEST_ARTIFACTS (or the test's temporary directory).
type console struct {
	t     *testing.T
	ctx   context.Context
	axe   string
	shots string
	size  string
}

func (c *console) fail(what string, err error) {
	c.t.Helper()
	if buf, serr := chromedp.Run(c.ctx, chromedp.FullScreenshot(100)); serr == nil {
		path := filepath.Join(c.shots, fmt.Sprintf("failed-%s-%s.png", c.size, strings.ReplaceAll(what, " ", "-")))
		if os.WriteFile(path, buf, 0o644) == nil {
			c.t.Logf("screenshot of the failed step: %s", path)
		}
	}
	if layout, lerr := chromedp.Run(c.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('header.bar, header.bar > *, #sign-out')].map((e) => (e.id || e.className) + ' ' + JSON.stringify(e.getBoundingClientRect())).join('\n')`)); lerr == nil {
		c.t.Logf("header layout:\n%s", layout)
	}
	c.t.Fatalf("%s (%s): %v", what, c.size, err)
}

func (c *console) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.fail(what, err)
	}
}

// until waits for a JavaScript condition to hold (generous: the machine
// may be loaded; nothing here measures time).
func (c *console) until(what, cond string) {
	c.t.Helper()
	if _, err := chromedp.Run(c.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		c.fail(what, fmt.Errorf("%s never held: %w", cond, err))
	}
}

// num is a number the page measured.
func num(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func (c *console) eval(js string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		c.fail("evaluate", err)
	}
	return s
}

// choose sets a select (or checkbox) the way a person would: the change
// event fires.
func (c *console) choose(id, value string) {
	c.t.Helper()
	c.eval(fmt.Sprintf(`(() => { const e = document.getElementById(%q);
		if (e.type === 'checkbox') e.checked = %q === 'on'; else e.value = %q;
		e.dispatchEvent(new Event('change', { bubbles: true })); return ''; })()`, id, value, value))
}

// fill sets an input's value as typing would (the input event fires).
func (c *console) fill(id, value string) {
	c.t.Helper()
	c.eval(fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q;
		e.dispatchEvent(new Event('input', { bubbles: true })); return ''; })()`, id, value))
}

// a11y runs axe-core in the page and fails on any serious or critical
// violation. It runs through the DevTools protocol, which the page's CSP
// does not govern, so the page itself still allows no inline script.
func (c *console) a11y(view string) {
	c.t.Helper()
	if c.eval(`typeof axe`) == "undefined" {
		src, err := os.ReadFile(c.axe)
		if err != nil {
			c.t.Fatal(err)
		}
		if _, err := chromedp.Run(c.ctx, chromedp.Evaluate[chromedp.Void](string(src)+";''")); err != nil {
			c.fail("inject axe", err)
		}
	}
	out, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
		JSON.stringify(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
			.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }))))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		c.fail("axe "+view, err)
	}
	var vs []map[string]any
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		c.t.Fatalf("axe answer: %v", err)
	}
	if len(vs) > 0 {
		c.fail("axe "+view, fmt.Errorf("serious or critical violations: %s", out))
	}
}

// TestBrowserConsole drives every view of the console (tokens, detail,
// generate, org tokens, audit log, policy) with 200 seeded tokens, on a
// laptop (1280×800) and a phone (390×844), checking each with axe-core.
func TestBrowserConsole(t *testing.T) {
	requireChromium(t)
	axe := axePath(t)
	t.Parallel()
	cfg := testConfig(t)
	const (
		admin, member = "admin@example.com", "member@example.com"
		password      = "console test password"
	)
	createUser(t, cfg, admin, "acme", password, true)
	createUser(t, cfg, member, "acme", password, false)
	// Three wrong guesses per account, then Retry-After (successes give
	// their events back, so seeding with the password is not throttled).
	cfg.Abuse.AccountLimit = "3/1h"
	srv := startServer(t, cfg)
	creds := func(email string) map[string]string {
		return map[string]string{"x-api-email": email, "x-api-password": password, "Content-Type": "application/json"}
	}
	if code, body := do(t, "PATCH", srv.http+"/v1/org/policy", creds(admin),
		`{"allowedScopes":["deploy","read","write","billing:read"]}`, nil); code != http.StatusOK {
		t.Fatalf("set policy = %d %s", code, body)
	}
	// 200 tokens of the admin's: every fifth deploys, every seventh expires
	// within days, every eleventh is revoked, one has a very long
	// description; and a few of the member's.
	var revokeIDs []string
	for i := range 200 {
		scopes := `["read"]`
		if i%5 == 0 {
			scopes = `["deploy","write"]`
		}
		ttl := "7776000s"
		if i%7 == 0 {
			ttl = "259200s"
		}
		desc := fmt.Sprintf("service %d", i)
		if i == 3 {
			desc = strings.Repeat("a very long description ", 40)
		}
		var out struct{ Token struct{ ID string } }
		body := fmt.Sprintf(`{"name":"svc-%03d","description":%q,"scopes":%s,"ttl":%q}`, i, desc, scopes, ttl)
		if code, resp := do(t, "POST", srv.http+"/v1/tokens", creds(admin), body, &out); code != http.StatusOK {
			t.Fatalf("seed token %d = %d %s", i, code, resp)
		}
		if i%11 == 0 {
			revokeIDs = append(revokeIDs, out.Token.ID)
		}
	}
	for _, id := range revokeIDs {
		if code, resp := do(t, "DELETE", srv.http+"/v1/tokens/"+id, creds(admin), "", nil); code != http.StatusOK {
			t.Fatalf("revoke = %d %s", code, resp)
		}
	}
	for i := range 3 {
		if code, resp := do(t, "POST", srv.http+"/v1/tokens", creds(member),
			fmt.Sprintf(`{"name":"member-%d","scopes":["read"]}`, i), nil); code != http.StatusOK {
			t.Fatalf("seed member token = %d %s", code, resp)
		}
	}

	// Failure screenshots outlive the test: $TEST_ARTIFACTS, or a directory
	// of their own.
	shots := os.Getenv("TEST_ARTIFACTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "keymint-console-"); err != nil {
			t.Fatal(err)
		}
	}
	c := &console{t: t, ctx: newChromium(t, 4*time.Minute), axe: axe, shots: shots}
	pageErrors := func() *pageErrorLog {
		c.do("start chromium", chromedp.Navigate("about:blank"))
		return watchPageErrors(c.ctx)
	}()

	rows := `document.querySelectorAll('#token-rows tr').length`
	for i, size := range []struct {
		name string
		vp   chromedp.Action[chromedp.Void]
	}{
		{"desktop", chromedp.EmulateViewport(1280, 800)},
		{"phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))},
	} {
		c.size = size.name
		c.do("open", size.vp, chromedp.Navigate(srv.http+"/#tokens"))
		if i > 0 {
			// The same URL again is no navigation: reload for a fresh page.
			c.do("reload", chromedp.Reload())
		}
		if i == 0 {
			c.do("sign in", chromedp.WaitVisible(chromedp.CSS("#signin-form")),
				chromedp.SendKeys(chromedp.CSS("#signin-email"), admin),
				chromedp.SendKeys(chromedp.CSS("#signin-password"), password+kb.Enter))
		}
		// The list: one page of 25, compact rows, the header stays put.
		c.until("first page", rows+` === 25 && document.getElementById('page-next').disabled === false`)
		c.a11y("tokens")
		if size.name == "desktop" {
			// Compact rows: one line of actions, the long description cut.
			if h := c.eval(`String(Math.max(...[...document.querySelectorAll('#token-rows tr')].map((r) => r.getBoundingClientRect().height)))`); num(h) > 110 {
				t.Errorf("tallest row is %s px on a laptop, want at most 110", h)
			}
		}
		c.eval(`window.scrollTo(0, document.body.scrollHeight), ''`)
		if top := c.eval(`String(document.querySelector('header.bar').getBoundingClientRect().top)`); top != "0" {
			t.Errorf("%s: header is at %s px after scrolling, want 0 (sticky)", size.name, top)
		}
		if h := c.eval(`String(document.querySelector('header.bar').getBoundingClientRect().height)`); num(h) > 64 {
			t.Errorf("%s: header is %s px tall: it wraps", size.name, h)
		}
		c.eval(`window.scrollTo(0, 0), ''`)

		// Next page, then search narrows to one token, on the server.
		c.do("next page", chromedp.Click(chromedp.CSS("#page-next")))
		c.until("page 2", `document.getElementById('page-label').textContent === 'Page 2' && `+rows+` === 25`)
		c.do("search", chromedp.SendKeys(chromedp.CSS("#f-query"), "svc-042"))
		c.until("search result", rows+` === 1 && document.getElementById('token-rows').textContent.includes('svc-042')`)
		c.fill("f-query", "")
		c.until("search cleared", rows+` === 25`)
		// Filters: scope, expiring soon, status, sort.
		c.choose("f-scope", "deploy")
		c.until("scope filter", rows+` > 0 && [...document.querySelectorAll('#token-rows tr')].every((r) => r.textContent.includes('deploy'))`)
		c.choose("f-scope", "")
		c.choose("f-expiring", "on")
		c.until("expiring filter", rows+` > 0 && [...document.querySelectorAll('#token-rows tr')].every((r) => /svc-\d+/.test(r.textContent) && Number(r.textContent.match(/svc-(\d+)/)[1]) % 7 === 0)`)
		c.choose("f-expiring", "off")
		c.choose("f-status", "TOKEN_STATUS_REVOKED")
		c.until("revoked filter", rows+` === 19 && [...document.querySelectorAll('#token-rows tr')].every((r) => r.textContent.includes('Revoked'))`)
		c.choose("f-status", "")
		c.choose("f-sort", "expire_time asc")
		c.until("sorted by expiry", rows+` === 25 && document.querySelector('#token-rows tr').textContent.includes('svc-') && Number(document.querySelector('#token-rows tr').textContent.match(/svc-(\d+)/)[1]) % 7 === 0`)
		c.choose("f-sort", "create_time desc")
		c.until("newest first", `(document.querySelector('#token-rows tr') || {}).textContent?.includes('svc-199')`)

		// A row's actions menu, its detail view, and focus back on the row.
		first := `#token-rows tr:first-child`
		c.do("menu", chromedp.Click(chromedp.CSS(first+" .menu-button")), chromedp.WaitVisible(chromedp.CSS(first+" .menu button.details")))
		c.a11y("actions menu")
		c.do("details", chromedp.Click(chromedp.CSS(first+" .menu button.details")), chromedp.WaitVisible(chromedp.CSS("#detail-dialog[open]")))
		c.until("detail history", `document.getElementById('detail-chain').textContent.includes('this token') && document.getElementById('detail-events').textContent.includes('Token generated')`)
		for _, want := range []string{"svc-199", "Hint", "Scopes", "Last used", "Expires", "Limits", "Created by", admin} {
			if !strings.Contains(c.eval(`document.getElementById('detail-dialog').textContent`), want) {
				t.Errorf("%s: detail view lacks %q", size.name, want)
			}
		}
		c.a11y("token detail")
		c.do("close details", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(chromedp.CSS("#detail-dialog")))
		c.until("focus back on the row", `document.activeElement && document.activeElement.matches('`+first+` .menu-button')`)

		// Generate: the scope picker offers the org's scopes; a custom date
		// past 90 days warns.
		c.do("generate", chromedp.Click(chromedp.CSS("#generate")), chromedp.WaitVisible(chromedp.CSS("#generate-dialog[open]")),
			chromedp.WaitVisible(chromedp.CSS("#gen-scope-picker")))
		if got := c.eval(`[...document.querySelectorAll('#gen-scope-options input')].map((i) => i.value).join(' ')`); got != "billing:read deploy read write" {
			t.Errorf("%s: scope picker offers %q", size.name, got)
		}
		c.choose("gen-expiry", "custom")
		c.eval(`(() => { const d = document.getElementById('gen-expiry-date'); d.valueAsDate = new Date(Date.now() + 200 * 86400000); d.dispatchEvent(new Event('input')); return ''; })()`)
		c.until("long-lived warning", `!document.getElementById('gen-expiry-warning').hidden`)
		c.do("submit without a name", chromedp.Click(chromedp.CSS("#generate-submit")), chromedp.WaitVisible(chromedp.CSS("#gen-name-error")))
		c.a11y("generate dialog")
		c.do("type a name", chromedp.SendKeys(chromedp.CSS("#gen-name"), "x"), chromedp.WaitNotVisible(chromedp.CSS("#gen-name-error")))
		c.do("cancel", chromedp.Click(chromedp.CSS("#generate-dialog [data-close]")), chromedp.WaitNotVisible(chromedp.CSS("#generate-dialog")))
		c.until("focus back on Generate", `document.activeElement === document.getElementById('generate')`)
		if n := c.eval(`String(document.querySelectorAll('#password-form input[autocomplete="username"]').length)`); n != "1" {
			t.Errorf("the change-password form has %s username fields, want 1", n)
		}

		// Admin area: the org's tokens, filtered by owner.
		c.do("org tokens", chromedp.Click(chromedp.CSS(`#views a[data-view="org-tokens"]`)))
		c.until("org tokens", `!document.getElementById('f-owner-wrap').hidden && `+rows+` === 25`)
		c.a11y("org tokens")
		// The member's tokens are the newest, so the first page names them.
		c.until("owners known", `[...document.getElementById('f-owner').options].some((o) => o.textContent === '`+member+`')`)
		c.eval(`(() => { const s = document.getElementById('f-owner'); s.value = [...s.options].find((o) => o.textContent === '` + member + `').value; s.dispatchEvent(new Event('change')); return ''; })()`)
		c.until("owner filter", rows+` === 3 && [...document.querySelectorAll('#token-rows tr')].every((r) => r.textContent.includes('member-'))`)

		// The audit log, paged and filtered.
		c.do("audit", chromedp.Click(chromedp.CSS(`#views a[data-view="audit"]`)))
		c.until("audit page", `document.querySelectorAll('#audit-rows tr').length === 50 && !document.getElementById('audit-next').disabled`)
		c.a11y("audit log")
		c.choose("a-action", "token.revoke")
		c.do("filter audit", chromedp.Click(chromedp.CSS("#a-apply")))
		c.until("audit filter", `document.querySelectorAll('#audit-rows tr').length === 19 && [...document.querySelectorAll('#audit-rows tr')].every((r) => r.textContent.includes('Token revoked'))`)

		// The policy, with its validation messages.
		c.do("policy", chromedp.Click(chromedp.CSS(`#views a[data-view="policy"]`)))
		c.until("policy loaded", `document.getElementById('p-scopes').value.includes('deploy')`)
		c.fill("p-max", "30")
		c.fill("p-default", "60")
		c.do("bad policy", chromedp.Click(chromedp.CSS("#policy-save")), chromedp.WaitVisible(chromedp.CSS("#p-default-error")))
		if d := c.eval(`document.getElementById('p-default').getAttribute('aria-describedby') + ' ' + document.getElementById('p-default').getAttribute('aria-invalid')`); d != "p-default-error true" {
			t.Errorf("%s: the default lifetime is not tied to its error: %q", size.name, d)
		}
		c.a11y("policy")
		c.fill("p-max", "")
		c.fill("p-default", "7")
		c.do("fix policy", chromedp.WaitNotVisible(chromedp.CSS("#p-default-error")))
		c.do("back to my tokens", chromedp.Click(chromedp.CSS(`#views a[data-view="tokens"]`)))
		c.until("my tokens", `!document.getElementById('generate').hidden && `+rows+` === 25`)
	}

	// An expired session keeps the half-filled form and the email.
	c.size = "desktop"
	c.do("desktop", chromedp.EmulateViewport(1280, 800))
	c.do("half-filled form", chromedp.Click(chromedp.CSS("#generate")), chromedp.WaitVisible(chromedp.CSS("#generate-dialog[open]")),
		chromedp.SendKeys(chromedp.CSS("#gen-name"), "kept across sign-in"))
	// The session ends behind the page's back (as an idle expiry would).
	if _, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](`fetch('/api/auth/logout', { method: 'POST', headers: { 'X-Keymint-CSRF': '1' } }).then((r) => String(r.status))`, chromedp.EvalAwaitPromise)); err != nil {
		c.fail("end the session", err)
	}
	c.do("submit after the session ended", chromedp.Click(chromedp.CSS("#generate-submit")), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	if got := c.eval(`document.getElementById('signin-email').value`); got != admin {
		t.Errorf("sign-in after the session ended shows email %q, want %q", got, admin)
	}
	c.do("sign in again", chromedp.SendKeys(chromedp.CSS("#signin-password"), password+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#generate-dialog[open]")))
	if got := c.eval(`document.getElementById('gen-name').value`); got != "kept across sign-in" {
		t.Errorf("the form came back with name %q", got)
	}
	c.a11y("signed in again")

	// A throttled sign-in counts down the server's Retry-After.
	c.do("sign out", chromedp.Click(chromedp.CSS("#generate-dialog [data-close]")), chromedp.WaitNotVisible(chromedp.CSS("#generate-dialog")),
		chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	c.fill("signin-email", "guesser@example.com")
	for i := 0; ; i++ {
		if i == 10 {
			c.fail("throttle", fmt.Errorf("ten wrong passwords and no countdown: %q", c.eval(`document.getElementById('alert').textContent`)))
		}
		c.fill("signin-password", "wrong guess")
		c.do("wrong guess", chromedp.Click(chromedp.CSS("#signin-submit")))
		c.until("an answer", `document.getElementById('alert').textContent !== '' && !document.getElementById('signin-password').value`)
		if strings.Contains(c.eval(`document.getElementById('alert').textContent`), "Try again in") {
			break
		}
	}
	first := c.eval(`document.getElementById('alert').textContent`)
	c.until("the countdown ticks", `document.getElementById('alert').textContent !== `+fmt.Sprintf("%q", first)+` && document.getElementById('alert').textContent.includes('Try again in')`)
	if c.eval(`String(document.getElementById('signin-submit').disabled)`) != "true" {
		t.Error("sign-in stays enabled while throttled")
	}
	c.a11y("throttled sign-in")

	if errs := pageErrors.list(); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
