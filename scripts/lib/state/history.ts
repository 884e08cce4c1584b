// The append-only release history (history.jsonl) and the release state machine folded from it.
import fs from 'node:fs';
import { processStartTicks } from './procfs.ts';

export type EventName =
  | 'build-started'
  | 'build-finished'
  /** cutover build wrote this ready release into an archive: its source gains the archive's sha256 and tree digest. */
  | 'archived'
  | 'build-failed'
  | 'build-interrupted'
  | 'activated'
  | 'activation-failed'
  /** A before_cutover hook stopped the activation before anything changed: the release keeps its state. */
  | 'activation-stopped'
  | 'marked-bad'
  | 'removed'
  /** cutover exec ran a command in the release (not a state change). */
  | 'exec';

export interface HistoryEvent {
  at: string;
  event: EventName;
  release: string;
  commit?: string;
  /** The ref the operator asked for (release only). */
  ref?: string;
  /** Who: the sudo user where there is one. */
  by: string;
  /** The process that wrote the event, with its start ticks (guards against pid reuse). */
  pid?: number;
  started?: number;
  duration_ms?: number;
  /** The release that was live before an activation. */
  previous?: string | null;
  /** activate | release | rollback: which verb made an activation. */
  via?: string;
  reason?: string;
  /** exec: the command line (env-file values masked) and its exit code. */
  command?: string;
  exit?: number;
  /** build-started and build-finished: where the release's tree came from (git, or an archive built elsewhere). */
  source?: ReleaseSource;
}

/** Where a release's tree came from: a git export built here, or an archive built elsewhere (its sha256, tree digest, builder). */
export interface ReleaseSource {
  kind: 'git' | 'archive';
  sha256?: string;
  /** sha256 over the tree's paths, modes and contents: the same on every host that serves the same bytes. */
  treeDigest?: string;
  builtBy?: string;
  builtAt?: string;
}

export type ReleaseState = 'building' | 'interrupted' | 'failed' | 'ready' | 'bad' | 'removed';

export interface ReleaseRecord {
  id: string;
  commit: string;
  ref?: string;
  state: ReleaseState;
  /** Position of its build-started event: the build order, newest highest. */
  order: number;
  builtAt: string;
  buildMs?: number;
  lastActivatedAt?: string;
  reason?: string;
  /** An interrupted build whose interruption is already in the history. */
  interruptionRecorded?: boolean;
  source?: ReleaseSource;
}

export function readHistory(file: string): HistoryEvent[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const events: HistoryEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      events.push(JSON.parse(line) as HistoryEvent);
    } catch {
      // A line cut short by a power loss: everything before it is intact, skip it.
    }
  }
  return events;
}

/** Appends one event and fsyncs it, so the history survives a crash right after the step. */
export function appendHistory(file: string, e: Omit<HistoryEvent, 'at'>): HistoryEvent {
  const event = { at: new Date().toISOString(), ...e } as HistoryEvent;
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o644);
  try {
    // After a line cut short by a crash, start on a fresh line, or this event would be glued to it and lost too.
    const size = fs.fstatSync(fd).size;
    const last = Buffer.alloc(1);
    const torn = size > 0 && fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
    fs.writeSync(fd, (torn ? '\n' : '') + JSON.stringify(event) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return event;
}

/** Is the process that wrote this event still running (same pid, same start time)? */
export function writerAlive(e: HistoryEvent, startTicks = processStartTicks): boolean {
  return e.pid !== undefined && e.started !== undefined && startTicks(e.pid) === e.started;
}

/** Folds the history into one record per release. Pure apart from the liveness probe it is given. */
export function releaseStates(
  events: HistoryEvent[],
  isAlive: (e: HistoryEvent) => boolean = writerAlive,
): Map<string, ReleaseRecord> {
  const records = new Map<string, ReleaseRecord>();
  const starts = new Map<string, HistoryEvent>();
  events.forEach((e, i) => {
    const r = records.get(e.release);
    switch (e.event) {
      case 'build-started':
        starts.set(e.release, e);
        records.set(e.release, { id: e.release, commit: e.commit ?? '', ref: e.ref, state: 'building', order: i, builtAt: e.at, source: e.source });
        return;
      case 'build-finished':
        if (r) Object.assign(r, { state: 'ready', buildMs: e.duration_ms, builtAt: e.at, reason: undefined, ...(e.source ? { source: { ...r.source, ...e.source } } : {}) });
        return;
      case 'archived':
        // The tree is the archive's: releasing that archive here is "already built", and the fleet's status sees the same bytes.
        if (r && e.source) r.source = { ...r.source, ...e.source, kind: r.source?.kind ?? 'git' };
        return;
      case 'build-failed':
        if (r) Object.assign(r, { state: 'failed', buildMs: e.duration_ms, reason: e.reason });
        return;
      case 'build-interrupted':
        if (r && r.state === 'building') Object.assign(r, { state: 'interrupted', reason: e.reason, interruptionRecorded: true });
        return;
      case 'activated': {
        if (r) r.lastActivatedAt = e.at;
        // A rollback's activation names the release it left, which the rollback marks bad: that holds
        // from this line on, so a crash before the separate marked-bad line cannot leave it looking good.
        const left = e.via === 'rollback' && e.previous ? records.get(e.previous) : undefined;
        if (left?.state === 'ready') Object.assign(left, { state: 'bad', reason: `rolled back to ${e.release}` });
        return;
      }
      case 'activation-failed':
      case 'marked-bad':
        if (r && r.state !== 'removed') Object.assign(r, { state: 'bad', reason: e.reason });
        return;
      case 'removed':
        if (r) r.state = 'removed';
        return;
    }
  });
  for (const r of records.values()) {
    if (r.state === 'building' && !isAlive(starts.get(r.id)!)) {
      r.state = 'interrupted';
      r.reason = 'the build stopped part-way (its process is gone)';
    }
  }
  return records;
}

/** Successful activations, oldest first. */
export function activations(events: HistoryEvent[]): HistoryEvent[] {
  return events.filter((e) => e.event === 'activated');
}

/**
 * The release rollback goes to: the newest release activated before, other than the live one,
 * that is still good (ready) and on disk. Never a failed or bad one; order from the history only.
 */
export function rollbackTarget(
  events: HistoryEvent[],
  live: string | undefined,
  records: Map<string, ReleaseRecord>,
  onDisk: (id: string) => boolean,
): string | undefined {
  const acts = activations(events);
  for (let i = acts.length - 1; i >= 0; i--) {
    const id = acts[i].release;
    if (id === live) continue;
    if (records.get(id)?.state === 'ready' && onDisk(id)) return id;
  }
  return undefined;
}

/** The ready release of a commit, newest build first, if any (for reuse on re-release). */
export function readyReleaseOf(commit: string, records: Map<string, ReleaseRecord>): ReleaseRecord | undefined {
  return [...records.values()]
    .filter((r) => r.commit === commit && r.state === 'ready')
    .sort((a, b) => b.order - a.order)[0];
}
