// Release archives (tar + gzip, read and written by node-tar): pack a built release with its record, read one back checking every entry before anything is written, unpack it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Parser, c as createTar, x as extractTar, type ReadEntry } from 'tar';
import { UsageError } from '../run/errors.ts';
import { entryPath, entryProblems, RECORD_NAME, recordProblems, type ArchiveEntry, type ArchiveRecord } from './archive-rules.ts';

/** sha256 of a file, hex. */
export async function fileSha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
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
 * release tree below `dir` without the `skip` paths. Returns the archive's sha256 and writes
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
  try {
    await createTar(
      {
        gzip: true,
        file: tmp,
        cwd: dir,
        portable: true,
        // One entry at a time: the record must be the first entry.
        jobs: 1,
        filter: (p: string) => {
          const rel = entryPath(p);
          return rel !== undefined && (rel === RECORD_NAME || !skip.has(rel));
        },
      },
      [RECORD_NAME, ...top],
    );
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const sha = await fileSha256(out);
  fs.writeFileSync(`${out}.sha256`, `${sha}  ${path.basename(out)}\n`);
  return sha;
}

export interface Inspection {
  record: ArchiveRecord;
  entries: number;
  bytes: number;
}

/** A refusal of an archive: exit 2, the archive named, every problem listed (at most 12), and the fix. */
export function archiveRefused(file: string, problems: string[], hint: string): UsageError {
  const shown = problems.slice(0, 12).map((p) => `  - ${p}`);
  if (problems.length > 12) shown.push(`  - and ${problems.length - 12} more`);
  return new UsageError(`The archive ${file} is refused:\n${shown.join('\n')}\nNothing on this host was changed.`, hint);
}

const UNTRUSTED_HINT = 'Build the release again with `cutover build <ref> --out FILE` and copy that file here; do not edit an archive by hand.';

/**
 * Reads the whole archive without writing anything: the record (its first entry), then every entry
 * checked against the release's final directory (`releaseDirOf(record)`) and the limits. Throws a
 * UsageError listing every problem; a bomb is cut short at the first limit it passes.
 */
export async function inspectArchive(
  file: string,
  releaseDirOf: (r: ArchiveRecord) => string,
  limits: { maxBytes: number; maxEntries: number },
): Promise<Inspection> {
  const problems: string[] = [];
  let record: ArchiveRecord | undefined;
  let releaseDir = '';
  let entries = 0;
  let bytes = 0;
  const seenFiles = new Set<string>();
  const seenSymlinks = new Set<string>();
  const input = fs.createReadStream(file);
  await new Promise<void>((resolve, reject) => {
    let stopped = false;
    const stop = (why: string) => {
      if (stopped) return;
      stopped = true;
      problems.push(why);
      input.destroy();
      resolve();
    };
    const parser = new Parser({
      strict: true,
      onReadEntry: (e: ReadEntry) => {
        entries++;
        bytes += e.size ?? 0;
        if (entries > limits.maxEntries) return stop(`it holds more than ${limits.maxEntries} entries (the limit: archive.max_entries in the manifest)`);
        if (bytes > limits.maxBytes) return stop(`it unpacks to more than ${limits.maxBytes} bytes (the limit: archive.max_bytes in the manifest)`);
        if (entries === 1) {
          if (entryPath(e.path) !== RECORD_NAME || e.type !== 'File' || e.size > 65536) {
            e.resume();
            return stop(`its first entry is ${JSON.stringify(e.path)}, not the record ${RECORD_NAME} that cutover build writes`);
          }
          const chunks: Buffer[] = [];
          e.on('data', (c: Buffer) => chunks.push(c));
          e.on('end', () => {
            try {
              const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ArchiveRecord;
              const bad = recordProblems(parsed);
              if (bad.length > 0) return stop(bad.join('; '));
              record = parsed;
              releaseDir = releaseDirOf(parsed);
            } catch {
              stop(`its record ${RECORD_NAME} is not JSON`);
            }
          });
          return;
        }
        const entry: ArchiveEntry = { path: e.path, type: e.type, mode: e.mode ?? 0, size: e.size ?? 0, linkpath: e.linkpath };
        problems.push(...entryProblems(entry, releaseDir, seenFiles, seenSymlinks));
        const rel = entryPath(e.path);
        if (rel !== undefined && (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile')) seenFiles.add(rel);
        if (rel !== undefined && e.type === 'SymbolicLink') seenSymlinks.add(rel);
        e.resume();
      },
    });
    parser.on('error', (e: Error) => stop(`it is not a whole, readable tar.gz stream (${e.message.replace(/^TAR_[A-Z_]+: /, '')}): truncated or corrupt`));
    parser.on('warn', (_code: string, message: string | Error) => {
      problems.push(`it is not a clean tar stream: ${typeof message === 'string' ? message : message.message}`);
    });
    parser.on('end', () => {
      if (!stopped) resolve();
    });
    input.on('error', (e) => (stopped ? undefined : reject(e)));
    input.pipe(parser);
  });
  if (entries === 0) problems.push('it is empty (no entries at all)');
  else if (!record && problems.length === 0) problems.push(`it has no record ${RECORD_NAME}`);
  if (problems.length > 0 || !record) throw archiveRefused(file, problems, UNTRUSTED_HINT);
  return { record, entries, bytes };
}

/**
 * Unpacks an archive that inspectArchive accepted into `dir` (which must not exist yet): modes kept,
 * owners not (root owns it until the seal hands out the writable dirs). preservePaths keeps the absolute
 * symlink targets the inspection allowed (a venv's bin/python → /usr/bin/python3); every entry path was
 * checked relative, without '..', and never below a symlink, so nothing lands outside `dir`.
 */
export async function unpackArchive(file: string, dir: string): Promise<void> {
  fs.mkdirSync(dir, { mode: 0o755 });
  await extractTar({ file, cwd: dir, strict: true, preserveOwner: false, preservePaths: true, unlink: false, noMtime: false });
}
