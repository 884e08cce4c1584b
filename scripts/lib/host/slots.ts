// The app's two service slots as systemd runs them: each one's state, main process and the release it serves.
import { SLOTS, otherSlot, type AppPaths, type Slot } from '../manifest/paths.ts';
import { releaseOfProcess } from '../state/procfs.ts';
import { serviceControlEnabled, systemdQuery } from './systemd.ts';

export interface SlotState {
  slot: Slot;
  unit: string;
  /** ActiveState (active, activating, deactivating, inactive, failed…); "failed" also while it waits to auto-restart. */
  state: string;
  pid?: number;
  /** The release its main process runs in (its working directory), read from /proc. */
  release?: string;
  /** When its main process started (µs, monotonic clock): which of two slots is the newer. */
  startedUs: number;
  /** The same instant in seconds since the epoch, to compare with a file's mtime; undefined when it never started. */
  startedAtS?: number;
}

/** Serving or about to: a slot in one of these states holds (or will hold) the socket. */
export function isRunning(s: SlotState): boolean {
  return s.state === 'active' || s.state === 'activating' || s.state === 'reloading';
}

/** Both slots in one `systemctl show` call (every verb that acts reads them: one call, not one per property); empty when service control is off (the fs test tier). */
export async function slotStates(paths: AppPaths): Promise<SlotState[]> {
  if (!serviceControlEnabled()) return [];
  const units = SLOTS.map((s) => paths.slotUnit(s));
  const out = await systemdQuery('systemctl', ['show', '--timestamp=unix', '--property=Id,ActiveState,SubState,MainPID,ExecMainStartTimestamp,ExecMainStartTimestampMonotonic', ...units]);
  const blocks = out.trim().split(/\n\s*\n/);
  return SLOTS.map((slot, i) => {
    const props = Object.fromEntries((blocks[i] ?? '').split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const pid = Number(props.MainPID) || undefined;
    return {
      slot,
      unit: units[i]!,
      state: props.SubState === 'auto-restart' ? 'failed' : props.ActiveState || 'unknown',
      pid,
      release: releaseOfProcess(paths.releases, pid),
      startedUs: Number(props.ExecMainStartTimestampMonotonic) || 0,
      startedAtS: Number((props.ExecMainStartTimestamp ?? '').replace(/^@/, '')) || undefined,
    };
  });
}

/** The slot that serves now: the running one (the newer when a cut-short handover left two). */
export function liveSlot(states: SlotState[]): SlotState | undefined {
  return states.filter(isRunning).sort((a, b) => b.startedUs - a.startedUs)[0];
}

/**
 * Of two running slots (a handover cut short), the one to keep: the one serving the release the
 * history last recorded live (of two serving it, the older: the newer is an unconfirmed restart),
 * else the older. With one running slot, that one.
 */
export function slotToKeep(running: SlotState[], recordedLive: string | undefined): SlotState | undefined {
  const byAge = [...running].sort((a, b) => a.startedUs - b.startedUs);
  return byAge.find((s) => s.release === recordedLive) ?? byAge[0];
}

/** The slot a cutover starts the new process in: the one that does not serve (slot a when none does). */
export function idleSlot(states: SlotState[]): Slot {
  const live = liveSlot(states);
  return live ? otherSlot(live.slot) : 'a';
}
