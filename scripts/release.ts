// release <ref>: fetch, build in a fresh directory, then activate and prune.
import { dryRunOption, runCommand } from './lib/run/cli.ts';
import { UsageError } from './lib/run/errors.ts';
import type { Context } from './lib/state/context.ts';
import type { RemoteAccess } from './lib/assemble/git.ts';
import fs from 'node:fs';

const spec = {
  name: 'release',
  summary: 'Fetch <ref> (a commit hash, tag or branch), build it in a fresh release directory, then make it live and prune.',
  positionals: '<ref>',
  arity: [1, 1] as [number, number],
  options: {
    'no-activate': { type: 'boolean' as const, help: 'build (or reuse) the release but leave the live release as it is' },
    rebuild: { type: 'boolean' as const, help: 'build afresh even if a ready release of this commit exists' },
    'dry-run': dryRunOption,
  },
  details: `Example, from your machine:
  ssh root@host 'cd /opt/cutover && npx tsx scripts/release.ts v1.4.2'

A private repository: set deploy_key in the manifest (a root-owned 0600 key, e.g. /etc/cutover/<app>.key) and
run provision once, which pins the server's host key; every fetch uses that key and checks that pin strictly.
The README's "Private repositories" says how to make the key and how to re-pin a changed host key.`,
};

async function resolve(ctx: Context, ref: string, access: RemoteAccess): Promise<string> {
  const { fetchMirror, resolveRef, resolveRemote } = await import('./lib/assemble/git.ts');
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

await runCommand(spec, async (args) => {
  // Imported here, not at the top: --help and a bad flag never load the kit's heavy modules (zx, ajv, yaml).
  const { createContext, ensureLayout } = await import('./lib/state/context.ts');
  const { withLock } = await import('./lib/golive/locked.ts');
  const { shareAssetsForCutover } = await import('./lib/assemble/assets.ts');
  const { assertRefSyntax } = await import('./lib/assemble/git.ts');
  const { buildRelease, cleanInterrupted } = await import('./lib/assemble/build.ts');
  const { describePlan, planRelease, readReleaseState } = await import('./lib/assemble/plan.ts');
  const { remoteAccessFor } = await import('./lib/assemble/deploykey.ts');
  const { activateRelease } = await import('./lib/golive/activation.ts');
  const { finishBeforeStopping } = await import('./lib/run/stop.ts');
  const { applyPrune, prunePlanFor } = await import('./lib/state/prune.ts');
  const ref = assertRefSyntax(args.positionals[0]);
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']) });
  if (ctx.dryRun) ctx.log.info(`Dry run: nothing will be changed.`);
  // A deploy key and the pinned host key are checked first: a bad one stops the release before anything changes.
  const access = remoteAccessFor(ctx.m, ctx.paths);
  await ensureLayout(ctx);
  await withLock(ctx, args.operation, async () => {
    // The state is read once: interrupted builds are cleared from it, then the plan is made from it.
    const state = readReleaseState(ctx);
    await cleanInterrupted(ctx, state.records);
    const commit = await resolve(ctx, ref, access);
    ctx.log.info(`${ref} is commit ${commit}.`);
    const plan = planRelease(state, commit, ref, { rebuild: Boolean(args.values.rebuild), assetsKeep: ctx.m.assets_keep });
    const { id, reuse } = plan;
    if (ctx.dryRun) ctx.log.info(`The plan:\n${describePlan(plan).map((l) => `  ${l}`).join('\n')}`);
    if (reuse) {
      ctx.log.info(`Release ${id} of this commit is already built and ready: reusing it (use --rebuild to build afresh).`);
    } else {
      await buildRelease(ctx, plan, { fresh: Boolean(args.values.rebuild) });
    }
    if (args.values['no-activate']) {
      ctx.log.info(`Not activating (--no-activate). Make it live with: npx tsx scripts/activate.ts ${id}`);
      return;
    }
    await shareAssetsForCutover(ctx, id);
    await finishBeforeStopping(`the activation of ${id}`, () => activateRelease(ctx, { id, via: 'release', plannedCommit: reuse || !ctx.dryRun ? undefined : commit }));
    await ctx.log.step(`prune (keep ${ctx.m.keep})`, () => applyPrune(ctx, prunePlanFor(ctx, ctx.m.keep)));
  });
});
