// build <ref> --out FILE: build a release exactly as `release` does, without making it live, and write it as one verified archive that `release --archive` takes on any host.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { runCommand } from './lib/run/cli.ts';
import { UsageError } from './lib/run/errors.ts';

const spec = {
  name: 'build',
  summary: 'Build <ref> as a release would (export, install, build, after_build hooks; migrate is left to the hosts) without making it live, and write it as one archive for `cutover release --archive` on every host.',
  positionals: '<ref>',
  arity: [1, 1] as [number, number],
  options: {
    out: { type: 'string' as const, arg: 'FILE', help: 'where to write the archive: gzip, or zstd when FILE ends in .tar.zst (less CPU on the hosts; they need the zstd program); FILE.sha256 is written beside it' },
    rebuild: { type: 'boolean' as const, help: 'build afresh even if a ready release of this commit exists here' },
    json: { type: 'boolean' as const, help: 'print one JSON line: archive, sha256, app, release, commit, treeDigest, runtime, arch, builtBy' },
  },
  details: `It builds at the path the release will have on the hosts (<root>/releases/<id>, the id from the commit), so
paths a build records (a Python venv's scripts and pyvenv.cfg) are right everywhere: run it on a machine
provisioned with the same manifest (the app's user and root must exist; the app need not run there), with
the hosts' OS release and runtime version. A release of this commit already built here is archived as it is.
Shared paths (each host links its own) and anything of this machine's own stay out of the archive.

Example (in CI, or on one host of the fleet):
  cutover build v1.4.2 --out /tmp/shop-v1.4.2.tar.gz
  ssh-keygen -Y sign -f ~/.ssh/release_key -n cutover-archive /tmp/shop-v1.4.2.tar.gz   # when hosts require signatures
  scp /tmp/shop-v1.4.2.tar.gz* root@host:/tmp/ && ssh root@host 'cutover release --archive /tmp/shop-v1.4.2.tar.gz'`,
};

await runCommand(spec, async (args) => {
  const { createContext, ensureLayout, record } = await import('./lib/state/context.ts');
  const { withLock } = await import('./lib/golive/locked.ts');
  const { assertRefSyntax } = await import('./lib/assemble/git.ts');
  const { buildRelease, cleanInterrupted } = await import('./lib/assemble/build.ts');
  const { readReleaseState } = await import('./lib/assemble/plan.ts');
  const { planFromRef } = await import('./lib/assemble/fetch.ts');
  const { remoteAccessFor } = await import('./lib/assemble/deploykey.ts');
  const { packBuiltRelease } = await import('./lib/assemble/pack.ts');
  const outArg = args.values.out as string | undefined;
  if (!outArg) throw new UsageError('Say where to write the archive: --out FILE.', 'Example: cutover build v1.4.2 --out /tmp/shop.tar.gz');
  const out = path.resolve(outArg);
  const ref = assertRefSyntax(args.positionals[0]);
  if (process.getuid?.() !== 0) {
    throw new UsageError('cutover build runs as root: it builds as the app\'s user at the release\'s own path and seals the tree as a release is sealed.', 'Run it with sudo, on a machine provisioned with the same manifest.');
  }
  const ctx = await createContext(args.manifestFile, { out: args.values.json ? process.stderr : undefined });
  if (out === ctx.paths.root || out.startsWith(ctx.paths.root + path.sep)) {
    throw new UsageError(`--out ${out} is inside the app's root ${ctx.paths.root}.`, 'Write the archive elsewhere, e.g. /tmp or a CI workspace.');
  }
  if (spawnSync('id', ['-u', ctx.m.user]).status !== 0) {
    throw new UsageError(
      `The app's user ${ctx.m.user} does not exist on this machine: cutover build runs the install and the build as that user, as a host does.`,
      `Run \`cutover provision --manifest ${args.manifestFile}\` here first (it makes the user and the app's directories), as on a host.`,
    );
  }
  const access = remoteAccessFor(ctx.m, ctx.paths);
  await ensureLayout(ctx);
  await withLock(ctx, args.operation, async () => {
    const state = readReleaseState(ctx);
    await cleanInterrupted(ctx, state.records);
    const plan = await planFromRef(ctx, state, ref, access, { rebuild: Boolean(args.values.rebuild) });
    if (plan.reuse) ctx.log.info(`Release ${plan.id} of this commit is already built and ready here: archiving it as it is (use --rebuild to build afresh).`);
    else await buildRelease(ctx, plan, { fresh: Boolean(args.values.rebuild), noMigrate: true });
    // The record says when the release was built (its build-finished time, read back after a fresh build), not when it
    // was packed: archiving one release again gives the same bytes.
    const builtAt = (plan.reuse ? state : readReleaseState(ctx)).records.get(plan.id)?.builtAt;
    const packed = await ctx.log.step(`write ${out}`, () => packBuiltRelease(ctx, plan, out, { builtAt }));
    const r = packed.record;
    // This machine's release is the archive's tree: recorded, so `release --archive` of it here (a fleet's build host) reuses it.
    await record(ctx, { event: 'archived', release: plan.id, commit: r.commit, source: { kind: 'git', sha256: packed.sha256, treeDigest: r.treeDigest, builtBy: r.builtBy, builtAt: r.builtAt } });
    if (args.values.json) {
      console.log(JSON.stringify({ archive: out, sha256: packed.sha256, app: r.app, release: r.release, commit: r.commit, ref: r.ref, treeDigest: r.treeDigest, runtime: r.runtime, runtimeVersion: r.runtimeVersion, arch: r.arch, os: r.os, builtBy: r.builtBy, builtAt: r.builtAt }));
    } else {
      ctx.log.info(`${out}: release ${r.release} of ${r.commit} (tree ${r.treeDigest.slice(0, 16)}…), ${r.runtime} ${r.runtimeVersion}, ${r.arch}, ${r.os}.`);
      console.log(`${packed.sha256}  ${out}`);
      ctx.log.info(`Written with ${out}.sha256 beside it. On each host: cutover release --archive ${out}`);
    }
  });
});
