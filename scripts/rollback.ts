// rollback: go back to the last good release before the live one (from the history), and mark the live one bad.
import { dryRunOption, runCommand } from './lib/run/cli.ts';
import { OperationError } from './lib/run/errors.ts';

const spec = {
  name: 'rollback',
  summary: 'Make the last good release before the live one live again (or the one given with --to), and mark the release it leaves bad.',
  options: {
    to: { type: 'string' as const, arg: 'RELEASE', help: 'roll back to this release instead of the previous good one' },
    'dry-run': dryRunOption,
  },
  details: `Example: ssh root@host 'cutover rollback'`,
};

await runCommand(spec, async (args) => {
  // Imported here, not at the top: --help and a bad flag never load the kit's heavy modules (zx, ajv, yaml).
  const { createContext, history, record, releaseOnDisk } = await import('./lib/state/context.ts');
  const { withLock } = await import('./lib/golive/locked.ts');
  const { activateRelease } = await import('./lib/golive/activation.ts');
  const { finishBeforeStopping } = await import('./lib/run/stop.ts');
  const { activations, rollbackTarget } = await import('./lib/state/history.ts');
  const { assertReleaseId } = await import('./lib/manifest/paths.ts');
  const { liveRelease } = await import('./lib/state/switch.ts');
  const { shareAssetsForCutover } = await import('./lib/assemble/assets.ts');
  const to = args.values.to === undefined ? undefined : assertReleaseId(String(args.values.to));
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']) });
  await withLock(ctx, args.operation, async () => {
    const { events, records } = history(ctx);
    const live = liveRelease(ctx.paths);
    // `active` ahead of the history's last activation: an activation (or a rollback) was cut short after its
    // switch. Which way "back" is cannot be told from here, so say what happened instead of guessing.
    const recorded = activations(events).at(-1)?.release;
    if (!to && live && live !== recorded) {
      throw new OperationError(
        `The activation of ${live} did not finish: active points at it, but the last recorded activation is of ${recorded ?? 'none'}.`,
        `Finish it with \`cutover activate ${live}\`${recorded ? `, or go back with \`cutover rollback --to ${recorded}\`` : ''}.`,
      );
    }
    const target = to ?? rollbackTarget(events, live, records, (id) => releaseOnDisk(ctx, id));
    if (!target) {
      throw new OperationError('There is no earlier good release to roll back to.', '`cutover status` shows the releases and their states.');
    }
    if (target === live) throw new OperationError(`Release ${target} is already live.`);
    ctx.log.info(`Rolling back from ${live ?? 'nothing'} to ${target}.`);
    // Pages the newer releases served ask for their assets: the older release serves them too.
    await shareAssetsForCutover(ctx, target);
    await finishBeforeStopping(`the rollback to ${target}`, async () => {
      await activateRelease(ctx, { id: target, via: 'rollback' });
      if (live) await record(ctx, { event: 'marked-bad', release: live, commit: records.get(live)?.commit, reason: `rolled back to ${target} by ${ctx.by}` });
    });
    if (live) ctx.log.info(`Release ${live} is marked bad and kept for inspection.`);
    const { runHooks } = await import('./lib/assemble/hooks.ts');
    await runHooks(ctx, 'after_rollback', {
      release: target,
      commit: records.get(target)?.commit ?? '',
      previous: live,
      previousCommit: live ? records.get(live)?.commit : undefined,
      via: 'rollback',
      outcome: 'rolled-back',
    });
  }, { frozen: 'rollback' });
});
