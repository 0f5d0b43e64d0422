import type { FastifyReply, FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import { actorOf } from '../../platform/auth/principal.ts';
import { tablesOf, type Database } from '../../platform/db/database.ts';
import { DomainError, platformErrors } from '../../platform/errors.ts';
import { sha256Hex } from '../../platform/hash.ts';
import { problemBody, PROBLEM_CONTENT_TYPE } from '../../platform/http/problem.ts';
import { fail } from './errors.ts';
import { requestHash } from './operations.ts';
import type { WalletTables } from './store.ts';

// A money-moving REST request carries an Idempotency-Key. The first request with a key
// claims it (committed at once), runs, and stores its status and body; a replay gets
// exactly that answer; the same key with another payload is refused. A claim whose
// request died half-way (crash) is taken over after a grace period: every step inside
// is itself idempotent (keys derived from the payment or adjustment id), so running it
// again finishes the work instead of repeating it.

const IN_PROGRESS_GRACE_MS = 30_000;

/** The idempotency claim a request runs under. */
export interface Claim {
  readonly scope: string;
  readonly key: string;
}

/**
 * The id of the record a request creates (an adjustment, a payment), derived from its
 * claim: a retry that takes over the claim of an attempt that died finds that attempt's
 * record and finishes it, instead of creating (and paying) a second one.
 */
export function claimedId(claim: Claim): string {
  const h = sha256Hex(`${claim.scope}\u0000${claim.key}`);
  // An RFC 9562 version 8 (name-based, custom) UUID.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface StoredResponse {
  status: number;
  body: unknown;
  problem?: boolean;
}

export async function idempotentRequest(
  database: Database,
  request: FastifyRequest,
  reply: FastifyReply,
  handler: (claim: Claim) => Promise<{ status: number; body: unknown }>,
): Promise<FastifyReply> {
  // Every money-moving route needs a caller; an anonymous one must not write a claim (nor share one scope with all others).
  if (request.principal.kind === 'anonymous') throw platformErrors('UNAUTHENTICATED');
  const key = request.headers['idempotency-key'];
  if (typeof key !== 'string' || key.length < 8 || key.length > 200) {
    throw fail('IDEMPOTENCY_KEY_REQUIRED', { detail: 'Send a unique Idempotency-Key header (8 to 200 characters) with every money-moving request.' });
  }
  const actor = actorOf(request.principal);
  const scope = `http:${actor.type}:${actor.id ?? '-'}`;
  const hash = requestHash({ method: request.method, url: request.url, body: request.body ?? null });
  const db = tablesOf<WalletTables>(database.db);
  const claimed = await db
    .insertInto('wallet.idempotency')
    .values({ scope, key, request_hash: hash, player_id: null })
    .onConflict((oc) => oc.columns(['scope', 'key']).doNothing())
    .returning('key')
    .executeTakeFirst();
  if (!claimed) {
    const row = await db.selectFrom('wallet.idempotency').select(['request_hash', 'outcome', 'created_at']).where('scope', '=', scope).where('key', '=', key).executeTakeFirstOrThrow();
    if (row.request_hash !== hash) throw fail('IDEMPOTENCY_KEY_REUSED');
    const stored = (typeof row.outcome === 'string' ? JSON.parse(row.outcome) : row.outcome) as StoredResponse | null;
    if (stored) {
      reply.header('idempotent-replayed', 'true');
      if (stored.problem) reply.type(PROBLEM_CONTENT_TYPE);
      return reply.code(stored.status).send(stored.body);
    }
    if (Date.now() - row.created_at.getTime() < IN_PROGRESS_GRACE_MS) {
      throw fail('IDEMPOTENCY_KEY_REUSED', { detail: 'A request with this key is still being processed; retry shortly.' });
    }
    // The first attempt died; take over (steps inside are idempotent).
  }
  let response: StoredResponse;
  try {
    response = await handler({ scope, key });
  } catch (error) {
    // Refusals are answers too: a replay must get the same refusal, not a second try.
    if (error instanceof DomainError && error.status < 500) {
      await store(database, scope, key, { status: error.status, body: problemBody(request, error), problem: true });
    } else {
      await sql`delete from wallet.idempotency where scope = ${scope} and key = ${key} and outcome is null`.execute(database.db);
    }
    throw error;
  }
  await store(database, scope, key, response);
  return reply.code(response.status).send(response.body);
}

async function store(database: Database, scope: string, key: string, response: StoredResponse): Promise<void> {
  await tablesOf<WalletTables>(database.db)
    .updateTable('wallet.idempotency')
    .set({ outcome: JSON.stringify(response) })
    .where('scope', '=', scope)
    .where('key', '=', key)
    .execute();
}
