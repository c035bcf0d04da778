// Raw-response checks for the connect-node modes.
//
// connect-es parses JSON leniently, as protojson parsers must: it accepts an
// int64 written as a JSON number, an int32 written as a string, bytes in
// URL-safe base64, and so on. The contract is stricter about what the server
// *writes* (API.md §1: int64 as decimal strings, int32 as numbers, bytes as
// standard padded base64, timestamps with "Z", enums by name, lowerCamelCase
// names), so a lenient client alone would not notice a server that breaks it.
//
// This module taps node:http (the module connect-node's HTTP/1.1 client uses)
// without changing the transport: it wraps http.request, and on every response
// it tees the body chunks that connect-node reads. When a response body ends it
// is decoded (gzip/br), and for a successful JSON response the raw JSON is
// compared with the canonical protojson of the same message
// (toJson(..., {alwaysEmitImplicit: true})). Every key, JSON type and value
// must agree, so e.g. `"version": 2` (a number) instead of `"version": "2"`,
// or a field the schema does not have (a leaked `password`), is a problem.
// Problems are collected and the scenario step during which they appeared fails.
import { createRequire, syncBuiltinESMExports } from "node:module";
import * as zlib from "node:zlib";
import type * as httpTypes from "node:http";
import { fromJson, toJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { Proxies } from "../gen/ts/proxies/v1/proxies_pb.js";

export interface Exchange {
  httpMethod: string;
  rpc: string;
  status: number;
  contentType: string;
}

const require = createRequire(import.meta.url);
const httpCjs = require("node:http") as typeof httpTypes;

/** Problems seen on the wire since the last drain(). */
let problems: string[] = [];
/** Exchanges seen since the last drain(). */
let exchanges: Exchange[] = [];
let installed = false;

const outputs = new Map<string, DescMessage>();
const readOnly = new Set<string>();
for (const m of Proxies.methods) {
  outputs.set(m.name, m.output);
  if (m.idempotency === 1 /* NO_SIDE_EFFECTS */) readOnly.add(m.name);
}

export function isReadOnly(rpc: string): boolean {
  return readOnly.has(rpc);
}

/** Records a problem found by a check outside this module. */
export function report(problem: string): void {
  problems.push(problem);
}

export function drain(): { problems: string[]; exchanges: Exchange[] } {
  const out = { problems, exchanges };
  problems = [];
  exchanges = [];
  return out;
}

export function install(): void {
  if (installed) return;
  installed = true;
  const original = httpCjs.request;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (httpCjs as any).request = function patchedRequest(this: unknown, ...args: any[]) {
    const req = (original as any).apply(this, args) as httpTypes.ClientRequest;
    observe(req);
    return req;
  };
  // Make `import * as http from "node:http"` (connect-node) see the wrapper.
  syncBuiltinESMExports();
}

function observe(req: httpTypes.ClientRequest): void {
  // Registered synchronously, so it runs before connect-node's own
  // "response" listener (added once the socket is connected).
  req.on("response", (res: httpTypes.IncomingMessage) => {
    const path = (req.path ?? "").split("?")[0];
    const m = /^\/proxies\.v1\.Proxies\/([A-Za-z]+)$/.exec(path);
    if (!m) return;
    const rpc = m[1];
    const chunks: Buffer[] = [];
    const inner = res[Symbol.asyncIterator].bind(res);
    // Tee the chunks connect-node pulls through the async iterator.
    (res as any)[Symbol.asyncIterator] = function () {
      const it = inner();
      const wrapped = {
        async next() {
          const r = await it.next();
          if (r.done) {
            finish(req.method, rpc, res, Buffer.concat(chunks));
          } else {
            chunks.push(Buffer.from(r.value as Uint8Array));
          }
          return r;
        },
        async return(v?: unknown) {
          return it.return ? it.return(v) : { done: true as const, value: v };
        },
        async throw(e?: unknown) {
          if (it.throw) return it.throw(e);
          throw e;
        },
        [Symbol.asyncIterator]() {
          return wrapped;
        },
      };
      return wrapped;
    };
  });
}

function finish(httpMethod: string, rpc: string, res: httpTypes.IncomingMessage, body: Buffer): void {
  const status = res.statusCode ?? 0;
  const contentType = String(res.headers["content-type"] ?? "");
  exchanges.push({ httpMethod, rpc, status, contentType });
  let raw: Buffer;
  try {
    const enc = String(res.headers["content-encoding"] ?? "identity").toLowerCase();
    raw =
      enc === "gzip" ? zlib.gunzipSync(body) : enc === "br" ? zlib.brotliDecompressSync(body) : body;
  } catch (e) {
    problems.push(`${rpc}: response body does not decode per Content-Encoding: ${String(e)}`);
    return;
  }
  if (!/^application\/json\b/.test(contentType)) return;
  let json: JsonValue;
  try {
    json = JSON.parse(raw.toString("utf8")) as JsonValue;
  } catch (e) {
    problems.push(`${rpc}: HTTP ${status} body is not JSON: ${raw.toString("utf8").slice(0, 200)}`);
    return;
  }
  if (status !== 200) {
    // Connect error body: {"code": "...", "message": "..."}.
    if (
      json === null ||
      typeof json !== "object" ||
      Array.isArray(json) ||
      typeof json.code !== "string" ||
      (json.message !== undefined && typeof json.message !== "string")
    ) {
      problems.push(`${rpc}: HTTP ${status} error body is not {"code","message"}: ${raw.toString("utf8").slice(0, 200)}`);
    }
    return;
  }
  const schema = outputs.get(rpc);
  if (!schema) return;
  let canonical: JsonValue;
  try {
    canonical = toJson(schema, fromJson(schema, json, { ignoreUnknownFields: true }), {
      alwaysEmitImplicit: true,
    });
  } catch (e) {
    problems.push(`${rpc}: response JSON does not parse as ${schema.typeName}: ${String(e)}`);
    return;
  }
  for (const p of compareJson(json, canonical, schema.typeName)) {
    problems.push(`${rpc}: ${p}`);
  }
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

function jsonType(v: JsonValue): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/**
 * Compares what the server wrote with the canonical protojson of the same
 * message. Same keys (absent = default), same JSON types, same values;
 * timestamps only need to be RFC 3339 UTC "Z" strings naming the same instant.
 */
export function compareJson(raw: JsonValue, canonical: JsonValue, path: string): string[] {
  const out: string[] = [];
  const rt = jsonType(raw);
  const ct = jsonType(canonical);
  if (rt === "null") return out; // null means "not set"
  if (rt !== ct) {
    out.push(`${path}: server wrote a JSON ${rt} (${JSON.stringify(raw)}), protojson wants a ${ct} (${JSON.stringify(canonical)})`);
    return out;
  }
  if (rt === "object") {
    const r = raw as { [k: string]: JsonValue };
    const c = canonical as { [k: string]: JsonValue };
    for (const k of Object.keys(r)) {
      if (!(k in c)) {
        out.push(`${path}.${k}: field not in the schema's protojson (wrong name or leaked field): ${JSON.stringify(r[k])}`);
        continue;
      }
      out.push(...compareJson(r[k], c[k], `${path}.${k}`));
    }
    return out;
  }
  if (rt === "array") {
    const r = raw as JsonValue[];
    const c = canonical as JsonValue[];
    if (r.length !== c.length) {
      out.push(`${path}: array length ${r.length} vs ${c.length}`);
      return out;
    }
    r.forEach((v, i) => out.push(...compareJson(v, c[i], `${path}[${i}]`)));
    return out;
  }
  if (rt === "string" && TIMESTAMP.test(canonical as string)) {
    if (!TIMESTAMP.test(raw as string)) {
      out.push(`${path}: timestamp ${JSON.stringify(raw)} is not RFC 3339 UTC with "Z"`);
    } else if (Date.parse(raw as string) !== Date.parse(canonical as string)) {
      out.push(`${path}: timestamp ${JSON.stringify(raw)} vs ${JSON.stringify(canonical)}`);
    }
    return out;
  }
  if (raw !== canonical) {
    out.push(`${path}: server wrote ${JSON.stringify(raw)}, canonical protojson is ${JSON.stringify(canonical)}`);
  }
  return out;
}
