// The `active` symlink: read it, replace it atomically by rename(2) of a freshly made symlink, and remove it
// when the first release fails.
import fs from 'node:fs';
import path from 'node:path';
import type { AppPaths } from '../manifest/paths.ts';
import { RELEASE_ID } from '../manifest/paths.ts';
import type { Ops } from '../run/ops.ts';

/** The live release id, or undefined when there is none (or `active` is not cutover's). */
export function liveRelease(paths: AppPaths): string | undefined {
  let target: string;
  try {
    target = fs.readlinkSync(paths.active);
  } catch {
    return undefined;
  }
  const id = path.basename(target);
  return target === paths.activeTarget(id) && RELEASE_ID.test(id) ? id : undefined;
}

/**
 * Points `active` at a release. The new link is made beside it under a temporary name and renamed
 * over `active`, so at no instant is `active` missing or pointing anywhere else.
 */
export async function switchActive(ops: Ops, paths: AppPaths, id: string): Promise<void> {
  const tmp = path.join(paths.root, `.active.${process.pid}.tmp`);
  await ops.note(`point ${paths.active} at ${paths.activeTarget(id)} (symlink ${tmp}, then rename it over active)`, () => {
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(paths.activeTarget(id), tmp);
    fs.renameSync(tmp, paths.active);
    // Make the rename durable before the restart relies on it.
    syncDir(paths.root);
  });
}

/**
 * Removes `active` when it points at release `id` (the first release failed: there is none to go back
 * to), so nothing is live: the socket cannot start the failed release for a request, and status says so.
 */
export async function unlinkActive(ops: Ops, paths: AppPaths, id: string): Promise<void> {
  if (liveRelease(paths) !== id) return;
  await ops.note(`remove ${paths.active} (it pointed at ${id}; no release is live)`, () => {
    fs.unlinkSync(paths.active);
    syncDir(paths.root);
  });
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
