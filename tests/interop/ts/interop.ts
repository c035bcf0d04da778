// The interop scenario for connect-node (@connectrpc/connect-node v2,
// createConnectTransport over HTTP/1.1), written once and run per mode:
//   json    useBinaryFormat: false                       (application/json)
//   binary  the default binary format                    (application/proto)
//   get     useBinaryFormat: false, useHttpGet: true     (NO_SIDE_EFFECTS methods as Connect GET)
//
// Usage: tsx ts/interop.ts --base-url http://127.0.0.1:PORT --admin-key-file FILE [--mode M]...
// Prints one line per step (PASS/FAIL/SKIP <client>/<mode> <step>[: reason]) and a
// final "steps: N passed, N failed, N skipped" line; exits 1 if any step failed.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  ApiKeyRole,
  ProviderType,
  Proxies,
  type Assignment,
  type Proxy,
  type Session,
  SessionSpecSchema,
} from "../gen/ts/proxies/v1/proxies_pb.js";
import * as wire from "./wirecheck.js";

const MODES = ["json", "binary", "get"] as const;
type Mode = (typeof MODES)[number];

const { values: args } = parseArgs({
  options: {
    "base-url": { type: "string" },
    "admin-key-file": { type: "string" },
    mode: { type: "string", multiple: true },
  },
});
const baseUrl = args["base-url"] ?? "";
const adminKey = readFileSync(args["admin-key-file"] ?? "", "utf8").trim();
const modes = (args.mode ?? [...MODES]) as Mode[];
for (const m of modes) {
  if (!MODES.includes(m)) throw new Error(`unknown mode ${m}`);
}

wire.install();

// ------------------------------------------------------------ step runner

class Skip extends Error {}
class Fail extends Error {}

const totals = { pass: 0, fail: 0, skip: 0 };

function fail(msg: string): never {
  throw new Fail(msg);
}
function check(cond: unknown, msg: string): asserts cond {
  if (!cond) fail(msg);
}
function eq<T>(actual: T, expected: T, what: string): void {
  if (typeof actual === "bigint" || typeof expected === "bigint") {
    if (actual !== expected) fail(`${what}: got ${String(actual)}, want ${String(expected)}`);
    return;
  }
  if (actual instanceof Uint8Array && expected instanceof Uint8Array) {
    if (!bytesEq(actual, expected)) fail(`${what}: got ${b64(actual)}, want ${b64(expected)}`);
    return;
  }
  if (actual !== expected) fail(`${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);
}
function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}
function b64(a: Uint8Array): string {
  return Buffer.from(a).toString("base64");
}

/** Is `method` served at all? Asked with a plain uncompressed JSON POST, so a
 * client's Unimplemented that the server only gives to some encodings (gzip,
 * binary, GET) is a failure, not a skip. */
async function servedAtAll(method: string): Promise<boolean> {
  try {
    const res = await fetch(`${baseUrl}/proxies.v1.Proxies/${method}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${adminKey}` },
      body: "{}",
    });
    const text = await res.text();
    if (res.status === 404) return false;
    return !text.includes('"unimplemented"');
  } catch {
    return true;
  }
}

class Runner {
  readonly label: string;
  constructor(
    readonly mode: Mode,
    readonly state: Record<string, unknown> = {},
  ) {
    this.label = `connect-node/${mode}`;
  }

  async step(name: string, needs: string[], fn: () => Promise<void>): Promise<void> {
    const missing = needs.filter((n) => this.state[n] === undefined);
    if (missing.length > 0) {
      this.report("skip", name, `needs ${missing.join(", ")} from an earlier step that did not pass`);
      return;
    }
    wire.drain();
    let outcome: "pass" | "fail" | "skip" = "pass";
    let reason = "";
    try {
      await fn();
    } catch (e) {
      if (e instanceof Skip) {
        outcome = "skip";
        reason = e.message;
      } else if (e instanceof Fail) {
        outcome = "fail";
        reason = e.message;
      } else {
        const ce = ConnectError.from(e);
        const method = (e as { rpc?: string }).rpc ?? "?";
        if (ce.code === Code.Unimplemented && !(await servedAtAll(method))) {
          outcome = "skip";
          reason = `${method} answers Unimplemented (not landed in the server yet)`;
        } else {
          outcome = "fail";
          reason = `${method}: unexpected error ${Code[ce.code]}: ${ce.rawMessage}`;
        }
      }
    }
    const { problems, exchanges } = wire.drain();
    if (outcome !== "skip") {
      if (exchanges.length === 0) {
        // Every step makes at least one RPC: the tap must have seen it.
        outcome = "fail";
        reason = [reason, "wire tap saw no response (suite bug)"].filter(Boolean).join("; ");
      }
      if (problems.length > 0) {
        outcome = "fail";
        reason = [reason, ...problems.map((p) => `wire: ${p}`)].filter(Boolean).join("; ");
      }
      if (this.mode === "get") {
        for (const x of exchanges) {
          if (wire.isReadOnly(x.rpc) && x.httpMethod !== "GET") {
            outcome = "fail";
            reason += `; ${x.rpc} was sent as ${x.httpMethod}, not GET`;
          }
        }
      }
    }
    this.report(outcome, name, reason);
  }

  report(outcome: "pass" | "fail" | "skip", name: string, reason: string): void {
    totals[outcome]++;
    const tag = outcome.toUpperCase();
    console.log(`${tag} ${this.label} ${name}${reason ? `: ${reason}` : ""}`);
  }
}

// ------------------------------------------------------------ client

type ProxiesClient = Client<typeof Proxies>;
type MethodName = keyof ProxiesClient;

function makeClient(mode: Mode): ProxiesClient {
  // Tag errors with the RPC name so the runner can tell which method failed.
  const tagRpc: Interceptor = (next) => async (req) => {
    try {
      return await next(req);
    } catch (e) {
      if (e instanceof ConnectError) (e as unknown as { rpc: string }).rpc = req.method.name;
      throw e;
    }
  };
  // Binary responses cannot show JSON shape problems, but a field the schema
  // lacks (a leaked secret, a misnumbered field) shows up as unknown fields.
  const noUnknown: Interceptor = (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) {
      const u = findUnknown(res.message, res.method.output.typeName);
      if (u) wire.report(`${req.method.name}: response has unknown fields at ${u}`);
    }
    return res;
  };
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    useBinaryFormat: mode === "binary",
    useHttpGet: mode === "get",
    interceptors: [tagRpc, noUnknown],
  });
  return createClient(Proxies, transport);
}

function findUnknown(msg: unknown, path: string): string | undefined {
  if (msg === null || typeof msg !== "object") return undefined;
  const m = msg as Record<string, unknown>;
  if (Array.isArray(m.$unknown) && m.$unknown.length > 0) return path;
  for (const [k, v] of Object.entries(m)) {
    if (k === "$typeName" || k === "$unknown") continue;
    if (Array.isArray(v)) {
      for (const [i, item] of v.entries()) {
        const r = findUnknown(item, `${path}.${k}[${i}]`);
        if (r) return r;
      }
    } else if (v && typeof v === "object" && !(v instanceof Uint8Array)) {
      const r = findUnknown(v, `${path}.${k}`);
      if (r) return r;
    }
  }
  return undefined;
}

function auth(key: string) {
  return { headers: { Authorization: `Bearer ${key}` } };
}

async function expectCode(code: Code, what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (e) {
    const ce = ConnectError.from(e);
    if (ce.code === code) return;
    const method = (e as { rpc?: string }).rpc ?? "?";
    if (ce.code === Code.Unimplemented && !(await servedAtAll(method))) {
      throw new Skip(`${method} answers Unimplemented (not landed in the server yet)`);
    }
    fail(`${what}: want ${Code[code]}, got ${Code[ce.code]}: ${ce.rawMessage}`);
  }
  fail(`${what}: want ${Code[code]}, but the call succeeded`);
}

// ------------------------------------------------------------ scenario data

const GATEWAY = {
  scheme: "http",
  host: "gw.example.net",
  port: 8000,
  usernameTemplate: "{username}-session-{token}",
};
// Characters a URL userinfo must percent-encode, to check proxy.url.
const CREDS = { username: "acct-user", password: "gw:p@ss/1", apiKey: "" };

const SEED_TOKEN = "sess-abc123";
const SEED_PASSWORD = "s3cr3t-pass";

interface Spec {
  token: string;
  scheme?: string;
  host?: string;
  port?: number;
  username?: string;
  password?: string;
}
const BULK: Spec[] = [
  { token: "bulk-a", scheme: "http", host: "198.51.100.1", port: 3128, username: "bulk-a", password: "pa:ss@a" },
  { token: "bulk-b", scheme: "socks5", host: "198.51.100.2", port: 1080, username: "bulk-b", password: "pass-b" },
  { token: "bulk-c" },
  { token: "bulk-d" },
  { token: "bulk-e", scheme: "https", host: "198.51.100.5", port: 8443 },
];

/** The password stored for each token (rotation sessions use the provider's). */
function passwordFor(token: string): string {
  if (token === SEED_TOKEN) return SEED_PASSWORD;
  const spec = BULK.find((s) => s.token === token);
  if (!spec) fail(`unknown token ${token}`);
  return spec.password ?? "";
}

/** proxy.url's login encoding: the WHATWG userinfo percent-encode set plus
 * "%" (see Proxy.url in the proto); `!$&'()*+,` stay literal. */
function userinfo(s: string): string {
  return Array.from(new TextEncoder().encode(s), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9\-._~!$&'()*+,]/.test(c) && b < 0x80
      ? c
      : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }).join("");
}

function expectedProxy(s: Session): Omit<Proxy, "$typeName" | "$unknown"> {
  let scheme: string, host: string, port: number, username: string, password: string;
  if (s.host !== "") {
    scheme = s.scheme;
    host = s.host;
    port = s.port;
    username = s.username;
    password = passwordFor(s.token);
  } else {
    scheme = GATEWAY.scheme;
    host = GATEWAY.host;
    port = GATEWAY.port;
    username = `${CREDS.username}-session-${s.token}`;
    password = CREDS.password;
  }
  const endpoint = `${scheme}://${host}:${port}`;
  const login = username !== "" || password !== "";
  const url = login
    ? `${scheme}://${userinfo(username)}:${userinfo(password)}@${host}:${port}`
    : endpoint;
  return { scheme, host, port, username, password, url, endpoint };
}

function checkProxy(p: Proxy | undefined, s: Session): void {
  check(p, "ResolveProxy returned no proxy");
  const want = expectedProxy(s);
  for (const k of ["scheme", "host", "port", "username", "password", "url", "endpoint"] as const) {
    eq(p[k], want[k], `proxy.${k} (session ${s.token})`);
  }
}

// ------------------------------------------------------------ the scenario

async function scenario(mode: Mode): Promise<void> {
  const c = makeClient(mode);
  const r = new Runner(mode);
  const s = r.state as {
    ws?: Uint8Array;
    ws2?: Uint8Array;
    owner?: string;
    viewer?: string;
    provider?: Uint8Array;
    pool?: Uint8Array;
    seed?: Session;
    bulkIds?: Uint8Array[];
    assignment?: Assignment;
    pinned?: Assignment;
    unpinned?: Assignment;
    rebound?: Assignment;
    deleted?: true;
    rotated?: true;
    keyVersion?: number;
  };
  const A = auth(adminKey);
  const O = () => auth(s.owner!);
  const name = `interop-${mode}-${Date.now()}`;

  await r.step("CreateWorkspace (admin key)", [], async () => {
    const res = await c.createWorkspace({ name }, A);
    const w = res.workspace;
    check(w, "no workspace in response");
    eq(w.id.length, 16, "workspace.id length");
    eq(w.name, name, "workspace.name");
    eq(w.version, 1n, "workspace.version");
    check(w.keyVersion >= 1, `workspace.keyVersion ${w.keyVersion} < 1`);
    check(w.createdAt, "workspace.createdAt missing");
    s.ws = w.id;
    s.keyVersion = w.keyVersion;
  });

  await r.step("CreateApiKey OWNER", ["ws"], async () => {
    const res = await c.createApiKey({ workspaceId: s.ws, name: "owner", role: ApiKeyRole.OWNER }, A);
    check(res.secret.startsWith("pp_"), `secret ${JSON.stringify(res.secret.slice(0, 3))}… does not start with pp_`);
    eq(res.apiKey?.role, ApiKeyRole.OWNER, "apiKey.role");
    eq(res.apiKey?.workspaceId, s.ws, "apiKey.workspaceId");
    check(res.secret.startsWith(res.apiKey?.prefix ?? "\0"), "secret does not start with apiKey.prefix");
    s.owner = res.secret;
  });

  await r.step("GetWorkspace (owner key)", ["ws", "owner"], async () => {
    const res = await c.getWorkspace({ workspaceId: s.ws }, O());
    eq(res.workspace?.id, s.ws, "workspace.id");
    eq(res.workspace?.name, name, "workspace.name");
    eq(res.workspace?.version, 1n, "workspace.version");
  });

  await r.step("ConnectProvider GENERIC with gateway", ["ws", "owner"], async () => {
    const res = await c.connectProvider(
      {
        workspaceId: s.ws,
        type: ProviderType.GENERIC,
        name: "generic",
        credentials: CREDS,
        gateway: GATEWAY,
      },
      O(),
    );
    const p = res.provider;
    check(p, "no provider in response");
    eq(p.type, ProviderType.GENERIC, "provider.type");
    eq(p.workspaceId, s.ws, "provider.workspaceId");
    eq(p.gateway?.host, GATEWAY.host, "provider.gateway.host");
    eq(p.gateway?.port, GATEWAY.port, "provider.gateway.port");
    eq(p.gateway?.scheme, GATEWAY.scheme, "provider.gateway.scheme");
    eq(p.gateway?.usernameTemplate, GATEWAY.usernameTemplate, "provider.gateway.usernameTemplate");
    eq(p.enabled, true, "provider.enabled");
    eq(p.version, 1n, "provider.version");
    s.provider = p.id;
  });

  await r.step("CreatePool", ["ws", "owner"], async () => {
    const res = await c.createPool({ workspaceId: s.ws, name: "pool-1" }, O());
    const p = res.pool;
    check(p, "no pool in response");
    eq(p.name, "pool-1", "pool.name");
    eq(p.version, 1n, "pool.version");
    eq(p.failureThreshold, 3, "pool.failureThreshold (default)");
    eq(p.cooldownSeconds, 300, "pool.cooldownSeconds (default)");
    s.pool = p.id;
  });

  await r.step("CreateSession (seed 002)", ["ws", "owner", "pool", "provider"], async () => {
    const res = await c.createSession(
      {
        workspaceId: s.ws,
        poolId: s.pool,
        providerId: s.provider,
        token: SEED_TOKEN,
        scheme: "http",
        host: "203.0.113.10",
        port: 8080,
        username: "user-018f",
        password: SEED_PASSWORD,
      },
      O(),
    );
    const x = res.session;
    check(x, "no session in response");
    eq(x.id.length, 16, "session.id length");
    eq(x.workspaceId, s.ws, "session.workspaceId");
    eq(x.poolId, s.pool, "session.poolId");
    eq(x.providerId, s.provider, "session.providerId");
    eq(x.token, SEED_TOKEN, "session.token");
    eq(x.scheme, "http", "session.scheme");
    eq(x.host, "203.0.113.10", "session.host");
    eq(x.port, 8080, "session.port");
    eq(x.username, "user-018f", "session.username");
    eq(x.enabled, true, "session.enabled");
    eq(x.version, 1n, "session.version");
    check(x.createdAt && x.updatedAt, "session.createdAt/updatedAt missing");
    s.seed = x;
  });

  await r.step("UpdateSession (seed 001)", ["seed"], async () => {
    const res = await c.updateSession(
      { workspaceId: s.ws, sessionId: s.seed!.id, host: "203.0.113.99", port: 8080, username: "user-rotated" },
      O(),
    );
    const x = res.session;
    check(x, "no session in response");
    eq(x.id, s.seed!.id, "session.id");
    eq(x.host, "203.0.113.99", "session.host");
    eq(x.port, 8080, "session.port");
    eq(x.username, "user-rotated", "session.username");
    eq(x.token, SEED_TOKEN, "session.token (unchanged)");
    eq(x.scheme, "http", "session.scheme (unchanged)");
    eq(x.enabled, true, "session.enabled (unchanged)");
    eq(x.version, 2n, "session.version after one update");
    s.seed = x;
  });

  await r.step("GetSession matches the update", ["seed"], async () => {
    const res = await c.getSession({ workspaceId: s.ws, sessionId: s.seed!.id }, O());
    const x = res.session;
    check(x, "no session in response");
    eq(x.host, "203.0.113.99", "session.host");
    eq(x.username, "user-rotated", "session.username");
    eq(x.version, 2n, "session.version");
  });

  await r.step("UpdateSession with a stale expectedVersion is Aborted", ["seed"], async () => {
    await expectCode(Code.Aborted, "UpdateSession expectedVersion=1", () =>
      c.updateSession({ workspaceId: s.ws, sessionId: s.seed!.id, enabled: true, expectedVersion: 1n }, O()),
    );
  });

  const bulkReq = () => ({
    workspaceId: s.ws,
    poolId: s.pool,
    providerId: s.provider,
    sessions: BULK.map((b) => create(SessionSpecSchema, b)),
  });

  await r.step("BulkCreateSessions", ["pool", "provider"], async () => {
    const res = await c.bulkCreateSessions(bulkReq(), O());
    eq(res.sessionIds.length, BULK.length, "sessionIds length");
    eq(res.createdCount, BULK.length, "createdCount");
    eq(res.existingCount, 0, "existingCount");
    const uniq = new Set(res.sessionIds.map(b64));
    eq(uniq.size, BULK.length, "distinct session ids");
    for (const id of res.sessionIds) eq(id.length, 16, "session id length");
    s.bulkIds = res.sessionIds;
  });

  await r.step("BulkCreateSessions again is idempotent", ["bulkIds"], async () => {
    const res = await c.bulkCreateSessions(bulkReq(), O());
    eq(res.createdCount, 0, "createdCount");
    eq(res.existingCount, BULK.length, "existingCount");
    eq(res.sessionIds.length, BULK.length, "sessionIds length");
    res.sessionIds.forEach((id, i) => eq(id, s.bulkIds![i], `sessionIds[${i}]`));
  });

  await r.step("ListSessions page by page", ["seed", "bulkIds"], async () => {
    const want = new Set([s.seed!.id, ...s.bulkIds!].map(b64));
    const seen: string[] = [];
    let cursor = "";
    let pages = 0;
    do {
      const res = await c.listSessions({ workspaceId: s.ws, poolId: s.pool, pageSize: 2, cursor }, O());
      pages++;
      check(res.sessionIds.length <= 2, `page ${pages} has ${res.sessionIds.length} ids, pageSize was 2`);
      check(res.sessionIds.length > 0 || res.nextCursor === "", `page ${pages} is empty but has a nextCursor`);
      seen.push(...res.sessionIds.map(b64));
      cursor = res.nextCursor;
      check(pages <= 20, "more than 20 pages for 6 sessions: the cursor does not advance");
    } while (cursor !== "");
    eq(new Set(seen).size, seen.length, "no duplicate ids across pages");
    eq(seen.length, want.size, "ids listed");
    for (const id of want) check(seen.includes(id), `session ${id} not listed`);
    check(pages >= 3, `6 sessions at pageSize 2 came in ${pages} page(s)`);
  });

  const sessionById = async (id: Uint8Array): Promise<Session> => {
    const res = await c.getSession({ workspaceId: s.ws, sessionId: id }, O());
    check(res.session, "GetSession returned no session");
    return res.session;
  };

  await r.step("ResolveProxy creates a sticky assignment", ["seed", "bulkIds"], async () => {
    const res = await c.resolveProxy({ workspaceId: s.ws, poolId: s.pool, accountName: "steam_bot_01" }, O());
    const a = res.assignment;
    check(a, "no assignment in response");
    eq(a.accountName, "steam_bot_01", "assignment.accountName");
    eq(a.poolId, s.pool, "assignment.poolId");
    eq(a.workspaceId, s.ws, "assignment.workspaceId");
    eq(a.pinned, false, "assignment.pinned");
    eq(a.version, 1n, "assignment.version");
    const ids = [s.seed!.id, ...s.bulkIds!].map(b64);
    check(ids.includes(b64(a.sessionId)), "assignment.sessionId is not a session of the pool");
    checkProxy(res.proxy, await sessionById(a.sessionId));
    const again = await c.resolveProxy({ workspaceId: s.ws, poolId: s.pool, accountName: "steam_bot_01" }, O());
    eq(again.assignment?.id, a.id, "second resolve: assignment.id");
    eq(again.assignment?.sessionId, a.sessionId, "second resolve: assignment.sessionId (sticky)");
    s.assignment = again.assignment;
  });

  await r.step("UpdateAssignment pins to an explicit session (seed 000)", ["assignment"], async () => {
    const before = s.assignment!;
    const res = await c.updateAssignment(
      { workspaceId: s.ws, assignmentId: before.id, sessionId: s.seed!.id, pinned: true },
      O(),
    );
    const a = res.assignment;
    check(a, "no assignment in response");
    eq(a.id, before.id, "assignment.id");
    eq(a.sessionId, s.seed!.id, "assignment.sessionId");
    eq(a.pinned, true, "assignment.pinned");
    eq(a.accountName, "steam_bot_01", "assignment.accountName");
    eq(a.version, before.version + 1n, "assignment.version");
    const got = await c.getAssignment({ workspaceId: s.ws, assignmentId: a.id }, O());
    eq(got.assignment?.sessionId, s.seed!.id, "GetAssignment sessionId");
    eq(got.assignment?.pinned, true, "GetAssignment pinned");
    s.pinned = a;
  });

  await r.step("RebindAssignment on a pinned assignment is FailedPrecondition", ["pinned"], async () => {
    await expectCode(Code.FailedPrecondition, "RebindAssignment while pinned", () =>
      c.rebindAssignment({ workspaceId: s.ws, assignmentId: s.pinned!.id }, O()),
    );
  });

  await r.step("UpdateAssignment unpins", ["pinned"], async () => {
    const res = await c.updateAssignment({ workspaceId: s.ws, assignmentId: s.pinned!.id, pinned: false }, O());
    const a = res.assignment;
    check(a, "no assignment in response");
    eq(a.pinned, false, "assignment.pinned");
    eq(a.sessionId, s.seed!.id, "assignment.sessionId (unchanged)");
    eq(a.version, s.pinned!.version + 1n, "assignment.version");
    s.unpinned = a;
  });

  await r.step("RebindAssignment moves to another session", ["unpinned"], async () => {
    const before = s.unpinned!;
    const res = await c.rebindAssignment({ workspaceId: s.ws, assignmentId: before.id }, O());
    const a = res.assignment;
    check(a, "no assignment in response");
    check(!bytesEq(a.sessionId, s.seed!.id), "assignment still on its old session");
    check(s.bulkIds!.some((id) => bytesEq(id, a.sessionId)), "assignment moved outside the pool's sessions");
    eq(a.pinned, false, "assignment.pinned");
    eq(a.version, before.version + 1n, "assignment.version");
    eq(a.rotations, before.rotations + 1, "assignment.rotations");
    s.rebound = a;
  });

  await r.step("DeleteSession", ["seed"], async () => {
    await c.deleteSession({ workspaceId: s.ws, sessionId: s.seed!.id }, O());
    await expectCode(Code.NotFound, "GetSession of the deleted session", () =>
      c.getSession({ workspaceId: s.ws, sessionId: s.seed!.id }, O()),
    );
    const list = await c.listSessions({ workspaceId: s.ws, poolId: s.pool }, O());
    check(!list.sessionIds.some((id) => bytesEq(id, s.seed!.id)), "ListSessions still lists the deleted session");
    s.deleted = true;
  });

  await r.step("RotateWorkspaceKey", ["ws", "owner", "keyVersion"], async () => {
    const res = await c.rotateWorkspaceKey({ workspaceId: s.ws }, O());
    eq(res.previousKeyVersion, s.keyVersion!, "previousKeyVersion");
    eq(res.newKeyVersion, s.keyVersion! + 1, "newKeyVersion");
    const w = await c.getWorkspace({ workspaceId: s.ws }, O());
    eq(w.workspace?.keyVersion, res.newKeyVersion, "workspace.keyVersion after rotation");
    if (s.provider) {
      const p = await c.getProvider({ workspaceId: s.ws, providerId: s.provider }, O());
      eq(p.provider?.keyVersion, res.newKeyVersion, "provider.keyVersion (credentials re-sealed)");
    }
    s.keyVersion = res.newKeyVersion;
    s.rotated = true;
  });

  await r.step("ResolveProxy after key rotation decrypts", ["assignment", "rotated"], async () => {
    const res = await c.resolveProxy({ workspaceId: s.ws, poolId: s.pool, accountName: "steam_bot_01" }, O());
    const a = res.assignment;
    check(a, "no assignment in response");
    eq(a.id, s.assignment!.id, "assignment.id");
    if (s.rebound) eq(a.sessionId, s.rebound.sessionId, "assignment.sessionId (sticky since the rebind)");
    checkProxy(res.proxy, await sessionById(a.sessionId));
  });

  // ---------------------------------------------------------- error codes

  await r.step("NotFound: GetSession with a random id", ["ws", "owner"], async () => {
    const id = crypto.getRandomValues(new Uint8Array(16));
    await expectCode(Code.NotFound, "GetSession random id", () =>
      c.getSession({ workspaceId: s.ws, sessionId: id }, O()),
    );
  });

  await r.step("InvalidArgument: GetSession with a 3-byte id", ["ws", "owner"], async () => {
    await expectCode(Code.InvalidArgument, "GetSession 3-byte id", () =>
      c.getSession({ workspaceId: s.ws, sessionId: new Uint8Array([1, 2, 3]) }, O()),
    );
  });

  await r.step("Unauthenticated: unknown bearer key", ["ws"], async () => {
    await expectCode(Code.Unauthenticated, "GetWorkspace with a bad key", () =>
      c.getWorkspace({ workspaceId: s.ws }, auth("pp_not-a-real-key-0000000000000000")),
    );
  });

  await r.step("AlreadyExists: CreateSession with a taken token", ["bulkIds"], async () => {
    await expectCode(Code.AlreadyExists, "CreateSession token bulk-a", () =>
      c.createSession({ workspaceId: s.ws, poolId: s.pool, providerId: s.provider, token: "bulk-a" }, O()),
    );
  });

  await r.step("CreateApiKey VIEWER", ["ws", "owner"], async () => {
    const res = await c.createApiKey({ workspaceId: s.ws, name: "viewer", role: ApiKeyRole.VIEWER }, O());
    eq(res.apiKey?.role, ApiKeyRole.VIEWER, "apiKey.role");
    s.viewer = res.secret;
  });

  await r.step("PermissionDenied: VIEWER calls CreateSession", ["viewer", "pool", "provider"], async () => {
    // The viewer key is valid: it may read.
    const w = await c.getWorkspace({ workspaceId: s.ws }, auth(s.viewer!));
    eq(w.workspace?.id, s.ws, "viewer GetWorkspace");
    await expectCode(Code.PermissionDenied, "viewer CreateSession", () =>
      c.createSession(
        { workspaceId: s.ws, poolId: s.pool, providerId: s.provider, token: "viewer-made", host: "203.0.113.7", port: 1 },
        auth(s.viewer!),
      ),
    );
  });

  await r.step("PermissionDenied: a key used on another workspace", ["ws", "owner"], async () => {
    const other = await c.createWorkspace({ name: `${name}-other` }, A);
    check(other.workspace, "no workspace in response");
    await expectCode(Code.PermissionDenied, "owner key of workspace 1 on workspace 2", () =>
      c.getWorkspace({ workspaceId: other.workspace!.id }, O()),
    );
  });
}

// ------------------------------------------------------------ main

for (const mode of modes) {
  await scenario(mode);
}
console.log(`steps: ${totals.pass} passed, ${totals.fail} failed, ${totals.skip} skipped`);
process.exitCode = totals.fail > 0 ? 1 : 0;
