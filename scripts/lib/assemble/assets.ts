// Old pages keep their assets: a release carries, by hard link, the content-hashed files that recently live releases built.
import fs from 'node:fs';
import path from 'node:path';
import { history, releaseOnDisk, type Context } from '../state/context.ts';
import { activations, type HistoryEvent } from '../state/history.ts';
import { liveRelease } from '../state/switch.ts';
import { plainDir } from './reuse.ts';

/** What a release's own build wrote under each declared asset directory (relative paths, files only). */
export interface BuiltAssets {
  dirs: Record<string, string[]>;
}

/** The real directory at rel inside base, or undefined when it is missing or any part of the way is a symlink or not a directory. */
function realDirInside(base: string, rel: string): string | undefined {
  return plainDir(base, rel) ? path.join(base, rel.replace(/\/+$/, '')) : undefined;
}

/** Every regular file under dir, relative to it; symlinks and other kinds are skipped, never followed. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) out.push(child);
    }
  };
  walk('');
  return out.sort();
}

/** Lists the files the build wrote under each asset directory: what a later release may carry from this one. */
export function listBuiltAssets(releaseDir: string, assetDirs: string[]): BuiltAssets {
  const dirs: Record<string, string[]> = {};
  for (const rel of assetDirs) {
    const dir = realDirInside(releaseDir, rel);
    dirs[rel] = dir ? filesUnder(dir) : [];
  }
  return { dirs };
}

export function readBuiltAssets(file: string): BuiltAssets | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as BuiltAssets;
    return parsed && typeof parsed.dirs === 'object' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Records, inside the release and before it is sealed, which asset files its own build wrote. */
export async function recordBuiltAssets(ctx: Context, id: string): Promise<void> {
  if (ctx.m.assets.length === 0) return;
  const file = ctx.paths.builtAssetsFile(id);
  if (ctx.dryRun) {
    await ctx.ops.writeFile(file, '(the list of the asset files the build wrote)\n');
    return;
  }
  const built = listBuiltAssets(ctx.paths.release(id), ctx.m.assets);
  await ctx.ops.remove(file); // the repository may have a file (or a symlink) by that name: never write through it
  await ctx.ops.writeFile(file, JSON.stringify(built) + '\n', 0o644);
  const n = Object.values(built.dirs).reduce((sum, files) => sum + files.length, 0);
  ctx.log.info(`    ${n} asset files built under ${ctx.m.assets.join(', ')}`);
}

/**
 * The releases whose built assets a release should carry: the `keep` releases live most recently
 * (newest first, from the history's activations), other than `into` itself.
 */
export function assetDonors(events: HistoryEvent[], into: string, keep: number, onDisk: (id: string) => boolean): string[] {
  const out: string[] = [];
  const acts = activations(events);
  for (let i = acts.length - 1; i >= 0 && out.length < keep; i--) {
    const id = acts[i].release;
    if (id !== into && !out.includes(id) && onDisk(id)) out.push(id);
  }
  return out;
}

/**
 * Hard-links into release `intoId` the asset files that each of `fromIds` built itself (as its
 * BUILT_ASSETS_FILE lists them), under the same asset directory and relative path. A file already
 * there (the new build's own, or one carried before) is never replaced; a path whose way holds a
 * symlink, in either release, is skipped. Returns how many files it linked.
 */
export async function carryAssets(ctx: Context, intoId: string, fromIds: string[]): Promise<number> {
  if (ctx.m.assets.length === 0 || fromIds.length === 0) return 0;
  if (ctx.dryRun) {
    ctx.log.info(`    would carry the asset files that ${fromIds.join(', ')} built into ${intoId} (hard links; none replaced)`);
    return 0;
  }
  const into = ctx.paths.release(intoId);
  let carried = 0;
  for (const fromId of fromIds) {
    const built = readBuiltAssets(ctx.paths.builtAssetsFile(fromId));
    if (!built) continue;
    for (const rel of ctx.m.assets) {
      const files = built.dirs[rel];
      const src = realDirInside(ctx.paths.release(fromId), rel);
      if (!files?.length || !src) continue;
      const dst = ensureDirInside(into, rel);
      if (!dst) {
        ctx.log.info(`    ${rel} in ${intoId} is not a plain directory: no assets carried there`);
        continue;
      }
      for (const file of files) carried += linkOne(src, dst, file) ? 1 : 0;
    }
  }
  if (carried > 0) ctx.log.info(`    ${carried} asset files carried from ${fromIds.join(', ')} (hard links)`);
  return carried;
}

/** The asset directory inside the release, created (root-owned, 0755) where missing; undefined when a symlink or a file is in the way. */
function ensureDirInside(base: string, rel: string): string | undefined {
  let cur = base;
  for (const part of rel.replace(/\/+$/, '').split('/')) {
    cur = path.join(cur, part);
    const st = fs.lstatSync(cur, { throwIfNoEntry: false });
    if (!st) fs.mkdirSync(cur, { mode: 0o755 });
    else if (!st.isDirectory()) return undefined;
  }
  return cur;
}

/** Links srcDir/file to dstDir/file unless something is there already; checks every part of both ways. */
function linkOne(srcDir: string, dstDir: string, file: string): boolean {
  const parts = file.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return false;
  const src = path.join(srcDir, file);
  for (let i = 1; i < parts.length; i++) {
    if (!fs.lstatSync(path.join(srcDir, ...parts.slice(0, i)), { throwIfNoEntry: false })?.isDirectory()) return false;
  }
  if (!fs.lstatSync(src, { throwIfNoEntry: false })?.isFile()) return false;
  const parent = ensureDirInside(dstDir, parts.slice(0, -1).join('/') || '.');
  if (parts.length > 1 && !parent) return false;
  try {
    fs.linkSync(src, path.join(dstDir, file)); // never replaces: EEXIST when the path exists, whatever it is
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/**
 * Right before release `id` goes live (release, activate, rollback): it gets the asset files that
 * the recently live releases built, and the live release gets those `id` built, because during a
 * handover both processes answer for a moment, and a page of either may ask the other for its files.
 * Files are only added (hard links), never replaced; a release's own list is never changed.
 */
export async function shareAssetsForCutover(ctx: Context, id: string): Promise<void> {
  if (ctx.m.assets.length === 0) return;
  const { events, records } = history(ctx);
  if (records.get(id)?.state !== 'ready' || !releaseOnDisk(ctx, id)) return;
  const donors = assetDonors(events, id, ctx.m.assets_keep, (r) => releaseOnDisk(ctx, r));
  const live = liveRelease(ctx.paths);
  const toLive = live !== undefined && live !== id && releaseOnDisk(ctx, live) ? live : undefined;
  if (donors.length === 0 && !toLive) return;
  const what = [donors.length ? `${id} gets the assets of ${donors.join(', ')}` : '', toLive ? `${toLive} (live) gets those of ${id}` : ''].filter(Boolean);
  await ctx.log.step(`share assets for the cutover: ${what.join('; ')}`, async () => {
    await carryAssets(ctx, id, donors);
    if (toLive) await carryAssets(ctx, toLive, [id]);
  });
}
