// Bench load: workers on loopback, a new connection per request, around one deploy; every answer's version is kept.
import { errorKey, httpGet, loopbackUrl } from '../helpers/apps.ts';

export interface Hit {
  /** ms since the load began */
  start: number;
  ms: number;
  ok: boolean;
  error?: string;
  /** the `version` field of the app's JSON answer to GET / */
  version?: string;
}

export interface LoadOptions {
  workers?: number;
  /** Load before the action starts (default 1000 ms). */
  leadMs?: number;
  /** Load after the action ends and the app answers again (default 1000 ms). */
  tailMs?: number;
  /** After the action, wait at most this long for the app to answer again before the tail (default 5000 ms). */
  settleMaxMs?: number;
  /** Hard bound on the whole load, whatever the action does (default 120 s). */
  maxMs?: number;
  /** Hard bound on the number of requests (default 2 000 000). */
  maxRequests?: number;
  requestTimeoutMs?: number;
}

export interface LoadRun<T> {
  hits: Hit[];
  result: T;
  /** ms since the load began */
  actionStart: number;
  actionEnd: number;
  loadEnd: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function hit(url: string, began: number, timeoutMs: number): Promise<Hit> {
  const t = performance.now();
  const start = t - began;
  try {
    const res = await httpGet(url, { timeoutMs });
    const ms = performance.now() - t;
    if (res.status < 200 || res.status >= 300) return { start, ms, ok: false, error: `HTTP ${res.status}` };
    let version: string | undefined;
    try {
      version = String(JSON.parse(res.body).version);
    } catch {
      version = undefined;
    }
    return { start, ms, ok: true, version };
  } catch (err) {
    return { start, ms: performance.now() - t, ok: false, error: errorKey(err) };
  }
}

/**
 * Loads url from `workers` loops (no pause after a failure, so the counts are raw), starts `action`
 * after leadMs, and stops tailMs after it ends. Bounded by maxMs and maxRequests.
 */
export async function loadAround<T>(url: string, action: () => Promise<T>, opts: LoadOptions = {}): Promise<LoadRun<T>> {
  loopbackUrl(url);
  const workers = opts.workers ?? 8;
  const maxMs = opts.maxMs ?? 120_000;
  const maxRequests = opts.maxRequests ?? 2_000_000;
  const timeoutMs = opts.requestTimeoutMs ?? 5000;
  const hits: Hit[] = [];
  const began = performance.now();
  let stop = false;
  let lastOkStart = -1;
  const hardStop = setTimeout(() => (stop = true), maxMs);
  const worker = async () => {
    while (!stop && hits.length < maxRequests) {
      const h = await hit(url, began, timeoutMs);
      hits.push(h);
      if (h.ok) lastOkStart = Math.max(lastOkStart, h.start);
    }
  };
  const loops = Array.from({ length: workers }, worker);
  let result: T;
  let actionStart = 0;
  let actionEnd = 0;
  try {
    await sleep(opts.leadMs ?? 1000);
    actionStart = performance.now() - began;
    result = await action();
    actionEnd = performance.now() - began;
    // A plain `systemctl restart` returns before the app is back: keep loading until it answers again.
    const settleUntil = performance.now() + (opts.settleMaxMs ?? 5000);
    while (lastOkStart < actionEnd && performance.now() < settleUntil && !stop) await sleep(20);
    await sleep(opts.tailMs ?? 1000);
  } finally {
    stop = true;
    clearTimeout(hardStop);
    await Promise.all(loops);
  }
  return { hits, result: result!, actionStart, actionEnd, loadEnd: performance.now() - began };
}

export interface LoadSummary {
  requests: number;
  failed: number;
  /** failures by cause: ECONNREFUSED, ECONNRESET, ETIMEDOUT, HTTP 5xx… */
  errors: Record<string, number>;
  /** longest span from a failed request's start to the start of the next request that succeeded (ms) */
  longestOutageMs: number;
  /** true when the app was still failing when the load stopped */
  outageOpenAtEnd: boolean;
  p50: number;
  p99: number;
  max: number;
  /** answers per version, in the order the versions first answered */
  versions: Record<string, number>;
  /** the versions in the order they answered, consecutive repeats collapsed */
  sequence: string[];
  /** ms the load ran */
  loadMs: number;
  /** the slowest answer to a request that started before the deploy did: the steady state of this run */
  steadyMax: number;
  /** the slowest answer to a request that started while the deploy ran: the cutover window */
  windowMax: number;
}

/** The handover goal: the cutover window's max latency at most max(1.5 × steady max, steady max + 50 ms) of the same run. */
export function handoverBound(steadyMax: number): number {
  return Math.max(1.5 * steadyMax, steadyMax + 50);
}

/** The p-th percentile of ascending numbers (nearest rank); 0 for none. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const round = (n: number) => Math.round(n * 10) / 10;

export function summarise(run: LoadRun<unknown>): LoadSummary {
  const sorted = [...run.hits].sort((a, b) => a.start - b.start);
  const errors: Record<string, number> = {};
  const versions: Record<string, number> = {};
  const sequence: string[] = [];
  let longest = 0;
  let outageStart: number | undefined;
  for (const h of sorted) {
    if (h.error) errors[h.error] = (errors[h.error] ?? 0) + 1;
    if (h.version !== undefined) {
      versions[h.version] = (versions[h.version] ?? 0) + 1;
      if (sequence.at(-1) !== h.version) sequence.push(h.version);
    }
    if (!h.ok && outageStart === undefined) outageStart = h.start;
    if (h.ok && outageStart !== undefined) {
      longest = Math.max(longest, h.start - outageStart);
      outageStart = undefined;
    }
  }
  if (outageStart !== undefined) longest = Math.max(longest, run.loadEnd - outageStart);
  const latencies = sorted.filter((h) => h.ok).map((h) => h.ms).sort((a, b) => a - b);
  return {
    requests: sorted.length,
    failed: sorted.filter((h) => !h.ok).length,
    errors,
    longestOutageMs: round(longest),
    outageOpenAtEnd: outageStart !== undefined,
    p50: round(percentile(latencies, 50)),
    p99: round(percentile(latencies, 99)),
    max: round(latencies.at(-1) ?? 0),
    versions,
    sequence,
    loadMs: round(run.loadEnd),
    steadyMax: round(Math.max(0, ...sorted.filter((h) => h.ok && h.start < run.actionStart).map((h) => h.ms))),
    windowMax: round(Math.max(0, ...sorted.filter((h) => h.ok && h.start >= run.actionStart && h.start <= run.actionEnd).map((h) => h.ms))),
  };
}

/** For a version that should never have served: how many answers it gave and over how long (ms). */
export function servedBy(run: LoadRun<unknown>, version: string): { answers: number; firstMs?: number; spanMs: number } {
  const own = run.hits.filter((h) => h.version === version).map((h) => h.start);
  if (own.length === 0) return { answers: 0, spanMs: 0 };
  const first = own.reduce((a, b) => Math.min(a, b));
  const last = own.reduce((a, b) => Math.max(a, b));
  return { answers: own.length, firstMs: round(first - run.actionStart), spanMs: round(last - first) };
}
