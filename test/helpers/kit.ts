// Test helpers that run the real kit scripts as subprocesses against a temp root, and snapshot what they change.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { makeAppRepo, tempDir, type AppRepo } from './gitrepo.ts';

export const kitDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsx = path.join(kitDir, 'node_modules', '.bin', 'tsx');

/**
 * Whether dist/ (the verbs compiled ahead of time, which the `cutover` executable runs) is at least as
 * new as what it is compiled from: bin/cutover's own check (bin/staleness.cjs), which otherwise falls
 * back to tsx and says so on stderr. test/run.mjs compiles before the fs and system tiers, so this holds there.
 */
const { staleness } = createRequire(import.meta.url)('../../bin/staleness.cjs') as { staleness(kit: string): string };
export const compiledKitFresh = staleness(kitDir) === '';

/**
 * The argv that runs `<verb> args` from the kit at `kit` (the test host binds this checkout at
 * /opt/cutover): the compiled verb through bin/cutover, as operators run it (a third of tsx's start-up
 * time, which the system tier pays hundreds of times), or tsx on scripts/<verb>.ts while dist/ is stale.
 */
export function verbArgv(verb: string, args: string[], kit: string = kitDir): string[] {
  return compiledKitFresh ? [path.join(kit, 'bin', 'cutover'), verb, ...args] : [path.join(kit, 'node_modules', '.bin', 'tsx'), path.join(kit, 'scripts', `${verb}.ts`), ...args];
}

/** The unprivileged user builds run as in the fs tier: a system user the tests make when root. */
export const TEST_USER = process.getuid?.() === 0 ? 'cutover-fs' : os.userInfo().username;

export function ensureTestUser(): void {
  if (process.getuid?.() !== 0) return;
  if (spawnSync('id', ['-u', TEST_USER]).status === 0) return;
  const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER], { encoding: 'utf8' });
  if (r.status !== 0 && spawnSync('id', ['-u', TEST_USER]).status !== 0) throw new Error(`useradd ${TEST_USER}: ${r.stderr}`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  out: string;
}

export interface Fixture {
  dir: string;
  root: string;
  manifest: string;
  repo: AppRepo;
  /** Runs `<verb> args --manifest <manifest>` (verbArgv: compiled, or through tsx) with service control off. */
  run(verb: string, args?: string[], env?: Record<string, string>): Promise<RunResult>;
  /** Starts a script without waiting for it. */
  start(verb: string, args?: string[], env?: Record<string, string>): import('node:child_process').ChildProcess;
  history(): any[];
  active(): string | undefined;
  status(): Promise<any>;
}

/** Manifest defaults for the fs tier: the node example app, a health command (no systemd here). */
export function baseManifest(f: { root: string; repo: string }): Record<string, unknown> {
  return {
    app: 'fsapp',
    repo: f.repo,
    root: f.root,
    user: TEST_USER,
    install: 'npm ci --no-audit --no-fund',
    build: 'npm run build',
    start: 'node server.js',
    shared: ['.env', 'uploads/'],
    env_file: '.env',
    env: { GREETING: 'hello' },
    health: { command: 'test -f dist/version.json && test ! -f UNHEALTHY', timeout: 3 },
    keep: 3,
  };
}

export function scriptEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, CUTOVER_SYSTEMD: 'off', ...extra };
}

export async function makeFixture(overrides: Record<string, unknown> = {}): Promise<Fixture> {
  ensureTestUser();
  const dir = await tempDir('cutover-fs');
  const root = path.join(dir, 'root');
  const repo = await makeAppRepo(path.join(dir, 'src'));
  const manifest = path.join(dir, 'app.yaml');
  fs.writeFileSync(manifest, stringify({ ...baseManifest({ root, repo: repo.dir }), ...overrides }));
  const argvFor = (verb: string, args: string[]) => verbArgv(verb, [...args, '--manifest', manifest]);
  const f: Fixture = {
    dir,
    root,
    manifest,
    repo,
    run: (verb, args = [], env = {}) => runArgv(argvFor(verb, args), scriptEnv(env)),
    start: (verb, args = [], env = {}) => {
      const [command, ...rest] = argvFor(verb, args);
      return spawn(command!, rest, { env: scriptEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    },
    history: () =>
      fs.existsSync(path.join(root, 'history.jsonl'))
        ? fs.readFileSync(path.join(root, 'history.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
        : [],
    active: () => {
      try {
        return fs.readlinkSync(path.join(root, 'active'));
      } catch {
        return undefined;
      }
    },
    status: async () => JSON.parse((await f.run('status', ['--json'])).stdout),
  };
  return f;
}

/** Runs `tsx <argv>` (argv[0] a scripts/<verb>.ts file): the verb from its TypeScript source. */
export function runScript(argv: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return runArgv([tsx, ...argv], env);
}

/** Runs a command to its end and collects its output. */
function runArgv([command, ...args]: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, out: stdout + stderr }));
  });
}

/** Every path under dir with its type, link target, size, mode and mtime: compare two to prove nothing changed. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    const rel = path.relative(dir, p) || '.';
    if (st.isSymbolicLink()) out[rel] = `link ${fs.readlinkSync(p)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${st.mode.toString(8)}`;
      for (const name of fs.readdirSync(p)) walk(path.join(p, name));
    } else out[rel] = `file ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`;
  };
  walk(dir);
  return out;
}

/**
 * Collects a started verb's output and waits until it matches `pattern` (a verb reaching a step: '==> build: ');
 * throws, with the output, when the verb ends first or after timeoutMs. Returns a reader of the output so far.
 */
export async function untilOutput(child: import('node:child_process').ChildProcess, pattern: RegExp, timeoutMs = 90_000): Promise<() => string> {
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(out)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the verb ended (${child.exitCode ?? child.signalCode}) before ${pattern}:\n${out}`);
    if (Date.now() > deadline) throw new Error(`the verb did not reach ${pattern} within ${timeoutMs} ms:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return () => out;
}
