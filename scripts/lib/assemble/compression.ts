// The compression of a release archive, told by its first bytes: gzip (inflated by Node) or zstd (by the host's zstd program, ≈ 3 times less CPU than Node 18's gunzip with Debian's zlib).
import fs from 'node:fs';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export type Compression = 'gzip' | 'zstd';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** zstd when the file starts with zstd's frame magic, else gzip (anything else then fails as an unreadable gzip stream). */
export function compressionOf(file: string): Compression {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  return head.equals(ZSTD_MAGIC) ? 'zstd' : 'gzip';
}

/** The compression an archive's name asks for: .tar.zst or .tzst is zstd, anything else gzip. */
export function compressionFor(name: string): Compression {
  return /\.(tar\.zst|tzst)$/.test(name) ? 'zstd' : 'gzip';
}

export interface TarStream {
  /** The tar stream, decompressed. */
  stream: Readable;
  /** Stops reading (the decompressor too). */
  stop(): void;
  /** Once the decompressor is done: why it failed (its own words), or undefined. */
  closed: Promise<string | undefined>;
}

/**
 * The tar stream inside `file`. `failed` is told at once of a decompression error (a truncated or corrupt stream), and
 * of a missing zstd program (then with `missingProgram` set).
 */
export function tarStream(file: string, failed: (why: string, missingProgram?: boolean) => void): TarStream {
  if (compressionOf(file) === 'gzip') {
    const input = fs.createReadStream(file, { highWaterMark: 1 << 20 });
    // Node's gunzip in 1 MiB chunks, not node-tar's own (16 KiB chunks, a buffer each): 10-20 % less CPU for a 413 MB tree,
    // and it inflates on another thread while this one parses and writes.
    const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
    const closed = new Promise<string | undefined>((resolve) => {
      gunzip.on('error', (e: Error) => {
        failed(e.message);
        resolve(e.message);
      });
      gunzip.on('end', () => resolve(undefined));
      gunzip.on('close', () => resolve(undefined));
    });
    input.on('error', (e) => failed(e.message));
    input.pipe(gunzip);
    return { stream: gunzip, stop: () => (input.destroy(), gunzip.destroy()), closed };
  }
  // zstd's own limit on a frame's window (128 MiB unless --memory says more) stands: a hostile frame cannot make it allocate more.
  const child = spawn('zstd', ['-d', '-c', '-q', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr = (stderr + c).slice(-2000)));
  const closed = new Promise<string | undefined>((resolve) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'ENOENT' ? 'this host has no zstd program' : `zstd: ${e.message}`;
      failed(why, e.code === 'ENOENT');
      resolve(why);
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(undefined);
      // zstd names the file first ("<file> : Read error (39) : premature end"): the staging path says nothing to the operator.
      const last = stderr.trim().split(/[\r\n]/).slice(-1)[0].replace(/^.*? : /, '');
      const why = `zstd: ${last || (signal ? `killed by ${signal}` : `exit ${code}`)}`;
      resolve(why);
    });
  });
  return { stream: child.stdout!, stop: () => child.kill('SIGKILL'), closed };
}

/** Writes what `tar` produces into `out`, compressed with zstd -3 by the zstd program (single-threaded: the same input gives the same bytes). */
export function zstdInto(out: string): { stdin: Writable; done: Promise<void> } {
  const child = spawn('zstd', ['-q', '-3', '-f', '-o', out], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr = (stderr + c).slice(-2000)));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new Error('this machine has no zstd program (apt-get install zstd), needed for a .tar.zst archive') : e));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd exited ${code}: ${stderr.trim()}`))));
  });
  return { stdin: child.stdin!, done };
}
