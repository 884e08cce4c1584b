// prune: delete old releases; keeps the live release, the rollback target, builds in progress and releases in use.
import { runCommand } from './lib/run/cli.ts';
import { ExitCode, LockedError, UsageError } from './lib/run/errors.ts';

const spec = {
  name: 'prune',
  summary: 'Delete releases that are neither live, nor the rollback target, nor among the newest N good ones, nor in use; failed and interrupted builds go too.',
  options: {
    keep: { type: 'string' as const, arg: 'N', help: "how many good releases to keep (default: the manifest's keep)" },
    'dry-run': { type: 'boolean' as const, help: 'print what it would delete and why, and change nothing' },
    cron: { type: 'boolean' as const, help: 'for the cron entry: when a deploy holds the lock, say so and exit 0' },
  },
  details: `Example: ssh root@host 'cutover prune --keep 3 --dry-run'`,
};

function parseKeep(v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--keep must be a whole number of at least 1, not "${String(v)}".`);
  return n;
}

await runCommand(spec, async (args) => {
  // Imported here, not at the top: --help and a bad flag never load the kit's heavy modules (zx, ajv, yaml).
  const { createContext, history } = await import('./lib/state/context.ts');
  const { withLock } = await import('./lib/golive/locked.ts');
  const { applyPrune, prunePlanFor } = await import('./lib/state/prune.ts');
  const { cleanInterrupted } = await import('./lib/assemble/build.ts');
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']) });
  const keep = parseKeep(args.values.keep, ctx.m.keep);
  try {
    await withLock(ctx, args.operation, async () => {
      if (!ctx.dryRun) await cleanInterrupted(ctx, history(ctx).records);
      ctx.log.info(`Prune plan (keep ${keep} good release${keep === 1 ? "" : "s"})${ctx.dryRun ? ', dry run:' : ':'}`);
      const n = await applyPrune(ctx, prunePlanFor(ctx, keep));
      ctx.log.info(ctx.dryRun ? 'Dry run: nothing was deleted.' : `Deleted ${n} release${n === 1 ? '' : 's'}.`);
    }, { frozen: 'prune' });
  } catch (e) {
    if (e instanceof LockedError && args.values.cron) {
      ctx.log.info(`Prune skipped: ${e.message} It will run again at the next scheduled time.`);
      return ExitCode.ok;
    }
    throw e;
  }
});
