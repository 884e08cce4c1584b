// A handover's timeline: the app's unit events from the host's journal (preflight, new slot, old slot) lined up with each request of a load.
import type { Sample } from './apps.ts';
import type { TestHost } from '../host/host.ts';
import { handoverBound, percentile } from '../bench/load.ts';

export interface UnitEvent {
  /** Epoch ms (the journal's realtime clock: the same clock as the load's samples). */
  t: number;
  /** "preflight", or the slot's unit (app@a.service). */
  who: string;
  /** systemd's message: "Starting …", "Started …", "Stopping …", "Stopped …", "… Deactivated successfully". */
  what: string;
}

/** systemd's own journal lines about the app's slot and preflight units from sinceMs on. */
export async function unitEvents(host: TestHost, app: string, sinceMs: number): Promise<UnitEvent[]> {
  const r = await host.exec(['journalctl', '-o', 'json', '--no-pager', `--since=@${(sinceMs / 1000).toFixed(3)}`, '_PID=1'], { timeoutMs: 30_000 });
  const events: UnitEvent[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    let e: Record<string, string>;
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    const unit = e.UNIT ?? '';
    const who = unit.startsWith(`${app}@`) ? unit : unit.startsWith(`cutover-preflight-${app}-`) ? 'preflight' : undefined;
    if (!who || typeof e.MESSAGE !== 'string') continue;
    const what = /^(Starting|Started|Stopping|Stopped)\b/.exec(e.MESSAGE)?.[1] ?? (/Deactivated/.test(e.MESSAGE) ? 'Deactivated' : undefined);
    if (what) events.push({ t: Number(e.__REALTIME_TIMESTAMP) / 1000, who, what });
  }
  return events.sort((a, b) => a.t - b.t);
}


export interface CutoverWindow {
  /** Slowest answer to a request that started before the verb did (the steady state of the same run). */
  steadyMax: number;
  /** Slowest answer to a request that started while the verb ran before the window (its fetch and build). */
  buildMax: number;
  /** Slowest answer to a request that started in the window: from the preflight's start to the old slot's stop. */
  windowMax: number;
  bound: number;
  /**
   * The p99 of the same two spans: a second view of the goal for a busy host, where the window (longer than one request) meets
   * more scheduler hiccups than the steady span's max shows. Reported, not judged.
   */
  steadyP99: number;
  windowP99: number;
  /** The window's slowest requests: when they started (ms after the window began), how long they took, and the last unit event before they started. */
  slowest: { atMs: number; ms: number; after: string; version?: string }[];
  /** The unit events, ms after the window began. */
  events: string[];
}

/**
 * Lines a load's samples up with the unit events: the steady max before the verb started (verbStart, epoch ms), the max
 * while it built, the max inside the window, the slowest requests and the step they fell in.
 */
export function cutoverWindow(samples: Sample[], events: UnitEvent[], verbStart: number): CutoverWindow | undefined {
  if (events.length === 0) return undefined;
  const start = events[0].t;
  const steadyEnd = Math.min(verbStart, start);
  const stops = events.filter((e) => e.what === 'Stopped' || e.what === 'Deactivated');
  const end = Math.max(start, ...stops.map((e) => e.t));
  const ok = samples.filter((s) => s.ok);
  const steady = ok.filter((s) => s.start < steadyEnd).map((s) => s.ms).sort((a, b) => a - b);
  const steadyMax = steady.at(-1) ?? 0;
  const buildMax = Math.max(0, ...ok.filter((s) => s.start >= steadyEnd && s.start < start).map((s) => s.ms));
  const inside = ok.filter((s) => s.start >= start && s.start <= end).sort((a, b) => b.ms - a.ms);
  const label = (e: UnitEvent) => `${e.what} ${e.who}`;
  const r = (n: number) => Math.round(n);
  return {
    steadyMax: r(steadyMax),
    buildMax: r(buildMax),
    windowMax: r(inside[0]?.ms ?? 0),
    bound: r(handoverBound(steadyMax)),
    steadyP99: r(percentile(steady, 99)),
    windowP99: r(percentile(inside.map((s) => s.ms).reverse(), 99)),
    slowest: inside.slice(0, 5).map((s) => {
      const before = events.filter((e) => e.t <= s.start).at(-1);
      return { atMs: r(s.start - start), ms: r(s.ms), after: before ? label(before) : 'before the first event', version: s.version };
    }),
    events: events.map((e) => `+${r(e.t - start)} ${label(e)}`),
  };
}

/** One paragraph for a test's output. */
export function describeWindow(w: CutoverWindow | undefined): string {
  if (!w) return 'cut-over window: no unit events found';
  const slow = w.slowest.map((s) => `${s.ms} ms at +${s.atMs} (after: ${s.after}${s.version ? `; answered by ${s.version}` : ''})`).join('; ');
  return `cut-over window: steady max ${w.steadyMax} ms, window max ${w.windowMax} ms (no-stall limit ${w.bound} ms: ${w.windowMax <= w.bound ? 'within' : 'OVER'}), p99 steady ${w.steadyP99} ms, window ${w.windowP99} ms; build max ${w.buildMax} ms; slowest ${slow}\n    events: ${w.events.join(', ')}`;
}
