// Runs a command in its own process group with a time limit; on expiry, or when the kit is told to stop, the whole group is stopped.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { onStop, type StopSignal } from './stop.ts';

/** How long a stopped step's processes get between SIGTERM and SIGKILL. */
export const STOP_GRACE_MS = 5_000;

export interface GroupOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Stop the whole group after this many milliseconds. */
  timeoutMs: number;
  graceMs?: number;
  /** Stream the output (the default) or capture it. */
  quiet?: boolean;
  /** Streamed, its standard output goes to stderr too (the verb's own stdout is one JSON line). */
  outputToStderr?: boolean;
}

export type GroupOutcome =
  | {
      kind: 'exited';
      code: number | null;
      signal: NodeJS.Signals | null;
      stdout: string;
      stderr: string;
      /** Processes the command left running in its group (e.g. `daemon &`): stopped once it exited. */
      leftovers: number;
    }
  | { kind: 'timed-out'; stdout: string; stderr: string }
  | { kind: 'stopped'; signal: StopSignal; stdout: string; stderr: string };

/** Pids of the live (not zombie) processes in a process group, from /proc. */
export function groupMembers(pgid: number, proc = '/proc'): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync(proc)) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`${proc}/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') out.push(Number(name));
    } catch {
      // It ended while we looked.
    }
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** SIGTERM to the whole group, SIGKILL to what is left after graceMs; resolves when no member is left. */
export async function stopGroup(pgid: number, graceMs = STOP_GRACE_MS): Promise<void> {
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (groupMembers(pgid).length > 0) {
    if (Date.now() >= deadline) {
      signalGroup(pgid, 'SIGKILL');
      for (let i = 0; i < 100 && groupMembers(pgid).length > 0; i++) await sleep(20);
      return;
    }
    await sleep(50);
  }
}

/**
 * The step's group leader: a shell that starts a watcher in the group, then execs the command. The
 * watcher reads fd 3, a pipe whose other end only the kit holds: when the kit dies, even by SIGKILL,
 * the kernel closes that end, the read returns, and the watcher SIGKILLs its whole group. So nothing a
 * step started outlives the kit. The command itself never sees fd 3.
 */
const LEADER = '(read _ <&3; kill -9 0) </dev/null >/dev/null 2>&1 & exec 3<&-; exec "$@"';

/**
 * Runs argv as the leader of a new process group (so everything it starts can be stopped together).
 * Resolves when the group is done: the command exited (anything it left running in its group is
 * stopped), or the group was stopped (time limit, or the kit told to stop) and no member is left.
 */
export function runInGroup(argv: string[], o: GroupOptions): Promise<GroupOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', LEADER, 'cutover-step', ...argv], {
      cwd: o.cwd,
      env: o.env ?? process.env,
      detached: true,
      stdio: [...(o.quiet ? (['ignore', 'pipe', 'pipe'] as const) : (['ignore', o.outputToStderr ? 2 : 'inherit', 'inherit'] as const)), 'pipe'],
    });
    const lifeline = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    let ending: Promise<void> | undefined;
    let why: { kind: 'timed-out' } | { kind: 'stopped'; signal: StopSignal } | undefined;
    const stop = (reason: NonNullable<typeof why>) => {
      if (ending || child.pid === undefined) return;
      why = reason;
      ending = stopGroup(child.pid, o.graceMs);
    };
    const timer = setTimeout(() => stop({ kind: 'timed-out' }), o.timeoutMs);
    const forget = onStop((signal) => stop({ kind: 'stopped', signal }));
    const settle = async (): Promise<number> => {
      clearTimeout(timer);
      forget();
      if (ending) await ending;
      // The watcher is the one member left after a clean exit; any other is a leftover of the command.
      const left = child.pid === undefined ? 0 : Math.max(0, groupMembers(child.pid).length - 1);
      if (left > 0 && !ending) await stopGroup(child.pid!, o.graceMs);
      lifeline.destroy();
      for (let i = 0; i < 100 && child.pid !== undefined && groupMembers(child.pid).length > 0; i++) await sleep(20);
      return left;
    };
    child.on('error', async (e) => {
      await settle();
      reject(e);
    });
    // 'exit', not 'close': the watcher holds fd 3 until the kit lets go of it.
    const outputRead = Promise.all([child.stdout, child.stderr].map((st) => st && new Promise((r) => st.once('close', r))));
    child.on('exit', async (code, signal) => {
      const leftovers = await settle();
      await outputRead;
      if (why?.kind === 'timed-out') resolve({ kind: 'timed-out', stdout, stderr });
      else if (why?.kind === 'stopped') resolve({ kind: 'stopped', signal: why.signal, stdout, stderr });
      else resolve({ kind: 'exited', code, signal, stdout, stderr, leftovers });
    });
  });
}
