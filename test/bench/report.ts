// The bench's results: the machine, the tables (printed and as Markdown) and results/latest.{json,md}.
import { renameSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KitHost } from '../helpers/hostkit.ts';
import { APP_START_MS, GATE_TIMEOUT_S, LATENCY_GOAL_MS, LEAD_MS, TAIL_MS, WORKERS, versionsText, type ScenarioResult } from './deploys.ts';
import { median, type SpeedResult } from './speed.ts';
import { activateAnatomyLines, activateCostTable, verbCostTable, type VerbsResult } from './verbs.ts';
import type { Anatomy, anatomySummary } from './anatomy.ts';

export const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

export interface Machine {
  date: string;
  nproc: number;
  cpu: string;
  memoryGiB: number;
  kernel: string;
  nodeInHost: string;
  systemdInHost: string;
  nodeOfClient: string;
  /** /proc/loadavg (1, 5, 15 min) when the run began and ended: other work on this machine */
  loadAverage: { start: string; end?: string };
}

export interface Results {
  machine: Machine;
  load: { workers: number; newConnectionPerRequest: true; leadMs: number; tailMs: number; path: string };
  appStartMs: number;
  latencyGoalMs: number;
  anatomy?: ReturnType<typeof anatomySummary> & { runs: Anatomy };
  scenarios: ScenarioResult[];
  speed?: SpeedResult;
  /** Starting a verb, and the kit's own share of an activation, with the `cutover` executable. */
  verbs?: VerbsResult;
  goals: { goal: string; met: boolean | null; detail: string }[];
  totalSeconds: number;
}

export async function machineInfo(k: KitHost): Promise<Machine> {
  const sh = async (s: string) => (await k.host.sh(s)).stdout.trim();
  const memKiB = Number((await sh(`awk '/^MemTotal:/ {print $2}' /proc/meminfo`)) || 0);
  return {
    date: new Date().toISOString(),
    nproc: Number(await sh('nproc')),
    cpu: (await sh(`awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo`)) || 'unknown',
    memoryGiB: Math.round((memKiB / (1 << 20)) * 10) / 10,
    kernel: await sh('uname -r'),
    nodeInHost: await sh('node --version'),
    systemdInHost: (await sh('systemctl --version')).split('\n')[0],
    nodeOfClient: process.version,
    loadAverage: { start: await loadAverage(k) },
  };
}

export async function loadAverage(k: KitHost): Promise<string> {
  return (await k.host.exec(['cat', '/proc/loadavg'])).stdout.trim().split(' ').slice(0, 3).join(' ');
}

const ms = (n: number) => `${Math.round(n)} ms`;
const s2 = (n: number) => `${(n / 1000).toFixed(2)} s`;
const yes = (b: boolean | undefined | null) => (b === undefined || b === null ? '–' : b ? 'yes' : '**no**');

function errorsText(e: Record<string, number>): string {
  const parts = Object.entries(e).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : '';
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function scenarioTable(rs: ScenarioResult[]): string {
  return table(
    ['#', 'scenario', 'exit', 'requests', 'failed (by error)', 'longest outage', 'p50', 'p99', 'max', 'steady max / window max', 'deploy wall', `0 failed / max ≤ ${LATENCY_GOAL_MS} ms / handover`],
    rs.map((r) => [
      r.id,
      r.title,
      r.error ? 'error' : String(r.deploy.exit),
      String(r.load.requests),
      r.error ? `bench error: ${r.error.split('\n')[0]}` : `${r.load.failed}${r.load.failed ? ` (${errorsText(r.load.errors)})` : ''}`,
      `${ms(r.load.longestOutageMs)}${r.load.outageOpenAtEnd ? ' (still down)' : ''}`,
      ms(r.load.p50),
      ms(r.load.p99),
      ms(r.load.max),
      `${ms(r.load.steadyMax)} / ${ms(r.load.windowMax)}`,
      s2(r.deploy.wallMs),
      `${yes(r.zeroFailedGoal)} / ${yes(r.latencyGoal)} / ${yes(r.handoverGoal)}`,
    ]),
  );
}

export function speedTables(sp: SpeedResult): string {
  const out: string[] = [];
  const row = (t: { label: string; wallMs: number; buildMs?: number; steps: Record<string, number>; exit: number }) => [
    t.label,
    s2(t.wallMs),
    t.buildMs === undefined ? '–' : s2(t.buildMs),
    t.steps.install !== undefined ? `install ${s2(t.steps.install)}` : t.steps['install (copied)'] !== undefined ? `copy node_modules ${s2(t.steps['install (copied)'])}` : '–',
    [
      `outside steps (tsx start, manifest, history) ${ms(t.wallMs - Object.values(t.steps).reduce((a, b) => a + b, 0))}`,
      ...['fetch', 'export', 'build', 'seal', 'preflight', 'start', 'health gate', 'stop', 'prune'].filter((k) => t.steps[k] !== undefined).map((k) => `${k} ${ms(t.steps[k])}`),
    ].join(', '),
    t.exit === 0 ? '' : `exit ${t.exit}`,
  ];
  const rows: string[][] = [];
  if (sp.cold) rows.push(row(sp.cold));
  sp.warm.forEach((w) => rows.push(row(w)));
  if (sp.warm.length) {
    rows.push([`**warm, median of ${sp.warm.length}**`, s2(median(sp.warm.map((w) => w.wallMs))), s2(median(sp.warm.map((w) => w.buildMs ?? 0))), '', '', '']);
  }
  if (sp.lockfile) rows.push(row(sp.lockfile));
  out.push(table(['release of examples/node-deps-app', 'release wall', 'build phase', 'dependencies', 'other steps', ''], rows));
  if (sp.warmOverCold) {
    out.push(`\nwarm / cold: **${sp.warmOverCold.wall.toFixed(2)}** of the release wall time, ${sp.warmOverCold.build.toFixed(2)} of the build phase (goal ≤ 0.30).`);
  }
  if (sp.overhead) {
    const o = sp.overhead;
    out.push(
      '\n' +
        table(
          ['kit overhead', 'value'],
          [
            [`activate wall (median of ${o.activateMs.length}: ${o.activateMs.map(ms).join(', ')})`, ms(median(o.activateMs))],
            [`systemctl restart → /health 200 (median of ${o.restartToHealthyMs.length}: ${o.restartToHealthyMs.map(ms).join(', ')})`, ms(median(o.restartToHealthyMs))],
            ['**the kit\'s own overhead** (activate − restart-to-healthy)', `**${ms(o.kitOverheadMs)}**`],
            ['activate steps (last run)', Object.entries(o.activateSteps).map(([k, v]) => `${k} ${ms(v)}`).join(', ') + `; outside steps (tsx start, manifest, lock, history) ≈ ${ms(o.activateMs.at(-1)! - Object.values(o.activateSteps).reduce((a, b) => a + b, 0))}`],
            [`status wall (median of ${o.statusMs.length}: ${o.statusMs.map(ms).join(', ')})`, ms(median(o.statusMs))],
          ],
        ),
    );
  }
  if (sp.disk) {
    const d = sp.disk;
    const rows: string[][] = [];
    for (const u of [d.onDisk, d.inside]) {
      if (!u) continue;
      const where = u === d.onDisk ? `${u.fs}: a cp -a copy on this machine's disk` : `${u.fs}: in the test host (directories take no blocks)`;
      rows.push([where, String(u.oneKiB), String(d.releases * u.oneKiB), `**${u.allKiB}**`, `**${u.ratio.toFixed(2)}**`]);
    }
    out.push(
      '\n' +
        table([`disk, du -sk (a hard-linked file counted once); one release = ${d.files} files, ${d.dirs} directories`, 'one release (KiB)', `${d.releases} × one`, `${d.releases} kept releases`, 'kept / one (goal ≤ 1.5)'], rows),
    );
  }
  if (sp.notes.length) out.push(`\n${sp.notes.map((n) => `- ${n}`).join('\n')}`);
  if (sp.errors.length) out.push(`\nErrors:\n${sp.errors.map((e) => `- ${e.split('\n')[0]}`).join('\n')}`);
  return out.join('\n');
}

export function anatomyTable(a: NonNullable<Results['anatomy']>): string {
  const list = (xs: number[]) => xs.map(ms).join(', ');
  return table(
    ['where a restart goes (no load; median of 3)', 'ms', 'runs'],
    [
      ['`node -e 0` inside the test host (Node\'s own boot on this machine)', ms(a.nodeBootMs), list(a.runs.nodeBootMs)],
      [`\`node server.js\` spawned → /health answers (STARTUP_DELAY_MS=${APP_START_MS}, as root, no systemd): **the app's real start here**`, ms(a.appStartMs), list(a.runs.appStartMs)],
      ['the service unit\'s sandbox: `systemd-run --wait /bin/true` with it − without it', ms(a.sandboxSetupMs), `${list(a.runs.sandboxedUnitMs)} vs ${list(a.runs.bareUnitMs)}`],
      ['plain unit: `systemctl restart` → first answer (refused meanwhile)', ms(a.plainRestartMs), list(a.runs.plainRestartMs)],
      ['cutover unit (socket: true): `systemctl restart` → first answer (queued meanwhile)', ms(a.cutoverRestartMs), list(a.runs.cutoverRestartMs)],
    ],
  );
}

export function goals(rs: ScenarioResult[], sp: SpeedResult | undefined, verbs?: VerbsResult): Results['goals'] {
  const g: Results['goals'] = [];
  for (const r of rs) {
    if (r.zeroFailedGoal !== undefined) {
      const detail = `${r.load.failed} of ${r.load.requests} failed; exit ${r.deploy.exit} (expected ${r.deploy.expectedExit}); versions served ${versionsText(r.load.sequence)}`;
      g.push({ goal: `scenario ${r.id}: 0 failed requests, the expected exit and versions`, met: r.error ? false : r.zeroFailedGoal, detail });
    }
  }
  for (const r of rs) {
    if (r.handoverGoal !== undefined) {
      g.push({ goal: `scenario ${r.id}: exit as expected, 0 failed, and cutover-window max ≤ max(1.5 × steady max, steady max + 50 ms)`, met: r.error ? false : r.handoverGoal, detail: `exit ${r.deploy.exit}, ${r.load.failed} failed, window max ${ms(r.load.windowMax)} vs steady max ${ms(r.load.steadyMax)}` });
    }
  }
  for (const r of rs) {
    if (r.latencyGoal !== undefined) g.push({ goal: `scenario ${r.id}: max latency ≤ ${LATENCY_GOAL_MS} ms`, met: r.latencyGoal, detail: `max ${ms(r.load.max)}` });
  }
  if (sp?.warmOverCold) g.push({ goal: 'warm release ≤ 0.30 × cold release', met: sp.warmOverCold.wall <= 0.3, detail: `${sp.warmOverCold.wall.toFixed(2)} (release wall), ${sp.warmOverCold.build.toFixed(2)} (build phase)` });
  const disk = sp?.disk?.onDisk ?? sp?.disk?.inside;
  if (disk) g.push({ goal: `${sp!.disk!.releases} kept releases ≤ 1.5 × one release`, met: disk.ratio <= 1.5, detail: `${disk.ratio.toFixed(2)} (${disk.fs})` });
  for (const c of verbs?.costs ?? []) {
    if (c.goal !== undefined) g.push({ goal: `\`${c.label}\` ≤ ${c.goal} × \`node -e 0\` (same run)`, met: c.ratio <= c.goal && c.exit === (c.label.includes('bad flag') ? 2 : 0), detail: `${c.ratio.toFixed(2)} × (${Math.round(c.median)} ms), exit ${c.exit}` });
  }
  for (const a of verbs?.activate ?? []) {
    g.push({ goal: `${a.label}: the kit's own share (wall − preflight, start, health gate, stop) ≤ ${a.goalMs} ms`, met: a.medianKitMs <= a.goalMs && a.runs.every((r) => r.exit === 0), detail: `${Math.round(a.medianKitMs)} ms (median of ${a.runs.length}; wall ${Math.round(a.medianWallMs)} ms)` });
  }
  return g;
}

export function markdown(res: Results): string {
  const m = res.machine;
  const lines = [
    '# cutover benchmarks: latest run',
    '',
    `${m.date} · ${m.nproc} cores (${m.cpu}), ${m.memoryGiB} GiB, Linux ${m.kernel} · in the test host: Node ${m.nodeInHost}, ${m.systemdInHost} · load client: Node ${m.nodeOfClient} · whole run ${res.totalSeconds.toFixed(0)} s · load average ${m.loadAverage.start} at the start, ${m.loadAverage.end ?? '?'} at the end (other work shares this machine)`,
    '',
    `Load: ${res.load.workers} workers on loopback, a new connection per request (no pause after a failure: raw counts), \`GET ${res.load.path}\`, from ${res.load.leadMs / 1000} s before the deploy until ${res.load.tailMs / 1000} s after it ended and the app answered again (waiting at most 5 s for that); latencies of the successful requests in that window. Kit verbs run as \`/opt/cutover/node_modules/.bin/tsx scripts/<verb>.ts\` inside the test host (except in the section on starting a verb, which times the \`cutover\` executable); the deploy wall time includes that start. The example app waits ${res.appStartMs} ms before it listens (node example app; scenario 6's health timeout ${GATE_TIMEOUT_S} s).`,
    '',
    '## Deploys under load',
    '',
    scenarioTable(res.scenarios),
    '',
    ...res.scenarios.flatMap((r) => [`- ${r.id}: ${r.notes.join('; ')}`]),
    '',
  ];
  if (res.anatomy) lines.push('## Where a restart\'s time goes', '', anatomyTable(res.anatomy), '');
  if (res.speed) lines.push('## Release speed, kit overhead, disk', '', speedTables(res.speed), '');
  if (res.verbs) {
    lines.push('## Starting a verb, and activating, with the `cutover` executable', '', verbCostTable(res.verbs.costs), '', activateCostTable(res.verbs.activate), '', activateAnatomyLines(res.verbs.activate), '');
  }
  lines.push('## Goals', '', table(['goal', 'met', 'measured'], res.goals.map((x) => [x.goal, yes(x.met), x.detail])), '');
  const a = res.anatomy;
  const queued = res.scenarios.filter((r) => r.latencyGoal !== undefined && r.load.failed === 0 && !r.error && r.load.max > LATENCY_GOAL_MS);
  if (a && queued.length) {
    lines.push(
      `On the latency goal: a request that arrives during a restart waits in the socket's queue until the new process accepts it. ` +
        `Without load, \`systemctl restart\` → first answer of the cutover unit took ${ms(a.cutoverRestartMs)} here (the plain unit, no sandbox: ${ms(a.plainRestartMs)}); ` +
        `the app alone, started by hand, answers after ${ms(a.appStartMs)} (Node's own boot ≈ ${ms(a.nodeBootMs)}, then its ${APP_START_MS} ms), and the unit's sandbox adds ≈ ${ms(a.sandboxSetupMs)} per start. ` +
        `Measured against that restart time + 100 ms (${ms(a.cutoverRestartMs + 100)}) instead of ${LATENCY_GOAL_MS} ms: ` +
        queued.map((r) => `scenario ${r.id} max ${ms(r.load.max)} ${r.load.max <= a.cutoverRestartMs + 100 ? 'within' : '**over**'}`).join(', ') + '.',
      '',
    );
  }
  lines.push('Reproduce: `sudo npm run bench` (root; boots the disposable systemd test host, ≈ 4–6 min).', '');
  return lines.join('\n');
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export function writeResults(res: Results): { json: string; md: string } {
  mkdirSync(resultsDir, { recursive: true });
  const json = path.join(resultsDir, 'latest.json');
  const md = path.join(resultsDir, 'latest.md');
  writeAtomic(json, JSON.stringify(res, null, 2) + '\n');
  writeAtomic(md, markdown(res));
  return { json, md };
}

export { APP_START_MS, LATENCY_GOAL_MS, WORKERS, LEAD_MS, TAIL_MS };
