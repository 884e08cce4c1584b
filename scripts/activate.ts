// activate <release>: make an already built release live, gated by its health check.
import { dryRunOption, runCommand } from './lib/run/cli.ts';

const spec = {
  name: 'activate',
  summary: 'Make a built release live: preflight it, switch the active symlink, hand the socket over to it, and keep it only if it passes the health gate.',
  positionals: '<release>',
  arity: [1, 1] as [number, number],
  options: {
    restart: { type: 'boolean' as const, help: 'start the release afresh even when it is already live (e.g. after changing the env file): a new process takes over before the old one stops' },
    'dry-run': dryRunOption,
  },
  details: `With a socket (socket: true or preload) the cut-over is a handover: the new release starts beside the
old one on the same socket, and the old one stops (finishing its requests) only once the new one serves.
With socket: false the old process stops first, then the new one starts (a short outage).
Example: ssh root@host 'cutover activate 3f2a9c1b0d4e'`,
};

await runCommand(spec, async (args) => {
  // Imported here, not at the top: --help and a bad flag never load the kit's heavy modules (zx, ajv, yaml).
  const { createContext } = await import('./lib/state/context.ts');
  const { withLock } = await import('./lib/golive/locked.ts');
  const { shareAssetsForCutover } = await import('./lib/assemble/assets.ts');
  const { activateRelease } = await import('./lib/golive/activation.ts');
  const { finishBeforeStopping } = await import('./lib/run/stop.ts');
  const { assertReleaseId } = await import('./lib/manifest/paths.ts');
  const id = assertReleaseId(args.positionals[0]);
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']) });
  const restart = Boolean(args.values.restart);
  await withLock(ctx, args.operation, async () => {
    // An older release made live again serves the assets of the releases live since (see rollback).
    await shareAssetsForCutover(ctx, id);
    await finishBeforeStopping(`the activation of ${id}`, () => activateRelease(ctx, { id, via: 'activate', restart }));
  }, { frozen: 'activate' });
});
