// Test helpers that talk to a running example app over loopback: wait, fetch, and a bounded load generator.
import http from 'node:http';
import net from 'node:net';
import { PRIVATE_NET_PREFIX } from '../host/host.ts';

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

const MAX_DURATION_MS = 10 * 60_000;
const MAX_WORKERS = 256;
const DEFAULT_MAX_REQUESTS = 1_000_000;

/**
 * Parses url and refuses anything but plain http to a loopback IP literal (127.0.0.0/8 or ::1) or to a test
 * host's private network (10.213.x.x: a veth that only this machine reaches, see test/host/host.ts).
 */
export function loopbackUrl(url: string): URL {
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const loopback = (net.isIPv4(host) && (host.startsWith('127.') || host.startsWith(PRIVATE_NET_PREFIX))) || (net.isIPv6(host) && host === '::1');
  if (parsed.protocol !== 'http:' || !loopback) {
    throw new Error(`refusing to send traffic to ${url}: only http://127.x.x.x, http://[::1] or a test host's private address is allowed`);
  }
  return parsed;
}

/** One GET on a fresh connection (agent: false); rejects on a network error or after timeoutMs. */
export function httpGet(url: string, opts: { timeoutMs?: number; agent?: http.Agent; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  return httpRequest(url, opts);
}

/** One request (GET, or POST with a body) on a fresh connection unless an agent is given; rejects on a network error or after timeoutMs. */
export function httpRequest(
  url: string,
  opts: { timeoutMs?: number; agent?: http.Agent; headers?: Record<string, string>; method?: 'GET' | 'POST'; body?: string } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const target = loopbackUrl(url);
    const headers = opts.body === undefined ? opts.headers : { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(opts.body)), ...opts.headers };
    const req = http.request(target, { method: opts.method ?? 'GET', agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 5000, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${url} within the timeout`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(opts.body);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls url until it answers 2xx (or any status with anyStatus) and returns that answer;
 * rejects after timeoutMs with the last status or error.
 */
export async function waitForHttp(url: string, timeoutMs: number, opts: { anyStatus?: boolean } = {}): Promise<HttpResult> {
  loopbackUrl(url);
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      const res = await httpGet(url, { timeoutMs: Math.max(deadline - Date.now(), 1) });
      if (opts.anyStatus || (res.status >= 200 && res.status < 300)) return res;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = errorKey(err);
    }
    await sleep(50);
  }
  throw new Error(`${url} did not answer${opts.anyStatus ? '' : ' 2xx'} within ${timeoutMs} ms (last: ${last})`);
}

/** GET url and parse its JSON body; rejects on a non-2xx status. */
export async function getJson<T = any>(url: string, timeoutMs = 5000): Promise<T> {
  const res = await httpGet(url, { timeoutMs });
  if (res.status < 200 || res.status >= 300) throw new Error(`GET ${url} answered HTTP ${res.status}: ${res.body.trim()}`);
  return JSON.parse(res.body) as T;
}

/** A free TCP port on 127.0.0.1 (free when asked: bind it soon). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface LoadOptions {
  url: string;
  workers: number;
  durationMs: number;
  /** true (the default): agent: false, a fresh TCP connection per request, so refused connections show. */
  newConnectionPerRequest?: boolean;
  /** Stop after this many requests in all (default 1 000 000). */
  maxRequests?: number;
  /** Per-request timeout (default 5000 ms); a timed-out request counts as failed (ETIMEDOUT). */
  requestTimeoutMs?: number;
  /** A worker whose request failed waits this long before its next one (default 10 ms), so a refusing port is not hammered in a tight loop. */
  pauseAfterFailureMs?: number;
  /** A worker waits this long after every request (default 0: back to back). A paced load keeps requests arriving all the
   * time without taking a small machine's CPU from the deploy it measures. */
  paceMs?: number;
  /** Stops the load early (e.g. when the deploy being measured finishes). */
  signal?: AbortSignal;
  /** GET (the default), or POST with a small body: a request a proxy must not retry on its own. */
  method?: 'GET' | 'POST';
  /** Return every request's start (epoch ms) and duration too, for a timeline. */
  keepSamples?: boolean;
}

export interface LoadResult {
  requests: number;
  /** Requests that got no 2xx answer. */
  failed: number;
  /** Failures by cause: an error code (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...) or "HTTP <status>". */
  errors: Record<string, number>;
  /** Latencies (ms) of the successful requests. */
  p50: number;
  p99: number;
  max: number;
  /** Longest window from a failed request's start to the start of the next request that succeeded. */
  longestOutageMs: number;
  /** Wall time of the whole run. */
  elapsedMs: number;
  /** With keepSamples: every request, its start in epoch ms (Date.now()'s clock). */
  samples?: Sample[];
}

export interface Sample {
  start: number;
  ms: number;
  ok: boolean;
  error?: string;
  /** The answer's X-Version header, when the app sends one: which release answered. */
  version?: string;
}

export function errorKey(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

async function timedRequest(url: string, timeoutMs: number, agent: http.Agent | undefined, method: 'GET' | 'POST' = 'GET'): Promise<Sample> {
  const start = performance.now();
  try {
    const res = await httpRequest(url, { timeoutMs, agent, method, body: method === 'POST' ? 'a form a user sent\n' : undefined });
    const ok = res.status >= 200 && res.status < 300;
    const version = typeof res.headers['x-version'] === 'string' ? res.headers['x-version'] : undefined;
    return { start, ms: performance.now() - start, ok, error: ok ? undefined : `HTTP ${res.status}`, version };
  } catch (err) {
    return { start, ms: performance.now() - start, ok: false, error: errorKey(err) };
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Longest span from a failure's start to the start of the next successful request (open spans end at endAt). */
export function longestOutage(samples: Sample[], endAt: number): number {
  let longest = 0;
  let outageStart: number | undefined;
  for (const s of [...samples].sort((a, b) => a.start - b.start)) {
    if (!s.ok && outageStart === undefined) outageStart = s.start;
    if (s.ok && outageStart !== undefined) {
      longest = Math.max(longest, s.start - outageStart);
      outageStart = undefined;
    }
  }
  return outageStart === undefined ? longest : Math.max(longest, endAt - outageStart);
}

function summarise(samples: Sample[], elapsedMs: number, endAt: number): LoadResult {
  const errors: Record<string, number> = {};
  for (const s of samples) if (s.error) errors[s.error] = (errors[s.error] ?? 0) + 1;
  const latencies = samples.filter((s) => s.ok).map((s) => s.ms).sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    requests: samples.length,
    failed: samples.filter((s) => !s.ok).length,
    errors,
    p50: round(percentile(latencies, 50)),
    p99: round(percentile(latencies, 99)),
    max: round(latencies.at(-1) ?? 0),
    longestOutageMs: round(longestOutage(samples, endAt)),
    elapsedMs: round(elapsedMs),
  };
}

function checkBounds(opts: LoadOptions): void {
  if (!Number.isInteger(opts.workers) || opts.workers < 1 || opts.workers > MAX_WORKERS) {
    throw new Error(`runLoad: workers must be an integer from 1 to ${MAX_WORKERS}`);
  }
  if (!(opts.durationMs > 0 && opts.durationMs <= MAX_DURATION_MS)) {
    throw new Error(`runLoad: durationMs must be more than 0 and at most ${MAX_DURATION_MS}`);
  }
}

/** Sends GETs to a loopback url from `workers` concurrent loops for durationMs (bounded in time and count). */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  loopbackUrl(opts.url);
  checkBounds(opts);
  const maxRequests = Math.min(opts.maxRequests ?? DEFAULT_MAX_REQUESTS, DEFAULT_MAX_REQUESTS);
  const timeoutMs = opts.requestTimeoutMs ?? 5000;
  const agent = opts.newConnectionPerRequest === false ? new http.Agent({ keepAlive: true, maxSockets: opts.workers }) : undefined;
  const samples: Sample[] = [];
  const began = performance.now();
  const stopAt = began + opts.durationMs;
  const pauseMs = opts.pauseAfterFailureMs ?? 10;
  let started = 0;
  const worker = async () => {
    while (performance.now() < stopAt && started < maxRequests && !opts.signal?.aborted) {
      started++;
      const sample = await timedRequest(opts.url, timeoutMs, agent, opts.method);
      samples.push(sample);
      const wait = Math.max(opts.paceMs ?? 0, sample.ok ? 0 : pauseMs);
      if (wait > 0) await sleep(Math.min(wait, Math.max(stopAt - performance.now(), 0)));
    }
  };
  await Promise.all(Array.from({ length: opts.workers }, worker));
  agent?.destroy();
  const end = performance.now();
  const result = summarise(samples, end - began, end);
  if (opts.keepSamples) result.samples = samples.map((s) => ({ ...s, start: performance.timeOrigin + s.start }));
  return result;
}
