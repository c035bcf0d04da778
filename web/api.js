// A Connect JSON client of proxies.v1.Proxies on this origin: every call is
// POST /proxies.v1.Proxies/<Method> with the signed-in key as a bearer token.

const KEY = 'proxyplane.key';

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

export async function call(method, body = {}, secret = key.get()) {
  let resp;
  try {
    resp = await fetch(`/proxies.v1.Proxies/${method}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'Connect-Protocol-Version': '1',
        Authorization: `Bearer ${secret || ''}`,
      },
      body: JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError('unavailable', 'The server did not answer; is proxyplane running?', 0);
  }
  const text = await resp.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError('internal', `The server answered ${resp.status} with something that is not JSON.`, resp.status);
  }
  if (!resp.ok) {
    throw new ApiError(json.code || 'unknown', json.message || `HTTP ${resp.status}`, resp.status);
  }
  return json;
}

/** Every page of a List method, for small lists (workspaces, pools, providers, keys). */
export async function all(method, body, field, most = 5000) {
  const out = [];
  let cursor = '';
  do {
    const r = await call(method, { ...body, pageSize: 1000, cursor });
    out.push(...(r[field] || []));
    cursor = r.nextCursor || '';
  } while (cursor && out.length < most);
  return out;
}

const ORDER = ['API_KEY_ROLE_VIEWER', 'API_KEY_ROLE_EDITOR', 'API_KEY_ROLE_OWNER', 'API_KEY_ROLE_ADMIN'];

/** What a role may do (API.md §2; src/role.rs). */
export function abilities(role) {
  const rank = ORDER.indexOf(role);
  return {
    read: rank >= 0,
    edit: rank >= 1,
    own: rank >= 2,
    admin: rank >= 3,
  };
}

export const roleName = (r) => (r || '').replace('API_KEY_ROLE_', '');
