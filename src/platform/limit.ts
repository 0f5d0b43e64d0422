/**
 * Runs at most `concurrency` jobs at once; the others wait their turn in arrival order.
 * For work that holds a scarce resource while it runs (a libuv pool thread, memory).
 */
export function limiter(concurrency: number): <T>(job: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (job) => {
    if (running < concurrency) running++;
    else await new Promise<void>((turn) => waiting.push(turn));
    try {
      return await job();
    } finally {
      // The slot passes straight to the next in line, so none can overtake it.
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
