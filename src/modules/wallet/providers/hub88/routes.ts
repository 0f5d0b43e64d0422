import type { KeyObject } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { Counter } from 'prom-client';
import { Type } from 'typebox';
import type { Kernel } from '../../../../platform/module.ts';
import { toDomainError } from '../../../../platform/http/problem.ts';
import type { DirectReply } from '../../../../platform/http/direct.ts';
import type { HttpApp } from '../../../../platform/http/types.ts';
import { parseRequest, serializeReply, STATUSES, type Endpoint, type Hub88Reply, type Parsed, type SPECS } from './protocol.ts';
import type { Hub88Wallet } from './service.ts';
import { SIGNATURE_HEADER, verifyHub88 } from './signature.ts';

const tags = ['hub88'];

const Reply = Type.Object(
  {
    user: Type.Optional(Type.String({ description: 'Our player id, as Hub88 sent it.' })),
    status: Type.Enum(STATUSES),
    request_uuid: Type.Optional(Type.String({ description: 'Echoed from the request.' })),
    currency: Type.Optional(Type.String()),
    balance: Type.Optional(Type.Integer({ description: 'Playable balance (real + bonus) in Hub88 units: major unit x 100000.' })),
  },
  { description: 'Always HTTP 200 with the outcome in `status` (HTTP 500 only when the server itself failed).' },
);

const SIGNED = "Signed by Hub88 with RSA-SHA256 over the raw body (base64 in X-Hub88-Signature, verified against HUB88_PUBLIC_KEY before anything else; without that key every call is RS_ERROR_INVALID_SIGNATURE).";

const ROUTES: { endpoint: Endpoint; path: string; summary: string }[] = [
  { endpoint: 'info', path: 'user/info', summary: "Hub88 Wallet API: the player's details." },
  { endpoint: 'balance', path: 'user/balance', summary: "Hub88 Wallet API: the player's playable balance." },
  { endpoint: 'bet', path: 'transaction/bet', summary: 'Hub88 Wallet API: debit a bet (idempotent on transaction_uuid).' },
  { endpoint: 'win', path: 'transaction/win', summary: 'Hub88 Wallet API: credit a win, in the proportions its bet was paid (idempotent on transaction_uuid).' },
  { endpoint: 'rollback', path: 'transaction/rollback', summary: 'Hub88 Wallet API: refund a bet exactly (idempotent on transaction_uuid).' },
];

type Handlers = { [E in Endpoint]: (request: Parsed<(typeof SPECS)[E]>) => Promise<Hub88Reply> };

/**
 * The five Wallet API endpoints in their own scope, whose body parser keeps the bytes
 * as received: the signature covers exactly those bytes, so nothing may parse, trim or
 * re-encode them before it is checked.
 */
export function hub88Routes(kernel: Kernel, service: Hub88Wallet, key: KeyObject | null) {
  const handlers: Handlers = {
    info: (r) => service.userInfo(r),
    balance: (r) => service.balance(r),
    bet: (r) => service.bet(r),
    win: (r) => service.win(r),
    rollback: (r) => service.rollback(r),
  };
  const answers = new Counter({
    name: 'pitboss_hub88_responses_total',
    help: 'Hub88 Wallet API answers by endpoint and status.',
    labelNames: ['endpoint', 'status'] as const,
    registers: [kernel.metrics.registry],
  });

  const JSON_UTF8 = 'application/json; charset=utf-8';
  const reply = (endpoint: Endpoint, body: Hub88Reply, status = 200): DirectReply => {
    answers.inc({ endpoint, status: body.status });
    return { status, contentType: JSON_UTF8, body: serializeReply(body) };
  };
  const send = (fastifyReply: FastifyReply, r: DirectReply) => fastifyReply.code(r.status).type(r.contentType).send(r.body);
  /** A body that could not be read (over the limit, a broken Content-Length), or a failure outside the wallet. */
  const refused = (endpoint: Endpoint, client: boolean): DirectReply => reply(endpoint, { status: client ? 'RS_ERROR_WRONG_SYNTAX' : 'RS_ERROR_UNKNOWN' }, client ? 200 : 500);

  /** One call, whichever way it came in (see DirectRoute): the only place a Hub88 call is answered. */
  async function answer<E extends Endpoint>(endpoint: E, raw: Buffer, signature: string | string[] | undefined): Promise<DirectReply> {
    // First of all, before parsing or touching the database.
    if (!verifyHub88(key, raw, signature)) return reply(endpoint, { status: 'RS_ERROR_INVALID_SIGNATURE' });
    const parsed = parseRequest(endpoint, raw);
    if (!parsed.ok) return reply(endpoint, parsed.reply);
    const requestUuid = (parsed.value as { request_uuid: string }).request_uuid;
    try {
      return reply(endpoint, await (handlers[endpoint] as (r: Parsed<(typeof SPECS)[E]>) => Promise<Hub88Reply>)(parsed.value));
    } catch (err) {
      kernel.logger.error({ err, endpoint, request_uuid: requestUuid }, 'hub88 wallet call failed');
      return reply(endpoint, { status: 'RS_ERROR_UNKNOWN', request_uuid: requestUuid }, 500);
    }
  }

  return async (app: HttpApp): Promise<void> => {
    for (const route of ROUTES) {
      app.directRoute({
        method: 'POST',
        url: `/providers/hub88/${route.path}`,
        answer: (body, headers) => answer(route.endpoint, body, headers[SIGNATURE_HEADER]),
        refuse: (reason) => refused(route.endpoint, reason === 'too-large'),
      });
    }
    await app.register(async (plain) => {
      const scope = plain as unknown as HttpApp;
      const keep = (_req: unknown, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => done(null, body);
      scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, keep);
      // Whatever content type Hub88 (or a proxy) puts on it, the signature decides.
      scope.addContentTypeParser('*', { parseAs: 'buffer' }, keep);
      // Errors before the handler (a body over the limit, a broken Content-Length) still answer in Hub88's terms.
      scope.setErrorHandler((error, request, reply) => {
        const client = toDomainError(error).status < 500;
        if (!client) request.log.error({ err: error }, 'hub88 request failed');
        const endpoint = ROUTES.find((r) => request.url.endsWith(r.path))?.endpoint ?? 'info';
        return send(reply, refused(endpoint, client));
      });
      for (const route of ROUTES) {
        scope.post(
          `/providers/hub88/${route.path}`,
          {
            schema: {
              tags,
              summary: route.summary,
              description: SIGNED,
              response: { 200: Reply, 500: Reply },
            },
          },
          async (request, fastifyReply) => {
            const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
            return send(fastifyReply, await answer(route.endpoint, raw, request.headers[SIGNATURE_HEADER]));
          },
        );
      }
    });
  };
}
