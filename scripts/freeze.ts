// freeze --reason "…": stop release, activate and prune (rollback too with --hard) for this app until unfreeze, with a reason every refused operator sees.
import { dryRunOption, runCommand } from './lib/run/cli.ts';
import { UsageError } from './lib/run/errors.ts';

const spec = {
  name: 'freeze',
  summary: 'Freeze deploys of this app: release, activate and the scheduled prune refuse (exit 3) with the reason, who froze and when, until `cutover unfreeze`. A rollback is still allowed unless --hard.',
  options: {
    reason: { type: 'string' as const, arg: 'TEXT', help: 'why (shown to everyone refused), e.g. "migration in progress until 18:00"' },
    hard: { type: 'boolean' as const, help: 'refuse rollback too' },
    'dry-run': dryRunOption,
  },
  details: `The freeze is a file, <root>/freeze.json, not a lock: it survives reboots and killed runs, and only
\`cutover unfreeze\` (or deleting that file) lifts it. \`cutover status\` shows it.
Example: ssh root@host 'cutover freeze --reason "Black Friday: no deploys until Monday"'`,
};

await runCommand(spec, async (args) => {
  const { createContext, ensureLayout } = await import('./lib/state/context.ts');
  const { describeFreeze, readFreeze } = await import('./lib/state/freeze.ts');
  const reason = String(args.values.reason ?? '').trim();
  if (!reason) throw new UsageError('Say why: --reason "…".', 'Example: cutover freeze --reason "migration running until 18:00" (everyone refused reads it).');
  if (/[\u0000-\u001f\u007f]/.test(reason) || reason.length > 500) throw new UsageError('--reason must be one line of at most 500 characters.');
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']) });
  await ensureLayout(ctx);
  const freeze = { reason, by: ctx.by, at: new Date().toISOString(), hard: Boolean(args.values.hard) };
  const before = readFreeze(ctx.paths);
  await ctx.ops.writeFile(ctx.paths.freeze, JSON.stringify(freeze) + '\n', 0o644);
  ctx.log.info(`${before ? `Replaced the freeze (${describeFreeze(before)}). ` : ''}${ctx.m.app} is now ${describeFreeze(freeze)}.`);
  ctx.log.info(freeze.hard ? 'release, activate, rollback and prune refuse until `cutover unfreeze`.' : 'release, activate and prune refuse until `cutover unfreeze`; rollback still works.');
});
