// Every change cutover makes goes through Ops: it does the change, or with --dry-run prints it instead.
import fs from 'node:fs';
import path from 'node:path';
import { OperationError, StoppedError } from './errors.ts';
import { formatDuration } from './log.ts';
import { runInGroup } from './group.ts';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Run as this unprivileged user (only when cutover runs as root). */
  user?: string;
  /** Capture output instead of streaming it. */
  quiet?: boolean;
  /** The words to print instead of the argv (e.g. the manifest's shell command). */
  display?: string;
  /**
   * Run as its own process group with this time limit (the manifest's install, build, migrate): on
   * expiry, or when cutover is told to stop, the whole group is stopped (SIGTERM, then SIGKILL).
   */
  limit?: { seconds: number; setting: string };
  /** On failure, the caller's own error for the command's whole output (e.g. ssh's words about a host key), if it has one. */
  explain?: (output: string) => Error | undefined;
}

/** A time limit for people: "30 min", "90 s", "2 h". */
export function formatLimit(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0 && seconds >= 120) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export interface Ops {
  readonly dryRun: boolean;
  /** Runs a command (argv, never a shell string built here); throws OperationError on failure. */
  run(argv: string[], opts?: RunOptions): Promise<string>;
  /** Runs `producer | consumer`. */
  pipe(producer: string[], consumer: string[], opts?: RunOptions): Promise<void>;
  mkdir(dir: string, mode?: number): Promise<void>;
  writeFile(file: string, content: string, mode?: number): Promise<void>;
  symlink(target: string, link: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a file or a whole tree; the caller has validated that cutover owns it. */
  remove(p: string): Promise<void>;
  chown(p: string, user: string, opts?: { recursive?: boolean }): Promise<void>;
  chmod(p: string, mode: string, opts?: { recursive?: boolean }): Promise<void>;
  /** A change that is not a file operation (history, lock): done, or described. */
  note(description: string, apply: () => void | Promise<void>): Promise<void>;
}

/** When cutover runs as root and the step names a user, drop to that user with setpriv. */
export function asUser(argv: string[], user: string | undefined): string[] {
  if (!user || process.getuid?.() !== 0 || user === 'root') return argv;
  return ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', ...argv];
}

/** argv as one line for people: plain words as they are, others JSON-quoted (never a shell line to run). */
export function showArgv(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** zx, loaded when the first command runs: a verb that only reads (status) never loads it. */
const zx = () => import('zx/core');

/** childOutputToStderr: the commands' own output goes to stderr too (a verb whose stdout is one JSON line, --json). */
export function createOps(opts: { dryRun: boolean; print?: (line: string) => void; childOutputToStderr?: boolean }): Ops {
  const childOut = opts.childOutputToStderr ? 2 : 'inherit';
  const print = opts.print ?? ((l: string) => process.stdout.write(l + '\n'));
  const would = (what: string) => print(`    would ${what}`);

  async function run(argv: string[], o: RunOptions = {}): Promise<string> {
    const full = asUser(argv, o.user);
    const where = o.cwd ? ` (in ${o.cwd}${o.user ? `, as ${o.user}` : ''})` : o.user ? ` (as ${o.user})` : '';
    if (opts.dryRun) {
      would(`run: ${o.display ?? showArgv(full)}${where}`);
      return '';
    }
    const t0 = performance.now();
    if (o.limit) return runLimited(full, `\`${o.display ?? showArgv(argv)}\``, { ...o, limit: o.limit }, t0);
    const { $ } = await zx();
    const p = await $({
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: o.quiet ? ['ignore', 'pipe', 'pipe'] : ['ignore', childOut, 'inherit'],
      nothrow: true,
      quiet: true,
    })`${full}`;
    if (p.exitCode !== 0) {
      const explained = o.explain?.(`${p.stderr}\n${p.stdout}`);
      if (explained) throw explained;
      const detail = o.quiet ? `\n${(p.stderr || p.stdout).trim().split('\n').slice(-10).join('\n')}` : '';
      throw new OperationError(
        `\`${o.display ?? showArgv(argv)}\` failed with exit code ${p.exitCode} after ${formatDuration(performance.now() - t0)}.${detail}`,
      );
    }
    return p.stdout;
  }

  async function runLimited(full: string[], what: string, o: RunOptions & { limit: { seconds: number; setting: string } }, t0: number): Promise<string> {
    const r = await runInGroup(full, { cwd: o.cwd, env: o.env, timeoutMs: o.limit.seconds * 1000, quiet: o.quiet, outputToStderr: opts.childOutputToStderr });
    if (r.kind === 'timed-out') {
      throw new OperationError(
        `${what} did not finish within its time limit of ${formatLimit(o.limit.seconds)} (${o.limit.setting} in the manifest): cutover stopped it and every process it started.`,
      );
    }
    if (r.kind === 'stopped') {
      throw new StoppedError(`${what} was stopped after ${formatDuration(performance.now() - t0)}: cutover received ${r.signal}.`, r.signal);
    }
    if (r.leftovers > 0) {
      print(`    ${what} left ${r.leftovers} process${r.leftovers === 1 ? '' : 'es'} running in the background: stopped (a step's processes must end with it).`);
    }
    if (r.code !== 0) {
      const status = r.code === null ? `was killed by ${r.signal}` : `failed with exit code ${r.code}`;
      const detail = o.quiet ? `\n${(r.stderr || r.stdout).trim().split('\n').slice(-10).join('\n')}` : '';
      throw new OperationError(`${what} ${status} after ${formatDuration(performance.now() - t0)}.${detail}`);
    }
    return r.stdout;
  }

  return {
    dryRun: opts.dryRun,
    run,
    async pipe(producer, consumer, o = {}) {
      if (opts.dryRun) return would(`run: ${showArgv(producer)} | ${showArgv(consumer)}`);
      const env = o.env ?? process.env;
      const { $ } = await zx();
      const a = $({ cwd: o.cwd, env, quiet: true, nothrow: true })`${producer}`;
      const b = await a.pipe($({ cwd: o.cwd, env, quiet: true, nothrow: true })`${consumer}`);
      const first = await a;
      for (const [p, argv] of [[first, producer], [b, consumer]] as const) {
        if (p.exitCode !== 0) {
          throw new OperationError(`\`${showArgv(argv)}\` failed with exit code ${p.exitCode}: ${p.stderr.trim().split('\n').slice(-5).join('\n')}`);
        }
      }
    },
    async mkdir(dir, mode = 0o755) {
      if (opts.dryRun) return would(`create directory ${dir} (mode ${mode.toString(8)})`);
      fs.mkdirSync(dir, { recursive: true, mode });
    },
    async writeFile(file, content, mode = 0o644) {
      if (opts.dryRun) return would(`write ${file} (mode ${mode.toString(8)}, ${Buffer.byteLength(content)} bytes)`);
      const tmp = path.join(path.dirname(file), `.${path.basename(file)}.cutover-tmp`);
      // Remove whatever has the temp name (a symlink from an untrusted repo, say), then create it
      // exclusively: O_EXCL never follows a symlink.
      fs.rmSync(tmp, { force: true });
      fs.writeFileSync(tmp, content, { mode, flag: 'wx' });
      fs.chmodSync(tmp, mode);
      fs.renameSync(tmp, file);
    },
    async symlink(target, link) {
      if (opts.dryRun) return would(`link ${link} -> ${target}`);
      fs.symlinkSync(target, link);
    },
    async rename(from, to) {
      if (opts.dryRun) return would(`rename ${from} to ${to}`);
      fs.renameSync(from, to);
    },
    async remove(p) {
      if (opts.dryRun) return would(`remove ${p}`);
      fs.rmSync(p, { recursive: true, force: true });
    },
    async chown(p, user, o = {}) {
      if (process.getuid?.() !== 0) return;
      await run(['chown', ...(o.recursive ? ['-R'] : []), '--no-dereference', `${user}:${user}`, p], { quiet: true });
    },
    async chmod(p, mode, o = {}) {
      await run(['chmod', ...(o.recursive ? ['-R'] : []), mode, p], { quiet: true });
    },
    async note(description, apply) {
      if (opts.dryRun) return would(description);
      await apply();
    },
  };
}
