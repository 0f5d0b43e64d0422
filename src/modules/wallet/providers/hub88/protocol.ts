import { exponentOf, MAX_MINOR } from '../../../../platform/money.ts';

// The Hub88 Operator Wallet API as data: statuses, request fields, amounts and the
// response body. Sources: docs.hub88.io/developer-docs/operator-api-reference/wallet-api
// (fields), .../operator-api-overview/seamless-wallet-response-statuses-operator-api
// (statuses) and .../transferwallet-api (amounts: "multiplied by 100000").

export const STATUSES = [
  'RS_OK',
  'RS_ERROR_UNKNOWN',
  'RS_ERROR_INVALID_TOKEN',
  'RS_ERROR_WRONG_CURRENCY',
  'RS_ERROR_NOT_ENOUGH_MONEY',
  'RS_ERROR_USER_DISABLED',
  'RS_ERROR_INVALID_SIGNATURE',
  'RS_ERROR_TOKEN_EXPIRED',
  'RS_ERROR_WRONG_SYNTAX',
  'RS_ERROR_WRONG_TYPES',
  'RS_ERROR_DUPLICATE_TRANSACTION',
  'RS_ERROR_TRANSACTION_DOES_NOT_EXIST',
  'RS_ERROR_TRANSACTION_ROLLED_BACK',
] as const;
export type Hub88Status = (typeof STATUSES)[number];

/** Ledger outcome codes (src/modules/wallet/errors.ts) as Hub88 statuses; anything else is RS_ERROR_UNKNOWN. */
const OUTCOME_STATUS: Readonly<Record<string, Hub88Status>> = {
  INSUFFICIENT_FUNDS: 'RS_ERROR_NOT_ENOUGH_MONEY',
  IDEMPOTENCY_KEY_REUSED: 'RS_ERROR_DUPLICATE_TRANSACTION',
  TRANSACTION_NOT_FOUND: 'RS_ERROR_TRANSACTION_DOES_NOT_EXIST',
  // A bet whose rollback arrived first: the rollback closed its transaction_uuid.
  TRANSACTION_ROLLED_BACK: 'RS_ERROR_TRANSACTION_ROLLED_BACK',
  PLAYER_BLOCKED: 'RS_ERROR_USER_DISABLED',
  GAME_SESSION_EXPIRED: 'RS_ERROR_TOKEN_EXPIRED',
  GAME_SESSION_INVALID: 'RS_ERROR_INVALID_TOKEN',
  CURRENCY_MISMATCH: 'RS_ERROR_WRONG_CURRENCY',
};

export const statusOfOutcome = (code: string): Hub88Status => OUTCOME_STATUS[code] ?? 'RS_ERROR_UNKNOWN';

// --- Amounts ---------------------------------------------------------------------------

/** Hub88 amounts are integers: the currency's major unit x 100000 ($3.56 is 356000). */
export const HUB88_DECIMALS = 5;

/** A Hub88 amount in the ledger's minor units, or null when it is not a whole number of them (0.5 cents, half a yen). */
export function hub88ToMinor(amount: bigint, currency: string): bigint | null {
  const exponent = exponentOf(currency);
  const minor = exponent <= HUB88_DECIMALS ? splitExactly(amount, 10n ** BigInt(HUB88_DECIMALS - exponent)) : amount * 10n ** BigInt(exponent - HUB88_DECIMALS);
  return minor === null || minor > MAX_MINOR ? null : minor;
}

const splitExactly = (amount: bigint, factor: bigint): bigint | null => (amount % factor === 0n ? amount / factor : null);

/** Minor units as a Hub88 amount (exact for every ISO 4217 exponent up to 5, i.e. all of them). */
export function minorToHub88(minor: bigint, currency: string): bigint {
  const exponent = exponentOf(currency);
  return exponent <= HUB88_DECIMALS ? minor * 10n ** BigInt(HUB88_DECIMALS - exponent) : minor / 10n ** BigInt(exponent - HUB88_DECIMALS);
}

// --- Requests ----------------------------------------------------------------------------

/** An `amount` as written in the body: JSON numbers lose precision above 2^53, so it is read from its source text. */
class JsonInteger {
  readonly value: bigint | null;
  constructor(value: bigint | null) {
    this.value = value;
  }
}

/**
 * The top-level `amount` exactly: a safe integer as parsed; beyond 2^53 from its source
 * text (JSON.parse's reviver context), which only such a body pays for. An `amount`
 * nested in another field (meta) stays as parsed.
 */
function exactAmount(text: string, root: Record<string, unknown>): unknown {
  const value = root.amount;
  if (typeof value !== 'number') return value;
  if (Number.isSafeInteger(value)) return new JsonInteger(BigInt(value));
  const sources = new Map<object, string>();
  // The reviver sees each object as it is built, the root among them, and JSON.parse returns that very root.
  const reparsed = JSON.parse(text, function (this: object, key: string, v: unknown, context?: { source?: string }) {
    if (key === 'amount' && context?.source !== undefined) sources.set(this, context.source);
    return v;
  }) as object;
  const source = sources.get(reparsed);
  return new JsonInteger(source !== undefined && /^-?\d+$/.test(source) ? BigInt(source) : null);
}

type FieldType = 'string' | 'boolean' | 'amount' | 'object';
interface FieldSpec {
  readonly type: FieldType;
  readonly required: boolean;
}
type Spec = Readonly<Record<string, FieldSpec>>;
type ValueOf<T extends FieldType> = T extends 'string' ? string : T extends 'boolean' ? boolean : T extends 'amount' ? bigint : Record<string, unknown>;
export type Parsed<S extends Spec> = { readonly [K in keyof S]: S[K]['required'] extends true ? ValueOf<S[K]['type']> : ValueOf<S[K]['type']> | null };

const req = <T extends FieldType>(type: T) => ({ type, required: true }) as const;
const opt = <T extends FieldType>(type: T) => ({ type, required: false }) as const;

// The fields a bet and a win share.
const MONEY = {
  user: req('string'),
  transaction_uuid: req('string'),
  supplier_transaction_id: opt('string'),
  token: req('string'),
  supplier_user: opt('string'),
  round_closed: opt('boolean'),
  round: opt('string'),
  reward_uuid: opt('string'),
  request_uuid: req('string'),
  is_free: opt('boolean'),
  is_supplier_promo: opt('boolean'),
  is_aggregated: opt('boolean'),
  game_code: req('string'),
  currency: req('string'),
  bet: opt('string'),
  amount: req('amount'),
  meta: opt('object'),
} as const;

// Fields Hub88 documents; unknown fields are ignored (Hub88 adds optional ones over time).
export const SPECS = {
  info: { user: req('string'), request_uuid: req('string') },
  balance: { user: req('string'), token: req('string'), request_uuid: req('string'), game_code: opt('string'), supplier_user: opt('string') },
  bet: MONEY,
  win: {
    ...MONEY,
    // Required, except for a supplier's promotion payout (is_supplier_promo), which has no bet.
    reference_transaction_uuid: opt('string'),
  },
  rollback: {
    user: req('string'),
    transaction_uuid: req('string'),
    supplier_transaction_id: opt('string'),
    token: req('string'),
    round_closed: opt('boolean'),
    round: opt('string'),
    request_uuid: req('string'),
    reference_transaction_uuid: req('string'),
    game_code: opt('string'),
    meta: opt('object'),
  },
} as const satisfies Record<string, Spec>;

export type Endpoint = keyof typeof SPECS;
export type InfoRequest = Parsed<typeof SPECS.info>;
export type BalanceRequest = Parsed<typeof SPECS.balance>;
export type BetRequest = Parsed<typeof SPECS.bet>;
export type WinRequest = Parsed<typeof SPECS.win>;
export type RollbackRequest = Parsed<typeof SPECS.rollback>;

const MAX_STRING = 255;

function fieldValue(spec: FieldSpec, value: unknown): { ok: true; value: unknown } | { ok: false } {
  switch (spec.type) {
    case 'string':
      return typeof value === 'string' && value.length <= MAX_STRING ? { ok: true, value } : { ok: false };
    case 'boolean':
      return typeof value === 'boolean' ? { ok: true, value } : { ok: false };
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? { ok: true, value } : { ok: false };
    case 'amount':
      return value instanceof JsonInteger && value.value !== null && value.value >= 0n ? { ok: true, value: value.value } : { ok: false };
  }
}

export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reply: Hub88Reply };

/**
 * Reads a (signature-checked) body: not JSON, not an object, or a required field
 * missing or null is RS_ERROR_WRONG_SYNTAX; a field of the wrong type (a string
 * amount, a fractional or negative amount, a number for a string) is RS_ERROR_WRONG_TYPES.
 */
export function parseRequest<E extends Endpoint>(endpoint: E, body: Buffer): ParseResult<Parsed<(typeof SPECS)[E]>> {
  let json: unknown;
  const text = body.toString('utf8');
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reply: { status: 'RS_ERROR_WRONG_SYNTAX' } };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, reply: { status: 'RS_ERROR_WRONG_SYNTAX' } };
  const input = json as Record<string, unknown>;
  if ('amount' in input) input.amount = exactAmount(text, input);
  const echo = { request_uuid: typeof input.request_uuid === 'string' ? input.request_uuid : undefined, user: typeof input.user === 'string' ? input.user : undefined };
  const spec: Spec = SPECS[endpoint];
  const out: Record<string, unknown> = {};
  let wrongType = false;
  for (const [name, field] of Object.entries(spec)) {
    const value = input[name];
    if (value === undefined || value === null) {
      if (field.required) return { ok: false, reply: { ...echo, status: 'RS_ERROR_WRONG_SYNTAX' } };
      out[name] = null;
      continue;
    }
    const checked = fieldValue(field, value);
    if (checked.ok) out[name] = checked.value;
    else wrongType = true;
  }
  if (wrongType) return { ok: false, reply: { ...echo, status: 'RS_ERROR_WRONG_TYPES' } };
  if (endpoint === 'win' && out.reference_transaction_uuid === null && out.is_supplier_promo !== true) {
    return { ok: false, reply: { ...echo, status: 'RS_ERROR_WRONG_SYNTAX' } };
  }
  return { ok: true, value: out as Parsed<(typeof SPECS)[E]> };
}

// --- Responses ---------------------------------------------------------------------------

/** Every Wallet API answer: HTTP 200 with the status in the body, request_uuid echoed. */
export interface Hub88Reply {
  readonly status: Hub88Status;
  readonly user?: string;
  readonly request_uuid?: string;
  readonly currency?: string;
  /** A Hub88 amount (major unit x 100000). */
  readonly balance?: bigint;
}

// JSON.rawJSON (Node 21+, not yet in TypeScript's lib): a number written exactly as given.
const rawJson = (text: string): unknown => (JSON as unknown as { rawJSON: (this: void, text: string) => unknown }).rawJSON(text);

/** The body, in Hub88's field order, with the balance as an exact JSON integer. */
export function serializeReply(reply: Hub88Reply): string {
  return JSON.stringify({
    user: reply.user,
    status: reply.status,
    request_uuid: reply.request_uuid,
    currency: reply.currency,
    balance: reply.balance === undefined ? undefined : rawJson(reply.balance.toString()),
  });
}
