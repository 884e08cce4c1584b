// Warm releases: dependencies as they were right after the install, build caches of the previous release, identical files shared between sealed releases.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../state/context.ts';
import type { ReleaseRecord } from '../state/history.ts';

/** What a runtime installs, and the lockfile that decides it. */
export interface DepsSpec {
  lockfile: string;
  dir: string;
}

export function depsSpecFor(runtime: 'node' | 'python'): DepsSpec {
  return runtime === 'node' ? { lockfile: 'package-lock.json', dir: 'node_modules' } : { lockfile: 'requirements.txt', dir: '.venv' };
}

function fileHash(file: string): string | undefined {
  try {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

/**
 * What decides whether an install can be skipped: the runtime, the install command and the lockfile
 * as committed (read right after the export, before the install could rewrite it). Undefined without
 * a lockfile: then there is nothing to compare, and the install always runs.
 */
export function depsKey(releaseDir: string, runtime: 'node' | 'python', install: string): string | undefined {
  const spec = depsSpecFor(runtime);
  const lock = fileHash(path.join(releaseDir, spec.lockfile));
  if (!lock) return undefined;
  return crypto.createHash('sha256').update(`${runtime}\0${install}\0${lock}`).digest('hex').slice(0, 32);
}

/** The snapshot of a deps key, when a complete one exists. */
export function depsSnapshotFor(ctx: Context, key: string): string | undefined {
  const dir = path.join(ctx.paths.depsSnapshots, key);
  return fs.existsSync(path.join(dir, 'complete')) ? dir : undefined;
}

/**
 * Right after an install, before the build or a prune can change them: copies the release's
 * dependencies to deps/<key> (root's, mode 0700), replacing older snapshots. A copy, so nothing a
 * build does to the release's own node_modules reaches it.
 */
export async function snapshotDeps(ctx: Context, id: string, key: string): Promise<void> {
  const spec = depsSpecFor(ctx.m.runtime);
  const from = path.join(ctx.paths.release(id), spec.dir);
  if (!ctx.dryRun && !fs.lstatSync(from, { throwIfNoEntry: false })?.isDirectory()) return;
  const base = ctx.paths.depsSnapshots;
  if (!fs.existsSync(base)) await ctx.ops.mkdir(base, 0o700);
  const tmp = path.join(base, `${key}.tmp`);
  await ctx.ops.remove(tmp);
  await ctx.ops.mkdir(tmp, 0o700);
  await ctx.ops.run(['cp', '-a', '--reflink=auto', '--', from, path.join(tmp, spec.dir)], { quiet: true });
  await ctx.ops.writeFile(path.join(tmp, 'built-in'), ctx.paths.release(id) + '\n', 0o600);
  await ctx.ops.writeFile(path.join(tmp, 'complete'), '', 0o600);
  for (const old of fs.existsSync(base) ? fs.readdirSync(base) : []) {
    if (old !== `${key}.tmp`) await ctx.ops.remove(path.join(base, old));
  }
  await ctx.ops.rename(tmp, path.join(base, key));
}

/** Copies a snapshot's dependencies into the new release: a copy the new release owns, never a shared directory. */
export async function restoreDeps(ctx: Context, snapshot: string, id: string): Promise<void> {
  const spec = depsSpecFor(ctx.m.runtime);
  const to = path.join(ctx.paths.release(id), spec.dir);
  await ctx.ops.remove(to);
  await ctx.ops.run(['cp', '-a', '--reflink=auto', '--', path.join(snapshot, spec.dir), to], { quiet: true });
  if (ctx.m.runtime === 'python' && !ctx.dryRun) {
    const builtIn = fs.readFileSync(path.join(snapshot, 'built-in'), 'utf8').trim();
    rewriteVenvPaths(path.join(to, 'bin'), builtIn, ctx.paths.release(id));
  }
  await ctx.ops.chown(to, ctx.m.user, { recursive: true });
}

/** The release a build cache comes from: the newest ready release on disk other than the new one. */
export function cacheDonor(ctx: Context, id: string, records: Map<string, ReleaseRecord>): string | undefined {
  return [...records.values()]
    .filter((r) => r.state === 'ready' && r.id !== id && fs.lstatSync(ctx.paths.release(r.id), { throwIfNoEntry: false })?.isDirectory())
    .sort((a, b) => b.order - a.order)[0]?.id;
}

/** Whether every part of rel inside base is a real directory (no symlink anywhere on the way). */
export function plainDir(base: string, rel: string): boolean {
  let cur = base;
  for (const part of rel.split('/')) {
    cur = path.join(cur, part);
    if (!fs.lstatSync(cur, { throwIfNoEntry: false })?.isDirectory()) return false;
  }
  return true;
}

/** The writable dirs inside the cache dir `rel` (a writable dir is never a cache dir nor holds one: the manifest refuses that). */
export function writableInside(writable: string[], rel: string): string[] {
  return writable.map((w) => w.replace(/\/+$/, '')).filter((w) => w.startsWith(rel + '/'));
}

/**
 * Before the build: copies each declared build cache (e.g. .next/cache) from the donor release into
 * the new one, owned by the app's user. Copied, never shared: a cache the build breaks stays in its
 * own release. A cache the repository already has is left as it is. The writable dirs inside a cache
 * (what the donor's running app wrote) are left out.
 */
export async function carryBuildCaches(ctx: Context, donor: string, id: string): Promise<string[]> {
  const carried: string[] = [];
  for (const rel of ctx.m.cache.map((c) => c.replace(/\/+$/, ''))) {
    const from = path.join(ctx.paths.release(donor), rel);
    const to = path.join(ctx.paths.release(id), rel);
    if (!ctx.dryRun && !plainDir(ctx.paths.release(donor), rel)) continue;
    if (fs.lstatSync(to, { throwIfNoEntry: false })) continue;
    const parent = path.dirname(rel);
    if (parent !== '.' && !ctx.dryRun && !plainDir(ctx.paths.release(id), parent)) {
      if (fs.lstatSync(path.join(ctx.paths.release(id), parent), { throwIfNoEntry: false })) continue; // a symlink or a file in the way
      await ctx.ops.mkdir(path.join(ctx.paths.release(id), parent));
      await ctx.ops.chown(path.join(ctx.paths.release(id), parent.split('/')[0]), ctx.m.user, { recursive: true });
    }
    await ctx.ops.run(['cp', '-a', '--reflink=auto', '--', from, to], { quiet: true });
    // What the donor's running app wrote (its writable dirs) stays with the donor: never fed to another build.
    for (const w of writableInside(ctx.m.writable, rel)) {
      if (ctx.dryRun || plainDir(ctx.paths.release(id), path.dirname(w))) await ctx.ops.remove(path.join(ctx.paths.release(id), w));
    }
    await ctx.ops.chown(to, ctx.m.user, { recursive: true });
    carried.push(rel);
  }
  return carried;
}

/** Text files in a venv's bin/ name the venv by its absolute path (shebangs, activate): point them at the new release. */
export function rewriteVenvPaths(venvBin: string, from: string, to: string): number {
  let n = 0;
  for (const name of fs.existsSync(venvBin) ? fs.readdirSync(venvBin) : []) {
    const file = path.join(venvBin, name);
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.size > 1 << 20) continue;
    const buf = fs.readFileSync(file);
    if (buf.includes(0)) continue; // binary
    const text = buf.toString('utf8');
    if (!text.includes(from)) continue;
    fs.writeFileSync(file, text.split(from).join(to));
    n++;
  }
  return n;
}

function sameContent(a: string, b: string, size: number): boolean {
  if (size <= 1 << 16) return fs.readFileSync(a).equals(fs.readFileSync(b));
  return fileHash(a) === fileHash(b);
}

/**
 * Hard-links each file of a freshly sealed release to the identical file (same relative path, size,
 * mode, owner and content) of another sealed release. Safe only because nothing writes to a sealed
 * release: the app runs with it read-only, and it is owned by root. The app's writable dirs (`skip`)
 * are left out. In the other release only real directories are entered: a release built from git may
 * hold a link to a directory anywhere (to /etc, say), and a host file must never become one inode with
 * a release's file (a later chown of the release would change it). Returns the bytes saved.
 */
export function shareIdenticalFiles(release: string, other: string, skip: string[] = []): number {
  let saved = 0;
  const skipped = new Set(skip.map((s) => path.normalize(s.replace(/\/+$/, ''))));
  const walk = (rel: string) => {
    const a = path.join(release, rel);
    for (const entry of fs.readdirSync(a, { withFileTypes: true })) {
      const relChild = path.join(rel, entry.name);
      if (entry.isDirectory() && skipped.has(relChild)) continue; // the app's writable dirs: never one inode in two releases
      if (entry.isDirectory()) {
        // Entered in the other release only when it is a real directory there too (lstat: a link is not).
        if (fs.lstatSync(path.join(other, relChild), { throwIfNoEntry: false })?.isDirectory()) walk(relChild);
        continue;
      }
      if (!entry.isFile()) continue;
      const fa = path.join(release, relChild);
      const fb = path.join(other, relChild);
      const sa = fs.lstatSync(fa);
      const sb = fs.lstatSync(fb, { throwIfNoEntry: false });
      if (!sb?.isFile() || sa.ino === sb.ino || sa.size !== sb.size || sa.size === 0) continue;
      if (sa.mode !== sb.mode || sa.uid !== sb.uid || sa.gid !== sb.gid || sa.dev !== sb.dev) continue;
      if (!sameContent(fa, fb, sa.size)) continue;
      const tmp = `${fa}.cutover-link`;
      fs.linkSync(fb, tmp);
      fs.renameSync(tmp, fa);
      saved += sa.blocks * 512;
    }
  };
  walk('.');
  return saved;
}
