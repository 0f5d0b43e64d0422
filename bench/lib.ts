import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import pg from 'pg';

export const root = resolve(import.meta.dirname, '..');

/** The PostgreSQL server the benchmarks use: a user that may create databases. */
export const adminUrl = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** The URL of database `db` on that server. */
export const pgUrl = (db: string): string => {
  const u = new URL(adminUrl);
  u.pathname = `/${db}`;
  return u.toString();
};

/** Runs one statement as the admin user (create or drop a bench database). */
export async function adminQuery<R extends Record<string, unknown> = Record<string, unknown>>(text: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return (await c.query<R>(text)).rows;
  } finally {
    await c.end();
  }
}

/** pgbench's connection options for that server. */
export function pgbenchArgs(): string[] {
  const conn = new URL(adminUrl);
  return ['-h', conn.hostname, '-p', conn.port || '5432', '-U', decodeURIComponent(conn.username || 'postgres')];
}

/**
 * PostgreSQL's own latency beside a timed run: pgbench sends `script` (by default
 * `select 1`) on a connection of its own, `rate` times a second for `seconds`, and logs
 * each one (its wait for its scheduled start included). Slow probes at the moments the
 * calls were slow put the tail on the machine or PostgreSQL, not on the server under
 * test. A script that writes measures a commit, and so the WAL's flush to disk, which
 * `select 1` never waits for.
 */
export async function pgLatencyProbe(db: string, rate: number, seconds: number, script = 'select 1;'): Promise<{ count: number; p50: number; p99: number; max: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pitboss-probe-'));
  try {
    writeFileSync(join(dir, 'probe.sql'), `${script}\n`);
    const args = [...pgbenchArgs(), '-n', '-f', join(dir, 'probe.sql'), '-R', String(rate), '-T', String(seconds), '-l', '--log-prefix', join(dir, 'log'), db];
    const child = spawn('pgbench', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((done) => child.once('exit', done));
    if (code !== 0) throw new Error(`pgbench probe exited with ${code}: ${stderr.trim()}`);
    // Each line: client, transaction, latency (µs), script, epoch s, µs, schedule lag (µs).
    const ms = readdirSync(dir)
      .filter((f) => f.startsWith('log.'))
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const f = line.split(' ').map(Number);
        return ((f[2] ?? 0) + (f[6] ?? 0)) / 1000;
      });
    const at = percentiles(ms);
    return { count: ms.length, p50: at(50), p99: at(99), max: at(100) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Bytes of WAL the PostgreSQL server has written so far (its insert position). Unlike
 * CPU time, the WAL a call writes does not drift with the speed of the VM: it tells what a
 * change of schema or statement costs PostgreSQL when bets/s cannot resolve it.
 */
export async function walPosition(): Promise<number> {
  const [row] = await adminQuery<{ at: string }>("select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text as at");
  return Number(row?.at ?? 0);
}

/** Checkpoints the PostgreSQL server has run so far: one during a timed run stalls writes for a while. */
export async function checkpoints(): Promise<number> {
  const [row] = await adminQuery<{ n: string }>('select (checkpoints_timed + checkpoints_req)::text as n from pg_stat_bgwriter');
  return Number(row?.n ?? 0);
}

/**
 * Runs a checkpoint now, before a timed run, so that the WAL an earlier run wrote does not
 * start one in the middle of it.
 */
export async function checkpoint(): Promise<void> {
  await adminQuery('checkpoint');
  // The checkpointer reports its counts (checkpoints()) just after it answers.
  await new Promise((r) => setTimeout(r, 200));
}

export interface Started {
  child: ChildProcess;
  url: string;
  startupMs: number;
  stop(): Promise<void>;
}

/** Runs `pitboss <args>` with the servers' environment `env` (quietly) and returns what it printed, trimmed. */
export const pitbossCli =
  (env: Record<string, string>, checkout = root) =>
  (args: string[]): string =>
    execFileSync(process.execPath, [resolve(checkout, 'bin/pitboss.js'), ...args], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, encoding: 'utf8' }).trim();

/** A valid player registration body, unique for each `tag` and `i`. */
export const registrationBody = (tag: string | number, i: number) => ({
  email: `bench.${tag}.${i}@example.com`,
  login: `bench_${tag}_${i}`,
  password: 'lantern-orbit-velvet-42',
  country: 'DE',
  currency: 'EUR',
  dateOfBirth: '1990-01-01',
});

/** A port for a bench server, chosen before it starts when its env must name it (PUBLIC_URL). */
export const randomPort = (): number => 20000 + Math.floor(Math.random() * 20000);

/**
 * The server's Node flags: those `npm start` gives it (package.json), so a bench measures
 * the server as it is run, then BENCH_SERVER_NODE_ARGS (e.g. --trace-gc, flags NODE_OPTIONS
 * may not carry), whose flags override the same ones before them (the last one counts).
 */
export const serverNodeArgs = [
  ...(JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ').filter((arg) => arg.startsWith('--')),
  ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean),
];

/**
 * Starts `pitboss serve` as its own process (so the load generator does not share its event
 * loop), with serverNodeArgs and then `nodeArgs` (which override them).
 */
export async function startServer(env: Record<string, string>, port = randomPort(), nodeArgs: readonly string[] = [], checkout = root): Promise<Started> {
  const started = performance.now();
  const child = spawn(process.execPath, [...serverNodeArgs, ...nodeArgs, resolve(checkout, 'bin/pitboss.js'), 'serve'], {
    env: { ...process.env, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/health/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    child,
    url,
    startupMs: performance.now() - started,
    stop: () =>
      new Promise<void>((done) => {
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export function call(url: string, method: string, body?: unknown, headers: Record<string, string> = {}, raw?: string): Promise<{ status: number; body: string }> {
  const payload = raw ?? (body === undefined ? undefined : JSON.stringify(body));
  return new Promise((resolveCall, reject) => {
    const req = request(url, { method, agent, headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveCall({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
}

/** Starts calls at a fixed rate (open loop) for `seconds`; latency includes any queueing. */
export async function pacedLoad(callsPerSecond: number, seconds: number, fire: (i: number) => Promise<boolean>): Promise<LoadResult> {
  const start = performance.now();
  const inflight: Promise<unknown>[] = [];
  let sent = 0;
  let errors = 0;
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * callsPerSecond);
    while (sent < due) {
      const i = sent++;
      inflight.push(fire(i).then((ok) => (ok ? undefined : errors++)));
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(inflight);
  const elapsed = (performance.now() - start) / 1000;
  return { requests: sent, errors, seconds: elapsed, perSecond: sent / elapsed, p50: 0, p95: 0, p99: 0 };
}

/** Closed-loop load: `concurrency` workers issue `next()` until `total` requests or `seconds` pass. */
export async function load(opts: { concurrency: number; total?: number; seconds?: number; next: (i: number) => Promise<boolean> }): Promise<LoadResult> {
  const latencies: number[] = [];
  let issued = 0;
  let errors = 0;
  const start = performance.now();
  const deadline = opts.seconds ? start + opts.seconds * 1000 : Number.POSITIVE_INFINITY;
  const total = opts.total ?? Number.POSITIVE_INFINITY;
  async function worker(): Promise<void> {
    while (issued < total && performance.now() < deadline) {
      const i = issued++;
      const t0 = performance.now();
      const ok = await opts.next(i).catch(() => false);
      latencies.push(performance.now() - t0);
      if (!ok) errors++;
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
  return { requests: latencies.length, errors, seconds, perSecond: latencies.length / seconds, p50: pct(50), p95: pct(95), p99: pct(99) };
}

export const fmt = (r: LoadResult): string =>
  `${r.perSecond.toFixed(1)}/s over ${r.requests} requests (${r.errors} errors), p50 ${r.p50.toFixed(2)} ms, p95 ${r.p95.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`;

/** CPU seconds used so far by the given processes and by every PostgreSQL process (Linux /proc), and the machine's idle seconds. */
export function cpuSnapshot(serverPids: readonly number[]): { servers: number; mainThreads: number; postgres: number; self: number; idle: number; steal: number } | undefined {
  try {
    const tick = 100; // USER_HZ on Linux
    // utime + stime, and with `children` also the CPU of its ended children that it waited for.
    const used = (pid: number | string, children = false): number => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0)) / tick;
    };
    // Backends that ended between two snapshots (a pool closing idle connections) count
    // through the postmaster, which reaps them.
    let postgres = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') postgres += used(pid, true);
      } catch {
        // the process ended meanwhile
      }
    }
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/);
    const idle = (Number(cpu[4]) + Number(cpu[5])) / tick;
    // Time the hypervisor gave another guest while this one wanted to run.
    const steal = Number(cpu[8] ?? 0) / tick;
    const self = process.cpuUsage();
    // A server's main thread (its task id is its pid) runs the event loop: near 100% of a
    // core, it is the server's limit whatever the other core has left.
    const mainThreads = serverPids.reduce((sum, pid) => sum + used(`${pid}/task/${pid}`), 0);
    return { servers: serverPids.reduce((sum, pid) => sum + used(pid), 0), mainThreads, postgres, self: (self.user + self.system) / 1e6, idle, steal };
  } catch {
    return undefined;
  }
}

/** CPU µs per call between two snapshots: the server's processes', and PostgreSQL's (all its processes). */
export function cpuPerCall(before: ReturnType<typeof cpuSnapshot>, after: ReturnType<typeof cpuSnapshot>, calls: number): { server: number; postgres: number } {
  if (!before || !after) return { server: Number.NaN, postgres: Number.NaN };
  return { server: (1e6 * (after.servers - before.servers)) / calls, postgres: (1e6 * (after.postgres - before.postgres)) / calls };
}

/** Where the cores went between two snapshots, as shares of one core. */
export function cpuShares(before: ReturnType<typeof cpuSnapshot>, after: ReturnType<typeof cpuSnapshot>, seconds: number, calls?: number): string {
  if (!before || !after) return 'CPU shares unavailable (no /proc)';
  const pct = (a: number, b: number) => `${((100 * (b - a)) / seconds).toFixed(0)}%`;
  // The server's CPU per call tells a run on slower cycles (a busy neighbour on the host) from a change in the code.
  const per = calls ? cpuPerCall(before, after, calls) : undefined;
  const perCall = per ? `; CPU per call: server ${per.server.toFixed(0)} µs, PostgreSQL ${per.postgres.toFixed(0)} µs` : '';
  return `CPU, as % of one core: server ${pct(before.servers, after.servers)} (main thread ${pct(before.mainThreads, after.mainThreads)}), PostgreSQL ${pct(before.postgres, after.postgres)}, load generator ${pct(before.self, after.self)}, idle ${pct(before.idle, after.idle)}, stolen by the hypervisor ${pct(before.steal, after.steal)} (of ${availableParallelism() * 100}%)${perCall}`;
}

/** The p-th percentile of a list of latencies (sorts it). */
export function percentiles(values: number[]): (p: number) => number {
  values.sort((a, b) => a - b);
  return (p) => values[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? 0;
}
