// cutover exec: one command in a ready release (the live one by default) as the service runs — the app's user, environment, env file and sandbox — in a transient unit, its exit code passed on and recorded.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { UsageError } from '../run/errors.ts';
import { record, history, type Context } from '../state/context.ts';
import { liveRelease } from '../state/switch.ts';
import { preflightProperties } from '../host/units.ts';
import { appEnvironment } from '../assemble/appenv.ts';
import { maskSecrets } from '../assemble/secrets.ts';
import { showArgv } from '../run/ops.ts';

/** The transient unit's name prefix of an app's exec commands. */
export function execUnitPrefix(app: string): string {
  return `cutover-exec-${app}-`;
}

/** The release a command runs in: the one named, else the live one; it must be ready (or live) and on disk. */
export function execRelease(ctx: Context, named?: string): string {
  const { records } = history(ctx);
  const live = liveRelease(ctx.paths);
  const id = named ?? live;
  if (!id) throw new UsageError('No release is live, so there is nothing to run a command in.', 'Release one first, or name a ready one: cutover exec --release <id> -- …');
  const r = records.get(id);
  if (!r) throw new UsageError(`There is no release ${id}.`, '`cutover status` lists the releases.');
  if (r.state !== 'ready' && id !== live) {
    throw new UsageError(`Release ${id} is ${r.state}, not ready: a command runs only in a ready release.`, '`cutover status` lists the ready ones; the live release is the default.');
  }
  return id;
}

/**
 * The systemd-run argv: a transient unit with the service's user, environment (the app's, as for its
 * build, with the env file), sandbox and working directory in the release, waiting for the command and
 * passing on its exit code; a terminal when there is one (--pty), plain pipes otherwise.
 */
export function execArgv(ctx: Context, id: string, command: string[], tty: boolean): string[] {
  // The release in the name, so `cutover logs` can say which release a line came from.
  const unit = `${execUnitPrefix(ctx.m.app)}${id}-${randomBytes(4).toString('hex')}`;
  const env = appEnvironment(ctx.m, { home: ctx.paths.cache });
  return [
    'systemd-run', `--unit=${unit}`, '--quiet', '--wait', '--collect', tty ? '--pty' : '--pipe',
    `--property=SyslogIdentifier=${ctx.m.app}-exec`,
    ...preflightProperties(ctx.m, ctx.m.port, ctx.paths.release(id)),
    ...Object.entries(env).filter(([k]) => ['HOME', 'PATH', 'LANG', 'npm_config_cache'].includes(k)).map(([k, v]) => `--setenv=${k}=${v}`),
    '--', '/usr/bin/env', ...command,
  ];
}

/** Runs it, with this terminal or these pipes; resolves to the command's exit code. */
export function runExec(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit' });
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => child.kill(s));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', () => resolve(127));
  });
}

/** Appends who ran what in which release and its exit code; env-file values in the command line are masked. */
export async function recordExec(ctx: Context, id: string, command: string[], code: number): Promise<void> {
  await record(ctx, { event: 'exec', release: id, command: maskSecrets(showArgv(command), ctx.paths.envFile), exit: code });
}

/** Whether stdin and stdout are a terminal (an interactive session gets a pty). */
export function hasTerminal(): boolean {
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}
