import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { limiter } from './limit.ts';

describe('limiter', () => {
  it('runs at most N jobs at once, in arrival order, and passes on results and errors', async () => {
    const limit = limiter(2);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const job = (i: number) => async () => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5 + (i % 3)));
      running--;
      if (i === 3) throw new Error('job 3 failed');
      return i * 10;
    };
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => limit(job(i))));
    assert.equal(most, 2);
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
      [0, 10, 20, 'job 3 failed', 40, 50, 60, 70],
    );
    // A failed job gave its slot back: the limiter still runs two at once.
    running = 0;
    most = 0;
    await Promise.all([limit(job(4)), limit(job(5)), limit(job(6))]);
    assert.equal(most, 2);
  });

  it('refuses a concurrency that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => limiter(bad), RangeError);
  });
});
