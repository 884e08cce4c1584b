// The names of an app's preflight units, and which of them systemd still has (status and every locked verb ask; neither needs the rest of preflight).
import { serviceControlEnabled, systemdQuery } from './systemd.ts';

/** The transient unit's name prefix for this app: every preflight unit of the app starts with it. */
export function preflightUnitPrefix(app: string): string {
  return `cutover-preflight-${app}-`;
}

/** The app's preflight units that systemd knows (running or failed): left by a kit that was killed during preflight. */
export async function preflightLeftovers(app: string): Promise<string[]> {
  if (!serviceControlEnabled()) return [];
  const out = await systemdQuery('systemctl', ['list-units', '--all', '--plain', '--no-legend', '--full', `${preflightUnitPrefix(app)}*`]);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((u) => u.startsWith(preflightUnitPrefix(app)) && (u.endsWith('.service') || u.endsWith('.socket')));
}
