// release <ref> | --archive FILE: fetch and build in a fresh directory (or unpack a verified archive built elsewhere), then activate and prune.
import { dryRunOption, runCommand } from './lib/run/cli.ts';
import { UsageError } from './lib/run/errors.ts';
import type { Context } from './lib/state/context.ts';
import type { ReleaseState } from './lib/assemble/plan.ts';
import type { Received } from './lib/assemble/receive.ts';

const spec = {
  name: 'release',
  summary: 'Fetch <ref> (a commit hash, tag or branch), build it in a fresh release directory, then make it live and prune; or, with --archive, release an archive built by `cutover build`.',
  positionals: '<ref>',
  arity: [0, 1] as [number, number],
  options: {
    archive: { type: 'string' as const, arg: 'FILE', help: 'release this archive (made by `cutover build`) instead of a git ref: verified, unpacked, then released as usual' },
    sha256: { type: 'string' as const, arg: 'HEX', help: "with --archive: the archive's sha256 (default: read from FILE.sha256)" },
    'no-activate': { type: 'boolean' as const, help: 'build (or reuse) the release but leave the live release as it is' },
    rebuild: { type: 'boolean' as const, help: 'build afresh even if a ready release of this commit exists' },
    json: { type: 'boolean' as const, help: 'with --archive: print one JSON line at the end (release, commit, sha256, activated)' },
    'dry-run': dryRunOption,
  },
  details: `Example, from your machine:
  ssh root@host 'cutover release v1.4.2'

Build once, release everywhere (docs/build-once.md):
  cutover build v1.4.2 --out shop.tar.gz                 # on a build machine: prints the sha256, writes shop.tar.gz.sha256
  scp shop.tar.gz shop.tar.gz.sha256 root@host:/tmp/
  ssh root@host 'cutover release --archive /tmp/shop.tar.gz'
The archive is refused (exit 2, nothing changed) when its sha256 differs, its signature is missing or bad
(archive.allowed_signers), it is another app's, its runtime, CPU or C library do not fit this host, or
any entry is unsafe (an absolute path, '..', a link out of the release, a device, setuid, world-writable).

A private repository: set deploy_key in the manifest (a root-owned 0600 key, e.g. /etc/cutover/<app>.key) and
run provision once, which pins the server's host key; every fetch uses that key and checks that pin strictly.
docs/security.md says how to make the key and how to re-pin a changed host key.`,
};

/** The archive's release under the lock: reused when this very archive is already here, else unpacked under the id it was built for. */
async function fromArchive(ctx: Context, state: ReleaseState, got: Received, file: string): Promise<{ id: string; summary: Record<string, unknown>; plannedCommit?: string }> {
  const { planRelease, logPlan } = await import('./lib/assemble/plan.ts');
  const { unpackRelease } = await import('./lib/assemble/build.ts');
  const { record, sha256 } = got;
  const id = record.release;
  const summary = { commit: record.commit, sha256, treeDigest: record.treeDigest };
  ctx.log.info(
    `${file}: ${record.app} ${id} (commit ${record.commit}, ${record.ref}), built on ${record.builtBy} at ${record.builtAt} ` +
      `with ${record.runtime} ${record.runtimeVersion}${got.signer ? `, signed by ${got.signer}` : ''}; sha256 ${sha256}.`,
  );
  const existing = state.records.get(id);
  if (existing?.state === 'ready' && existing.source?.sha256 === sha256) {
    ctx.log.info(`Release ${id} of this archive is already built and ready: reusing it.`);
    return { id, summary };
  }
  if (existing || state.taken(id)) {
    const what = !existing ? 'a directory of that name' : `${existing.state}, ${existing.source?.kind === 'archive' ? `from another archive, sha256 ${existing.source.sha256}` : 'built here from git'}`;
    throw new UsageError(
      `Release ${id} already exists on this host (${what}), and an archive unpacks only at the path it was built for.`,
      existing?.state === 'ready' ? `Make it live with \`cutover activate ${id}\`, or make another release live, prune it, and release the archive again.` : 'Prune it (`cutover prune`) and release the archive again.',
    );
  }
  const plan = planRelease(state, record.commit, record.ref, { id, assetsKeep: ctx.m.assets_keep });
  logPlan(ctx, plan);
  await unpackRelease(ctx, plan, got, { kind: 'archive', sha256, treeDigest: record.treeDigest, builtBy: record.builtBy, builtAt: record.builtAt });
  return { id, summary, plannedCommit: ctx.dryRun ? record.commit : undefined };
}

await runCommand(spec, async (args) => {
  // Imported here, not at the top: --help and a bad flag never load the kit's heavy modules (zx, ajv, yaml).
  const { createContext, ensureLayout } = await import('./lib/state/context.ts');
  const { withLock } = await import('./lib/golive/locked.ts');
  const { shareAssetsForCutover } = await import('./lib/assemble/assets.ts');
  const { assertRefSyntax } = await import('./lib/assemble/git.ts');
  const { buildRelease, cleanInterrupted } = await import('./lib/assemble/build.ts');
  const { readReleaseState } = await import('./lib/assemble/plan.ts');
  const { planFromRef } = await import('./lib/assemble/fetch.ts');
  const { remoteAccessFor } = await import('./lib/assemble/deploykey.ts');
  const { activateRelease } = await import('./lib/golive/activation.ts');
  const { finishBeforeStopping } = await import('./lib/run/stop.ts');
  const { applyPrune, prunePlanFor } = await import('./lib/state/prune.ts');
  const archive = args.values.archive as string | undefined;
  if (archive === undefined && args.positionals.length !== 1) throw new UsageError('Say what to release: a git ref, or --archive FILE.', 'Example: cutover release v1.4.2, or cutover release --archive shop.tar.gz (`cutover release --help` for the options).');
  if (archive !== undefined && args.positionals.length > 0) throw new UsageError('Give either a git ref or --archive FILE, not both.', 'An archive already names its commit: cutover release --archive shop.tar.gz');
  if (archive === undefined && args.values.sha256 !== undefined) throw new UsageError('--sha256 goes with --archive.', 'cutover release --archive FILE --sha256 HEX');
  const ref = archive === undefined ? assertRefSyntax(args.positionals[0]) : undefined;
  // With --json the steps go to stderr, so stdout holds only the JSON line.
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']), out: args.values.json ? process.stderr : undefined });
  if (ctx.dryRun) ctx.log.info(`Dry run: nothing will be changed.`);
  // A deploy key and the pinned host key are checked first: a bad one stops the release before anything changes.
  // An archive needs no repository, so neither.
  const access = ref !== undefined ? remoteAccessFor(ctx.m, ctx.paths) : undefined;
  await ensureLayout(ctx);
  // An archive is checked whole (and unpacked into its staging directory) before the lock is even taken: a refused one changes nothing at all.
  const got =
    archive === undefined
      ? undefined
      : await ctx.log.step(`verify and unpack ${archive}`, async () => (await import('./lib/assemble/receive.ts')).receiveArchive(ctx, archive, args.values.sha256 as string | undefined));
  try {
    await withLock(ctx, args.operation, async () => {
      // The state is read once: interrupted builds are cleared from it, then the plan is made from it.
      const state = readReleaseState(ctx);
      await cleanInterrupted(ctx, state.records);
      let id: string;
      let summary: Record<string, unknown> = {};
      // A dry run builds nothing: the activation's plan is told the commit the release would hold.
      let plannedCommit: string | undefined;
      if (ref !== undefined) {
        const plan = await planFromRef(ctx, state, ref, access!, { rebuild: Boolean(args.values.rebuild) });
        id = plan.id;
        if (plan.reuse) ctx.log.info(`Release ${id} of this commit is already built and ready: reusing it (use --rebuild to build afresh).`);
        else await buildRelease(ctx, plan, { fresh: Boolean(args.values.rebuild) });
        if (ctx.dryRun && !plan.reuse) plannedCommit = plan.commit;
      } else {
        ({ id, summary, plannedCommit } = await fromArchive(ctx, state, got!, archive!));
      }
      const done = (activated: boolean) => {
        if (args.values.json) console.log(JSON.stringify({ release: id, ...summary, activated }));
      };
      if (args.values['no-activate']) {
        ctx.log.info(`Not activating (--no-activate). Make it live with: cutover activate ${id}`);
        done(false);
        return;
      }
      await shareAssetsForCutover(ctx, id);
      await finishBeforeStopping(`the activation of ${id}`, () => activateRelease(ctx, { id, via: 'release', plannedCommit }));
      await ctx.log.step(`prune (keep ${ctx.m.keep})`, () => applyPrune(ctx, prunePlanFor(ctx, ctx.m.keep)));
      done(true);
    }, { frozen: 'release' });
  } finally {
    got?.dispose();
  }
});
