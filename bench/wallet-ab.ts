// npm run bench:wallet-ab — two server variants side by side, each on a database of its
// own, measured in alternating short runs of signed Hub88 bets and wins. On a VM whose speed drifts by a
// quarter from one minute to the next, two bench:wallet runs cannot tell a 5% change from
// noise; pairs of runs a few seconds apart, in alternating order, can.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { adminQuery, checkpoint, cpuPerCall, cpuSnapshot, load, pacedLoad, percentiles, root, startServer, walPosition, type Started } from './lib.ts';
import { RawHttpClient } from './raw-http.ts';
import { createPlayers, roundFirer, signedRounds, staffHeaders, walletBenchSetup } from './wallet-load.ts';

const PLAYERS = Number(process.env.BENCH_PLAYERS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 8);
const CALLERS = Number(process.env.BENCH_CONCURRENCY ?? 128);
/** Bets per second of an open loop; unset or 0: a closed loop of BENCH_CONCURRENCY callers. */
const RATE = Number(process.env.BENCH_RATE ?? 0);
const EXPECTED = Number(process.env.BENCH_EXPECTED_BETS_PER_SECOND ?? 4500);

/** `NAME=value NAME2=value2` as an environment. */
const assignments = (text: string | undefined): Record<string, string> =>
  Object.fromEntries(
    (text ?? '')
      .split(' ')
      .filter(Boolean)
      .map((kv) => {
        const at = kv.indexOf('=');
        if (at < 1) throw new Error(`BENCH_A/BENCH_B: expected NAME=value, got ${kv}`);
        return [kv.slice(0, at), kv.slice(at + 1)];
      }),
  );
/** A variant's checkout (BENCH_A_ROOT, BENCH_B_ROOT): another revision, e.g. a `git worktree`, with its own node_modules. */
const checkoutOf = (name: string): string | undefined => {
  const dir = process.env[`BENCH_${name}_ROOT`];
  if (!dir) return undefined;
  const at = resolve(dir);
  if (!existsSync(resolve(at, 'bin/pitboss.js')) || !existsSync(resolve(at, 'node_modules'))) throw new Error(`BENCH_${name}_ROOT: ${at} is not a Pitboss checkout with node_modules`);
  return at;
};
const variants = (['A', 'B'] as const).map((name) => ({
  name,
  env: assignments(process.env[`BENCH_${name}`]),
  nodeArgs: (process.env[`BENCH_${name}_NODE_ARGS`] ?? '').split(' ').filter(Boolean),
  checkout: checkoutOf(name),
}));

const stamp = Date.now();
const load_ = RATE > 0 ? `${RATE} bets/s (open loop)` : `${CALLERS} callers (closed loop)`;
console.log(`bench:wallet-ab on PostgreSQL: ${PAIRS} pairs of ${SECONDS}s runs at ${load_}, ${PLAYERS} players per variant, each variant on its own database`);
for (const v of variants) {
  const what = Object.entries(v.env).map(([k, x]) => `${k}=${x}`).join(' ') || '(defaults)';
  console.log(`  ${v.name}: ${what}${v.nodeArgs.length > 0 ? `, node ${v.nodeArgs.join(' ')}` : ''}, code of ${v.checkout ?? root}`);
}

// Each variant has a database of its own: one server's outbox relay (one per database
// holds its lock) must not publish the other's events, on the other's time.
const dbNames = variants.map((v) => `pitboss_bench_ab_${stamp}_${v.name.toLowerCase()}`);
const servers: Started[] = [];
const clients: RawHttpClient[] = [];
try {
  /** Each variant's pre-signed rounds, fired through its own client, and the run being counted. */
  const variantsLoad: { server: Started; fire: () => Promise<boolean>; counted: { latencies: number[]; calls: number } }[] = [];
  for (const [i, v] of variants.entries()) {
    const { env, privatePem } = await walletBenchSetup(dbNames[i]!);
    const server = await startServer({ ...env, ...v.env }, undefined, v.nodeArgs, v.checkout);
    servers.push(server);
    const players = await createPlayers(server.url, staffHeaders(env, stamp, v.checkout), PLAYERS, stamp);
    const perRun = (RATE > 0 ? RATE : EXPECTED) * SECONDS;
    const signed = await signedRounds(players, Math.ceil(perRun * (PAIRS + 1) * 1.2), privatePem);
    const client = new RawHttpClient(server.url);
    clients.push(client);
    const counted = { latencies: [] as number[], calls: 0 };
    const fire = roundFirer(signed, () => client, (c, ms) => {
      counted.calls++;
      if (c.kind === 'bet') counted.latencies.push(ms);
    });
    variantsLoad.push({ server, fire, counted });
  }

  const results = variants.map(() => [] as Result[]);
  const run = async (v: number, seconds: number): Promise<Result> => {
    const { server, fire, counted } = variantsLoad[v]!;
    counted.latencies = [];
    counted.calls = 0;
    // Every run starts just after a checkpoint, so each pays the same full-page images
    // (a page's first change after a checkpoint writes the whole page to the WAL).
    await checkpoint();
    const walBefore = await walPosition();
    const before = cpuSnapshot([server.child.pid!]);
    const done = RATE > 0 ? await pacedLoad(RATE, seconds, fire) : await load({ concurrency: CALLERS, seconds, next: fire });
    const after = cpuSnapshot([server.child.pid!]);
    const walAfter = await walPosition();
    if (done.errors > 0) throw new Error(`${done.errors} calls of variant ${variants[v]!.name} were not RS_OK`);
    const cpu = cpuPerCall(before, after, counted.calls);
    return {
      betsPerSecond: counted.latencies.length / done.seconds,
      p99: percentiles(counted.latencies)(99),
      cpuPerCall: cpu.server,
      pgPerCall: cpu.postgres,
      walPerCall: (walAfter - walBefore) / counted.calls,
    };
  };

  // A short warm-up of each, then the pairs, every other pair in the other order.
  for (let v = 0; v < variants.length; v++) await run(v, 2);
  for (let pair = 0; pair < PAIRS; pair++) {
    for (const v of pair % 2 === 0 ? [0, 1] : [1, 0]) results[v]!.push(await run(v, SECONDS));
    const [a, b] = [results[0]!.at(-1)!, results[1]!.at(-1)!];
    console.log(`pair ${pair + 1}: A ${show(a)} | B ${show(b)} | B/A ${(b.betsPerSecond / a.betsPerSecond).toFixed(3)}`);
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((x, y) => x - y);
    const mid = sorted.length / 2;
    return Number.isInteger(mid) ? (sorted[mid - 1]! + sorted[mid]!) / 2 : sorted[Math.floor(mid)]!;
  };
  for (const [v, name] of ['A', 'B'].entries()) {
    const r = results[v]!;
    console.log(
      `${name}: median ${median(r.map((x) => x.betsPerSecond)).toFixed(0)} bets/s, bet p99 ${median(r.map((x) => x.p99)).toFixed(1)} ms, per call: server CPU ${median(r.map((x) => x.cpuPerCall)).toFixed(0)} µs, PostgreSQL CPU ${median(r.map((x) => x.pgPerCall)).toFixed(0)} µs, WAL ${median(r.map((x) => x.walPerCall)).toFixed(0)} bytes`,
    );
  }
  // B against A pair by pair: throughput (closed loop) or p99 (open loop, where both send the same rate), and CPU per call.
  const compare = (label: string, of: (r: (typeof results)[number][number]) => number, better: 'higher' | 'lower') => {
    const ratios = results[1]!.map((b, i) => of(b) / of(results[0]![i]!));
    const ahead = ratios.filter((x) => (better === 'higher' ? x > 1 : x < 1)).length;
    return `${label} median ${median(ratios).toFixed(3)} (B ${better} in ${ahead} of ${ratios.length} pairs)`;
  };
  const primary = RATE > 0 ? compare('bet p99', (r) => r.p99, 'lower') : compare('bets/s', (r) => r.betsPerSecond, 'higher');
  console.log(`B/A: ${primary}; per call: ${compare('server CPU', (r) => r.cpuPerCall, 'lower')}; ${compare('PostgreSQL CPU', (r) => r.pgPerCall, 'lower')}; ${compare('WAL', (r) => r.walPerCall, 'lower')}`);
} finally {
  for (const c of clients) c.close();
  for (const s of servers) await s.stop();
  for (const name of dbNames) await adminQuery(`drop database if exists ${name} with (force)`);
}

/** One timed run of one variant; the CPU is per call (bets and wins), PostgreSQL's across all its processes. */
interface Result {
  betsPerSecond: number;
  p99: number;
  cpuPerCall: number;
  pgPerCall: number;
  walPerCall: number;
}

function show(r: Result): string {
  return `${r.betsPerSecond.toFixed(0)} bets/s, p99 ${r.p99.toFixed(1)} ms, per call ${r.cpuPerCall.toFixed(0)} µs server CPU, ${r.pgPerCall.toFixed(0)} µs PostgreSQL, ${r.walPerCall.toFixed(0)} B WAL`;
}
