// Service control through the real systemctl and journalctl; the only module that talks to systemd.
import fs from 'node:fs';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { Ops } from '../run/ops.ts';

/**
 * Test-only: CUTOVER_SYSTEMD=off switches service control off — preflight, starting and stopping
 * slots, unit states, the journal, daemon-reload — so the fs test tier runs the kit for real on a
 * machine whose PID 1 is not systemd. The health check itself still gates an activation.
 */
export function serviceControlEnabled(env = process.env): boolean {
  return env.CUTOVER_SYSTEMD !== 'off';
}

/**
 * A question to systemd (systemctl show, list-units; journalctl) that changes nothing: its standard
 * output, '' when it fails. Argv straight to the program, without zx and the bash it starts: every
 * verb asks a few of these before it does anything, and status loads no zx at all. Whatever changes
 * something runs through Ops (zx), which prints it in a dry run.
 */
export function systemdQuery(program: 'systemctl' | 'journalctl', args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(program, args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (_error, stdout) => resolve(stdout ?? ''));
  });
}

/** A change to units (start, stop, enable, disable, reload…) through Ops, so a dry run prints it; throws when systemctl fails. */
export async function systemctl(ops: Ops, args: string[]): Promise<void> {
  await ops.run(['systemctl', ...args], { quiet: true });
}

/** Clears units' failed or start-limited state; a unit systemd does not know is no error. */
export async function resetFailed(ops: Ops, units: string[]): Promise<void> {
  await ops.run(['systemctl', 'reset-failed', ...units], { quiet: true }).catch(() => undefined);
}

/**
 * Stops transient units a run of the kit started (preflight) and clears their state: cleaning up, so
 * nothing to print in a dry run, and a unit already gone is no error.
 */
export async function stopTransient(units: string[]): Promise<void> {
  if (!serviceControlEnabled()) return;
  await systemdQuery('systemctl', ['stop', ...units]);
  await systemdQuery('systemctl', ['reset-failed', ...units]);
}

/** `enabled`, `disabled`, `static`, `not-found`…, as `systemctl is-enabled` says. */
export async function enablement(unit: string): Promise<string> {
  return (await systemdQuery('systemctl', ['is-enabled', unit])).trim() || 'not-found';
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
  const out = await systemdQuery('systemctl', ['show', '--property=ActiveState,SubState', unit]);
  const props = Object.fromEntries(out.trim().split('\n').map((l) => l.split('=') as [string, string]));
  if (props.SubState === 'auto-restart') return 'failed';
  return props.ActiveState || 'unknown';
}


/** The unit's last journal lines as the program wrote them (no time stamps), for an error message. */
export async function journalMessages(unit: string, lines: number): Promise<string> {
  return (await systemdQuery('journalctl', ['--unit', unit, '--no-pager', '--lines', String(lines), '--output', 'cat'])).trim();
}

/** The unit's last journal lines, for an operator reading why a cutover failed. */
export async function journalTail(unit: string, lines = 20, since?: Date): Promise<string> {
  if (!serviceControlEnabled()) return '';
  const sinceArgs = since ? ['--since', `@${Math.floor(since.getTime() / 1000)}`] : [];
  return (await systemdQuery('journalctl', ['--unit', unit, '--no-pager', '--output=short-iso', '--lines', String(lines), ...sinceArgs])).trim();
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

/** journalctl with these arguments, its standard output as it comes (for -f); the caller ends it. */
export function followJournal(args: string[]): ChildProcess {
  return spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
}

/** When a unit's run (its invocation id) logged its first line, in ms since the epoch; undefined when the journal has none. */
export function invocationStart(invocation: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    if (!/^[0-9a-f]{32}$/.test(invocation)) return resolve(undefined);
    const child = spawn('journalctl', [`_SYSTEMD_INVOCATION_ID=${invocation}`, '+', `INVOCATION_ID=${invocation}`, '--output=short-unix', '--no-pager', '--quiet'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        child.kill();
        const s = Number(buf.slice(0, nl).split(' ')[0]);
        resolve(Number.isFinite(s) ? Math.floor(s * 1000) : undefined);
      }
    });
    child.on('close', () => resolve(undefined));
    child.on('error', () => resolve(undefined));
  });
}


/** The unit's control group (systemctl show ControlGroup, e.g. /system.slice/system-app.slice/app@b.service); undefined when it has none (not running). */
export async function controlGroup(unit: string): Promise<string | undefined> {
  if (!serviceControlEnabled()) return undefined;
  const cg = (await systemdQuery('systemctl', ['show', '--property=ControlGroup', '--value', unit])).trim();
  return cg.startsWith('/') ? cg : undefined;
}
