// npm run profile:summary -- <file.cpuprofile> [rows] — where a server's CPU profile (from
// BENCH_PROFILE, or `node --cpu-prof`) spent its busy time, as text: by package or source
// file, and by function (self time), as shares of the time the thread was not idle.
//
// Native calls that hand work to another thread or the kernel (`writev`, `writeUtf8String`,
// a crypto job's `run`) are sampled by wall time: on a machine whose cores the server
// shares with PostgreSQL, their share includes the time the thread waited for its core
// after waking the other side, not only their own CPU.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: npm run profile:summary -- <file.cpuprofile> [rows]');
  process.exit(2);
}
const rows = Number(rowsArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
const selfTime = new Map<number, number>();
profile.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

/** A frame's place: its npm package, its file under src/, node's own module, or the native call. */
function place(frame: CallFrame): string {
  if (!frame.url) return frame.functionName.startsWith('(') ? frame.functionName : `native ${frame.functionName}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url);
  if (pkg) return `package ${pkg[1]}`;
  const own = /\/src\/(.*)$/.exec(frame.url);
  if (own) return `src/${own[1]}`;
  if (frame.url.startsWith('node:')) return `node:${frame.url.slice(5).split('/')[0]}`;
  return frame.url;
}
const where = (frame: CallFrame) => `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;

const byPlace = new Map<string, number>();
const byFunction = new Map<string, number>();
let total = 0;
let idle = 0;
for (const [id, us] of selfTime) {
  const frame = frames.get(id)!;
  total += us;
  if (frame.functionName === '(idle)') {
    idle += us;
    continue;
  }
  byPlace.set(place(frame), (byPlace.get(place(frame)) ?? 0) + us);
  byFunction.set(where(frame), (byFunction.get(where(frame)) ?? 0) + us);
}
const busy = total - idle;
const share = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
const top = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, rows);

console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled, busy ${(busy / 1e6).toFixed(1)} s (${((100 * busy) / total).toFixed(0)}%)`);
console.log('\nby place (self time, % of busy):');
for (const [k, us] of top(byPlace)) console.log(`${share(us)}  ${k}`);
console.log('\nby function (self time, % of busy):');
for (const [k, us] of top(byFunction)) console.log(`${share(us)}  ${k}`);
