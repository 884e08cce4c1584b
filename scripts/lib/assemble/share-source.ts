// The files of a sealed release that a new release may hard-link instead of writing its own copy: found without following any link, and only where owner, mode, size and filesystem match.
import fs from 'node:fs';
import path from 'node:path';

/** One candidate: an open descriptor of the sealed file (to compare contents through), its path and size on disk. */
export interface SharedCandidate {
  fd: number;
  path: string;
  blocks: number;
}

export interface ShareSource {
  /** The sealed release's regular file at `rel`, when its size, mode (a full st_mode), owner and filesystem are these; else undefined. */
  open(rel: string, size: number, mode: number): SharedCandidate | undefined;
}

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/**
 * Files of the sealed release `dir` (root's, read-only, never changed again) owned by uid:gid (on device `dev`, when
 * given: overlayfs reports a directory's device, not its files', so the writer falls back on EXDEV instead).
 * Paths below `skip` (the app's writable directories, relative) are never offered. Every directory on the
 * way to a file must be a real directory in `dir`, not a link (a release built from git may hold links
 * anywhere), and the file itself is opened without following a link (and without blocking on a fifo).
 */
export function shareSource(dir: string, owner: { uid: number; gid: number; dev?: number }, skip: string[] = []): ShareSource {
  const skipped = skip.map((s) => s.replace(/\/+$/, '')).filter((s) => s !== '');
  const realDirs = new Map<string, boolean>([['', true]]);
  const isRealDir = (rel: string): boolean => {
    const known = realDirs.get(rel);
    if (known !== undefined) return known;
    const parent = path.posix.dirname(rel);
    const ok = isRealDir(parent === '.' ? '' : parent) && (fs.lstatSync(path.join(dir, rel), { throwIfNoEntry: false })?.isDirectory() ?? false);
    realDirs.set(rel, ok);
    return ok;
  };
  return {
    open(rel, size, mode) {
      if (skipped.some((s) => rel === s || rel.startsWith(`${s}/`))) return undefined;
      const parent = path.posix.dirname(rel);
      if (!isRealDir(parent === '.' ? '' : parent)) return undefined;
      const file = path.join(dir, rel);
      let fd: number;
      try {
        fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      } catch {
        return undefined;
      }
      const st = fs.fstatSync(fd);
      if (st.isFile() && st.size === size && st.mode === mode && st.uid === owner.uid && st.gid === owner.gid && (owner.dev === undefined || st.dev === owner.dev)) {
        return { fd, path: file, blocks: st.blocks };
      }
      fs.closeSync(fd);
      return undefined;
    },
  };
}
