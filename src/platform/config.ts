// The one place that reads process.env. Every setting is declared once here, with its
// default and meaning; the README's configuration table is generated from this list
// (scripts/generate-catalogues.ts) and a test fails when the two drift apart.

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`Invalid configuration: ${variable} ${message}`);
    this.variable = variable;
  }
}

type Parser<T> = (raw: string, name: string) => T;

interface Setting<T> {
  readonly env: string;
  readonly default: string | undefined;
  readonly doc: string;
  readonly parse: Parser<T>;
}

const int = (min: number, max: number): Parser<number> => (raw, name) => {
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
};

const str: Parser<string> = (raw) => raw;

const optionalUrl = (protocols: string[]): Parser<string | undefined> => (raw, name) => {
  if (raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, 'must be a URL');
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(name, `must use one of ${protocols.join(', ')}, got ${url.protocol}`);
  }
  return raw;
};

const oneOf = <T extends string>(values: readonly T[]): Parser<T> => (raw, name) => {
  if (!(values as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${values.join(', ')}, got "${raw}"`);
  }
  return raw as T;
};

const upperList = (pattern: RegExp): Parser<string[]> => (raw, name) => {
  const items = raw.split(',').map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
  for (const item of items) {
    if (!pattern.test(item)) throw new ConfigError(name, `has an invalid entry "${item}"`);
  }
  return items;
};

const ageByCountry: Parser<Record<string, number>> = (raw, name) => {
  const result: Record<string, number> = {};
  for (const pair of raw.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const match = /^([A-Za-z]{2})[:=](\d{1,2})$/.exec(pair);
    if (!match) throw new ConfigError(name, `entries must look like "GR:21", got "${pair}"`);
    result[match[1]!.toUpperCase()] = Number(match[2]);
  }
  return result;
};

const bool: Parser<boolean> = (raw, name) => {
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off', ''].includes(raw.toLowerCase())) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
};

const trustProxyParser: Parser<boolean | number | string> = (raw, name) => {
  const v = raw.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  if (/^\d+$/.test(v)) return Number(v);
  if (/^[0-9a-fA-F.:/,\s]+$/.test(v)) return v;
  throw new ConfigError(name, `must be false, true, a hop count or addresses/CIDRs, got "${raw}"`);
};

function setting<T>(env: string, defaultValue: string | undefined, doc: string, parse: Parser<T>): Setting<T> {
  return { env, default: defaultValue, doc, parse };
}

/** Every environment variable Pitboss reads. Order is the order of the README table. */
export const settings = {
  port: setting('PORT', '8080', 'HTTP port the server listens on.', int(0, 65535)),
  host: setting('HOST', '0.0.0.0', 'Address the HTTP server binds to.', str),
  publicUrl: setting('PUBLIC_URL', 'http://localhost:8080', 'External base URL; the token issuer (`iss`) and links use it.', optionalUrl(['http:', 'https:'])),
  modules: setting('MODULES', 'all', 'Comma-separated modules this process runs (`all`, or e.g. `players,backoffice`).', str),
  trustProxy: setting('TRUST_PROXY', 'false', 'Which proxies to trust for the client address (X-Forwarded-For) in logs and the audit log: false, true, a hop count, or comma-separated addresses/CIDRs of your load balancers.', trustProxyParser),
  logLevel: setting('LOG_LEVEL', 'info', 'Log level: fatal, error, warn, info, debug, trace or silent.', oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const)),
  databaseUrl: setting('DATABASE_URL', '', 'PostgreSQL URL (`postgres://user@host:5432/db`). Unset: embedded PGlite in `DATA_DIR`.', optionalUrl(['postgres:', 'postgresql:'])),
  databaseReadUrl: setting('DATABASE_READ_URL', '', 'Optional read replica for reads that may lag (never money).', optionalUrl(['postgres:', 'postgresql:'])),
  databasePoolSize: setting('DATABASE_POOL_SIZE', '20', 'Connections in the PostgreSQL pool per process.', int(1, 1000)),
  databasePoolIdleSeconds: setting(
    'DATABASE_POOL_IDLE_SECONDS',
    '0',
    'How long a pool connection may sit idle before it is closed (seconds). 0 keeps every connection the pool has opened (a fixed-size pool): connections opened in a burst and closed together later make every PostgreSQL backend exit at once, which stalls the commits of the others.',
    int(0, 86400),
  ),
  dataDir: setting('DATA_DIR', './data', 'Directory of the embedded PGlite database (used when DATABASE_URL is unset). `memory://` keeps it in memory.', str),
  redisUrl: setting('REDIS_URL', '', 'Redis URL for cache, sessions and rate limits. Unset: in-memory cache.', optionalUrl(['redis:', 'rediss:'])),
  amqpUrl: setting('AMQP_URL', '', 'RabbitMQ URL for the event bus. Unset: in-process event bus.', optionalUrl(['amqp:', 'amqps:'])),
  amqpExchange: setting('AMQP_EXCHANGE', 'pitboss.events', 'Topic exchange events are published to.', str),
  outboxPollMs: setting('OUTBOX_POLL_MS', '200', 'How often the outbox relay looks for unpublished events when not woken by a commit (ms).', int(10, 60000)),
  outboxRetentionHours: setting('OUTBOX_RETENTION_HOURS', '168', 'Hours a published event stays in platform.outbox (to inspect or publish again by hand) before the housekeeping process deletes it.', int(1, 87600)),
  inboxRetentionDays: setting('INBOX_RETENTION_DAYS', '30', 'Days a consumer remembers an event it handled, so a redelivery within them has no second effect.', int(1, 3650)),
  consumerMaxAttempts: setting('CONSUMER_MAX_ATTEMPTS', '5', 'Deliveries of one event to a failing consumer before it goes to the dead-letter queue.', int(1, 100)),
  cacheMaxEntries: setting('CACHE_MAX_ENTRIES', '100000', 'Entries kept by the in-memory cache.', int(100, 10_000_000)),
  cacheTtlSeconds: setting('CACHE_TTL_SECONDS', '300', 'Lifetime of a cached hot record (seconds).', int(1, 86400)),
  accessTokenTtlSeconds: setting('ACCESS_TOKEN_TTL_SECONDS', '900', 'Default lifetime of access tokens issued by Pitboss (seconds).', int(30, 86400)),
  signingKeyRotationDays: setting('SIGNING_KEY_ROTATION_DAYS', '30', 'Age after which a new token signing key is generated; old keys stay published until their tokens expire.', int(1, 3650)),
  oidcIssuer: setting('OIDC_ISSUER', '', 'Issuer URL of the OAuth2/OpenID Connect provider (the identity module serves it at its path); every process trusts access tokens it issues. Unset: PUBLIC_URL + `/oidc`.', optionalUrl(['http:', 'https:'])),
  oidcRefreshTokenTtlSeconds: setting('OIDC_REFRESH_TOKEN_TTL_SECONDS', '2592000', 'Lifetime of an OAuth2 refresh token (seconds); each use rotates it.', int(300, 31_536_000)),
  oidcSessionTtlSeconds: setting('OIDC_SESSION_TTL_SECONDS', '1209600', 'Lifetime of a sign-in session at the OpenID Connect provider (seconds).', int(300, 31_536_000)),
  signInDelayAfter: setting('SIGN_IN_DELAY_AFTER', '3', 'Failed sign-ins of one account after which each answer of the hosted sign-in page is delayed, the delay doubling with each further failure.', int(0, 1000)),
  signInDelayMs: setting('SIGN_IN_DELAY_MS', '500', 'The first sign-in delay (ms); it doubles up to SIGN_IN_MAX_DELAY_MS.', int(0, 60000)),
  signInMaxDelayMs: setting('SIGN_IN_MAX_DELAY_MS', '8000', 'The longest delay of a failed sign-in answer (ms).', int(0, 60000)),
  signInAccountLockThreshold: setting('SIGN_IN_ACCOUNT_LOCK_THRESHOLD', '10', 'Failed sign-ins of one account (login or email) within SIGN_IN_WINDOW_SECONDS that lock it for SIGN_IN_LOCK_SECONDS.', int(1, 10000)),
  signInSourceLockThreshold: setting('SIGN_IN_SOURCE_LOCK_THRESHOLD', '100', 'Failed sign-ins from one source address within SIGN_IN_WINDOW_SECONDS that lock it for SIGN_IN_LOCK_SECONDS.', int(1, 1_000_000)),
  signInLockSeconds: setting('SIGN_IN_LOCK_SECONDS', '900', 'How long a sign-in lock (of an account or a source address) lasts (seconds).', int(1, 86400)),
  signInWindowSeconds: setting('SIGN_IN_WINDOW_SECONDS', '900', 'How long failed sign-ins are counted after the last one (seconds).', int(1, 86400)),
  stepUpMaxAgeSeconds: setting('STEP_UP_MAX_AGE_SECONDS', '300', 'How recent a sign-in must be for sensitive operations (withdrawals, password, email and second-factor changes); older ones are answered STEP_UP_REQUIRED (seconds).', int(30, 86400)),
  sessionIdleTimeoutSeconds: setting('SESSION_IDLE_TIMEOUT_SECONDS', '604800', 'A sign-in session with no sign-in or token refresh for this long ends, with its refresh tokens (seconds).', int(1, 31_536_000)),
  sessionAbsoluteTimeoutSeconds: setting('SESSION_ABSOLUTE_TIMEOUT_SECONDS', '2592000', 'A sign-in session ends this long after its sign-in, whatever its activity, with its refresh tokens (seconds).', int(1, 31_536_000)),
  passwordResetTtlSeconds: setting('PASSWORD_RESET_TTL_SECONDS', '1800', 'How long a password reset link works (seconds); a newer request replaces it.', int(60, 86400)),
  passwordResetAccountLimit: setting('PASSWORD_RESET_ACCOUNT_LIMIT', '3', 'Password reset emails sent for one account per PASSWORD_RESET_WINDOW_SECONDS; more requests get the same answer and no email.', int(1, 1000)),
  passwordResetSourceLimit: setting('PASSWORD_RESET_SOURCE_LIMIT', '20', 'Password reset requests accepted from one source address per PASSWORD_RESET_WINDOW_SECONDS; more get RATE_LIMITED.', int(1, 100000)),
  passwordResetWindowSeconds: setting('PASSWORD_RESET_WINDOW_SECONDS', '3600', 'The window of the password reset limits (seconds).', int(1, 86400)),
  auditChains: setting('AUDIT_CHAINS', '16', 'Number of parallel audit hash chains. Fixed after the first start.', int(1, 256)),
  auditCheckpointSeconds: setting('AUDIT_CHECKPOINT_SECONDS', '300', 'How often a signed checkpoint binds the audit chains together (seconds).', int(5, 86400)),
  minAgeDefault: setting('MIN_AGE_DEFAULT', '18', 'Minimum player age at registration.', int(18, 25)),
  minAgeByCountry: setting('MIN_AGE_BY_COUNTRY', 'GR:21,PT:18,EE:21', 'Per-country minimum age overrides, `CC:age` pairs.', ageByCountry),
  supportedCurrencies: setting('SUPPORTED_CURRENCIES', 'EUR,USD,GBP,CAD,AUD,NZD,SEK,NOK,DKK,CHF,PLN,BRL,JPY', 'Currencies players may register with (ISO 4217).', upperList(/^[A-Z]{3}$/)),
  restrictedCountries: setting('RESTRICTED_COUNTRIES', '', 'Countries (ISO 3166-1 alpha-2) from which registration is refused.', upperList(/^[A-Z]{2}$/)),
  walletHouseShards: setting('WALLET_HOUSE_SHARDS', '16', 'Shards of each house (operator) account, so bets of different players never queue on one row.', int(1, 1024)),
  walletMaxBatch: setting('WALLET_MAX_BATCH', '500', 'Most money movements the ledger writes in one database transaction.', int(1, 2000)),
  walletWriters: setting('WALLET_WRITERS', '1', 'Ledger lanes per process: batches in flight at once, each on its own connection and its own house shard (claimed so that no other process uses it). One lane writes fewer, larger batches, which measured faster on 2 cores.', int(1, 64)),
  walletLaneCachePlayers: setting('WALLET_LANE_CACHE_PLAYERS', '20000', "Players whose wallets each ledger lane keeps in memory, so a batch is written in one statement without reading first (checked as it writes; a stale entry falls back to the locking path). 0 turns this off.", int(0, 10_000_000)),
  idempotencyRetentionDays: setting('IDEMPOTENCY_RETENTION_DAYS', '123', 'Days an idempotency key and its first answer are kept (at least 4 months).', int(120, 3650)),
  adjustmentApprovalThreshold: setting('ADJUSTMENT_APPROVAL_THRESHOLD', '1000', "Manual adjustments above this amount (in the currency's major unit) need a second staff member's approval.", str),
  gameSessionTtlSeconds: setting('GAME_SESSION_TTL_SECONDS', '14400', 'Lifetime of a game session token handed to a game provider (seconds).', int(60, 604800)),
  ledgerVerifySeconds: setting('LEDGER_VERIFY_SECONDS', '3600', 'How often the server runs the ledger consistency check (seconds; 0 turns it off).', int(0, 604800)),
  hub88PublicKey: setting('HUB88_PUBLIC_KEY', '', "Hub88's RSA public key (PEM) that verifies X-Hub88-Signature. Unset: the Hub88 endpoints refuse every call.", str),
  paymentsSandbox: setting('PAYMENTS_SANDBOX', 'true', 'Enable the local sandbox payment provider (demo deposits and withdrawals). Turn off in production.', bool),
  smsGateway: setting('SMS_GATEWAY', 'local', 'Where SMS go: `local` (kept in platform.local_messages, for development and tests) or `twilio` (Twilio\'s Messages API; needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and SMS_FROM).', oneOf(['local', 'twilio'] as const)),
  twilioAccountSid: setting('TWILIO_ACCOUNT_SID', '', 'Twilio account SID (SMS_GATEWAY=twilio).', str),
  twilioAuthToken: setting('TWILIO_AUTH_TOKEN', '', 'Twilio auth token (SMS_GATEWAY=twilio). A secret: pass it from a secret store.', str),
  twilioBaseUrl: setting('TWILIO_BASE_URL', 'https://api.twilio.com', 'Base URL of the Twilio-style Messages API.', optionalUrl(['http:', 'https:'])),
  smsFrom: setting('SMS_FROM', '', 'Sender of SMS: an E.164 number or alphanumeric sender id (SMS_GATEWAY=twilio).', str),
  emailGateway: setting('EMAIL_GATEWAY', 'local', 'Where email goes: `local` (kept in platform.local_messages) or `smtp` (needs SMTP_URL and EMAIL_FROM).', oneOf(['local', 'smtp'] as const)),
  smtpUrl: setting('SMTP_URL', '', 'SMTP server for EMAIL_GATEWAY=smtp: `smtp://user:pass@host:587` (STARTTLS) or `smtps://...:465`.', optionalUrl(['smtp:', 'smtps:'])),
  emailFrom: setting('EMAIL_FROM', '', 'From header of outgoing email, e.g. `Casino <no-reply@casino.example>` (EMAIL_GATEWAY=smtp).', str),
  shutdownTimeoutMs: setting('SHUTDOWN_TIMEOUT_MS', '15000', 'Grace period to drain requests and the relay on SIGTERM (ms).', int(0, 600000)),
  requireServices: setting('CI', '', 'Set by CI: tests that need PostgreSQL, Redis or RabbitMQ fail instead of skipping when a service is missing.', bool),
} as const;

type Settings = typeof settings;
export type Config = { readonly [K in keyof Settings]: Settings[K] extends Setting<infer T> ? T : never };

/** Parses the environment (or the given map) into a Config; throws ConfigError naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<Config> = {}): Config {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(settings) as [string, Setting<unknown>][]) {
    const raw = env[spec.env] ?? spec.default ?? '';
    out[key] = spec.parse(raw, spec.env);
  }
  const config = { ...(out as Config), ...overrides };
  checkGateways(config);
  return config;
}

/** A configured gateway must have what it needs: start-up stops naming the missing variable. */
function checkGateways(config: Config): void {
  if (config.smsGateway === 'twilio') {
    const needed: [string, string][] = [
      ['TWILIO_ACCOUNT_SID', config.twilioAccountSid],
      ['TWILIO_AUTH_TOKEN', config.twilioAuthToken],
      ['SMS_FROM', config.smsFrom],
    ];
    for (const [name, value] of needed) if (value.trim() === '') throw new ConfigError(name, 'is required when SMS_GATEWAY=twilio');
  }
  if (config.emailGateway === 'smtp') {
    if (!config.smtpUrl) throw new ConfigError('SMTP_URL', 'is required when EMAIL_GATEWAY=smtp');
    if (config.emailFrom.trim() === '') throw new ConfigError('EMAIL_FROM', 'is required when EMAIL_GATEWAY=smtp');
  }
}

/** The OpenID Connect provider's issuer: OIDC_ISSUER, or PUBLIC_URL + `/oidc`. */
export function oidcIssuer(config: Pick<Config, 'oidcIssuer' | 'publicUrl'>): string {
  return config.oidcIssuer ?? `${(config.publicUrl ?? 'http://localhost:8080').replace(/\/+$/, '')}/oidc`;
}

/** Module names this process runs, from `MODULES`. */
export function selectedModules(config: Config, all: readonly string[]): string[] {
  if (config.modules.trim() === 'all') return [...all];
  const wanted = config.modules.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of wanted) {
    if (!all.includes(name)) throw new ConfigError('MODULES', `names an unknown module "${name}" (known: ${all.join(', ')})`);
  }
  return wanted;
}
