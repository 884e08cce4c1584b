// Waits, before the gate probes, until every process of the new slot waits for work (an event loop, select, accept): probes sent while it boots only hold the old slot.
import fs from 'node:fs';
import path from 'node:path';
import { controlGroup } from '../host/systemd.ts';

/**
 * The processes of a control group, from cgroup.procs in systemd's v2 tree: at <root><cgroup> on a unified
 * host (Ubuntu 24.04, bookworm), at <root>/unified<cgroup> on a hybrid one. undefined when neither is readable.
 */
export function cgroupPids(cgroup: string, cgroupRoot = '/sys/fs/cgroup'): number[] | undefined {
  for (const dir of [path.join(cgroupRoot, cgroup), path.join(cgroupRoot, 'unified', cgroup)]) {
    try {
      return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      // not this layout
    }
  }
  return undefined;
}

/**
 * Kernel functions a process sleeps in while it waits for work: an event loop (epoll), select or poll (gunicorn's
 * workers and arbiter), accept, a read on a socket, a supervisor's wait for its children, a timed sleep.
 * A booting app runs, or waits on its disk; a Node app's event loop may also wait while it boots (its file
 * reads run on other threads), so for Node this says little — there the warm-up holds connections back.
 */
const WAITING_FOR_WORK = /^(do_epoll_wait|ep_poll|poll_schedule_timeout|do_select|core_sys_select|do_sys_poll|do_poll|inet_csk_accept|sk_wait_data|wait_woken|do_wait|hrtimer_nanosleep|do_nanosleep)$/;

/** Whether a process sleeps waiting for work (state S, its wchan one of the above); undefined when it is gone. */
export function waitsForWork(pid: number, proc = '/proc'): boolean | undefined {
  try {
    const stat = fs.readFileSync(path.join(proc, String(pid), 'stat'), 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    // The compiler's suffixes go (poll_schedule_timeout.constprop.0: select and poll on kernel 6.x).
    const wchan = fs.readFileSync(path.join(proc, String(pid), 'wchan'), 'utf8').trim().split('.')[0]!;
    return state === 'S' && WAITING_FOR_WORK.test(wchan);
  } catch {
    return undefined;
  }
}

export interface BootWait {
  booted: boolean;
  ms: number;
  detail: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (at most maxMs) until the new slot has booted: the same processes in its cgroup for `stableLooks`
 * looks in a row (`everyMs` apart; gunicorn forks its workers after its arbiter starts), each of them seen
 * waiting for work since. A probe the old slot takes is closed at once, but a server whose workers serve
 * one connection at a time (gunicorn's sync workers) waits on it until then: probing while the new slot
 * boots only held the live one (measured: 4–5 probes per Django handover, each holding both old workers
 * 25–100 ms). Reads /proc and the cgroup tree only; never throws; without the slot's cgroup it returns at once.
 */
export async function untilBooted(
  newUnit: string,
  opts: { maxMs: number; everyMs?: number; stableLooks?: number; cgroup?: string; cgroupRoot?: string; proc?: string },
): Promise<BootWait> {
  const began = performance.now();
  const cg = opts.cgroup ?? (await controlGroup(newUnit));
  const elapsed = () => Math.round(performance.now() - began);
  let set = '';
  let stable = 0;
  let seenWaiting = new Set<number>();
  for (;;) {
    const pids = cg ? cgroupPids(cg, opts.cgroupRoot) : undefined;
    if (!pids) return { booted: false, ms: elapsed(), detail: `no process list for ${newUnit}` };
    // Its processes are gone (it exited, or systemd restarts it): the gate's own check says so at once.
    if (pids.length === 0) return { booted: false, ms: elapsed(), detail: `${newUnit} has no process` };
    const key = [...pids].sort((a, b) => a - b).join(' ');
    if (key !== set) {
      set = key;
      stable = 0;
      seenWaiting = new Set();
    } else stable++;
    for (const pid of pids) if (waitsForWork(pid, opts.proc)) seenWaiting.add(pid);
    if (stable >= (opts.stableLooks ?? 2) && pids.every((p) => seenWaiting.has(p))) {
      return { booted: true, ms: elapsed(), detail: `${newUnit} booted: ${pids.length} process(es) waiting for work after ${elapsed()} ms` };
    }
    if (elapsed() >= opts.maxMs) return { booted: false, ms: elapsed(), detail: `${newUnit} still booting after ${opts.maxMs} ms` };
    await sleep(opts.everyMs ?? 50);
  }
}
