// A release that boots beside the live one (its preflight, then the new slot until the gate passes) runs at a lower CPU priority, so the live slot keeps its CPU on a busy host.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Ops } from '../run/ops.ts';
import { controlGroup } from '../host/systemd.ts';
import { cgroupPids } from './settle.ts';

/**
 * systemd's CPUWeight= while booting (its default is 100): on a unified-cgroup host (Ubuntu 24.04,
 * bookworm, trixie) the booting unit's cgroup gets a fifth of the live slot's share when both want CPU.
 */
export const BOOT_CPU_WEIGHT = 20;

/**
 * The nice value while booting: where no cgroup CPU controller sets the units apart (a hybrid or v1
 * host, a container without its own), this is what lets the live slot's processes go first.
 */
export const BOOT_NICE = 10;

/**
 * How long at most a boot runs at the lower priority before it gets its normal one back, whether it
 * serves yet or not: on a saturated host a starved boot must still finish within the health timeout
 * (a good release is never refused for its priority). Half of the health timeout when that is shorter.
 */
export const BOOT_PRIORITY_MAX_MS = 3000;

/** The systemd-run properties that start a transient unit (a preflight) at the boot priority. */
export function bootPriorityProperties(): string[] {
  return [`--property=CPUWeight=${BOOT_CPU_WEIGHT}`, `--property=Nice=${BOOT_NICE}`];
}

/** The nice value of a thread (field 19 of /proc/<pid>/task/<tid>/stat), undefined when it is gone. */
function niceOf(statFile: string): number | undefined {
  try {
    const stat = fs.readFileSync(statFile, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return undefined;
  }
}

/**
 * Sets `to` as the nice value of every thread, of every process in a control group, whose nice value is
 * `from` now (a value the app set itself is left alone). Nice is per thread on Linux, and a Node app's
 * threads exist before the kit looks; two passes catch a process forked during the first. Returns how
 * many threads changed; never throws (a thread that exits meanwhile is simply gone).
 */
export function reniceControlGroup(cgroup: string, from: (nice: number) => boolean, to: number, opts: { cgroupRoot?: string; proc?: string } = {}): number {
  const proc = opts.proc ?? '/proc';
  let changed = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (const pid of cgroupPids(cgroup, opts.cgroupRoot) ?? []) {
      let tids: string[];
      try {
        tids = fs.readdirSync(path.join(proc, String(pid), 'task'));
      } catch {
        continue;
      }
      for (const tid of tids) {
        const nice = niceOf(path.join(proc, String(pid), 'task', tid, 'stat'));
        if (nice === undefined || nice === to || !from(nice)) continue;
        try {
          os.setPriority(Number(tid), to);
          changed++;
        } catch {
          // gone meanwhile
        }
      }
    }
  }
  return changed;
}

/** A unit's CPU weight through systemd, for this boot only (--runtime: gone at reboot); '' restores the unit's own (systemd's default for a transient unit). */
async function setCpuWeight(ops: Ops, unit: string, weight: number | ''): Promise<void> {
  await ops.run(['systemctl', 'set-property', '--runtime', unit, `CPUWeight=${weight}`], { quiet: true }).catch(() => undefined);
}

/** Before a slot starts beside the live one: its cgroup will get the boot weight from its first instant. */
export async function lowerBeforeStart(ops: Ops, unit: string): Promise<void> {
  await setCpuWeight(ops, unit, BOOT_CPU_WEIGHT);
}

/** Right after a slot started: its processes and threads (those below the boot nice value, as the unit starts them) go to it. Returns the slot's control group. */
export async function lowerAfterStart(unit: string): Promise<string | undefined> {
  const cg = await controlGroup(unit);
  if (cg) reniceControlGroup(cg, (n) => n < BOOT_NICE, BOOT_NICE);
  return cg;
}

/** A unit's normal priority back: the unit's own CPU weight, and nice 0 for the threads at the boot nice value. */
export async function restorePriority(ops: Ops, unit: string, cgroup?: string): Promise<void> {
  const cg = cgroup ?? (await controlGroup(unit));
  if (cg) reniceControlGroup(cg, (n) => n === BOOT_NICE, 0);
  await setCpuWeight(ops, unit, '');
}

/**
 * Restores a unit's priority after `afterMs` unless cancelled first: the bound on how long a boot runs
 * at the lower priority. `done` resolves once a started restore has finished, so nothing runs on after the caller.
 */
export function restoreAfter(ops: Ops, unit: string, afterMs: number, cgroup?: string): { cancel: () => void; done: () => Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const timer = setTimeout(() => {
    running = restorePriority(ops, unit, cgroup).catch(() => undefined);
  }, afterMs);
  return { cancel: () => clearTimeout(timer), done: () => running };
}

/** How long a boot may run at the lower priority for this health timeout (seconds). */
export function bootPriorityWindowMs(healthTimeoutS: number): number {
  return Math.min(BOOT_PRIORITY_MAX_MS, (healthTimeoutS * 1000) / 2);
}
