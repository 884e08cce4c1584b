// The staging directories of received archives (root-only, one per run, named with its pid, holding the copy and the unpacked tree): what a killed run left is removed by the next.
import fs from 'node:fs';
import path from 'node:path';
import { processStartTicks } from '../state/procfs.ts';

/** Removes the staging directories that runs killed before they could remove their own left (their pid is gone). */
export function clearDeadStaging(prefix: string): void {
  const dir = path.dirname(prefix);
  const base = path.basename(prefix);
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) {
    const pid = name.startsWith(base) ? Number(/^(\d+)-/.exec(name.slice(base.length))?.[1]) : NaN;
    if (!Number.isInteger(pid) || pid <= 0 || processStartTicks(pid) !== undefined) continue;
    const full = path.join(dir, name);
    // Only a directory of root's own, as this module makes them.
    const st = fs.lstatSync(full, { throwIfNoEntry: false });
    if (st?.isDirectory() && st.uid === process.getuid?.()) fs.rmSync(full, { recursive: true, force: true });
  }
}
