// What every verb works with: the manifest, its paths, the Ops that change things, the logger.
import fs from 'node:fs';
import type { Manifest } from './manifest.ts';
import { loadManifest } from './manifest.ts';
import { appPaths, type AppPaths } from './paths.ts';
import { createOps, type Ops } from './ops.ts';
import { createLogger, type Logger } from './log.ts';
import { acquireLock, operatorName } from './lock.ts';
import { handleStopSignals } from './stop.ts';
import { OperationError } from './errors.ts';
import { appendHistory, readHistory, releaseStates, type HistoryEvent, type ReleaseRecord } from './history.ts';

export interface Context {
  m: Manifest;
  paths: AppPaths;
  ops: Ops;
  log: Logger;
  dryRun: boolean;
  /** Who runs this: the sudo user where there is one. */
  by: string;
}

export async function createContext(manifestFile: string, opts: { dryRun?: boolean; out?: NodeJS.WritableStream } = {}): Promise<Context> {
  const m = await loadManifest(manifestFile);
  const log = createLogger(opts.out);
  const dryRun = opts.dryRun ?? false;
  return { m, paths: appPaths(m), ops: createOps({ dryRun, print: log.info }), log, dryRun, by: operatorName() };
}

export function history(ctx: Context): { events: HistoryEvent[]; records: Map<string, ReleaseRecord> } {
  const events = readHistory(ctx.paths.history);
  return { events, records: releaseStates(events) };
}

/** Appends to the history, or with --dry-run says it would. */
export async function record(ctx: Context, e: Omit<HistoryEvent, 'at' | 'by'>): Promise<void> {
  await ctx.ops.note(`record "${e.event}" for ${e.release} in ${ctx.paths.history}`, () => {
    appendHistory(ctx.paths.history, { by: ctx.by, ...e });
  });
}

export function releaseOnDisk(ctx: Context, id: string): boolean {
  try {
    return fs.lstatSync(ctx.paths.release(id)).isDirectory();
  } catch {
    return false;
  }
}

/** Runs fn holding the app's lock (not with --dry-run, which changes nothing). */
export async function withLock<T>(ctx: Context, operation: string, fn: () => Promise<T>): Promise<T> {
  if (ctx.dryRun) return fn();
  if (!fs.existsSync(ctx.paths.root)) {
    throw new OperationError(`The app's root ${ctx.paths.root} does not exist.`, 'Run `npx tsx scripts/provision.ts` first (or `release`, which creates it).');
  }
  const lock = acquireLock(ctx.paths.lock, operation);
  // While the lock is held, SIGTERM/SIGINT/SIGHUP stop the running step's processes and end the verb
  // at its next step, so the lock is never freed while a build of this run still runs.
  const restoreSignals = handleStopSignals();
  try {
    // Imported here: it brings the cut-over and preflight modules, which a verb without the lock (status) never needs.
    const { clearLeftovers } = await import('./leftovers.ts');
    await clearLeftovers(ctx);
    return await fn();
  } finally {
    lock.release();
    restoreSignals();
  }
}

/** Creates the root layout a release needs, where it is missing. */
export async function ensureLayout(ctx: Context): Promise<void> {
  for (const dir of [ctx.paths.root, ctx.paths.releases, ctx.paths.shared]) {
    if (!fs.existsSync(dir)) await ctx.ops.mkdir(dir, 0o755);
  }
}
