import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { databaseKinds } from '../../../test/support/databases.ts';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { verifyLedger } from './verify.ts';

// The wallet's REST edge: flows, idempotency, permissions, status gates, and bad input
// on every endpoint (each answered with a stable problem code and changing nothing).

const PROBLEM = /^application\/problem\+json/;
const SANDBOX_SECRET = 'sandbox-secret';
const MISSING = '01890000-0000-7000-8000-000000000000';

interface Reply {
  status: number;
  body: Record<string, unknown> & { code?: string; errors?: { field: string; code: string }[] };
  headers: Record<string, unknown>;
}

let keys = 0;
const newKey = (): string => `key-${process.pid}-${Date.now()}-${++keys}`;

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`wallet REST API (${kind})`, { skip }, () => {
    let app: TestApp;
    let admin: string;
    let admin2: string;
    let support: string;
    let compliance: string;

    before(async () => {
      app = await startTestApp(kind);
      [admin, admin2, support, compliance] = await Promise.all([app.staffToken(['admin']), app.staffToken(['admin']), app.staffToken(['support']), app.staffToken(['compliance'])]);
    });
    after(async () => app?.close());

    async function call(method: 'GET' | 'POST' | 'PUT', url: string, opts: { token?: string; body?: unknown; key?: string; headers?: Record<string, string>; raw?: string } = {}): Promise<Reply> {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      if (opts.key) headers['idempotency-key'] = opts.key;
      if (opts.raw !== undefined) headers['content-type'] = 'application/json';
      const res = await app.server.app.inject({ method, url, headers, ...(opts.raw !== undefined ? { payload: opts.raw } : opts.body !== undefined ? { payload: opts.body as Record<string, unknown> } : {}) });
      return { status: res.statusCode, body: res.body ? res.json<Reply['body']>() : {}, headers: res.headers };
    }

    const expectProblem = (r: Reply, status: number, code: string, field?: string) => {
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.match(String(r.headers['content-type']), PROBLEM);
      assert.equal(r.body.code, code, JSON.stringify(r.body));
      assert.equal(r.body.status, status);
      if (field) assert.ok(r.body.errors?.some((e) => e.field === field), `an error for ${field}: ${JSON.stringify(r.body.errors)}`);
    };

    async function newPlayer(overrides: Record<string, unknown> = {}) {
      const res = await call('POST', '/v1/players', { body: registration(overrides) });
      assert.equal(res.status, 201);
      const id = res.body.id as string;
      return { id, token: await app.playerToken(id) };
    }

    async function wallets(playerId: string): Promise<Record<string, string>> {
      const r = await call('GET', `/v1/players/${playerId}/balance`, { token: admin });
      assert.equal(r.status, 200);
      return (r.body.balances as { currency: string; wallets: Record<string, string> }[])[0]!.wallets;
    }

    async function paymentSettles(id: string, token: string, status: string): Promise<Reply['body']> {
      return until(`payment ${id} ${status}`, async () => {
        const r = await call('GET', `/v1/payments/${id}`, { token });
        assert.equal(r.status, 200);
        return r.body.status === status ? r.body : undefined;
      });
    }

    async function deposit(player: { id: string; token: string }, amount: string): Promise<Reply['body']> {
      const r = await call('POST', `/v1/players/${player.id}/deposits`, { token: player.token, key: newKey(), body: { amount, currency: 'EUR' } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return paymentSettles(r.body.id as string, player.token, 'completed');
    }

    /** Counts (and a balance fingerprint) of everything a money request could write. */
    async function snapshot() {
      const db = app.server.runtime.database.db;
      const { rows } = await sql<Record<string, bigint | string>>`select
        (select count(*) from wallet.transactions)::int8 as transactions,
        (select count(*) from wallet.postings)::int8 as postings,
        (select count(*) from wallet.accounts)::int8 as accounts,
        (select coalesce(string_agg(holder::text || name || balance::text, ',' order by holder, name, currency), '') from wallet.accounts) as balances,
        (select count(*) from wallet.payments)::int8 as payments,
        (select coalesce(string_agg(id::text || status, ',' order by id), '') from wallet.payments) as payment_states,
        (select count(*) from wallet.adjustments)::int8 as adjustments,
        (select coalesce(string_agg(id::text || status, ',' order by id), '') from wallet.adjustments) as adjustment_states,
        (select count(*) from wallet.game_sessions)::int8 as sessions`.execute(db);
      return rows[0]!;
    }

    it('deposit: the sandbox settles it into the real wallet; an amount ending in .13 fails and moves no money', async () => {
      const p = await newPlayer();
      const r = await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key: newKey(), body: { amount: '25.50', currency: 'EUR' } });
      assert.equal(r.status, 201);
      assert.equal(r.body.status, 'pending');
      assert.equal(r.body.amount, '25.50');
      assert.equal(r.body.kind, 'deposit');
      const done = await paymentSettles(r.body.id as string, p.token, 'completed');
      assert.match(String(done.providerRef), /^sbx_/);
      assert.equal((await wallets(p.id)).real, '25.50');

      const before = await snapshot();
      const bad = await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key: newKey(), body: { amount: '10.13', currency: 'EUR' } });
      assert.equal(bad.status, 201);
      await paymentSettles(bad.body.id as string, p.token, 'failed');
      assert.equal((await wallets(p.id)).real, '25.50');
      const after = await snapshot();
      assert.equal(after.transactions, before.transactions, 'a failed deposit writes no ledger transaction');
      assert.equal(after.balances, before.balances);

      // A provider callback delivered again (correctly signed) changes nothing.
      const raw = JSON.stringify({ paymentId: r.body.id, status: 'completed', providerRef: 'sbx_again' });
      const again = await call('POST', '/v1/payments/sandbox/callback', { raw, headers: { 'x-sandbox-signature': createHmac('sha256', SANDBOX_SECRET).update(raw).digest('hex') } });
      assert.equal(again.status, 200);
      assert.equal(again.body.status, 'completed');
      assert.equal((await wallets(p.id)).real, '25.50');
    });

    it('withdrawal: reserved at once; player cancel and staff reject return it; approval pays out; never more than the balance', async () => {
      const p = await newPlayer();
      await deposit(p, '100.00');
      const request = async (amount: string) => call('POST', `/v1/players/${p.id}/withdrawals`, { token: p.token, key: newKey(), body: { amount, currency: 'EUR' } });

      const w1 = await request('30.00');
      assert.equal(w1.status, 201);
      assert.equal(w1.body.status, 'requested');
      assert.equal((await wallets(p.id)).real, '70.00', 'the amount is reserved at once');
      const cancelled = await call('POST', `/v1/withdrawals/${w1.body.id as string}/cancel`, { token: p.token, body: { reason: 'changed my mind' } });
      assert.equal(cancelled.status, 200);
      assert.equal(cancelled.body.status, 'cancelled');
      assert.equal((await wallets(p.id)).real, '100.00');
      expectProblem(await call('POST', `/v1/withdrawals/${w1.body.id as string}/cancel`, { token: p.token, body: { reason: 'twice' } }), 409, 'PAYMENT_STATE_INVALID');
      assert.equal((await wallets(p.id)).real, '100.00', 'a second cancel returns nothing more');

      const w2 = await request('40.00');
      expectProblem(await call('POST', `/v1/withdrawals/${w2.body.id as string}/approve`, { token: p.token }), 403, 'FORBIDDEN');
      const approved = await call('POST', `/v1/withdrawals/${w2.body.id as string}/approve`, { token: admin });
      assert.equal(approved.status, 200);
      assert.equal(approved.body.status, 'approved');
      await paymentSettles(w2.body.id as string, admin, 'completed');
      assert.equal((await wallets(p.id)).real, '60.00');
      expectProblem(await call('POST', `/v1/withdrawals/${w2.body.id as string}/cancel`, { token: p.token, body: { reason: 'too late' } }), 409, 'PAYMENT_STATE_INVALID');

      const w3 = await request('20.00');
      assert.equal((await wallets(p.id)).real, '40.00');
      const rejected = await call('POST', `/v1/withdrawals/${w3.body.id as string}/cancel`, { token: admin, body: { reason: 'documents missing' } });
      assert.equal(rejected.status, 200);
      assert.equal(rejected.body.status, 'rejected');
      assert.equal((await wallets(p.id)).real, '60.00');

      // A payout the provider fails (.13) returns the money.
      const w4 = await request('5.13');
      assert.equal((await call('POST', `/v1/withdrawals/${w4.body.id as string}/approve`, { token: admin })).status, 200);
      await paymentSettles(w4.body.id as string, admin, 'failed');
      assert.equal((await wallets(p.id)).real, '60.00');

      const before = await snapshot();
      const tooMuch = await request('60.01');
      expectProblem(tooMuch, 409, 'INSUFFICIENT_FUNDS');
      assert.deepEqual(tooMuch.body.balances, { real: '60.00', bonus: '0.00', freespins: '0.00', tournament: '0.00' }, 'the refusal reports balances as decimal strings');
      const after = await snapshot();
      assert.equal(after.transactions, before.transactions);
      assert.equal(after.balances, before.balances);
      assert.equal((await wallets(p.id)).real, '60.00');
    });

    it('adjustments: applied at once up to the threshold; above it a second staff member must approve; reject moves nothing', async () => {
      const p = await newPlayer();
      const adjust = (token: string, amount: string, wallet = 'real') => call('POST', `/v1/players/${p.id}/adjustments`, { token, key: newKey(), body: { wallet, currency: 'EUR', amount, reason: 'goodwill gesture' } });

      const small = await adjust(admin, '5.00');
      assert.equal(small.status, 201);
      assert.equal(small.body.status, 'applied');
      assert.ok(small.body.transactionId);
      assert.equal((await wallets(p.id)).real, '5.00');
      const atThreshold = await adjust(admin, '1000.00', 'bonus');
      assert.equal(atThreshold.status, 201, 'exactly the threshold needs no approval');
      assert.equal((await wallets(p.id)).bonus, '1000.00');

      const big = await adjust(admin, '1000.01');
      assert.equal(big.status, 202);
      assert.equal(big.body.status, 'pending_approval');
      assert.equal(big.body.transactionId, null);
      assert.equal((await wallets(p.id)).real, '5.00', 'nothing moves before approval');
      expectProblem(await call('POST', `/v1/adjustments/${big.body.id as string}/approve`, { token: admin }), 403, 'ADJUSTMENT_SELF_APPROVAL');
      expectProblem(await call('POST', `/v1/adjustments/${big.body.id as string}/approve`, { token: support }), 403, 'FORBIDDEN');
      assert.equal((await wallets(p.id)).real, '5.00');
      const approved = await call('POST', `/v1/adjustments/${big.body.id as string}/approve`, { token: admin2 });
      assert.equal(approved.status, 200);
      assert.equal(approved.body.status, 'applied');
      assert.match(String(approved.body.approvedBy), /^staff:/);
      assert.equal((await wallets(p.id)).real, '1005.01');
      expectProblem(await call('POST', `/v1/adjustments/${big.body.id as string}/approve`, { token: admin2 }), 409, 'ADJUSTMENT_STATE_INVALID');
      assert.equal((await wallets(p.id)).real, '1005.01', 'approving twice applies once');

      const other = await adjust(admin, '-2000.00');
      assert.equal(other.status, 202);
      const rejected = await call('POST', `/v1/adjustments/${other.body.id as string}/reject`, { token: admin2, body: { reason: 'no basis' } });
      assert.equal(rejected.status, 200);
      assert.equal(rejected.body.status, 'rejected');
      expectProblem(await call('POST', `/v1/adjustments/${other.body.id as string}/approve`, { token: admin2 }), 409, 'ADJUSTMENT_STATE_INVALID');
      assert.equal((await wallets(p.id)).real, '1005.01');

      // A debit larger than the wallet is refused by the ledger, and the adjustment is closed.
      const before = await snapshot();
      expectProblem(await adjust(admin, '-5.01', 'freespins'), 409, 'INSUFFICIENT_FUNDS');
      const after = await snapshot();
      assert.equal(after.transactions, before.transactions);
      assert.equal(after.balances, before.balances);
      expectProblem(await adjust(support, '1.00'), 403, 'FORBIDDEN');
      expectProblem(await call('POST', `/v1/players/${p.id}/adjustments`, { token: p.token, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '1.00', reason: 'free money' } }), 403, 'FORBIDDEN');
      assert.equal((await wallets(p.id)).real, '1005.01');
    });

    it('transfers and fees (wallet.move): move money between wallets and write off fees, never below zero', async () => {
      const p = await newPlayer();
      await deposit(p, '50.00');
      const move = (body: Record<string, unknown>, key = newKey()) => call('POST', `/v1/players/${p.id}/transfers`, { token: admin, key, body: { currency: 'EUR', reason: 'bonus conversion', ...body } });
      const t = await move({ from: 'real', to: 'bonus', amount: '12.50' });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      assert.equal(t.body.type, 'transfer');
      assert.equal(t.body.replayed, false);
      assert.deepEqual(t.body.balances, { real: '37.50', bonus: '12.50', freespins: '0.00', tournament: '0.00' });
      const f = await call('POST', `/v1/players/${p.id}/fees`, { token: admin, key: newKey(), body: { currency: 'EUR', amount: '2.50', reason: 'inactivity fee' } });
      assert.equal(f.status, 201);
      assert.equal(f.body.type, 'fee');
      assert.equal((f.body.balances as Record<string, string>).real, '35.00');

      const before = await snapshot();
      expectProblem(await move({ from: 'bonus', to: 'real', amount: '12.51' }), 409, 'INSUFFICIENT_FUNDS');
      expectProblem(await call('POST', `/v1/players/${p.id}/fees`, { token: admin, key: newKey(), body: { currency: 'EUR', amount: '35.01', reason: 'too big' } }), 409, 'INSUFFICIENT_FUNDS');
      expectProblem(await call('POST', `/v1/players/${p.id}/fees`, { token: p.token, key: newKey(), body: { currency: 'EUR', amount: '1.00', reason: 'self fee' } }), 403, 'FORBIDDEN');
      expectProblem(await call('POST', `/v1/players/${p.id}/transfers`, { token: support, key: newKey(), body: { currency: 'EUR', from: 'bonus', to: 'real', amount: '1.00', reason: 'nope' } }), 403, 'FORBIDDEN');
      const after = await snapshot();
      assert.equal(after.transactions, before.transactions);
      assert.equal(after.balances, before.balances);
      assert.deepEqual(await wallets(p.id), { real: '35.00', bonus: '12.50', freespins: '0.00', tournament: '0.00' });
    });

    it('balance and transactions: filters by wallet, type and round; cursor pages without gaps; every entry has balanceAfter', async () => {
      const p = await newPlayer();
      await deposit(p, '100.00');
      const wallet = app.server.runtime.wallet.wallet;
      await call('POST', `/v1/players/${p.id}/transfers`, { token: admin, key: newKey(), body: { from: 'real', to: 'bonus', amount: '20.00', currency: 'EUR', reason: 'bonus grant' } });
      const bet = await wallet.placeBet({ playerId: p.id, currency: 'EUR', amount: 9_000n, provider: 'apitest', externalRef: `bet-${p.id}`, roundId: 'round-A', request: { n: 1 } });
      assert.deepEqual(bet.outcome.ok && bet.outcome.split, { real: '-8000', bonus: '-1000' }, 'real money first, then bonus');
      await wallet.creditWin({ playerId: p.id, currency: 'EUR', amount: 1_800n, provider: 'apitest', externalRef: `win-${p.id}`, betRef: `bet-${p.id}`, roundId: 'round-A', request: { n: 2 } });
      await wallet.placeBet({ playerId: p.id, currency: 'EUR', amount: 500n, provider: 'apitest', externalRef: `bet2-${p.id}`, roundId: 'round-B', request: { n: 3 } });
      await call('POST', `/v1/players/${p.id}/fees`, { token: admin, key: newKey(), body: { amount: '1.00', currency: 'EUR', reason: 'card fee' } });

      const list = async (query: string, token = p.token) => {
        const r = await call('GET', `/v1/players/${p.id}/transactions${query}`, { token });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return r.body as unknown as { items: { id: string; type: string; amount: string; roundId: string | null; wallets: { wallet: string; amount: string; balanceAfter: string }[] }[]; nextCursor: string | null };
      };
      const all = await list('');
      assert.deepEqual(all.items.map((t) => t.type), ['fee', 'bet', 'win', 'bet', 'transfer', 'deposit'], 'newest first');
      assert.equal(all.nextCursor, null);
      for (const t of all.items) {
        assert.ok(t.wallets.length > 0);
        for (const w of t.wallets) assert.match(w.balanceAfter, /^\d+\.\d{2}$/);
      }
      // Replaying each wallet's entries oldest first reproduces every balanceAfter and the final balance.
      const running: Record<string, number> = {};
      for (const t of [...all.items].reverse()) {
        for (const w of t.wallets) {
          running[w.wallet] = Math.round(((running[w.wallet] ?? 0) + Number(w.amount)) * 100) / 100;
          assert.equal(running[w.wallet]!.toFixed(2), w.balanceAfter, `${t.type} ${w.wallet}`);
        }
      }
      const now = await wallets(p.id);
      assert.equal(now.real, running.real!.toFixed(2));
      assert.equal(now.bonus, running.bonus!.toFixed(2));
      // 100 in; 20 to bonus; a 90 bet takes all 80 real then 10 bonus; its 18 win comes back 16 real : 2 bonus; a 5 bet; a 1 fee.
      assert.deepEqual(now, { real: '10.00', bonus: '12.00', freespins: '0.00', tournament: '0.00' });
      const balance = await call('GET', `/v1/players/${p.id}/balance`, { token: p.token });
      assert.deepEqual(balance.body, { playerId: p.id, currency: 'EUR', balances: [{ currency: 'EUR', wallets: now }] });

      assert.deepEqual((await list('?type=bet')).items.map((t) => t.roundId), ['round-B', 'round-A']);
      assert.deepEqual((await list('?roundId=round-A')).items.map((t) => t.type), ['win', 'bet']);
      const bonus = await list('?wallet=bonus');
      assert.deepEqual(bonus.items.map((t) => t.type), ['win', 'bet', 'transfer'], 'only what touched the bonus wallet');
      assert.deepEqual(bonus.items.map((t) => t.id), all.items.filter((t) => t.wallets.some((w) => w.wallet === 'bonus')).map((t) => t.id));
      assert.deepEqual((await list('?type=fee&wallet=bonus')).items, []);

      // Pages of two: every transaction once, in order, and the last page says so.
      const seen: string[] = [];
      let cursor: string | null = '';
      let pages = 0;
      while (cursor !== null) {
        const page = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.ok(page.items.length <= 2);
        seen.push(...page.items.map((t) => t.id));
        cursor = page.nextCursor;
        assert.ok(++pages < 10);
      }
      assert.deepEqual(seen, all.items.map((t) => t.id));
      // Staff with wallet.read see the same list.
      assert.deepEqual((await list('', admin)).items.map((t) => t.id), seen);
    });

    it('idempotency: a replay gets the same status and body; the same key with another body is refused; no key is refused', async () => {
      const p = await newPlayer();
      const key = newKey();
      const body = { amount: '15.00', currency: 'EUR' };
      const first = await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key, body });
      assert.equal(first.status, 201);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      await paymentSettles(first.body.id as string, p.token, 'completed');
      const before = await snapshot();
      const replay = await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key, body });
      assert.equal(replay.status, 201);
      assert.deepEqual(replay.body, first.body, 'the first answer, byte for byte');
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      const conflict = await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key, body: { amount: '16.00', currency: 'EUR' } });
      expectProblem(conflict, 422, 'IDEMPOTENCY_KEY_REUSED');
      expectProblem(await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, body }), 400, 'IDEMPOTENCY_KEY_REQUIRED');
      expectProblem(await call('POST', `/v1/players/${p.id}/fees`, { token: admin, body: { amount: '1.00', currency: 'EUR', reason: 'no key' } }), 400, 'IDEMPOTENCY_KEY_REQUIRED');
      assert.deepEqual(await snapshot(), before, 'replays, conflicts and keyless requests write nothing');
      assert.equal((await wallets(p.id)).real, '15.00');

      // A fee replayed returns the same transaction; a refusal replays as the same refusal, even once money arrived.
      const feeKey = newKey();
      const fee = await call('POST', `/v1/players/${p.id}/fees`, { token: admin, key: feeKey, body: { amount: '1.00', currency: 'EUR', reason: 'service fee' } });
      const feeAgain = await call('POST', `/v1/players/${p.id}/fees`, { token: admin, key: feeKey, body: { amount: '1.00', currency: 'EUR', reason: 'service fee' } });
      assert.equal(feeAgain.status, 201);
      assert.deepEqual(feeAgain.body, fee.body);
      assert.equal(feeAgain.headers['idempotent-replayed'], 'true');
      assert.equal((await wallets(p.id)).real, '14.00', 'charged once');
      const shortKey = newKey();
      expectProblem(await call('POST', `/v1/players/${p.id}/fees`, { token: admin, key: shortKey, body: { amount: '50.00', currency: 'EUR', reason: 'big fee' } }), 409, 'INSUFFICIENT_FUNDS');
      await deposit(p, '100.00');
      const refusedAgain = await call('POST', `/v1/players/${p.id}/fees`, { token: admin, key: shortKey, body: { amount: '50.00', currency: 'EUR', reason: 'big fee' } });
      expectProblem(refusedAgain, 409, 'INSUFFICIENT_FUNDS');
      assert.equal(refusedAgain.headers['idempotent-replayed'], 'true');
      assert.equal((await wallets(p.id)).real, '114.00');
      // Keys are per caller: another staff member's identical key is a new request.
      const otherStaff = await call('POST', `/v1/players/${p.id}/fees`, { token: admin2, key: feeKey, body: { amount: '1.00', currency: 'EUR', reason: 'service fee' } });
      assert.equal(otherStaff.status, 201);
      assert.equal(otherStaff.body.replayed, false);
      assert.notEqual(otherStaff.body.transactionId, fee.body.transactionId);
      assert.equal((await wallets(p.id)).real, '113.00');
    });

    it("permissions: another player's wallet is 404, staff without wallet permissions 403, anonymous 401", async () => {
      const p = await newPlayer();
      const q = await newPlayer();
      await deposit(p, '10.00');
      const before = await snapshot();
      const db = app.server.runtime.database.db;
      const claims = async () => (await sql<{ n: bigint }>`select count(*)::int8 as n from wallet.idempotency`.execute(db)).rows[0]!.n;
      for (const url of [`/v1/players/${p.id}/balance`, `/v1/players/${p.id}/transactions`]) {
        expectProblem(await call('GET', url, { token: q.token }), 404, 'PLAYER_NOT_FOUND');
        expectProblem(await call('GET', url, { token: support }), 403, 'FORBIDDEN');
        expectProblem(await call('GET', url), 401, 'UNAUTHENTICATED');
      }
      const payment = (await call('GET', `/v1/players/${p.id}/transactions`, { token: p.token })).body as { items: { meta: { paymentId: string } }[] };
      const paymentId = payment.items[0]!.meta.paymentId;
      expectProblem(await call('GET', `/v1/payments/${paymentId}`, { token: q.token }), 404, 'PLAYER_NOT_FOUND');
      expectProblem(await call('GET', `/v1/payments/${paymentId}`, { token: support }), 403, 'FORBIDDEN');
      expectProblem(await call('GET', `/v1/payments/${paymentId}`), 401, 'UNAUTHENTICATED');
      expectProblem(await call('POST', `/v1/players/${p.id}/deposits`, { token: q.token, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 404, 'PLAYER_NOT_FOUND');
      expectProblem(await call('POST', `/v1/players/${p.id}/withdrawals`, { token: q.token, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 404, 'PLAYER_NOT_FOUND');
      expectProblem(await call('POST', `/v1/players/${p.id}/deposits`, { token: support, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 403, 'FORBIDDEN');
      const anonymousBefore = await claims();
      expectProblem(await call('POST', `/v1/players/${p.id}/deposits`, { key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 401, 'UNAUTHENTICATED');
      expectProblem(await call('POST', `/v1/players/${p.id}/withdrawals`, { key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 401, 'UNAUTHENTICATED');
      assert.equal(await claims(), anonymousBefore, 'an anonymous request claims no idempotency key');
      for (const [path, body] of [
        ['fees', { amount: '1.00', currency: 'EUR', reason: 'anonymous fee' }],
        ['transfers', { from: 'real', to: 'bonus', amount: '1.00', currency: 'EUR', reason: 'anonymous move' }],
        ['adjustments', { wallet: 'real', amount: '1.00', currency: 'EUR', reason: 'anonymous gift' }],
      ] as const) {
        expectProblem(await call('POST', `/v1/players/${p.id}/${path}`, { key: newKey(), body }), 401, 'UNAUTHENTICATED');
        expectProblem(await call('POST', `/v1/players/${p.id}/${path}`, { token: support, key: newKey(), body }), 403, 'FORBIDDEN');
      }
      expectProblem(await call('POST', `/v1/players/${q.id}/game-sessions`, { token: p.token, body: { gameCode: 'slots', currency: 'EUR' } }), 403, 'FORBIDDEN');
      assert.deepEqual(await snapshot(), before);
    });

    it('status gates: a blocked player cannot deposit; suspended_may_withdraw can withdraw but not deposit', async () => {
      const p = await newPlayer();
      await deposit(p, '40.00');
      const setStatus = async (status: string) => {
        const r = await call('PUT', `/v1/players/${p.id}/status`, { token: compliance, body: { status, reason: 'compliance review' } });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      };
      await setStatus('blocked');
      let before = await snapshot();
      expectProblem(await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 403, 'PLAYER_BLOCKED');
      expectProblem(await call('POST', `/v1/players/${p.id}/withdrawals`, { token: p.token, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 403, 'PLAYER_BLOCKED');
      expectProblem(await call('POST', `/v1/players/${p.id}/deposits`, { token: admin, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 403, 'PLAYER_BLOCKED');
      assert.deepEqual(await snapshot(), before);

      await setStatus('suspended_may_withdraw');
      before = await snapshot();
      expectProblem(await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }), 403, 'PLAYER_BLOCKED');
      assert.deepEqual(await snapshot(), before);
      const w = await call('POST', `/v1/players/${p.id}/withdrawals`, { token: p.token, key: newKey(), body: { amount: '15.00', currency: 'EUR' } });
      assert.equal(w.status, 201, JSON.stringify(w.body));
      assert.equal((await wallets(p.id)).real, '25.00');
      await setStatus('active');
      const ok = await call('POST', `/v1/players/${p.id}/deposits`, { token: p.token, key: newKey(), body: { amount: '5.00', currency: 'EUR' } });
      assert.equal(ok.status, 201);
    });

    it('bad input on every wallet endpoint: a problem with a stable code, and nothing changes', async () => {
      const p = await newPlayer();
      await deposit(p, '30.00');
      const sek = await newPlayer({ currency: 'SEK', country: 'SE' });
      const pendingWithdrawal = (await call('POST', `/v1/players/${p.id}/withdrawals`, { token: p.token, key: newKey(), body: { amount: '1.00', currency: 'EUR' } })).body.id as string;
      const depositId = (await call('GET', `/v1/players/${p.id}/transactions?type=deposit`, { token: p.token })).body.items as { meta: { paymentId: string } }[];
      const pendingAdjustment = (await call('POST', `/v1/players/${p.id}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '5000.00', reason: 'needs approval' } })).body.id as string;
      const paymentId = depositId[0]!.meta.paymentId;
      const players = `/v1/players/${p.id}`;
      const pay = { currency: 'EUR' };
      const signed = (raw: string) => ({ raw, headers: { 'x-sandbox-signature': createHmac('sha256', SANDBOX_SECRET).update(raw).digest('hex') } });

      type Case = [name: string, method: 'GET' | 'POST', url: string, opts: Parameters<typeof call>[2], status: number, code: string, field?: string];
      const amountCases = (path: string, token: string, extra: Record<string, unknown> = {}): Case[] => [
        [`${path}: too many decimals`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '1.001' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: negative`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '-5' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: exponent`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '1e3' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: a float`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: 10.5 } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: an integer number`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: 10 } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: zero`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '0.00' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: empty`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: beyond int8`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '9999999999999999999' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: whitespace`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: ' 5.00' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: missing amount`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        [`${path}: wrong currency`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...extra, amount: '5.00', currency: 'USD' } }, 400, 'CURRENCY_MISMATCH'],
        [`${path}: lower-case currency`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...extra, amount: '5.00', currency: 'eur' } }, 400, 'VALIDATION_FAILED', '/body/currency'],
        [`${path}: unknown field`, 'POST', `${players}/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '5.00', bonusCode: 'X' } }, 400, 'VALIDATION_FAILED', '/body/bonusCode'],
        [`${path}: bad player uuid`, 'POST', `/v1/players/not-a-uuid/${path}`, { token, key: newKey(), body: { ...pay, ...extra, amount: '5.00' } }, 400, 'VALIDATION_FAILED', '/params/id'],
        [`${path}: no key`, 'POST', `${players}/${path}`, { token, body: { ...pay, ...extra, amount: '5.00' } }, 400, 'IDEMPOTENCY_KEY_REQUIRED'],
        [`${path}: a key too short`, 'POST', `${players}/${path}`, { token, key: 'abc', body: { ...pay, ...extra, amount: '5.00' } }, 400, 'VALIDATION_FAILED', '/headers/idempotency-key'],
      ];
      const cases: Case[] = [
        ['balance: bad uuid', 'GET', '/v1/players/123/balance', { token: admin }, 400, 'VALIDATION_FAILED', '/params/id'],
        ['balance: unknown player', 'GET', `/v1/players/${MISSING}/balance`, { token: admin }, 404, 'PLAYER_NOT_FOUND'],
        ['transactions: unknown type', 'GET', `${players}/transactions?type=jackpot`, { token: p.token }, 400, 'VALIDATION_FAILED', '/querystring/type'],
        ['transactions: limit 0', 'GET', `${players}/transactions?limit=0`, { token: p.token }, 400, 'VALIDATION_FAILED', '/querystring/limit'],
        ['transactions: limit too big', 'GET', `${players}/transactions?limit=1000`, { token: p.token }, 400, 'VALIDATION_FAILED', '/querystring/limit'],
        ['transactions: unknown parameter', 'GET', `${players}/transactions?sort=asc`, { token: p.token }, 400, 'VALIDATION_FAILED'],
        ['transactions: a forged cursor', 'GET', `${players}/transactions?cursor=bm90LWEtdXVpZA`, { token: p.token }, 400, 'VALIDATION_FAILED', '/querystring/cursor'],
        ['transactions: bad date', 'GET', `${players}/transactions?from=yesterday`, { token: p.token }, 400, 'VALIDATION_FAILED', '/querystring/from'],
        ['transactions: bad uuid', 'GET', '/v1/players/zzz/transactions', { token: p.token }, 400, 'VALIDATION_FAILED', '/params/id'],
        ...amountCases('deposits', p.token),
        ['deposits: unknown provider', 'POST', `${players}/deposits`, { token: p.token, key: newKey(), body: { amount: '5.00', currency: 'EUR', provider: 'paypal' } }, 404, 'NOT_FOUND'],
        ['deposits: SEK player paying EUR', 'POST', `/v1/players/${sek.id}/deposits`, { token: sek.token, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }, 400, 'CURRENCY_MISMATCH'],
        ['deposits: unknown player (staff)', 'POST', `/v1/players/${MISSING}/deposits`, { token: admin, key: newKey(), body: { amount: '5.00', currency: 'EUR' } }, 404, 'PLAYER_NOT_FOUND'],
        ...amountCases('withdrawals', p.token),
        ['withdrawals: more than the balance', 'POST', `${players}/withdrawals`, { token: p.token, key: newKey(), body: { amount: '29.01', currency: 'EUR' } }, 409, 'INSUFFICIENT_FUNDS'],
        ['payment: bad uuid', 'GET', '/v1/payments/nope', { token: admin }, 400, 'VALIDATION_FAILED', '/params/id'],
        ['payment: unknown', 'GET', `/v1/payments/${MISSING}`, { token: admin }, 404, 'PAYMENT_NOT_FOUND'],
        ['approve: bad uuid', 'POST', '/v1/withdrawals/nope/approve', { token: admin }, 400, 'VALIDATION_FAILED', '/params/id'],
        ['approve: unknown', 'POST', `/v1/withdrawals/${MISSING}/approve`, { token: admin }, 404, 'PAYMENT_NOT_FOUND'],
        ['approve: a deposit', 'POST', `/v1/withdrawals/${paymentId}/approve`, { token: admin }, 404, 'PAYMENT_NOT_FOUND'],
        ['cancel: no reason', 'POST', `/v1/withdrawals/${pendingWithdrawal}/cancel`, { token: p.token, body: {} }, 400, 'VALIDATION_FAILED', '/body/reason'],
        ['cancel: reason too short', 'POST', `/v1/withdrawals/${pendingWithdrawal}/cancel`, { token: p.token, body: { reason: 'no' } }, 400, 'VALIDATION_FAILED', '/body/reason'],
        ['cancel: unknown field', 'POST', `/v1/withdrawals/${pendingWithdrawal}/cancel`, { token: p.token, body: { reason: 'changed mind', amount: '1.00' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        ['cancel: unknown', 'POST', `/v1/withdrawals/${MISSING}/cancel`, { token: p.token, body: { reason: 'changed mind' } }, 404, 'PAYMENT_NOT_FOUND'],
        ['cancel: a deposit', 'POST', `/v1/withdrawals/${paymentId}/cancel`, { token: p.token, body: { reason: 'changed mind' } }, 404, 'PAYMENT_NOT_FOUND'],
        ['callback: unsigned', 'POST', '/v1/payments/sandbox/callback', { raw: JSON.stringify({ paymentId: pendingWithdrawal, status: 'completed', providerRef: 'x' }) }, 401, 'SIGNATURE_INVALID'],
        ['callback: forged signature', 'POST', '/v1/payments/sandbox/callback', { raw: JSON.stringify({ paymentId: pendingWithdrawal, status: 'completed', providerRef: 'x' }), headers: { 'x-sandbox-signature': 'ab'.repeat(32) } }, 401, 'SIGNATURE_INVALID'],
        ['callback: unknown provider', 'POST', '/v1/payments/paypal/callback', signed(JSON.stringify({ paymentId: pendingWithdrawal, status: 'completed', providerRef: 'x' })), 404, 'NOT_FOUND'],
        ['callback: signed, bad status', 'POST', '/v1/payments/sandbox/callback', signed(JSON.stringify({ paymentId: pendingWithdrawal, status: 'paid', providerRef: 'x' })), 400, 'VALIDATION_FAILED'],
        ['callback: signed, not JSON', 'POST', '/v1/payments/sandbox/callback', signed('{"paymentId":'), 400, 'VALIDATION_FAILED'],
        ['callback: signed, null', 'POST', '/v1/payments/sandbox/callback', signed('null'), 400, 'VALIDATION_FAILED'],
        ['callback: signed, payment id not a uuid', 'POST', '/v1/payments/sandbox/callback', signed(JSON.stringify({ paymentId: 'abc', status: 'completed', providerRef: 'x' })), 404, 'PAYMENT_NOT_FOUND'],
        ['callback: signed, unknown payment', 'POST', '/v1/payments/sandbox/callback', signed(JSON.stringify({ paymentId: MISSING, status: 'completed', providerRef: 'x' })), 404, 'PAYMENT_NOT_FOUND'],
        ['callback: signed, a withdrawal not yet approved', 'POST', '/v1/payments/sandbox/callback', signed(JSON.stringify({ paymentId: pendingWithdrawal, status: 'completed', providerRef: 'x' })), 200, ''],
        ['adjustments: zero', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '0.00', reason: 'nothing' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        ['adjustments: too many decimals', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '-1.001', reason: 'precise' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        ['adjustments: exponent', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '1e3', reason: 'science' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        ['adjustments: a float', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: -2.5, reason: 'float' } }, 400, 'VALIDATION_FAILED', '/body/amount'],
        ['adjustments: unknown wallet', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'gold', currency: 'EUR', amount: '1.00', reason: 'shiny' } }, 400, 'WALLET_UNKNOWN'],
        ['adjustments: wrong currency', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'GBP', amount: '1.00', reason: 'pounds' } }, 400, 'CURRENCY_MISMATCH'],
        ['adjustments: no reason', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '1.00' } }, 400, 'VALIDATION_FAILED', '/body/reason'],
        ['adjustments: unknown field', 'POST', `${players}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '1.00', reason: 'extra', approve: true } }, 400, 'VALIDATION_FAILED', '/body/approve'],
        ['adjustments: unknown player', 'POST', `/v1/players/${MISSING}/adjustments`, { token: admin, key: newKey(), body: { wallet: 'real', currency: 'EUR', amount: '1.00', reason: 'ghost' } }, 404, 'PLAYER_NOT_FOUND'],
        ['adjustments: no key', 'POST', `${players}/adjustments`, { token: admin, body: { wallet: 'real', currency: 'EUR', amount: '1.00', reason: 'no key' } }, 400, 'IDEMPOTENCY_KEY_REQUIRED'],
        ['adjustment approve: bad uuid', 'POST', '/v1/adjustments/x/approve', { token: admin2 }, 400, 'VALIDATION_FAILED', '/params/id'],
        ['adjustment approve: unknown', 'POST', `/v1/adjustments/${MISSING}/approve`, { token: admin2 }, 404, 'ADJUSTMENT_NOT_FOUND'],
        ['adjustment reject: no reason', 'POST', `/v1/adjustments/${pendingAdjustment}/reject`, { token: admin2, body: {} }, 400, 'VALIDATION_FAILED', '/body/reason'],
        ['adjustment reject: unknown', 'POST', `/v1/adjustments/${MISSING}/reject`, { token: admin2, body: { reason: 'unknown one' } }, 404, 'ADJUSTMENT_NOT_FOUND'],
        ...amountCases('fees', admin, { reason: 'a fee' }),
        ['fees: no reason', 'POST', `${players}/fees`, { token: admin, key: newKey(), body: { amount: '1.00', currency: 'EUR' } }, 400, 'VALIDATION_FAILED', '/body/reason'],
        ['fees: unknown player', 'POST', `/v1/players/${MISSING}/fees`, { token: admin, key: newKey(), body: { amount: '1.00', currency: 'EUR', reason: 'ghost' } }, 404, 'PLAYER_NOT_FOUND'],
        ...amountCases('transfers', admin, { from: 'real', to: 'bonus', reason: 'a move' }),
        ['transfers: unknown wallet', 'POST', `${players}/transfers`, { token: admin, key: newKey(), body: { from: 'real', to: 'gold', amount: '1.00', currency: 'EUR', reason: 'shiny' } }, 400, 'WALLET_UNKNOWN'],
        ['transfers: unknown source wallet', 'POST', `${players}/transfers`, { token: admin, key: newKey(), body: { from: 'vault', to: 'real', amount: '1.00', currency: 'EUR', reason: 'shiny' } }, 400, 'WALLET_UNKNOWN'],
        ['transfers: missing to', 'POST', `${players}/transfers`, { token: admin, key: newKey(), body: { from: 'real', amount: '1.00', currency: 'EUR', reason: 'half' } }, 400, 'VALIDATION_FAILED', '/body/to'],
        ['game session: bad currency', 'POST', `${players}/game-sessions`, { token: p.token, body: { gameCode: 'slots', currency: 'euro' } }, 400, 'VALIDATION_FAILED', '/body/currency'],
        ['game session: wrong currency', 'POST', `${players}/game-sessions`, { token: p.token, body: { gameCode: 'slots', currency: 'USD' } }, 400, 'CURRENCY_MISMATCH'],
        ['game session: no game', 'POST', `${players}/game-sessions`, { token: p.token, body: { currency: 'EUR' } }, 400, 'VALIDATION_FAILED', '/body/gameCode'],
      ];
      for (const [name, method, url, opts, status, code, field] of cases) {
        const before = await snapshot();
        const r = await call(method, url, opts);
        if (status === 200) {
          // A callback for a payment in another state is acknowledged and ignored.
          assert.equal(r.status, 200, name);
          assert.equal(r.body.status, 'requested', name);
        } else {
          assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
          assert.match(String(r.headers['content-type']), PROBLEM, name);
          assert.equal(r.body.code, code, `${name}: ${JSON.stringify(r.body)}`);
          if (field) assert.ok(r.body.errors?.some((e) => e.field === field), `${name}: an error for ${field}: ${JSON.stringify(r.body.errors)}`);
        }
        const after = await snapshot();
        // An over-large withdrawal leaves its payment record behind as failed; the money does not move.
        if (name === 'withdrawals: more than the balance') {
          assert.equal(after.payments, (before.payments as bigint) + 1n);
          assert.deepEqual({ ...after, payments: 0, payment_states: '' }, { ...before, payments: 0, payment_states: '' }, name);
        } else assert.deepEqual(after, before, `${name} changed something`);
      }
      assert.deepEqual(await wallets(p.id), { real: '29.00', bonus: '0.00', freespins: '0.00', tournament: '0.00' });
    });

    it('the ledger verifies after all of the above', async () => {
      const report = await verifyLedger(app.server.runtime.database.db);
      assert.deepEqual(report.problems, []);
      assert.ok(report.transactions > 20);
    });
  });
}
