// What every verb works with: the manifest, its paths, the Ops that change things, the logger.
import fs from 'node:fs';
import type { Manifest } from '../manifest/types.ts';
import { loadManifest } from '../manifest/manifest.ts';
import { appPaths, type AppPaths } from '../manifest/paths.ts';
import { createOps, type Ops } from '../run/ops.ts';
import { createLogger, type Logger } from '../run/log.ts';
import { operatorName } from './lock.ts';
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
  // Steps to stderr (--json): the commands they run write there too, so stdout holds only the JSON.
  const ops = createOps({ dryRun, print: log.info, childOutputToStderr: opts.out === process.stderr });
  return { m, paths: appPaths(m), ops, log, dryRun, by: operatorName() };
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

/** Creates the root layout a release needs, where it is missing. */
export async function ensureLayout(ctx: Context): Promise<void> {
  for (const dir of [ctx.paths.root, ctx.paths.releases, ctx.paths.shared]) {
    if (!fs.existsSync(dir)) await ctx.ops.mkdir(dir, 0o755);
  }
}
