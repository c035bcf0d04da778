// The sessions of a pool as a table that pages with the API's cursor, so a
// pool of 100,000 sessions is read one page at a time: ListSessions gives a
// page of ids (filtered by state on the server when a state is chosen),
// BatchGetSessions their rows.
import { call, all } from './api.js';
import { h, fill, table, ago, when } from './dom.js';

const PAGE = 50;

/** The state filter's values, as ListSessions names them. */
const STATES = {
  healthy: 'SESSION_STATE_HEALTHY',
  unhealthy: 'SESSION_STATE_UNHEALTHY',
  'cooling down': 'SESSION_STATE_COOLING_DOWN',
  disabled: 'SESSION_STATE_DISABLED',
};

const ws = (app) => ({ workspaceId: app.ws });

export async function pools(app) {
  return all('ListPools', ws(app), 'pools');
}

/** A <select> of the workspace's pools, remembering the choice per tab. */
export function poolPicker(list, onChange) {
  const saved = sessionStorage.getItem('proxyplane.pool');
  const current = list.some((p) => p.id === saved) ? saved : list[0]?.id;
  const sel = h('select', {
    onchange: (e) => { sessionStorage.setItem('proxyplane.pool', e.target.value); onChange(e.target.value); },
  }, list.map((p) => h('option', { value: p.id, selected: p.id === current }, p.name)));
  return { sel, current };
}

/** host:port of a static session, or the token of a rotation session. */
export function endpoint(s) {
  return s.host ? `${s.host}:${s.port}` : `token ${s.token}`;
}

/** healthy / unhealthy / cooling down / disabled (as GetPoolStats counts). */
export function stateOf(s) {
  if (!s.enabled) return 'disabled';
  const until = s.health?.unhealthyUntil;
  if (until && new Date(until).getTime() > Date.now()) return 'cooling down';
  if ((s.health?.consecutiveFailures || 0) > 0) return 'unhealthy';
  return 'healthy';
}

/**
 * Previous / next buttons over a cursor: `state.cursor` is the page shown,
 * `state.stack` the cursors of the pages before it.
 */
export function pager(state, next, load, extra = '') {
  const prev = h('button.secondary', { type: 'button', disabled: !state.stack.length, onclick: () => {
    state.cursor = state.stack.pop() || '';
    load();
  } }, '← Previous');
  const fwd = h('button.secondary', { type: 'button', disabled: !next, onclick: () => {
    state.stack.push(state.cursor);
    state.cursor = next;
    load();
  } }, 'Next →');
  return h('nav.pager', { 'aria-label': 'Pages' }, prev, h('span', {}, `Page ${state.stack.length + 1}${extra}`), fwd);
}

/** One page of sessions (in state `wanted`, if set) from `cursor`, and the cursor after it. */
async function page(app, poolId, cursor, wanted) {
  const req = { ...ws(app), poolId, pageSize: PAGE, cursor };
  if (wanted) req.state = STATES[wanted];
  const r = await call('ListSessions', req);
  const ids = r.sessionIds || [];
  const rows = ids.length ? (await call('BatchGetSessions', { ...ws(app), sessionIds: ids })).sessions || [] : [];
  return { rows, next: r.nextCursor || '' };
}

function accounts(app, s) {
  const n = s.assignmentCount || 0;
  if (!n) return '0';
  const box = h('span', {}, h('button.link', { type: 'button', 'aria-label': `Show the ${n} accounts on ${endpoint(s)}`, onclick: async () => {
    const r = await call('ListAssignments', { ...ws(app), sessionId: s.id, pageSize: 20 }).catch((e) => app.fail(e));
    if (r) fill(box, (r.assignments || []).map((a) => a.accountName).join(', ') + (r.nextCursor ? ', …' : ''));
  } }, String(n)));
  return box;
}

function columns(app, reload) {
  const cols = [
    { label: 'Endpoint', cell: (s) => h('span', { title: s.id }, endpoint(s)) },
    { label: 'User', cell: (s) => s.username || '' },
    { label: 'State', cell: (s) => { const st = stateOf(s); return h(`span.state.st-${st.replace(' ', '-')}`, {}, st); } },
    { label: 'Failures', cls: 'num', cell: (s) => s.health?.consecutiveFailures || 0 },
    { label: 'Accounts', cls: 'num', cell: (s) => accounts(app, s) },
    { label: 'Last success', cell: (s) => h('span', { title: when(s.health?.lastSuccessAt) }, ago(s.health?.lastSuccessAt)) },
  ];
  if (!app.can.edit) return cols;
  cols.push({ label: 'Actions', cls: 'act-col', cell: (s) => {
    const base = { ...ws(app), sessionId: s.id };
    const run = (label, body, cls = 'secondary') => h(`button.${cls}`, { type: 'button', onclick: async () => {
      try {
        if (label === 'Delete' && !confirm(`Delete the session ${endpoint(s)}? Its accounts move at their next resolve.`)) return;
        await body();
        app.say(`${label}: done for ${endpoint(s)}.`);
        await reload();
      } catch (e) { app.fail(e); }
    } }, label);
    return h('div.acts', {},
      s.enabled
        ? run('Disable', () => call('UpdateSession', { ...base, enabled: false }))
        : run('Enable', () => call('UpdateSession', { ...base, enabled: true })),
      run('Delete', () => call('DeleteSession', base), 'danger'));
  } });
  return cols;
}

/** The pool's sessions by state, counted by the server (GetPoolStats). */
async function summary(app, poolId, el) {
  const st = (await call('GetPoolStats', { ...ws(app), poolId }).catch(() => ({}))).sessions;
  if (!st) return;
  const n = (k) => Number(st[k] || 0);
  const total = n('healthy') + n('unhealthy') + n('coolingDown') + n('disabled');
  const f = (x) => x.toLocaleString('en');
  fill(el, `${f(total)} sessions: ${f(n('healthy'))} healthy · ${f(n('unhealthy'))} unhealthy · ` +
    `${f(n('coolingDown'))} cooling down · ${f(n('disabled'))} disabled`);
}

export async function sessions(el, app) {
  const list = await pools(app);
  if (!list.length) return fill(el, h('section.card', {}, h('h2', {}, 'Sessions'), h('p', {}, 'No pools yet.')));
  const { sel, current } = poolPicker(list, () => app.render());
  const filter = h('select', { id: 'state-filter' },
    [['', 'All states'], ['healthy', 'Healthy'], ['unhealthy', 'Unhealthy'], ['cooling down', 'Cooling down'], ['disabled', 'Disabled']]
      .map(([v, l]) => h('option', { value: v }, l)));
  const body = h('div', { id: 'sessions-table' });
  const state = { cursor: '', stack: [] };
  async function load() {
    try {
      fill(body, h('p.loading', {}, 'Loading…'));
      const { rows, next } = await page(app, current, state.cursor, filter.value);
      const note = filter.value ? ` · ${filter.value}` : '';
      fill(body, table(columns(app, load), rows, filter.value ? `No ${filter.value} sessions here.` : 'No sessions in this pool.'),
        pager(state, next, load, note));
    } catch (e) { app.fail(e); }
  }
  filter.addEventListener('change', () => { state.cursor = ''; state.stack = []; load(); });
  const pick = h('label', {}, 'Pool ', sel);
  const show = h('label', {}, 'State ', filter);
  const counts = h('p.muted', { id: 'session-counts' });
  fill(el, h('section.card', {}, h('div.row', {}, h('h2', {}, 'Sessions'), pick, show), counts, body));
  await Promise.all([load(), summary(app, current, counts)]);
}

