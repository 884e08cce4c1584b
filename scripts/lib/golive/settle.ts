// Waits, before the gate probes, until every process of the new slot waits for work (an event loop, select, accept): probes sent while it boots only hold the old slot.
import fs from 'node:fs';
import path from 'node:path';
import { controlGroup } from '../host/systemd.ts';
import { waitsForWork } from '../state/procfs.ts';

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
