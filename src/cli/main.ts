import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfig, type Config } from '../platform/config.ts';
import { DomainError } from '../platform/errors.ts';
import { systemContext } from '../platform/auth/principal.ts';
import { verifyAudit } from '../platform/audit/verify.ts';
import { writeCheckpoint } from '../platform/audit/checkpoint.ts';
import { MAX_TOKEN_TTL_SECONDS } from '../platform/kernel.ts';
import { isUuid } from '../platform/ids.ts';
import { createRuntime, createServer, VERSION } from '../app/runtime.ts';
import { verifyLedger } from '../modules/wallet/index.ts';
import { listDeadLetters, replayDeadLetters } from '../platform/events/dead-letters.ts';
import { deadLetterQueueName, queueName, requeueDeadLetters } from '../platform/events/amqp-bus.ts';
import { parseDuration } from './duration.ts';
import { seedPlayers } from './seed.ts';
import { identityModule, type GrantType, type IdentityApi } from '../modules/identity/index.ts';

function config(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

const program = new Command()
  .name('pitboss')
  .description('Pitboss player management system. The database and services come from the environment (see README: Configuration).')
  .version(VERSION);

program
  .command('serve')
  .description('Run the HTTP API, the event relay and consumers (migrates first).')
  .option('-p, --port <port>', 'port (overrides PORT)', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port');
    return n;
  })
  .action(async (opts: { port?: number }) => {
    const started = performance.now();
    const cfg = { ...config(), ...(opts.port !== undefined ? { port: opts.port } : {}) };
    const runtime = await createRuntime(cfg);
    const server = await createServer(runtime);
    await server.app.listen({ port: cfg.port, host: cfg.host });
    runtime.logger.info(
      { port: cfg.port, database: runtime.database.kind, cache: runtime.cache.kind, bus: server.bus.kind, modules: [...runtime.modules.keys()], startupMs: Math.round(performance.now() - started) },
      `Pitboss listening on http://localhost:${cfg.port} (API docs at /docs)`,
    );
    const stop = (signal: string) => {
      runtime.logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => {
        runtime.logger.error('shutdown timed out; exiting');
        process.exit(1);
      }, cfg.shutdownTimeoutMs);
      force.unref();
      server.shutdown().then(
        () => process.exit(0),
        (err: unknown) => {
          runtime.logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

program
  .command('migrate')
  .description('Apply pending database migrations of every module, then exit.')
  .action(async () => {
    const runtime = await createRuntime(config());
    for (const m of runtime.migrated) process.stdout.write(`applied ${m.module}/${m.name}\n`);
    process.stdout.write(runtime.migrated.length === 0 ? 'database is up to date\n' : `${runtime.migrated.length} migration(s) applied\n`);
    await runtime.close();
  });

/** The password on stdin (one line; the final newline is not part of it). */
async function passwordFromStdin(): Promise<string> {
  let input = '';
  for await (const chunk of process.stdin) input += String(chunk);
  const password = input.replace(/\r?\n$/, '');
  if (password === '') throw new InvalidArgumentError('--password-stdin: no password on standard input');
  return password;
}

/** A generated staff password: 144 random bits, printed once. */
const generatedPassword = (): string => randomBytes(18).toString('base64url');

/** Field errors of a rejected password say what to fix; the catch-all below prints only the code. */
const explain = (error: unknown): never => {
  if (error instanceof DomainError) for (const e of error.errors ?? []) process.stderr.write(`${e.field.replace('/body/', '')}: ${e.message}\n`);
  throw error;
};

const admin = program.command('admin').description('Staff administration.');
admin
  .command('create')
  .description('Create a staff member (the first admin, typically) with a password for the staff sign-in: read from stdin (--password-stdin), or generated and printed once.')
  .requiredOption('--email <email>', 'staff email')
  .option('--name <name>', 'display name')
  .option('--role <role...>', 'roles to grant', ['admin'])
  .option('--password-stdin', 'read the password from standard input instead of generating one')
  .action(async (opts: { email: string; name?: string; role: string[]; passwordStdin?: boolean }) => {
    const password = opts.passwordStdin ? await passwordFromStdin() : generatedPassword();
    const runtime = await createRuntime(config());
    try {
      const staff = await runtime.staff.createStaff(systemContext('cli'), { email: opts.email, displayName: opts.name, roles: opts.role, password }).catch(explain);
      const shown = opts.passwordStdin ? {} : { password, note: 'Shown only now. Staff sign in with a staff client and set up an authenticator app at their first sign-in.' };
      process.stdout.write(`${JSON.stringify({ id: staff.id, email: staff.email, roles: staff.roles, ...shown }, null, 2)}\n`);
    } finally {
      await runtime.close();
    }
  });
admin
  .command('set-password')
  .description("Set a staff member's password: read from stdin (--password-stdin), or generated and printed once.")
  .requiredOption('--email <email>', 'staff email')
  .option('--password-stdin', 'read the password from standard input instead of generating one')
  .action(async (opts: { email: string; passwordStdin?: boolean }) => {
    const password = opts.passwordStdin ? await passwordFromStdin() : generatedPassword();
    const runtime = await createRuntime(config());
    try {
      const staff = await runtime.staff.setPassword(systemContext('cli'), opts.email, password).catch(explain);
      process.stdout.write(`${JSON.stringify({ id: staff.id, email: staff.email, ...(opts.passwordStdin ? {} : { password }) }, null, 2)}\n`);
    } finally {
      await runtime.close();
    }
  });

program
  .command('token')
  .description('Print a short-lived access token for a staff member (or a player, for testing).')
  .option('--staff <email>', 'staff email')
  .option('--player <id>', 'player id')
  .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h (at most 24h)', '1h')
  .action(async (opts: { staff?: string; player?: string; ttl: string }) => {
    const ttl = parseDuration(opts.ttl);
    if (ttl < 30 || ttl > MAX_TOKEN_TTL_SECONDS) throw new InvalidArgumentError(`--ttl must be between 30s and ${MAX_TOKEN_TTL_SECONDS / 3600}h`);
    if (!opts.staff === !opts.player) throw new InvalidArgumentError('give exactly one of --staff or --player');
    const runtime = await createRuntime(config());
    try {
      if (opts.staff) {
        const { token } = await runtime.staff.issueToken(opts.staff, ttl);
        process.stdout.write(`${token}\n`);
      } else {
        const player = isUuid(opts.player!) ? await runtime.players.find(opts.player!) : undefined;
        if (!player) throw new InvalidArgumentError(`no player ${opts.player}`);
        const { token } = await runtime.kernel.tokens.issue({ kind: 'player', id: player.id }, ttl);
        process.stdout.write(`${token}\n`);
      }
    } finally {
      await runtime.close();
    }
  });

program
  .command('seed')
  .description('Register demo players (real registrations: validated, hashed, audited, with events).')
  .option('--count <n>', 'how many', (v) => Number.parseInt(v, 10), 50)
  .option('--concurrency <n>', 'registrations in flight', (v) => Number.parseInt(v, 10), 4)
  .action(async (opts: { count: number; concurrency: number }) => {
    const runtime = await createRuntime(config());
    try {
      const result = await seedPlayers(runtime, opts.count, opts.concurrency, process.stderr.isTTY === true);
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } finally {
      await runtime.close();
    }
  });

const ledger = program.command('ledger').description('The wallet ledger.');
ledger
  .command('verify')
  .description('Check that every transaction balances, every balance equals its postings, and every hash chain is intact; exit 1 and name what is wrong.')
  .option('--json', 'print the report as JSON')
  .action(async (opts: { json?: boolean }) => {
    const runtime = await createRuntime(config(), { migrate: false });
    try {
      const report = await verifyLedger(runtime.database.db);
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(`${report.transactions} transactions, ${report.postings} postings, ${report.accounts} accounts in ${report.seconds}s: ${report.ok ? 'consistent' : 'INCONSISTENT'}\n`);
        for (const p of report.problems) process.stdout.write(`  ${p.check}: ${p.detail}\n`);
      }
      process.exitCode = report.ok ? 0 : 1;
    } finally {
      await runtime.close();
    }
  });

const events = program.command('events').description('Events a consumer gave up on: platform.dead_letters (in-process bus) and, with RabbitMQ, the queues pitboss.<consumer>.dlq.');
events
  .command('dead-letters')
  .description('List dead-lettered events, oldest first.')
  .option('--consumer <name>', "only this consumer's")
  .option('--json', 'print them as JSON')
  .action(async (opts: { consumer?: string; json?: boolean }) => {
    const runtime = await createRuntime(config(), { migrate: false });
    try {
      const letters = await listDeadLetters(runtime.database.db, opts.consumer ? { consumer: opts.consumer } : { all: true });
      if (opts.json) process.stdout.write(`${JSON.stringify(letters, null, 2)}\n`);
      else {
        for (const l of letters) process.stdout.write(`${l.id}\t${l.failedAt}\t${l.consumer}\t${l.type}\t${l.eventId}\tattempts ${l.attempts}\t${l.error}\n`);
        process.stdout.write(`${letters.length} dead letter(s)\n`);
      }
    } finally {
      await runtime.close();
    }
  });
events
  .command('replay')
  .description('Hand dead-lettered events to their consumers again (once the cause is fixed); each is removed once handled, and kept with the new error if it fails again. With AMQP_URL, --consumer and --all also move the messages of pitboss.<consumer>.dlq back to pitboss.<consumer>.')
  .option('--id <ids...>', 'these dead letters (ids from `events dead-letters`)')
  .option('--consumer <name>', "all of this consumer's")
  .option('--all', 'all of them')
  .action(async (opts: { id?: string[]; consumer?: string; all?: boolean }) => {
    const chosen = [opts.id !== undefined, opts.consumer !== undefined, opts.all === true].filter(Boolean).length;
    if (chosen !== 1 || (opts.id ?? []).some((id) => !/^\d{1,18}$/.test(id))) {
      process.stderr.write('Say which: --id <ids...> (numbers), --consumer <name> or --all.\n');
      process.exitCode = 2;
      return;
    }
    const runtime = await createRuntime(config(), { migrate: false });
    try {
      const consumers = [...runtime.modules.values()].flatMap((m) => m.consumers ?? []);
      const selection = opts.id ? { ids: opts.id } : opts.consumer ? { consumer: opts.consumer } : { all: true as const };
      const results = await replayDeadLetters(runtime.database.db, consumers, selection, runtime.logger);
      for (const r of results) process.stdout.write(`${r.id}\t${r.consumer}\t${r.eventId}\t${r.outcome}${r.error ? `\t${r.error}` : ''}\n`);
      let left = results.filter((r) => r.outcome === 'failed' || r.outcome === 'unknown-consumer').length;
      process.stdout.write(`${results.length} replayed, ${left} still dead-lettered\n`);
      // With RabbitMQ, a consumer's dead letters wait in its queue's .dlq: back to its queue.
      const amqpUrl = runtime.config.amqpUrl;
      if (amqpUrl && !opts.id) {
        for (const name of opts.consumer ? [opts.consumer] : consumers.map((c) => c.name)) {
          try {
            const moved = await requeueDeadLetters(amqpUrl, name);
            process.stdout.write(`moved ${moved} message(s) from ${deadLetterQueueName(name)} back to ${queueName(name)}\n`);
          } catch (error) {
            left++;
            process.stdout.write(`could not move ${deadLetterQueueName(name)}: ${error instanceof Error ? error.message : String(error)}\n`);
          }
        }
      }
      process.exitCode = left > 0 ? 1 : 0;
    } finally {
      await runtime.close();
    }
  });

const client = program.command('client').description('OAuth2 clients of the OpenID Connect provider.');
client
  .command('create')
  .description('Register a client and print its id and secret as JSON (the secret is shown only here).')
  .requiredOption('--name <name>', 'what the client is, e.g. "Cashier service"')
  .option('--grant <type...>', 'grant types: client_credentials, authorization_code, refresh_token', ['client_credentials'])
  .option('--scope <scope>', 'space-separated scopes; for client_credentials, the permissions the service gets')
  .option('--redirect-uri <uri...>', 'redirect URIs (authorization_code)')
  .option('--post-logout-redirect-uri <uri...>', 'where end-session may send the browser back to')
  .option('--public', 'a public client (browser or mobile app): no secret, PKCE only')
  .option('--staff', 'a staff (back-office) client: its sign-in takes staff emails only, with mandatory MFA')
  .action(async (opts: { name: string; grant: string[]; scope?: string; redirectUri?: string[]; postLogoutRedirectUri?: string[]; public?: boolean; staff?: boolean }) => {
    const runtime = await createRuntime(config());
    try {
      const identity = runtime.modules.get(identityModule.name)?.api as IdentityApi | undefined;
      if (!identity) throw new InvalidArgumentError('the identity module is not among MODULES');
      const created = await identity.clients
        .create(systemContext('cli'), {
          name: opts.name,
          grantTypes: opts.grant as GrantType[],
          scope: opts.scope,
          redirectUris: opts.redirectUri,
          postLogoutRedirectUris: opts.postLogoutRedirectUri,
          public: opts.public === true,
          staff: opts.staff === true,
        })
        .catch((error: unknown) => {
          // Field errors say what to fix; the catch-all below prints only the code.
          if (error instanceof DomainError) for (const e of error.errors ?? []) process.stderr.write(`${e.field}: ${e.message}\n`);
          throw error;
        });
      process.stdout.write(`${JSON.stringify({ ...created.client, clientSecret: created.clientSecret ?? null, issuer: identity.issuer }, null, 2)}\n`);
    } finally {
      await runtime.close();
    }
  });

const audit = program.command('audit').description('The hash-chained audit log.');
audit
  .command('verify')
  .description('Re-walk every audit chain and checkpoint; exit 1 if anything was changed, inserted or deleted.')
  .option('--json', 'print the report as JSON')
  .action(async (opts: { json?: boolean }) => {
    const runtime = await createRuntime(config(), { migrate: false });
    try {
      const report = await verifyAudit(runtime.database.db);
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(`${report.entries} entries in ${report.chains} chains, ${report.checkpoints} checkpoints: ${report.ok ? 'intact' : 'TAMPERED'}\n`);
        for (const p of report.problems) process.stdout.write(`  chain ${p.chain ?? '-'} seq ${p.seq ?? '-'}: ${p.problem}\n`);
      }
      process.exitCode = report.ok ? 0 : 1;
    } finally {
      await runtime.close();
    }
  });
audit
  .command('checkpoint')
  .description('Sign a checkpoint of every chain head now (the server does this on a schedule).')
  .action(async () => {
    const runtime = await createRuntime(config());
    try {
      const cp = await writeCheckpoint(runtime.database.db, runtime.kernel.keys);
      process.stdout.write(`${JSON.stringify(cp)}\n`);
    } finally {
      await runtime.close();
    }
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof DomainError) {
    process.stderr.write(`${error.code}: ${error.message}\n`);
    process.exit(1);
  }
  // Configuration checked after loading (MODULES names) is as much a usage error as a bad value.
  if (error instanceof ConfigError || error instanceof InvalidArgumentError) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
