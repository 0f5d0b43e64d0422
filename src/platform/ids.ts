import { randomFillSync } from 'node:crypto';
import { v7, validate, version } from 'uuid';

// Random bytes are drawn from the kernel in blocks, not 16 at a time: every bet, event
// and request takes an id, and one getRandomValues call per id cost the server ~7% of
// its time at saturation (bench:wallet CPU profile).
const POOL_BYTES = 16 * 512;
const pool = new Uint8Array(POOL_BYTES);
let poolOffset = POOL_BYTES;

function random16(): Uint8Array {
  if (poolOffset + 16 > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  return bytes;
}

/** uuid's own v7 state rule (RFC 9562, 6.2 method 1): a counter seeded per millisecond keeps ids of one process strictly increasing. */
const state = { msecs: -Infinity, seq: 0 };

/** A new time-ordered id (UUIDv7): sorts by creation time, so it doubles as a cursor. */
export function newId(): string {
  const random = random16();
  const now = Date.now();
  if (now > state.msecs) {
    state.seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
    state.msecs = now;
  } else {
    state.seq = (state.seq + 1) | 0;
    if (state.seq === 0) state.msecs++;
  }
  return v7({ random, msecs: state.msecs, seq: state.seq });
}

export const isUuid = (value: string): boolean => validate(value);

export const isUuidV7 = (value: string): boolean => validate(value) && version(value) === 7;
