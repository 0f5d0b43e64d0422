import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { ConfigError, loadConfig } from '../config.ts';
import { SmtpEmailGateway } from './smtp.ts';
import { MessageGatewayError, TwilioSmsGateway } from './twilio.ts';

const SID = 'AC0123456789abcdef0123456789abcdef';
const TOKEN = 'twilio-auth-token-for-tests';

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** An imitation of Twilio's Messages API: checks the path, basic auth and the form fields as Twilio does. */
function fakeTwilio() {
  const received: Record<string, string>[] = [];
  let delayMs = 0;
  const server: Server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      const reply = (status: number, json: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(json));
      };
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      if (request.method !== 'POST' || request.url !== `/2010-04-01/Accounts/${SID}/Messages.json`) return reply(404, { code: 20404, message: 'The requested resource was not found', status: 404 });
      if (request.headers.authorization !== `Basic ${Buffer.from(`${SID}:${TOKEN}`).toString('base64')}`) {
        return reply(401, { code: 20003, message: 'Authentication Error - invalid username', status: 401 });
      }
      if (request.headers['content-type'] !== 'application/x-www-form-urlencoded') return reply(400, { code: 20001, message: 'Bad content type', status: 400 });
      const form = Object.fromEntries(new URLSearchParams(body));
      if (!/^\+[1-9]\d{6,14}$/.test(form.To ?? '')) return reply(400, { code: 21211, message: `The 'To' number ${form.To} is not a valid phone number.`, status: 400 });
      if (!form.From || !form.Body) return reply(400, { code: 21603, message: "A 'From' phone number is required.", status: 400 });
      received.push(form);
      return reply(201, { sid: `SM${received.length.toString().padStart(32, '0')}`, status: 'queued', to: form.To, from: form.From, body: form.Body });
    })();
  });
  return {
    server,
    received,
    setDelay: (ms: number) => {
      delayMs = ms;
    },
  };
}

describe('SMS gateway: Twilio Messages API', () => {
  const twilio = fakeTwilio();
  let base: string;
  before(async () => {
    await new Promise<void>((resolve) => twilio.server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(twilio.server.address() as AddressInfo).port}`;
  });
  after(() => {
    twilio.server.closeAllConnections();
    twilio.server.close();
  });

  const gateway = (overrides: Partial<ConstructorParameters<typeof TwilioSmsGateway>[0]> = {}) =>
    new TwilioSmsGateway({ baseUrl: base, accountSid: SID, authToken: TOKEN, from: '+15005550006', ...overrides });
  const sms = { channel: 'sms' as const, to: '+447700900123', text: 'Your code is 123456', purpose: 'test' };

  it('posts To, From and Body with basic auth and returns the message sid', async () => {
    const sent = await gateway().send(sms);
    assert.deepEqual(sent, { gatewayMessageId: 'SM00000000000000000000000000000001', gateway: 'twilio' });
    assert.deepEqual(twilio.received.at(-1), { To: '+447700900123', From: '+15005550006', Body: 'Your code is 123456' });
  });

  it("a refusal is thrown with Twilio's error code and status", async () => {
    await assert.rejects(gateway().send({ ...sms, to: '+0' }), (e: unknown) => e instanceof MessageGatewayError && e.code === '21211' && e.status === 400);
    await assert.rejects(gateway({ authToken: 'wrong' }).send(sms), (e: unknown) => e instanceof MessageGatewayError && e.code === '20003' && e.status === 401);
  });

  it('a gateway slower than the timeout, or not there, is an error too', async () => {
    twilio.setDelay(500);
    try {
      await assert.rejects(gateway({ timeoutMs: 100 }).send(sms), (e: unknown) => e instanceof MessageGatewayError && e.code === 'TIMEOUT');
    } finally {
      twilio.setDelay(0);
    }
    await assert.rejects(gateway({ baseUrl: 'http://127.0.0.1:1' }).send(sms), (e: unknown) => e instanceof MessageGatewayError && e.code === 'UNREACHABLE');
  });

  it('refuses an email', async () => {
    await assert.rejects(gateway().send({ ...sms, channel: 'email' }), (e: unknown) => e instanceof MessageGatewayError && e.code === 'CHANNEL_UNSUPPORTED');
  });
});

describe('email gateway: SMTP', () => {
  const mails: { from: string; to: string[]; data: string; user: string | undefined }[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (auth.username === 'mailer' && auth.password === 'secret') return callback(null, { user: 'mailer' });
      return callback(new Error('Invalid username or password'));
    },
    onRcptTo(address, _session, callback) {
      if (address.address.endsWith('@refused.test')) {
        const error = new Error('Mailbox unavailable') as Error & { responseCode: number };
        error.responseCode = 550;
        return callback(error);
      }
      return callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks).toString('utf8'),
          user: typeof session.user === 'string' ? session.user : undefined,
        });
        callback();
      });
    },
  });
  let port: number;
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.server.address() as AddressInfo).port;
  });
  after(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  const email = { channel: 'email' as const, to: 'player@example.com', subject: 'Confirm your email', text: 'Open https://casino.test/verify?t=abc', purpose: 'test' };

  it('delivers a plain-text email with authentication, From and Subject', async () => {
    const gateway = new SmtpEmailGateway({ url: `smtp://mailer:secret@127.0.0.1:${port}`, from: 'Casino <no-reply@casino.test>' });
    const sent = await gateway.send(email);
    gateway.close();
    assert.equal(sent.gateway, 'smtp');
    assert.match(sent.gatewayMessageId, /^<.+@.+>$/);
    const mail = mails.at(-1)!;
    assert.equal(mail.user, 'mailer');
    assert.equal(mail.from, 'no-reply@casino.test');
    assert.deepEqual(mail.to, ['player@example.com']);
    assert.match(mail.data, /^Subject: Confirm your email\r$/m);
    assert.match(mail.data, /^From: Casino <no-reply@casino\.test>\r$/m);
    assert.match(mail.data, /https:\/\/casino\.test\/verify\?t=abc/);
  });

  it("a refused recipient or bad credentials are thrown with the server's code", async () => {
    const gateway = new SmtpEmailGateway({ url: `smtp://mailer:secret@127.0.0.1:${port}`, from: 'no-reply@casino.test' });
    await assert.rejects(gateway.send({ ...email, to: 'nobody@refused.test' }), (e: unknown) => e instanceof MessageGatewayError && e.code === 'SMTP_550');
    gateway.close();
    const wrong = new SmtpEmailGateway({ url: `smtp://mailer:wrong@127.0.0.1:${port}`, from: 'no-reply@casino.test' });
    await assert.rejects(wrong.send(email), (e: unknown) => e instanceof MessageGatewayError && e.code === 'SMTP_535');
    wrong.close();
  });
});

describe('gateway settings', () => {
  it('twilio without its credentials stops start-up, naming the variable', () => {
    const base = { SMS_GATEWAY: 'twilio', TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: TOKEN, SMS_FROM: '+15005550006' };
    assert.equal(loadConfig(base).smsGateway, 'twilio');
    for (const missing of ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'SMS_FROM']) {
      assert.throws(
        () => loadConfig({ ...base, [missing]: '' }),
        (e: unknown) => e instanceof ConfigError && e.variable === missing,
      );
    }
    assert.throws(() => loadConfig({ SMS_GATEWAY: 'carrier-pigeon' }), (e: unknown) => e instanceof ConfigError && e.variable === 'SMS_GATEWAY');
  });

  it('smtp needs SMTP_URL (smtp: or smtps:) and EMAIL_FROM', () => {
    assert.throws(() => loadConfig({ EMAIL_GATEWAY: 'smtp', EMAIL_FROM: 'a@b.test' }), (e: unknown) => e instanceof ConfigError && e.variable === 'SMTP_URL');
    assert.throws(() => loadConfig({ EMAIL_GATEWAY: 'smtp', SMTP_URL: 'smtp://h:25' }), (e: unknown) => e instanceof ConfigError && e.variable === 'EMAIL_FROM');
    assert.throws(() => loadConfig({ EMAIL_GATEWAY: 'smtp', SMTP_URL: 'http://h', EMAIL_FROM: 'a@b.test' }), (e: unknown) => e instanceof ConfigError && e.variable === 'SMTP_URL');
    assert.equal(loadConfig({ EMAIL_GATEWAY: 'smtp', SMTP_URL: 'smtps://h:465', EMAIL_FROM: 'a@b.test' }).emailGateway, 'smtp');
    assert.equal(loadConfig({}).emailGateway, 'local');
  });
});
