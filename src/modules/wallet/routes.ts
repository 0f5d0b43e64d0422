import { Type } from 'typebox';
import { actorOf } from '../../platform/auth/principal.ts';
import { contextOf, requirePermission, requireStepUp } from '../../platform/http/auth.ts';
import { cursorId, Page, PageQuery, pageOf, problems, Uuid } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { platformErrors } from '../../platform/errors.ts';
import { formatAmount, MoneyFormatError, parseAmount } from '../../platform/money.ts';
import type { Adjustments } from './adjustments.ts';
import { claimedId, idempotentRequest } from './idempotency.ts';
import { fee, idempotency, transfer } from './operations.ts';
import type { Payments } from './payments.ts';
import { outcomeError, parsePositiveAmount, PERMISSIONS, type WalletService } from './service.ts';
import { TRANSACTION_TYPES } from './types.ts';

const tags = ['wallet'];
const bearer = [{ bearer: [] }];
const Amount = Type.String({ pattern: '^\\d{1,19}(\\.\\d{1,4})?$', description: 'Decimal string in the currency\'s major unit, e.g. "12.50". Never a float.' });
const SignedAmount = Type.String({ pattern: '^-?\\d{1,19}(\\.\\d{1,4})?$', description: 'Signed decimal string: negative debits, positive credits.' });
const Currency = Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217.' });
const IdParams = Type.Object({ id: Uuid() });
// Optional in the schema so that a missing key is answered with IDEMPOTENCY_KEY_REQUIRED (idempotency.ts checks it), not a generic schema error.
const IdempotencyHeader = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 8, maxLength: 200, description: 'Required. Unique per money-moving request; a replay returns the first answer.' })) });

const Payment = Type.Object(
  {
    id: Uuid(),
    playerId: Uuid(),
    kind: Type.Enum(['deposit', 'withdrawal']),
    provider: Type.String(),
    currency: Type.String(),
    amount: Type.String(),
    status: Type.Enum(['pending', 'requested', 'approved', 'completed', 'failed', 'cancelled', 'rejected']),
    providerRef: Type.Union([Type.String(), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Payment' },
);

const Adjustment = Type.Object(
  {
    id: Uuid(),
    playerId: Uuid(),
    wallet: Type.String(),
    currency: Type.String(),
    amount: Type.String(),
    reason: Type.String(),
    status: Type.Enum(['pending_approval', 'applied', 'rejected']),
    requestedBy: Type.String(),
    approvedBy: Type.Union([Type.String(), Type.Null()]),
    transactionId: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Adjustment' },
);

const Movement = Type.Object({
  transactionId: Uuid(),
  type: Type.String(),
  currency: Type.String(),
  balances: Type.Record(Type.String(), Type.String()),
  replayed: Type.Boolean(),
});

export function walletRoutes(wallet: WalletService, payments: Payments, adjustments: Adjustments) {
  return async (app: HttpApp): Promise<void> => {
    app.addSchema(Payment);
    app.addSchema(Adjustment);

    app.get(
      '/v1/players/:id/balance',
      {
        schema: {
          tags,
          summary: "Every wallet's balance in every currency (the player, or staff with wallet.read). Read from the primary.",
          security: bearer,
          params: IdParams,
          response: {
            200: Type.Object({
              playerId: Uuid(),
              currency: Type.String({ description: "The player's currency." }),
              balances: Type.Array(Type.Object({ currency: Type.String(), wallets: Type.Record(Type.String(), Type.String()) })),
            }),
            ...problems(400, 401, 403, 404),
          },
        },
      },
      async (request) => wallet.balances(contextOf(request), request.params.id),
    );

    app.get(
      '/v1/players/:id/transactions',
      {
        schema: {
          tags,
          summary: 'Transaction history, newest first: amounts, each wallet\'s balance after, references, rounds.',
          security: bearer,
          params: IdParams,
          querystring: Type.Object(
            {
              ...PageQuery,
              wallet: Type.Optional(Type.String({ maxLength: 40 })),
              type: Type.Optional(Type.Enum(TRANSACTION_TYPES)),
              roundId: Type.Optional(Type.String({ maxLength: 200 })),
              from: Type.Optional(Type.String({ format: 'date-time' })),
              to: Type.Optional(Type.String({ format: 'date-time' })),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Page(
              Type.Object({
                id: Uuid(),
                type: Type.String(),
                currency: Type.String(),
                amount: Type.String(),
                wallets: Type.Array(Type.Object({ wallet: Type.String(), amount: Type.String(), balanceAfter: Type.String() })),
                roundId: Type.Union([Type.String(), Type.Null()]),
                provider: Type.Union([Type.String(), Type.Null()]),
                externalRef: Type.Union([Type.String(), Type.Null()]),
                referenceId: Type.Union([Type.String(), Type.Null()]),
                meta: Type.Record(Type.String(), Type.Unknown()),
                createdAt: Type.String({ format: 'date-time' }),
              }),
            ),
            ...problems(400, 401, 403, 404),
          },
        },
      },
      async (request) => {
        const q = request.query;
        const limit = q.limit ?? 50;
        const before = cursorId(q.cursor);
        const items = await wallet.transactions(contextOf(request), request.params.id, {
          limit,
          before,
          wallet: q.wallet,
          type: q.type,
          roundId: q.roundId,
          from: q.from ? new Date(q.from) : undefined,
          to: q.to ? new Date(q.to) : undefined,
        });
        return pageOf(items, limit);
      },
    );

    const paymentBody = Type.Object({ amount: Amount, currency: Currency, provider: Type.Optional(Type.String({ default: 'sandbox', maxLength: 40 })) }, { additionalProperties: false });

    // Deposits and withdrawals start the same way; only what the payments service does differs.
    // A withdrawal needs a fresh sign-in of the player (requireStepUp: staff acting for them pass).
    const startPayment = (kind: 'deposits' | 'withdrawals', summary: string, description: string, start: Payments['requestDeposit']) =>
      app.post(
        `/v1/players/:id/${kind}`,
        {
          ...(kind === 'withdrawals' ? { preHandler: requireStepUp() } : {}),
          schema: {
            tags,
            summary,
            description,
            security: bearer,
            params: IdParams,
            headers: IdempotencyHeader,
            body: paymentBody,
            response: { 201: Type.Ref('Payment'), ...problems(400, 401, 403, 404, 409, 422) },
          },
        },
        async (request, reply) =>
          idempotentRequest(wallet.kernel.database, request, reply, async (claim) => {
            const amount = parsePositiveAmount(request.body.amount, request.body.currency);
            const payment = await start(contextOf(request), request.params.id, { amount, currency: request.body.currency, provider: request.body.provider ?? 'sandbox' }, claimedId(claim));
            return { status: 201, body: payment };
          }),
      );
    startPayment(
      'deposits',
      'Start a deposit (the player, or staff with wallet.payments.manage). Pending until the provider settles it.',
      'The sandbox provider settles after a moment; amounts ending in .13 fail. Requires Idempotency-Key.',
      (ctx, playerId, input, id) => payments.requestDeposit(ctx, playerId, input, id),
    );
    startPayment(
      'withdrawals',
      'Request a withdrawal: the amount is reserved at once (it cannot be spent) until staff approve and the provider pays out.',
      'Requires Idempotency-Key. The reserved amount returns if the withdrawal is cancelled, rejected or fails. A player needs a fresh sign-in (and the second factor when they have one): otherwise 401 STEP_UP_REQUIRED with a WWW-Authenticate challenge (RFC 9470).',
      (ctx, playerId, input, id) => payments.requestWithdrawal(ctx, playerId, input, id),
    );

    app.get(
      '/v1/payments/:id',
      { schema: { tags, summary: 'A deposit or withdrawal.', security: bearer, params: IdParams, response: { 200: Type.Ref('Payment'), ...problems(400, 401, 403, 404) } } },
      async (request) => payments.get(contextOf(request), request.params.id),
    );

    app.post(
      '/v1/withdrawals/:id/approve',
      {
        preHandler: requirePermission(PERMISSIONS.pay),
        schema: { tags, summary: 'Approve a requested withdrawal (staff); the provider then pays it out.', security: bearer, params: IdParams, response: { 200: Type.Ref('Payment'), ...problems(400, 401, 403, 404, 409) } },
      },
      async (request) => payments.approveWithdrawal(contextOf(request), request.params.id),
    );

    app.post(
      '/v1/withdrawals/:id/cancel',
      {
        schema: {
          tags,
          summary: 'Cancel (the player) or reject (staff) a requested withdrawal; the reserved amount returns to the real wallet.',
          security: bearer,
          params: IdParams,
          body: Type.Object({ reason: Type.String({ minLength: 3, maxLength: 500 }) }, { additionalProperties: false }),
          response: { 200: Type.Ref('Payment'), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => payments.cancelWithdrawal(contextOf(request), request.params.id, request.body.reason),
    );

    // Provider callbacks are verified over the exact bytes received, so this scope keeps the raw body.
    await app.register(async (plain) => {
      const scope = plain as unknown as HttpApp;
      scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
      scope.post(
        '/v1/payments/:provider/callback',
        {
          schema: {
            tags,
            summary: "A payment provider's signed callback (the sandbox signs with HMAC-SHA256 in X-Sandbox-Signature).",
            params: Type.Object({ provider: Type.String({ maxLength: 40 }) }),
            response: { 200: Type.Ref('Payment'), ...problems(400, 401, 404) },
          },
        },
        async (request) => {
          const provider = payments.provider(request.params.provider);
          const callback = provider.parseCallback(request.headers, String(request.body));
          return payments.handleCallback(provider.name, callback);
        },
      );
    });

    app.post(
      '/v1/players/:id/adjustments',
      {
        preHandler: requirePermission(PERMISSIONS.adjust),
        schema: {
          tags,
          summary: 'Manually adjust a wallet (staff with wallet.adjust; reason required, audited). Above the threshold it waits for a second staff member.',
          security: bearer,
          params: IdParams,
          headers: IdempotencyHeader,
          body: Type.Object({ wallet: Type.String({ maxLength: 40 }), currency: Currency, amount: SignedAmount, reason: Type.String({ minLength: 3, maxLength: 500 }) }, { additionalProperties: false }),
          response: { 201: Type.Ref('Adjustment'), 202: Type.Ref('Adjustment'), ...problems(400, 401, 403, 404, 409, 422) },
        },
      },
      async (request, reply) =>
        idempotentRequest(wallet.kernel.database, request, reply, async (claim) => {
          const { wallet: walletName, currency, reason } = request.body;
          let amount: bigint;
          try {
            amount = parseAmount(request.body.amount, currency);
          } catch (error) {
            if (!(error instanceof MoneyFormatError)) throw error;
            throw platformErrors('VALIDATION_FAILED', { errors: [{ field: '/body/amount', code: 'AMOUNT_INVALID', message: error.message }] });
          }
          if (amount === 0n) throw platformErrors('VALIDATION_FAILED', { errors: [{ field: '/body/amount', code: 'AMOUNT_INVALID', message: 'An adjustment cannot be zero.' }] });
          const result = await adjustments.request(contextOf(request), request.params.id, { wallet: walletName, currency, amount, reason }, claimedId(claim));
          return { status: result.status === 'applied' ? 201 : 202, body: result };
        }),
    );

    app.post(
      '/v1/adjustments/:id/approve',
      {
        preHandler: requirePermission(PERMISSIONS.approveAdjustment),
        schema: { tags, summary: 'Approve a pending adjustment (a different staff member than the requester).', security: bearer, params: IdParams, response: { 200: Type.Ref('Adjustment'), ...problems(400, 401, 403, 404, 409) } },
      },
      async (request) => adjustments.approve(contextOf(request), request.params.id),
    );

    app.post(
      '/v1/adjustments/:id/reject',
      {
        preHandler: requirePermission(PERMISSIONS.approveAdjustment),
        schema: {
          tags,
          summary: 'Reject a pending adjustment.',
          security: bearer,
          params: IdParams,
          body: Type.Object({ reason: Type.String({ minLength: 3, maxLength: 500 }) }, { additionalProperties: false }),
          response: { 200: Type.Ref('Adjustment'), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => adjustments.reject(contextOf(request), request.params.id, request.body.reason),
    );

    const movementRoute = (path: string, summary: string, body: Parameters<typeof Type.Object>[0], build: (playerId: string, b: Record<string, string>, key: string) => Promise<ReturnType<typeof fee>>) =>
      app.post(
        path,
        {
          preHandler: requirePermission(PERMISSIONS.move),
          schema: { tags, summary, security: bearer, params: IdParams, headers: IdempotencyHeader, body: Type.Object(body, { additionalProperties: false }), response: { 201: Movement, ...problems(400, 401, 403, 404, 409, 422) } },
        },
        async (request, reply) =>
          idempotentRequest(wallet.kernel.database, request, reply, async () => {
            const playerId = (request.params).id;
            // The ledger key is the caller's own, as the HTTP key is (idempotency.ts): another caller's identical key is another request.
            const actor = actorOf(request.principal);
            const key = `${actor.type}:${actor.id ?? '-'}:${String(request.headers['idempotency-key'])}`;
            const result = await wallet.submit(await build(playerId, request.body as Record<string, string>, key));
            if (!result.outcome.ok) throw outcomeError(result.outcome);
            const o = result.outcome;
            // The ledger answers in minor units; the API speaks decimal strings ("12.50").
            const balances = Object.fromEntries(Object.entries(o.balances).map(([w, v]) => [w, formatAmount(BigInt(v), o.currency)]));
            return { status: 201, body: { transactionId: o.transactionId, type: o.type, currency: o.currency, balances, replayed: result.replayed } };
          }),
      );

    const checkedPlayer = async (playerId: string, currency: string) => {
      const profile = await wallet.profile(playerId);
      if (!profile) throw outcomeError({ ok: false, code: 'PLAYER_NOT_FOUND' });
      if (profile.currency !== currency) throw outcomeError({ ok: false, code: 'CURRENCY_MISMATCH' });
    };

    movementRoute(
      '/v1/players/:id/transfers',
      "Move money between a player's wallets, e.g. converted bonus money to real (staff or services with wallet.move).",
      { from: Type.String({ maxLength: 40 }), to: Type.String({ maxLength: 40 }), currency: Currency, amount: Amount, reason: Type.String({ minLength: 3, maxLength: 500 }) },
      async (playerId, b, key) => {
        await checkedPlayer(playerId, b.currency!);
        for (const w of [b.from!, b.to!]) if (!wallet.isWallet(w)) throw outcomeError({ ok: false, code: 'WALLET_UNKNOWN', detail: `No wallet type "${w}".` });
        if (b.from === b.to) throw platformErrors('VALIDATION_FAILED', { errors: [{ field: '/body/to', code: 'SAME_WALLET', message: 'A transfer needs two different wallets.' }] });
        const amount = parsePositiveAmount(b.amount!, b.currency!);
        return transfer({ playerId, currency: b.currency!, amount, from: b.from!, to: b.to!, reason: b.reason!, idempotency: idempotency('transfer', `${playerId}:${key}`, b) });
      },
    );

    movementRoute(
      '/v1/players/:id/fees',
      'Write off a fee or commission from the real wallet (staff or services with wallet.move).',
      { currency: Currency, amount: Amount, reason: Type.String({ minLength: 3, maxLength: 500 }) },
      async (playerId, b, key) => {
        await checkedPlayer(playerId, b.currency!);
        const amount = parsePositiveAmount(b.amount!, b.currency!);
        return fee({ playerId, currency: b.currency!, amount, reason: b.reason!, idempotency: idempotency('fee', `${playerId}:${key}`, b) });
      },
    );

    app.post(
      '/v1/players/:id/game-sessions',
      {
        schema: {
          tags,
          summary: 'Open a game session: the token a game provider (Hub88) sends back with every wallet call.',
          security: bearer,
          params: IdParams,
          body: Type.Object({ gameCode: Type.String({ minLength: 1, maxLength: 100 }), currency: Currency }, { additionalProperties: false }),
          response: { 201: Type.Object({ token: Type.String(), expiresAt: Type.String({ format: 'date-time' }) }), ...problems(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.code(201).send(await wallet.createGameSession(contextOf(request), request.params.id, request.body.gameCode, request.body.currency)),
    );
  };
}
