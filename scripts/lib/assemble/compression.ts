// The compression of a release archive, told by its first bytes: gzip (inflated by Node) or zstd (by the host's zstd program, ≈ 3 times less CPU than Node 18's gunzip with Debian's zlib).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawn, spawnSync } from 'node:child_process';
import type { Writable } from 'node:stream';

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
  /**
   * Starts the reading: `write` is given the tar stream piece by piece, then `end` is called (not after `stop`). A piece
   * may be a view of a buffer that is read into again afterwards: it is valid only during the call (copy what is kept),
   * and then it holds whole 512-byte blocks but for the last one, so the tar parser (which keeps a partial block by
   * reference) has none to keep. A piece that is a buffer of its own (gunzip's, the zstd pipe fallback's) may be any size.
   */
  start(write: (chunk: Buffer) => void, end: () => void): void;
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
    return {
      start(write, end) {
        gunzip.on('data', write);
        gunzip.on('end', end);
        input.pipe(gunzip);
      },
      stop: () => (input.destroy(), gunzip.destroy()),
      closed,
    };
  }
  return zstdStream(file, failed);
}

/**
 * zstd -dc, its output read through a FIFO with blocking reads into one reused 1 MiB buffer: Node 18 read the
 * Next.js example's 413 MB from a child's stdout pipe (a fresh 64 KiB buffer per read, and their collection)
 * with 0.32-0.46 CPU s, from the FIFO with 0.11. Where no FIFO can be made, the stdout pipe as before.
 */
function zstdStream(file: string, failed: (why: string, missingProgram?: boolean) => void): TarStream {
  const fifo = openFifo();
  // zstd's own limit on a frame's window (128 MiB unless --memory says more) stands: a hostile frame cannot make it allocate more.
  // Its stderr stays a pipe, read by the event loop between reads (zstd writes a line or two at most, far below a pipe's 64 KiB).
  const child = spawn('zstd', ['-d', '-c', '-q', '--', file], { stdio: ['ignore', fifo ? fifo.write : 'pipe', 'pipe'] });
  if (fifo) fs.closeSync(fifo.write);
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
  let stopped = false;
  const stop = () => {
    stopped = true;
    child.kill('SIGKILL');
  };
  if (!fifo) {
    return {
      start(write, end) {
        child.stdout!.on('data', write);
        child.stdout!.on('end', end);
      },
      stop,
      closed,
    };
  }
  return {
    start(write, end) {
      void pumpFifo(fifo.read, write, () => stopped, failed).then((done) => {
        if (done && !stopped) end();
      });
    },
    stop,
    closed,
  };
}

/** A FIFO opened at both ends, its name already gone (made in a fresh root-only directory); undefined where none can be made. */
function openFifo(): { read: number; write: number } | undefined {
  let dir: string | undefined;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-zstd-'));
    const name = path.join(dir, 'tar');
    if (spawnSync('mkfifo', ['--', name], { stdio: 'ignore' }).status !== 0) return undefined;
    const st = fs.lstatSync(name);
    if (!st.isFIFO() || st.uid !== process.getuid?.()) return undefined;
    // Read and write at once: neither open waits for the other end. The write end goes to zstd, and is closed here once zstd has it.
    const write = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
    const read = fs.openSync(name, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    return { read, write };
  } catch {
    return undefined;
  } finally {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Reads the FIFO until zstd closes it (true) or `stopped` (false), handing on the whole 512-byte blocks of each read (at
 * most the pipe's 64 KiB) from one reused buffer. Handing on 512 KiB at a time instead was not cheaper (1.5-1.8 CPU s
 * against 1.5-1.8 for the unpack, the two interleaved on a busy machine). The reads block; every 64 of them (≈ 4 MB)
 * the event loop runs (signals, zstd's stderr).
 */
async function pumpFifo(fd: number, write: (chunk: Buffer) => void, stopped: () => boolean, failed: (why: string) => void): Promise<boolean> {
  const buf = Buffer.allocUnsafe(1 << 20);
  let held = 0;
  try {
    for (;;) {
      for (let i = 0; i < 64; i++) {
        if (stopped()) return false;
        const n = fs.readSync(fd, buf, held, buf.length - held, null);
        if (n === 0) {
          if (held > 0) write(buf.subarray(0, held));
          return true;
        }
        const total = held + n;
        const whole = total - (total % 512);
        if (whole > 0) write(buf.subarray(0, whole));
        held = total - whole;
        if (held > 0) buf.copy(buf, 0, whole, total);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  } catch (e) {
    failed(`reading zstd's output: ${(e as Error).message}`);
    return false;
  } finally {
    fs.closeSync(fd);
  }
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
