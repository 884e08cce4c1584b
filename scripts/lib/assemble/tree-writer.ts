// Writes the checked entries of an archive into a fresh directory, in one pass: sealed modes when root, and a file identical to the neighbour release's hard-linked to it instead of written.
import fs from 'node:fs';
import path from 'node:path';
import type { ReadEntry } from 'tar';
import { OperationError } from '../run/errors.ts';
import type { EntrySink } from './archive-read.ts';
import { entryPath } from './archive-rules.ts';
import type { SharedCandidate, ShareSource } from './share-source.ts';

export interface TreeWriterOptions {
  /** Root seals releases: files and directories get their modes without group and other write (as the seal's chmod go-w). */
  seal: boolean;
  /** The sealed release whose identical files are linked instead of written (only for a tree nobody but root writes to before its seal). */
  share?: ShareSource;
  /** process.umask(), applied as node-tar applies it. */
  umask?: number;
}

export interface TreeWriter extends EntrySink {
  /** Bytes on disk not written because a file was shared with the neighbour. */
  sharedBytes(): number;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/** An entry's mode as it lands on disk: permission bits only, the umask off, and when sealing no group or other write. */
export function landedMode(mode: number, fallback: number, umask: number, seal: boolean): number {
  return (mode || fallback) & 0o7777 & ~umask & ~(seal ? 0o022 : 0);
}

/** Hard-links `from` to `to`; false when they are on two filesystems (EXDEV), after copying it there instead (never replacing a file). */
function linkOrCopy(from: string, to: string): boolean {
  try {
    fs.linkSync(from, to);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
    return false;
  }
}

/** The writer of one tree at `dir`, which must not exist yet (made 0700 here; its final mode is set by finish). */
export function treeWriter(dir: string, opts: TreeWriterOptions): TreeWriter {
  const umask = opts.umask ?? process.umask();
  const mode = (m: number, fallback: number) => landedMode(m, fallback, umask, opts.seal);
  fs.mkdirSync(dir, { mode: 0o700 });
  /** Directories made, in the order made (parents first), with the mode and time they end up with. */
  const dirs = new Map<string, { mode: number; mtime?: Date }>([['', { mode: mode(0o755, 0o755) }]]);
  let failed: Error | undefined;
  let openFds: number[] = [];
  let shared = 0;
  /** Every path other than a directory taken so far. */
  const placed = new Set<string>();
  const abs = (rel: string) => path.join(dir, rel);
  const shown = (rel: string) => JSON.stringify(rel.length > 120 ? rel.slice(0, 117) + '...' : rel);

  const fail = (rel: string, e: unknown) => {
    failed ??= new OperationError(`Unpacking ${shown(rel)} failed: ${(e as Error).message}`, 'Check the space and health of the disk holding the releases, then release the archive again.');
  };
  /** A problem of the archive for an error of the tree (a path twice, a path below a file), else the host's failure. */
  const problem = (rel: string, e: unknown): string[] => {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return [`${shown(rel)} appears twice in the archive`];
    if (code === 'ENOTDIR') return [`${shown(rel)} lies below a file of the archive`];
    fail(rel, e);
    return [];
  };
  const ensureParent = (rel: string) => {
    const parent = path.posix.dirname(rel);
    const p = parent === '.' ? '' : parent;
    if (dirs.has(p)) return;
    ensureParent(p);
    fs.mkdirSync(abs(p), { mode: 0o700 });
    dirs.set(p, { mode: mode(0o755, 0o755) });
  };
  const closeAll = () => {
    for (const fd of openFds) fs.closeSync(fd);
    openFds = [];
  };
  const release = (fd: number) => {
    fs.closeSync(fd);
    openFds = openFds.filter((x) => x !== fd);
  };
  const create = (rel: string): number => {
    const fd = fs.openSync(abs(rel), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    openFds.push(fd);
    return fd;
  };
  const settle = (fd: number, m: number, mtime?: Date) => {
    fs.fchmodSync(fd, m);
    if (mtime) fs.futimesSync(fd, mtime, mtime);
    release(fd);
  };

  /** A file's data, written, or compared with the neighbour's copy until the first difference (then written from there on). */
  const fileEntry = (e: ReadEntry, rel: string, m: number) => {
    const size = e.size ?? 0;
    let same: SharedCandidate | undefined = size > 0 ? opts.share?.open(rel, size, fs.constants.S_IFREG | m) : undefined;
    if (same) openFds.push(same.fd);
    let out = same ? undefined : create(rel);
    let pos = 0;
    let scratch = Buffer.alloc(0);
    /** The compared prefix was the same: write it from the neighbour's copy, and write from here on. */
    const diverge = () => {
      out = create(rel);
      const buf = Buffer.allocUnsafe(1 << 16);
      for (let at = 0; at < pos; ) {
        const n = fs.readSync(same!.fd, buf, 0, Math.min(buf.length, pos - at), at);
        if (n <= 0) throw new Error(`${same!.path} got shorter while it was read`);
        fs.writeSync(out, buf, 0, n);
        at += n;
      }
      release(same!.fd);
      same = undefined;
    };
    e.on('data', (chunk: Buffer) => {
      if (failed) return;
      try {
        if (same) {
          if (scratch.length < chunk.length) scratch = Buffer.allocUnsafe(Math.max(chunk.length, 1 << 16));
          const n = fs.readSync(same.fd, scratch, 0, chunk.length, pos);
          if (n === chunk.length && scratch.subarray(0, n).equals(chunk)) {
            pos += n;
            return;
          }
          diverge();
        }
        fs.writeSync(out!, chunk);
        pos += chunk.length;
      } catch (err) {
        fail(rel, err);
      }
    });
    e.on('end', () => {
      if (failed) return;
      try {
        if (same) {
          const from = same;
          release(from.fd);
          // The path was checked when the file was opened (real directories, the file not a link), and only root can change a sealed release.
          if (linkOrCopy(from.path, abs(rel))) shared += from.blocks * 512;
          else {
            // Another filesystem: the same bytes, copied.
            const fd = fs.openSync(abs(rel), O_WRONLY | O_NOFOLLOW);
            openFds.push(fd);
            settle(fd, m, e.mtime);
          }
        } else settle(out!, m, e.mtime);
      } catch (err) {
        fail(rel, err);
      }
    });
  };

  return {
    entry(e, rel) {
      if (failed) {
        e.resume();
        return [];
      }
      try {
        if (rel === '') {
          if (e.type === 'Directory') dirs.set('', { mode: mode(e.mode ?? 0, 0o755), mtime: e.mtime });
          e.resume();
          return [];
        }
        ensureParent(rel);
        // Checked here, not left to EEXIST: a file that would be linked to the neighbour's is not created until its end.
        if (e.type !== 'Directory' && placed.has(rel)) {
          e.resume();
          return [`${shown(rel)} appears twice in the archive`];
        }
        if (e.type !== 'Directory') placed.add(rel);
        if (e.type === 'Directory') {
          e.resume();
          const known = dirs.get(rel);
          if (!known) fs.mkdirSync(abs(rel), { mode: 0o700 });
          dirs.set(rel, { mode: mode(e.mode ?? 0, 0o755), mtime: e.mtime });
          return [];
        }
        if (FILE_TYPES.has(e.type)) {
          fileEntry(e, rel, mode(e.mode ?? 0, 0o644));
          return [];
        }
        e.resume();
        if (e.type === 'SymbolicLink') fs.symlinkSync(e.linkpath ?? '', abs(rel));
        else if (e.type === 'Link') fs.linkSync(abs(entryPath(e.linkpath ?? '') ?? '\0'), abs(rel));
        else return [`${shown(rel)} is a ${e.type} entry, which is not written`];
        return [];
      } catch (err) {
        e.resume();
        return problem(rel, err);
      }
    },
    whole(rel, data, m, mtime) {
      try {
        ensureParent(rel);
        placed.add(rel);
        const fd = create(rel);
        fs.writeSync(fd, data);
        settle(fd, mode(m, 0o644), mtime);
        return [];
      } catch (err) {
        return problem(rel, err);
      }
    },
    failure: () => failed,
    finish() {
      closeAll();
      // Deepest first: a directory's time is set after its last child was made in it.
      for (const [rel, d] of [...dirs.entries()].reverse()) {
        fs.chmodSync(abs(rel), d.mode);
        if (d.mtime) fs.utimesSync(abs(rel), d.mtime, d.mtime);
      }
    },
    abort: closeAll,
    sharedBytes: () => shared,
  };
}
