import { SingleBar, Presets } from 'cli-progress';
import { systemContext } from '../platform/auth/principal.ts';
import type { Runtime } from '../app/runtime.ts';

const COUNTRIES = ['DE', 'GB', 'SE', 'FI', 'CA', 'NZ', 'BR', 'MT', 'IE', 'NO'];
const CURRENCY_OF: Record<string, string> = { DE: 'EUR', GB: 'GBP', SE: 'SEK', FI: 'EUR', CA: 'CAD', NZ: 'NZD', BR: 'BRL', MT: 'EUR', IE: 'EUR', NO: 'NOK' };

/** Registers demo players through the real service, `concurrency` at a time, with a progress bar. */
export async function seedPlayers(runtime: Runtime, count: number, concurrency: number, showProgress: boolean): Promise<{ registered: number; failed: number; seconds: number }> {
  const bar = new SingleBar({ format: 'seeding [{bar}] {value}/{total} players | {eta}s left', hideCursor: true, noTTYOutput: showProgress, stream: process.stderr }, Presets.shades_classic);
  bar.start(count, 0);
  const started = performance.now();
  const tag = Date.now().toString(36);
  let next = 0;
  let registered = 0;
  let failed = 0;
  const ctx = systemContext('seed');
  async function worker(): Promise<void> {
    while (next < count) {
      const i = next++;
      const country = COUNTRIES[i % COUNTRIES.length]!;
      try {
        await runtime.players.register(ctx, {
          email: `demo.${tag}.${i}@example.com`,
          login: `demo_${tag}_${i}`,
          password: `Seeded-${tag}-${i}-horse-battery`,
          country,
          currency: CURRENCY_OF[country]!,
          dateOfBirth: `${1960 + (i % 40)}-0${1 + (i % 9)}-1${i % 10}`,
          trafficSource: { affiliateId: `aff-${i % 7}`, utmSource: 'seed' },
        });
        registered++;
      } catch (error) {
        failed++;
        runtime.logger.warn({ err: error }, 'seed registration failed');
      }
      bar.increment();
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  bar.stop();
  return { registered, failed, seconds: Math.round((performance.now() - started) / 10) / 100 };
}
