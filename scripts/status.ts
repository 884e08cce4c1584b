// status: the live release, the rollback target, and each release with its state, commit, age and size.
import { runCommand } from './lib/cli.ts';
import { createContext } from './lib/context.ts';
import { formatStatus, gatherStatus } from './lib/status.ts';

const spec = {
  name: 'status',
  summary: 'Show the live release, the rollback target, and every release with its state, commit, age and size.',
  options: {
    json: { type: 'boolean' as const, help: 'print the same as JSON, for scripts' },
  },
  details: `Example: ssh root@host 'cd /opt/cutover && npx tsx scripts/status.ts --json'`,
};

await runCommand(spec, async (args) => {
  const ctx = await createContext(args.manifestFile);
  const report = await gatherStatus(ctx);
  process.stdout.write(args.values.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
});
