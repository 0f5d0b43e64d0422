// npm run bench:wallet — the seamless wallet under load: concurrent signed Hub88 bet and
// win calls over HTTP across many players, against the real PostgreSQL, compared in the
// same run with pgbench's simple-update transactions (-N) on the same server.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { EVENT_LOOP_SAMPLE_MS } from '../src/platform/telemetry/metrics.ts';
import { adminQuery, call, checkpoint, checkpoints, cpuShares, cpuSnapshot, fmt, load, pacedLoad, percentiles, pgbenchArgs, pgLatencyProbe, pitbossCli, serverNodeArgs, startServer, walPosition, type LoadResult } from './lib.ts';
import { RawHttpClient } from './raw-http.ts';
import { createPlayers, roundFirer, signedRounds, staffHeaders, walletBenchSetup } from './wallet-load.ts';

const PLAYERS = Number(process.env.BENCH_PLAYERS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
// The saturation run, once per caller count: more callers give larger batches and more
// throughput until the server's core is full, then only a longer queue.
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '64,96,128').split(',').map(Number);
if (CONCURRENCY.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('BENCH_CONCURRENCY: caller counts, comma-separated');
/** The p99 bound of the throughput target. */
const SATURATION_P99_MS = 50;
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? 1);
const TARGET_RATE = Number(process.env.BENCH_RATE ?? 1000);
const BALANCE_RATE = Number(process.env.BENCH_BALANCE_RATE ?? 50);
/** Seconds at the fixed rate before its counted window (not counted). */
const LEAD_IN_SECONDS = 2;
/** pgbench's one-row probes a second beside the fixed-rate run (PostgreSQL's own latency). */
const PROBE_RATE = 100;
/** pgbench's one-row durable commits a second beside the fixed-rate run (the WAL flush's latency). */
const COMMIT_PROBE_RATE = 50;
const fmtProbe = (p: { count: number; p50: number; p99: number; max: number }) => `${p.count} probes, p50 ${p.p50.toFixed(2)} ms, p99 ${p.p99.toFixed(1)} ms, max ${p.max.toFixed(1)} ms`;


const stamp = Date.now();
const dbName = `pitboss_bench_wallet_${stamp}`;
const pgbenchDb = `pitboss_bench_pgbench_${stamp}`;
const { env, privatePem } = await walletBenchSetup(dbName);
// BENCH_PROFILE=dir writes the server's CPU profile there (open it in Chrome DevTools).
if (process.env.BENCH_PROFILE) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}`;

console.log(`bench:wallet on PostgreSQL, ${availableParallelism()} cores, ${PLAYERS} players, ${PROCESSES} server process(es) (node ${serverNodeArgs.join(' ')}), ${CONCURRENCY.join(' then ')} concurrent callers`);
const servers = [await startServer(env)];
for (let i = 1; i < PROCESSES; i++) servers.push(await startServer(env));
const urls = servers.map((s) => s.url);
const cli = pitbossCli(env);
// The timed calls go through a lean keep-alive client (see raw-http.ts), one per server.
const clients = new Map(urls.map((u) => [u, new RawHttpClient(u)]));

try {
  // Players, funded, each with a game session.
  const staff = staffHeaders(env, stamp);
  const players = await createPlayers(urls[0]!, staff, PLAYERS, stamp);

  // Pre-signed game rounds: enough for the warm-up (2 s), the saturation runs and the closed
  // loop with bets (5 s) at the expected rate, and the fixed-rate run (10 s) at its own.
  const ROUNDS = Math.ceil((CONCURRENCY.length * SECONDS + 7) * Number(process.env.BENCH_EXPECTED_BETS_PER_SECOND ?? 4500) + (10 + LEAD_IN_SECONDS) * TARGET_RATE);
  const signStart = performance.now();
  const { calls: bodies, rounds } = await signedRounds(players, ROUNDS, privatePem);
  console.log(`signed ${bodies.length} Hub88 calls in ${((performance.now() - signStart) / 1000).toFixed(1)} s (load generator setup, not measured)`);

  const betLatencies: number[] = [];
  let statusErrors = 0;
  let calls = 0;
  // With several server processes, each player's calls go to one of them (as a load
  // balancer routing by player would), so its lane cache stays the one that is right.
  const fire = roundFirer({ calls: bodies, rounds }, (r) => clients.get(urls[r.player % urls.length]!)!, (c, ms, ok, res) => {
    calls++;
    if (c.kind === 'bet') betLatencies.push(ms);
    if (!ok) {
      statusErrors++;
      if (statusErrors <= 3) console.log(`  not RS_OK: ${c.path} -> ${res.status} ${res.body}`);
    }
  });
  const summarize = (label: string, r: LoadResult, bets: number[]) => {
    const pct = percentiles(bets);
    const betsPerSecond = bets.length / r.seconds;
    console.log(
      `${label}: ${betsPerSecond.toFixed(0)} bets/s (${(calls / r.seconds).toFixed(0)} calls/s incl. wins, ${calls} calls, ${statusErrors} not RS_OK); bet latency p50 ${pct(50).toFixed(1)} ms, p95 ${pct(95).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms`,
    );
    return { betsPerSecond, p99: pct(99) };
  };

  // Balance reads (REST, staff token).
  const balanceLatencies: number[] = [];
  const readBalance = async (i: number) => {
    const t0 = performance.now();
    const ok = (await clients.get(urls[i % urls.length]!)!.request('GET', `/v1/players/${players[(i * 7919) % players.length]!.id}/balance`, staff)).status === 200;
    balanceLatencies.push(performance.now() - t0);
    return ok;
  };

  // One reader on a quiet server: the read's own latency, without any queueing.
  const quiet = await load({ concurrency: 1, seconds: 2, next: readBalance });
  balanceLatencies.length = 0;
  console.log(`GET /v1/players/{id}/balance, one caller, quiet server (2s): ${fmt(quiet)}`);

  // pgbench -N against the same PostgreSQL server, with the same machine, as it runs
  // without options (one client, one commit at a time): the figure the issue's scale
  // points match (one transaction per bet measured about 0.5x of it, about 1,350 bets/s).
  // It is measured right before and right after the saturation runs, and the ratio is
  // taken against the mean of the two: this VM's speed drifts over minutes (pgbench -N
  // ranged 1,060-1,692 tps over two days), and a figure taken minutes away measured a
  // different machine.
  await adminQuery(`create database ${pgbenchDb}`);
  const pgArgs = pgbenchArgs();
  execFileSync('pgbench', [...pgArgs, '-i', '-q', '-s', '10', pgbenchDb], { stdio: 'ignore' });
  const pgbench = (options: string[]) => {
    const out = execFileSync('pgbench', [...pgArgs, '-N', ...options, '-T', String(SECONDS), pgbenchDb], { encoding: 'utf8' });
    return Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 'NaN');
  };
  /** pgbench -N as it runs without options, after a checkpoint of its own. */
  const oneClient = async (when: string) => {
    await checkpoint();
    const single = pgbench([]);
    console.log(`pgbench -N (its defaults: 1 client, ${SECONDS}s), ${when} the saturation runs: ${single.toFixed(0)} transactions/s`);
    return single;
  };
  const singleBefore = await oneClient('before');

  // Warm-up, then the saturation runs.
  await load({ concurrency: 16, seconds: 2, next: fire });
  const serverPids = servers.map((s) => s.child.pid!);
  const levels: { callers: number; betsPerSecond: number; p99: number }[] = [];
  for (const callers of CONCURRENCY) {
    betLatencies.length = 0;
    statusErrors = 0;
    calls = 0;
    await checkpoint();
    const checkpointsBefore = await checkpoints();
    const metricsBefore = await scrape(urls[0]!);
    const batchesBefore = batchCounts(metricsBefore);
    const walBefore = await walPosition();
    const cpuBefore = cpuSnapshot(serverPids);
    const saturated = await load({ concurrency: callers, seconds: SECONDS, next: fire });
    const cpuAfter = cpuSnapshot(serverPids);
    const walPerCall = ((await walPosition()) - walBefore) / calls;
    levels.push({ callers, ...summarize(`saturation (${callers} callers, ${SECONDS}s)`, saturated, betLatencies) });
    console.log(`  ${cpuShares(cpuBefore, cpuAfter, saturated.seconds, calls)}`);
    const metricsAfter = await scrape(urls[0]!);
    console.log(`  server side: ${serverSide(metricsAfter, serverSide(metricsBefore).buckets).text}`);
    console.log(`  ledger batches: ${batchStats(batchesBefore, batchCounts(metricsAfter))}; WAL per call ${walPerCall.toFixed(0)} bytes; PostgreSQL checkpoints during the run: ${(await checkpoints()) - checkpointsBefore}`);
  }
  const singleAfter = await oneClient('after');
  const single = (singleBefore + singleAfter) / 2;
  // The throughput the target is measured at: the best run within the p99 bound (else the best run, marked).
  const within = levels.filter((l) => l.p99 <= SATURATION_P99_MS);
  const peak = (within.length > 0 ? within : levels).reduce((best, l) => (l.betsPerSecond > best.betsPerSecond ? l : best));

  // Open loop at a fixed rate of bets (wins ride along), with balance reads at their own
  // fixed rate beside them: the latency each sees at that load, queueing included. A lead-in
  // at the same rate, not counted, comes first: the window measures the steady state at
  // that rate, not the step from the idle pause of the CHECKPOINT to it (the server's first
  // full collection after a pause alone took about 55 ms on the development VM).
  await checkpoint();
  const leadIn = await pacedLoad(TARGET_RATE, LEAD_IN_SECONDS, fire);
  if (leadIn.errors > 0) console.log(`  lead-in at ${TARGET_RATE} bets/s: ${leadIn.errors} rounds not RS_OK`);
  betLatencies.length = 0;
  statusErrors = 0;
  calls = 0;
  const metricsBefore = await scrape(urls[0]!);
  const before = serverSide(metricsBefore).buckets;
  const batchesBeforeRate = batchCounts(metricsBefore);
  const checkpointsBeforeRate = await checkpoints();
  const cpuBeforeRate = cpuSnapshot(serverPids);
  const [paced, pacedReads, probe, commitProbe] = await Promise.all([
    pacedLoad(TARGET_RATE, 10, fire),
    pacedLoad(BALANCE_RATE, 10, readBalance),
    pgLatencyProbe(dbName, PROBE_RATE, 10),
    // In pgbench's database, on a row of its own: nothing the server reads or writes.
    pgLatencyProbe(pgbenchDb, COMMIT_PROBE_RATE, 10, 'update pgbench_branches set bbalance = bbalance + 1 where bid = 1;'),
  ]);
  const cpuAfterRate = cpuSnapshot(serverPids);
  const atRate = summarize(`fixed rate ~${TARGET_RATE} bets/s (10s)`, paced, betLatencies);
  console.log(`  ${cpuShares(cpuBeforeRate, cpuAfterRate, paced.seconds, calls + pacedReads.requests)}`);
  const read = percentiles(balanceLatencies);
  const reads = { p50: read(50), p95: read(95), p99: read(99) };
  balanceLatencies.length = 0;
  const metricsAfter = await scrape(urls[0]!);
  console.log(`  server side: ${serverSide(metricsAfter, before).text}; PostgreSQL checkpoints during the run: ${(await checkpoints()) - checkpointsBeforeRate}`);
  console.log(`  ledger batches: ${batchStats(batchesBeforeRate, batchCounts(metricsAfter))}`);
  console.log(
    `  GET balance at ${BALANCE_RATE}/s beside them: ${pacedReads.requests} reads (${pacedReads.errors} errors), p50 ${reads.p50.toFixed(1)} ms, p95 ${reads.p95.toFixed(1)} ms, p99 ${reads.p99.toFixed(1)} ms (target < 5 ms)`,
  );
  console.log(`  PostgreSQL beside them (pgbench, "select 1" at ${PROBE_RATE}/s on a connection of its own): ${fmtProbe(probe)}`);
  console.log(`  PostgreSQL's commits beside them (pgbench, a one-row update at ${COMMIT_PROBE_RATE}/s, each its own durable commit): ${fmtProbe(commitProbe)}`);

  // Closed loop: as many balance reads as 16 callers get, alone and while 32 callers bet.
  const balances = await load({ concurrency: 16, seconds: 5, next: readBalance });
  console.log(`GET /v1/players/{id}/balance (16 callers, 5s): ${fmt(balances)}`);
  const [underLoad] = await Promise.all([load({ concurrency: 8, seconds: 5, next: readBalance }), load({ concurrency: 32, seconds: 5, next: fire })]);
  console.log(`GET balance while bets run (8 readers + 32 bettors, 5s): ${fmt(underLoad)}`);

  // And with 16 clients: what this PostgreSQL server can do with many commits at once.
  const tps = pgbench(['-c', '16', '-j', '2']);
  console.log(`pgbench -N (16 clients, ${SECONDS}s): ${tps.toFixed(0)} transactions/s`);
  const ratio = (of: number) => `${(peak.betsPerSecond / of).toFixed(2)}x`;
  const at = `${peak.betsPerSecond.toFixed(0)} bets/s with ${peak.callers} callers, p99 ${peak.p99.toFixed(1)} ms${peak.p99 > SATURATION_P99_MS ? `, no run within ${SATURATION_P99_MS} ms` : ''}`;
  console.log(`ratio bets/s : pgbench -N tps = ${ratio(tps)} against 16 clients, ${ratio(single)} against its defaults (1 client, mean of ${singleBefore.toFixed(0)} and ${singleAfter.toFixed(0)} tps) (target >= 2.5x at p99 <= ${SATURATION_P99_MS} ms; ${at})`);
  console.log(
    `at ~${TARGET_RATE} bets/s: p99 ${atRate.p99.toFixed(1)} ms (target <= 20 ms); balance reads beside them p99 ${reads.p99.toFixed(1)} ms (target < 5 ms); PostgreSQL's own "select 1" beside them p99 ${probe.p99.toFixed(1)} ms, a one-row commit p99 ${commitProbe.p99.toFixed(1)} ms`,
  );

  const check = cli(['ledger', 'verify']);
  console.log(`ledger verify after the run: ${check.split('\n')[0]}`);
} finally {
  for (const c of clients.values()) c.close();
  for (const s of servers) await s.stop();
  await adminQuery(`drop database if exists ${dbName} with (force)`);
  await adminQuery(`drop database if exists ${pgbenchDb} with (force)`);
}

/**
 * What the server itself saw, from its metrics `text`, since `before` (or since its start):
 * how long the bet and balance routes took from request to response and how long each
 * ledger batch took to write, commit included (histograms, so each quantile is a bucket's
 * upper bound), and its event loop's delay since the previous scrape.
 */
function serverSide(text: string, before?: Map<string, number>): { text: string; buckets: Map<string, number> } {
  const buckets = new Map<string, number>();
  const histogram = (series: string, labels: string[]) => {
    const counts = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${series}_bucket{`) || !labels.every((l) => line.includes(l))) continue;
      const le = /le="([^"]+)"/.exec(line)![1]!;
      const id = `${series}|${labels.join(',')}|${le}`;
      const n = Number(line.slice(line.lastIndexOf(' ') + 1));
      buckets.set(id, n);
      counts.set(le, n - (before?.get(id) ?? 0));
    }
    const total = counts.get('+Inf') ?? 0;
    const quantile = (q: number) => [...counts].find(([, n]) => n >= q * total)?.[0] ?? '?';
    return `p50 <= ${quantile(0.5)} s, p99 <= ${quantile(0.99)} s`;
  };
  const route = histogram('pitboss_http_request_duration_seconds', ['route="/providers/hub88/transaction/bet"', 'status="200"']);
  const balance = histogram('pitboss_http_request_duration_seconds', ['method="GET"', 'route="/v1/players/:id/balance"', 'status="200"']);
  const batches = histogram('pitboss_ledger_batch_seconds', []);
  // The percentiles include the sampling interval (see EVENT_LOOP_SAMPLE_MS): the delay is what exceeds it.
  const lag = (name: string) => (1000 * Number(new RegExp(`^nodejs_eventloop_lag_${name}_seconds ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? 'NaN') - EVENT_LOOP_SAMPLE_MS).toFixed(1);
  return { text: `bet route ${route}; balance route ${balance}; ledger batch ${batches}; event loop delay p50 ${lag('p50')} ms, p99 ${lag('p99')} ms, max ${lag('max')} ms`, buckets };
}

interface BatchCounts {
  batches: number;
  fast: number;
  locked: number;
  movements: number;
  seconds: number;
}

/**
 * A server's metrics. Each read resets its event-loop histogram (prom-client), so one read
 * serves everything taken at one moment.
 */
async function scrape(url: string): Promise<string> {
  return (await call(`${url}/metrics`, 'GET')).body;
}

/** The ledger batches the server has written since it started, from its metrics. */
function batchCounts(text: string): BatchCounts {
  const value = (name: string) => Number(new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? 'NaN');
  const path = (name: string) => Number(new RegExp(`^pitboss_ledger_batches_total\\{path="${name}"\\} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? '0');
  return {
    batches: value('pitboss_ledger_batch_size_count'),
    fast: path('fast'),
    locked: path('locked'),
    movements: value('pitboss_ledger_batch_size_sum'),
    seconds: value('pitboss_ledger_batch_seconds_sum'),
  };
}

/** How many batches the server wrote between two counts, on which path, their mean size and duration. */
function batchStats(before: BatchCounts, now: BatchCounts): string {
  const d = (k: keyof BatchCounts) => now[k] - before[k];
  return `${d('batches')} batches (${d('fast')} fast, ${d('locked')} locked), mean ${(d('movements') / d('batches')).toFixed(1)} movements, mean ${((1000 * d('seconds')) / d('batches')).toFixed(1)} ms each`;
}
