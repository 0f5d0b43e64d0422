import { createServer, type IncomingHttpHeaders, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { accessLine, observeRequest } from './observe.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Serves a route before Fastify (see DirectRoute); the module registers it with Fastify too. */
    directRoute(route: DirectRoute): void;
  }
}

/** One answer of a direct route: the status, the media type and the body as sent. */
export interface DirectReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/**
 * A route that Node's request listener serves itself, before Fastify: the body read
 * whole as bytes, one handler, one answer. It is for machine-to-machine callbacks at
 * thousands a second (a game provider's wallet calls), where Fastify's work on each
 * request (request and reply objects, hooks, a child logger, content-type parsing,
 * routing) was about a quarter of a call's CPU.
 *
 * The module registers the same route with Fastify as well, for the OpenAPI document and
 * for `app.inject`, and both call one `answer`, so the two cannot answer differently.
 * What the edge does for every request is done here too: the body limit, the request
 * id, the request metrics, the access log line and 503 while the server is closing.
 */
export interface DirectRoute {
  readonly method: 'POST';
  /** The exact path; a request with a query string or any other path goes to Fastify. */
  readonly url: string;
  /** The answer to a body read whole. It answers its own failures; a throw is answered with `refuse('failed')`. */
  answer(body: Buffer, headers: IncomingHttpHeaders): Promise<DirectReply>;
  /** The answer to a body over the limit, or when `answer` threw. */
  refuse(reason: 'too-large' | 'failed'): DirectReply;
}

export interface DirectEdge {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly bodyLimit: number;
  /** The request id for a request (the caller's X-Request-Id when sane, else a new one). */
  requestId(headers: IncomingHttpHeaders): string;
  /** The body of the 503 answered while the server is closing. */
  closingBody(url: string, requestId: string): DirectReply;
}

/** Direct requests started per turn of the event loop (DirectRoutes.#intake). */
const INTAKE_PER_TURN = 8;

/** Fastify's server options that it applies to a server it creates itself (and not to one a factory gives it). */
interface ServerOptions {
  keepAliveTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
  maxRequestsPerSocket?: number;
}

/**
 * The direct routes of one server, and the factory of its HTTP server (Fastify's
 * `serverFactory`): requests for a direct route are served here, all others by Fastify.
 */
export class DirectRoutes {
  readonly #routes = new Map<string, DirectRoute>();
  readonly #edge: DirectEdge;
  #closing = false;
  /** Requests read whole and waiting for their answer to start (see #intake); a drain is scheduled while it is not empty. */
  readonly #ready: (() => void)[] = [];

  constructor(edge: DirectEdge) {
    this.#edge = edge;
  }

  add(route: DirectRoute): void {
    const key = `${route.method} ${route.url}`;
    if (this.#routes.has(key)) throw new Error(`direct route ${key} is registered twice`);
    this.#routes.set(key, route);
  }

  /** From now on, direct routes answer 503 and close the connection (as Fastify's return503OnClosing). */
  close(): void {
    this.#closing = true;
  }

  /**
   * Wires these routes into the Fastify instance whose `serverFactory` is this one's:
   * `app.directRoute(route)` adds one, and they start answering 503 when it closes.
   */
  install(app: { decorate(name: 'directRoute', add: (route: DirectRoute) => void): unknown; addHook(name: 'preClose', hook: () => Promise<void>): unknown }): void {
    app.decorate('directRoute', (route: DirectRoute) => this.add(route));
    app.addHook('preClose', async () => this.close());
  }

  readonly serverFactory = (fastify: RequestListener, options: ServerOptions): Server => {
    const server = createServer((req, res) => {
      const route = this.#routes.get(`${req.method} ${req.url}`);
      if (route) this.#serve(route, req, res);
      else fastify(req, res);
    });
    if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
    if (options.requestTimeout !== undefined) server.requestTimeout = options.requestTimeout;
    if (options.connectionTimeout !== undefined) server.setTimeout(options.connectionTimeout);
    if (options.maxRequestsPerSocket) server.maxRequestsPerSocket = options.maxRequestsPerSocket;
    return server;
  };

  #serve(route: DirectRoute, req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const reqId = this.#edge.requestId(req.headers);
    const send = (reply: DirectReply, close = false): void => {
      if (res.headersSent) return;
      res.writeHead(reply.status, {
        'content-type': reply.contentType,
        'content-length': Buffer.byteLength(reply.body),
        'x-request-id': reqId,
        ...(close ? { connection: 'close' } : {}),
      });
      res.end(reply.body);
      this.#completed(route, reqId, reply.status, started);
    };
    if (this.#closing) return send(this.#edge.closingBody(route.url, reqId), true);
    const limit = this.#edge.bodyLimit;
    const declared = Number(req.headers['content-length']);
    // The rest of a refused body is not read: the connection is closed after the answer.
    if (declared > limit) return send(route.refuse('too-large'), true);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.removeAllListeners('end');
        send(route.refuse('too-large'), true);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      const failed = (error: unknown): void => {
        this.#edge.logger.error({ err: error, reqId, url: route.url }, 'direct route failed');
        send(route.refuse('failed'));
      };
      this.#intake(() => {
        // A throw before the promise must not stop the answers queued behind this one.
        let answer: Promise<DirectReply>;
        try {
          answer = route.answer(body, req.headers);
        } catch (error) {
          failed(error);
          return;
        }
        answer.then(send, failed);
      });
    });
    // A client that goes away mid-body gets no answer; there is nothing to log but the socket error.
    req.on('error', () => {});
  }

  /**
   * Starts answers a few at a time, after the I/O callbacks of the loop's turn, so that
   * the database's replies are not queued behind a crowd of requests. An answer's start
   * is the costly part of a call (signature check, parsing, planning), and Node runs a
   * turn's I/O callbacks one after another: started inside them, the requests that
   * arrived together delayed the reply of a ledger batch in flight by all their work,
   * and its lane, which sends the next batch only then, stood idle meanwhile (PostgreSQL's
   * lane connection was idle 44% of the time at 128 callers). Between two handfuls the
   * loop polls again and takes the replies that came.
   */
  #intake(start: () => void): void {
    if (this.#ready.push(start) === 1) setImmediate(this.#drain);
  }

  readonly #drain = (): void => {
    // Requests arrive in I/O callbacks, not while these start; one that did would at worst
    // schedule a second drain, which finds the queue emptied.
    for (const start of this.#ready.splice(0, INTAKE_PER_TURN)) start();
    if (this.#ready.length > 0) setImmediate(this.#drain);
  };

  #completed(route: DirectRoute, reqId: string, status: number, started: number): void {
    const ms = performance.now() - started;
    observeRequest(this.#edge.metrics, route.method, route.url, status, ms);
    const log = this.#edge.logger;
    const line = () => ({ reqId, ...accessLine(route.method, route.url, status, ms) });
    if (status >= 500) log.error(line(), 'request');
    else if (log.isLevelEnabled('info')) log.info(line(), 'request');
  }
}
