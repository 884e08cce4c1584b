// Prune: plan what to delete (pure), then delete it; never the live release, the rollback target, a build, or a release in use.
import fs from 'node:fs';
import type { ReleaseRecord } from './history.ts';
import { releasesInUse } from './procfs.ts';
import { history, record, type Context } from './context.ts';
import { liveRelease } from './switch.ts';
import { rollbackTarget } from './history.ts';

export interface PruneInput {
  records: Map<string, ReleaseRecord>;
  /** Directory names found under releases/. */
  onDisk: string[];
  live?: string;
  rollback?: string;
  keep: number;
  /** Release ids that a running process has as its working directory, with one such pid. */
  inUse: Map<string, number>;
}

export interface PruneDecision {
  id: string;
  action: 'keep' | 'delete';
  reason: string;
}

/** Decides, for every directory under releases/, whether prune keeps or deletes it, and why. */
export function planPrune(input: PruneInput): PruneDecision[] {
  const { records, live, rollback, keep, inUse } = input;
  const known = input.onDisk.filter((id) => records.has(id)).sort((a, b) => records.get(b)!.order - records.get(a)!.order);
  const unknown = input.onDisk.filter((id) => !records.has(id)).sort();
  let good = 0;
  let bad = 0;
  const decisions: PruneDecision[] = known.map((id) => {
    const r = records.get(id)!;
    const keepIt = (reason: string): PruneDecision => ({ id, action: 'keep', reason });
    const del = (reason: string): PruneDecision => ({ id, action: 'delete', reason });
    if (r.state === 'ready') good++;
    if (r.state === 'bad') bad++;
    if (id === live) return keepIt('it is live');
    if (id === rollback) return keepIt('it is the rollback target');
    if (r.state === 'building') return keepIt('it is being built right now');
    if (inUse.has(id)) return keepIt(`a running process (pid ${inUse.get(id)}) still uses it as its working directory`);
    switch (r.state) {
      case 'ready':
        return good <= keep ? keepIt(`it is among the newest ${keep} good releases`) : del(`it is older than the newest ${keep} good releases`);
      case 'bad':
        return bad === 1 ? keepIt('it is the newest bad release, kept for inspection') : del('it is bad and a newer bad release is kept for inspection');
      case 'failed':
        return del('its build failed');
      case 'interrupted':
        return del('its build was interrupted');
      default:
        return del('the history says it was removed');
    }
  });
  for (const id of unknown) decisions.push({ id, action: 'keep', reason: 'cutover did not make it (it is not in the history): left alone' });
  return decisions;
}

function listReleaseDirs(dir: string): string[] {
  try {
    // A name with a leading dot is no release: an archive staged by a release running now (paths.incomingPrefix).
    return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name);
  } catch {
    return [];
  }
}

/** Gathers the plan's inputs from the host. */
export function prunePlanFor(ctx: Context, keep: number): PruneDecision[] {
  const { events, records } = history(ctx);
  const onDisk = listReleaseDirs(ctx.paths.releases);
  const live = liveRelease(ctx.paths);
  const rollback = rollbackTarget(events, live, records, (id) => onDisk.includes(id));
  return planPrune({ records, onDisk, live, rollback, keep, inUse: releasesInUse(ctx.paths.releases) });
}

/** Prints the plan and deletes what it says (or, with --dry-run, only prints). */
export async function applyPrune(ctx: Context, plan: PruneDecision[]): Promise<number> {
  let deleted = 0;
  for (const d of plan) {
    ctx.log.info(`  ${d.action === 'keep' ? 'keep  ' : 'delete'} ${d.id}: ${d.reason}`);
  }
  for (const d of plan.filter((x) => x.action === 'delete')) {
    // Recorded first: a delete cut short (kill, power loss) leaves a release the history calls removed,
    // which the next prune deletes again, never a half-deleted one it still calls ready.
    await record(ctx, { event: 'removed', release: d.id, reason: d.reason });
    await ctx.ops.remove(ctx.paths.release(d.id));
    deleted++;
  }
  return deleted;
}
