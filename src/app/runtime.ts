import { readFileSync } from 'node:fs';
import { ensureChains } from '../platform/audit/audit.ts';
import { writeCheckpoint } from '../platform/audit/checkpoint.ts';
import { MemoryCache, RedisCache, type Cache } from '../platform/cache/cache.ts';
import { ConfigError, selectedModules, type Config } from '../platform/config.ts';
import { openDatabase, type Database } from '../platform/db/database.ts';
import { migrate, type MigrationResult } from '../platform/db/migrate.ts';
import { AmqpBus } from '../platform/events/amqp-bus.ts';
import type { EventBus } from '../platform/events/bus.ts';
import { InProcessBus } from '../platform/events/in-process-bus.ts';
import { outboxBacklog, pruneOutbox } from '../platform/events/outbox.ts';
import { pruneInbox } from '../platform/events/inbox.ts';
import { OutboxRelay } from '../platform/events/relay.ts';
import { createHttpServer, type ReadinessCheck } from '../platform/http/server.ts';
import type { HttpApp } from '../platform/http/types.ts';
import { createKernel } from '../platform/kernel.ts';
import { platformMigrations } from '../platform/migrations/index.ts';
import type { Kernel, ModuleDefinition, ModuleInstance } from '../platform/module.ts';
import { createLogger, type Logger } from '../platform/telemetry/logger.ts';
import { createMetrics } from '../platform/telemetry/metrics.ts';
import { allModules } from './modules.ts';
import { backofficeModule } from '../modules/backoffice/index.ts';
import { playersModule } from '../modules/players/index.ts';
import type { StaffService } from '../modules/backoffice/index.ts';
import type { PlayerService } from '../modules/players/index.ts';
import { walletModule, type WalletApi } from '../modules/wallet/index.ts';

const HOUSEKEEPING_LOCK = 7_344_004;

export const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Everything a process needs, built from one Config: used by the server, the CLI and tests. */
export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly database: Database;
  readonly cache: Cache;
  readonly kernel: Kernel;
  readonly modules: ReadonlyMap<string, ModuleInstance<unknown>>;
  readonly players: PlayerService;
  readonly staff: StaffService;
  readonly wallet: WalletApi;
  readonly migrated: MigrationResult[];
  close(): Promise<void>;
}

export interface RuntimeOptions {
  logger?: Logger;
  /** Apply pending migrations (default true; `pitboss migrate` and start-up both do). */
  migrate?: boolean;
}

/** Opens storage and cache, migrates, and builds every module (no HTTP, no relay). */
export async function createRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const database = await openDatabase(config, (err) => logger.warn({ err }, 'an idle database connection broke; the pool opens a new one'));
  let cache: Cache | undefined;
  try {
    const names = selectedModules(config, allModules.map((m) => m.name));
    if (names.length < allModules.length && !config.amqpUrl) {
      // Events published in process reach only this process's consumers; the other
      // modules' consumers (in other processes) would never see them.
      throw new ConfigError('MODULES', 'names only some modules, which needs the shared event bus: set AMQP_URL (and DATABASE_URL) when splitting modules into services');
    }
    const definitions = allModules.filter((m) => names.includes(m.name)) as readonly ModuleDefinition[];
    const migrated =
      options.migrate === false
        ? []
        : await migrate(database.db, [platformMigrations, ...allModules.map((m) => ({ module: m.name, migrations: m.migrations }))]);
    await ensureChains(database.db, config.auditChains);
    cache = config.redisUrl ? new RedisCache(config.redisUrl) : new MemoryCache(config.cacheMaxEntries);
    const kernel = createKernel({ config, database, cache, logger, metrics: createMetrics() });
    // Each module is built once; `use` hands a module another's public interface. A
    // module this process does not serve is still built for in-process calls (its
    // network client replaces this when modules run as separate services).
    const built = new Map<string, ModuleInstance<unknown>>();
    const build = <Api>(definition: ModuleDefinition<Api>): ModuleInstance<Api> => {
      const existing = built.get(definition.name) as ModuleInstance<Api> | undefined;
      if (existing) return existing;
      const instance = definition.create(kernel, use);
      built.set(definition.name, instance);
      return instance;
    };
    const use = <Api>(definition: ModuleDefinition<Api>): Api => build(definition).api;
    const modules = new Map<string, ModuleInstance<unknown>>();
    for (const definition of definitions) modules.set(definition.name, build(definition));
    const players = use(playersModule);
    const staff = use(backofficeModule);
    const wallet = use(walletModule);
    const builtCache = cache;
    return {
      config,
      logger,
      database,
      cache,
      kernel,
      modules,
      players,
      staff,
      wallet,
      migrated,
      close: async () => {
        await builtCache.close();
        await database.close();
      },
    };
  } catch (error) {
    await cache?.close();
    await database.close();
    throw error;
  }
}

export interface Server {
  readonly runtime: Runtime;
  readonly app: HttpApp;
  readonly bus: EventBus;
  readonly relay: OutboxRelay;
  /** Drains HTTP requests and the relay, then closes bus, cache and database. */
  shutdown(): Promise<void>;
}

const PRUNE_EVERY_MS = 600_000;

/** The server: HTTP, the event bus with every module's consumers, the outbox relay and scheduled jobs. */
export async function createServer(runtime: Runtime): Promise<Server> {
  const { config, logger, database, kernel, cache } = runtime;
  let bus: EventBus;
  if (config.amqpUrl) {
    const amqp = new AmqpBus(database.db, logger, { url: config.amqpUrl, exchange: config.amqpExchange, maxAttempts: config.consumerMaxAttempts });
    await amqp.start();
    bus = amqp;
  } else {
    bus = new InProcessBus(database.db, logger, config.consumerMaxAttempts);
  }
  await bus.subscribe([...runtime.modules.values()].flatMap((m) => m.consumers ?? []));
  const relay = new OutboxRelay(database, bus, { pollMs: config.outboxPollMs, logger });
  (kernel as ReturnType<typeof createKernel>).setOnEventsCommitted(() => relay.wake());
  kernel.metrics.gauge('pitboss_outbox_backlog', 'Committed events not yet published.', () => outboxBacklog(database.db));

  const readiness: ReadinessCheck[] = [{ name: 'database', check: () => database.ping() }];
  if (cache.kind === 'redis') readiness.push({ name: 'redis', check: () => cache.ping() });
  if (bus.kind === 'amqp') {
    readiness.push({
      name: 'broker',
      check: async () => {
        if (!bus.healthy()) throw new Error('not connected');
      },
    });
  }
  const app = await createHttpServer({
    logger,
    metrics: kernel.metrics,
    tokens: kernel.tokens,
    authPolicy: kernel.authPolicy,
    publicUrl: config.publicUrl ?? 'http://localhost:8080',
    version: VERSION,
    readiness,
    trustProxy: config.trustProxy,
  });
  for (const [name, instance] of runtime.modules) {
    if (instance.routes) {
      const routes = instance.routes;
      // Each module is its own encapsulated plugin: what it adds is invisible to siblings.
      await app.register(async (scope) => routes(scope), { prefix: '' });
    }
    logger.debug({ module: name }, 'module ready');
  }
  for (const instance of runtime.modules.values()) await instance.start?.();
  await app.ready();

  await kernel.keys.signingKey();
  relay.start();
  // Housekeeping runs in one process of the deployment (the holder of this lock).
  const housekeeper = database.leaderLock(HOUSEKEEPING_LOCK);
  // A run that outlasts its interval (a prune after the retention was shortened) is not
  // joined by a second one walking the same rows and holding another pool connection.
  const whenLeader = (job: () => Promise<unknown>, what: string) => {
    let running = false;
    return () => {
      if (running) return;
      running = true;
      housekeeper
        .held()
        .then((leader) => (leader ? job() : undefined))
        .catch((err: unknown) => logger.error({ err }, `${what} failed`))
        .finally(() => (running = false));
    };
  };
  const timers = [
    setInterval(whenLeader(() => writeCheckpoint(database.db, kernel.keys), 'audit checkpoint'), config.auditCheckpointSeconds * 1000),
    // Every 10 minutes, so that at wallet rates each run deletes a few minutes' worth of rows, not hours'.
    setInterval(whenLeader(() => pruneOutbox(database.db, new Date(Date.now() - config.outboxRetentionHours * 3_600_000)), 'outbox prune'), PRUNE_EVERY_MS),
    setInterval(whenLeader(() => pruneInbox(database.db, new Date(Date.now() - config.inboxRetentionDays * 86_400_000)), 'inbox prune'), PRUNE_EVERY_MS),
  ];
  for (const t of timers) t.unref();

  let closing: Promise<void> | undefined;
  return {
    runtime,
    app,
    bus,
    relay,
    shutdown() {
      closing ??= (async () => {
        for (const t of timers) clearInterval(t);
        await app.close();
        await housekeeper.release();
        await relay.stop();
        for (const instance of runtime.modules.values()) await instance.stop?.();
        await bus.close();
        await runtime.close();
      })();
      return closing;
    },
  };
}
