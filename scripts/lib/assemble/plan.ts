// The release plan: what a new release starts from — the live release, a ready build of the commit, the donors of caches, assets and identical files — read once, before anything changes.
import fs from 'node:fs';
import { readyReleaseOf, type HistoryEvent, type ReleaseRecord } from '../state/history.ts';
import { history, releaseOnDisk, type Context } from '../state/context.ts';
import { liveRelease } from '../state/switch.ts';
import { assetDonors } from './assets.ts';

/** The app's releases as one reading of the history and the `active` link found them. */
export interface ReleaseState {
  events: HistoryEvent[];
  records: Map<string, ReleaseRecord>;
  /** The release `active` points at, if any. */
  live?: string;
  /** Whether a release's directory exists (a real directory, not a link). */
  onDisk: (id: string) => boolean;
  /** Whether a release id is taken: in the history, or anything at its path. */
  taken: (id: string) => boolean;
}

/** What a release of one commit will do and start from. */
export interface ReleasePlan {
  commit: string;
  ref: string;
  /** The release to make live: the ready release of this commit when there is one (and no --rebuild), else a new id. */
  id: string;
  /** True when `id` is already built and ready: nothing to build. */
  reuse: boolean;
  /** The live release before this one, and its commit. */
  live?: string;
  liveCommit?: string;
  /** The newest ready release, whose build caches (manifest `cache`) the build starts from. */
  cacheDonor?: string;
  /** The releases live most recently, whose built assets this release carries (at most assets_keep). */
  assetDonors: string[];
  /** The sealed release this one shares identical files with: the live one, else the newest ready one. */
  neighbour?: string;
}

/** Reads the history and the `active` link once. */
export function readReleaseState(ctx: Context): ReleaseState {
  const { events, records } = history(ctx);
  return {
    events,
    records,
    live: liveRelease(ctx.paths),
    onDisk: (id) => releaseOnDisk(ctx, id),
    taken: (id) => records.has(id) || fs.existsSync(ctx.paths.release(id)),
  };
}

/** A fresh release id for a commit: its first 12 hex digits, with -rN when that one is taken. */
export function nextReleaseId(commit: string, taken: (id: string) => boolean): string {
  const base = commit.slice(0, 12);
  if (!taken(base)) return base;
  for (let n = 2; ; n++) if (!taken(`${base}-r${n}`)) return `${base}-r${n}`;
}

/** The plan for releasing `commit` (pure, given the state): which id, and what the build borrows from. */
export function planRelease(
  state: ReleaseState,
  commit: string,
  ref: string,
  opts: { rebuild?: boolean; assetsKeep: number; /** A new release under this id (an archive's, built for that path). */ id?: string },
): ReleasePlan {
  const { records, live, onDisk } = state;
  const ready = opts.rebuild || opts.id ? undefined : readyReleaseOf(commit, records);
  const id = opts.id ?? ready?.id ?? nextReleaseId(commit, state.taken);
  const newest = (usable: (r: ReleaseRecord) => boolean) => newestReady(records, id, usable);
  return {
    commit,
    ref,
    id,
    reuse: ready !== undefined,
    live,
    liveCommit: live ? records.get(live)?.commit : undefined,
    cacheDonor: newest((r) => onDisk(r.id)),
    assetDonors: assetDonors(state.events, id, opts.assetsKeep, onDisk),
    neighbour: neighbourOf(state, id),
  };
}

function newestReady(records: Map<string, ReleaseRecord>, id: string, usable: (r: ReleaseRecord) => boolean): string | undefined {
  return [...records.values()].filter((r) => r.state === 'ready' && r.id !== id && usable(r)).sort((a, b) => b.order - a.order)[0]?.id;
}

/** The sealed release a new release `id` shares identical files with: the live one, else the newest ready one; none when that one is not on disk. */
export function neighbourOf(state: ReleaseState, id: string): string | undefined {
  const near = state.live ?? newestReady(state.records, id, () => true);
  return near !== undefined && near !== id && state.onDisk(near) ? near : undefined;
}

/** The plan as sentences, for --dry-run. */
export function describePlan(plan: ReleasePlan): string[] {
  const none = (xs: string[]) => (xs.length > 0 ? xs.join(', ') : 'none');
  return [
    plan.reuse ? `reuse the ready release ${plan.id} of ${plan.commit.slice(0, 12)}` : `build ${plan.commit.slice(0, 12)} as release ${plan.id}`,
    `live now: ${plan.live ?? 'none'}`,
    ...(plan.reuse ? [] : [
      `build caches from: ${plan.cacheDonor ?? 'none'}`,
      `assets carried from: ${none(plan.assetDonors)}`,
      `identical files shared with: ${plan.neighbour ?? 'none'}`,
    ]),
  ];
}

/** With --dry-run, prints the plan before the steps it would take. */
export function logPlan(ctx: Context, plan: ReleasePlan): void {
  if (ctx.dryRun) ctx.log.info(`The plan:\n${describePlan(plan).map((l) => `  ${l}`).join('\n')}`);
}
