import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { newId } from '../../platform/ids.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { WalletTables } from './store.ts';

describe('sandbox payments after a restart', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp('pglite');
  });
  after(async () => app?.close());

  // Regression: the sandbox keeps its pending callbacks in memory, so a deposit started
  // just before a crash stayed pending for ever.
  it('resume() hands open sandbox payments back to the sandbox, which settles them', async () => {
    const player = (await app.server.app.inject({ method: 'POST', url: '/v1/players', payload: registration() })).json();
    const db = tablesOf<WalletTables>(app.server.runtime.database.db);
    const id = newId();
    const now = new Date();
    await db
      .insertInto('wallet.payments')
      .values({ player_id: player.id, id, kind: 'deposit', provider: 'sandbox', currency: 'EUR', amount: 4200n, status: 'pending', provider_ref: null, reason: null, created_at: now, updated_at: now })
      .execute();
    const resumed = await app.server.runtime.wallet.payments.resume('sandbox');
    assert.equal(resumed, 1);
    const deadline = Date.now() + 5000;
    let status = 'pending';
    while (status === 'pending' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await db.selectFrom('wallet.payments').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;
    }
    assert.equal(status, 'completed');
    const token = await app.playerToken(player.id);
    const balance = await app.server.app.inject({ method: 'GET', url: `/v1/players/${player.id}/balance`, headers: { authorization: `Bearer ${token}` } });
    assert.equal(balance.json().balances[0].wallets.real, '42.00');
    assert.equal(await app.server.runtime.wallet.payments.resume('sandbox'), 0);
  });

  it('refuses a transfer from a wallet to itself', async () => {
    const player = (await app.server.app.inject({ method: 'POST', url: '/v1/players', payload: registration() })).json();
    const res = await app.server.app.inject({
      method: 'POST',
      url: `/v1/players/${player.id}/transfers`,
      payload: { from: 'real', to: 'real', currency: 'EUR', amount: '1.00', reason: 'same wallet' },
      headers: { authorization: `Bearer ${await app.staffToken(['admin'])}`, 'idempotency-key': `same-wallet-${player.id}` },
    });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().errors[0].code, 'SAME_WALLET');
  });
});

describe('withdrawals stopped before their money came back', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp('pglite');
  });
  after(async () => app?.close());

  it('resume() returns reserved money of a cancelled withdrawal once, and never of a refused one', async () => {
    const player = (await app.server.app.inject({ method: 'POST', url: '/v1/players', payload: registration() })).json();
    const token = await app.playerToken(player.id);
    const headers = (key: string) => ({ authorization: `Bearer ${token}`, 'idempotency-key': key });
    const dep = await app.server.app.inject({ method: 'POST', url: `/v1/players/${player.id}/deposits`, payload: { amount: '50.00', currency: 'EUR' }, headers: headers(`dep-${player.id}`) });
    const db = tablesOf<WalletTables>(app.server.runtime.database.db);
    const settled = async (id: string) => {
      for (let i = 0; i < 100; i++) {
        if ((await db.selectFrom('wallet.payments').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status !== 'pending') return;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await settled(dep.json().id);
    const w = await app.server.app.inject({ method: 'POST', url: `/v1/players/${player.id}/withdrawals`, payload: { amount: '20.00', currency: 'EUR' }, headers: headers(`wd-${player.id}`) });
    assert.equal(w.statusCode, 201);
    // A crash after the status changed and before the money came back:
    await db.updateTable('wallet.payments').set({ status: 'cancelled' }).where('id', '=', w.json().id).execute();
    const refused = await app.server.app.inject({ method: 'POST', url: `/v1/players/${player.id}/withdrawals`, payload: { amount: '999.00', currency: 'EUR' }, headers: headers(`wd2-${player.id}`) });
    assert.equal(refused.statusCode, 409);
    const real = async () => (await app.server.app.inject({ method: 'GET', url: `/v1/players/${player.id}/balance`, headers: { authorization: `Bearer ${token}` } })).json().balances[0].wallets.real;
    assert.equal(await real(), '30.00');
    await app.server.runtime.wallet.payments.resume('sandbox');
    assert.equal(await real(), '50.00');
    await app.server.runtime.wallet.payments.resume('sandbox');
    assert.equal(await real(), '50.00', 'a second resume returns nothing more');
  });
});

describe('idempotency retention', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp('pglite');
  });
  after(async () => app?.close());

  it('pruneIdempotency forgets keys older than the retention and keeps the rest', async () => {
    const { pruneIdempotency } = await import('./store.ts');
    const db = tablesOf<WalletTables>(app.server.runtime.database.db);
    const old = new Date(Date.now() - 200 * 86_400_000);
    await db
      .insertInto('wallet.idempotency')
      .values([
        { scope: 'retention-test', key: 'old-1', request_hash: 'h', player_id: null, outcome: JSON.stringify({ ok: false, code: 'X' }), created_at: old },
        { scope: 'retention-test', key: 'old-2', request_hash: 'h', player_id: null, outcome: JSON.stringify({ ok: false, code: 'X' }), created_at: old },
        { scope: 'retention-test', key: 'new-1', request_hash: 'h', player_id: null, outcome: JSON.stringify({ ok: false, code: 'X' }) },
      ])
      .execute();
    const pruned = await pruneIdempotency(db, new Date(Date.now() - 123 * 86_400_000), 1);
    assert.equal(pruned, 2);
    const left = await db.selectFrom('wallet.idempotency').select('key').where('scope', '=', 'retention-test').execute();
    assert.deepEqual(left.map((r) => r.key), ['new-1']);
  });
});
