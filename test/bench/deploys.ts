// Scenarios 1–8 and R: one deploy each under load, on the same node example app (300 ms start), plain procedure vs cutover (a handover with a socket).
import type { ExecResult } from '../host/host.ts';
import type { KitHost } from '../helpers/hostkit.ts';
import type { AppRepo } from '../helpers/gitrepo.ts';
import { handoverBound, loadAround, servedBy, summarise, type LoadSummary } from './load.ts';
import { PLAIN, plainDeploy, plainRestore, setUpPlain } from './plain.ts';
import { kitSteps } from './steps.ts';

/** The app's own start time (STARTUP_DELAY_MS) and the latency goal: start + 100 ms. */
export const APP_START_MS = 300;
export const LATENCY_GOAL_MS = APP_START_MS + 100;
export const WORKERS = 8;
export const LEAD_MS = 1000;
/** The handover scenarios load the app longer before the deploy, for a steady-state max worth comparing to. */
export const STEADY_LEAD_MS = 4000;
export const TAIL_MS = 1000;
/** Health timeout of scenario 6's app: how long the gate waits for the unhealthy release before rolling back. */
export const GATE_TIMEOUT_S = 5;

// Ports 3600–3609 (3610+ for the release-speed app).
const APPS = {
  plain: { app: PLAIN.app, port: 3601 },
  bind: { app: 'benchbind', port: 3602, extra: { socket: false } },
  fd: { app: 'benchfd', port: 3603, extra: { socket: true } },
  preload: { app: 'benchpreload', port: 3604, extra: { socket: 'preload', env: { STARTUP_DELAY_MS: String(APP_START_MS), IGNORE_LISTEN_FDS: '1' } } },
  gate: { app: 'benchgate', port: 3606, extra: { socket: true, preflight: false, health: { path: '/health', timeout: GATE_TIMEOUT_S } } },
} as const;

export interface ScenarioResult {
  id: string;
  title: string;
  app: string;
  port: number;
  deploy: { command: string; exit: number; expectedExit: number; wallMs: number; steps?: Record<string, number> };
  load: LoadSummary;
  /** true/false for scenarios with a 0-failed goal; undefined when the goal does not apply */
  zeroFailedGoal?: boolean;
  latencyGoal?: boolean;
  /** The handover goal (max latency in the cutover window ≤ max(1.5 × steady max, steady max + 50 ms)), where it applies. */
  handoverGoal?: boolean;
  notes: string[];
  error?: string;
}

/** What the versions served must show: a new one at the end, the one it began with, or that one again after others in between. */
export type VersionsExpected = 'change' | 'same' | 'same-after-changes';

/**
 * Why the versions served do not fit what the deploy should have done, or undefined when they do. By
 * default from its expected exit: one that succeeds (exit 0) ends serving another version than the one
 * it began with; one that is refused ends serving the version it began with. A restart of the same
 * release ends where it began ('same'); an even number of alternating activations too, after serving
 * the other release in between ('same-after-changes').
 */
export function servedWrong(sequence: string[], expectedExit: number, expected: VersionsExpected = expectedExit === 0 ? 'change' : 'same'): string | undefined {
  const seen = versionsText(sequence);
  if (sequence.length === 0) return 'no version answered';
  const same = sequence.at(-1) === sequence[0];
  if (expected === 'change' && same) return `${seen}: the deploy went through, yet the version served did not change`;
  if (expected === 'same' && !same) return `${seen}: ${expectedExit === 0 ? 'the same release restarted' : 'the deploy was refused'}, yet it ended serving another version`;
  if (expected === 'same-after-changes' && (!same || sequence.length < 3)) return `${seen}: the activations should have served the other release in between and ended on the first`;
  return undefined;
}

interface Deployed {
  app: string;
  port: number;
  repo: AppRepo;
  url: string;
  manifest?: string;
}

const round = (n: number) => Math.round(n);

/** The versions in the order they answered; a handover's back and forth (both answer for a moment) folded into one phrase. */
export function versionsText(sequence: string[]): string {
  if (sequence.length <= 4) return sequence.join(' → ') || 'none';
  return `${sequence[0]} → both ${sequence[0]} and ${sequence[1]} for a moment (${sequence.length - 2} alternations) → ${sequence.at(-1)}`;
}

function lastLines(r: ExecResult, n = 12): string {
  return (r.stdout + r.stderr).trimEnd().split('\n').slice(-n).join('\n');
}

export class DeployBench {
  private apps = new Map<string, Deployed>();
  readonly results: ScenarioResult[] = [];

  constructor(private k: KitHost, private say: (line: string) => void) {}

  private manifestFor(app: string, port: number, repoUrl: string, extra: Record<string, unknown>): string {
    return this.k.manifest({
      app,
      repo: repoUrl,
      runtime: 'node',
      build: 'node build.js',
      start: 'node server.js',
      port,
      env: { STARTUP_DELAY_MS: String(APP_START_MS) },
      health: { path: '/health', timeout: 15 },
      stop_timeout: 10,
      keep: 5,
      ...extra,
    });
  }

  /** Every app of the scenarios: the plain one by hand, the others provisioned by cutover; version 1 live in each. */
  async setUp(): Promise<void> {
    const { repo, url } = await this.k.repo('plain');
    await setUpPlain(this.k, APPS.plain.port, url, await repo.head());
    this.apps.set('plain', { app: PLAIN.app, port: APPS.plain.port, repo, url });
    for (const key of ['bind', 'fd', 'preload', 'gate'] as const) {
      const a = APPS[key];
      const { repo: r, url: u } = await this.k.repo(a.app);
      const manifest = this.manifestFor(a.app, a.port, u, a.extra);
      for (const verb of ['provision', 'release'] as const) {
        const res = await this.k.kit(verb, verb === 'release' ? ['main'] : [], { manifest });
        if (res.code !== 0) throw new Error(`${verb} ${a.app}: exit ${res.code}\n${lastLines(res, 30)}`);
      }
      this.apps.set(key, { app: a.app, port: a.port, repo: r, url: u, manifest });
    }
    this.say(`set up: ${[...this.apps.values()].map((a) => `${a.app} on :${a.port}`).join(', ')} (version 1 live)`);
  }

  private app(key: string): Deployed {
    const a = this.apps.get(key);
    if (!a) throw new Error(`no app ${key}`);
    return a;
  }

  /** Runs one deploy under load and records it. */
  private async measure(
    s: { id: string; title: string; key: string; command: string; expectedExit: number; versions?: VersionsExpected; zeroFailedGoal?: boolean; latencyGoal?: boolean; handoverGoal?: boolean },
    deploy: () => Promise<ExecResult>,
    after?: (r: ScenarioResult, run: Awaited<ReturnType<typeof loadAround<{ r: ExecResult; ms: number }>>>) => void,
  ): Promise<void> {
    const a = this.app(s.key);
    this.say(`scenario ${s.id}: ${s.title} …`);
    try {
      const run = await loadAround(
        `http://127.0.0.1:${a.port}/`,
        async () => {
          const t = performance.now();
          const r = await deploy();
          return { r, ms: performance.now() - t };
        },
        { workers: WORKERS, leadMs: s.handoverGoal ? STEADY_LEAD_MS : LEAD_MS, tailMs: TAIL_MS },
      );
      const load = summarise(run);
      const { r, ms } = run.result;
      const result: ScenarioResult = {
        id: s.id,
        title: s.title,
        app: a.app,
        port: a.port,
        deploy: { command: s.command, exit: r.code, expectedExit: s.expectedExit, wallMs: round(ms), steps: kitSteps(r.stdout) },
        load,
        // "0 failed" counts only when the deploy did what it should: its exit code, and the versions served.
        zeroFailedGoal: s.zeroFailedGoal === undefined ? undefined : s.zeroFailedGoal && load.failed === 0 && r.code === s.expectedExit && !servedWrong(load.sequence, s.expectedExit, s.versions),
        latencyGoal: s.latencyGoal ? load.max <= LATENCY_GOAL_MS : undefined,
        // A verdict counts the deploy's exit too: a deploy that failed before cutting over proves nothing.
        handoverGoal: s.handoverGoal ? r.code === s.expectedExit && load.failed === 0 && load.windowMax <= handoverBound(load.steadyMax) : undefined,
        notes: [`versions served: ${versionsText(load.sequence)}`, `steady max ${load.steadyMax} ms, cutover window max ${load.windowMax} ms (bound ${Math.round(handoverBound(load.steadyMax))} ms)`],
      };
      if (r.code !== s.expectedExit) result.notes.push(`UNEXPECTED exit ${r.code} (expected ${s.expectedExit}):\n${lastLines(r)}`);
      const wrong = servedWrong(load.sequence, s.expectedExit, s.versions);
      if (wrong) result.notes.push(`UNEXPECTED versions served: ${wrong}`);
      if (load.outageOpenAtEnd) result.notes.push('still failing when the load stopped: the outage lasts until a person acts');
      after?.(result, run);
      this.results.push(result);
      this.say(`  ${load.requests} requests, ${load.failed} failed ${JSON.stringify(load.errors)}, outage ${load.longestOutageMs} ms, p50/p99/max ${load.p50}/${load.p99}/${load.max} ms, deploy ${(ms / 1000).toFixed(2)} s (exit ${r.code})`);
    } catch (e) {
      this.say(`  FAILED: ${(e as Error).message}`);
      this.results.push({
        id: s.id, title: s.title, app: a.app, port: a.port,
        deploy: { command: s.command, exit: -1, expectedExit: s.expectedExit, wallMs: 0 },
        load: summarise({ hits: [], result: undefined, actionStart: 0, actionEnd: 0, loadEnd: 0 }),
        notes: [], error: (e as Error).message,
      });
    }
  }

  private release(key: string): Promise<ExecResult> {
    return this.k.kit('release', ['main'], { manifest: this.app(key).manifest });
  }

  async runAll(): Promise<void> {
    const plain = this.app('plain');

    // 1. the plain procedure, a good version
    const plainV2 = await plain.repo.commit({ VERSION: '2\n' }, 'v2');
    await this.measure(
      { id: '1', title: 'plain: new dir + ln -sfn + systemctl restart (app binds its port)', key: 'plain', command: 'export, build, ln -sfn, systemctl restart', expectedExit: 0 },
      () => plainDeploy(this.k, plain.url, plainV2),
    );

    // 2–4. cutover release of version 2, by socket mode
    const modes = [
      { id: '2', key: 'bind', title: 'cutover release, app binds its own port (socket: false)', zero: undefined },
      { id: '3', key: 'fd', title: 'cutover release, socket: true (native fd 3)', zero: true },
      { id: '4', key: 'preload', title: 'cutover release, socket: preload (app binds PORT, IGNORE_LISTEN_FDS=1)', zero: true },
    ];
    for (const m of modes) {
      await this.app(m.key).repo.commit({ VERSION: '2\n' }, 'v2');
      await this.measure(
        { id: m.id, title: m.title, key: m.key, command: 'release main', expectedExit: 0, zeroFailedGoal: m.zero, latencyGoal: true, handoverGoal: m.zero },
        () => this.release(m.key),
      );
    }

    // 5. a version that crashes at start: the plain procedure, then cutover (preflight, socket: true)
    const plainV3 = await plain.repo.commit({ VERSION: '3\n', BEHAVIOUR: 'crash\n' }, 'v3 crashes at start');
    await this.measure(
      { id: '5a', title: 'crashing version, plain procedure', key: 'plain', command: 'export, build, ln -sfn, systemctl restart', expectedExit: 0 },
      () => plainDeploy(this.k, plain.url, plainV3),
    );
    const restored = await plainRestore(this.k, plainV2);
    if (restored.code !== 0) this.say(`  (restoring the plain app failed: ${restored.stderr.trim()})`);
    await this.app('fd').repo.commit({ VERSION: '3\n', BEHAVIOUR: 'crash\n' }, 'v3 crashes at start');
    await this.measure(
      { id: '5b', title: 'crashing version, cutover release (preflight refuses it; socket: true)', key: 'fd', command: 'release main', expectedExit: 1, zeroFailedGoal: true, latencyGoal: true },
      () => this.release('fd'),
    );

    // 6. a version that starts but fails its health check: the gate catches it after the switch, cutover rolls back
    await this.app('gate').repo.commit({ VERSION: '2\n', BEHAVIOUR: 'unhealthy\n' }, 'v2 fails its health check');
    await this.measure(
      { id: '6', title: `unhealthy version, cutover release (preflight: false, gate ${GATE_TIMEOUT_S} s, rolls back; socket: true)`, key: 'gate', command: 'release main', expectedExit: 1, zeroFailedGoal: true, latencyGoal: true, handoverGoal: true },
      () => this.release('gate'),
      (r, run) => {
        const bad = servedBy(run, '2');
        r.notes.push(`the unhealthy version answered ${bad.answers} requests over ${(bad.spanMs / 1000).toFixed(2)} s (GET / works; only /health fails) until the gate gave up and switched back`);
      },
    );

    // 7. rollback under load (benchfd: version 2 live, the crashing 3 refused → back to 1)
    await this.measure(
      { id: '7', title: 'cutover rollback (socket: true)', key: 'fd', command: 'rollback', expectedExit: 0, zeroFailedGoal: true, latencyGoal: true, handoverGoal: true },
      () => this.k.kit('rollback', [], { manifest: this.app('fd').manifest }),
    );

    // 8. ten cutovers in a row (activate, alternating between two built releases; socket: true)
    const fd = this.app('fd');
    const live = (await this.k.host.exec(['readlink', `/usr/local/src/${fd.app}/active`])).stdout.trim().replace(/^releases\//, '');
    await fd.repo.commit({ VERSION: '8\n', BEHAVIOUR: null }, 'v8');
    const built = await this.k.kit('release', ['main', '--no-activate'], { manifest: fd.manifest });
    const v8 = (await fd.repo.head()).slice(0, 12);
    if (built.code !== 0) this.say(`  (building v8 failed: ${lastLines(built)})`);
    await this.measure(
      { id: '8', title: 'ten cutovers in a row (activate, alternating two releases; socket: true)', key: 'fd', command: '10 × activate', expectedExit: 0, versions: 'same-after-changes', zeroFailedGoal: true, handoverGoal: true },
      async () => {
        let last: ExecResult | undefined;
        for (let i = 0; i < 10; i++) {
          last = await this.k.kit('activate', [i % 2 === 0 ? v8 : live], { manifest: fd.manifest });
          if (last.code !== 0) return last;
        }
        return last!;
      },
    );

    // R. the reference: what a restart behind the same socket costs (systemctl restart of the serving slot)
    await this.measure(
      { id: 'R', title: 'reference: systemctl restart of the serving slot behind the socket (no handover)', key: 'fd', command: 'systemctl restart', expectedExit: 0, versions: 'same', zeroFailedGoal: true },
      async () => {
        const slot = (await this.k.host.exec(['sh', '-c', `systemctl show -p Id,ActiveState ${fd.app}@a.service ${fd.app}@b.service | grep -B1 ActiveState=active | head -1 | cut -d= -f2`])).stdout.trim();
        return this.k.host.exec(['systemctl', 'restart', slot]);
      },
    );
  }
}
