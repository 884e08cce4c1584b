// unfreeze: lift the freeze that `cutover freeze` set, so release, activate, rollback and prune work again.
import { dryRunOption, runCommand } from './lib/run/cli.ts';

const spec = {
  name: 'unfreeze',
  summary: 'Lift the freeze set by `cutover freeze`: release, activate, rollback and prune work again.',
  options: { 'dry-run': dryRunOption },
  details: `Example: ssh root@host 'cutover unfreeze'`,
};

await runCommand(spec, async (args) => {
  const { createContext } = await import('./lib/state/context.ts');
  const { describeFreeze, readFreeze } = await import('./lib/state/freeze.ts');
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']) });
  const f = readFreeze(ctx.paths);
  if (!f) {
    ctx.log.info(`${ctx.m.app} is not frozen: nothing to do.`);
    return;
  }
  await ctx.ops.remove(ctx.paths.freeze);
  ctx.log.info(`Lifted the freeze (${describeFreeze(f)}): release, activate, rollback and prune work again.`);
});
