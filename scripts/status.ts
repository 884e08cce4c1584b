// status: the live release, the rollback target, and each release with its state, commit, age and size.
import { runCommand } from './lib/run/cli.ts';

const spec = {
  name: 'status',
  summary: 'Show the live release, the rollback target, and every release with its state, commit, age and size.',
  options: {
    json: { type: 'boolean' as const, help: 'print the same as JSON, for scripts' },
  },
  details: `Example: ssh root@host 'cutover status --json'`,
};

await runCommand(spec, async (args) => {
  // Imported here, not at the top: --help and a bad flag never load the kit's heavy modules (zx, ajv, yaml).
  const { createContext } = await import('./lib/state/context.ts');
  const { formatStatus, gatherStatus } = await import('./lib/report/status.ts');
  const ctx = await createContext(args.manifestFile);
  const report = await gatherStatus(ctx);
  process.stdout.write(args.values.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
});
