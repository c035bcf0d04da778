// A Node bot using undici's ProxyAgent (the login in the proxy URL), as the
// gateway suite runs it: fetches each URL given, trusting the origin's
// certificate for HTTPS. Prints "<status> <body>" per URL.
//   node undici.mjs <proxy-url> <url>... <ca-file>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.cwd() + '/');
const { ProxyAgent, fetch } = require('undici');

const args = process.argv.slice(2);
const proxy = args[0];
const ca = readFileSync(args[args.length - 1]);
const agent = new ProxyAgent({ uri: proxy, requestTls: { ca } });
for (const url of args.slice(1, -1)) {
  const r = await fetch(url, { dispatcher: agent });
  console.log(`${r.status} ${await r.text()}`);
}
