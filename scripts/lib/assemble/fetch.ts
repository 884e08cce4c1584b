// The commit a release builds and its plan: the mirror fetched, the ref resolved (a dry run asks the repository itself, as it does not fetch), the plan made from the state read once.
import fs from 'node:fs';
import { UsageError } from '../run/errors.ts';
import type { Context } from '../state/context.ts';
import { fetchMirror, resolveRef, resolveRemote, type RemoteAccess } from './git.ts';
import { logPlan, planRelease, type ReleasePlan, type ReleaseState } from './plan.ts';

/** Fetches the mirror and resolves `ref` to a full commit hash. */
export async function fetchAndResolve(ctx: Context, ref: string, access: RemoteAccess): Promise<string> {
  await ctx.log.step(`fetch ${ctx.m.repo}`, () => fetchMirror(ctx.ops, ctx.m.repo, ctx.paths.repo, access));
  if (!ctx.dryRun) return resolveRef(ctx.paths.repo, ref);
  // A dry run does not fetch, so the mirror may be stale or missing: ask the repository itself for
  // branches and tags, so the plan names the commit a real run would build.
  const remote = await resolveRemote(ctx.m.repo, ref, access);
  if (remote) return remote;
  const fullHash = /^[0-9a-f]{40}$/.test(ref);
  if (fs.existsSync(ctx.paths.repo)) {
    try {
      return await resolveRef(ctx.paths.repo, ref);
    } catch (e) {
      // A full hash pushed since the mirror's last fetch: a real run fetches it first.
      if (!fullHash) throw e;
    }
  }
  if (fullHash) return ref;
  throw new UsageError(`No branch or tag named "${ref}" in ${ctx.m.repo} (an abbreviated hash needs the mirror: run without --dry-run once).`);
}

/** The plan for releasing (or building) a git ref: fetched, resolved, planned from `state`; a dry run prints the plan. */
export async function planFromRef(ctx: Context, state: ReleaseState, ref: string, access: RemoteAccess, opts: { rebuild?: boolean } = {}): Promise<ReleasePlan> {
  const commit = await fetchAndResolve(ctx, ref, access);
  ctx.log.info(`${ref} is commit ${commit}.`);
  const plan = planRelease(state, commit, ref, { rebuild: opts.rebuild, assetsKeep: ctx.m.assets_keep });
  logPlan(ctx, plan);
  return plan;
}
