// One lock per app: flock(2) on <root>/cutover.lock, released by the kernel when the holder dies; and host-wide
// locks that wait (the web server's configuration, which every app's provision edits).
import fs from 'node:fs';
import os from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { processStartTicks } from './procfs.ts';
import { LockedError } from '../run/errors.ts';

/** What the lock file says about its holder; advisory, the flock is the truth. */
export interface LockHolder {
  pid: number;
  /** The holder's start time in clock ticks since boot (/proc/<pid>/stat field 22): guards against pid reuse. */
  started: number;
  user: string;
  operation: string;
  since: string;
}

export interface Lock {
  holder: LockHolder;
  release(): void;
}

/** The operator behind this process: the sudo user where there is one. */
export function operatorName(env = process.env): string {
  return env.SUDO_USER || env.LOGNAME || env.USER || os.userInfo().username;
}

/**
 * Takes the app's lock without waiting. flock(1) locks the open file description this process
 * holds, so the lock outlives the flock child and dies with this process, even by kill -9.
 */
export function acquireLock(file: string, operation: string): Lock {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o644);
  const r = spawnSync('flock', ['--exclusive', '--nonblock', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
  if (r.error) {
    fs.closeSync(fd);
    throw r.error;
  }
  if (r.status !== 0) {
    fs.closeSync(fd);
    throw lockedError(readHolderSoon(file));
  }
  const holder: LockHolder = {
    pid: process.pid,
    started: processStartTicks(process.pid) ?? 0,
    user: operatorName(),
    operation,
    since: new Date().toISOString(),
  };
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, JSON.stringify(holder) + '\n', 0);
  let held = true;
  return {
    holder,
    release() {
      if (!held) return;
      held = false;
      fs.ftruncateSync(fd, 0);
      fs.closeSync(fd);
    },
  };
}

export function readHolder(file: string): LockHolder | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    return text ? (JSON.parse(text) as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

/** The holder writes its name just after it takes the flock: give it a moment before saying it is unnamed. */
function readHolderSoon(file: string): LockHolder | undefined {
  for (let i = 0; i < 10; i++) {
    const h = readHolder(file);
    if (h) return h;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return undefined;
}

/** The current holder, if the process named in the lock file is still the one that wrote it. */
export function liveHolder(file: string): LockHolder | undefined {
  const h = readHolder(file);
  if (!h) return undefined;
  return processStartTicks(h.pid) === h.started ? h : undefined;
}

export function describeHolder(h: LockHolder | undefined): string {
  if (!h) return 'another cutover process (it has not said who it is yet)';
  return `${h.user} (pid ${h.pid}), doing "${h.operation}" since ${h.since}`;
}

function lockedError(h: LockHolder | undefined): LockedError {
  return new LockedError(
    `Another cutover operation holds this app's lock: ${describeHolder(h)}.`,
    'Wait for it to finish and try again. The lock frees itself when that process ends, even if it is killed.',
  );
}

/**
 * Runs fn holding a host-wide lock on `file`, waiting up to waitS seconds for it (another app's provision
 * may hold it for as long as its web server's check and reload take). Released when fn ends, or by the
 * kernel when this process dies. Throws `busy()` when the wait runs out.
 */
export async function withHostLock<T>(file: string, waitS: number, busy: () => Error, fn: () => Promise<T>): Promise<T> {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const p = spawn('flock', ['--exclusive', '--wait', String(waitS), '3'], { stdio: ['ignore', 'ignore', 'ignore', fd] });
      p.on('error', reject);
      p.on('close', resolve);
    });
    if (code !== 0) throw busy();
    return await fn();
  } finally {
    fs.closeSync(fd);
  }
}
