// Builds one release: export the commit, link the shared paths, install, build, migrate, seal.
import fs from 'node:fs';
import path from 'node:path';
import { OperationError, StoppedError } from '../run/errors.ts';
import { exportTree } from './git.ts';
import { processStartTicks } from '../state/procfs.ts';
import { formatDuration } from '../run/log.ts';
import type { ReleaseRecord, ReleaseSource } from '../state/history.ts';
import { record, releaseOnDisk, type Context } from '../state/context.ts';
import { carryBuildCaches, depsKey, depsSnapshotFor, depsSpecFor, restoreDeps, shareIdenticalFiles, snapshotDeps } from './reuse.ts';
import { carryAssets, recordBuiltAssets } from './assets.ts';
import { appEnvironment } from './appenv.ts';
import { liveRelease } from '../state/switch.ts';
import { runHooks } from './hooks.ts';
import type { ReleasePlan } from './plan.ts';

/** Refuses a path inside a release whose parent chain holds a symlink (the repo is untrusted). */
function assertNoSymlinkBetween(base: string, target: string): void {
  const rel = path.relative(base, target);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new OperationError(`${target} is outside ${base}.`);
  let cur = base;
  for (const part of path.dirname(rel).split(path.sep).filter((p) => p && p !== '.')) {
    cur = path.join(cur, part);
    const st = fs.lstatSync(cur, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) {
      throw new OperationError(
        `The repository has a symlink at ${path.relative(base, cur)}, where the shared path ${rel} must be linked.`,
        'Remove that symlink from the repository, or change `shared` in the manifest.',
      );
    }
  }
}

/** Makes a shared path exist under shared/ (a directory for a trailing slash, else an empty file). */
async function ensureSharedTarget(ctx: Context, rel: string): Promise<void> {
  const target = ctx.paths.sharedTarget(rel);
  if (fs.existsSync(target)) return;
  const secret = ctx.paths.envFile === target;
  await ctx.ops.mkdir(path.dirname(target), 0o755);
  if (rel.endsWith('/')) await ctx.ops.mkdir(target, 0o750);
  else await ctx.ops.writeFile(target, '', secret ? 0o600 : 0o640);
  await ctx.ops.chown(target, ctx.m.user);
}

/** Links every shared path into the release, replacing whatever the repository had there. */
export async function linkShared(ctx: Context, id: string): Promise<void> {
  const dir = ctx.paths.release(id);
  for (const rel of ctx.m.shared) {
    await ensureSharedTarget(ctx, rel);
    const link = ctx.paths.sharedLink(id, rel);
    if (!ctx.dryRun) {
      assertNoSymlinkBetween(dir, link);
      if (fs.lstatSync(link, { throwIfNoEntry: false })) {
        ctx.log.info(`    the repository has its own ${rel}: replaced by the shared one`);
        await ctx.ops.remove(link);
      }
    }
    await ctx.ops.mkdir(path.dirname(link));
    await ctx.ops.symlink(ctx.paths.sharedTarget(rel), link);
  }
}

/** Runs one of the manifest's commands in the release as the app's user, with its time limit. */
function runManifestCommand(ctx: Context, id: string, name: 'install' | 'build' | 'migrate', command: string): Promise<unknown> {
  const { m, paths } = ctx;
  const env = appEnvironment(m, { home: paths.cache, envFile: paths.envFile });
  return ctx.log.step(`${name}: ${command}`, () =>
    ctx.ops.run(['/bin/sh', '-c', command], {
      cwd: paths.release(id),
      env,
      user: m.user,
      display: command,
      limit: { seconds: m.timeouts[name], setting: `timeouts.${name}` },
    }),
  );
}

async function runMigrate(ctx: Context, id: string): Promise<void> {
  if (ctx.m.migrate) await runManifestCommand(ctx, id, 'migrate', ctx.m.migrate);
}

async function runSteps(ctx: Context, plan: ReleasePlan, opts: BuildOptions): Promise<void> {
  const { id } = plan;
  const { m, paths } = ctx;
  const run = (name: 'install' | 'build' | 'migrate', command: string) => runManifestCommand(ctx, id, name, command);
  if (m.install) {
    // Keyed on the lockfile as committed, before the install could rewrite it.
    const key = ctx.dryRun ? undefined : depsKey(paths.release(id), m.runtime, m.install);
    const snapshot = key && !opts.fresh ? depsSnapshotFor(ctx, key) : undefined;
    const spec = depsSpecFor(m.runtime);
    if (snapshot) {
      await ctx.log.step(`install: skipped, ${spec.lockfile} and the install command are unchanged: copying ${spec.dir} as the last install left it`, () =>
        restoreDeps(ctx, snapshot, id),
      );
    } else {
      await run('install', m.install);
      if (key) await ctx.log.step(`keep ${spec.dir} as installed, for the next release with this ${spec.lockfile}`, () => snapshotDeps(ctx, id, key));
    }
  }
  if (m.cache.length > 0 && m.build) {
    const donor = ctx.dryRun ? undefined : plan.cacheDonor;
    if (donor) {
      await ctx.log.step(`copy the build cache (${m.cache.join(', ')}) from ${donor}`, async () => {
        const carried = await carryBuildCaches(ctx, donor, id);
        if (carried.length < m.cache.length) ctx.log.info(`    ${donor} has no ${m.cache.filter((c) => !carried.includes(c.replace(/\/+$/, ''))).join(', ')} to copy`);
      });
    }
  }
  if (m.build) await run('build', m.build);
  if (!opts.noMigrate) await runMigrate(ctx, id);
}

/**
 * Old pages keep their assets: list what this build wrote (an archive's list, made where it was built,
 * is kept), then link in what the recently live releases built.
 */
async function keepRecentAssets(ctx: Context, plan: ReleasePlan, listedByArchive: boolean): Promise<void> {
  if (!listedByArchive) await recordBuiltAssets(ctx, plan.id);
  await carryAssets(ctx, plan.id, ctx.dryRun ? [] : plan.assetDonors);
}

async function prepareCache(ctx: Context): Promise<void> {
  if (fs.existsSync(ctx.paths.cache)) return;
  await ctx.ops.mkdir(ctx.paths.cache, 0o750);
  await ctx.ops.chown(ctx.paths.cache, ctx.m.user);
}

/** Seals a built release: owned by root and read-only to everyone else, so the app cannot change it. */
async function seal(ctx: Context, id: string): Promise<void> {
  const dir = ctx.paths.release(id);
  if (process.getuid?.() !== 0) return;
  await ctx.ops.run(['chown', '-R', '--no-dereference', 'root:root', dir], { quiet: true });
  await ctx.ops.chmod(dir, 'go-w', { recursive: true });
}

/**
 * Hands the manifest's `writable` directories of a sealed release to the app's user, and nothing else:
 * each is created if the build did not make it, and refused if it or a directory above it is a symlink or
 * not a directory (the repo and the build are untrusted; after the seal they cannot change it any more).
 */
async function openWritable(ctx: Context, id: string): Promise<void> {
  const dir = ctx.paths.release(id);
  for (const rel of ctx.m.writable.map((w) => w.replace(/\/+$/, ''))) {
    const target = path.join(dir, rel);
    let cur = dir;
    for (const part of rel.split('/')) {
      cur = path.join(cur, part);
      const st = fs.lstatSync(cur, { throwIfNoEntry: false });
      if (st && !st.isDirectory()) {
        throw new OperationError(
          `The release has ${st.isSymbolicLink() ? 'a symlink' : 'a file'} at ${path.relative(dir, cur)}, where the writable directory ${rel} must be.`,
          'Remove it from the repository (or stop the build from making it), or change `writable` in the manifest.',
        );
      }
      if (!st) break;
    }
    await ctx.ops.mkdir(target);
    await ctx.ops.chown(target, ctx.m.user, { recursive: true });
  }
}

/** Shares the sealed release's identical files with the live (or newest ready) sealed release. */
async function shareWithNeighbour(ctx: Context, { id, neighbour }: ReleasePlan): Promise<void> {
  if (process.getuid?.() !== 0 || ctx.dryRun || !neighbour) return;
  const saved = shareIdenticalFiles(ctx.paths.release(id), ctx.paths.release(neighbour), ctx.m.writable);
  ctx.log.info(`    ${(saved / (1 << 20)).toFixed(1)} MB of identical files shared with ${neighbour} (hard links between sealed releases)`);
}

export interface BuildOptions {
  /** Install from scratch even when a ready release has the same lockfile (--rebuild). */
  fresh?: boolean;
  /** Leave migrate to the hosts (cutover build: the build machine does not touch the app's data). */
  noMigrate?: boolean;
}

/**
 * Builds the plan's release of its commit under its new id. Its history says building until it ends; on
 * any failure the release is recorded as failed and its directory removed. The live release is untouched.
 */
export async function buildRelease(ctx: Context, plan: ReleasePlan, opts: BuildOptions = {}): Promise<void> {
  const { paths, ops } = ctx;
  const dir = paths.release(plan.id);
  await assemble(ctx, plan, {
    title: `export ${plan.commit.slice(0, 12)} into ${dir}`,
    fill: async () => {
      await ops.mkdir(paths.releases);
      await ops.mkdir(dir);
      await exportTree(ops, paths.repo, plan.commit, dir);
    },
    steps: () => runSteps(ctx, plan, opts),
  });
}

/**
 * Makes the plan's release from an archive that receiveArchive checked and unpacked (the tree in its staging
 * directory, inside releases/): the tree moved into place by one rename, then what a release does on each host
 * (shared paths, migrate, the assets of recent releases, the seal, after_build), under the same history
 * discipline as a build. Without migrate nothing runs as the app's user before the seal, so the tree is not
 * handed to that user first, and the identical files were shared while unpacking (`got.sharedWith`).
 */
export async function unpackRelease(ctx: Context, plan: ReleasePlan, got: { tree?: string; sharedWith?: string }, source: ReleaseSource): Promise<void> {
  const dir = ctx.paths.release(plan.id);
  await assemble(ctx, plan, {
    title: `unpack the archive into ${dir}`,
    fill: async () => {
      await ctx.ops.mkdir(ctx.paths.releases);
      await ctx.ops.note(`move the unpacked tree ${got.tree ?? '(unpacked when not a dry run)'} to ${dir}`, () => {
        if (!got.tree) throw new OperationError(`The archive's tree was not unpacked: ${dir} cannot be made from it.`, 'Release the archive again.');
        fs.renameSync(got.tree, dir);
      });
    },
    steps: () => runMigrate(ctx, plan.id),
    source,
    listedByArchive: fs.existsSync(ctx.paths.builtAssetsFile(plan.id)),
    userRunsBeforeSeal: Boolean(ctx.m.migrate),
    sharedWith: got.sharedWith,
  });
}

/** How a release's tree gets into its directory, and which of the manifest's commands then run. */
interface Filling {
  title: string;
  fill: () => Promise<void>;
  steps: () => Promise<void>;
  source?: ReleaseSource;
  /** The archive already lists the asset files its build wrote. */
  listedByArchive?: boolean;
  /** Whether a command runs in the release as the app's user before the seal (install, build, migrate): then the tree is the user's until then. Default yes. */
  userRunsBeforeSeal?: boolean;
  /** The release the tree already shares identical files with (hard-linked while unpacking): no sharing walk at the seal. */
  sharedWith?: string;
}

async function assemble(ctx: Context, plan: ReleasePlan, filling: Filling): Promise<void> {
  const { paths, ops, log } = ctx;
  const { commit, ref, id } = plan;
  const dir = paths.release(id);
  const t0 = performance.now();
  const source = filling.source ?? { kind: 'git' as const };
  await record(ctx, { event: 'build-started', release: id, commit, ref, pid: process.pid, started: processStartTicks(process.pid), source });
  try {
    await log.step(filling.title, async () => {
      await filling.fill();
      await ops.writeFile(paths.revisionFile(id), commit + '\n');
    });
    await log.step('link shared paths', async () => {
      await linkShared(ctx, id);
      await prepareCache(ctx);
      // Handed to the app's user for the commands that run as it; a tree no command runs in stays root's (and a
      // tree that hard-links a sealed release's files must: a chown would change that release's files too).
      if (filling.userRunsBeforeSeal !== false) await ops.chown(dir, ctx.m.user, { recursive: true });
    });
    await filling.steps();
    if (ctx.m.assets.length > 0) {
      await log.step(`keep the assets of recent releases (${ctx.m.assets.join(', ')})`, () => keepRecentAssets(ctx, plan, Boolean(filling.listedByArchive)));
    }
    await log.step('seal the release read-only', async () => {
      await seal(ctx, id);
      if (filling.sharedWith) log.info(`    identical files were shared with ${filling.sharedWith} while unpacking (hard links between sealed releases)`);
      else await shareWithNeighbour(ctx, plan);
      if (ctx.m.writable.length > 0) {
        await openWritable(ctx, id);
        log.info(`    writable by ${ctx.m.user} while it runs: ${ctx.m.writable.join(', ')}`);
      }
    });
  } catch (e) {
    if (e instanceof StoppedError) {
      // Told to stop (SIGTERM, SIGINT, SIGHUP): the step's processes are already gone. Interrupted, not failed.
      await ops.remove(dir);
      await record(ctx, { event: 'build-interrupted', release: id, commit, duration_ms: Math.round(performance.now() - t0), reason: `stopped by ${e.signal}` });
      throw new StoppedError(
        `The build of ${id} was stopped: ${e.message}`,
        e.signal,
        'The live release and the service were not touched; the stopped release was removed. Release again to build it.',
      );
    }
    const full = ctx.dryRun ? '' : diskFullNote(paths.root);
    const reason = (e as Error).message.split('\n')[0] + (full ? ' (the disk is full)' : '');
    // Removed first: on a full disk the history line may need the space the partial release holds.
    // A crash in between leaves a build whose process is gone: interrupted, and cleaned up next time.
    await ops.remove(dir);
    await record(ctx, { event: 'build-failed', release: id, commit, duration_ms: Math.round(performance.now() - t0), reason });
    throw new OperationError(
      `The build of ${id} failed: ${(e as Error).message}${full}`,
      'The live release and the service were not touched; the failed release was removed. Fix the app and release again.',
    );
  }
  const ms = Math.round(performance.now() - t0);
  await record(ctx, { event: 'build-finished', release: id, commit, duration_ms: ms });
  log.info(`Release ${id} is ready (built in ${formatDuration(ms)}).`);
  const live = liveRelease(paths);
  if (ctx.m.assets.length > 0 && live && live !== id) {
    // Now, not only at the cut-over: in a fleet every host builds first, and a page that a host already
    // switched serves may ask a host still on the live release for the new assets.
    await log.step(`lend its assets to the live release ${live}`, () => carryAssets(ctx, live, [id]));
  }
  await runHooks(ctx, 'after_build', { release: id, commit, previous: live, previousCommit: live === plan.live ? plan.liveCommit : undefined, via: 'release', outcome: 'built' });
}

/**
 * A sentence for a failed build when the filesystem holding dir has (almost) no space left for the
 * app's user: the failing tool's own words ("No space left on device") are easy to miss in its output.
 */
export function diskFullNote(dir: string): string {
  try {
    const st = fs.statfsSync(dir);
    const free = st.bavail * st.bsize;
    if (free >= 16 << 20) return '';
    const mb = (n: number) => `${(n / (1 << 20)).toFixed(1)} MB`;
    return `\nThe filesystem holding ${dir} is full (${mb(free)} free of ${mb(st.blocks * st.bsize)}): free some space (\`cutover prune\` deletes old releases) and release again.`;
  } catch {
    return '';
  }
}

/** Under the lock: a build whose process is gone is recorded as interrupted and its directory removed. */
export async function cleanInterrupted(ctx: Context, records: Map<string, ReleaseRecord>): Promise<void> {
  for (const r of records.values()) {
    if (r.state !== 'interrupted') continue;
    const onDisk = releaseOnDisk(ctx, r.id);
    if (r.interruptionRecorded && !onDisk) continue;
    ctx.log.info(`Cleaning up ${r.id}: its build was interrupted.`);
    if (!r.interruptionRecorded) await record(ctx, { event: 'build-interrupted', release: r.id, commit: r.commit, reason: r.reason });
    if (onDisk) await ctx.ops.remove(ctx.paths.release(r.id));
  }
}
