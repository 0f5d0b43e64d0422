import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { hash, verify } from '@node-rs/argon2';
import { limiter } from '../../platform/limit.ts';

// @node-rs/argon2's Algorithm is a const enum, which type stripping cannot inline: 2 is Argon2id.
const ARGON2ID = 2;

/** OWASP's argon2id baseline: 19 MiB memory, 2 iterations, 1 lane. */
export const ARGON2_PARAMS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

// libuv's own setting, read as libuv reads it (atoi; 0 means 1): not Pitboss configuration.
// eslint-disable-next-line no-restricted-syntax
const configured = process.env.UV_THREADPOOL_SIZE;
const POOL = configured === undefined ? 4 : Math.max(1, Number.parseInt(configured, 10) || 0);
/**
 * Each argon2id job holds one of libuv's pool threads (bin/pitboss.js sets
 * UV_THREADPOOL_SIZE to the cores, 2 to 4, unless the operator did; libuv's 4 where it
 * is unset, as in tests) and 19 MiB for tens of milliseconds. A burst of sign-ins (or a
 * credential stuffing attack) queues here rather than taking every pool thread, which file
 * reads share; running more jobs at once than there are cores would not finish them
 * sooner anyway. With a pool of 2 or fewer threads hashing still gets one: raise
 * UV_THREADPOOL_SIZE there.
 */
const hashing = limiter(Math.max(1, Math.min(availableParallelism(), POOL - 2)));

export const hashPassword = (password: string): Promise<string> => hashing(() => hash(password, ARGON2_PARAMS));

export const verifyPassword = (encoded: string, password: string): Promise<boolean> => hashing(() => verify(encoded, password));

let dummy: Promise<string> | undefined;

/**
 * The hash of a random password at the same parameters, verified when a sign-in names
 * no account, so that answer costs as long as a wrong password.
 */
export const dummyPasswordHash = (): Promise<string> => (dummy ??= hashPassword(randomBytes(24).toString('base64url')));
