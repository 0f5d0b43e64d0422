import type { IncomingHttpHeaders } from 'node:http';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { newId } from '../ids.ts';
import { platformErrors } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { TokenService } from '../auth/tokens.ts';
import { AuthPolicy } from '../auth/step-up.ts';
import { authenticate } from './auth.ts';
import { Problem, problems } from './schemas.ts';
import { DirectRoutes } from './direct.ts';
import { accessLine, observeRequest } from './observe.ts';
import { problemBody, PROBLEM_CONTENT_TYPE, sendProblem, toDomainError } from './problem.ts';
import type { HttpApp } from './types.ts';

export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<void>;
}

export interface HttpOptions {
  logger: Logger;
  metrics: Metrics;
  tokens: TokenService;
  /** Step-up and session hooks; without one, no account has a second factor and no session ends early. */
  authPolicy?: AuthPolicy;
  publicUrl: string;
  version: string;
  trustProxy: boolean | number | string;
  readiness: readonly ReadinessCheck[];
}

function buildAjv(coerce: boolean, shared: Record<string, unknown>) {
  const ajv = new Ajv({ allErrors: true, coerceTypes: coerce ? 'array' : false, useDefaults: true, removeAdditional: false, strict: false });
  addFormats.default(ajv);
  for (const schema of Object.values(shared)) ajv.addSchema(schema as object);
  return ajv;
}

/**
 * Validators for every route: bodies strictly (a number is not a string), query,
 * params and headers with coercion (they arrive as text). Every error is reported,
 * not just the first. Called per encapsulation context with its shared schemas.
 */
function buildValidator(shared: Record<string, unknown>) {
  const strict = buildAjv(false, shared);
  const coercing = buildAjv(true, shared);
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) => (httpPart === 'body' ? strict : coercing).compile(schema);
}

/**
 * One access line per request, when it is answered, instead of Fastify's two (incoming
 * and completed): on the provider callbacks that is thousands of lines a second.
 */
class AccessLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = accessLine(request.method, request.url, reply.statusCode, reply.elapsedTime);
    if (error) reply.log.error({ ...line, err: error }, 'request');
    else reply.log.info(line, 'request');
  }
}

/**
 * The HTTP edge shared by every module: JSON-schema validation (bodies strictly, query
 * and params with coercion), problem+json errors with stable codes, request ids,
 * bearer authentication, metrics, health, OpenAPI 3.1 and its interactive docs.
 */
export async function createHttpServer(options: HttpOptions): Promise<HttpApp> {
  const direct = new DirectRoutes({
    logger: options.logger,
    metrics: options.metrics,
    bodyLimit: BODY_LIMIT,
    requestId,
    closingBody: (url, id) => ({ status: 503, contentType: PROBLEM_CONTENT_TYPE, body: JSON.stringify(problemBody({ url, id }, platformErrors('UNAVAILABLE', { detail: 'The server is shutting down.' }))) }),
  });
  const app = Fastify({
    loggerInstance: options.logger,
    requestIdHeader: false,
    genReqId: (req) => requestId(req.headers),
    trustProxy: typeof options.trustProxy === 'number' ? trustHops(options.trustProxy) : options.trustProxy,
    bodyLimit: BODY_LIMIT,
    // Routes that need no more than a body and an answer, at thousands a second, skip Fastify (direct.ts).
    serverFactory: direct.serverFactory,
    logController: new AccessLog(),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Fastify's typing wants Ajv's own factory signature; ours returns the same compile function.
    schemaController: { compilersFactory: { buildValidator: buildValidator as never } },
  }).withTypeProvider<TypeBoxTypeProvider>();


  // The API speaks JSON only: any other body is 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
  app.addSchema(Problem);
  // Set by the authenticate hook on every request before any handler runs.
  app.decorateRequest('principal', null as never);
  const authPolicy = options.authPolicy ?? new AuthPolicy({ stepUpMaxAgeSeconds: 300 });
  app.decorate('authPolicy', authPolicy);
  direct.install(app);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onRequest', authenticate(options.tokens, authPolicy));
  app.addHook('onResponse', async (request, reply) => {
    observeRequest(options.metrics, request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const domain = toDomainError(error);
    if (domain.status >= 500) request.log.error({ err: error }, 'request failed');
    return sendProblem(request, reply, domain);
  });
  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, platformErrors('NOT_FOUND', { detail: `No route ${request.method} ${request.url}.` })));

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Pitboss API',
        version: options.version,
        description: 'Player management system: players, identity, wallets, bonuses, risk and compliance. Errors are RFC 9457 problem+json with a stable `code`.',
      },
      servers: [{ url: options.publicUrl }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: true } });

  const tags = ['platform'];
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/health/live', { schema: { tags, summary: 'Liveness: the process is up.', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({ status: 'ok' as const }));
  app.get(
    '/health/ready',
    {
      schema: {
        tags,
        summary: 'Readiness: the database, and Redis and the broker when configured, answer.',
        response: {
          200: Type.Object({ status: Type.String(), checks: Type.Record(Type.String(), Type.String()) }),
          503: Type.Object({ status: Type.String(), checks: Type.Record(Type.String(), Type.String()) }),
        },
      },
    },
    async (_request, reply) => {
      const checks: Record<string, string> = {};
      let ok = true;
      await Promise.all(
        options.readiness.map(async (r) => {
          try {
            await withTimeout(r.check(), 2000);
            checks[r.name] = 'ok';
          } catch (error) {
            ok = false;
            checks[r.name] = error instanceof Error ? error.message : 'failed';
          }
        }),
      );
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks });
    },
  );
  app.get('/metrics', { schema: { tags, summary: 'Prometheus metrics.', produces: ['text/plain'] } }, async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(body);
  });
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags,
        summary: 'Public keys that verify Pitboss access tokens (JWKS).',
        response: { 200: Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.Unknown())) }), ...problems(500) },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=60');
      return options.tokens.keys.jwks();
    },
  );
  // pino's Logger is a FastifyBaseLogger; the route types only differ in that parameter.
  return app as unknown as HttpApp;
}

const BODY_LIMIT = 1_048_576;

/**
 * A caller's X-Request-Id is kept when it is a sane token (it goes into logs and the
 * audit log); anything else gets a fresh UUIDv7.
 */
function requestId(headers: IncomingHttpHeaders): string {
  const given = headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : newId();
}

/** Trust the nearest `hops` proxies (Fastify's numeric form, as a function for its types). */
const trustHops = (hops: number) => (_address: string, hop: number): boolean => hop < hops;

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
