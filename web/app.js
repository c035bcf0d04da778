// The dashboard's shell: sign-in, the workspace picker, the sections the
// key's role may see, and hash routing (#pools, #sessions, …) so the back
// button and reloads work.
import { call, key, abilities, roleName, ApiError, all } from './api.js';
import { h, fill } from './dom.js';
import { views } from './views.js';

const $ = (id) => document.getElementById(id);
const WS = 'proxyplane.workspace';

const app = {
  role: '',
  can: abilities(''),
  workspaces: [],
  ws: '',
  /** A message in the status line; errors are announced as alerts. */
  say(text, kind = 'ok') {
    const box = $('status');
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    fill(box, text ? h(`p.msg.${kind}`, {}, text) : null);
  },
  fail(e) {
    if (e instanceof ApiError && e.code === 'unauthenticated') {
      signOut('Your key is no longer accepted (revoked or unknown); sign in again.');
      return;
    }
    app.say(e instanceof ApiError ? `${e.message} (${e.code})` : String(e.message || e), 'error');
  },
  /** Redraws the current section, keeping the status line (a just-saved message). */
  render: () => route(true),
  refreshWorkspaces: (id) => refreshWorkspaces(id),
};

const SECTIONS = [
  ['pools', 'Pools', (c) => c.read],
  ['sessions', 'Sessions', (c) => c.read],
  ['assignments', 'Assignments', (c) => c.read],
  ['import', 'Import', (c) => c.edit],
  ['providers', 'Providers', (c) => c.read],
  ['keys', 'API keys', (c) => c.own],
  ['workspaces', 'Workspaces', (c) => c.admin],
];

function section() {
  const want = location.hash.replace(/^#/, '').split('?')[0] || 'pools';
  const ok = SECTIONS.filter(([, , may]) => may(app.can)).map(([id]) => id);
  return ok.includes(want) ? want : 'pools';
}

async function route(keepStatus = false) {
  if (!app.role) return;
  const id = section();
  fill($('nav'), SECTIONS.filter(([, , may]) => may(app.can)).map(([sid, label]) =>
    h('a', { href: `#${sid}`, 'aria-current': sid === id ? 'page' : undefined }, label)));
  const view = $('view');
  if (!keepStatus) app.say('');
  if (!app.ws && id !== 'workspaces') {
    fill(view, h('section.card', {}, h('h1', {}, 'No workspace yet'),
      h('p', {}, app.can.admin ? 'Create one under Workspaces to begin.' : 'This key sees no workspace.')));
    return;
  }
  fill(view, h('p.loading', {}, 'Loading…'));
  try {
    await views[id](view, app);
  } catch (e) {
    fill(view);
    app.fail(e);
  }
}

async function loadWorkspaces(secret) {
  const first = await call('ListWorkspaces', { pageSize: 1000 }, secret);
  app.role = first.callerRole || 'API_KEY_ROLE_VIEWER';
  app.can = abilities(app.role);
  app.workspaces = first.workspaces || [];
  if (first.nextCursor) app.workspaces = await all('ListWorkspaces', {}, 'workspaces');
}

async function refreshWorkspaces(selectId) {
  await loadWorkspaces(key.get());
  pickWorkspace(selectId);
}

function pickWorkspace(preferred) {
  const ids = app.workspaces.map((w) => w.id);
  const saved = preferred || sessionStorage.getItem(WS);
  app.ws = ids.includes(saved) ? saved : ids[0] || '';
  sessionStorage.setItem(WS, app.ws);
  const sel = $('workspace');
  fill(sel, app.workspaces.map((w) => h('option', { value: w.id, selected: w.id === app.ws }, w.name)));
  sel.disabled = app.workspaces.length < 2;
}

async function signIn(secret) {
  try {
    await loadWorkspaces(secret);
  } catch (e) {
    app.role = '';
    if (e instanceof ApiError && e.code === 'unauthenticated') throw new Error('That key was not accepted: it is unknown or revoked. Check that you pasted all of it.');
    if (e instanceof ApiError && e.code === 'permission_denied') throw new Error('This key may not read (a RESOLVER key, meant for bots). Sign in with a VIEWER key or above.');
    throw e;
  }
  key.set(secret);
  pickWorkspace();
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  fill($('role'), roleName(app.role));
  document.body.dataset.role = roleName(app.role).toLowerCase();
  await route();
}

function signOut(message = '') {
  key.clear();
  sessionStorage.removeItem(WS);
  app.role = '';
  app.can = abilities('');
  $('signin').hidden = false;
  $('nav').hidden = true;
  $('who').hidden = true;
  fill($('view'));
  delete document.body.dataset.role;
  app.say(message, message ? 'error' : 'ok');
  $('key').value = '';
  $('key').focus();
}

function start() {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const secret = $('key').value.trim();
    if (!secret) return;
    app.say('Signing in…');
    try {
      await signIn(secret);
    } catch (e) {
      app.say(e.message, 'error');
      $('key').select();
    }
  });
  $('signout').addEventListener('click', () => signOut());
  $('workspace').addEventListener('change', (ev) => {
    app.ws = ev.target.value;
    sessionStorage.setItem(WS, app.ws);
    route();
  });
  window.addEventListener('hashchange', () => route());
  const saved = key.get();
  if (saved) {
    signIn(saved).catch((e) => signOut(e.message));
  } else {
    signOut();
  }
}

start();
