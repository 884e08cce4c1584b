// Release archives (tar by node-tar, gzip or zstd): a tree's digest, a built release packed with its record, the archive's sha256, a refusal's message.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { c as createTar } from 'tar';
import { compressionFor, zstdInto } from './compression.ts';
import { UsageError } from '../run/errors.ts';
import { entryPath, RECORD_NAME, type ArchiveRecord } from './archive-rules.ts';

/**
 * sha256 of a file, hex. Read in 1 MiB pieces into one buffer: a read stream's fresh 64 KiB buffer per
 * chunk cost Node 18 0.38 CPU s for a 100 MB archive, this 0.08 (the allocations and their collection).
 */
export async function fileSha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fh = await fs.promises.open(file, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** Whether a file name is native code (a Node addon or a shared library), for which the C library matters. */
const NATIVE = /\.(node|so(\.[0-9.]+)?)$/;

/**
 * The tree's digest: sha256 over every entry below `dir` in sorted order (its relative path, type, mode,
 * and its content's sha256 or its link target), skipping `skip` (relative paths: the shared links, the
 * record). Two trees with the same digest serve the same bytes. Also says whether it holds native code.
 */
export function treeDigest(dir: string, skip: Set<string>): { digest: string; native: boolean } {
  const hash = crypto.createHash('sha256');
  let native = false;
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip.has(r)) continue;
      const full = path.join(dir, r);
      const st = fs.lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) hash.update(`l ${mode} ${r} ${fs.readlinkSync(full)}\n`);
      else if (st.isDirectory()) {
        hash.update(`d ${mode} ${r}\n`);
        walk(r);
      } else if (st.isFile()) {
        if (NATIVE.test(name)) native = true;
        hash.update(`f ${mode} ${r} ${crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex')}\n`);
      } else hash.update(`? ${r}\n`);
    }
  };
  walk('');
  return { digest: hash.digest('hex'), native };
}

/**
 * Writes `out` (through a temporary file beside it, renamed into place): the record first, then the
 * release tree below `dir` without the `skip` paths; gzip, or zstd when `out` is named .tar.zst. Returns the archive's sha256 and writes
 * `out.sha256` in sha256sum's format.
 */
export async function packRelease(dir: string, out: string, record: ArchiveRecord, skip: Set<string>): Promise<string> {
  const recordFile = path.join(dir, RECORD_NAME);
  fs.writeFileSync(recordFile, JSON.stringify(record, null, 2) + '\n', { mode: 0o644 });
  // Its mtime is the build's time, not this write's: the same release and record pack to the same bytes.
  const built = new Date(record.builtAt);
  if (!Number.isNaN(built.getTime())) fs.utimesSync(recordFile, built, built);
  const tmp = `${out}.partial-${process.pid}`;
  const top = fs.readdirSync(dir).filter((n) => n !== RECORD_NAME && !skip.has(n)).sort();
  const options = {
    cwd: dir,
    portable: true,
    // One entry at a time: the record must be the first entry.
    jobs: 1,
    filter: (p: string) => {
      const rel = entryPath(p);
      return rel !== undefined && (rel === RECORD_NAME || !skip.has(rel));
    },
  };
  try {
    if (compressionFor(out) === 'zstd') {
      // node-tar writes the tar, the zstd program compresses it (Node 18 and 20 have no zstd).
      const zstd = zstdInto(tmp);
      const tar = createTar(options, [RECORD_NAME, ...top]) as unknown as NodeJS.ReadableStream;
      await Promise.all([pipeline(tar, zstd.stdin), zstd.done]);
    } else await createTar({ ...options, gzip: true, file: tmp }, [RECORD_NAME, ...top]);
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const sha = await fileSha256(out);
  fs.writeFileSync(`${out}.sha256`, `${sha}  ${path.basename(out)}\n`);
  return sha;
}

/** A refusal of an archive: exit 2, the archive named, every problem listed (at most 12), and the fix. */
export function archiveRefused(file: string, problems: string[], hint: string): UsageError {
  const shown = problems.slice(0, 12).map((p) => `  - ${p}`);
  if (problems.length > 12) shown.push(`  - and ${problems.length - 12} more`);
  return new UsageError(`The archive ${file} is refused:\n${shown.join('\n')}\nNothing on this host was changed.`, hint);
}
