// npm run bench:auth — the identity module under load: the argon2id ceiling, complete
// hosted-page sign-ins (authorization code with PKCE, over plain HTTP with a cookie jar),
// access-token verification, and client-credentials grants, against a real server process
// on the real PostgreSQL (a fresh database).
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { availableParallelism } from 'node:os';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { KeyStore } from '../src/platform/auth/keys.ts';
import { TokenService } from '../src/platform/auth/tokens.ts';
import { loadConfig, oidcIssuer } from '../src/platform/config.ts';
import { openDatabase } from '../src/platform/db/database.ts';
import { MAX_TOKEN_TTL_SECONDS } from '../src/platform/kernel.ts';
import { ARGON2_PARAMS, hashPassword, verifyPassword } from '../src/modules/players/password-hash.ts';
import { adminQuery, fmt, load, pgUrl, pitbossCli, randomPort, startServer, type LoadResult } from './lib.ts';

const CORES = availableParallelism();
const PLAYERS = Number(process.env.BENCH_PLAYERS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
// Sign-ins are argon2id-bound: the server runs up to 4 hashes at once (libuv's pool) on
// CORES cores, and each flow spends most of its five requests elsewhere, so 4 flows per
// core keep every core hashing without a long queue in front of the pool.
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4 * CORES);
// Raw hashing: as many in flight as the libuv pool runs (like bench:players).
const HASH_CONCURRENCY = 4;
const PASSWORD = 'lantern-orbit-velvet-42';
const REDIRECT = 'http://127.0.0.1/bench/callback';

// The brute-force throttle counts failed sign-ins per account and per source address and
// locks past its thresholds; every bench request comes from 127.0.0.1. A successful
// sign-in is never throttled, but a few failures under load (a timeout, a bench bug) must
// not lock the bench out and turn the rest of the run into 429s: the bench server alone
// gets thresholds it cannot reach and no delay. The product defaults are unchanged.
const THROTTLE_ENV = {
  SIGN_IN_SOURCE_LOCK_THRESHOLD: '1000000',
  SIGN_IN_ACCOUNT_LOCK_THRESHOLD: '10000',
  SIGN_IN_DELAY_AFTER: '1000',
};


const stamp = Date.now();
const dbName = `pitboss_bench_auth_${stamp}`;
const port = randomPort();
const base = `http://127.0.0.1:${port}`;
// The issuer must be the address the bench reaches, as the provider's redirects name it.
const env: Record<string, string> = { DATABASE_URL: pgUrl(dbName), PUBLIC_URL: base, LEDGER_VERIFY_SECONDS: '0', ...THROTTLE_ENV };
// BENCH_PROFILE=dir writes the server's CPU profile there (open it in Chrome DevTools).
if (process.env.BENCH_PROFILE) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}`;
const config = loadConfig({ ...process.env, ...env, DATABASE_POOL_SIZE: '2' });
const issuer = oidcIssuer(config);

// --- HTTP with a cookie jar (one per simulated browser), keep-alive, no redirects followed.

const agent = new Agent({ keepAlive: true, maxSockets: 512 });

interface Hop {
  status: number;
  location: string | undefined;
  body: string;
  setCookie: string[];
}

function http(url: URL, method: string, headers: Record<string, string>, body?: string): Promise<Hop> {
  return new Promise((done, fail) => {
    const req = request(url, { method, agent, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        done({
          status: res.statusCode ?? 0,
          location: res.headers.location,
          body: Buffer.concat(chunks).toString('utf8'),
          setCookie: res.headers['set-cookie'] ?? [],
        }),
      );
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** A browser: cookies by name with their path (one host), as browser.test-support.ts keeps them. */
class Jar {
  readonly #cookies = new Map<string, { value: string; path: string }>();

  async request(url: URL, form?: Record<string, string>): Promise<Hop> {
    const cookie = [...this.#cookies]
      .filter(([, c]) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
    const headers: Record<string, string> = { accept: 'text/html', 'user-agent': 'pitboss-bench' };
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const hop = await http(url, form ? 'POST' : 'GET', headers, body);
    for (const line of hop.setCookie) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      const path = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      const expired = attributes.some((a) => /^expires=thu, 01 jan 1970/i.test(a) || /^max-age=0$/i.test(a));
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, { value, path });
    }
    return hop;
  }
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

function percentiles(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const pct = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0).toFixed(2);
  return `p50 ${pct(50)} ms, p95 ${pct(95)} ms, p99 ${pct(99)} ms`;
}

// --- The run.

console.log(
  `bench:auth on PostgreSQL, ${CORES} cores, ${PLAYERS} players, ${SECONDS}s per measurement, concurrency ${CONCURRENCY} (BENCH_CONCURRENCY); node ${process.version}`,
);
console.log(
  `bench server throttle (not the product defaults): SIGN_IN_SOURCE_LOCK_THRESHOLD=${THROTTLE_ENV.SIGN_IN_SOURCE_LOCK_THRESHOLD}, SIGN_IN_ACCOUNT_LOCK_THRESHOLD=${THROTTLE_ENV.SIGN_IN_ACCOUNT_LOCK_THRESHOLD}, SIGN_IN_DELAY_AFTER=${THROTTLE_ENV.SIGN_IN_DELAY_AFTER}, as every request comes from 127.0.0.1`,
);

// 1. The ceiling: the players module's own hashing function, in this process, nothing else running.
const params = `m=${ARGON2_PARAMS.memoryCost},t=${ARGON2_PARAMS.timeCost},p=${ARGON2_PARAMS.parallelism}`;
await load({ concurrency: HASH_CONCURRENCY, total: 8, next: async () => Boolean(await hashPassword(PASSWORD)) });
const rawHash = await load({ concurrency: HASH_CONCURRENCY, seconds: Math.min(SECONDS, 5), next: async () => Boolean(await hashPassword(PASSWORD)) });
console.log(`1. argon2id hashPassword (${params}), concurrency ${HASH_CONCURRENCY}: ${fmt(rawHash).replace('requests', 'hashes')}`);
const encoded = await hashPassword(PASSWORD);
const rawVerify = await load({ concurrency: HASH_CONCURRENCY, seconds: Math.min(SECONDS, 5), next: () => verifyPassword(encoded, PASSWORD) });
console.log(`   argon2id verifyPassword (what a sign-in runs), concurrency ${HASH_CONCURRENCY}: ${fmt(rawVerify).replace('requests', 'verifications')}`);

await adminQuery(`create database ${dbName}`);
const server = await startServer(env, port);
console.log(`start-up on an empty database (migrations included): ${server.startupMs.toFixed(0)} ms`);
const database = await openDatabase(config);
try {
  const cli = pitbossCli(env);
  const web = JSON.parse(cli(['client', 'create', '--name', 'Bench web app', '--grant', 'authorization_code', '--redirect-uri', REDIRECT])) as { clientId: string; clientSecret: string };
  const service = JSON.parse(cli(['client', 'create', '--name', 'Bench service', '--grant', 'client_credentials', '--scope', 'players.read'])) as { clientId: string; clientSecret: string };

  // Players, registered beforehand (not timed).
  const tag = stamp.toString(36);
  const logins: string[] = [];
  const reg = await load({
    concurrency: 8,
    total: PLAYERS,
    next: async (i) => {
      const login = `auth_${tag}_${i}`;
      const body = JSON.stringify({ email: `auth.${tag}.${i}@example.com`, login, password: PASSWORD, country: 'DE', currency: 'EUR', dateOfBirth: '1990-01-01' });
      const res = await http(new URL(`${base}/v1/players`), 'POST', { 'content-type': 'application/json' }, body);
      if (res.status !== 201) throw new Error(`registration: ${res.status} ${res.body}`);
      logins.push(login);
      return true;
    },
  });
  if (logins.length < PLAYERS) throw new Error(`registered only ${logins.length} of ${PLAYERS} players`);
  console.log(`registered ${logins.length} players in ${reg.seconds.toFixed(1)} s (setup, not measured); clients registered with \`pitboss client create\``);

  /** GET /oidc/auth -> the sign-in page: the browser's jar, the form's action and the PKCE verifier. */
  async function openSignIn() {
    const jar = new Jar();
    const verifier = randomBytes(32).toString('base64url');
    const state = randomBytes(16).toString('base64url');
    const auth = new URL(`${issuer}/auth`);
    auth.search = new URLSearchParams({
      client_id: web.clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'openid api',
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    const start = await jar.request(auth);
    if (start.status !== 303 || !start.location) throw new Error(`/oidc/auth: ${start.status} ${start.body.slice(0, 200)}`);
    const pageUrl = new URL(start.location, auth);
    const page = await jar.request(pageUrl);
    const action = /<form[^>]*action="([^"]+)"/.exec(page.body)?.[1]?.replace(/&amp;/g, '&');
    if (page.status !== 200 || !action) throw new Error(`sign-in page: ${page.status} ${page.body.slice(0, 200)}`);
    return { jar, verifier, state, action: new URL(action, pageUrl) };
  }

  const timings = { post: [] as number[], token: [] as number[] };
  const accessTokens: string[] = [];
  let failures = 0;
  const complain = (what: string) => {
    if (++failures <= 3) console.log(`  failed: ${what}`);
    return false;
  };

  /** One complete sign-in: the page, the password, the code, the tokens. */
  const signIn = (i: number): Promise<boolean> => signInOnce(i).catch((error: unknown) => complain(String(error)));
  async function signInOnce(i: number): Promise<boolean> {
    const login = logins[(i * 7919) % logins.length]!;
    const { jar, verifier, state, action } = await openSignIn();
    const t0 = performance.now();
    const posted = await jar.request(action, { login, password: PASSWORD });
    timings.post.push(performance.now() - t0);
    if (posted.status !== 303 || !posted.location) return complain(`sign-in POST ${posted.status} ${posted.body.slice(0, 200)}`);
    // The provider resumes the authorization request and redirects to the client with the code.
    const resumed = await jar.request(new URL(posted.location, action));
    if (resumed.status !== 303 || !resumed.location?.startsWith(REDIRECT)) return complain(`resume ${resumed.status} ${resumed.location ?? resumed.body.slice(0, 200)}`);
    const callback = new URL(resumed.location);
    const code = callback.searchParams.get('code');
    if (!code || callback.searchParams.get('state') !== state) return complain(`callback without code or state: ${callback.href}`);
    const t1 = performance.now();
    const tokens = await http(
      new URL(`${issuer}/token`),
      'POST',
      { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(web.clientId, web.clientSecret) },
      new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }).toString(),
    );
    timings.token.push(performance.now() - t1);
    if (tokens.status !== 200) return complain(`token exchange ${tokens.status} ${tokens.body.slice(0, 200)}`);
    const { access_token: at, id_token: idt } = JSON.parse(tokens.body) as { access_token?: string; id_token?: string };
    if (!at || !idt || at.split('.').length !== 3) return complain(`token response without a JWT access token and an ID token: ${tokens.body.slice(0, 200)}`);
    if (accessTokens.length < 10_000) accessTokens.push(at);
    return true;
  }

  // 2. Complete sign-ins: warm-up (JIT, connection pool, the provider's first build), then measured.
  await load({ concurrency: CONCURRENCY, seconds: 2, next: signIn });
  timings.post.length = 0;
  timings.token.length = 0;
  failures = 0;
  const flows = await load({ concurrency: CONCURRENCY, seconds: SECONDS, next: signIn });
  console.log(
    `2. complete sign-ins (GET /oidc/auth -> GET sign-in page -> POST login+password -> GET resume -> code -> POST /oidc/token with PKCE; a new browser each, ${logins.length} players), concurrency ${CONCURRENCY}, ${SECONDS}s: ${fmt(flows).replace('requests', 'sign-ins')}`,
  );
  console.log(`   within those flows: sign-in POST ${percentiles(timings.post)}; token exchange ${percentiles(timings.token)}`);

  // The sign-in POST alone: interactions opened beforehand (untimed), then only the POSTs.
  // Enough for the POSTs to run at the argon2id ceiling for the whole measurement.
  const expected = Math.ceil(Math.max(rawVerify.perSecond, flows.perSecond) * SECONDS * 1.2) + CONCURRENCY;
  const opened: Awaited<ReturnType<typeof openSignIn>>[] = [];
  const prepared = await load({
    concurrency: CONCURRENCY,
    total: expected,
    next: async () => {
      opened.push(await openSignIn());
      return true;
    },
  });
  const posts = await load({
    concurrency: CONCURRENCY,
    total: opened.length,
    seconds: SECONDS,
    next: async (i) => {
      const { jar, action } = opened[i]!;
      const posted = await jar.request(action, { login: logins[(i * 7919) % logins.length]!, password: PASSWORD });
      return posted.status === 303 ? true : complain(`sign-in POST alone ${posted.status} ${posted.body.slice(0, 200)}`);
    },
  });
  const ranOut = posts.requests >= opened.length ? `, ran out of the prepared interactions before ${SECONDS}s` : '';
  console.log(
    `   sign-in POST alone (${opened.length} interactions opened beforehand in ${prepared.seconds.toFixed(1)} s, untimed${ranOut}), concurrency ${CONCURRENCY}: ${fmt(posts).replace('requests', 'POSTs')}`,
  );

  // 3. Access-token verification in this process, with the platform's verifier (TokenService.verify:
  // the key store on the same database, ES256, typ at+jwt, issuer, audience, lifetime), and with
  // jose against the provider's published JWKS, as an outside resource server would.
  if (accessTokens.length === 0) throw new Error('no access tokens to verify');
  const keys = new KeyStore(database.db, { rotationDays: config.signingKeyRotationDays, maxTokenTtlSeconds: MAX_TOKEN_TTL_SECONDS });
  const verifier = new TokenService(keys, config.publicUrl ?? base, config.accessTokenTtlSeconds, { trustedIssuers: [issuer] });
  const first = await verifier.verify(accessTokens[0]!);
  if (first.kind !== 'player' || first.id !== decodeJwt(accessTokens[0]!).sub) throw new Error(`unexpected principal ${JSON.stringify(first)}`);
  const verifyWith = (check: (token: string) => Promise<unknown>) => (i: number) => check(accessTokens[i % accessTokens.length]!).then(() => true);
  await load({ concurrency: CONCURRENCY, seconds: 1, next: verifyWith((t) => verifier.verify(t)) });
  const platform = await load({ concurrency: CONCURRENCY, seconds: SECONDS, next: verifyWith((t) => verifier.verify(t)) });
  console.log(`3. access-token verification, platform TokenService.verify, one process, concurrency ${CONCURRENCY}, ${accessTokens.length} distinct tokens: ${fmt(platform).replace('requests', 'verifications')}`);
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const joseCheck = (t: string) => jwtVerify(t, jwks, { issuer, audience: 'pitboss', algorithms: ['ES256'], typ: 'at+jwt' });
  await load({ concurrency: CONCURRENCY, seconds: 1, next: verifyWith(joseCheck) });
  const remote = await load({ concurrency: CONCURRENCY, seconds: SECONDS, next: verifyWith(joseCheck) });
  console.log(`   jose jwtVerify against the published JWKS (${issuer}/jwks, fetched once and cached), same tokens: ${fmt(remote).replace('requests', 'verifications')}`);

  // 4. Client-credentials grants over HTTP (a confidential client, client_secret_basic).
  const grant = new URLSearchParams({ grant_type: 'client_credentials', scope: 'players.read' }).toString();
  const serviceAuth = basic(service.clientId, service.clientSecret);
  const clientCredentials = async () => {
    const res = await http(new URL(`${issuer}/token`), 'POST', { 'content-type': 'application/x-www-form-urlencoded', authorization: serviceAuth }, grant);
    return res.status === 200 && res.body.includes('"access_token"') ? true : complain(`client credentials ${res.status} ${res.body.slice(0, 200)}`);
  };
  await load({ concurrency: CONCURRENCY, seconds: 2, next: clientCredentials });
  const cc = await load({ concurrency: CONCURRENCY, seconds: SECONDS, next: clientCredentials });
  console.log(`4. client-credentials grants (POST /oidc/token, client_secret_basic, ES256 JWT), concurrency ${CONCURRENCY}, ${SECONDS}s: ${fmt(cc).replace('requests', 'grants')}`);

  const share = (r: LoadResult, of: LoadResult) => `${((100 * r.perSecond) / of.perSecond).toFixed(0)}%`;
  console.log(
    `summary: ${flows.perSecond.toFixed(1)} complete sign-ins/s (${posts.perSecond.toFixed(1)} sign-in POSTs/s alone) against an argon2id ceiling of ${rawVerify.perSecond.toFixed(1)} verifications/s (${rawHash.perSecond.toFixed(1)} hashes/s): sign-ins reach ${share(flows, rawVerify)} of it (POSTs alone ${share(posts, rawVerify)})`,
  );
} finally {
  await database.close();
  await server.stop();
  await adminQuery(`drop database if exists ${dbName} with (force)`);
}
