// The cost of starting a verb: the `cutover` executable and `tsx`/`npx tsx` beside `node -e 0`, timed inside the test host in interleaved rounds; `npm run bench:verbs` runs it alone.
import type { KitHost } from '../helpers/hostkit.ts';
import { KIT } from '../helpers/hostkit.ts';
import { median } from './speed.ts';

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
