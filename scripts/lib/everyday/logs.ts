// cutover logs: the journal of both slots, the preflights and exec commands, each line marked with the release it came from (from the unit's name, or the history's activations for a slot's run).
import type { HistoryEvent } from '../state/history.ts';
import { preflightUnitPrefix } from '../host/preflight-units.ts';
import { execUnitPrefix } from './exec.ts';

/** One journal entry as journalctl --output=json gives it (the fields cutover reads). */
export interface JournalEntry {
  __REALTIME_TIMESTAMP?: string;
  _SYSTEMD_UNIT?: string;
  UNIT?: string;
  _SYSTEMD_INVOCATION_ID?: string;
  INVOCATION_ID?: string;
  _PID?: string;
  MESSAGE?: string | number[] | null;
}

export interface LogLine {
  at: string;
  /** The release the line came from, or null when the history cannot tell. */
  release: string | null;
  /** slot a, slot b, preflight, exec. */
  source: string;
  unit: string;
  pid?: number;
  message: string;
}

/** The units whose journal is the app's: both slots, every preflight, every exec command. */
export function appUnits(app: string): string[] {
  return [`${app}@a.service`, `${app}@b.service`, `${preflightUnitPrefix(app)}*`, `${execUnitPrefix(app)}*`];
}

/**
 * Marks journal entries with their release (pure but for `releaseOfPid`). A preflight's and an exec's
 * unit name holds it. A slot's run (one invocation) serves the release its process runs in, when that
 * process still runs (`releaseOfPid`: its working directory, the first answer kept for the run); else
 * the release of the first activation recorded at or after the run began (the activation that started
 * it: recorded once it passed its gate, or failed), else — a run the socket started after the last
 * activation — the release live since then. (An activation still under way is not recorded yet: only a
 * live process can tell its lines.)
 */
export function markLines(
  entries: JournalEntry[],
  events: HistoryEvent[],
  app: string,
  firstSeen = new Map<string, number>(),
  releaseOfPid: (pid: number) => string | undefined = () => undefined,
  runRelease = new Map<string, string>(),
): LogLine[] {
  const acts = events.filter((e) => e.event === 'activated' || e.event === 'activation-failed').map((e) => ({ t: Date.parse(e.at), e }));
  const releaseAt = (t: number): string | null => {
    const next = acts.find((a) => a.t >= t);
    if (next) return next.e.release;
    return acts.filter((a) => a.e.event === 'activated').at(-1)?.e.release ?? null;
  };
  const out: LogLine[] = [];
  for (const e of entries) {
    // systemd's own lines about a unit (Started…, Stopped…) come from init.scope and name the unit in UNIT.
    const unit = (e._SYSTEMD_UNIT && e._SYSTEMD_UNIT !== 'init.scope' ? e._SYSTEMD_UNIT : e.UNIT) ?? e._SYSTEMD_UNIT ?? '';
    const micros = Number(e.__REALTIME_TIMESTAMP ?? 0);
    const t = Math.floor(micros / 1000);
    const message = typeof e.MESSAGE === 'string' ? e.MESSAGE : Array.isArray(e.MESSAGE) ? Buffer.from(e.MESSAGE).toString('utf8') : '';
    let release: string | null = null;
    let source = unit;
    const named = (prefix: string) => unit.slice(prefix.length).replace(/\.(service|socket)$/, '').match(/^([0-9a-f]{12}(?:-r[0-9]{1,4})?)/)?.[1] ?? null;
    if (unit.startsWith(preflightUnitPrefix(app))) {
      release = named(preflightUnitPrefix(app));
      source = 'preflight';
    } else if (unit.startsWith(execUnitPrefix(app))) {
      release = named(execUnitPrefix(app));
      source = 'exec';
    } else {
      const slot = /@([ab])\.service$/.exec(unit)?.[1];
      source = slot ? `slot ${slot}` : unit;
      const run = e._SYSTEMD_INVOCATION_ID ?? e.INVOCATION_ID ?? unit;
      if (!firstSeen.has(run)) firstSeen.set(run, t);
      const fromProcess = e._SYSTEMD_INVOCATION_ID && e._PID ? releaseOfPid(Number(e._PID)) : undefined;
      if (fromProcess && !runRelease.has(run)) runRelease.set(run, fromProcess);
      release = runRelease.get(run) ?? releaseAt(firstSeen.get(run)!);
    }
    out.push({ at: new Date(t).toISOString(), release, source, unit, pid: e._PID ? Number(e._PID) : undefined, message });
  }
  return out;
}

/** A line for people: time, release, source, message. */
export function formatLine(l: LogLine): string {
  return `${l.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} ${(l.release ?? '?').padEnd(12)} ${l.source.padEnd(9)} ${l.message}`;
}
