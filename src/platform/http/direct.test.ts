import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createMetrics } from '../telemetry/metrics.ts';
import { DirectRoutes } from './direct.ts';

/** Raw HTTP, so that chunked bodies and what the server does with the connection can be seen. */
function post(port: number, path: string, body: Buffer | string, headers: Record<string, string | number> = {}, chunked = false) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { ...(chunked ? {} : { 'content-length': Buffer.byteLength(body) }), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (chunked) {
      // Two chunks: the route must see the body whole.
      const bytes = Buffer.from(body);
      req.write(bytes.subarray(0, bytes.length >> 1));
      setTimeout(() => req.end(bytes.subarray(bytes.length >> 1)), 20);
    } else {
      req.end(body);
    }
  });
}

describe('direct routes (served before Fastify)', () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString())), done()) }));
  const metrics = createMetrics();
  let direct: DirectRoutes;
  let app: FastifyInstance;
  let port = 0;
  const seen: Buffer[] = [];

  before(async () => {
    let n = 0;
    direct = new DirectRoutes({
      logger,
      metrics,
      bodyLimit: 1000,
      requestId: (headers) => (typeof headers['x-request-id'] === 'string' ? headers['x-request-id'] : `generated-${++n}`),
      closingBody: (url, id) => ({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ code: 'UNAVAILABLE', instance: url, requestId: id }) }),
    });
    direct.add({
      method: 'POST',
      url: '/echo',
      answer: (body, headers) => {
        seen.push(body);
        if (headers['x-fail'] === 'sync') throw new Error('boom before the promise');
        if (headers['x-fail'] === 'yes') return Promise.reject(new Error('boom'));
        return Promise.resolve({ status: 200, contentType: 'application/json', body: JSON.stringify({ bytes: body.length, sig: headers['x-sig'] ?? null }) });
      },
      refuse: (reason) => ({ status: reason === 'too-large' ? 200 : 500, contentType: 'application/json', body: JSON.stringify({ refused: reason }) }),
    });
    assert.throws(() => direct.add({ method: 'POST', url: '/echo', answer: async () => ({ status: 200, contentType: 'x', body: '' }), refuse: () => ({ status: 500, contentType: 'x', body: '' }) }), /registered twice/);
    app = Fastify({ serverFactory: direct.serverFactory, keepAliveTimeout: 12_345 });
    app.post('/echo', async () => ({ via: 'fastify' }));
    app.get('/echo', async () => ({ via: 'fastify' }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    assert.ok(address && typeof address === 'object');
    port = address.port;
  });
  after(async () => {
    await app.close();
  });

  it('answers the exact bytes sent, in one piece or chunked, with the request id, the metrics and one access line', async () => {
    const body = Buffer.from('{"a":"é","b":[1,2,3]}');
    const res = await post(port, '/echo', body, { 'x-sig': 'abc', 'x-request-id': 'trace-1' });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { bytes: body.length, sig: 'abc' });
    assert.equal(res.headers['x-request-id'], 'trace-1');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.ok(seen.at(-1)!.equals(body));
    const chunked = await post(port, '/echo', 'x'.repeat(600), {}, true);
    assert.deepEqual(JSON.parse(chunked.body), { bytes: 600, sig: null });
    assert.match(String(chunked.headers['x-request-id']), /^generated-\d+$/);
    assert.equal(lines.filter((l) => l.url === '/echo' && l.msg === 'request').length, 2);
    assert.deepEqual(Object.keys(lines.find((l) => l.reqId === 'trace-1')!).filter((k) => ['reqId', 'method', 'url', 'statusCode', 'ms'].includes(k)).sort(), ['method', 'ms', 'reqId', 'statusCode', 'url']);
    const text = await metrics.registry.metrics();
    assert.match(text, /pitboss_http_requests_total\{method="POST",route="\/echo",status="200"\} 2/);
    // Fastify's server options still apply to the server the factory makes.
    assert.equal(app.server.keepAliveTimeout, 12_345);
  });

  it('leaves other methods, and paths with a query string, to Fastify', async () => {
    assert.deepEqual((await app.inject({ method: 'GET', url: '/echo' })).json(), { via: 'fastify' });
    const get = await fetch(`http://127.0.0.1:${port}/echo`);
    assert.deepEqual(await get.json(), { via: 'fastify' });
    const query = await post(port, '/echo?x=1', '{}', { 'content-type': 'application/json' });
    assert.deepEqual(JSON.parse(query.body), { via: 'fastify' });
  });

  it('refuses a body over the limit, declared or chunked, without calling the route, and closes the connection', async () => {
    const before = seen.length;
    const declared = await post(port, '/echo', 'y'.repeat(1001));
    assert.deepEqual([declared.status, JSON.parse(declared.body)], [200, { refused: 'too-large' }]);
    assert.equal(declared.headers.connection, 'close');
    const chunked = await post(port, '/echo', 'z'.repeat(5000), {}, true);
    assert.deepEqual(JSON.parse(chunked.body), { refused: 'too-large' });
    assert.equal(chunked.headers.connection, 'close');
    assert.equal(seen.length, before);
  });

  it('answers a route that throws with its refusal, and logs the error', async () => {
    const res = await post(port, '/echo', '{}', { 'x-fail': 'yes' });
    assert.deepEqual([res.status, JSON.parse(res.body)], [500, { refused: 'failed' }]);
    assert.ok(lines.some((l) => l.msg === 'direct route failed' && l.level === 50));
  });

  it('answers each of many requests that arrive together with its own answer, a route that throws before its promise among them', async () => {
    const sent = Array.from({ length: 60 }, (_, i) => 'n'.repeat(i + 1));
    const replies = await Promise.all(sent.map((body, i) => post(port, '/echo', body, i === 7 ? { 'x-fail': 'sync' } : { 'x-sig': `s${i}` })));
    replies.forEach((res, i) => {
      if (i === 7) assert.deepEqual([res.status, JSON.parse(res.body)], [500, { refused: 'failed' }]);
      else assert.deepEqual([res.status, JSON.parse(res.body)], [200, { bytes: i + 1, sig: `s${i}` }]);
    });
    // And the queue still runs afterwards.
    assert.equal((await post(port, '/echo', 'after', { 'x-sig': 'last' })).status, 200);
  });

  it('answers 503 and closes the connection once the server is closing', async () => {
    direct.close();
    const res = await post(port, '/echo', '{}', { 'x-request-id': 'late' });
    assert.equal(res.status, 503);
    assert.equal(res.headers.connection, 'close');
    assert.deepEqual(JSON.parse(res.body), { code: 'UNAVAILABLE', instance: '/echo', requestId: 'late' });
  });
});
