// Crash-test helpers: run a kit script inside the test host while watching its stdout, SIGKILL its whole process group at a chosen moment.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import { CONTAINER_ENV, type ExecResult } from '../host/host.ts';
import { KIT, bootKitHost, kitArgv, type KitHost } from './hostkit.ts';


export interface RunningKit {
  /** The process group (host pid of the nsenter that leads it): the kit and everything it started. */
  pgid: number;
  /** stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process (group leader) has ended. */
  done: Promise<ExecResult>;
  /** Resolves true when stdout matches re, false when the process ends first or the timeout passes. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<boolean>;
  /** SIGKILL to the whole process group, from the test side (no round trip into the host). */
  kill(): void;
  /** True once kill() was called while the process was still running. */
  killed: boolean;
  /** stdout as it was when the kill was sent. */
  stdoutAtKill: string;
}

/**
 * Starts `<verb> args --manifest M` inside the host (kitArgv: compiled, or through tsx) as its own process group
 * (nsenter is spawned detached, so it leads a fresh session; its forked child inside and every
 * process the kit starts stay in that group). `onStdout` sees each chunk at once, so a kill can
 * follow a line within a millisecond or so.
 */
export function startKit(
  k: KitHost,
  verb: string,
  args: string[],
  opts: { manifest?: string; env?: Record<string, string>; onStdout?: (all: string, run: RunningKit) => void } = {},
): RunningKit {
  const env = Object.entries({ ...CONTAINER_ENV, ...opts.env }).map(([key, v]) => `${key}=${v}`);
  const argv = [
    'nsenter', '-t', String(k.host.pid), '-a', '--', 'env', '-i', '-C', KIT, ...env,
    ...kitArgv(verb, args, opts.manifest),
  ];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let ended = false;
  const waiters = new Set<() => void>();
  const run: RunningKit = {
    pgid: child.pid!,
    stdout: () => stdout,
    stderr: () => stderr,
    killed: false,
    stdoutAtKill: '',
    done: new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => {
        ended = true;
        for (const w of waiters) w();
        resolve({ code: code ?? 128 + (signal ? osConstants.signals[signal] : 0), stdout, stderr });
      });
    }),
    waitFor(re, timeoutMs = 120_000) {
      return new Promise((resolve) => {
        const check = () => {
          if (re.test(stdout)) return finish(true);
          if (ended) return finish(false);
        };
        const timer = setTimeout(() => finish(false), timeoutMs);
        const finish = (v: boolean) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(v);
        };
        waiters.add(check);
        check();
      });
    },
    kill() {
      if (ended) return;
      run.killed = true;
      run.stdoutAtKill = stdout;
      try {
        process.kill(-run.pgid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    },
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    opts.onStdout?.(stdout, run);
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  return run;
}

/** Host pids of processes still in a process group (normally none after a kill). */
export function groupMembers(pgid: number): number[] {
  const left: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') left.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return left;
}

/** Waits until no process of the group is left (SIGKILL is asynchronous); returns what is left after the timeout. */
export async function waitGroupGone(pgid: number, timeoutMs = 5_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = groupMembers(pgid);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface KillPoint {
  /** A name for the report, e.g. "release: at ==> switch active". */
  name: string;
  /** The kill fires when stdout matches this (then after delayMs, if given). */
  when?: RegExp;
  /** Or when this predicate, polled every few ms, is true (e.g. a file inside the host has changed). */
  poll?: () => boolean;
  delayMs?: number;
}

export interface KillResult {
  /** True when the SIGKILL hit the running kit; false when it ended before the trigger. */
  killed: boolean;
  /** The kill came from the backstop timeout, not the kill point. */
  timedOut: boolean;
  /** stdout when the kill was sent (the kit may have printed a little more before it died). */
  stdoutAtKill: string;
  stdout: string;
  stderr: string;
  code: number;
  /** Processes of the group still alive 5 s after the kill (should be none). */
  survivors: number[];
  ms: number;
}

/** Runs a kit verb and SIGKILLs its process group at the kill point. */
export async function runAndKill(
  k: KitHost,
  verb: string,
  args: string[],
  point: KillPoint,
  opts: { manifest?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<KillResult> {
  const t0 = Date.now();
  let fired = false;
  const fire = (run: RunningKit) => {
    if (fired) return;
    fired = true;
    if (point.delayMs) setTimeout(() => run.kill(), point.delayMs);
    else run.kill();
  };
  const run = startKit(k, verb, args, {
    manifest: opts.manifest,
    env: opts.env,
    onStdout: (all, r) => {
      if (point.when?.test(all)) fire(r);
    },
  });
  let poller: NodeJS.Timeout | undefined;
  if (point.poll) {
    poller = setInterval(() => {
      try {
        if (!fired && point.poll!()) fire(run);
      } catch {
        /* not yet */
      }
    }, 2);
  }
  let timedOut = false;
  const backstop = setTimeout(() => {
    timedOut = !fired;
    run.kill();
  }, opts.timeoutMs ?? 120_000);
  const r = await run.done;
  clearTimeout(backstop);
  if (poller) clearInterval(poller);
  const survivors = await waitGroupGone(run.pgid);
  return { killed: run.killed && !timedOut, timedOut, stdoutAtKill: run.stdoutAtKill, stdout: r.stdout, stderr: r.stderr, code: r.code, survivors, ms: Date.now() - t0 };
}

/** The last lines of a text, for failure messages. */
export function tail(text: string, n = 25): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** A file inside the host seen from the test side. */
export function inHost(k: KitHost, p: string): string {
  return path.join(k.host.root, p);
}

/**
 * Boots the host again over the same stateDir after a power cut, with the same kit and the same app
 * repositories bound in (bootKitHost would make a fresh, empty repo dir).
 */
export async function bootKitHostAgain(before: KitHost, stateDir: string): Promise<KitHost> {
  return bootKitHost({ stateDir, srcDir: before.srcDir });
}
