// Warm releases: reuse a ready release's installed dependencies when the lockfile is unchanged, and share identical files between sealed releases.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from './context.ts';
import type { ReleaseRecord } from './history.ts';

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
 * The newest ready release whose lockfile is byte-identical to the new release's and that has its
 * dependencies installed: its dependencies can be copied instead of installed again.
 */
export function findDepsDonor(ctx: Context, id: string, records: Map<string, ReleaseRecord>): string | undefined {
  const spec = depsSpecFor(ctx.m.runtime);
  const wanted = fileHash(path.join(ctx.paths.release(id), spec.lockfile));
  if (!wanted) return undefined;
  const candidates = [...records.values()].filter((r) => r.state === 'ready' && r.id !== id).sort((a, b) => b.order - a.order);
  for (const r of candidates) {
    const dir = ctx.paths.release(r.id);
    const deps = fs.lstatSync(path.join(dir, spec.dir), { throwIfNoEntry: false });
    if (deps?.isDirectory() && fileHash(path.join(dir, spec.lockfile)) === wanted) return r.id;
  }
  return undefined;
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

/** Copies the donor's dependencies into the new release: a copy the new release owns, never a shared directory. */
export async function copyDeps(ctx: Context, donor: string, id: string): Promise<void> {
  const spec = depsSpecFor(ctx.m.runtime);
  const from = path.join(ctx.paths.release(donor), spec.dir);
  const to = path.join(ctx.paths.release(id), spec.dir);
  await ctx.ops.remove(to);
  await ctx.ops.run(['cp', '-a', '--reflink=auto', '--', from, to], { quiet: true });
  if (ctx.m.runtime === 'python' && !ctx.dryRun) {
    rewriteVenvPaths(path.join(to, 'bin'), ctx.paths.release(donor), ctx.paths.release(id));
  }
}

function sameContent(a: string, b: string, size: number): boolean {
  if (size <= 1 << 16) return fs.readFileSync(a).equals(fs.readFileSync(b));
  return fileHash(a) === fileHash(b);
}

/**
 * Hard-links each file of a freshly sealed release to the identical file (same relative path, size,
 * mode, owner and content) of another sealed release. Safe only because nothing writes to a sealed
 * release: the app runs with it read-only, and it is owned by root. Returns the bytes saved.
 */
export function shareIdenticalFiles(release: string, other: string): number {
  let saved = 0;
  const walk = (rel: string) => {
    const a = path.join(release, rel);
    for (const entry of fs.readdirSync(a, { withFileTypes: true })) {
      const relChild = path.join(rel, entry.name);
      if (entry.isDirectory()) {
        walk(relChild);
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
