// One pass over a release archive (gzip or zstd: compression.ts): the record, the host's match, every entry checked against the rules, and each accepted entry handed to a writer while nothing is wrong yet.
import { Parser, type ReadEntry } from 'tar';
import { archiveRefused } from './archive.ts';
import { compressionOf, tarStream, type TarStream } from './compression.ts';
import { entryPath, entryProblems, RECORD_NAME, recordProblems, type ArchiveEntry, type ArchiveRecord } from './archive-rules.ts';

/** Where accepted entries go: told of each one (its data still to come), then finished, or aborted at the first problem. */
export interface EntrySink {
  /** Takes the entry (and its data, read from `e` synchronously); returns problems that stop the writing (a path twice). */
  entry(e: ReadEntry, rel: string): string[];
  /** Takes a file whose data was read already (the record). */
  whole(rel: string, data: Buffer, mode: number, mtime?: Date): string[];
  /** The host's own failure (a full disk), when writing stopped because of one. */
  failure(): Error | undefined;
  /** All entries taken: set the directories' modes and times. */
  finish(): void;
  /** Something was wrong: close what is open (the caller removes the tree). */
  abort(): void;
}

export interface ReadOptions {
  /** The release's final directory, for absolute link targets. */
  releaseDirOf: (r: ArchiveRecord) => string;
  limits: { maxBytes: number; maxEntries: number };
  /** Where the record says the archive does not fit this host: [problem, fix] pairs; checked before any entry is written. */
  hostMismatch?: (r: ArchiveRecord) => [string, string][];
  /** Given the record, where the entries go (undefined: checked only, nothing written). */
  sink?: (r: ArchiveRecord) => EntrySink | undefined;
}

export interface Inspection {
  record: ArchiveRecord;
  entries: number;
  bytes: number;
  /** Whether the entries were written (a sink was given for this record). */
  written: boolean;
}

const UNTRUSTED_HINT = 'Build the release again with `cutover build <ref> --out FILE` and copy that file here; do not edit an archive by hand.';

/**
 * Reads the whole archive once: the record (its first entry), then every entry checked against the
 * release's final directory and the limits, each one handed to the sink only while no problem has been
 * found (so nothing unsafe is ever written; what was written before a problem is the caller's to remove).
 * Throws a UsageError listing every problem; a bomb is cut short at the first limit it passes.
 */
export async function readArchive(file: string, opts: ReadOptions): Promise<Inspection> {
  const { limits } = opts;
  const problems: string[] = [];
  let mismatch: [string, string][] = [];
  let record: ArchiveRecord | undefined;
  let sink: EntrySink | undefined;
  let releaseDir = '';
  let entries = 0;
  let bytes = 0;
  let inflated: 'zeros' | 'data' | 'failed' = 'zeros';
  const seenFiles = new Set<string>();
  const seenSymlinks = new Set<string>();
  const format = compressionOf(file) === 'zstd' ? 'tar.zst' : 'tar.gz';
  let missingProgram = false;
  let source: TarStream | undefined;
  await new Promise<void>((resolve) => {
    let stopped = false;
    const stop = (why?: string) => {
      if (stopped) return;
      stopped = true;
      if (why) problems.push(why);
      source?.stop();
      resolve();
    };
    const takeRecord = (text: string) => {
      let parsed: ArchiveRecord;
      try {
        parsed = JSON.parse(text) as ArchiveRecord;
      } catch {
        return stop(`its record ${RECORD_NAME} is not JSON`);
      }
      const bad = recordProblems(parsed);
      if (bad.length > 0) return stop(bad.join('; '));
      record = parsed;
      releaseDir = opts.releaseDirOf(parsed);
      mismatch = opts.hostMismatch?.(parsed) ?? [];
      if (mismatch.length > 0) return stop();
      sink = opts.sink?.(parsed);
      if (sink) problems.push(...sink.whole(RECORD_NAME, Buffer.from(text, 'utf8'), recordMode, recordTime));
    };
    let recordMode = 0o644;
    let recordTime: Date | undefined;
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
          recordMode = e.mode ?? 0o644;
          recordTime = e.mtime;
          e.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
          // The record is part of the tree too (a file at the top of the release): the sink writes it.
          e.on('end', () => takeRecord(Buffer.concat(chunks).toString('utf8')));
          return;
        }
        const entry: ArchiveEntry = { path: e.path, type: e.type, mode: e.mode ?? 0, size: e.size ?? 0, linkpath: e.linkpath };
        const bad = entryProblems(entry, releaseDir, seenFiles, seenSymlinks);
        const rel = entryPath(e.path);
        if (rel !== undefined && (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile')) seenFiles.add(rel);
        if (rel !== undefined && e.type === 'SymbolicLink') seenSymlinks.add(rel);
        problems.push(...bad);
        if (sink && problems.length === 0 && rel !== undefined && !stopped && !sink.failure()) {
          problems.push(...sink.entry(e, rel));
          return;
        }
        e.resume();
      },
    });
    const unreadable = (why: string) => stop(`it is not a whole, readable ${format} stream (${why.replace(/^TAR_[A-Z_]+: /, '')}): truncated or corrupt`);
    parser.on('error', (e: Error) => unreadable(e.message));
    source = tarStream(file, (why, missing) => {
      inflated = 'failed';
      if (!missing) return unreadable(why);
      missingProgram = true;
      stop(`it is compressed with zstd, and ${why}`);
    });
    parser.on('warn', (_code: string, message: string | Error) => {
      problems.push(`it is not a clean tar stream: ${typeof message === 'string' ? message : message.message}`);
    });
    // The tar stream ended: done once the decompressor says it read the whole archive (zstd's exit status comes after its output).
    parser.on('end', () => {
      void source!.closed.then((why) => {
        if (!why) return resolve();
        inflated = 'failed';
        unreadable(why);
      });
    });
    source.start(
      (chunk) => {
        // node-tar calls a stream of zero blocks alone (an empty tar) an unrecognized format: told apart here, before the first entry.
        if (inflated === 'zeros' && entries === 0 && chunk.some((b) => b !== 0)) inflated = 'data';
        // The chunk may be a view of a buffer read into again (compression.ts): every entry flows (a listener or resume),
        // so the parser hands each piece on before this returns; had it kept one back (false), what it kept would change.
        if (!parser.write(chunk) && !stopped) stop('the tar parser held back data it was given (a bug of cutover: report it)');
      },
      () => parser.end(),
    );
  }).catch((e) => {
    sink?.abort();
    throw e;
  });
  if (entries === 0 && !missingProgram) {
    // Nothing parsed: an empty tar, or a stream the decompressor could not read at all (whose failure can come after the parser's).
    const late = await source?.closed;
    if (late) problems.splice(0, problems.length, `it is not a whole, readable ${format} stream (${late}): truncated or corrupt`);
    else if (problems.length === 0 || inflated === 'zeros') problems.splice(0, problems.length, 'it is empty (no entries at all)');
  } else if (!record && problems.length === 0) problems.push(`it has no record ${RECORD_NAME}`);
  const failed = sink?.failure();
  if (failed && problems.length === 0) {
    sink!.abort();
    throw failed;
  }
  if (missingProgram) {
    sink?.abort();
    throw archiveRefused(file, problems, 'Install zstd on this host (apt-get install zstd), or build the archive as .tar.gz.');
  }
  if (mismatch.length > 0 && problems.length === 0) {
    sink?.abort();
    throw archiveRefused(file, mismatch.map(([p]) => p), mismatch.map(([, fix]) => fix).join(' '));
  }
  if (problems.length > 0 || !record) {
    sink?.abort();
    throw archiveRefused(file, problems, UNTRUSTED_HINT);
  }
  sink?.finish();
  return { record, entries, bytes, written: sink !== undefined };
}
