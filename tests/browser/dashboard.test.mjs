// The dashboard in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against the real proxyplane binary with a fresh data dir.
// Every check reads what the page shows or what the API then holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const BIN = process.env.PROXYPLANE_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOTS || join(process.cwd(), 'screenshots');
// The machine's closed network refuses Chromium's background connections;
// these flags keep it from trying.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SESSIONS = Number(process.env.DASHBOARD_SESSIONS || 100000);

let server;
let base;
let dir;
let admin;
let viewer;
let ctx;
const seed = {};
const contexts = [];

async function rpc(method, body, key = admin) {
  const r = await fetch(`${base}/proxies.v1.Proxies/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method}: ${json.code}: ${json.message}`);
  return json;
}

async function startServer() {
  dir = mkdtempSync(join(tmpdir(), 'proxyplane-browser-'));
  server = spawn(BIN, ['--data-dir', dir, 'serve', '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROXYPLANE_'))),
  });
  server.stderr.resume();
  const first = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).once('line', resolve);
    server.once('exit', (c) => reject(new Error(`proxyplane exited with ${c}`)));
  });
  base = `http://${first.replace('listening on ', '').trim()}`;
  admin = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
}

/** A workspace with a provider, a big pool, a small pool with assignments, a VIEWER key. */
async function seedData() {
  const w = (await rpc('CreateWorkspace', { name: 'steam farm' })).workspace;
  const ws = { workspaceId: w.id };
  seed.ws = w.id;
  seed.provider = (await rpc('ConnectProvider', { ...ws, type: 'PROVIDER_TYPE_GENERIC', name: 'bought list', credentials: { apiKey: 'vendor-secret-never-shown' } })).provider.id;
  // The small pool first: it is the one the dashboard opens on.
  seed.small = (await rpc('CreatePool', { ...ws, name: 'bots', rotation: { intervalSeconds: 0, onUnhealthy: true } })).pool.id;
  seed.big = (await rpc('CreatePool', { ...ws, name: 'scrapers' })).pool.id;
  const spec = (i, pool) => ({ token: `${pool}-${i}`, scheme: 'http', host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8000 + (i % 1000), username: `u${i}`, password: `secret-pass-${i}` });
  const small = await rpc('BulkCreateSessions', { ...ws, poolId: seed.small, providerId: seed.provider, sessions: Array.from({ length: 4 }, (_, i) => spec(i + 1, 's')) });
  seed.smallSessions = small.sessionIds;
  for (let i = 0; i < SESSIONS; i += 10000) {
    const n = Math.min(10000, SESSIONS - i);
    await rpc('BulkCreateSessions', { ...ws, poolId: seed.big, providerId: seed.provider, sessions: Array.from({ length: n }, (_, j) => spec(i + j, 'b')) });
  }
  for (const name of ['bot-1', 'bot-2', 'bot-3']) {
    await rpc('ResolveProxy', { ...ws, poolId: seed.small, accountName: name });
  }
  // Activity for the charts, and one session in its cooldown.
  for (let i = 0; i < 3; i++) await rpc('ReportSessionResult', { ...ws, sessionId: seed.smallSessions[3], success: false, reason: 'timeout' });
  viewer = (await rpc('CreateApiKey', { ...ws, name: 'wallboard', role: 'API_KEY_ROLE_VIEWER' })).secret;
}

async function newPage({ width = 1280, height = 800, scheme = 'light' } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'proxyplane-chromium-'));
  const c = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width, height }, colorScheme: scheme,
  });
  contexts.push({ c, userDataDir });
  const page = c.pages()[0] || (await c.newPage());
  page.errors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('dialog', (d) => d.accept());
  return page;
}

async function signIn(page, key) {
  await page.goto(`${base}/`);
  await page.fill('#key', key);
  await page.press('#key', 'Enter');
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const rows = (page) => page.locator('#view tbody tr');

before(async () => {
  await startServer();
  const t = Date.now();
  await seedData();
  console.log(`# seeded ${SESSIONS} sessions in ${Date.now() - t} ms`);
});

after(async () => {
  for (const { c, userDataDir } of contexts) {
    await c.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
  if (server) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a wrong key is refused with a sentence and nothing is shown', async () => {
  const page = await newPage();
  await signIn(page, 'pp_not_a_real_key_at_all');
  await page.locator('#status .msg.error').waitFor();
  assert.match(await page.locator('#status').innerText(), /not accepted/);
  assert.equal(await page.locator('#nav').isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('proxyplane.key')), null, 'a refused key is not kept');
  await shot(page, 'signin-wrong-key');
  // A RESOLVER key is real but may not read: told so, not let in.
  const resolver = (await rpc('CreateApiKey', { workspaceId: seed.ws, name: 'bot host', role: 'API_KEY_ROLE_RESOLVER' })).secret;
  await page.fill('#key', resolver);
  await page.press('#key', 'Enter');
  await page.locator('#status', { hasText: 'RESOLVER key' }).waitFor();
  assert.equal(await page.locator('#nav').isVisible(), false);
});

test('signing in with the admin key shows the pools, their policy and charts; the page weight is measured', async () => {
  const page = await newPage();
  ctx = page;
  await signIn(page, admin);
  await page.locator('.charts svg.chart').first().waitFor();
  assert.equal(await page.locator('#role').innerText(), 'ADMIN');
  assert.deepEqual(await page.locator('#nav a').allInnerTexts(), ['Pools', 'Sessions', 'Assignments', 'Import', 'Providers', 'API keys', 'Workspaces']);
  assert.equal(await page.locator('.charts svg.chart').count(), 3);
  // Three resolves and three failures were made in this minute.
  const captions = await page.locator('.chart-box figcaption').allInnerTexts();
  assert.match(captions[0], /Resolves \/ min\s+3/);
  assert.match(captions[2], /Failures \/ min\s+3/);
  assert.match(await page.locator('svg.split').getAttribute('aria-label'), /Healthy 3, Unhealthy 0, Cooling down 1, Disabled 0/);
  const weight = await page.evaluate(() => {
    const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
      .filter((e) => !e.name.includes('/proxies.v1.Proxies/'));
    return { bytes: all.reduce((a, e) => a + e.transferSize, 0), decoded: all.reduce((a, e) => a + e.decodedBodySize, 0), files: all.length };
  });
  writeFileSync(join(SHOTS, 'page-weight.txt'), `first load: ${weight.files} files, ${weight.bytes} bytes transferred, ${weight.decoded} bytes decoded (API calls excluded)\n`);
  console.log(`# page weight: ${JSON.stringify(weight)}`);
  assert.ok(weight.bytes > 0 && weight.files >= 8);
  await shot(page, 'pools');
});

test('the rotation policy is edited in place with the pool version', async () => {
  const page = ctx;
  await page.click('#edit-policy');
  await page.fill('form.policy input[name="Rotate after (seconds)"]', '900');
  await page.click('form.policy button[type="submit"]');
  await page.locator('#status .msg.ok').waitFor();
  const pool = (await rpc('GetPool', { workspaceId: seed.ws, poolId: seed.small })).pool;
  assert.equal(pool.rotation.intervalSeconds, 900);
  assert.equal(pool.version, '2');
  await page.locator('text=rotate every 900 s').first().waitFor();
});

test('the sessions table pages through 100,000 sessions with the cursor, one page at a time', async () => {
  const page = ctx;
  let listed = 0;
  page.on('request', (r) => { if (r.url().endsWith('/BatchGetSessions')) listed += JSON.parse(r.postData()).sessionIds.length; });
  await page.goto(`${base}/#sessions`);
  await page.locator('#view select').first().selectOption({ label: 'scrapers' });
  await page.locator('#sessions-table tbody tr').first().waitFor();
  assert.equal(await rows(page).count(), 50);
  await page.locator('#session-counts', { hasText: `${SESSIONS.toLocaleString('en')} sessions: ${SESSIONS.toLocaleString('en')} healthy` }).waitFor();
  const first = await rows(page).first().innerText();
  await page.click('text=Next →');
  await page.locator('text=Page 2').waitFor();
  assert.equal(await rows(page).count(), 50);
  assert.notEqual(await rows(page).first().innerText(), first);
  await shot(page, 'sessions');
  await page.click('text=← Previous');
  await page.locator('text=Page 1').waitFor();
  assert.equal(await rows(page).first().innerText(), first);
  assert.ok(listed <= 200, `only the pages shown were read (${listed} sessions)`);
  await page.evaluate(() => sessionStorage.removeItem('proxyplane.pool'));
});

test('the state filter shows the sessions in that state', async () => {
  const page = ctx;
  await page.goto(`${base}/#pools`);
  await page.goto(`${base}/#sessions`);
  await page.locator('#view select').first().selectOption({ label: 'bots' });
  await page.locator('#sessions-table tbody tr').first().waitFor();
  assert.equal(await rows(page).count(), 4);
  await page.selectOption('#state-filter', 'cooling down');
  await page.locator('text=Page 1 · cooling down').waitFor();
  assert.equal(await rows(page).count(), 1);
  assert.match(await rows(page).first().innerText(), /cooling down/);
  // Disabling from the table is a real UpdateSession.
  await page.selectOption('#state-filter', 'healthy');
  await page.locator('text=Page 1 · healthy').waitFor();
  await rows(page).first().locator('text=Disable').click();
  await page.locator('#status .msg.ok').waitFor();
  const ids = (await rpc('BatchGetSessions', { workspaceId: seed.ws, sessionIds: seed.smallSessions })).sessions;
  assert.equal(ids.filter((s) => !s.enabled).length, 1);
  await rpc('UpdateSession', { workspaceId: seed.ws, sessionId: ids.find((s) => !s.enabled).id, enabled: true });
});

async function assignment(name) {
  const r = await rpc('ListAssignments', { workspaceId: seed.ws, poolId: seed.small, accountName: name });
  return r.assignments[0];
}

test('pin, unpin, rebind and move an assignment with a click', async () => {
  const page = ctx;
  await page.goto(`${base}/#assignments`);
  await page.locator('#view select').first().selectOption({ label: 'bots' });
  const row = (name) => page.locator('#view tbody tr', { hasText: name });
  await row('bot-1').waitFor();
  assert.equal(await rows(page).count(), 3);
  await shot(page, 'assignments');

  await row('bot-1').locator('button', { hasText: 'Pin' }).click();
  await row('bot-1').locator('.badge.pin').waitFor();
  assert.equal((await assignment('bot-1')).pinned, true);
  assert.equal(await row('bot-1').locator('button', { hasText: 'Rebind' }).count(), 0, 'a pinned assignment offers no rebind');
  await row('bot-1').locator('button', { hasText: 'Unpin' }).click();
  await row('bot-1').locator('button', { hasText: 'Rebind' }).waitFor();
  assert.equal((await assignment('bot-1')).pinned ?? false, false);

  const before = await assignment('bot-2');
  await row('bot-2').locator('button', { hasText: 'Rebind' }).click();
  await page.locator('#status', { hasText: 'Rebound bot-2' }).waitFor();
  const after = await assignment('bot-2');
  assert.notEqual(after.sessionId, before.sessionId);
  assert.equal(after.rotations, (before.rotations || 0) + 1);
  await page.locator('#view tbody tr', { hasText: 'bot-2' }).locator('td', { hasText: /^1$/ }).waitFor();

  const b3 = await assignment('bot-3');
  const target = seed.smallSessions.find((id) => id !== b3.sessionId);
  await row('bot-3').locator('button', { hasText: 'Move' }).click();
  await page.locator('#status', { hasText: 'Choose the session' }).waitFor();
  assert.equal((await assignment('bot-3')).sessionId, b3.sessionId);
  await row('bot-3').locator('select').selectOption(target);
  assert.equal((await assignment('bot-3')).sessionId, b3.sessionId, 'choosing alone moves nothing');
  await row('bot-3').locator('button', { hasText: 'Move' }).click();
  await page.locator('#status', { hasText: 'Moved bot-3' }).waitFor();
  assert.equal((await assignment('bot-3')).sessionId, target);
});

test('a pasted proxy list is imported into the pool, and a second paste adds nothing', async () => {
  const page = ctx;
  await page.goto(`${base}/#import`);
  await page.locator('#proxy-list').waitFor();
  await page.locator('#view select').first().selectOption({ label: 'bots' });
  const list = '203.0.113.7:8080:alice:pw1\n203.0.113.8:8080:bob:p:w:2\n\nsocks5://203.0.113.9:1080:carol:pw3\n';
  await page.fill('#proxy-list', list);
  await page.click('#view button[type=submit]');
  await page.locator('#import-result', { hasText: 'Imported 3 lines: 3 new sessions, 0 already' }).waitFor();
  await shot(page, 'import');
  const ids = (await rpc('ListSessions', { workspaceId: seed.ws, poolId: seed.small, pageSize: 100 })).sessionIds;
  assert.equal(ids.length, 7);
  const got = (await rpc('BatchGetSessions', { workspaceId: seed.ws, sessionIds: ids })).sessions;
  const carol = got.find((s) => s.username === 'carol');
  assert.equal(carol.scheme, 'socks5');
  assert.equal(carol.host, '203.0.113.9');
  assert.equal(JSON.stringify(got).includes('pw3'), false, 'no password comes back');
  await page.fill('#proxy-list', list);
  await page.click('#view button[type=submit]');
  await page.locator('#import-result', { hasText: '0 new sessions, 3 already in the pool' }).waitFor();
  // A bad line stops the import before anything is sent.
  await page.fill('#proxy-list', '203.0.113.10:8080:x:y\n203.0.113.11:http:x:y');
  await page.click('#view button[type=submit]');
  await page.locator('#import-result', { hasText: 'line 2: the port' }).waitFor();
  assert.equal((await rpc('ListSessions', { workspaceId: seed.ws, poolId: seed.small, pageSize: 100 })).sessionIds.length, 7);
});

test('an API key is created, its secret shown once, and revoked', async () => {
  const page = ctx;
  await page.goto(`${base}/#keys`);
  await page.locator('#view form.inline input').fill('bot host 7');
  await page.locator('#view form.inline select').selectOption({ label: 'VIEWER' });
  await page.click('text=Create key');
  const secret = await page.locator('#secret-value').inputValue();
  assert.match(secret, /^pp_/);
  assert.ok((await rpc('ListPools', { workspaceId: seed.ws }, secret)).pools.length >= 2, 'the new secret works');
  await page.reload();
  await page.locator('#view tbody tr', { hasText: 'bot host 7' }).waitFor();
  assert.equal(await page.locator('#secret-value').count(), 0, 'the secret is not shown again');
  assert.equal((await page.content()).includes(secret), false);
  await page.locator('#view tbody tr', { hasText: 'bot host 7' }).locator('text=Revoke').click();
  await page.locator('#view tbody tr', { hasText: 'bot host 7' }).locator('text=revoked').waitFor();
  await assert.rejects(rpc('ListPools', { workspaceId: seed.ws }, secret), /unauthenticated/);
  // The ADMIN also sees the instance's ADMIN keys, its own marked.
  await page.selectOption('#key-scope', 'admin');
  const mine = page.locator('#view tbody tr', { hasText: 'this key' });
  await mine.waitFor();
  assert.match(await mine.innerText(), /ADMIN/);
  assert.deepEqual(await page.locator('#view form.inline select').last().locator('option').allInnerTexts(), ['ADMIN']);
  await page.selectOption('#key-scope', 'workspace');
  await page.locator('#view tbody tr', { hasText: 'wallboard' }).waitFor();
});

test('providers: type and gateway shown, never credentials; connect one and disable it', async () => {
  const page = ctx;
  await page.goto(`${base}/#providers`);
  await page.locator('#view tbody tr', { hasText: 'bought list' }).waitFor();
  assert.match(await page.locator('#view tbody tr').first().innerText(), /GENERIC/);
  assert.equal((await page.content()).includes('vendor-secret-never-shown'), false);
  const form = page.locator('#view form', { hasText: 'Connect a provider' });
  await form.locator('select').selectOption({ label: 'WEBSHARE' });
  await form.locator('input').nth(0).fill('webshare');
  await form.locator('input').nth(2).fill('ws-user');
  await form.locator('input').nth(3).fill('ws-pass-never-shown');
  await form.locator('button[type=submit]').click();
  const row = page.locator('#view tbody tr', { hasText: 'webshare' });
  await row.waitFor();
  assert.match(await row.innerText(), /WEBSHARE[\s\S]*http:\/\/p\.webshare\.io:80/);
  assert.equal((await page.content()).includes('ws-pass-never-shown'), false, 'the password is not kept in the page');
  await row.locator('button', { hasText: 'Disable' }).click();
  await row.locator('button', { hasText: 'Enable' }).waitFor();
  const got = (await rpc('ListProviders', { workspaceId: seed.ws })).providers.find((p) => p.name === 'webshare');
  assert.equal(got.enabled ?? false, false);
  assert.equal(JSON.stringify(got).includes('ws-pass'), false);
});

test('an empty pool is deleted; a pool with sessions is refused with the reason', async () => {
  const page = ctx;
  await page.goto(`${base}/#pools`);
  await page.locator('#view form.inline input').fill('short-lived');
  await page.click('text=Create pool');
  const row = page.locator('#view tbody tr', { hasText: 'short-lived' });
  await row.waitFor();
  await row.locator('button', { hasText: 'Delete' }).click();
  await page.locator('#status', { hasText: 'Deleted the pool short-lived' }).waitFor();
  assert.equal((await rpc('ListPools', { workspaceId: seed.ws })).pools.some((p) => p.name === 'short-lived'), false);
  await page.evaluate(() => sessionStorage.removeItem('proxyplane.pool'));
  // In a page of its own: Chromium logs every 4xx answer to the console,
  // and the admin page's console must stay clean.
  const other = await newPage();
  await signIn(other, admin);
  await other.locator('#view tbody tr', { hasText: 'bots' }).locator('button', { hasText: 'Delete' }).click();
  await other.locator('#status .msg.error', { hasText: 'live sessions' }).waitFor();
  assert.deepEqual(other.errors, ['Failed to load resource: the server responded with a status of 400 (Bad Request)']);
  assert.ok((await rpc('ListPools', { workspaceId: seed.ws })).pools.some((p) => p.name === 'bots'));
});

/**
 * A fake Webshare API v2 on 127.0.0.1 (the vendor cannot be reached from
 * here), in its documented shapes: `Authorization: Token <key>`, the paged
 * proxy list with count/next/previous/results. `token` may be changed to
 * make it refuse the key.
 */
async function fakeWebshare(proxies) {
  const fake = { token: 'ws-token', requests: 0 };
  fake.server = createServer((req, res) => {
    fake.requests += 1;
    if (req.headers.authorization !== `Token ${fake.token}`) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ detail: 'Invalid token.' }));
      return;
    }
    const url = new URL(req.url, 'http://x');
    const page = Number(url.searchParams.get('page') || 1);
    const size = Number(url.searchParams.get('page_size') || 100);
    const results = proxies.slice((page - 1) * size, page * size).map((p, i) => ({
      id: p.id, username: p.user, password: p.pass, proxy_address: p.ip, port: p.port, valid: true,
      last_verification: '2026-11-01T10:00:00Z', country_code: 'US', city_name: 'New York',
      created_at: '2026-11-01T10:00:00Z', i,
    }));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ count: proxies.length, next: page * size < proxies.length ? `${url.pathname}?page=${page + 1}` : null, previous: null, results }));
  });
  await new Promise((r) => fake.server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${fake.server.address().port}`;
  return fake;
}

test('provider sync settings and the last real sync are shown, its error too', async () => {
  const proxies = Array.from({ length: 5 }, (_, i) => ({ id: `d-${i}`, user: `u${i}`, pass: `p${i}`, ip: `198.51.100.${i + 1}`, port: 6000 + i }));
  const fake = await fakeWebshare(proxies);
  try {
    const ws = { workspaceId: seed.ws };
    const pool = (await rpc('CreatePool', { ...ws, name: 'webshare pool' })).pool.id;
    // The WEBSHARE provider connected (and disabled) through the page
    // above: one of each type per workspace. Enabled again and pointed at
    // the fake, with a sync schedule.
    const prov = (await rpc('ListProviders', ws)).providers.find((p) => p.type === 'PROVIDER_TYPE_WEBSHARE').id;
    await rpc('UpdateProvider', { ...ws, providerId: prov, name: 'webshare account', enabled: true,
      credentials: { apiKey: fake.token }, apiBaseUrl: fake.url, sync: { intervalSeconds: 3600, poolId: pool } });
    const first = (await rpc('SyncProvider', { ...ws, providerId: prov })).result;
    assert.equal(Number(first.created), 5);
    const page = await newPage();
    await signIn(page, admin);
    await page.locator('#nav a').first().waitFor();
    await page.goto(`${base}/#providers`);
    const row = page.locator('#view tbody tr', { hasText: 'webshare account' });
    await row.waitFor();
    let text = await row.innerText();
    assert.match(text, /every 3600 s into webshare pool/);
    assert.match(text, /\d+ s ago · 5 created/);
    assert.doesNotMatch(text, /ws-token/);

    // The vendor now refuses the key: the failed sync and its reason show.
    fake.token = 'rotated-at-the-vendor';
    await rpc('SyncProvider', { ...ws, providerId: prov }).then(
      () => assert.fail('a refused key fails the sync'), (e) => assert.match(e.message, /401|refus|key/i));
    await page.reload();
    await row.waitFor();
    text = await row.innerText();
    assert.match(text, /\d+ s ago · .*(401|refus|key)/i);
    assert.ok(await row.locator('.bad').count() >= 1, 'the error is marked');
    await shot(page, 'providers');
    assert.deepEqual(page.errors, []);
  } finally {
    fake.server.close();
  }
});

test('the admin creates a workspace and can switch to it', async () => {
  const page = ctx;
  await page.goto(`${base}/#workspaces`);
  await page.locator('#view form.inline input').fill('staging');
  await page.click('text=Create workspace');
  await page.locator('#view tbody tr', { hasText: 'staging' }).waitFor();
  assert.deepEqual(await page.locator('#workspace option').allInnerTexts(), ['steam farm', 'staging']);
  await shot(page, 'workspaces');
  await page.selectOption('#workspace', { label: 'steam farm' });
});

test('a VIEWER key sees everything it may read and no write action', async () => {
  const page = await newPage();
  await signIn(page, viewer);
  await page.locator('.charts svg.chart').first().waitFor();
  assert.equal(await page.locator('#role').innerText(), 'VIEWER');
  assert.deepEqual(await page.locator('#nav a').allInnerTexts(), ['Pools', 'Sessions', 'Assignments', 'Providers']);
  for (const view of ['pools', 'sessions', 'assignments', 'providers', 'import', 'keys', 'workspaces']) {
    await page.goto(`${base}/#${view}`);
    await page.locator('#view tbody tr, #view .charts svg').first().waitFor();
    const buttons = await page.locator('#view button:not(.secondary):not(.link), #view button.danger, #view form:not(.search)').count();
    assert.equal(buttons, 0, `#${view} offers a write action to a VIEWER`);
    const text = await page.locator('#view').innerText();
    assert.doesNotMatch(text, /\b(Pin|Unpin|Rebind|Disable|Delete|Revoke|Edit policy|Import|Create)\b/, `#${view}`);
  }
  await page.goto(`${base}/#assignments`);
  await page.locator('#view tbody tr').first().waitFor();
  await shot(page, 'viewer-assignments');
  assert.deepEqual(page.errors, []);
});

test('keyboard only: tab to the key, type it, Enter; tab reaches the sections', async () => {
  const page = await newPage();
  await page.goto(`${base}/`);
  let focused = '';
  for (let i = 0; i < 6 && focused !== 'key'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.id);
  }
  assert.equal(focused, 'key');
  await page.keyboard.type(admin);
  await page.keyboard.press('Enter');
  await page.locator('#nav a').first().waitFor();
  const seen = [];
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    seen.push(await page.evaluate(() => document.activeElement?.textContent?.trim()));
  }
  assert.ok(seen.includes('Sessions'), `tab order: ${seen.join(' | ')}`);
  // Enter on a focused section link opens it.
  while ((await page.evaluate(() => document.activeElement?.textContent?.trim())) !== 'Assignments') await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  await page.locator('#view tbody tr', { hasText: 'bot-1' }).waitFor();
});

test('phone width and dark theme: no sideways scrolling, dark colours', async () => {
  const page = await newPage({ width: 390, height: 844, scheme: 'dark' });
  await signIn(page, admin);
  await page.locator('.charts svg.chart').first().waitFor();
  for (const view of ['pools', 'sessions', 'assignments']) {
    await page.goto(`${base}/#${view}`);
    await page.locator('#view tbody tr, #view .charts svg').first().waitFor();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `#${view} is ${wide}px wide on a 390px screen`);
    // Nothing sticks out of its card (the visually hidden table heads aside).
    const out = await page.evaluate(() => [...document.querySelectorAll('#view .card *')]
      .filter((e) => !e.closest('thead') && e.getBoundingClientRect().right > e.closest('.card').getBoundingClientRect().right + 0.5)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className}`).slice(0, 5));
    assert.deepEqual(out, [], `#${view}: elements past the right edge of their card`);
    await shot(page, `phone-dark-${view}`);
  }
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(15, 18, 22)');
  assert.deepEqual(page.errors, []);
});

test('no console errors in the whole admin session', () => {
  assert.deepEqual(ctx.errors, []);
});
