// keymint console. Plain JavaScript (no build step) over keymint's JSON
// routes: sign-in and sign-out (/api/auth/...), the signed-in user
// (/v1/user), tokens (/v1/tokens, paged and filtered by the server), and for
// org admins the org's tokens, users, service accounts, the audit log, the
// policy and webhooks. The session lives in an HttpOnly cookie this script cannot
// read; every call carries X-Keymint-CSRF, which no other site can send.
// A new token's secret exists only in the reveal dialog, and only until the
// dialog closes: nothing stores it, so a reload can never show it again.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      // Seconds the server asked us to wait (429, 503), or 0.
      this.retryAfter = retryAfter || 0;
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
      const ra = parseInt(resp.headers.get('Retry-After') || '', 10);
      throw new ApiError(resp.status, msg, ra > 0 ? ra : 0);
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
      // Keep what was being typed: the open dialog comes back, filled in as
      // it was, once the person signs in again.
      const open = document.querySelector('dialog[open]');
      resume = open && open.id !== 'reveal-dialog' ? open : null;
      closeAllDialogs();
      showSignIn('Your session has ended. Sign in again to continue.', lastEmail);
      return;
    }
    showAlert(err && err.message ? err.message : 'Something went wrong.', target);
  }

  // --- field errors -------------------------------------------------------

  // Server messages start with the field's JSON name; these say which
  // input it is and how the page calls it.
  const fieldNames = {
    name: [['gen-name', 'Name'], ['sa-name', 'Name']],
    description: [['gen-description', 'Description'], ['sa-description', 'Description']],
    scopes: [['gen-scopes', 'Scopes'], ['sa-scopes', 'Scopes']],
    emailPrefix: ['u-email', 'Email'],
    scope: ['gen-scopes', 'Scope'],
    expireTime: ['gen-expiry', 'Expiry'],
    ttl: ['gen-expiry', 'Expiry'],
    allowedCidrs: ['gen-cidrs', 'Allowed IP addresses'],
    remainingUses: ['gen-uses', 'Maximum uses'],
    rateLimit: ['gen-rate', 'Rate limit'],
    allowedScopes: ['p-scopes', 'Allowed scopes'],
    maxTokenLifetime: ['p-max', 'Longest token lifetime'],
    defaultTokenLifetime: ['p-default', 'Default lifetime'],
    maxRotationGrace: ['p-grace', 'Longest rotation grace period'],
    actor: ['a-actor', 'Actor'],
    startTime: ['a-from', 'From'],
  };

  // fieldError shows msg under the input with this id, tied to it by
  // aria-describedby, until the input changes.
  function fieldError(id, msg) {
    const box = $(id + '-error');
    const input = $(id);
    if (!box || !input) return false;
    box.textContent = msg;
    box.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    const picker = scopePickers[id] && !$(scopePickers[id]).hidden ? $(scopePickers[id]) : null;
    if (picker) picker.setAttribute('aria-invalid', 'true');
    return true;
  }
  function clearFieldError(id) {
    const box = $(id + '-error');
    if (box) { box.hidden = true; box.textContent = ''; }
    const input = $(id);
    if (input) input.removeAttribute('aria-invalid');
    if (scopePickers[id]) $(scopePickers[id]).removeAttribute('aria-invalid');
  }
  // A scope field's checkbox picker, marked invalid with it.
  const scopePickers = { 'gen-scopes': 'gen-scope-picker', 'sa-scopes': 'sa-scope-picker' };
  function clearFieldErrors(form) {
    for (const box of form.querySelectorAll('.field-error')) clearFieldError(box.id.replace(/-error$/, ''));
  }
  // Any edit clears that field's error.
  for (const box of document.querySelectorAll('.field-error')) {
    const id = box.id.replace(/-error$/, '');
    const input = $(id);
    if (input) {
      input.addEventListener('input', () => clearFieldError(id));
      input.addEventListener('change', () => clearFieldError(id));
    }
  }
  $('gen-scope-options').addEventListener('change', () => clearFieldError('gen-scopes'));
  $('sa-scope-options').addEventListener('change', () => clearFieldError('sa-scopes'));
  $('gen-expiry-date').addEventListener('input', () => clearFieldError('gen-expiry'));

  // serverFieldError ties a server refusal to its field in plain words;
  // false when the message names no field of this form.
  function serverFieldError(err, form) {
    const m = /^([a-zA-Z]+)(?:\[(\d+)\])?(?:\.[a-zA-Z]+)?\s*(.*)$/.exec(err.message || '');
    if (!m) return false;
    const key = m[1].charAt(0).toLowerCase() + m[1].slice(1);
    const entry = fieldNames[key];
    const f = entry && (Array.isArray(entry[0]) ? entry : [entry]).find((c) => form.contains($(c[0])));
    if (!f) return false;
    let rest = m[3];
    if (m[2] !== undefined) rest = '(entry ' + (Number(m[2]) + 1) + ') ' + rest;
    return fieldError(f[0], f[1] + ' ' + rest);
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

  let resume = null;
  let lastEmail = '';

  function showSignIn(message, email) {
    signedIn = false;
    $('account').hidden = true;
    $('views').hidden = true;
    for (const v of document.querySelectorAll('main > section')) v.hidden = true;
    $('signin-view').hidden = false;
    if (email) $('signin-email').value = email;
    $('token-rows').replaceChildren();
    $('user-rows').replaceChildren();
    $('sa-rows').replaceChildren();
    $('webhook-rows').replaceChildren();
    $('delivery-rows').replaceChildren();
    if (message) showAlert(message); else hideAlert();
    hideNotice();
    $('signin-password').value = '';
    (email ? $('signin-password') : $('signin-email')).focus();
  }

  let me = null;
  let policy = { allowedScopes: [] };

  async function showTokens(user) {
    signedIn = true;
    me = user;
    lastEmail = user.email;
    $('who').textContent = user.email;
    $('who').title = user.email;
    $('pw-username').value = user.email;
    $('account').hidden = false;
    $('views').hidden = false;
    // The admin area is an org admin's only: for others it is not there.
    for (const a of document.querySelectorAll('.admin-only')) a.hidden = !user.admin;
    $('signin-view').hidden = true;
    try {
      policy = (await api('GET', '/v1/org/policy')) || { allowedScopes: [] };
    } catch (err) {
      policy = { allowedScopes: [] };
    }
    fillScopeChoices();
    await route();
  }

  // --- views and routing --------------------------------------------------

  const views = {
    tokens: 'tokens-view', 'org-tokens': 'tokens-view', users: 'users-view', 'service-accounts': 'sa-view',
    audit: 'audit-view', policy: 'policy-view', webhooks: 'webhooks-view',
  };

  // hashParams are the view's parameters: #org-tokens?owner=ID.
  function hashParams() {
    const h = location.hash;
    const i = h.indexOf('?');
    return new URLSearchParams(i < 0 ? '' : h.slice(i + 1));
  }

  function currentView() {
    const v = location.hash.replace(/^#/, '').replace(/\?.*$/, '');
    if (!views[v] || (v !== 'tokens' && !(me && me.admin))) return 'tokens';
    return v;
  }

  async function route() {
    if (!signedIn) return;
    const v = currentView();
    for (const id of new Set(Object.values(views))) $(id).hidden = id !== views[v];
    for (const a of $('views').querySelectorAll('a')) {
      if (a.dataset.view === v) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    if (v === 'tokens' || v === 'org-tokens') {
      const org = v === 'org-tokens';
      // A user's "Tokens" link opens the org's list filtered by owner.
      const owner = org ? hashParams().get('owner') || '' : '';
      if (list.org !== org || owner !== list.ownerLink || owner) {
        list.org = org;
        list.pages = [''];
        list.page = 0;
        list.ownerLink = owner;
        if (owner && !list.owners.has(owner)) list.owners.set(owner, (users.byId.get(owner) || {}).email || owner);
        fillOwners();
        $('f-owner').value = owner;
      }
      $('tokens-title').textContent = org ? "Your organization's tokens" : 'API tokens';
      $('token-caption').textContent = org ? "Your organization's tokens" : 'Your API tokens';
      $('generate').hidden = org;
      $('tokens-lede').hidden = org;
      $('f-owner-wrap').hidden = !org;
      $('token-table').classList.toggle('with-owner', org);
      await loadTokens();
    } else if (v === 'users') {
      await loadUsers();
    } else if (v === 'service-accounts') {
      await loadServiceAccounts();
    } else if (v === 'audit') {
      await loadAudit();
    } else if (v === 'policy') {
      await loadPolicy();
    } else if (v === 'webhooks') {
      await loadWebhooks();
    }
  }
  window.addEventListener('hashchange', () => { hideAlert(); route(); });

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

  const pageSize = 25;
  // list is the token list's state: page tokens seen (pages[i] opens page
  // i), the page shown, and whether it is the org-wide list.
  const list = { org: false, pages: [''], page: 0, next: '', owners: new Map(), ownerLink: '' };

  // fillScopeChoices offers the scopes a new token may hold: the org's
  // that the user holds, or (forAccount set) a service account's.
  function fillScopeChoices(forAccount) {
    const scopes = (policy.allowedScopes || []).filter((s) => s !== 'keymint:admin' || (me && me.admin));
    const held = forAccount || (me && me.scopes) || [];
    const allowed = held.length ? scopes.filter((s) => held.includes(s)) : scopes;
    $('f-scope').replaceChildren(el('option', { value: '', textContent: 'Any' }),
      ...scopes.map((s) => el('option', { value: s, textContent: s })));
    $('gen-scope-options').replaceChildren(...allowed.map((s, i) => el('label', { className: 'check' },
      el('input', { type: 'checkbox', value: s, id: 'gen-scope-' + i }), ' ', el('code', { textContent: s }))));
    // A picker when the org lists its scopes; free text when any scope goes.
    $('gen-scope-picker').hidden = allowed.length === 0;
    $('gen-scopes-free').hidden = allowed.length > 0;
  }

  function listQuery(pageToken) {
    const q = new URLSearchParams({ pageSize: String(pageSize), orderBy: $('f-sort').value });
    const st = $('f-status').value;
    if (st === 'inactive') q.set('showInactive', 'true');
    else if (st) q.set('status', st);
    const text = $('f-query').value.trim();
    if (text) q.set('query', text);
    if ($('f-scope').value) q.set('scope', $('f-scope').value);
    if ($('f-expiring').checked) q.set('expiresWithin', String(7 * 86400) + 's');
    if (list.org) {
      q.set('allUsers', 'true');
      if ($('f-owner').value) q.set('userId', $('f-owner').value);
    }
    if (pageToken) q.set('pageToken', pageToken);
    return q;
  }

  let listSeq = 0;

  async function loadTokens(focusId) {
    const seq = ++listSeq;
    try {
      const resp = await api('GET', '/v1/tokens?' + listQuery(list.pages[list.page]).toString());
      if (seq !== listSeq) return; // a newer load answers instead
      list.next = resp.nextPageToken || '';
      renderTokens(resp.tokens || []);
      if (focusId) focusRow(focusId);
    } catch (err) {
      fail(err);
    }
  }

  // A filter change starts again at page 1.
  function reloadFromStart() {
    list.pages = [''];
    list.page = 0;
    loadTokens();
  }
  let searchTimer = 0;
  $('f-query').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(reloadFromStart, 250);
  });
  for (const id of ['f-status', 'f-scope', 'f-sort', 'f-owner', 'f-expiring']) $(id).addEventListener('change', reloadFromStart);
  $('list-filters').addEventListener('submit', (ev) => { ev.preventDefault(); reloadFromStart(); });
  $('page-next').addEventListener('click', () => {
    if (!list.next) return;
    list.pages[list.page + 1] = list.next;
    list.page++;
    loadTokens();
  });
  $('page-prev').addEventListener('click', () => {
    if (list.page === 0) return;
    list.page--;
    loadTokens();
  });

  function cell(label, cls, ...content) {
    const td = el('td', { className: cls || '' }, ...content);
    td.dataset.label = label;
    return td;
  }

  // focusRow puts focus back on a row's actions button after the list was
  // drawn again (a dialog opened from it closed).
  function focusRow(id) {
    const b = document.querySelector('tr[data-token-id="' + CSS.escape(id) + '"] .menu-button');
    if (b) b.focus();
  }

  function renderTokens(tokens) {
    for (const t of tokens) {
      if (t.createdByEmail && t.userId === t.createdBy) list.owners.set(t.userId, t.createdByEmail);
    }
    if (list.org) fillOwners();
    const rows = tokens.map((t) => {
      const [cls, label] = status(t);
      const usable = t.status === 'TOKEN_STATUS_ACTIVE';
      const scopes = (t.scopes || []).length
        ? (t.scopes || []).map((s) => el('code', { className: 'scope', textContent: s }))
        : [el('span', { className: 'none', textContent: 'none' })];
      const lim = limits(t).filter((x) => !x.classList.contains('none'));
      const tr = el('tr', { className: usable ? '' : 'inactive' },
        cell('Name', 'name', el('div', { className: 'name-box' },
          el('span', { className: 'tname', textContent: t.name }), ' ',
          el('code', { className: 'hint', textContent: t.hint + '…' }),
          t.description ? el('span', { className: 'desc', textContent: t.description, title: t.description }) : null,
          lim.length ? el('span', { className: 'row-limits' }, ...lim) : null)),
        cell('Owner', 'owner-col', t.createdByEmail || t.userId),
        cell('Scopes', 'scopes', el('span', {}, ...scopes)),
        cell('Last used', 'time', when(t.lastUsedTime, 'never')),
        cell('Expires', 'time', when(t.expireTime, 'never')),
        cell('Status', '', el('span', { className: 'badge ' + cls, textContent: label })),
        cell('', 'act', rowMenu(t, usable)));
      tr.dataset.tokenId = t.id;
      return tr;
    });
    $('token-rows').replaceChildren(...rows);
    const filtered = list.page > 0 || $('f-query').value.trim() || $('f-scope').value || $('f-expiring').checked || $('f-status').value || $('f-owner').value;
    $('empty').textContent = filtered ? 'No tokens match these filters.' : (list.org ? 'Your organization has no tokens yet.' : 'No tokens yet. Generate one to call the API.');
    $('empty').hidden = tokens.length > 0;
    $('token-table').hidden = tokens.length === 0;
    $('page-prev').disabled = list.page === 0;
    $('page-next').disabled = !list.next;
    $('page-label').textContent = 'Page ' + (list.page + 1);
    $('list-status').textContent = tokens.length ? 'Showing ' + tokens.length + (tokens.length === 1 ? ' token' : ' tokens') + ' on page ' + (list.page + 1) + '.' : '';
  }

  // fillOwners offers the owners seen so far in the org list's filter.
  function fillOwners() {
    const chosen = $('f-owner').value;
    $('f-owner').replaceChildren(el('option', { value: '', textContent: 'Everyone' }),
      ...[...list.owners].sort((a, b) => a[1].localeCompare(b[1])).map(([id, email]) => el('option', { value: id, textContent: email })));
    $('f-owner').value = chosen;
  }

  // rowMenu is a token row's one actions button and the menu it opens;
  // after (optional) runs once a revoke or rotation is done.
  function rowMenu(t, usable, after) {
    const items = [];
    if (!after) items.push(['Details', 'details', (b) => showDetail(t, b)]);
    if (usable) {
      if (!t.rotatedToId && (!list.org || after)) items.push(['Rotate', 'rotate', (b) => askRotate(t, b, after)]);
      items.push(['Revoke', 'revoke', (b) => askRevoke(t, b, after)]);
    }
    return actionsMenu('menu-' + t.id, 'Actions for ' + t.name + ' (' + t.hint + ')', items);
  }

  // actionsMenu is a row's one actions button and the menu it opens: items
  // are [label, class, run(button)] or [label, class, href] for a link.
  function actionsMenu(id, label, entries) {
    const button = el('button', { type: 'button', className: 'secondary small menu-button', textContent: 'Actions' });
    button.setAttribute('aria-haspopup', 'true');
    button.setAttribute('aria-expanded', 'false');
    button.setAttribute('aria-controls', id);
    button.setAttribute('aria-label', label);
    const items = entries.map(([text, cls, run]) => (typeof run === 'string'
      ? el('a', { className: cls, textContent: text, href: run, onclick: closeMenus })
      : el('button', { type: 'button', className: cls, textContent: text, onclick: () => { closeMenus(); run(button); } })));
    const menu = el('div', { id, className: 'menu', hidden: true }, ...items);
    button.addEventListener('click', (ev) => {
      ev.stopPropagation();
      const open = menu.hidden;
      closeMenus();
      if (open) {
        menu.hidden = false;
        button.setAttribute('aria-expanded', 'true');
        items[0].focus();
      }
    });
    menu.addEventListener('keydown', (ev) => {
      const i = items.indexOf(document.activeElement);
      if (ev.key === 'Escape') { ev.preventDefault(); closeMenus(); button.focus(); }
      if (ev.key === 'ArrowDown') { ev.preventDefault(); items[(i + 1) % items.length].focus(); }
      if (ev.key === 'ArrowUp') { ev.preventDefault(); items[(i - 1 + items.length) % items.length].focus(); }
    });
    return el('div', { className: 'menu-wrap' }, button, menu);
  }

  function closeMenus() {
    for (const m of document.querySelectorAll('.menu:not([hidden])')) m.hidden = true;
    for (const b of document.querySelectorAll('.menu-button[aria-expanded="true"]')) b.setAttribute('aria-expanded', 'false');
  }
  document.addEventListener('click', (ev) => { if (!ev.target.closest('.menu-wrap')) closeMenus(); });

  // --- detail --------------------------------------------------------------

  async function showDetail(t, opener) {
    $('detail-title').textContent = t.name;
    hideAlert($('detail-error'));
    const [cls, label] = status(t);
    const rows = [
      ['Hint', el('code', { textContent: t.hint + '…' })],
      ['Status', el('span', { className: 'badge ' + cls, textContent: label })],
      ['Description', t.description || el('span', { className: 'none', textContent: 'none' })],
      ['Scopes', el('span', {}, ...((t.scopes || []).length ? t.scopes.map((s) => el('code', { className: 'scope', textContent: s })) : [el('span', { className: 'none', textContent: 'none' })]))],
      ['Created', when(t.createTime, '')],
      ['Created by', t.createdByEmail || t.createdBy || '—'],
      ['Last used', when(t.lastUsedTime, 'never')],
      ['Expires', when(t.expireTime, 'never')],
      ['Revoked', when(t.revokeTime, 'no')],
      ['Limits', el('div', {}, ...limits(t))],
      ['External id', t.externalId || el('span', { className: 'none', textContent: 'none' })],
      ['Metadata', t.metadata ? el('code', { className: 'meta', textContent: JSON.stringify(t.metadata) }) : el('span', { className: 'none', textContent: 'none' })],
      ['Token id', el('code', { textContent: t.id })],
    ];
    $('detail-fields').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', {}, v)]));
    $('detail-chain').replaceChildren(el('li', { className: 'none', textContent: 'Loading…' }));
    $('detail-events').replaceChildren();
    openDialog($('detail-dialog'), () => focusRow(t.id), opener);
    try {
      const h = await api('GET', '/v1/tokens/' + encodeURIComponent(t.id) + '/history');
      $('detail-chain').replaceChildren(...(h.rotationChain || []).map((c) => {
        const [ccls, clabel] = status(c);
        return el('li', { className: c.id === t.id ? 'this' : '' },
          el('code', { textContent: c.hint + '…' }), ' ', when(c.createTime, ''), ' ',
          el('span', { className: 'badge ' + ccls, textContent: clabel }),
          c.id === t.id ? el('span', { className: 'opt', textContent: ' (this token)' }) : null);
      }));
      const evs = h.events || [];
      $('detail-events').replaceChildren(...(evs.length ? evs.map((e) => el('li', {}, when(e.createTime, ''), ' ',
        el('strong', { textContent: actionName(e.action) }), ' by ' + (e.actorEmail || e.actorUserId || 'unknown'),
        e.clientIp ? ' from ' + e.clientIp : '')) : [el('li', { className: 'none', textContent: 'No events recorded.' })]));
    } catch (err) {
      fail(err, $('detail-error'));
    }
  }

  const actionNames = {
    'sign_in.success': 'Signed in', 'sign_in.failure': 'Sign-in failed', sign_out: 'Signed out',
    'token.mint': 'Token generated', 'token.revoke': 'Token revoked', 'token.rotate': 'Token rotated',
    'token.leak_revoke': 'Leaked token revoked', 'token.leak_report': 'Leak reported',
    'password.change': 'Password changed', 'org.policy_update': 'Policy changed', 'user.scopes_update': 'User scopes changed',
    'user.disable': 'User disabled', 'user.enable': 'User enabled', 'user.admin_update': 'Admin role changed',
    'user.password_reset': 'Password reset', 'user.delete': 'User deleted',
    'service_account.create': 'Service account created', 'service_account.delete': 'Service account deleted', 'org.rename': 'Organization renamed',
    'webhook.create': 'Webhook added', 'webhook.delete': 'Webhook deleted', 'webhook.replay': 'Delivery replayed', 'webhook.disabled': 'Webhook disabled',
  };
  function actionName(a) { return actionNames[a] || a; }

  // --- audit log (org admins) -------------------------------------------------

  const audit = { pages: [''], page: 0, next: '' };

  function localToISO(v) {
    if (!v) return '';
    const d = new Date(v);
    return isNaN(d) ? '' : d.toISOString();
  }

  async function loadAudit() {
    clearFieldErrors($('audit-filters'));
    const q = new URLSearchParams({ pageSize: '50' });
    if ($('a-action').value) q.set('action', $('a-action').value);
    const actor = $('a-actor').value.trim();
    if (actor) q.set('actor', actor);
    const from = localToISO($('a-from').value);
    const to = localToISO($('a-to').value);
    if (from && to && from >= to) {
      fieldError('a-from', 'From must be before Until.');
      return;
    }
    if (from) q.set('startTime', from);
    if (to) q.set('endTime', to);
    if (audit.pages[audit.page]) q.set('pageToken', audit.pages[audit.page]);
    try {
      const resp = await api('GET', '/v1/audit-events?' + q.toString());
      audit.next = resp.nextPageToken || '';
      const evs = resp.events || [];
      $('audit-rows').replaceChildren(...evs.map((e) => el('tr', {},
        cell('When', 'time', when(e.createTime, '')), cell('Action', '', actionName(e.action)),
        cell('Actor', 'actor', e.actorEmail || e.actorUserId || '—'), cell('Target', '', e.targetId ? el('code', { textContent: e.targetId }) : '—'),
        cell('Address', '', e.clientIp || '—'))));
      $('audit-table').hidden = evs.length === 0;
      $('audit-status').textContent = evs.length ? 'Showing ' + evs.length + ' events on page ' + (audit.page + 1) + '.' : 'No events match these filters.';
      $('audit-prev').disabled = audit.page === 0;
      $('audit-next').disabled = !audit.next;
      $('audit-page').textContent = 'Page ' + (audit.page + 1);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 400 && serverFieldError(err, $('audit-filters')))) fail(err);
    }
  }
  $('audit-filters').addEventListener('submit', (ev) => { ev.preventDefault(); audit.pages = ['']; audit.page = 0; loadAudit(); });
  $('audit-next').addEventListener('click', () => { if (!audit.next) return; audit.pages[audit.page + 1] = audit.next; audit.page++; loadAudit(); });
  $('audit-prev').addEventListener('click', () => { if (audit.page === 0) return; audit.page--; loadAudit(); });

  // --- policy (org admins) -----------------------------------------------------

  const daySecs = 86400;
  function secs(d) { return d ? parseFloat(d) : 0; }

  async function loadPolicy() {
    hideAlert($('policy-error'));
    clearFieldErrors($('policy-form'));
    try {
      policy = (await api('GET', '/v1/org/policy')) || {};
      $('p-scopes').value = (policy.allowedScopes || []).join('\n');
      $('p-max').value = policy.maxTokenLifetime ? String(Math.round(secs(policy.maxTokenLifetime) / daySecs)) : '';
      $('p-default').value = policy.defaultTokenLifetime ? String(Math.round(secs(policy.defaultTokenLifetime) / daySecs)) : '';
      $('p-grace').value = policy.maxRotationGrace ? String(Math.round(secs(policy.maxRotationGrace) / 3600)) : '';
    } catch (err) {
      fail(err);
    }
  }

  function wholeNumber(id, min, what) {
    const v = $(id).value.trim();
    if (!v) return null;
    if (!/^\d+$/.test(v) || Number(v) < min) {
      fieldError(id, what + ' must be a whole number' + (min > 0 ? ' of at least ' + min : '') + '.');
      return undefined;
    }
    return Number(v);
  }

  $('policy-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    hideAlert($('policy-error'));
    clearFieldErrors($('policy-form'));
    const scopes = $('p-scopes').value.split(/[\s,]+/).filter(Boolean);
    const bad = scopes.find((s) => !/^[A-Za-z0-9:._\-/*]{1,128}$/.test(s));
    if (bad !== undefined) fieldError('p-scopes', 'Scopes are letters, digits and : . _ - / *, at most 128 characters; check "' + bad.slice(0, 40) + '".');
    const max = wholeNumber('p-max', 1, 'The longest lifetime');
    const def = wholeNumber('p-default', 1, 'The default lifetime');
    const grace = wholeNumber('p-grace', 0, 'The grace period');
    if (max && def && def > max) fieldError('p-default', 'The default lifetime cannot be longer than the longest lifetime (' + max + ' days).');
    const firstBad = $('policy-form').querySelector('[aria-invalid="true"]');
    if (firstBad) { firstBad.focus(); return; }
    const body = { allowedScopes: scopes };
    // An empty field clears the rule: a zero duration means "no rule".
    body.maxTokenLifetime = (max || 0) * daySecs + 's';
    body.defaultTokenLifetime = (def || 0) * daySecs + 's';
    body.maxRotationGrace = (grace || 0) * 3600 + 's';
    try {
      policy = await busy($('policy-save'), () => api('PATCH', '/v1/org/policy', body));
      fillScopeChoices();
      showNotice('The policy is saved.');
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 400 && serverFieldError(err, $('policy-form')))) fail(err, $('policy-error'));
    }
  });

  // --- users (org admins) ------------------------------------------------------

  const usersPageSize = 25;
  // users is the user list's state (as list is the token list's), and the
  // emails seen, for the org token list's owner filter.
  const users = { pages: [''], page: 0, next: '', byId: new Map() };
  let usersSeq = 0;

  async function loadUsers(focusId) {
    const seq = ++usersSeq;
    const q = new URLSearchParams({ pageSize: String(usersPageSize) });
    const prefix = $('u-email').value.trim();
    if (prefix) q.set('emailPrefix', prefix);
    if (users.pages[users.page]) q.set('pageToken', users.pages[users.page]);
    // aria-busy while the rows are about to change.
    $('user-table').setAttribute('aria-busy', 'true');
    try {
      const resp = await api('GET', '/v1/users?' + q.toString());
      if (seq !== usersSeq) return; // a newer load answers instead
      users.next = resp.nextPageToken || '';
      renderUsers(resp.users || [], prefix);
      if (focusId) focusUser(focusId);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 400 && serverFieldError(err, $('user-filters')))) fail(err);
    } finally {
      if (seq === usersSeq) $('user-table').removeAttribute('aria-busy');
    }
  }

  function renderUsers(shown, prefix) {
    for (const u of shown) users.byId.set(u.id, u);
    $('user-rows').replaceChildren(...shown.map((u) => {
      const self = me && u.id === me.id;
      const items = [['Tokens', 'tokens', '#org-tokens?owner=' + encodeURIComponent(u.id)]];
      if (!self) {
        if (u.disabled) items.push(['Enable', 'enable', (b) => userAction(u, b, ':enable', u.email + ' is enabled again. Their old tokens stay revoked.')]);
        else items.push(['Disable…', 'disable', (b) => askUser('user-disable', u, b)]);
        if (u.admin) items.push(['Remove admin', 'demote', (b) => setAdmin(u, b, false)]);
        else items.push(['Make admin', 'promote', (b) => setAdmin(u, b, true)]);
      }
      items.push(['Reset password…', 'reset', (b) => askUser('user-reset', u, b)]);
      if (!self) items.push(['Delete…', 'revoke delete', (b) => askUser('user-delete', u, b)]);
      const tr = el('tr', { className: u.disabled ? 'inactive' : '' },
        cell('Email', 'name', el('span', { className: 'tname', textContent: u.email }), self ? el('span', { className: 'opt', textContent: ' (you)' }) : null),
        cell('Role', '', u.admin ? 'Admin' : 'Member'),
        cell('Status', '', el('span', { className: 'badge ' + (u.disabled ? 'revoked' : 'active'), textContent: u.disabled ? 'Disabled' : 'Active' })),
        cell('Joined', 'time', when(u.createTime, '—')),
        cell('', 'act', actionsMenu('user-menu-' + u.id, 'Actions for ' + u.email, items)));
      tr.dataset.userId = u.id;
      return tr;
    }));
    $('user-table').hidden = shown.length === 0;
    $('users-status').textContent = shown.length
      ? 'Showing ' + shown.length + (shown.length === 1 ? ' user' : ' users') + ' on page ' + (users.page + 1) + '.'
      : (prefix ? 'No user\'s email starts with "' + prefix + '".' : 'No users.');
    $('users-prev').disabled = users.page === 0;
    $('users-next').disabled = !users.next;
    $('users-page').textContent = 'Page ' + (users.page + 1);
  }

  function focusUser(id) {
    const b = document.querySelector('tr[data-user-id="' + CSS.escape(id) + '"] .menu-button');
    if (b) b.focus(); else $('u-email').focus();
  }

  let usersTimer = 0;
  $('u-email').addEventListener('input', () => {
    clearTimeout(usersTimer);
    usersTimer = setTimeout(() => { users.pages = ['']; users.page = 0; loadUsers(); }, 250);
  });
  $('user-filters').addEventListener('submit', (ev) => { ev.preventDefault(); users.pages = ['']; users.page = 0; loadUsers(); });
  $('users-next').addEventListener('click', () => { if (!users.next) return; users.pages[users.page + 1] = users.next; users.page++; loadUsers(); });
  $('users-prev').addEventListener('click', () => { if (users.page === 0) return; users.page--; loadUsers(); });

  // userAction runs a one-click change (enable) and says what it did.
  async function userAction(u, button, verb, done) {
    try {
      await busy(button, () => api('POST', '/v1/users/' + encodeURIComponent(u.id) + verb, {}));
      showNotice(done);
      await loadUsers(u.id);
    } catch (err) {
      fail(err);
    }
  }

  async function setAdmin(u, button, admin) {
    try {
      await busy(button, () => api('PUT', '/v1/users/' + encodeURIComponent(u.id) + '/admin', { admin }));
      showNotice(admin ? u.email + ' is now an organization admin.' : u.email + ' is no longer an organization admin.');
      await loadUsers(u.id);
    } catch (err) {
      fail(err);
    }
  }

  // askUser opens a confirmation (disable, reset, delete) naming the user.
  let userTarget = null;
  function askUser(kind, u, opener) {
    userTarget = u;
    hideAlert($(kind + '-error'));
    $(kind + '-email').textContent = u.email;
    openDialog($(kind + '-dialog'), () => focusUser(u.id), opener);
  }

  $('user-disable-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const u = userTarget;
    if (!u) return;
    try {
      await busy($('user-disable-confirm'), () => api('POST', '/v1/users/' + encodeURIComponent(u.id) + ':disable', {}));
      $('user-disable-dialog').close();
      showNotice(u.email + ' is disabled: their sessions ended and their tokens are revoked.');
      await loadUsers(u.id);
    } catch (err) {
      fail(err, $('user-disable-error'));
    }
  });

  $('user-delete-confirm').addEventListener('click', async () => {
    const u = userTarget;
    if (!u) return;
    try {
      const resp = await busy($('user-delete-confirm'), () => api('DELETE', '/v1/users/' + encodeURIComponent(u.id)));
      $('user-delete-dialog').close();
      const n = (resp && resp.revokedTokens) || 0;
      showNotice(u.email + ' is deleted; ' + n + (n === 1 ? ' token was' : ' tokens were') + ' revoked.');
      users.byId.delete(u.id);
      await loadUsers();
      $('u-email').focus();
    } catch (err) {
      fail(err, $('user-delete-error'));
    }
  });

  const resetFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  $('user-reset-confirm').addEventListener('click', async () => {
    const u = userTarget;
    if (!u) return;
    try {
      const resp = await busy($('user-reset-confirm'), () => api('POST', '/v1/users/' + encodeURIComponent(u.id) + ':reset-password', {}));
      const opener = (returnTo.get($('user-reset-dialog')) || {}).opener;
      $('user-reset-dialog').close();
      const until = resp.expireTime ? ' It works once, until ' + resetFmt.format(new Date(resp.expireTime)) + '.' : ' It works once.';
      reveal({ name: u.email, id: u.id }, resp.resetCode, 'Password reset code', opener, {
        label: 'Reset code for', file: 'keymint-reset-code-',
        extra: 'Give this code to ' + u.email + ' yourself: with it and their email they set a new password (POST /v1/user/password:reset).' + until,
        after: () => loadUsers(u.id),
      });
    } catch (err) {
      fail(err, $('user-reset-error'));
    }
  });

  // --- service accounts (org admins) ----------------------------------------------

  const accounts = { pages: [''], page: 0, next: '' };
  let accountsSeq = 0;
  const saNamePattern = /^[a-z][a-z0-9-]{0,63}$/;

  async function loadServiceAccounts(focusId) {
    const q = new URLSearchParams({ pageSize: '25' });
    if (accounts.pages[accounts.page]) q.set('pageToken', accounts.pages[accounts.page]);
    const seq = ++accountsSeq;
    $('sa-table').setAttribute('aria-busy', 'true');
    try {
      const resp = await api('GET', '/v1/service-accounts?' + q.toString());
      if (seq !== accountsSeq) return;
      accounts.next = resp.nextPageToken || '';
      renderServiceAccounts(resp.serviceAccounts || []);
      if (focusId) focusAccount(focusId);
    } catch (err) {
      fail(err);
    } finally {
      if (seq === accountsSeq) $('sa-table').removeAttribute('aria-busy');
    }
  }

  function scopeList(scopes, none) {
    return (scopes || []).length ? scopes.map((s) => el('code', { className: 'scope', textContent: s })) : [el('span', { className: 'none', textContent: none })];
  }

  function renderServiceAccounts(shown) {
    $('sa-rows').replaceChildren(...shown.map((a) => {
      const items = [
        ['Details', 'details', (b) => showAccount(a, b)],
        ['Generate token', 'mint', (b) => showAccount(a, b, true)],
        ['Delete…', 'revoke delete', (b) => askDeleteAccount(a, b)],
      ];
      const tr = el('tr', {},
        cell('Name', 'name', el('div', { className: 'name-box' }, el('span', { className: 'tname', textContent: a.name }),
          a.description ? el('span', { className: 'desc', textContent: a.description, title: a.description }) : null)),
        cell('Scopes', 'scopes', el('span', {}, ...scopeList(a.scopes, 'any of the org\'s'))),
        cell('Created', 'time', when(a.createTime, '—')),
        cell('', 'act', actionsMenu('sa-menu-' + a.id, 'Actions for ' + a.name, items)));
      tr.dataset.accountId = a.id;
      return tr;
    }));
    $('sa-empty').hidden = shown.length > 0 || accounts.page > 0;
    $('sa-table').hidden = shown.length === 0;
    $('sa-status').textContent = shown.length ? 'Showing ' + shown.length + (shown.length === 1 ? ' service account' : ' service accounts') + ' on page ' + (accounts.page + 1) + '.' : '';
    $('sa-prev').disabled = accounts.page === 0;
    $('sa-next').disabled = !accounts.next;
    $('sa-page').textContent = 'Page ' + (accounts.page + 1);
  }

  function focusAccount(id) {
    const b = document.querySelector('tr[data-account-id="' + CSS.escape(id) + '"] .menu-button');
    if (b) b.focus(); else $('sa-new').focus();
  }

  $('sa-next').addEventListener('click', () => { if (!accounts.next) return; accounts.pages[accounts.page + 1] = accounts.next; accounts.page++; loadServiceAccounts(); });
  $('sa-prev').addEventListener('click', () => { if (accounts.page === 0) return; accounts.page--; loadServiceAccounts(); });

  // Create: the scopes are picked from the org's allowed ones (free text
  // when the org allows any).
  $('sa-new').addEventListener('click', () => {
    $('sa-create-form').reset();
    hideAlert($('sa-create-error'));
    clearFieldErrors($('sa-create-form'));
    const scopes = policy.allowedScopes || [];
    $('sa-scope-options').replaceChildren(...scopes.map((s, i) => el('label', { className: 'check' },
      el('input', { type: 'checkbox', value: s, id: 'sa-scope-' + i }), ' ', el('code', { textContent: s }))));
    $('sa-scope-picker').hidden = scopes.length === 0;
    $('sa-scopes-free').hidden = scopes.length > 0;
    openDialog($('sa-create-dialog'), $('sa-new'));
    $('sa-name').focus();
  });

  $('sa-create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = $('sa-create-form');
    hideAlert($('sa-create-error'));
    clearFieldErrors(form);
    const name = $('sa-name').value.trim();
    if (!name) fieldError('sa-name', 'Give the service account a name.');
    else if (!saNamePattern.test(name)) fieldError('sa-name', 'The name is 1 to 64 lower-case letters, digits and -, starting with a letter.');
    const scopes = $('sa-scope-picker').hidden
      ? $('sa-scopes').value.split(/[\s,]+/).filter(Boolean)
      : [...$('sa-scope-options').querySelectorAll('input:checked')].map((i) => i.value);
    const firstBad = form.querySelector('[aria-invalid="true"]');
    if (firstBad) { firstBad.focus(); return; }
    try {
      const a = await busy($('sa-create-submit'), () => api('POST', '/v1/service-accounts', { name, description: $('sa-description').value.trim(), scopes }));
      // Focus goes to the new row, not back to "New service account" (the
      // close event may come after the list is drawn).
      returnTo.delete($('sa-create-dialog'));
      $('sa-create-dialog').close();
      showNotice('Service account ' + a.name + ' is created. Generate a token for it from its actions.');
      accounts.pages = [''];
      accounts.page = 0;
      await loadServiceAccounts(a.id);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        fieldError('sa-name', 'Your organization has a service account named ' + name + ' already.');
        $('sa-name').focus();
      } else if (err instanceof ApiError && err.status === 400 && serverFieldError(err, form)) {
        const bad = form.querySelector('[aria-invalid="true"]');
        if (bad) bad.focus();
      } else {
        fail(err, $('sa-create-error'));
      }
    }
  });

  // Detail: the account's fields and its active tokens, each with rotate
  // and revoke; "Generate token" mints one for it.
  let shownAccount = null;
  let accountTokensSeq = 0;

  async function showAccount(a, opener, mint) {
    shownAccount = a;
    $('sa-detail-title').textContent = a.name;
    hideAlert($('sa-detail-error'));
    const creator = users.byId.get(a.createdBy);
    $('sa-detail-fields').replaceChildren(...[
      ['Description', a.description || el('span', { className: 'none', textContent: 'none' })],
      ['Scopes', el('span', {}, ...scopeList(a.scopes, 'any of the org\'s'))],
      ['Created', when(a.createTime, '—')],
      ['Created by', creator ? creator.email : (a.createdBy || '—')],
      ['Id', el('code', { textContent: a.id })],
    ].flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', {}, v)]));
    $('sa-token-rows').replaceChildren();
    openDialog($('sa-detail-dialog'), () => focusAccount(a.id), opener);
    await loadAccountTokens();
    if (mint) openGenerate($('sa-mint'), { account: a, after: () => loadAccountTokens() });
  }

  async function loadAccountTokens(focusId) {
    const a = shownAccount;
    if (!a) return;
    const seq = ++accountTokensSeq;
    $('sa-token-table').setAttribute('aria-busy', 'true');
    try {
      const resp = await api('GET', '/v1/service-accounts/' + encodeURIComponent(a.id) + '/tokens?pageSize=100');
      if (shownAccount !== a || seq !== accountTokensSeq) return;
      const toks = resp.tokens || [];
      const after = (id) => loadAccountTokens(id);
      $('sa-token-rows').replaceChildren(...toks.map((t) => {
        const [cls, label] = status(t);
        const tr = el('tr', {},
          cell('Name', 'name', el('div', { className: 'name-box' }, el('span', { className: 'tname', textContent: t.name }), ' ',
            el('code', { className: 'hint', textContent: t.hint + '…' }))),
          cell('Scopes', 'scopes', el('span', {}, ...scopeList(t.scopes, 'none'))),
          cell('Expires', 'time', when(t.expireTime, 'never')),
          cell('Status', '', el('span', { className: 'badge ' + cls, textContent: label })),
          cell('', 'act', rowMenu(t, t.status === 'TOKEN_STATUS_ACTIVE', after)));
        tr.dataset.tokenId = t.id;
        return tr;
      }));
      $('sa-tokens-empty').hidden = toks.length > 0;
      $('sa-token-table').hidden = toks.length === 0;
      // Focus goes to the row acted on, or (a revoked token left the list)
      // to "Generate token".
      if (focusId && !document.querySelector('#sa-token-rows tr[data-token-id="' + CSS.escape(focusId) + '"]')) $('sa-mint').focus();
      else if (focusId) focusRow(focusId);
    } catch (err) {
      fail(err, $('sa-detail-error'));
    } finally {
      if (seq === accountTokensSeq) $('sa-token-table').removeAttribute('aria-busy');
    }
  }

  $('sa-mint').addEventListener('click', () => {
    if (shownAccount) openGenerate($('sa-mint'), { account: shownAccount, after: () => loadAccountTokens() });
  });
  $('sa-detail-dialog').addEventListener('close', () => { shownAccount = null; });

  // Delete, after a confirmation that names it and says its tokens go.
  let deletingAccount = null;
  function askDeleteAccount(a, opener) {
    deletingAccount = a;
    hideAlert($('sa-delete-error'));
    $('sa-delete-name').textContent = a.name;
    openDialog($('sa-delete-dialog'), () => focusAccount(a.id), opener);
  }

  $('sa-delete-confirm').addEventListener('click', async () => {
    const a = deletingAccount;
    if (!a) return;
    try {
      const resp = await busy($('sa-delete-confirm'), () => api('DELETE', '/v1/service-accounts/' + encodeURIComponent(a.id)));
      deletingAccount = null;
      $('sa-delete-dialog').close();
      const n = (resp && resp.revokedTokens) || 0;
      showNotice('Service account ' + a.name + ' is deleted; ' + n + (n === 1 ? ' token was' : ' tokens were') + ' revoked.');
      await loadServiceAccounts();
      $('sa-new').focus();
    } catch (err) {
      fail(err, $('sa-delete-error'));
    }
  });

  // --- dialogs ------------------------------------------------------------

  // Where focus goes when a dialog closes: the control that opened it (or,
  // when the list was drawn again meanwhile, its row's actions button).
  const returnTo = new Map();

  function openDialog(d, back, opener) {
    returnTo.set(d, { back, opener: opener || (typeof back === 'function' ? null : back) || document.activeElement });
    d.showModal();
  }

  function closeAllDialogs() {
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
  }

  for (const d of document.querySelectorAll('dialog')) {
    d.addEventListener('close', () => {
      const r = returnTo.get(d);
      returnTo.delete(d);
      if (!r || !signedIn) return;
      if (r.opener && document.contains(r.opener) && !r.opener.closest('[hidden]')) r.opener.focus();
      else if (typeof r.back === 'function') r.back();
    });
    for (const b of d.querySelectorAll('[data-close]')) {
      b.addEventListener('click', () => d.close());
    }
  }

  // Generate.
  // genFor is the service account the generate dialog mints for (null:
  // the signed-in user), with what to do once its secret was shown.
  let genFor = null;

  function openGenerate(opener, sa) {
    genFor = sa || null;
    $('generate-form').reset();
    hideAlert($('generate-error'));
    clearFieldErrors($('generate-form'));
    $('generate-title').textContent = sa ? 'Generate a token for ' + sa.account.name : 'Generate a token';
    fillScopeChoices(sa ? sa.account.scopes : undefined);
    expiryChanged();
    openDialog($('generate-dialog'), opener);
    $('gen-name').focus();
  }
  $('generate').addEventListener('click', () => openGenerate($('generate')));

  const maxPlainDays = 90;

  // expiryChanged shows the date input for a custom expiry, and a warning
  // for a lifetime past 90 days (or none at all).
  function expiryChanged() {
    const v = $('gen-expiry').value;
    $('gen-expiry-custom').hidden = v !== 'custom';
    let days = v === '' ? Infinity : Number(v) / 86400;
    if (v === 'custom') {
      const d = $('gen-expiry-date').valueAsDate;
      days = d ? (d.getTime() - Date.now()) / 86400000 : 0;
    }
    const w = $('gen-expiry-warning');
    w.hidden = days <= maxPlainDays;
    w.textContent = days === Infinity
      ? 'A token that never expires stays usable until someone revokes it. Prefer an expiry.'
      : 'This token lives longer than 90 days. Long-lived tokens are riskier if leaked; prefer a shorter expiry and rotate.';
  }
  $('gen-expiry').addEventListener('change', () => {
    expiryChanged();
    if ($('gen-expiry').value === 'custom') $('gen-expiry-date').focus();
  });
  $('gen-expiry-date').addEventListener('input', expiryChanged);

  function chosenScopes() {
    if (!$('gen-scope-picker').hidden) {
      return [...$('gen-scope-options').querySelectorAll('input:checked')].map((i) => i.value);
    }
    return $('gen-scopes').value.split(/[\s,]+/).filter(Boolean);
  }

  $('generate-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = $('generate-form');
    const errBox = $('generate-error');
    hideAlert(errBox);
    clearFieldErrors(form);
    const name = $('gen-name').value.trim();
    if (!name) fieldError('gen-name', 'Give the token a name, so you can tell it apart later.');
    const body = { name, description: $('gen-description').value.trim(), scopes: chosenScopes() };
    const expiry = $('gen-expiry').value;
    if (expiry === 'custom') {
      const d = $('gen-expiry-date').valueAsDate;
      if (!d) fieldError('gen-expiry', 'Pick the day the token expires.');
      else if (d.getTime() <= Date.now()) fieldError('gen-expiry', 'The expiry date must be in the future.');
      else body.expireTime = d.toISOString();
    } else if (expiry) {
      body.ttl = expiry + 's';
    }
    const cidrs = $('gen-cidrs').value.split(/[\s,]+/).filter(Boolean);
    if (cidrs.length) body.allowedCidrs = cidrs;
    const uses = $('gen-uses').value.trim();
    if (uses && !/^[1-9]\d*$/.test(uses)) fieldError('gen-uses', 'Maximum uses must be a whole number of at least 1, or empty for unlimited.');
    else if (uses) body.remainingUses = uses;
    const rate = $('gen-rate').value.trim();
    if (rate && !/^[1-9]\d*$/.test(rate)) fieldError('gen-rate', 'The rate limit must be a whole number of at least 1, or empty for none.');
    else if (rate) body.rateLimit = { limit: rate, period: $('gen-rate-period').value + 's' };
    const firstBad = form.querySelector('[aria-invalid="true"]');
    if (firstBad) {
      if (firstBad.closest('details')) firstBad.closest('details').open = true;
      firstBad.focus();
      return;
    }
    const sa = genFor;
    try {
      const path = sa ? '/v1/service-accounts/' + encodeURIComponent(sa.account.id) + '/tokens' : '/v1/tokens';
      const resp = await busy($('generate-submit'), () => api('POST', path, body));
      $('generate-dialog').close();
      if (sa) reveal(resp.token, resp.secret, 'New token of ' + sa.account.name, $('sa-mint'), { after: sa.after });
      else reveal(resp.token, resp.secret, '', $('generate'));
    } catch (err) {
      if (err instanceof ApiError && err.status === 400 && serverFieldError(err, form)) {
        const bad = form.querySelector('[aria-invalid="true"]');
        if (bad && bad.closest('details')) bad.closest('details').open = true;
        if (bad) bad.focus();
        return;
      }
      fail(err, errBox);
    }
  });

  // Reveal: the one place a secret is ever shown.
  let revealed = null;

  // reveal shows a secret once. opts: label (what it is: "Secret of"),
  // extra (a line above it), file (the download's name prefix), after (run
  // once it closes, instead of reloading the token list).
  function reveal(token, secret, title, opener, opts) {
    const o = opts || {};
    revealed = { name: token.name, secret, id: token.id, file: o.file || 'keymint-token-', after: o.after || null };
    $('reveal-title').textContent = title || 'Your new token';
    $('reveal-label').textContent = o.label || 'Secret of';
    $('reveal-extra').textContent = o.extra || '';
    $('reveal-extra').hidden = !o.extra;
    $('reveal-name').textContent = token.name;
    $('reveal-secret').value = secret;
    $('copy-status').textContent = '';
    $('reveal-ask').hidden = true;
    $('reveal-actions').hidden = false;
    openDialog($('reveal-dialog'), () => focusRow(token.id), opener);
    $('reveal-secret').focus();
    $('reveal-secret').select();
  }

  // forgetSecret drops the secret from the page: the dialog was the only
  // place it was. It runs as the dialog closes, by any means.
  function forgetSecret() {
    if (revealed && revealed.after) revealAfter = revealed.after;
    revealed = null;
    $('reveal-secret').value = '';
    $('copy-status').textContent = '';
  }
  // Escape asks first: the secret cannot be shown again.
  $('reveal-dialog').addEventListener('cancel', (ev) => {
    ev.preventDefault();
    $('reveal-ask').hidden = false;
    $('reveal-actions').hidden = true;
    $('reveal-back').focus();
  });
  $('reveal-back').addEventListener('click', () => {
    $('reveal-ask').hidden = true;
    $('reveal-actions').hidden = false;
    $('reveal-secret').focus();
  });
  $('reveal-close-anyway').addEventListener('click', () => {
    forgetSecret();
    $('reveal-dialog').close();
  });
  let revealAfter = null;
  $('reveal-dialog').addEventListener('close', () => {
    forgetSecret();
    const after = revealAfter;
    revealAfter = null;
    if (signedIn) (after || loadTokens)();
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
    const a = el('a', { href: url, download: revealed.file + safe + '.txt' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $('copy-status').textContent = 'Downloaded ' + a.download + '.';
  });

  // Revoke, after a confirmation.
  let revoking = null;
  let revokeAfter = null;

  function askRevoke(token, opener, after) {
    revoking = token;
    revokeAfter = after || null;
    $('revoke-name').textContent = token.name;
    $('revoke-hint').textContent = token.hint + '…';
    openDialog($('revoke-dialog'), () => focusRow(token.id), opener);
  }

  $('revoke-confirm').addEventListener('click', async () => {
    const t = revoking;
    if (!t) return;
    try {
      await busy($('revoke-confirm'), () => api('DELETE', '/v1/tokens/' + encodeURIComponent(t.id)));
      revoking = null;
      $('revoke-dialog').close();
      showNotice('Token "' + t.name + '" (' + t.hint + '…) is revoked.');
      if (revokeAfter) await revokeAfter(t.id); else await loadTokens(t.id);
    } catch (err) {
      $('revoke-dialog').close();
      fail(err);
    }
  });

  // Rotate: a new secret, revealed once; the old one lives for the grace
  // period chosen.
  let rotating = null;
  let rotateAfter = null;

  function askRotate(token, opener, after) {
    rotating = token;
    rotateAfter = after || null;
    $('rotate-form').reset();
    hideAlert($('rotate-error'));
    $('rotate-name').textContent = token.name;
    $('rotate-hint').textContent = token.hint + '…';
    openDialog($('rotate-dialog'), () => focusRow(token.id), opener);
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
      reveal(resp.token, resp.secret, rotateAfter ? 'Rotated token of ' + $('sa-detail-title').textContent : 'Your rotated token', null,
        rotateAfter ? { after: () => rotateAfter(resp.token.id) } : undefined);
    } catch (err) {
      fail(err, errBox);
    }
  });

  // Sign in and out.
  // A throttled sign-in counts down the server's Retry-After.
  let countdown = 0;
  function throttled(seconds) {
    clearInterval(countdown);
    let left = seconds;
    const tick = () => {
      if (left <= 0) {
        clearInterval(countdown);
        $('signin-submit').disabled = false;
        showAlert('You can try signing in again now.');
        return;
      }
      $('signin-submit').disabled = true;
      const wait = left < 120 ? left + (left === 1 ? ' second' : ' seconds') : Math.floor(left / 60) + ' min ' + (left % 60) + ' s';
      showAlert('Too many sign-in attempts. Try again in ' + wait + '.');
      left--;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

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
      const back = resume && user.email === lastEmail ? resume : null;
      resume = null;
      await showTokens(user);
      if (back) {
        // The form the session ended in, as it was left.
        openDialog(back, $('main'));
      } else {
        $('main').focus();
      }
    } catch (err) {
      $('signin-password').value = '';
      if (err instanceof ApiError && err.status === 401) {
        showAlert('That email and password do not match an account.');
      } else if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
        throttled(err.retryAfter);
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
    resume = null;
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
