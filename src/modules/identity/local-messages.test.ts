import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../../../test/support/app.ts';
import { systemContext } from '../../platform/auth/principal.ts';

describe('GET /v1/identity/local-messages (the local gateway, for staff)', () => {
  let app: TestApp;
  let reader: string;
  const get = async (query: string, token?: string) =>
    app.server.app.inject({ method: 'GET', url: `/v1/identity/local-messages${query}`, headers: token ? { authorization: `Bearer ${token}` } : {} });

  before(async () => {
    app = await startTestApp('pglite');
    reader = await app.staffToken(['admin']);
    const { messages } = app.server.runtime.kernel;
    await messages.send({ channel: 'sms', to: '+447700900111', text: 'Your code is 111111', purpose: 'test.one', accountId: null });
    await messages.send({ channel: 'email', to: 'a@example.com', subject: 'Hello', text: 'Link', purpose: 'test.two' });
    await messages.send({ channel: 'sms', to: '+447700900111', text: 'Your code is 222222', purpose: 'test.one' });
  });
  after(async () => app?.close());

  it('lists messages newest first, by recipient and channel', async () => {
    const res = await get('?recipient=%2B447700900111', reader);
    assert.equal(res.statusCode, 200, res.body);
    const items = res.json<{ items: { body: string; channel: string; recipient: string }[] }>().items;
    assert.deepEqual(items.map((m) => m.body), ['Your code is 222222', 'Your code is 111111']);
    const emails = (await get('?channel=email', reader)).json<{ items: { subject: string }[] }>();
    assert.deepEqual(emails.items.map((m) => m.subject), ['Hello']);
    assert.equal((await get('?limit=1', reader)).json<{ items: unknown[] }>().items.length, 1);
  });

  it('needs the permission; bad queries are refused', async () => {
    assert.equal((await get('')).statusCode, 401);
    assert.equal((await get('', await app.staffToken(['support']))).statusCode, 403);
    for (const bad of ['?limit=0', '?limit=201', '?channel=fax', '?recipient=', '?other=1']) {
      const res = await get(bad, reader);
      assert.equal(res.statusCode, 400, bad);
      assert.equal(res.json<{ code: string }>().code, 'VALIDATION_FAILED', bad);
    }
  });

  it('answers 404 LOCAL_MESSAGES_OFF for a channel with a real gateway', async () => {
    const real = await startTestApp('pglite', { SMS_GATEWAY: 'twilio', TWILIO_ACCOUNT_SID: 'AC1', TWILIO_AUTH_TOKEN: 't', SMS_FROM: '+15005550006' });
    try {
      await real.server.runtime.staff.createStaff(systemContext('test'), { email: 'r@casino.test', roles: ['admin'] });
      const token = (await real.server.runtime.staff.issueToken('r@casino.test', 900)).token;
      const inject = (query: string) => real.server.app.inject({ method: 'GET', url: `/v1/identity/local-messages${query}`, headers: { authorization: `Bearer ${token}` } });
      const sms = await inject('?channel=sms');
      assert.equal(sms.statusCode, 404);
      assert.equal(sms.json<{ code: string }>().code, 'LOCAL_MESSAGES_OFF');
      assert.equal((await inject('?channel=email')).statusCode, 200);
    } finally {
      await real.close();
    }
  });
});
