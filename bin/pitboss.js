#!/usr/bin/env node
// The package bin: `npx pitboss <command>`. npm puts node_modules/.bin first on PATH,
// so this runs on the project's pinned Node 24, which strips TypeScript types itself.
import { availableParallelism } from 'node:os';
import process from 'node:process';

// libuv's thread pool (Node's default: 4 threads) runs password hashing (argon2id) and
// file reads. Hashing is all CPU: on a machine with fewer cores than that, the extra
// threads only preempt the event loop (docs/operations.md, "The thread pool"). One per
// core, between 2 (password hashing may hold one) and 4. An operator's
// UV_THREADPOOL_SIZE wins; it must be set before the pool's first use. libuv's own
// setting, not Pitboss configuration:
// eslint-disable-next-line no-restricted-syntax
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(2, Math.min(4, availableParallelism())));

await import('../src/cli/main.ts');
