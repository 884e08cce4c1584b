// The cost of starting a verb (the `cutover` executable and `tsx`/`npx tsx` beside `node -e 0`, interleaved rounds) and the kit's own share of an activation, timed inside the test host; `npm run bench:verbs` runs it alone, `npm run bench` with the rest.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KitHost } from '../helpers/hostkit.ts';
import { KIT } from '../helpers/hostkit.ts';
import { median } from './speed.ts';
import { kitSteps, shortTitle } from './steps.ts';

export interface VerbCost {
  label: string;
  /** Wall time of each round, ms. */
  ms: number[];
  median: number;
  /** median / median of `node -e 0` in the same run */
  ratio: number;
  /** The goal as a ratio to `node -e 0`, when the issue sets one. */
  goal?: number;
  exit: number;
}

/** The commands, as argv inside the host; the first is the baseline. */
function commands(manifest: string): { label: string; argv: string[]; goal?: number }[] {
  const m = ['--manifest', manifest];
  return [
    { label: 'node -e 0', argv: ['node', '-e', '0'] },
    { label: 'cutover --help', argv: ['cutover', '--help'], goal: 2 },
    { label: 'cutover status --help', argv: ['cutover', 'status', '--help'], goal: 2 },
    { label: 'cutover status --bogus (a bad flag)', argv: ['cutover', 'status', '--bogus'], goal: 2 },
    { label: 'cutover status', argv: ['cutover', 'status', ...m], goal: 3 },
    { label: 'cutover status --json', argv: ['cutover', 'status', '--json', ...m], goal: 3 },
    { label: 'node_modules/.bin/tsx scripts/status.ts --help', argv: [`${KIT}/node_modules/.bin/tsx`, `${KIT}/scripts/status.ts`, '--help'] },
    { label: 'node_modules/.bin/tsx scripts/status.ts', argv: [`${KIT}/node_modules/.bin/tsx`, `${KIT}/scripts/status.ts`, ...m] },
    { label: 'npx tsx scripts/status.ts --help', argv: ['npx', 'tsx', 'scripts/status.ts', '--help'] },
    { label: 'npx tsx scripts/status.ts', argv: ['npx', 'tsx', 'scripts/status.ts', ...m] },
  ];
}

// One shell inside the host times every command in turn, round after round: no nsenter in the figures,
// and a busy moment of the machine falls on every command alike.
const TIMER = `
rounds=$1; shift
i=0
while [ $i -lt $rounds ]; do
  for c in "$@"; do
    s=$(date +%s%N); sh -c "$c" >/dev/null 2>&1; rc=$?; e=$(date +%s%N)
    echo "$c|$(( (e - s) / 1000 ))|$rc"
  done
  i=$((i + 1))
done`;

const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

export async function verbCosts(k: KitHost, manifest: string, rounds = 7): Promise<VerbCost[]> {
  const list = commands(manifest);
  const lines = list.map((c) => c.argv.map(quote).join(' '));
  const r = await k.host.exec(['/bin/sh', '-c', TIMER, 'sh', String(rounds), ...lines], {
    cwd: KIT,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/root' },
    timeoutMs: 600_000,
  });
  if (r.code !== 0) throw new Error(`timing the verbs failed: ${r.stderr}`);
  const byLine = new Map<string, { ms: number[]; exit: number }>();
  for (const row of r.stdout.trim().split('\n')) {
    const [cmd, us, rc] = row.split('|');
    const e = byLine.get(cmd) ?? { ms: [], exit: Number(rc) };
    e.ms.push(Math.round(Number(us) / 100) / 10);
    byLine.set(cmd, e);
  }
  const base = median(byLine.get(lines[0])!.ms);
  return list.map((c, i) => {
    const e = byLine.get(lines[i])!;
    const med = median(e.ms);
    return { label: c.label, ms: e.ms, median: med, ratio: Math.round((med / base) * 100) / 100, goal: c.goal, exit: e.exit };
  });
}

export function verbCostTable(costs: VerbCost[]): string {
  const rows = costs.map((c) => {
    const goal = c.goal === undefined ? '' : `≤ ${c.goal} × ${c.ratio <= c.goal ? '(met)' : '(missed)'}`;
    return `| ${c.label} | ${Math.round(c.median)} ms | ${c.ratio.toFixed(2)} × | ${goal} | ${c.exit} |`;
  });
  return ['| command (in the test host, Node 18) | median | ratio to `node -e 0` | goal | exit |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

/** Steps of an activation that wait on systemd or on the app (its start, its health checks), as the kit prints them: not the kit's own time. */
export const WAIT_STEPS = ['preflight', 'start', 'health gate', 'stop'];
/** The goal for the kit's own share of an activation (issue 11). */
export const ACTIVATE_GOAL_MS = 500;

export interface ActivateRun {
  release: string;
  wallMs: number;
  /** The kit's printed steps (title → ms). */
  steps: Record<string, number>;
  /** The WAIT_STEPS among them, summed. */
  waitsMs: number;
  /** wall − waits: starting Node, loading the kit, the manifest, the lock, reading state, switching, recording. */
  kitMs: number;
  exit: number;
}

export interface ActivateCost {
  label: string;
  runs: ActivateRun[];
  medianWallMs: number;
  medianWaitsMs: number;
  medianKitMs: number;
  goalMs: number;
  /** Where the kit's own share of one more (traced) activation went. */
  anatomy?: ActivateAnatomy;
}

/** One traced activation (test/bench/trace-children.cjs), on the process's own clock. */
export interface ActivateTrace {
  bootMs: number;
  children: { startMs: number; endMs: number; argv: string }[];
  steps: { title: string; startMs: number; endMs: number }[];
  exitMs: number;
}

/** The kit's own share (wall − WAIT_STEPS) of one activation, taken apart. */
export interface ActivateAnatomy {
  wallMs: number;
  waitsMs: number;
  kitMs: number;
  /** Node's own start, until the first line of JavaScript (the trace's preload) ran. */
  nodeBootMs: number;
  /** systemctl, systemd-run, flock … outside the WAIT_STEPS: the kit reading the service's state, the lock. */
  childrenOutsideWaitsMs: number;
  /** What is left of the kit's share: loading its modules, the manifest, the history, planning, the switch, the record. */
  javascriptMs: number;
  /** Between the process's exit and the shell seeing it (and exec before Node's clock starts). */
  processMs: number;
  /** The child processes outside the WAIT_STEPS, in order, with their ms. */
  outside: string[];
}

/** Total length of the union of intervals. */
function unionMs(intervals: [number, number][]): number {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of sorted) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

/** Takes a traced activation apart: Node's start, the kit's child processes outside the waits, its JavaScript. */
export function activateAnatomy(t: ActivateTrace, wallMs: number): ActivateAnatomy {
  const end = (x: { endMs: number }) => x.endMs || t.exitMs;
  const waits: [number, number][] = t.steps.filter((s) => WAIT_STEPS.includes(shortTitle(s.title))).map((s) => [s.startMs, end(s)]);
  const waitsMs = unionMs(waits);
  const outsideParts = (c: { startMs: number; endMs: number }): [number, number][] => {
    // The part of a child's run that lies outside every wait step.
    let parts: [number, number][] = [[c.startMs, end(c)]];
    for (const [a, b] of waits) parts = parts.flatMap(([x, y]): [number, number][] => (y <= a || x >= b ? [[x, y]] : [[x, Math.min(y, a)], [Math.max(x, b), y]].filter(([p, q]) => q > p) as [number, number][]));
    return parts;
  };
  const outsideChildren = t.children.map((c) => ({ c, parts: outsideParts(c) })).filter((x) => x.parts.length > 0);
  const childrenOutsideWaitsMs = unionMs(outsideChildren.flatMap((x) => x.parts));
  const r = (n: number) => Math.round(n);
  return {
    wallMs: r(wallMs),
    waitsMs: r(waitsMs),
    kitMs: r(wallMs - waitsMs),
    nodeBootMs: r(t.bootMs),
    childrenOutsideWaitsMs: r(childrenOutsideWaitsMs),
    javascriptMs: r(t.exitMs - t.bootMs - waitsMs - childrenOutsideWaitsMs),
    processMs: r(wallMs - t.exitMs),
    outside: outsideChildren.map(({ c, parts }) => `${c.argv.replace(/^.*?pipefail;/, '').split(' ').slice(0, 2).join(' ')} ${r(parts.reduce((sum, [a, b]) => sum + b - a, 0))} ms`),
  };
}

// Times one command inside the host (no nsenter in the figure) and prints its output, then the wall time.
const TIME_ONE = 's=$(date +%s%N); "$@"; rc=$?; e=$(date +%s%N); echo "cutover-bench-wall $(( (e - s) / 1000 )) $rc"';

/**
 * Activates `releases` in turn, `rounds` times over, with the command `argv(id)` (the executable or tsx),
 * and splits each activation's wall time into what it waits on (WAIT_STEPS) and the kit's own share;
 * `traced`: one more activation with a preload that takes that share apart (only where the command is
 * the kit's own Node process: tsx runs the kit in a child).
 */
export async function activateCosts(k: KitHost, label: string, releases: string[], rounds: number, argv: (id: string) => string[], traced = true): Promise<ActivateCost> {
  const runs: ActivateRun[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const release of releases) {
      const r = await k.host.exec(['/bin/sh', '-c', TIME_ONE, 'sh', ...argv(release)], { cwd: KIT, env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/root' }, timeoutMs: 180_000 });
      const wall = /^cutover-bench-wall (\d+) (\d+)$/m.exec(r.stdout);
      if (!wall) throw new Error(`timing ${argv(release).join(' ')} failed: ${r.stderr}`);
      const wallMs = Math.round(Number(wall[1]) / 100) / 10;
      const steps = kitSteps(r.stdout);
      const waitsMs = WAIT_STEPS.reduce((sum, s) => sum + (steps[s] ?? 0), 0);
      runs.push({ release, wallMs, steps, waitsMs, kitMs: Math.round(wallMs - waitsMs), exit: Number(wall[2]) });
    }
  }
  return {
    label,
    runs,
    medianWallMs: median(runs.map((r) => r.wallMs)),
    medianWaitsMs: median(runs.map((r) => r.waitsMs)),
    medianKitMs: median(runs.map((r) => r.kitMs)),
    goalMs: ACTIVATE_GOAL_MS,
    anatomy: traced ? await tracedActivation(k, releases[0]!, argv) : undefined,
  };
}

const TRACE_IN_HOST = '/run/cutover-bench/trace-children.cjs';

/** One more activation, traced (a preload records Node's start, child processes and steps), taken apart. */
async function tracedActivation(k: KitHost, release: string, argv: (id: string) => string[]): Promise<ActivateAnatomy | undefined> {
  const dir = path.join(k.host.root, path.dirname(TRACE_IN_HOST));
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'trace-children.cjs'), path.join(dir, 'trace-children.cjs'));
  const out = '/run/cutover-bench/trace.json';
  const r = await k.host.exec(['/bin/sh', '-c', TIME_ONE, 'sh', ...argv(release)], {
    cwd: KIT,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/root', NODE_OPTIONS: `--require ${TRACE_IN_HOST}`, CUTOVER_BENCH_TRACE: out },
    timeoutMs: 180_000,
  });
  const wall = /^cutover-bench-wall (\d+) (\d+)$/m.exec(r.stdout);
  const file = path.join(k.host.root, out);
  if (!wall || wall[2] !== '0' || !fs.existsSync(file)) return undefined;
  return activateAnatomy(JSON.parse(fs.readFileSync(file, 'utf8')) as ActivateTrace, Number(wall[1]) / 1000);
}

export function activateAnatomyLines(costs: ActivateCost[]): string {
  const ms = (n: number) => `${Math.round(n)} ms`;
  return costs
    .filter((c) => c.anatomy)
    .map((c) => {
      const a = c.anatomy!;
      return `- ${c.label}, one more run traced: wall ${ms(a.wallMs)} = waits ${ms(a.waitsMs)} + the kit's share ${ms(a.kitMs)}: Node's own start ${ms(a.nodeBootMs)}, its JavaScript (modules, manifest, history, plan, switch, record) ${ms(a.javascriptMs)}, child processes outside the waits ${ms(a.childrenOutsideWaitsMs)} (${a.outside.join(', ')}), exec and exit ${ms(a.processMs)}.`;
    })
    .join('\n');
}

export function activateCostTable(costs: ActivateCost[]): string {
  const ms = (n: number) => `${Math.round(n)} ms`;
  const rows = costs.map((c) => {
    const last = c.runs.at(-1);
    const steps = last ? Object.entries(last.steps).map(([k, v]) => `${k} ${ms(v)}`).join(', ') : '';
    const exits = [...new Set(c.runs.map((r) => r.exit))].join(', ');
    const goal = c.medianKitMs <= c.goalMs ? '(met)' : '(missed)';
    return `| ${c.label} | ${c.runs.length} | ${ms(c.medianWallMs)} | ${ms(c.medianWaitsMs)} | **${ms(c.medianKitMs)}** ≤ ${ms(c.goalMs)} ${goal} | ${steps} | ${exits} |`;
  });
  return [
    '| activate (in the test host) | runs | wall (median) | waits: preflight, start, health gate, stop (median) | the kit\'s own share: wall − waits (median) | steps of the last run | exit |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** What `npm run bench` reports about starting verbs and activating with the executable. */
export interface VerbsResult {
  costs: VerbCost[];
  activate: ActivateCost[];
}

/**
 * The verbs bench inside `npm run bench`, on an app the run already released (two ready releases):
 * every command of verbCosts, then activations with the executable, alternating between the two.
 */
export async function verbsBench(k: KitHost, manifest: string, releases: [string, string], say: (line: string) => void, rounds = 5): Promise<VerbsResult> {
  say(`starting a verb: each command ${rounds} times, interleaved …`);
  const costs = await verbCosts(k, manifest, rounds);
  say(verbCostTable(costs));
  say(`activating ${releases.join(' and ')} in turn with the executable …`);
  const activate = [await activateCosts(k, '`cutover activate <release>`', releases, 2, (id) => ['cutover', 'activate', id, '--manifest', manifest])];
  say(activateCostTable(activate));
  say(activateAnatomyLines(activate));
  return { costs, activate };
}
