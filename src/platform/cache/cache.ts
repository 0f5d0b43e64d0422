import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';

/**
 * One cache interface for hot records. Never the truth for money; entries are
 * invalidated by events and expire on their own.
 */
export interface Cache {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  del(...keys: string[]): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class MemoryCache implements Cache {
  readonly kind = 'memory';
  readonly #lru: LRUCache<string, string>;

  constructor(maxEntries: number) {
    this.#lru = new LRUCache({ max: maxEntries, ttlAutopurge: false });
  }

  async get(key: string): Promise<string | undefined> {
    return this.#lru.get(key);
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    this.#lru.set(key, value, { ttl: ttlSeconds * 1000 });
  }

  async del(...keys: string[]): Promise<void> {
    for (const key of keys) this.#lru.delete(key);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#lru.clear();
  }
}

/** A cache command slower than this is treated as a miss (reads fall back to the loader). */
const COMMAND_TIMEOUT_MS = 500;

export class RedisCache implements Cache {
  readonly kind = 'redis';
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(url: string, prefix = 'pitboss:') {
    // Fail a command fast while Redis is away rather than queueing requests behind it:
    // the offline queue lets commands sent while connecting wait, and the timeout bounds
    // that wait, which otherwise follows the reconnect back-off (seconds per command).
    this.#redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false, commandTimeout: COMMAND_TIMEOUT_MS });
    this.#redis.on('error', () => {});
    this.#prefix = prefix;
  }

  get client(): Redis {
    return this.#redis;
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.#redis.get(this.#prefix + key)) ?? undefined;
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    await this.#redis.set(this.#prefix + key, value, 'EX', ttlSeconds);
  }

  async del(...keys: string[]): Promise<void> {
    if (keys.length > 0) await this.#redis.del(...keys.map((k) => this.#prefix + k));
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  async close(): Promise<void> {
    // QUIT would wait in the offline queue for a reconnect that may never come.
    if (this.#redis.status !== 'ready') return this.#redis.disconnect();
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

/** Reads through the cache: a hit returns the cached value, a miss loads, stores and returns. */
export async function cached<T>(cache: Cache, key: string, ttlSeconds: number, load: () => Promise<T | undefined>): Promise<T | undefined> {
  try {
    const hit = await cache.get(key);
    if (hit !== undefined) return JSON.parse(hit) as T;
  } catch {
    // A cache outage slows reads down; it must not fail them.
  }
  const value = await load();
  if (value !== undefined) await cache.set(key, JSON.stringify(value), ttlSeconds).catch(() => {});
  return value;
}
