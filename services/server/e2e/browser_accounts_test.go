package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserAdminAccounts drives the admin area's Users and Service
// accounts views on a laptop (1280×800) and a phone (390×844), checking each
// step with axe-core: the user list's pages and email filter, a user's
// tokens, disable / enable, admin, a reset code shown once and redeemed,
// delete; a service account created with a scope from the policy, its detail,
// a token generated, rotated and revoked, and delete. Members see neither.
func TestBrowserAdminAccounts(t *testing.T) {
	requireChromium(t)
	axe := axePath(t)
	t.Parallel()
	cfg := testConfig(t)
	const (
		admin    = "admin@example.com"
		password = "console test password"
	)
	createUser(t, cfg, admin, "acme", password, true)
	// 28 members: with the admin, more than one page of 25.
	for i := range 28 {
		createUser(t, cfg, fmt.Sprintf("m%02d@example.com", i), "acme", password, false)
	}
	srv := startServer(t, cfg)
	creds := func(email string) map[string]string {
		return map[string]string{"x-api-email": email, "x-api-password": password, "Content-Type": "application/json"}
	}
	if code, body := do(t, "PATCH", srv.http+"/v1/org/policy", creds(admin),
		`{"allowedScopes":["deploy","read","write"]}`, nil); code != http.StatusOK {
		t.Fatalf("set policy = %d %s", code, body)
	}
	// The members each views acts on hold two tokens.
	for _, m := range []string{"m10@example.com", "m11@example.com"} {
		for i := range 2 {
			if code, resp := do(t, "POST", srv.http+"/v1/tokens", creds(m),
				fmt.Sprintf(`{"name":"%s-%d","scopes":["read"]}`, strings.TrimSuffix(m, "@example.com"), i), nil); code != http.StatusOK {
				t.Fatalf("seed token = %d %s", code, resp)
			}
		}
	}

	shots := os.Getenv("TEST_ARTIFACTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "keymint-accounts-"); err != nil {
			t.Fatal(err)
		}
	}
	c := &console{t: t, ctx: newChromium(t, 4*time.Minute), axe: axe, shots: shots}
	pageErrors := func() *pageErrorLog {
		c.do("start chromium", chromedp.Navigate("about:blank"))
		return watchPageErrors(c.ctx)
	}()

	// Row counts, or -1 while the list loads (aria-busy): a step never acts
	// on rows about to be replaced.
	rowsOf := func(table, rows string) string {
		return fmt.Sprintf(`(document.getElementById(%q).hasAttribute('aria-busy') ? -1 : document.querySelectorAll('#%s tr').length)`, table, rows)
	}
	userRows := rowsOf("user-table", "user-rows")
	saRows := rowsOf("sa-table", "sa-rows")
	saTokenRows := rowsOf("sa-token-table", "sa-token-rows")
	focusOn := func(sel string) string {
		return fmt.Sprintf(`document.activeElement && document.activeElement.matches(%q)`, sel)
	}
	// menuItem clicks a row's actions button, then the menu item.
	menuItem := func(what, row, item string) {
		c.t.Helper()
		c.do(what, chromedp.Click(chromedp.CSS(row+" .menu-button")), chromedp.WaitVisible(chromedp.CSS(row+" .menu "+item)),
			chromedp.Click(chromedp.CSS(row+" .menu "+item)))
	}
	for i, size := range []struct {
		name, member, account string
		vp                    chromedp.Action[chromedp.Void]
	}{
		{"desktop", "m10@example.com", "deploy-bot-desktop", chromedp.EmulateViewport(1280, 800)},
		{"phone", "m11@example.com", "deploy-bot-phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))},
	} {
		c.size = size.name
		if i == 0 {
			c.do("open", size.vp, chromedp.Navigate(srv.http+"/#users"))
		} else {
			// A fragment change is no navigation: set it, then reload.
			c.eval(`(location.hash = '#users', '')`)
			c.do("reload", size.vp, chromedp.Reload())
		}
		if i == 0 {
			c.do("sign in", chromedp.WaitVisible(chromedp.CSS("#signin-form")),
				chromedp.SendKeys(chromedp.CSS("#signin-email"), admin),
				chromedp.SendKeys(chromedp.CSS("#signin-password"), password+kb.Enter))
		}

		// Users: a page of 25 by email, the next page, the email filter.
		c.fill("u-email", "")
		c.until("users page", userRows+` === 25 && !document.getElementById('users-next').disabled && document.querySelector('#user-rows tr').textContent.includes('`+admin+`')`)
		c.a11y("users")
		if size.name == "desktop" {
			// Seven admin views fit the header without scrolling it.
			if got := c.eval(`(() => { const v = document.getElementById('views'); return v.scrollWidth + ' ' + v.clientWidth; })()`); len(strings.Fields(got)) != 2 || num(strings.Fields(got)[0]) > num(strings.Fields(got)[1]) {
				t.Errorf("the admin's views overflow the header on a laptop (scroll and client width %s)", got)
			}
		}
		c.do("next users", chromedp.Click(chromedp.CSS("#users-next")))
		c.until("users page 2", `document.getElementById('users-page').textContent === 'Page 2' && `+userRows+` > 0 && `+userRows+` < 25`)
		c.fill("u-email", "m1")
		c.until("email filter", `document.getElementById('users-page').textContent === 'Page 1' && `+userRows+` > 0 && [...document.querySelectorAll('#user-rows tr .tname')].every((e) => e.textContent.startsWith('m1'))`)
		c.fill("u-email", size.member)
		row := `#user-rows tr:first-child`
		c.until("one user", userRows+` === 1 && document.querySelector('`+row+`').textContent.includes('`+size.member+`')`)
		c.do("user menu", chromedp.Click(chromedp.CSS(row+" .menu-button")), chromedp.WaitVisible(chromedp.CSS(row+" .menu a.tokens")))
		c.a11y("user actions menu")

		// Their tokens: the org's list, filtered by that owner.
		c.do("their tokens", chromedp.Click(chromedp.CSS(row+" .menu a.tokens")))
		prefix := strings.TrimSuffix(size.member, "@example.com") + "-"
		c.until("owner's tokens", `!document.getElementById('tokens-view').hidden && !document.getElementById('f-owner-wrap').hidden && `+
			`document.querySelectorAll('#token-rows tr').length === 2 && [...document.querySelectorAll('#token-rows tr')].every((r) => r.textContent.includes('`+prefix+`'))`)
		if got := c.eval(`document.getElementById('f-owner').selectedOptions[0].textContent`); got != size.member {
			t.Errorf("%s: the owner filter shows %q, want %q", size.name, got, size.member)
		}
		c.do("back to users", chromedp.Click(chromedp.CSS(`#views a[data-view="users"]`)))
		// The view shows (hashchange, then route) in the task that starts
		// its load and marks it busy: until then the old rows, about to be
		// replaced, still count 1 (clicking one failed "Could not find node
		// with given id").
		c.until("users again", `!document.getElementById('users-view').hidden && `+userRows+` === 1`)

		// Disable: a confirmation naming them; focus comes back to the row.
		menuItem("disable", row, "button.disable")
		c.do("disable dialog", chromedp.WaitVisible(chromedp.CSS("#user-disable-dialog[open]")))
		if got := c.eval(`document.getElementById('user-disable-email').textContent`); got != size.member {
			t.Errorf("%s: the disable dialog names %q", size.name, got)
		}
		c.a11y("disable dialog")
		c.do("confirm disable", chromedp.Click(chromedp.CSS("#user-disable-confirm")), chromedp.WaitNotVisible(chromedp.CSS("#user-disable-dialog")))
		c.until("disabled", userRows+` === 1 && document.querySelector('`+row+`').textContent.includes('Disabled') && document.getElementById('notice').textContent.includes('disabled')`)
		c.until("focus back on the user", userRows+` === 1 && `+focusOn(row+" .menu-button"))
		if code, _ := do(t, "GET", srv.http+"/v1/user", creds(size.member), "", nil); code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("%s: a disabled user's credentials answer %d, want 401 or 403", size.name, code)
		}
		menuItem("enable", row, "button.enable")
		c.until("enabled", userRows+` === 1 && document.querySelector('`+row+`').textContent.includes('Active') && document.getElementById('notice').textContent.includes('stay revoked')`)

		// Admin, and back.
		menuItem("promote", row, "button.promote")
		c.until("promoted", userRows+` === 1 && document.querySelector('`+row+` td[data-label="Role"]').textContent === 'Admin'`)
		menuItem("demote", row, "button.demote")
		c.until("demoted", userRows+` === 1 && document.querySelector('`+row+` td[data-label="Role"]').textContent === 'Member'`)

		// Reset password: the code is shown once, Escape asks first, and
		// the code sets a new password.
		menuItem("reset", row, "button.reset")
		c.do("reset dialog", chromedp.WaitVisible(chromedp.CSS("#user-reset-dialog[open]")))
		c.do("issue code", chromedp.Click(chromedp.CSS("#user-reset-confirm")), chromedp.WaitVisible(chromedp.CSS("#reveal-dialog[open]")))
		c.until("reset code", `document.getElementById('reveal-secret').value.length > 0 && document.getElementById('reveal-label').textContent === 'Reset code for'`)
		code := c.eval(`document.getElementById('reveal-secret').value`)
		if got := c.eval(`document.getElementById('reveal-name').textContent`); got != size.member {
			t.Errorf("%s: the reset code names %q", size.name, got)
		}
		c.a11y("reset code")
		c.do("escape asks", chromedp.KeyEvent(kb.Escape), chromedp.WaitVisible(chromedp.CSS("#reveal-ask")))
		c.do("close anyway", chromedp.Click(chromedp.CSS("#reveal-close-anyway")), chromedp.WaitNotVisible(chromedp.CSS("#reveal-dialog")))
		c.until("focus back after the code", userRows+` === 1 && `+focusOn(row+" .menu-button"))
		if held := pageHolds(t, c.eval, code); held != "" {
			t.Errorf("%s: the reset code is still in the page: %s", size.name, held)
		}
		if st, body := do(t, "POST", srv.http+"/v1/user/password:reset", map[string]string{"Content-Type": "application/json"},
			fmt.Sprintf(`{"email":%q,"resetCode":%q,"newPassword":"a brand new password"}`, size.member, code), nil); st != http.StatusOK {
			t.Errorf("%s: redeeming the reset code = %d %s", size.name, st, body)
		}

		// Delete: a confirmation naming them; the row goes.
		menuItem("delete", row, "button.delete")
		c.do("delete dialog", chromedp.WaitVisible(chromedp.CSS("#user-delete-dialog[open]")))
		if got := c.eval(`document.getElementById('user-delete-text').textContent`); !strings.Contains(got, size.member) {
			t.Errorf("%s: the delete dialog says %q, not naming the user", size.name, got)
		}
		c.a11y("delete user dialog")
		c.do("confirm delete", chromedp.Click(chromedp.CSS("#user-delete-confirm")), chromedp.WaitNotVisible(chromedp.CSS("#user-delete-dialog")))
		c.until("deleted", userRows+` === 0 && document.getElementById('notice').textContent.includes('is deleted')`)
		c.until("focus on the filter", focusOn("#u-email"))

		// Service accounts: create, with a field error in plain words first.
		c.do("service accounts", chromedp.Click(chromedp.CSS(`#views a[data-view="service-accounts"]`)))
		c.until("service account list", `!document.getElementById('sa-view').hidden && `+saRows+` === `+fmt.Sprint(i))
		c.a11y("service accounts")
		c.do("new account", chromedp.Click(chromedp.CSS("#sa-new")), chromedp.WaitVisible(chromedp.CSS("#sa-create-dialog[open]")))
		if got := c.eval(`[...document.querySelectorAll('#sa-scope-options input')].map((i) => i.value).join(' ')`); got != "deploy read write" {
			t.Errorf("%s: the scope picker offers %q", size.name, got)
		}
		c.fill("sa-name", "Deploy Bot")
		c.do("bad name", chromedp.Click(chromedp.CSS("#sa-create-submit")), chromedp.WaitVisible(chromedp.CSS("#sa-name-error")))
		if d := c.eval(`document.getElementById('sa-name').getAttribute('aria-describedby') + ' ' + document.getElementById('sa-name').getAttribute('aria-invalid') + ' ' + (document.activeElement.id)`); d != "sa-name-error true sa-name" {
			t.Errorf("%s: the name is not tied to its error: %q", size.name, d)
		}
		c.a11y("create service account")
		c.fill("sa-name", size.account)
		c.do("error clears", chromedp.WaitNotVisible(chromedp.CSS("#sa-name-error")))
		c.fill("sa-description", `<img src=x onerror="window.__xss=1">`)
		c.eval(`(() => { const i = [...document.querySelectorAll('#sa-scope-options input')].find((i) => i.value === 'deploy'); i.click(); return ''; })()`)
		c.do("create", chromedp.Click(chromedp.CSS("#sa-create-submit")), chromedp.WaitNotVisible(chromedp.CSS("#sa-create-dialog")))
		// By name: the new account sorts before zz-kept-bot.
		sa := `#sa-rows tr:first-child`
		c.until("created", saRows+` === `+fmt.Sprint(i+1)+` && document.querySelector('`+sa+`').textContent.includes('`+size.account+`')`)
		c.until("focus on the new account", focusOn(sa+" .menu-button"))
		if got := c.eval(`String(document.querySelectorAll('#sa-rows img').length) + ' ' + typeof window.__xss + ' ' + document.querySelector('` + sa + ` .desc').textContent`); got != `0 undefined <img src=x onerror="window.__xss=1">` {
			t.Errorf("%s: a description with markup shows as %q", size.name, got)
		}

		// Detail, and a token generated for it: only its scopes on offer.
		menuItem("account details", sa, "button.details")
		c.do("detail dialog", chromedp.WaitVisible(chromedp.CSS("#sa-detail-dialog[open]")))
		c.until("no tokens yet", saTokenRows+` === 0 && !document.getElementById('sa-tokens-empty').hidden`)
		c.a11y("service account detail")
		c.do("generate for it", chromedp.Click(chromedp.CSS("#sa-mint")), chromedp.WaitVisible(chromedp.CSS("#generate-dialog[open]")))
		if got := c.eval(`document.getElementById('generate-title').textContent + ' / ' + [...document.querySelectorAll('#gen-scope-options input')].map((i) => i.value).join(' ')`); got != "Generate a token for "+size.account+" / deploy" {
			t.Errorf("%s: generating for the account shows %q", size.name, got)
		}
		c.do("name the token", chromedp.SendKeys(chromedp.CSS("#gen-name"), "ci"))
		c.eval(`(document.querySelector('#gen-scope-options input').click(), '')`)
		c.do("mint", chromedp.Click(chromedp.CSS("#generate-submit")), chromedp.WaitVisible(chromedp.CSS("#reveal-dialog[open]")))
		c.until("its secret", `document.getElementById('reveal-secret').value.length > 20 && document.getElementById('reveal-title').textContent.includes('`+size.account+`')`)
		secret := c.eval(`document.getElementById('reveal-secret').value`)
		c.a11y("service account secret")
		c.do("saved", chromedp.Click(chromedp.CSS("#reveal-done")), chromedp.WaitNotVisible(chromedp.CSS("#reveal-dialog")))
		c.until("its token", saTokenRows+` === 1 && document.getElementById('sa-token-rows').textContent.includes('ci')`)
		c.until("focus back on generate", focusOn("#sa-mint"))
		if held := pageHolds(t, c.eval, secret); held != "" {
			t.Errorf("%s: the service account's secret is still in the page: %s", size.name, held)
		}
		var v struct {
			Valid         bool
			PrincipalKind string
		}
		if st, body := do(t, "POST", srv.http+"/v1/tokens:validate", map[string]string{"Content-Type": "application/json"},
			fmt.Sprintf(`{"token":%q}`, secret), &v); st != http.StatusOK || !v.Valid || v.PrincipalKind != "PRINCIPAL_KIND_SERVICE_ACCOUNT" {
			t.Errorf("%s: validating the account's token = %d %s", size.name, st, body)
		}

		// Rotate its token (a new secret, once), then revoke the successor.
		tok := `#sa-token-rows tr:first-child`
		menuItem("rotate", tok, "button.rotate")
		c.do("rotate dialog", chromedp.WaitVisible(chromedp.CSS("#rotate-dialog[open]")),
			chromedp.Click(chromedp.CSS("#rotate-confirm")), chromedp.WaitVisible(chromedp.CSS("#reveal-dialog[open]")))
		c.until("rotated secret", `document.getElementById('reveal-secret').value.length > 20`)
		c.do("saved rotated", chromedp.Click(chromedp.CSS("#reveal-done")), chromedp.WaitNotVisible(chromedp.CSS("#reveal-dialog")))
		c.until("two tokens", saTokenRows+` === 2 && document.getElementById('sa-token-rows').textContent.includes('Rotating')`)
		next := `#sa-token-rows tr:has(.badge.active)`
		c.until("focus on the successor", focusOn(next+" .menu-button"))
		menuItem("revoke", next, "button.revoke")
		c.do("revoke", chromedp.WaitVisible(chromedp.CSS("#revoke-dialog[open]")),
			chromedp.Click(chromedp.CSS("#revoke-confirm")), chromedp.WaitNotVisible(chromedp.CSS("#revoke-dialog")))
		c.until("successor revoked", saTokenRows+` === 1 && document.getElementById('sa-token-rows').textContent.includes('Rotating')`)
		c.until("focus on generate after revoke", focusOn("#sa-mint"))
		c.do("close detail", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(chromedp.CSS("#sa-detail-dialog")))
		c.until("focus back on the account", focusOn(sa+" .menu-button"))

		// Delete: the confirmation names it and says its tokens go.
		menuItem("delete account", sa, "button.delete")
		c.do("delete account dialog", chromedp.WaitVisible(chromedp.CSS("#sa-delete-dialog[open]")))
		if got := c.eval(`document.getElementById('sa-delete-text').textContent`); !strings.Contains(got, size.account) || !strings.Contains(got, "revokes every one of its tokens") {
			t.Errorf("%s: the delete dialog says %q", size.name, got)
		}
		c.a11y("delete service account")
		c.do("confirm delete account", chromedp.Click(chromedp.CSS("#sa-delete-confirm")), chromedp.WaitNotVisible(chromedp.CSS("#sa-delete-dialog")))
		c.until("account deleted", saRows+` === `+fmt.Sprint(i)+` && document.getElementById('notice').textContent.includes('1 token was revoked')`)
		c.until("focus on new account", focusOn("#sa-new"))
		if st, _ := do(t, "POST", srv.http+"/v1/tokens:validate", map[string]string{"Content-Type": "application/json"},
			fmt.Sprintf(`{"token":%q}`, secret), &v); st != http.StatusOK || v.Valid {
			t.Errorf("%s: the deleted account's old token still validates (%d)", size.name, st)
		}
		// Keep one account for the phone's list to show.
		if i == 0 {
			if st, body := do(t, "POST", srv.http+"/v1/service-accounts", creds(admin), `{"name":"zz-kept-bot"}`, nil); st != http.StatusOK {
				t.Fatalf("create kept-bot = %d %s", st, body)
			}
		}
	}

	// A member sees no admin area, not even by its address.
	c.size = "desktop"
	c.do("desktop", chromedp.EmulateViewport(1280, 800))
	c.do("sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	c.fill("signin-email", "m00@example.com")
	c.fill("signin-password", password)
	c.do("member signs in", chromedp.Click(chromedp.CSS("#signin-submit")), chromedp.WaitVisible(chromedp.CSS("#tokens-view")))
	if got := c.eval(`[...document.querySelectorAll('#views a')].filter((a) => !a.hidden).map((a) => a.dataset.view).join(' ')`); got != "tokens" {
		t.Errorf("a member sees views %q, want only tokens", got)
	}
	c.eval(`(location.hash = '#users', '')`)
	c.until("member stays on tokens", `!document.getElementById('tokens-view').hidden && document.getElementById('users-view').hidden`)

	if errs := pageErrors.list(); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
