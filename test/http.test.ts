import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { InjectOptions } from 'fastify';
import { after, before, describe, it } from 'node:test';
import { registration, startTestApp, type TestApp } from './support/app.ts';

describe('HTTP edge', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp('pglite');
  });
  after(async () => app?.close());
  const inject = (opts: InjectOptions) => app.server.app.inject(opts);

  it('liveness and readiness (database checked)', async () => {
    assert.deepEqual((await inject({ url: '/health/live' })).json(), { status: 'ok' });
    const ready = await inject({ url: '/health/ready' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json().checks, { database: 'ok' });
  });

  it('generates a request id, or keeps the caller\'s, and returns it', async () => {
    const generated = await inject({ url: '/health/live' });
    assert.match(String(generated.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const given = await inject({ url: '/health/live', headers: { 'x-request-id': 'trace-abc-123' } });
    assert.equal(given.headers['x-request-id'], 'trace-abc-123');
  });

  it('answers unknown routes and bad tokens with problem+json', async () => {
    const missing = await inject({ url: '/v1/nothing-here' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'NOT_FOUND');
    assert.match(String(missing.headers['content-type']), /application\/problem\+json/);
    const garbage = await inject({ url: '/v1/players', headers: { authorization: 'Bearer not.a.jwt' } });
    assert.equal(garbage.statusCode, 401);
    assert.equal(garbage.json().code, 'UNAUTHENTICATED');
    const scheme = await inject({ url: '/v1/players', headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    assert.equal(scheme.statusCode, 401);
  });

  it('publishes the signing keys as a JWKS', async () => {
    const jwks = (await inject({ url: '/.well-known/jwks.json' })).json();
    assert.ok(jwks.keys.length >= 1);
    for (const key of jwks.keys) {
      assert.equal(key.kty, 'EC');
      assert.equal(key.alg, 'ES256');
      assert.equal(key.d, undefined, 'private key material must never be published');
    }
  });

  it('serves OpenAPI 3.1 where every route has typed responses and errors are problem+json', async () => {
    const spec = (await inject({ url: '/openapi.json' })).json();
    assert.equal(spec.openapi, '3.1.0');
    const ops = Object.entries(spec.paths as Record<string, Record<string, { responses?: Record<string, unknown> }>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ path, method, op })),
    );
    for (const path of ['/v1/players', '/v1/players/{id}', '/v1/players/{id}/status', '/health/ready', '/.well-known/jwks.json']) {
      assert.ok(ops.some((o) => o.path === path), `OpenAPI lacks ${path}`);
    }
    for (const { path, method, op } of ops) {
      if (path === '/metrics') continue;
      assert.ok(op.responses && Object.keys(op.responses).some((s) => s.startsWith('2')), `${method.toUpperCase()} ${path} declares no success response`);
    }
    const docs = await inject({ url: '/docs/' });
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /swagger/i);
  });

  it('writes one access line per request, with its method, url, status, time and request id', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const logged = await startTestApp('pglite', {}, pino({ level: 'info' }, sink));
    try {
      await logged.server.app.inject({ url: '/health/live', headers: { 'x-request-id': 'access-line-1' } });
      await logged.server.app.inject({ url: '/v1/nothing-here', headers: { 'x-request-id': 'access-line-2' } });
      const about = (id: string) => lines.filter((l) => l.reqId === id);
      assert.equal(about('access-line-1').length, 1, JSON.stringify(about('access-line-1')));
      const [ok] = about('access-line-1');
      assert.deepEqual({ msg: ok!.msg, method: ok!.method, url: ok!.url, statusCode: ok!.statusCode }, { msg: 'request', method: 'GET', url: '/health/live', statusCode: 200 });
      assert.equal(typeof ok!.ms, 'number');
      assert.deepEqual(about('access-line-2').map((l) => [l.msg, l.statusCode]), [['request', 404]]);
    } finally {
      await logged.close();
    }
  });

  it('exports Prometheus metrics: requests by route and status, latency, event-loop lag, outbox backlog', async () => {
    await inject({ method: 'POST', url: '/v1/players', payload: registration() });
    const text = (await inject({ url: '/metrics' })).body;
    assert.match(text, /pitboss_http_requests_total\{method="POST",route="\/v1\/players",status="201"\} 1/);
    assert.match(text, /pitboss_http_request_duration_seconds_bucket\{.*route="\/v1\/players".*\}/);
    assert.match(text, /nodejs_eventloop_lag_seconds/);
    assert.match(text, /pitboss_outbox_backlog \d+/);
  });
});

describe('graceful shutdown', () => {
  it('finishes the request in flight, then refuses new connections', async () => {
    const app = await startTestApp('pglite');
    await app.server.app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.app.server.address();
    assert.ok(address && typeof address === 'object');
    const url = `http://127.0.0.1:${address.port}`;
    // A registration spends ~50 ms hashing the password: long enough to be caught mid-flight.
    const body = JSON.stringify(registration());
    const sent = Promise.withResolvers<void>();
    const inFlight = new Promise<number>((resolve, reject) => {
      const req = request(`${url}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.on('finish', () => sent.resolve());
      req.end(body);
    });
    await sent.promise;
    await new Promise((r) => setTimeout(r, 10));
    const closing = app.close();
    assert.equal(await inFlight, 201);
    await closing;
    await assert.rejects(fetch(`${url}/health/live`));
  });
});
