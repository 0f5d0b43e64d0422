import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { pino } from 'pino';
import { sql } from 'kysely';
import { databaseKinds } from '../../../../../test/support/databases.ts';
import { registration, startTestApp, type TestApp } from '../../../../../test/support/app.ts';
import { systemContext } from '../../../../platform/auth/principal.ts';
import type { Kernel } from '../../../../platform/module.ts';
import { createMetrics } from '../../../../platform/telemetry/metrics.ts';
import { DirectRoutes } from '../../../../platform/http/direct.ts';
import { parseAmount } from '../../../../platform/money.ts';
import type { WalletService } from '../../service.ts';
import { deposit, idempotency, transfer } from '../../operations.ts';
import { verifyLedger } from '../../verify.ts';
import { hub88Call, hub88Provider, hub88ToMinor, minorToHub88, signHub88 } from './index.ts';
import { parseRequest } from './protocol.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
// Environments often carry the PEM on one line with literal "\n": the provider accepts that.
const escapedPem = publicPem.replace(/\n/g, '\\n');

type Json = Record<string, unknown>;
const E = 100_000; // one major unit in Hub88 amounts

describe('Hub88 amounts', () => {
  it('convert exactly between Hub88 integers and minor units, per ISO 4217 exponent', () => {
    assert.equal(hub88ToMinor(356_000n, 'USD'), 356n);
    assert.equal(hub88ToMinor(1_000n, 'EUR'), 1n);
    assert.equal(hub88ToMinor(999n, 'EUR'), null, 'a hundredth of a cent is not a ledger amount');
    assert.equal(hub88ToMinor(50_000_000n, 'JPY'), 500n);
    assert.equal(hub88ToMinor(50_000n, 'JPY'), null, 'half a yen is not a ledger amount');
    assert.equal(hub88ToMinor(1_234_500n, 'KWD'), 12_345n);
    assert.equal(hub88ToMinor(12_345n, 'CLF'), null);
    assert.equal(hub88ToMinor(12_340n, 'CLF'), 1234n);
    assert.equal(minorToHub88(1250n, 'EUR'), 1_250_000n);
    assert.equal(minorToHub88(500n, 'JPY'), 50_000_000n);
    assert.equal(hub88ToMinor(2n ** 70n * 1000n, 'EUR'), null, 'beyond int8 is refused');
  });
});

describe('Hub88 request parsing', () => {
  const bet = { user: 'u', transaction_uuid: 't', token: 'k', request_uuid: 'r', game_code: 'g', currency: 'EUR' };
  const parse = (text: string) => parseRequest('bet', Buffer.from(text));
  it('reads the top-level amount exactly, beyond 2^53 too, and leaves an amount inside meta as it was sent', () => {
    const exact = (text: string) => {
      const r = parse(text);
      if (!r.ok) assert.fail(`refused: ${r.reply.status}`);
      return r.value;
    };
    assert.equal(exact(JSON.stringify({ ...bet, amount: 150_000 })).amount, 150_000n);
    // 2^53 + 1 is not a double: it must come from the source text, whatever else the body holds.
    const big = '9007199254740993';
    for (const text of [
      `{"user":"u","transaction_uuid":"t","token":"k","request_uuid":"r","game_code":"g","currency":"EUR","amount":${big},"meta":{"amount":7}}`,
      `{"meta":{"amount":5, "deep": {"amount": 1}},"user":"u","transaction_uuid":"t","token":"k","request_uuid":"r","game_code":"g","currency":"EUR","amount":${big}}`,
    ]) {
      const value = exact(text);
      assert.equal(value.amount, 9_007_199_254_740_993n);
      assert.equal(typeof (value.meta as { amount: unknown }).amount, 'number', 'meta keeps plain JSON values (it is stored as JSON)');
      assert.doesNotThrow(() => JSON.stringify(value.meta));
    }
    assert.equal(exact(JSON.stringify({ ...bet, amount: 5, meta: { amount: 2 ** 60 } })).amount, 5n);
  });
  it('a fractional, negative, exponent-written huge or string amount is RS_ERROR_WRONG_TYPES', () => {
    for (const amount of ['1.5', '-100', '1e20', '"100"', '12345678901234567890.5']) {
      const r = parse(`{"user":"u","transaction_uuid":"t","token":"k","request_uuid":"r","game_code":"g","currency":"EUR","amount":${amount}}`);
      assert.ok(!r.ok && r.reply.status === 'RS_ERROR_WRONG_TYPES', `${amount}: ${JSON.stringify(r)}`);
    }
  });
});

/**
 * The Hub88 routes on a bare server (no database), listening: each call is made both ways
 * in (the direct route over HTTP, Fastify's route by app.inject) and both must answer alike.
 */
async function edgeApp(kernel: Kernel, wallet: WalletService) {
  const direct = new DirectRoutes({ logger: kernel.logger, metrics: kernel.metrics, bodyLimit: 1_048_576, requestId: () => randomUUID(), closingBody: () => ({ status: 503, contentType: 'text/plain', body: '' }) });
  const app = Fastify({ serverFactory: direct.serverFactory, bodyLimit: 1_048_576 });
  direct.install(app);
  await app.register(async (scope) => hub88Provider(kernel, wallet).routes(scope as never));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  assert.ok(address && typeof address === 'object');
  const call = async (path: string, body: string) => {
    const headers = { 'content-type': 'application/json', 'x-hub88-signature': signHub88(privateKey, body) };
    const viaFastify = await app.inject({ method: 'POST', url: `/providers/hub88/${path}`, payload: body, headers });
    const res = await fetch(`http://127.0.0.1:${address.port}/providers/hub88/${path}`, { method: 'POST', body, headers });
    const text = await res.text();
    assert.deepEqual([res.status, text], [viaFastify.statusCode, viaFastify.body]);
    return { status: res.status, body: JSON.parse(text) as Json };
  };
  return { app, call };
}

describe('Hub88 edge (no database)', () => {
  it('without HUB88_PUBLIC_KEY refuses every call with RS_ERROR_INVALID_SIGNATURE, before touching the wallet', async () => {
    const touched: string[] = [];
    const wallet = new Proxy({}, { get: (_t, p) => touched.push(String(p)) }) as unknown as WalletService;
    const kernel = { config: { hub88PublicKey: '' }, logger: pino({ level: 'silent' }), metrics: createMetrics() } as unknown as Kernel;
    const { app, call } = await edgeApp(kernel, wallet);
    const body = JSON.stringify({ user: 'someone', request_uuid: randomUUID() });
    for (const path of ['user/info', 'user/balance', 'transaction/bet', 'transaction/win', 'transaction/rollback']) {
      assert.deepEqual(await call(path, body), { status: 200, body: { status: 'RS_ERROR_INVALID_SIGNATURE' } });
    }
    assert.deepEqual(touched, []);
    await app.close();
  });

  it('answers a failing wallet with HTTP 500 RS_ERROR_UNKNOWN, and an oversized body with RS_ERROR_WRONG_SYNTAX', async () => {
    const failing = { findGameSession: () => Promise.reject(new Error('database is down')) } as unknown as WalletService;
    const errors: unknown[] = [];
    const logger = pino({ level: 'silent' });
    logger.error = ((o: unknown) => errors.push(o));
    const kernel = { config: { hub88PublicKey: escapedPem }, logger, metrics: createMetrics() } as unknown as Kernel;
    const { app, call } = await edgeApp(kernel, failing);
    const body = JSON.stringify({ user: 'john12345', token: 'tok', request_uuid: 'r-500', game_code: 'g' });
    assert.deepEqual(await call('user/balance', body), { status: 500, body: { status: 'RS_ERROR_UNKNOWN', request_uuid: 'r-500' } });
    // Once per way in: the failure is logged with its endpoint (and the direct route's access line for the 500).
    assert.equal(errors.filter((e) => (e as { endpoint?: string }).endpoint === 'balance').length, 2);
    const big = JSON.stringify({ user: 'x'.repeat(2_000_000) });
    assert.deepEqual(await call('user/info', big), { status: 200, body: { status: 'RS_ERROR_WRONG_SYNTAX' } });
    await app.close();
  });

  it('refuses to start with a HUB88_PUBLIC_KEY that is not an RSA public key', () => {
    const kernel = (pem: string) => ({ config: { hub88PublicKey: pem }, logger: { info() {} }, metrics: createMetrics() }) as unknown as Kernel;
    assert.throws(() => hub88Provider(kernel('not a key'), {} as WalletService), /HUB88_PUBLIC_KEY/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.throws(() => hub88Provider(kernel(ec), {} as WalletService), /must be an RSA key/);
  });
});

for (const { kind, skip } of await databaseKinds()) {
  describe(`Hub88 seamless wallet (${kind})`, { skip }, () => {
    let app: TestApp;
    /** The server listening: calls go over real HTTP, the way Hub88's do (DirectRoute), not through app.inject. */
    let baseUrl: string;
    before(async () => {
      app = await startTestApp(kind, { HUB88_PUBLIC_KEY: escapedPem });
      await app.server.app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.app.server.address();
      assert.ok(address && typeof address === 'object');
      baseUrl = `http://127.0.0.1:${address.port}`;
    });
    after(async () => {
      if (!app) return;
      const report = await verifyLedger(app.server.runtime.database.db);
      await app.close();
      assert.ok(report.ok, JSON.stringify(report.problems));
    });

    const db = () => app.server.runtime.database.db;
    const wallet = () => app.server.runtime.wallet.wallet;

    /** Posts `body` (exactly these bytes) signed with `key`, or with the given signature header. */
    async function call(path: string, body: Json | string, opts: { signature?: string | null; signBody?: string; key?: KeyObject } = {}) {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      const signature = opts.signature === undefined ? signHub88(opts.key ?? privateKey, opts.signBody ?? text) : opts.signature;
      if (signature !== null) headers['x-hub88-signature'] = signature;
      const res = await fetch(`${baseUrl}/providers/hub88/${path}`, { method: 'POST', body: text, headers });
      const raw = await res.text();
      assert.equal(res.status, 200, raw);
      assert.match(String(res.headers.get('content-type')), /^application\/json/);
      return { body: JSON.parse(raw) as Json, raw };
    }

    /** A registered player with `amount` real money (and `bonus` moved to the bonus wallet) and an open game session. */
    async function player(opts: { currency?: string; amount?: string; bonus?: string } = {}) {
      const currency = opts.currency ?? 'EUR';
      const res = await app.server.app.inject({ method: 'POST', url: '/v1/players', payload: registration({ currency }) });
      assert.equal(res.statusCode, 201, res.body);
      const id = res.json().id as string;
      const amount = parseAmount(opts.amount ?? '100.00', currency);
      const funded = await wallet().submit(deposit({ playerId: id, currency, amount, provider: 'sandbox', paymentId: randomUUID(), idempotency: idempotency('test', randomUUID(), {}) }));
      assert.ok(funded.outcome.ok);
      if (opts.bonus) {
        const moved = await wallet().submit(transfer({ playerId: id, currency, amount: parseAmount(opts.bonus, currency), from: 'real', to: 'bonus', reason: 'test bonus', idempotency: idempotency('test', randomUUID(), {}) }));
        assert.ok(moved.outcome.ok);
      }
      const token = await session(id, currency);
      return { id, currency, token };
    }

    async function session(id: string, currency: string) {
      const res = await app.server.app.inject({
        method: 'POST',
        url: `/v1/players/${id}/game-sessions`,
        payload: { gameCode: 'hub_slot', currency },
        headers: { authorization: `Bearer ${await app.playerToken(id)}` },
      });
      assert.equal(res.statusCode, 201, res.body);
      return res.json().token as string;
    }

    async function wallets(id: string): Promise<Record<string, string>> {
      const b = await wallet().balances(systemContext('test'), id);
      return b.balances[0]!.wallets;
    }

    const count = async (table: string) => Number((await sql<{ n: bigint }>`select count(*)::int8 as n from ${sql.table(table)}`.execute(db())).rows[0]!.n);

    /** Everything money: the ledger and (unless told) the idempotency keys. */
    async function snapshot(id: string, keys = true) {
      return {
        wallets: await wallets(id),
        transactions: await count('wallet.transactions'),
        postings: await count('wallet.postings'),
        outbox: await count('platform.outbox'),
        ...(keys ? { keys: await count('wallet.idempotency') } : {}),
      };
    }

    const txn = (p: { id: string; token: string; currency: string }, fields: Json = {}): Json => ({
      user: p.id,
      transaction_uuid: randomUUID(),
      supplier_transaction_id: `sup-${randomUUID()}`,
      token: p.token,
      supplier_user: `cg_${p.id.slice(0, 8)}`,
      round_closed: false,
      round: `round-${randomUUID()}`,
      reward_uuid: null,
      request_uuid: randomUUID(),
      is_free: false,
      is_aggregated: false,
      game_code: 'hub_slot',
      currency: p.currency,
      bet: 'zero',
      amount: 0,
      meta: { selection: 'home_team', odds: 2.5 },
      ...fields,
    });

    it('user/info and user/balance: the player, and real + bonus in Hub88 units', async () => {
      const p = await player({ amount: '100.00', bonus: '20.00' });
      const info = await call('user/info', { user: p.id, request_uuid: 'r-info-1' });
      assert.deepEqual(info.body, { user: p.id, status: 'RS_OK', request_uuid: 'r-info-1' });
      const balance = await call('user/balance', { user: p.id, token: p.token, request_uuid: 'r-bal-1', game_code: 'hub_slot' });
      assert.deepEqual(balance.body, { user: p.id, status: 'RS_OK', request_uuid: 'r-bal-1', currency: 'EUR', balance: 100 * E });
      assert.equal(balance.raw, `{"user":"${p.id}","status":"RS_OK","request_uuid":"r-bal-1","currency":"EUR","balance":10000000}`);
      const unknown = await call('user/info', { user: randomUUID(), request_uuid: 'r-info-2' });
      assert.equal(unknown.body.status, 'RS_ERROR_UNKNOWN');
      const notUuid = await call('user/info', { user: 'john12345', request_uuid: 'r-info-3' });
      assert.equal(notUuid.body.status, 'RS_ERROR_UNKNOWN');
    });

    it('bet spends real then bonus; a replay answers the identical body; a win on the bet pays back in the same proportions', async () => {
      const p = await player({ amount: '100.00', bonus: '20.00' });
      assert.deepEqual(await wallets(p.id), { real: '80.00', bonus: '20.00', freespins: '0.00', tournament: '0.00' });
      const bet = txn(p, { amount: 90 * E });
      const first = await call('transaction/bet', bet);
      assert.deepEqual(first.body, { user: p.id, status: 'RS_OK', request_uuid: bet.request_uuid, currency: 'EUR', balance: 10 * E });
      assert.deepEqual(await wallets(p.id), { real: '0.00', bonus: '10.00', freespins: '0.00', tournament: '0.00' });

      const before = await snapshot(p.id);
      const replay = await call('transaction/bet', bet);
      assert.equal(replay.raw, first.raw, 'a replay answers byte for byte the same');
      // Hub88 retries with a new request_uuid: the same transaction, request_uuid echoed.
      const retried = await call('transaction/bet', { ...bet, request_uuid: 'retry-1', meta: { other: true } });
      assert.deepEqual(retried.body, { ...first.body, request_uuid: 'retry-1' });
      assert.deepEqual(await snapshot(p.id), before);

      const win = txn(p, { amount: 45 * E, reference_transaction_uuid: bet.transaction_uuid, round: bet.round, round_closed: true });
      const won = await call('transaction/win', win);
      assert.deepEqual(won.body, { user: p.id, status: 'RS_OK', request_uuid: win.request_uuid, currency: 'EUR', balance: 55 * E });
      // The bet was 80 real + 10 bonus: the win of 45 is 40 real + 5 bonus.
      assert.deepEqual(await wallets(p.id), { real: '40.00', bonus: '15.00', freespins: '0.00', tournament: '0.00' });
      assert.equal((await call('transaction/win', win)).raw, won.raw);
    });

    it('same transaction_uuid with another amount (or as another kind) is RS_ERROR_DUPLICATE_TRANSACTION and changes nothing', async () => {
      const p = await player();
      const bet = txn(p, { amount: 10 * E });
      assert.equal((await call('transaction/bet', bet)).body.status, 'RS_OK');
      const before = await snapshot(p.id);
      const other = await call('transaction/bet', { ...bet, amount: 11 * E, request_uuid: 'dup-1' });
      assert.deepEqual(other.body, { user: p.id, status: 'RS_ERROR_DUPLICATE_TRANSACTION', request_uuid: 'dup-1', currency: 'EUR', balance: 90 * E });
      const otherRound = await call('transaction/bet', { ...bet, round: 'another-round' });
      assert.equal(otherRound.body.status, 'RS_ERROR_DUPLICATE_TRANSACTION');
      const asWin = await call('transaction/win', { ...bet, reference_transaction_uuid: bet.transaction_uuid });
      assert.equal(asWin.body.status, 'RS_ERROR_DUPLICATE_TRANSACTION');
      assert.deepEqual(await snapshot(p.id), before);
    });

    it('rollback refunds a bet exactly, once; a win on a rolled-back or unknown bet does not exist', async () => {
      const p = await player({ amount: '50.00', bonus: '5.00' });
      const start = await wallets(p.id);
      const bet = txn(p, { amount: 48 * E });
      assert.equal((await call('transaction/bet', bet)).body.status, 'RS_OK');
      assert.deepEqual(await wallets(p.id), { real: '0.00', bonus: '2.00', freespins: '0.00', tournament: '0.00' });
      const rollback = { user: p.id, transaction_uuid: randomUUID(), supplier_transaction_id: 'sup-rb', token: p.token, round_closed: true, round: bet.round, request_uuid: randomUUID(), reference_transaction_uuid: bet.transaction_uuid, game_code: 'hub_slot', meta: null };
      const rolled = await call('transaction/rollback', rollback);
      assert.deepEqual(rolled.body, { user: p.id, status: 'RS_OK', request_uuid: rollback.request_uuid, currency: 'EUR', balance: 50 * E });
      assert.deepEqual(await wallets(p.id), start);
      const before = await snapshot(p.id);
      assert.equal((await call('transaction/rollback', rollback)).raw, rolled.raw, 'a replayed rollback answers the same');
      const second = await call('transaction/rollback', { ...rollback, transaction_uuid: randomUUID() });
      assert.equal(second.body.status, 'RS_OK', 'a second rollback of the same bet refunds nothing more');
      assert.equal(second.body.balance, 50 * E);
      const late = await call('transaction/win', txn(p, { amount: 5 * E, reference_transaction_uuid: bet.transaction_uuid }));
      assert.equal(late.body.status, 'RS_ERROR_TRANSACTION_DOES_NOT_EXIST');
      assert.equal(late.body.balance, 50 * E);
      const orphan = await call('transaction/win', txn(p, { amount: 5 * E, reference_transaction_uuid: randomUUID() }));
      assert.equal(orphan.body.status, 'RS_ERROR_TRANSACTION_DOES_NOT_EXIST');
      const after = await snapshot(p.id, false);
      assert.deepEqual(after.wallets, before.wallets);
      assert.equal(after.postings, before.postings);
      assert.equal(after.transactions, before.transactions + 1, 'only the second rollback is written, as a zero-amount record');
    });

    it('rollback of a bet not seen yet is RS_OK, and the late bet is refused', async () => {
      const p = await player();
      const betUuid = randomUUID();
      const rollback = { user: p.id, transaction_uuid: randomUUID(), token: p.token, round: 'r-early', request_uuid: randomUUID(), reference_transaction_uuid: betUuid, game_code: 'hub_slot' };
      const rolled = await call('transaction/rollback', rollback);
      assert.deepEqual(rolled.body, { user: p.id, status: 'RS_OK', request_uuid: rollback.request_uuid, currency: 'EUR', balance: 100 * E });
      const before = await snapshot(p.id);
      const bet = txn(p, { transaction_uuid: betUuid, amount: 10 * E, round: 'r-early' });
      const late = await call('transaction/bet', bet);
      assert.deepEqual(late.body, { user: p.id, status: 'RS_ERROR_TRANSACTION_ROLLED_BACK', request_uuid: bet.request_uuid, currency: 'EUR', balance: 100 * E });
      assert.equal((await call('transaction/bet', bet)).raw, late.raw);
      assert.deepEqual(await snapshot(p.id), before);
    });

    it('not enough money: RS_ERROR_NOT_ENOUGH_MONEY with the balance, nothing moved', async () => {
      const p = await player({ amount: '10.00', bonus: '2.50' });
      const before = await snapshot(p.id, false);
      const bet = txn(p, { amount: 12.51 * E });
      const refused = await call('transaction/bet', bet);
      assert.deepEqual(refused.body, { user: p.id, status: 'RS_ERROR_NOT_ENOUGH_MONEY', request_uuid: bet.request_uuid, currency: 'EUR', balance: 10 * E });
      assert.deepEqual(await snapshot(p.id, false), before);
      // Exactly the playable balance (real + bonus) is enough.
      assert.equal((await call('transaction/bet', txn(p, { amount: 10 * E }))).body.balance, 0);
    });

    it('a missing, invalid or foreign signature is RS_ERROR_INVALID_SIGNATURE and changes nothing', async () => {
      const p = await player();
      const bet = txn(p, { amount: 5 * E });
      const before = await snapshot(p.id);
      const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const attempts = [
        await call('transaction/bet', bet, { signature: null }),
        await call('transaction/bet', bet, { signature: '' }),
        await call('transaction/bet', bet, { signature: 'not base64 at all!' }),
        await call('transaction/bet', bet, { signature: Buffer.from('x'.repeat(256)).toString('base64') }),
        await call('transaction/bet', bet, { signBody: JSON.stringify({ ...bet, amount: 1 }) }),
        await call('transaction/bet', bet, { key: other }),
        // The same JSON, re-serialized with different whitespace: not the bytes that were signed.
        await call('transaction/bet', JSON.stringify(bet, null, 2), { signBody: JSON.stringify(bet) }),
        await call('transaction/rollback', { ...bet, reference_transaction_uuid: bet.transaction_uuid }, { signature: null }),
        await call('user/balance', 'not json', { signature: 'abc=' }),
      ];
      for (const a of attempts) assert.deepEqual(a.body, { status: 'RS_ERROR_INVALID_SIGNATURE' });
      assert.deepEqual(await snapshot(p.id), before);
      // The signed bytes, whitespace and all, are what counts.
      const pretty = JSON.stringify(bet, null, 2);
      assert.equal((await call('transaction/bet', pretty)).body.status, 'RS_OK');
    });

    it('tokens: unknown, another user, expired (bets and balance only: wins and rollbacks still settle)', async () => {
      const p = await player();
      const someone = await player();
      const before = await snapshot(p.id);
      const unknown = await call('transaction/bet', txn(p, { token: 'no-such-token', amount: E }));
      assert.deepEqual(unknown.body, { user: p.id, status: 'RS_ERROR_INVALID_TOKEN', request_uuid: unknown.body.request_uuid });
      assert.equal((await call('user/balance', { user: p.id, token: 'no-such-token', request_uuid: 'x', game_code: 'hub_slot' })).body.status, 'RS_ERROR_INVALID_TOKEN');
      const wrongUser = await call('transaction/bet', txn(p, { user: someone.id, amount: E }));
      assert.equal(wrongUser.body.status, 'RS_ERROR_INVALID_TOKEN');
      assert.equal(wrongUser.body.user, someone.id);
      assert.deepEqual(await snapshot(p.id), before);

      const bet = txn(p, { amount: 10 * E });
      assert.equal((await call('transaction/bet', bet)).body.status, 'RS_OK');
      await app.server.runtime.wallet.wallet.setGameSessionExpiry(p.token, new Date(Date.now() - 3_600_000));
      const ledger = await snapshot(p.id, false);
      const expired = txn(p, { amount: E });
      const refused = await call('transaction/bet', expired);
      assert.deepEqual(refused.body, { user: p.id, status: 'RS_ERROR_TOKEN_EXPIRED', request_uuid: expired.request_uuid, currency: 'EUR', balance: 90 * E });
      assert.equal((await call('user/balance', { user: p.id, token: p.token, request_uuid: 'x', game_code: 'hub_slot' })).body.status, 'RS_ERROR_TOKEN_EXPIRED');
      assert.deepEqual(await snapshot(p.id, false), ledger);
      // The answer is the transaction's: a retry (even once the session is renewed) gets the same.
      await app.server.runtime.wallet.wallet.setGameSessionExpiry(p.token, new Date(Date.now() + 3_600_000));
      assert.equal((await call('transaction/bet', expired)).raw, refused.raw);
      await app.server.runtime.wallet.wallet.setGameSessionExpiry(p.token, new Date(Date.now() - 3_600_000));

      const win = await call('transaction/win', txn(p, { amount: 25 * E, reference_transaction_uuid: bet.transaction_uuid, round: bet.round }));
      assert.equal(win.body.status, 'RS_OK');
      assert.equal(win.body.balance, 115 * E);
      const bet2 = txn(p, { amount: 5 * E });
      await app.server.runtime.wallet.wallet.setGameSessionExpiry(p.token, new Date(Date.now() + 3_600_000));
      assert.equal((await call('transaction/bet', bet2)).body.balance, 110 * E);
      await app.server.runtime.wallet.wallet.setGameSessionExpiry(p.token, new Date(Date.now() - 3_600_000));
      const rolled = await call('transaction/rollback', { user: p.id, transaction_uuid: randomUUID(), token: p.token, round: bet2.round, request_uuid: 'rb', reference_transaction_uuid: bet2.transaction_uuid, game_code: 'hub_slot' });
      assert.deepEqual(rolled.body, { user: p.id, status: 'RS_OK', request_uuid: 'rb', currency: 'EUR', balance: 115 * E });
    });

    it('wrong currency is RS_ERROR_WRONG_CURRENCY and changes nothing', async () => {
      const p = await player();
      const before = await snapshot(p.id);
      for (const currency of ['USD', 'XXX']) {
        const res = await call('transaction/bet', txn(p, { currency, amount: E }));
        assert.deepEqual(res.body, { user: p.id, status: 'RS_ERROR_WRONG_CURRENCY', request_uuid: res.body.request_uuid, currency: 'EUR', balance: 100 * E });
      }
      assert.equal((await call('transaction/win', txn(p, { currency: 'USD', amount: E, reference_transaction_uuid: randomUUID() }))).body.status, 'RS_ERROR_WRONG_CURRENCY');
      assert.deepEqual(await snapshot(p.id), before);
    });

    it('a blocked player: user/info and bets are RS_ERROR_USER_DISABLED; wins and rollbacks still settle', async () => {
      const p = await player();
      const bet = txn(p, { amount: 20 * E });
      const bet2 = txn(p, { amount: 30 * E });
      assert.equal((await call('transaction/bet', bet)).body.status, 'RS_OK');
      assert.equal((await call('transaction/bet', bet2)).body.status, 'RS_OK');
      const blocked = await app.server.app.inject({
        method: 'PUT',
        url: `/v1/players/${p.id}/status`,
        payload: { status: 'blocked', reason: 'fraud investigation' },
        headers: { authorization: `Bearer ${await app.staffToken(['compliance'])}` },
      });
      assert.equal(blocked.statusCode, 200, blocked.body);
      assert.equal((await call('user/info', { user: p.id, request_uuid: 'i' })).body.status, 'RS_ERROR_USER_DISABLED');
      const ledger = await snapshot(p.id, false);
      const refused = txn(p, { amount: E });
      assert.deepEqual((await call('transaction/bet', refused)).body, { user: p.id, status: 'RS_ERROR_USER_DISABLED', request_uuid: refused.request_uuid, currency: 'EUR', balance: 50 * E });
      assert.deepEqual(await snapshot(p.id, false), ledger);
      assert.equal((await call('transaction/win', txn(p, { amount: 60 * E, reference_transaction_uuid: bet.transaction_uuid }))).body.balance, 110 * E);
      const rolled = await call('transaction/rollback', { user: p.id, transaction_uuid: randomUUID(), token: p.token, round: null, request_uuid: 'rb', reference_transaction_uuid: bet2.transaction_uuid });
      assert.equal(rolled.body.status, 'RS_OK');
      assert.equal(rolled.body.balance, 140 * E);
    });

    it('JPY (exponent 0): amounts convert exactly; half a yen is RS_ERROR_WRONG_TYPES', async () => {
      const p = await player({ currency: 'JPY', amount: '1000' });
      assert.equal((await call('user/balance', { user: p.id, token: p.token, request_uuid: 'j', game_code: 'hub_slot' })).body.balance, 1000 * E);
      const bet = await call('transaction/bet', txn(p, { amount: 500 * E }));
      assert.deepEqual(bet.body, { user: p.id, status: 'RS_OK', request_uuid: bet.body.request_uuid, currency: 'JPY', balance: 500 * E });
      assert.deepEqual(await wallets(p.id), { real: '500', bonus: '0', freespins: '0', tournament: '0' });
      const before = await snapshot(p.id);
      assert.equal((await call('transaction/bet', txn(p, { amount: E / 2 }))).body.status, 'RS_ERROR_WRONG_TYPES');
      assert.deepEqual(await snapshot(p.id), before);
    });

    it('EUR: a thousandth of a cent is RS_ERROR_WRONG_TYPES; big amounts are read exactly', async () => {
      const p = await player({ amount: '12.34' });
      const before = await snapshot(p.id);
      assert.equal((await call('transaction/bet', txn(p, { amount: 1234001 }))).body.status, 'RS_ERROR_WRONG_TYPES');
      // 2^53 + 1000 in Hub88 units: a float would round it; read exactly it is a whole number of cents (and far too much).
      const huge = JSON.stringify(txn(p, { amount: 0 })).replace('"amount":0', '"amount":9007199254741992000');
      assert.equal((await call('transaction/bet', huge)).body.status, 'RS_ERROR_NOT_ENOUGH_MONEY');
      const cents = await call('transaction/bet', txn(p, { amount: 1_234_000 }));
      assert.equal(cents.body.balance, 0);
      assert.equal(before.wallets.real, '12.34');
    });

    it('malformed JSON and missing fields are RS_ERROR_WRONG_SYNTAX; wrong types are RS_ERROR_WRONG_TYPES; nothing changes', async () => {
      const p = await player();
      const before = await snapshot(p.id);
      const bet = txn(p, { amount: E });
      const syntax = [
        await call('transaction/bet', '{"user":'),
        await call('transaction/bet', '[1,2]'),
        await call('transaction/bet', ''),
        await call('transaction/bet', { ...bet, transaction_uuid: undefined }),
        await call('transaction/bet', { ...bet, amount: null }),
        await call('transaction/win', { ...bet }),
        await call('transaction/rollback', { user: p.id, transaction_uuid: randomUUID(), token: p.token, request_uuid: 'r' }),
        await call('user/balance', { user: p.id, request_uuid: 'r' }),
      ];
      for (const s of syntax) assert.equal(s.body.status, 'RS_ERROR_WRONG_SYNTAX', JSON.stringify(s.body));
      assert.equal(syntax[3]!.body.request_uuid, bet.request_uuid, 'request_uuid is echoed when it could be read');
      const types = [
        await call('transaction/bet', { ...bet, amount: '100000' }),
        await call('transaction/bet', { ...bet, amount: 1.5 }),
        await call('transaction/bet', { ...bet, amount: -100000 }),
        await call('transaction/bet', { ...bet, token: 42 }),
        await call('transaction/bet', { ...bet, round_closed: 'yes' }),
        await call('transaction/bet', { ...bet, meta: 'x' }),
        await call('user/info', { user: ['a'], request_uuid: 'r' }),
      ];
      for (const t of types) assert.equal(t.body.status, 'RS_ERROR_WRONG_TYPES', JSON.stringify(t.body));
      assert.deepEqual(await snapshot(p.id), before);
      // A body sent without a JSON content type is still read (the signature decides).
      const text = JSON.stringify({ user: p.id, request_uuid: 'ct' });
      const res = await fetch(`${baseUrl}/providers/hub88/user/info`, { method: 'POST', body: text, headers: { 'content-type': 'text/plain', 'x-hub88-signature': signHub88(privateKey, text) } });
      assert.equal(((await res.json()) as Json).status, 'RS_OK');
    });

    it('the client helper (hub88Call) signs and posts over real HTTP', async () => {
      const p = await player();
      const client = { baseUrl, privateKey };
      const bet = txn(p, { amount: 2 * E });
      assert.deepEqual(await hub88Call(client, 'transaction/bet', bet), { httpStatus: 200, body: { user: p.id, status: 'RS_OK', request_uuid: bet.request_uuid, currency: 'EUR', balance: 98 * E } });
      const win = txn(p, { amount: 3 * E, reference_transaction_uuid: bet.transaction_uuid });
      assert.equal((await hub88Call(client, 'transaction/win', win)).body.balance, 101 * E);
    });

    it("Fastify's route (app.inject, the OpenAPI document) answers as the direct route does; the direct route keeps the request id and the metrics", async () => {
      const p = await player();
      const text = JSON.stringify({ user: p.id, token: p.token, request_uuid: 'r-both', game_code: 'hub_slot' });
      const headers = { 'content-type': 'application/json', 'x-hub88-signature': signHub88(privateKey, text), 'x-request-id': 'hub88-trace-1' };
      const viaFastify = await app.server.app.inject({ method: 'POST', url: '/providers/hub88/user/balance', payload: text, headers });
      const direct = await fetch(`${baseUrl}/providers/hub88/user/balance`, { method: 'POST', body: text, headers });
      assert.equal(direct.status, viaFastify.statusCode);
      assert.equal(direct.headers.get('content-type'), viaFastify.headers['content-type']);
      assert.equal(await direct.text(), viaFastify.body);
      assert.equal(direct.headers.get('x-request-id'), 'hub88-trace-1');
      const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
      assert.match(metrics, /pitboss_http_requests_total\{method="POST",route="\/providers\/hub88\/user\/balance",status="200"\} [1-9]/);
      // A query string (or any other method) is Fastify's: the same answer, by the documented route.
      const withQuery = await fetch(`${baseUrl}/providers/hub88/user/balance?via=fastify`, { method: 'POST', body: text, headers });
      assert.equal((await withQuery.json() as Json).balance, 100 * E);
      const spec = (await app.server.app.inject({ url: '/openapi.json' })).json<{ paths: Record<string, { post?: unknown }> }>();
      assert.ok(spec.paths['/providers/hub88/transaction/bet']?.post);
    });

    it('concurrent replays of one bet debit it once and all answer alike', async () => {
      const p = await player();
      const bet = txn(p, { amount: 7 * E });
      const answers = await Promise.all(Array.from({ length: 8 }, () => call('transaction/bet', bet)));
      for (const a of answers) assert.equal(a.raw, answers[0]!.raw);
      assert.equal(answers[0]!.body.balance, 93 * E);
      assert.equal((await wallets(p.id)).real, '93.00');
    });
  });
}
