// What bench/wallet.ts and bench/wallet-ab.ts share: a database and a Hub88 key pair, a
// staff token, funded players with game sessions, and pre-signed Hub88 game rounds (a bet,
// and every other round a win on it) with what fires them.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { adminQuery, call, load, pgUrl, pitbossCli, registrationBody } from './lib.ts';
import type { RawHttpClient } from './raw-http.ts';

/**
 * Creates the database `name` and a Hub88 key pair: the servers' environment (that
 * database, Hub88's public key, no scheduled ledger verify, a pool of 20) and the
 * private key the bench signs with.
 */
export async function walletBenchSetup(name: string): Promise<{ env: Record<string, string>; privatePem: string }> {
  await adminQuery(`create database ${name}`);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    env: { DATABASE_URL: pgUrl(name), HUB88_PUBLIC_KEY: publicPem.replace(/\n/g, '\\n'), LEDGER_VERIFY_SECONDS: '0', DATABASE_POOL_SIZE: '20' },
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** A staff member created with the CLI on the servers' database, as an Authorization header. */
export function staffHeaders(env: Record<string, string>, stamp: number, checkout?: string): Record<string, string> {
  const cli = pitbossCli(env, checkout);
  cli(['admin', 'create', '--email', `bench.${stamp}@casino.example`]);
  return { authorization: `Bearer ${cli(['token', '--staff', `bench.${stamp}@casino.example`, '--ttl', '2h'])}` };
}

export interface BenchPlayer {
  id: string;
  token: string;
}

/** Registers `count` players through `url`, deposits 100 000.00 EUR for each (sandbox) and opens a game session for each. */
export async function createPlayers(url: string, staff: Record<string, string>, count: number, stamp: number): Promise<BenchPlayer[]> {
  const players: BenchPlayer[] = [];
  await load({
    concurrency: 8,
    total: count,
    next: async (i) => {
      const reg = await call(`${url}/v1/players`, 'POST', registrationBody(stamp, i));
      const id = (JSON.parse(reg.body) as { id: string }).id;
      const dep = await call(`${url}/v1/players/${id}/deposits`, 'POST', { amount: '100000.00', currency: 'EUR' }, { ...staff, 'idempotency-key': `bench-dep-${id}` });
      if (dep.status !== 201) throw new Error(`deposit: ${dep.status} ${dep.body}`);
      const session = await call(`${url}/v1/players/${id}/game-sessions`, 'POST', { gameCode: 'bench_slot', currency: 'EUR' }, staff);
      players.push({ id, token: (JSON.parse(session.body) as { token: string }).token });
      return true;
    },
  });
  await new Promise((r) => setTimeout(r, 1500)); // the sandbox settles deposits after ~100 ms
  return players;
}

export interface SignedCall {
  path: string;
  body: string;
  kind: 'bet' | 'win';
  signature: string;
}

/** A game round: its bet's call, and its win's (null every other round); `player` indexes the players given. */
export interface Round {
  bet: number;
  win: number | null;
  player: number;
}

/**
 * `count` game rounds over `players` in turn: a bet of 1.00 EUR, and every other round a
 * win of 1.50 EUR on it (sent after the bet's answer). Signed with Hub88's private key on
 * two worker threads: RSA signing is the load generator's own cost, done before the timed runs.
 */
export async function signedRounds(players: readonly BenchPlayer[], count: number, privatePem: string): Promise<{ calls: SignedCall[]; rounds: Round[] }> {
  const bodies: Omit<SignedCall, 'signature'>[] = [];
  const rounds: Round[] = [];
  for (let i = 0; i < count; i++) {
    const p = players[i % players.length]!;
    const betId = randomUUID();
    const base = { user: p.id, token: p.token, game_code: 'bench_slot', currency: 'EUR', round: `round-${i}`, request_uuid: randomUUID() };
    const bet = bodies.push({ path: 'transaction/bet', kind: 'bet', body: JSON.stringify({ ...base, transaction_uuid: betId, amount: 100_000, round_closed: false }) }) - 1;
    let win: number | null = null;
    if (i % 2 === 0) {
      win = bodies.push({ path: 'transaction/win', kind: 'win', body: JSON.stringify({ ...base, request_uuid: randomUUID(), transaction_uuid: randomUUID(), reference_transaction_uuid: betId, amount: 150_000, round_closed: true }) }) - 1;
    }
    rounds.push({ bet, win, player: i % players.length });
  }
  const chunks = 2;
  const size = Math.ceil(bodies.length / chunks);
  const signatures = (
    await Promise.all(
      Array.from({ length: chunks }, (_, c) =>
        new Promise<string[]>((done, fail) => {
          const w = new Worker(new URL('./sign-worker.ts', import.meta.url), { workerData: { pem: privatePem, bodies: bodies.slice(c * size, (c + 1) * size).map((b) => b.body) } });
          w.once('message', done);
          w.once('error', fail);
        }),
      ),
    )
  ).flat();
  return { calls: bodies.map((b, i) => ({ ...b, signature: signatures[i]! })), rounds };
}

/**
 * What fires the next pre-signed round, each call once: its bet, then its win once the bet
 * is answered RS_OK. `clientOf` names the client a round goes through; `answered` hears each
 * call with its latency (ms) and whether it was RS_OK.
 */
export function roundFirer(
  signed: { calls: readonly SignedCall[]; rounds: readonly Round[] },
  clientOf: (round: Round) => RawHttpClient,
  answered: (call: SignedCall, ms: number, ok: boolean, response: { status: number; body: string }) => void,
): () => Promise<boolean> {
  let next = 0;
  const send = async (n: number, client: RawHttpClient): Promise<boolean> => {
    const c = signed.calls[n]!;
    const t0 = performance.now();
    const res = await client.request('POST', `/providers/hub88/${c.path}`, { 'content-type': 'application/json', 'x-hub88-signature': c.signature }, c.body);
    const ok = res.status === 200 && res.body.includes('"RS_OK"');
    answered(c, performance.now() - t0, ok, res);
    return ok;
  };
  return async () => {
    const r = signed.rounds[next++];
    if (!r) throw new Error('the bench ran out of pre-signed rounds: raise BENCH_EXPECTED_BETS_PER_SECOND');
    const client = clientOf(r);
    const ok = await send(r.bet, client);
    return r.win === null || !ok ? ok : send(r.win, client);
  };
}
