// provision: make this host ready for the manifest's app; idempotent (a second run changes nothing and says so).
import { runCommand } from './lib/run/cli.ts';
import { OperationError } from './lib/run/errors.ts';
import type { Changes } from './lib/setup/provision.ts';

const spec = {
  name: 'provision',
  summary: "Make this host ready for the manifest's app: runtime packages, the system user, the root layout, shared paths, the systemd units, the cron entry that prunes, (with deploy_key) the pinned host key of the repository's server, and (with proxy) the app's site for Caddy or nginx.",
  options: {
    'dry-run': { type: 'boolean' as const, help: 'print each change it would make (files as a diff), and change nothing' },
  },
  details: `Run it as root, again whenever the manifest changes. With deploy_key in the manifest, it contacts the
repository's server once when its host key is not pinned yet, records it (known_hosts) and prints its fingerprint;
it never replaces a pinned key (remove the old line with ssh-keygen -R to re-pin on purpose). The first time,
scripts/bootstrap.sh installs Node and runs it (it also puts the cutover command on the PATH). Examples:
  ssh root@host 'sh /opt/cutover/scripts/bootstrap.sh --manifest /etc/cutover/shop.yaml'
  ssh root@host 'cutover provision --manifest /etc/cutover/shop.yaml --dry-run'`,
};

await runCommand(spec, async (args) => {
  // Imported here, not at the top: --help and a bad flag never load the kit's heavy modules (zx, ajv, yaml).
  const { createContext } = await import('./lib/state/context.ts');
  const { withLock } = await import('./lib/golive/locked.ts');
  const { ensureCommandLink, ensureLayoutOwned, ensurePackages, ensureSharedPaths, ensureUnits, ensureUser } = await import('./lib/setup/provision.ts');
  const { checkDeployKeyFirst, ensureHostKeyPinned } = await import('./lib/setup/pin.ts');
  const { checkProxyFirst, ensureProxy, hasStaleSites } = await import('./lib/setup/proxy.ts');
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']) });
  if (process.getuid?.() !== 0 && !ctx.dryRun) {
    throw new OperationError('provision must run as root: it creates a system user, installs units and writes /etc/cron.d.', 'Run it with sudo, or see what it would do with --dry-run.');
  }
  checkDeployKeyFirst(ctx);
  checkProxyFirst(ctx);
  const changes: Changes = [];
  await ctx.log.step('runtime and tools', () => ensurePackages(ctx, changes));
  await ctx.log.step(`system user ${ctx.m.user}`, () => ensureUser(ctx, changes));
  await ctx.log.step(`layout under ${ctx.paths.root}`, () => ensureLayoutOwned(ctx, changes));
  await withLock(ctx, args.operation, async () => {
    await ctx.log.step('shared paths', () => ensureSharedPaths(ctx, changes));
    await ctx.log.step('systemd units and cron entry', () => ensureUnits(ctx, changes));
    if (ctx.m.deploy_key) await ctx.log.step(`the repository server's host key (deploy_key)`, () => ensureHostKeyPinned(ctx, changes));
  });
  await ctx.log.step('the cutover command on root\'s PATH', () => ensureCommandLink(ctx, changes));
  if (ctx.m.proxy) {
    await ctx.log.step(`the public entrance: the ${ctx.m.proxy.server} site for ${ctx.m.proxy.server_names.join(', ')}`, () => ensureProxy(ctx, changes));
  } else if (hasStaleSites(ctx)) {
    await ctx.log.step('the public entrance: none in the manifest any more', () => ensureProxy(ctx, changes));
  }
  if (changes.length === 0) {
    ctx.log.info(`Nothing to change: the host is already provisioned for ${ctx.m.app}.`);
  } else {
    ctx.log.info(`${ctx.dryRun ? 'Would make' : 'Made'} ${changes.length} change${changes.length === 1 ? '' : 's'}:`);
    for (const c of changes) ctx.log.info(`  - ${c}`);
  }
});
