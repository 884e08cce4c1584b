// Load during a deploy: runLoad plus a sampler of the versions served, around an action (release, rollback…).
import { httpGet, runLoad, errorKey, type LoadResult } from './apps.ts';

export interface VersionSample {
  /** ms since the load began */
  t: number;
  /** the `version` the app answered with, or undefined when the request failed */
  version?: string;
  error?: string;
}

export interface LoadDuring<T> {
  load: LoadResult;
  /** One GET / every sampleEveryMs on a fresh connection, in order: which version answered when. */
  samples: VersionSample[];
  /** What the action returned. */
  result: T;
  /** ms from the load's start to the action's start and end. */
  actionStartMs: number;
  actionEndMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GET <base>/ every intervalMs (new connection each time) until the signal aborts; records version or error. */
async function sampleVersions(base: string, began: number, intervalMs: number, signal: AbortSignal): Promise<VersionSample[]> {
  const samples: VersionSample[] = [];
  while (!signal.aborted) {
    const t = Math.round(performance.now() - began);
    try {
      const res = await httpGet(`${base}/`, { timeoutMs: 5000 });
      if (res.status >= 200 && res.status < 300) samples.push({ t, version: String(JSON.parse(res.body).version) });
      else samples.push({ t, error: `HTTP ${res.status}` });
    } catch (err) {
      samples.push({ t, error: errorKey(err) });
    }
    await sleep(intervalMs);
  }
  return samples;
}

/**
 * Runs a load of `workers` loops (a new connection per request) against base + path, and a version sampler,
 * starts `action` after leadMs, and keeps the load going until the action has ended plus tailMs, and at
 * least minMs in all. The load's own bounds (durationMs) cap it at maxMs.
 */
export async function loadDuring<T>(
  base: string,
  action: () => Promise<T>,
  opts: { workers?: number; paceMs?: number; path?: string; method?: 'GET' | 'POST'; leadMs?: number; tailMs?: number; minMs?: number; maxMs?: number; sampleEveryMs?: number } = {},
): Promise<LoadDuring<T>> {
  const stop = new AbortController();
  const began = performance.now();
  const loadP = runLoad({
    url: `${base}${opts.path ?? '/health'}`,
    workers: opts.workers ?? 8,
    paceMs: opts.paceMs,
    durationMs: opts.maxMs ?? 120_000,
    newConnectionPerRequest: true,
    signal: stop.signal,
    method: opts.method,
  });
  const samplesP = sampleVersions(base, began, opts.sampleEveryMs ?? 20, stop.signal);
  let result: T;
  let actionStartMs = 0;
  let actionEndMs = 0;
  try {
    await sleep(opts.leadMs ?? 500);
    actionStartMs = Math.round(performance.now() - began);
    result = await action();
    actionEndMs = Math.round(performance.now() - began);
    const until = Math.max(actionEndMs + (opts.tailMs ?? 700), opts.minMs ?? 3000);
    await sleep(Math.max(0, until - (performance.now() - began)));
  } finally {
    stop.abort();
  }
  const [load, samples] = await Promise.all([loadP, samplesP]);
  return { load, samples, result: result!, actionStartMs, actionEndMs };
}

/** The versions in the order they were served, consecutive repeats collapsed: ['1', '2'] for one clean switch. */
export function versionSequence(samples: VersionSample[]): string[] {
  const seq: string[] = [];
  for (const s of samples) if (s.version !== undefined && s.version !== seq.at(-1)) seq.push(s.version);
  return seq;
}

/** One line for the log: requests, failures by cause, latencies, longest outage. */
export function describeLoad(label: string, r: LoadResult, samples?: VersionSample[]): string {
  const errors = Object.entries(r.errors).map(([k, v]) => `${k} ×${v}`).join(', ');
  const seq = samples ? ` · versions ${versionSequence(samples).join(' → ')} (${samples.length} samples)` : '';
  return (
    `${label}: ${r.requests} requests in ${(r.elapsedMs / 1000).toFixed(1)} s, ${r.failed} failed${errors ? ` (${errors})` : ''}` +
    ` · p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms · longest outage ${r.longestOutageMs} ms${seq}`
  );
}

/**
 * What a handover may serve: `from` first; for a moment both `from` and `to` (two processes accept from
 * one queue); then, once the action has ended, only `to`. Returns the problems (empty when none).
 */
export function handoverProblems(samples: VersionSample[], from: string, to: string, actionEndMs: number): string[] {
  const problems: string[] = [];
  const served = samples.filter((s) => s.version !== undefined);
  if (served[0]?.version !== from) problems.push(`the first version served was ${served[0]?.version}, not ${from}`);
  const others = [...new Set(served.map((s) => s.version).filter((v) => v !== from && v !== to))];
  if (others.length) problems.push(`other versions were served: ${others.join(', ')}`);
  const late = served.filter((s) => s.t > actionEndMs && s.version !== to);
  if (late.length) problems.push(`${late.length} sample(s) after the cutover ended were not ${to} (first at ${late[0]!.t} ms: ${late[0]!.version})`);
  if (served.at(-1)?.version !== to) problems.push(`the last version served was ${served.at(-1)?.version}, not ${to}`);
  return problems;
}
