// The commit a release builds: the mirror fetched, the ref resolved (a dry run asks the repository itself, as it does not fetch).
import fs from 'node:fs';
import { UsageError } from '../run/errors.ts';
import type { Context } from '../state/context.ts';
import { fetchMirror, resolveRef, resolveRemote, type RemoteAccess } from './git.ts';

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

