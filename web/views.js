// The sections: pools (policy and charts), assignments, import, providers,
// API keys, workspaces. Sessions live in sessions.js. Each view is an async
// function (element, app) that draws itself from the API; what the key's
// role may not do is not drawn at all.
import { call, all, roleName, key } from './api.js';
import { h, fill, table, field, shortId, when, ago } from './dom.js';
import { minuteChart, stateSplit } from './charts.js';
import { sessions, endpoint, stateOf, pager, pools, poolPicker } from './sessions.js';

const ws = (app) => ({ workspaceId: app.ws });

// ---------------------------------------------------------------- pools

function policyForm(app, pool, done) {
  const r = pool.rotation || {};
  const num = (name, value, min, hint) => field(name, h('input', { type: 'number', min, step: 1, value: value ?? 0, name: name, required: true }), hint);
  const interval = num('Rotate after (seconds)', r.intervalSeconds, 0, '0 = never rotate on time');
  const maxAcc = num('Max accounts per session', pool.maxAccountsPerSession, 0, '0 = unlimited');
  const thr = num('Failure threshold', pool.failureThreshold, 1, 'consecutive failures that start a cooldown');
  const cool = num('Cooldown (seconds)', pool.cooldownSeconds, 0);
  const onUnhealthy = h('input', { type: 'checkbox', checked: r.onUnhealthy !== false, id: `unh-${pool.id}` });
  const val = (f) => Number(f.querySelector('input').value);
  const form = h('form.policy', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await call('UpdatePool', {
          ...ws(app),
          poolId: pool.id,
          rotation: { intervalSeconds: val(interval), onUnhealthy: onUnhealthy.checked },
          maxAccountsPerSession: val(maxAcc),
          failureThreshold: val(thr),
          cooldownSeconds: val(cool),
          expectedVersion: pool.version,
        });
        app.say(`Saved the policy of ${pool.name}.`);
        done();
      } catch (e) { app.fail(e); }
    },
  }, h('fieldset', {}, h('legend', {}, `Rotation policy of ${pool.name}`),
    h('div.grid', {}, interval, maxAcc, thr, cool),
    h('label.check', { for: onUnhealthy.id }, onUnhealthy, ' Move accounts off unhealthy sessions'),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Save policy'), h('button.secondary', { type: 'button', onclick: done }, 'Cancel'))));
  return form;
}

function policyText(p) {
  const r = p.rotation || {};
  const every = r.intervalSeconds ? `every ${r.intervalSeconds} s` : 'never on time';
  return `rotate ${every}; ${r.onUnhealthy === false ? 'stay' : 'move'} when unhealthy; ` +
    `${p.failureThreshold} failures → ${p.cooldownSeconds} s cooldown; ` +
    `${p.maxAccountsPerSession ? `≤ ${p.maxAccountsPerSession} accounts/session` : 'no account cap'}`;
}

async function poolStats(app, pool, box) {
  const st = await call('GetPoolStats', { ...ws(app), poolId: pool.id });
  const m = st.minutes || [];
  fill(box,
    minuteChart('Resolves / min', m, 'resolves', 'c-resolves'),
    minuteChart('Moves / min', m, 'moves', 'c-moves'),
    minuteChart('Failures / min', m, 'failures', 'c-failures'),
    stateSplit(st.sessions));
}

export async function poolsView(el, app) {
  const list = await pools(app);
  const { sel, current } = poolPicker(list, () => app.render());
  const pool = list.find((p) => p.id === current);
  const charts = h('div.charts', { 'aria-live': 'off' });
  const editBox = h('div');
  const detail = pool ? h('section.card', {},
    h('div.row', {}, h('h2', {}, pool.name), list.length > 1 ? field('Pool', sel) : null,
      h('button.secondary', { type: 'button', onclick: () => poolStats(app, pool, charts).catch(app.fail) }, 'Refresh')),
    h('p.muted', {}, policyText(pool)),
    charts,
    app.can.edit ? h('div.actions', {}, h('button', { type: 'button', id: 'edit-policy', onclick: () => fill(editBox, policyForm(app, pool, () => app.render())) }, 'Edit policy')) : null,
    editBox) : null;
  const createForm = app.can.edit ? newPoolForm(app) : null;
  fill(el,
    detail,
    h('section.card', {}, h('h2', {}, 'Pools'),
      table([
        { label: 'Name', cell: (p) => p.name },
        { label: 'Policy', cell: (p) => policyText(p) },
        { label: 'Version', cls: 'num', cell: (p) => p.version },
        { label: 'Updated', cell: (p) => when(p.updatedAt) },
        ...(app.can.edit ? [{ label: 'Actions', cls: 'act-col', cell: (p) => h('button.danger', { type: 'button', onclick: async () => {
          if (!confirm(`Delete the pool ${p.name}? Only a pool without live sessions can be deleted.`)) return;
          try {
            await call('DeletePool', { ...ws(app), poolId: p.id });
            app.say(`Deleted the pool ${p.name}.`);
            app.render();
          } catch (e) { app.fail(e); }
        } }, 'Delete') }] : []),
      ], list, 'No pools yet.'),
      createForm));
  clearInterval(app.timer);
  if (!pool) return;
  await poolStats(app, pool, charts);
  // Keep the charts moving while the page is open on them.
  app.timer = setInterval(() => {
    if (!document.body.contains(charts)) return clearInterval(app.timer);
    if (!document.hidden) poolStats(app, pool, charts).catch(() => {});
  }, 30000);
}

function newPoolForm(app) {
  const name = h('input', { name: 'name', required: true, maxlength: 200, placeholder: 'steam-bots' });
  return h('form.inline', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await call('CreatePool', { ...ws(app), name: name.value.trim() });
        sessionStorage.setItem('proxyplane.pool', r.pool.id);
        app.say(`Created pool ${r.pool.name}.`);
        app.render();
      } catch (e) { app.fail(e); }
    },
  }, field('New pool', name), h('button', { type: 'submit' }, 'Create pool'));
}

// ---------------------------------------------------------- assignments

async function sessionChoices(app, poolId) {
  const ids = (await call('ListSessions', { ...ws(app), poolId, pageSize: 200 })).sessionIds || [];
  if (!ids.length) return [];
  return (await call('BatchGetSessions', { ...ws(app), sessionIds: ids })).sessions || [];
}

export async function assignmentsView(el, app) {
  const list = await pools(app);
  if (!list.length) return fill(el, h('section.card', {}, h('p', {}, 'No pools yet.')));
  const { sel, current } = poolPicker(list, () => app.render());
  const body = h('div');
  const filter = h('input', { type: 'search', placeholder: 'account name', id: 'account-filter' });
  const state = { cursor: '', stack: [] };
  const choices = app.can.edit ? await sessionChoices(app, current) : [];
  const names = new Map();
  async function load() {
    const r = await call('ListAssignments', { ...ws(app), poolId: current, accountName: filter.value.trim() || undefined, pageSize: 50, cursor: state.cursor });
    const rows = r.assignments || [];
    const need = [...new Set(rows.map((a) => a.sessionId).filter((id) => !names.has(id)))];
    if (need.length) {
      const got = await call('BatchGetSessions', { ...ws(app), sessionIds: need }).catch(() => ({ sessions: [] }));
      for (const s of got.sessions || []) names.set(s.id, endpoint(s));
    }
    fill(body, table(columns(app, choices, names, load), rows, 'No assignments in this pool.'),
      pager(state, r.nextCursor, load));
  }
  fill(el, h('section.card', {},
    h('div.row', {}, h('h2', {}, 'Assignments'), field('Pool', sel),
      h('form.inline.search', { role: 'search', onsubmit: (e) => { e.preventDefault(); state.cursor = ''; state.stack = []; load().catch(app.fail); } },
        field('Account', filter), h('button.secondary', { type: 'submit' }, 'Find'))),
    body,
    app.can.edit ? newAssignmentForm(app, current, load) : null));
  await load();
}

function columns(app, choices, names, reload) {
  const act = (label, f, cls = 'secondary') => h(`button.${cls}`, { type: 'button', onclick: async () => {
    try { await f(); await reload(); } catch (e) { app.fail(e); }
  } }, label);
  const cols = [
    { label: 'Account', cell: (a) => a.accountName },
    { label: 'Session', cell: (a) => h('span', { title: a.sessionId }, names.get(a.sessionId) || shortId(a.sessionId)) },
    { label: 'Pinned', cell: (a) => (a.pinned ? h('span.badge.pin', {}, 'pinned') : 'no') },
    { label: 'Bound since', cell: (a) => h('time', { datetime: a.boundAt, title: when(a.boundAt) }, ago(a.boundAt)) },
    { label: 'Rotations', cls: 'num', cell: (a) => a.rotations || 0 },
  ];
  if (!app.can.edit) return cols;
  cols.push({ label: 'Actions', cls: 'act-col', cell: (a) => {
    const base = { ...ws(app), assignmentId: a.id };
    // A select and a button: arrow keys on a focused select change its
    // value, so moving on "change" would move the account by keyboard
    // before the user chose.
    const move = h('select', { 'aria-label': `Session to move ${a.accountName} to` },
      h('option', { value: '' }, 'Move to…'),
      choices.filter((s) => s.id !== a.sessionId).map((s) => h('option', { value: s.id }, `${endpoint(s)} (${stateOf(s)}, ${s.assignmentCount || 0} accounts)`)));
    const moveBtn = act('Move', async () => {
      if (!move.value) throw new Error(`Choose the session to move ${a.accountName} to first.`);
      await call('UpdateAssignment', { ...base, sessionId: move.value });
      app.say(`Moved ${a.accountName}.`);
    });
    return h('div.acts', {},
      a.pinned
        ? act('Unpin', () => call('UpdateAssignment', { ...base, pinned: false }).then(() => app.say(`Unpinned ${a.accountName}.`)))
        : act('Pin', () => call('UpdateAssignment', { ...base, pinned: true }).then(() => app.say(`Pinned ${a.accountName}.`))),
      a.pinned ? null : act('Rebind', () => call('RebindAssignment', base).then(() => app.say(`Rebound ${a.accountName} to a fresh session.`))),
      move,
      moveBtn,
      act('Delete', async () => {
        if (!confirm(`Delete the assignment of ${a.accountName}?`)) return;
        await call('DeleteAssignment', base);
        app.say(`Deleted the assignment of ${a.accountName}.`);
      }, 'danger'));
  } });
  return cols;
}

function newAssignmentForm(app, poolId, reload) {
  const name = h('input', { name: 'account', required: true, maxlength: 128, placeholder: 'bot-001' });
  const pin = h('input', { type: 'checkbox', id: 'new-pinned' });
  return h('form.inline', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await call('CreateAssignment', { ...ws(app), poolId, accountName: name.value.trim(), pinned: pin.checked });
        app.say(`Assigned ${r.assignment.accountName}.`);
        name.value = '';
        await reload();
      } catch (e) { app.fail(e); }
    },
  }, field('New assignment', name), h('label.check', { for: pin.id }, pin, ' pinned'), h('button', { type: 'submit' }, 'Assign'));
}

// --------------------------------------------------------------- import

/** FNV-1a 64 over the endpoint and login, so the same line imports once. */
function tokenOf(scheme, host, port, user) {
  let x = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(`${scheme}\0${host}\0${port}\0${user}`)) {
    x ^= BigInt(b);
    x = (x * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return `web-${x.toString(16).padStart(16, '0')}`;
}

/** host:port[:user:pass] per line, optionally with a scheme:// in front. */
export function parseList(text, defaultScheme) {
  const items = [];
  const errors = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    let scheme = defaultScheme;
    let rest = line;
    const m = /^([a-z0-9]+):\/\/(.*)$/i.exec(line);
    if (m) { scheme = m[1].toLowerCase(); rest = m[2]; }
    const parts = rest.split(':');
    if (parts.length !== 2 && parts.length < 4) {
      errors.push(`line ${i + 1}: expected host:port:user:pass`);
      return;
    }
    const [host, portText, user = '', ...pass] = parts;
    const port = Number(portText);
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
      errors.push(`line ${i + 1}: the port must be a number from 1 to 65535`);
      return;
    }
    items.push({ line: i + 1, spec: { token: tokenOf(scheme, host, port, user), scheme, host, port, username: user, password: pass.join(':') } });
  });
  return { items, errors };
}

export async function importView(el, app) {
  const [list, providers] = await Promise.all([pools(app), all('ListProviders', ws(app), 'providers')]);
  if (!list.length || !providers.length) {
    return fill(el, h('section.card', {}, h('h2', {}, 'Import'),
      h('p', {}, 'An import needs a pool and a provider in this workspace (a GENERIC provider does for a bought list).')));
  }
  const { sel } = poolPicker(list, () => {});
  const prov = h('select', { id: 'provider' }, providers.map((p) => h('option', { value: p.id }, `${p.name} (${p.type.replace('PROVIDER_TYPE_', '')})`)));
  const scheme = h('select', { id: 'scheme' }, ['http', 'https', 'socks5', 'socks5h', 'socks4'].map((x) => h('option', { value: x }, x)));
  const text = h('textarea', { id: 'proxy-list', rows: 10, spellcheck: 'false', autocomplete: 'off', placeholder: '203.0.113.7:8080:user:pass\n203.0.113.8:8080:user:pass' });
  const out = h('div', { id: 'import-result' });
  const BATCH = 1000;
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const { items, errors } = parseList(text.value, scheme.value);
      if (errors.length) return fill(out, h('div.msg.error', { role: 'alert' }, h('p', {}, 'Nothing was imported; fix these lines first:'), h('ul', {}, errors.slice(0, 20).map((e) => h('li', {}, e)))));
      if (!items.length) return fill(out, h('p.msg.error', { role: 'alert' }, 'The list is empty.'));
      let created = 0;
      let existing = 0;
      for (let i = 0; i < items.length; i += BATCH) {
        const batch = items.slice(i, i + BATCH);
        fill(out, h('p', {}, `Importing… ${i} of ${items.length}`));
        try {
          const r = await call('BulkCreateSessions', { ...ws(app), poolId: sel.value, providerId: prov.value, sessions: batch.map((x) => x.spec) });
          created += r.createdCount || 0;
          existing += r.existingCount || 0;
        } catch (e) {
          const at = /sessions\[(\d+)\]/.exec(e.message);
          const where = at ? ` (line ${batch[Number(at[1])]?.line})` : '';
          return fill(out, h('p.msg.error', { role: 'alert' }, `Stopped at lines ${batch[0].line}–${batch[batch.length - 1].line}${where}: ${e.message}. ${created} created and ${existing} already there before that; this batch was not imported.`));
        }
      }
      text.value = '';
      fill(out, h('p.msg.ok', { role: 'status' }, `Imported ${items.length} lines: ${created} new sessions, ${existing} already in the pool.`));
    },
  },
  h('div.grid', {}, field('Pool', sel), field('Provider', prov), field('Scheme for lines without one', scheme)),
  field('Proxy list', text, 'One proxy per line: host:port:user:pass (or host:port). Lines already imported are recognised and not duplicated. Passwords are sealed by the server and never shown again.'),
  h('div.actions', {}, h('button', { type: 'submit' }, 'Import')));
  fill(el, h('section.card', {}, h('h2', {}, 'Import a proxy list'), form, out));
}

// ------------------------------------------------------------ providers

function lastSync(p) {
  const s = p.lastSync;
  if (!s) return p.sync ? 'not yet' : '—';
  const counts = ['created', 'updated', 'disabled', 'removed', 'unchanged'].filter((k) => s[k]).map((k) => `${s[k]} ${k}`).join(', ');
  return h('span', {}, h('time', { datetime: s.finishedAt || s.startedAt, title: when(s.finishedAt || s.startedAt) }, ago(s.finishedAt || s.startedAt)),
    counts ? ` · ${counts}` : ' · no changes', s.error ? h('span.bad', {}, ` · ${s.error}`) : null);
}

export async function providersView(el, app) {
  const list = await all('ListProviders', ws(app), 'providers');
  const poolNames = new Map((await pools(app)).map((p) => [p.id, p.name]));
  const cols = [
    { label: 'Name', cell: (p) => p.name },
    { label: 'Type', cell: (p) => (p.type || '').replace('PROVIDER_TYPE_', '') },
    { label: 'Gateway', cell: (p) => (p.gateway ? `${p.gateway.scheme || 'http'}://${p.gateway.host}:${p.gateway.port}` : 'static sessions only') },
    { label: 'Enabled', cell: (p) => (p.enabled ? 'yes' : h('span.bad', {}, 'no')) },
    { label: 'Sync', cell: (p) => (p.sync && p.sync.intervalSeconds ? `every ${p.sync.intervalSeconds} s into ${poolNames.get(p.sync.poolId) || shortId(p.sync.poolId)}` : 'manual') },
    { label: 'Last sync', cell: lastSync },
  ];
  if (app.can.own) {
    cols.push({ label: 'Actions', cls: 'act-col', cell: (p) => h('div.acts', {},
      h('button.secondary', { type: 'button', onclick: async () => {
        try {
          await call('UpdateProvider', { ...ws(app), providerId: p.id, enabled: !p.enabled, expectedVersion: p.version });
          app.say(`${p.enabled ? 'Disabled' : 'Enabled'} ${p.name}.`);
          app.render();
        } catch (e) { app.fail(e); }
      } }, p.enabled ? 'Disable' : 'Enable')) });
  }
  fill(el, h('section.card', {}, h('h2', {}, 'Providers'),
    h('p.muted', {}, 'Credentials are write-only: the API never returns them, so they are not shown here.'),
    table(cols, list, 'No providers yet.'),
    app.can.own ? connectForm(app) : null));
}

/** ConnectProvider: credentials go to the server once and are sealed there. */
function connectForm(app) {
  const type = h('select', {}, ['GENERIC', 'WEBSHARE', 'PROXYLINE'].map((t) => h('option', { value: `PROVIDER_TYPE_${t}` }, t)));
  const name = h('input', { required: true, maxlength: 200, placeholder: 'webshare' });
  const user = h('input', { autocomplete: 'off' });
  const pass = h('input', { type: 'password', autocomplete: 'new-password' });
  const apiKey = h('input', { type: 'password', autocomplete: 'off' });
  const gw = h('input', { placeholder: 'p.webshare.io:80', pattern: '[^:]+:[0-9]{1,5}' });
  return h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const [host, port] = gw.value.trim().split(':');
      const body = {
        ...ws(app), type: type.value, name: name.value.trim(),
        credentials: { username: user.value, password: pass.value, apiKey: apiKey.value },
      };
      if (host) body.gateway = { host, port: Number(port) };
      try {
        const r = await call('ConnectProvider', body);
        app.say(`Connected ${r.provider.name}.`);
        app.render();
      } catch (e) { app.fail(e); }
    },
  }, h('fieldset', {}, h('legend', {}, 'Connect a provider'),
    h('div.grid', {}, field('Type', type), field('Name', name), field('Gateway (host:port)', gw, 'optional; Webshare has a default'),
      field('Username', user), field('Password', pass), field('Vendor API key', apiKey, 'optional')),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Connect provider'))));
}

// ------------------------------------------------------------- api keys

const ROLES = ['API_KEY_ROLE_OWNER', 'API_KEY_ROLE_EDITOR', 'API_KEY_ROLE_RESOLVER', 'API_KEY_ROLE_VIEWER'];

export async function keysView(el, app) {
  // An ADMIN also manages the instance's ADMIN keys: workspaceId empty.
  const instance = app.can.admin && sessionStorage.getItem('proxyplane.keys') === 'admin';
  const scope = instance ? { workspaceId: '' } : ws(app);
  const list = await all('ListApiKeys', scope, 'apiKeys');
  const secretBox = h('div', { id: 'new-secret' });
  const name = h('input', { required: true, maxlength: 200, placeholder: 'bot host 1' });
  const roles = instance ? ['API_KEY_ROLE_ADMIN'] : ROLES;
  const role = h('select', {}, roles.map((r) => h('option', { value: r, selected: r === 'API_KEY_ROLE_RESOLVER' }, roleName(r))));
  const which = app.can.admin ? h('select', { id: 'key-scope', onchange: (e) => {
    sessionStorage.setItem('proxyplane.keys', e.target.value);
    keysView(el, app).catch(app.fail);
  } }, h('option', { value: 'workspace', selected: !instance }, 'This workspace'), h('option', { value: 'admin', selected: instance }, 'ADMIN keys (instance)')) : null;
  const create = h('form.inline', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await call('CreateApiKey', { ...scope, name: name.value.trim(), role: role.value });
        await keysView(el, app);
        const out = h('input', { readonly: true, value: r.secret, id: 'secret-value', 'aria-label': 'The new secret' });
        fill(el.querySelector('#new-secret'), h('div.msg.ok', { role: 'status' },
          h('p', {}, h('strong', {}, `Key ${r.apiKey.name} created. `), 'Copy its secret now: it is shown once and cannot be shown again.'),
          h('div.row', {}, out, h('button', { type: 'button', onclick: () => { out.select(); navigator.clipboard?.writeText(r.secret).catch(() => {}); } }, 'Copy'),
            h('button.secondary', { type: 'button', onclick: (e) => e.target.closest('.msg').remove() }, 'Done'))));
        out.focus();
        out.select();
      } catch (e) { app.fail(e); }
    },
  }, field('Name', name), field('Role', role), h('button', { type: 'submit' }, 'Create key'));
  fill(el, h('section.card', {}, h('div.row', {}, h('h2', {}, 'API keys'), which ? field('Keys of', which) : null), secretBox,
    table([
      { label: 'Name', cell: (k) => [k.name, (key.get() || '').startsWith(k.prefix) ? h('span.badge', {}, 'this key') : null] },
      { label: 'Role', cell: (k) => roleName(k.role) },
      { label: 'Prefix', cell: (k) => h('code', {}, k.prefix) },
      { label: 'Created', cell: (k) => when(k.createdAt) },
      { label: 'Last used', cell: (k) => ago(k.lastUsedAt) },
      { label: 'State', cell: (k) => (k.revoked ? h('span.bad', {}, 'revoked') : 'active') },
      { label: 'Actions', cls: 'act-col', cell: (k) => (k.revoked ? '' : h('button.danger', { type: 'button', onclick: async () => {
        if (!confirm(`Revoke the key ${k.name}? Requests with it fail from the next one on.`)) return;
        try {
          await call('RevokeApiKey', { ...scope, apiKeyId: k.id });
          app.say(`Revoked ${k.name}.`);
          await keysView(el, app);
        } catch (e) { app.fail(e); }
      } }, 'Revoke')) },
    ], list, instance ? 'No ADMIN keys.' : 'No keys in this workspace.'),
    create));
}

// ----------------------------------------------------------- workspaces

export async function workspacesView(el, app) {
  const name = h('input', { required: true, maxlength: 200, placeholder: 'production' });
  fill(el, h('section.card', {}, h('h2', {}, 'Workspaces'),
    table([
      { label: 'Name', cell: (w) => w.name },
      { label: 'Id', cell: (w) => h('code', {}, w.id) },
      { label: 'Key version', cls: 'num', cell: (w) => w.keyVersion },
      { label: 'Created', cell: (w) => when(w.createdAt) },
    ], app.workspaces, 'No workspaces yet.'),
    h('form.inline', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const r = await call('CreateWorkspace', { name: name.value.trim() });
          await app.refreshWorkspaces(r.workspace.id);
          app.say(`Created workspace ${r.workspace.name}.`);
          await workspacesView(el, app);
        } catch (e) { app.fail(e); }
      },
    }, field('New workspace', name), h('button', { type: 'submit' }, 'Create workspace'))));
}

export const views = {
  pools: poolsView,
  sessions,
  assignments: assignmentsView,
  import: importView,
  providers: providersView,
  keys: keysView,
  workspaces: workspacesView,
};
