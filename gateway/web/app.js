// keymint token page. Plain JavaScript over keymint's JSON routes: sign-in
// and sign-out (/api/auth/...), the signed-in user (/v1/user), tokens
// (/v1/tokens). The session lives in an HttpOnly cookie this script cannot
// read; every call carries X-Keymint-CSRF, which no other site can send.
// A new token's secret exists only in the reveal dialog, and only until the
// dialog closes: nothing stores it, so a reload can never show it again.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api calls keymint and returns the parsed JSON answer (null for 204). A
  // refusal becomes an ApiError with the server's message, never raw JSON.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json', 'X-Keymint-CSRF': '1' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'keymint could not be reached. Check your connection and try again.');
    }
    if (resp.status === 204) return null;
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!resp.ok) {
      let msg = data && typeof data.message === 'string' && data.message ? data.message : '';
      if (!msg) msg = 'The request failed (HTTP ' + resp.status + ').';
      msg = msg.charAt(0).toUpperCase() + msg.slice(1);
      if (!/[.!?]$/.test(msg)) msg += '.';
      throw new ApiError(resp.status, msg);
    }
    return data;
  }

  // --- messages -----------------------------------------------------------

  function showAlert(msg, target) {
    const el = target || $('alert');
    el.textContent = msg;
    el.hidden = false;
    if (!target) hideNotice();
  }
  function hideAlert(target) {
    const el = target || $('alert');
    el.hidden = true;
    el.textContent = '';
  }
  function showNotice(msg) {
    hideAlert();
    $('notice').textContent = msg;
    $('notice').hidden = false;
  }
  function hideNotice() {
    $('notice').hidden = true;
    $('notice').textContent = '';
  }

  // fail reports err in the page (or a dialog's alert). An ended session
  // sends the person back to sign-in with a word on why.
  function fail(err, target) {
    if (err instanceof ApiError && err.status === 401 && signedIn) {
      closeAllDialogs();
      showSignIn('Your session has ended. Sign in again to continue.');
      return;
    }
    showAlert(err && err.message ? err.message : 'Something went wrong.', target);
  }

  // busy disables a button while its call runs.
  async function busy(button, fn) {
    button.disabled = true;
    try {
      return await fn();
    } finally {
      button.disabled = false;
    }
  }

  // --- formatting ---------------------------------------------------------

  const dayFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
  const clockFmt = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });

  // when renders a time as a day with the clock time under it (a <time>
  // element whose title has the full date), or none when unset.
  function when(iso, none) {
    const d = iso ? new Date(iso) : null;
    if (!d || isNaN(d)) return none;
    const t = el('time', { dateTime: d.toISOString(), title: fullFmt.format(d) },
      dayFmt.format(d), el('span', { className: 'clock', textContent: clockFmt.format(d) }));
    return t;
  }

  const statuses = {
    TOKEN_STATUS_ACTIVE: ['active', 'Active'],
    TOKEN_STATUS_REVOKED: ['revoked', 'Revoked'],
    TOKEN_STATUS_EXPIRED: ['expired', 'Expired'],
  };

  // status is a token's badge: a rotated token is "Rotating" while its old
  // secret still works (the grace period), "Rotated" after.
  function status(t) {
    if (t.rotatedToId && t.status === 'TOKEN_STATUS_ACTIVE') return ['rotating', 'Rotating'];
    if (t.rotatedToId && t.status === 'TOKEN_STATUS_EXPIRED') return ['expired', 'Rotated'];
    return statuses[t.status] || ['expired', 'Unknown'];
  }

  const periodNames = { 1: 'second', 60: 'minute', 3600: 'hour', 86400: 'day' };

  // limits lists a token's remaining uses, rate limit and allowed IPs, or
  // "none".
  function limits(t) {
    const out = [];
    if (t.remainingUses !== undefined) {
      const n = Number(t.remainingUses);
      out.push(el('span', { textContent: n + (n === 1 ? ' use left' : ' uses left') }));
    }
    if (t.rateLimit) {
      const secs = parseFloat(t.rateLimit.period);
      const per = periodNames[secs] || (secs + ' s');
      out.push(el('span', { textContent: t.rateLimit.limit + ' per ' + per }));
    }
    if ((t.allowedCidrs || []).length) {
      out.push(el('span', {}, 'from ', ...t.allowedCidrs.map((c) => el('code', { className: 'scope', textContent: c }))));
    }
    return out.length ? out : [el('span', { className: 'none', textContent: 'none' })];
  }

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  // --- views --------------------------------------------------------------

  let signedIn = false;

  function showSignIn(message) {
    signedIn = false;
    $('account').hidden = true;
    $('tokens-view').hidden = true;
    $('webhooks-view').hidden = true;
    $('signin-view').hidden = false;
    $('token-rows').replaceChildren();
    $('webhook-rows').replaceChildren();
    $('delivery-rows').replaceChildren();
    if (message) showAlert(message); else hideAlert();
    hideNotice();
    $('signin-password').value = '';
    $('signin-email').focus();
  }

  async function showTokens(user) {
    signedIn = true;
    $('who').textContent = user.email;
    $('account').hidden = false;
    $('signin-view').hidden = true;
    $('tokens-view').hidden = false;
    await loadTokens();
    // Webhooks are an org admin's: others would get 403 from the API.
    $('webhooks-view').hidden = !user.admin;
    if (user.admin) await loadWebhooks();
  }

  // --- webhooks (org admins) ------------------------------------------------

  async function loadWebhooks() {
    try {
      const resp = await api('GET', '/v1/webhooks');
      renderWebhooks((resp && resp.webhooks) || []);
    } catch (err) {
      fail(err);
    }
  }

  function renderWebhooks(list) {
    $('wh-empty').hidden = list.length > 0;
    $('webhook-rows').replaceChildren(...list.map((w) => {
      const state = w.enabled ? (w.failingSince ? 'Failing since ' + when(w.failingSince) : 'Active') : 'Disabled (kept failing)';
      const show = el('button', { type: 'button', className: 'ghost', textContent: 'Deliveries' });
      show.addEventListener('click', () => loadDeliveries(w));
      const del = el('button', { type: 'button', className: 'ghost', textContent: 'Delete' });
      del.addEventListener('click', async () => {
        if (!window.confirm('Delete the webhook to ' + w.url + '? Its deliveries go with it.')) return;
        try {
          await busy(del, () => api('DELETE', '/v1/webhooks/' + encodeURIComponent(w.id)));
          $('deliveries').hidden = true;
          showNotice('Webhook to ' + w.url + ' deleted.');
          await loadWebhooks();
        } catch (err) {
          fail(err);
        }
      });
      return el('tr', {}, cell('URL', 'url', el('code', { textContent: w.url })),
        cell('Events', '', (w.eventTypes || []).join(' ')), cell('Status', '', state), cell('', 'actions', show, del));
    }));
  }

  async function loadDeliveries(w) {
    try {
      const resp = await api('GET', '/v1/webhooks/' + encodeURIComponent(w.id) + '/deliveries?pageSize=20');
      $('deliveries-title').textContent = 'Deliveries to ' + w.url;
      $('delivery-rows').replaceChildren(...((resp && resp.deliveries) || []).map((d) => {
        const replay = el('button', { type: 'button', className: 'ghost', textContent: 'Replay' });
        replay.addEventListener('click', async () => {
          try {
            await busy(replay, () => api('POST', '/v1/webhook-deliveries/' + encodeURIComponent(d.id) + ':replay', {}));
            showNotice('Event ' + d.eventType + ' queued again.');
            await loadDeliveries(w);
          } catch (err) {
            fail(err);
          }
        });
        return el('tr', {}, cell('Event', '', d.eventType), cell('State', '', d.state), cell('Attempts', '', String(d.attempts)),
          cell('Response', '', d.lastStatusCode ? String(d.lastStatusCode) : '—'), cell('Latency', '', d.lastLatency || '—'),
          cell('Error', '', d.lastError || '—'), cell('Next try', '', d.nextAttemptTime ? when(d.nextAttemptTime) : '—'),
          cell('', 'actions', replay));
      }));
      $('deliveries').hidden = false;
    } catch (err) {
      fail(err);
    }
  }

  $('webhook-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    hideAlert($('webhook-error'));
    const url = $('wh-url').value.trim();
    const eventTypes = $('wh-events').value.split(/[\s,]+/).filter((s) => s);
    try {
      const resp = await busy($('wh-add'), () => api('POST', '/v1/webhooks', { url, eventTypes }));
      $('wh-url').value = '';
      await loadWebhooks();
      reveal({ name: resp.webhook.url }, resp.secret, "Your webhook's signing secret");
    } catch (err) {
      fail(err, $('webhook-error'));
    }
  });

  async function start() {
    try {
      const user = await api('GET', '/v1/user');
      await showTokens(user);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        showSignIn();
      } else {
        showSignIn();
        fail(err);
      }
    }
  }

  // --- tokens -------------------------------------------------------------

  async function fetchTokens() {
    const inactive = $('show-inactive').checked;
    let all = [];
    let page = '';
    for (let i = 0; i < 20; i++) {
      const q = new URLSearchParams({ pageSize: '1000', showInactive: String(inactive) });
      if (page) q.set('pageToken', page);
      const resp = await api('GET', '/v1/tokens?' + q.toString());
      all = all.concat(resp.tokens || []);
      if (!resp.nextPageToken || resp.nextPageToken === page) break;
      page = resp.nextPageToken;
    }
    return all;
  }

  async function loadTokens() {
    try {
      renderTokens(await fetchTokens());
    } catch (err) {
      fail(err);
    }
  }

  function cell(label, cls, ...content) {
    const td = el('td', { className: cls || '' }, ...content);
    td.dataset.label = label;
    return td;
  }

  function renderTokens(tokens) {
    const rows = tokens.map((t) => {
      const [cls, label] = status(t);
      const usable = t.status === 'TOKEN_STATUS_ACTIVE';
      const scopes = (t.scopes || []).length
        ? (t.scopes || []).map((s) => el('code', { className: 'scope', textContent: s }))
        : [el('span', { className: 'none', textContent: 'none' })];
      const tr = el('tr', { className: usable ? '' : 'inactive' },
        cell('Name', 'name', t.name),
        cell('Description', 'desc', t.description || null),
        cell('Hint', '', el('code', { textContent: t.hint + '…' })),
        cell('Scopes', '', el('span', {}, ...scopes)),
        cell('Created', 'time', when(t.createTime, '')),
        cell('Last used', 'time', when(t.lastUsedTime, 'never')),
        cell('Expires', 'time', when(t.expireTime, 'never')),
        cell('Limits', 'limits', el('div', {}, ...limits(t))),
        cell('Status', '', el('span', { className: 'badge ' + cls, textContent: label })),
        cell('', 'act',
          usable ? el('button', {
            type: 'button',
            className: 'secondary small',
            textContent: 'Revoke',
            onclick: () => askRevoke(t),
          }) : null,
          usable && !t.rotatedToId ? el('button', {
            type: 'button',
            className: 'secondary small rotate',
            textContent: 'Rotate',
            onclick: () => askRotate(t),
          }) : null));
      tr.dataset.tokenId = t.id;
      for (const btn of tr.querySelectorAll('button')) {
        btn.setAttribute('aria-label', btn.textContent + ' token ' + t.name);
      }
      return tr;
    });
    $('token-rows').replaceChildren(...rows);
    // The Limits column shows only when some token has limits.
    const limited = tokens.some((t) => t.remainingUses !== undefined || t.rateLimit || (t.allowedCidrs || []).length);
    $('token-table').classList.toggle('no-limits', !limited);
    $('empty').hidden = tokens.length > 0;
    $('token-table').hidden = tokens.length === 0;
  }

  // --- dialogs ------------------------------------------------------------

  let returnFocus = null;

  function openDialog(d, focusAfter) {
    returnFocus = focusAfter || document.activeElement;
    d.showModal();
  }

  function closeAllDialogs() {
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
  }

  for (const d of document.querySelectorAll('dialog')) {
    d.addEventListener('close', () => {
      if (returnFocus && document.contains(returnFocus) && !returnFocus.closest('[hidden]')) {
        returnFocus.focus();
      }
    });
    for (const b of d.querySelectorAll('[data-close]')) {
      b.addEventListener('click', () => d.close());
    }
  }

  // Generate.
  $('generate').addEventListener('click', () => {
    $('generate-form').reset();
    hideAlert($('generate-error'));
    openDialog($('generate-dialog'), $('generate'));
    $('gen-name').focus();
  });

  $('generate-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const errBox = $('generate-error');
    hideAlert(errBox);
    const name = $('gen-name').value.trim();
    if (!name) {
      showAlert('Give the token a name, so you can tell it apart later.', errBox);
      $('gen-name').focus();
      return;
    }
    const body = {
      name,
      description: $('gen-description').value.trim(),
      scopes: $('gen-scopes').value.split(/[\s,]+/).filter(Boolean),
    };
    const secs = $('gen-expiry').value;
    if (secs) body.ttl = secs + 's';
    const cidrs = $('gen-cidrs').value.split(/[\s,]+/).filter(Boolean);
    if (cidrs.length) body.allowedCidrs = cidrs;
    const uses = $('gen-uses').value.trim();
    if (uses) body.remainingUses = uses;
    const rate = $('gen-rate').value.trim();
    if (rate) body.rateLimit = { limit: rate, period: $('gen-rate-period').value + 's' };
    try {
      const resp = await busy($('generate-submit'), () => api('POST', '/v1/tokens', body));
      $('generate-dialog').close();
      reveal(resp.token, resp.secret);
      loadTokens();
    } catch (err) {
      fail(err, errBox);
    }
  });

  // Reveal: the one place a secret is ever shown.
  let revealed = null;

  function reveal(token, secret, title) {
    revealed = { name: token.name, secret };
    $('reveal-title').textContent = title || 'Your new token';
    $('reveal-name').textContent = token.name;
    $('reveal-secret').value = secret;
    $('copy-status').textContent = '';
    openDialog($('reveal-dialog'), $('generate'));
    $('reveal-secret').focus();
    $('reveal-secret').select();
  }

  // forgetSecret drops the secret from the page: the dialog was the only
  // place it was. It runs as the dialog closes, by any means.
  function forgetSecret() {
    revealed = null;
    $('reveal-secret').value = '';
    $('copy-status').textContent = '';
  }
  $('reveal-dialog').addEventListener('cancel', forgetSecret);
  $('reveal-dialog').addEventListener('close', () => {
    forgetSecret();
    loadTokens();
  });
  $('reveal-done').addEventListener('click', () => {
    forgetSecret();
    $('reveal-dialog').close();
  });

  $('copy-secret').addEventListener('click', async () => {
    if (!revealed) return;
    const status = $('copy-status');
    try {
      await navigator.clipboard.writeText(revealed.secret);
      status.textContent = 'Copied to the clipboard.';
    } catch (e) {
      // No clipboard API (plain HTTP on another host): select it instead.
      const input = $('reveal-secret');
      input.focus();
      input.select();
      let ok = false;
      try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
      status.textContent = ok ? 'Copied to the clipboard.' : 'Selected: press Ctrl+C (or ⌘C) to copy.';
    }
  });

  $('download-secret').addEventListener('click', () => {
    if (!revealed) return;
    const safe = revealed.name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'token';
    const url = URL.createObjectURL(new Blob([revealed.secret + '\n'], { type: 'text/plain' }));
    const a = el('a', { href: url, download: 'keymint-token-' + safe + '.txt' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $('copy-status').textContent = 'Downloaded keymint-token-' + safe + '.txt.';
  });

  // Revoke, after a confirmation.
  let revoking = null;

  function askRevoke(token) {
    revoking = token;
    $('revoke-name').textContent = token.name;
    openDialog($('revoke-dialog'), $('generate'));
  }

  $('revoke-confirm').addEventListener('click', async () => {
    const t = revoking;
    if (!t) return;
    try {
      await busy($('revoke-confirm'), () => api('DELETE', '/v1/tokens/' + encodeURIComponent(t.id)));
      revoking = null;
      $('revoke-dialog').close();
      showNotice('Token "' + t.name + '" is revoked.');
      await loadTokens();
    } catch (err) {
      $('revoke-dialog').close();
      fail(err);
    }
  });

  // Rotate: a new secret, revealed once; the old one lives for the grace
  // period chosen.
  let rotating = null;

  function askRotate(token) {
    rotating = token;
    $('rotate-form').reset();
    hideAlert($('rotate-error'));
    $('rotate-name').textContent = token.name;
    openDialog($('rotate-dialog'), $('generate'));
    $('rotate-grace').focus();
  }

  $('rotate-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = rotating;
    if (!t) return;
    const errBox = $('rotate-error');
    hideAlert(errBox);
    try {
      const resp = await busy($('rotate-confirm'), () => api('POST', '/v1/tokens/' + encodeURIComponent(t.id) + ':rotate',
        { gracePeriod: $('rotate-grace').value + 's' }));
      rotating = null;
      $('rotate-dialog').close();
      reveal(resp.token, resp.secret, 'Your rotated token');
    } catch (err) {
      fail(err, errBox);
    }
  });

  $('show-inactive').addEventListener('change', loadTokens);

  // Sign in and out.
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    hideAlert();
    const email = $('signin-email').value.trim();
    const password = $('signin-password').value;
    if (!email || !password) {
      showAlert('Enter your email and password.');
      (email ? $('signin-password') : $('signin-email')).focus();
      return;
    }
    try {
      await busy($('signin-submit'), () => api('POST', '/api/auth/login', { auth: email, password }));
      $('signin-password').value = '';
      const user = await api('GET', '/v1/user');
      await showTokens(user);
      $('main').focus();
    } catch (err) {
      $('signin-password').value = '';
      if (err instanceof ApiError && err.status === 401) {
        showAlert('That email and password do not match an account.');
      } else {
        fail(err);
      }
      $('signin-password').focus();
    }
  });

  $('sign-out').addEventListener('click', async () => {
    try {
      await api('POST', '/api/auth/logout');
    } catch (err) {
      // The cookie is cleared by the answer whatever happened; sign-in shows.
    }
    closeAllDialogs();
    showSignIn();
    showNotice('You are signed out.');
  });

  // Change password.
  $('change-password').addEventListener('click', () => {
    $('password-form').reset();
    hideAlert($('password-error'));
    openDialog($('password-dialog'), $('change-password'));
    $('pw-current').focus();
  });

  $('password-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const errBox = $('password-error');
    hideAlert(errBox);
    const current = $('pw-current').value;
    const next = $('pw-new').value;
    if (!current || !next) {
      showAlert('Enter your current and your new password.', errBox);
      return;
    }
    if (next !== $('pw-confirm').value) {
      showAlert('The two new passwords differ.', errBox);
      $('pw-confirm').focus();
      return;
    }
    try {
      await busy($('password-submit'), () => api('PUT', '/v1/user/password', { currentPassword: current, newPassword: next }));
      $('password-form').reset();
      $('password-dialog').close();
      showNotice('Your password is changed, and your other sessions are signed out.');
    } catch (err) {
      fail(err, errBox);
    }
  });

  start();
})();
