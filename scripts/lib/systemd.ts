// Service control through the real systemctl and journalctl; the only module that talks to systemd.
import fs from 'node:fs';
import { $ } from 'zx/core';
import type { Ops } from './ops.ts';

/**
 * Test-only: CUTOVER_SYSTEMD=off switches service control off — preflight, starting and stopping
 * slots, unit states, the journal, daemon-reload — so the fs test tier runs the kit for real on a
 * machine whose PID 1 is not systemd. The health check itself still gates an activation.
 */
export function serviceControlEnabled(env = process.env): boolean {
  return env.CUTOVER_SYSTEMD !== 'off';
}

async function systemctl(args: string[]) {
  return $({ quiet: true, nothrow: true })`systemctl ${args}`;
}

export async function daemonReload(ops: Ops): Promise<void> {
  if (!serviceControlEnabled()) return;
  await ops.run(['systemctl', 'daemon-reload'], { quiet: true });
}

/**
 * `active`, `activating`, `failed`, `inactive`…; "off" when service control is off. A unit waiting to
 * be restarted after its process died (SubState auto-restart) counts as failed: the app exited.
 */
export async function unitState(unit: string): Promise<string> {
  if (!serviceControlEnabled()) return 'off';
  const p = await systemctl(['show', '--property=ActiveState,SubState', unit]);
  const props = Object.fromEntries(p.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
  if (props.SubState === 'auto-restart') return 'failed';
  return props.ActiveState || 'unknown';
}


/** The unit's last journal lines, for an operator reading why a cutover failed. */
export async function journalTail(unit: string, lines = 20, since?: Date): Promise<string> {
  if (!serviceControlEnabled()) return '';
  const sinceArgs = since ? ['--since', `@${Math.floor(since.getTime() / 1000)}`] : [];
  const p = await $({ quiet: true, nothrow: true })`journalctl --unit ${unit} --no-pager --output=short-iso --lines ${String(lines)} ${sinceArgs}`;
  return p.stdout.trim();
}

/** Was the unit file written after a process that started at `startedAtS` (seconds since the epoch; the slot's state has it), so that it runs the old unit? */
export function unitChangedSince(startedAtS: number | undefined, unitFile: string): boolean {
  if (!serviceControlEnabled() || !startedAtS) return false;
  try {
    return fs.statSync(unitFile).mtimeMs / 1000 > startedAtS;
  } catch {
    return false;
  }
}
