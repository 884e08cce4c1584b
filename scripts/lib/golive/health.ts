// The health gate: the unit stays active AND the manifest's check passes within its timeout.
import http from 'node:http';
import { $ } from 'zx/core';
import type { Manifest } from '../manifest/types.ts';
import { asUser } from '../run/ops.ts';
import { appEnvironment } from '../assemble/appenv.ts';
import { appPaths } from '../manifest/paths.ts';
import { unitState } from '../host/systemd.ts';

export interface CheckResult {
  ok: boolean;
  detail: string;
  /** The HTTP status when the app answered: an answer, unlike a refused or timed-out connection, is definite. */
  status?: number;
}

/** 4xx or 5xx answers in a row that end the wait early unless health.failures says otherwise (≈ 2.5 s of answers at the 250 ms interval). */
export const DEFAULT_HEALTH_FAILURES = 10;

export interface HealthTarget {
  port: number;
  /** The directory a health command runs in (the release being checked). */
  cwd: string;
  /** The unit whose state must stay active; undefined skips the unit check. */
  unit?: string;
  /** A socket-activated unit starts on the first connection: "inactive" is not a failure. */
  startsOnDemand?: boolean;
}

/** One HTTP GET on loopback; any 2xx or 3xx passes. */
export function httpCheck(port: number, urlPath: string, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve({ ok: code >= 200 && code < 400, detail: `GET ${urlPath} answered ${code}`, status: code });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, detail: `GET ${urlPath}: ${e.message}` }));
  });
}

/** The manifest's health command, run as the app's user in the release with the app's environment. */
export async function commandCheck(m: Manifest, target: HealthTarget, timeoutMs: number): Promise<CheckResult> {
  const command = 'command' in m.health ? m.health.command : '';
  const argv = asUser(['/bin/sh', '-c', command], m.user);
  const p = await $({
    cwd: target.cwd,
    env: appEnvironment(m, { port: target.port, envFile: appPaths(m).envFile }),
    quiet: true,
    nothrow: true,
    timeout: timeoutMs,
  })`${argv}`;
  const out = (p.stderr || p.stdout).trim().split('\n').slice(-3).join(' | ');
  return { ok: p.exitCode === 0, detail: `health command exited ${p.exitCode ?? 'on timeout'}${out ? `: ${out}` : ''}` };
}

export async function checkOnce(m: Manifest, target: HealthTarget, timeoutMs: number): Promise<CheckResult> {
  return 'path' in m.health
    ? httpCheck(target.port, m.health.path, timeoutMs)
    : commandCheck(m, target, timeoutMs);
}

/**
 * Polls until the check passes with the unit active, the unit fails, the app answers 4xx/5xx
 * `health.failures` times in a row (it is up, and says it is not healthy: not a slow start), or the
 * manifest's timeout ends. No answer yet (refused, timed out) keeps waiting. Resolves with the last
 * result; never throws.
 */
export async function healthGate(m: Manifest, target: HealthTarget, opts: { intervalMs?: number } = {}): Promise<CheckResult> {
  const deadline = Date.now() + m.health.timeout * 1000;
  const interval = opts.intervalMs ?? 250;
  const giveUpAfter = m.health.failures ?? DEFAULT_HEALTH_FAILURES;
  let last: CheckResult = { ok: false, detail: 'no check ran' };
  let definite = 0;
  while (Date.now() < deadline) {
    const state = target.unit ? await unitState(target.unit) : 'off';
    if (state === 'failed' || (state === 'inactive' && !target.startsOnDemand)) {
      return { ok: false, detail: `${target.unit} is ${state}: the app exited` };
    }
    if (state === 'active' || state === 'off' || state === 'inactive') {
      last = await checkOnce(m, target, Math.min(5000, Math.max(500, deadline - Date.now())));
      if (last.ok) {
        const after = target.unit ? await unitState(target.unit) : 'off';
        if (after === 'active' || after === 'off' || (after === 'inactive' && target.startsOnDemand)) return last;
        last = { ok: false, detail: `${target.unit} went ${after} right after answering` };
      }
      definite = last.status !== undefined && last.status >= 400 ? definite + 1 : 0;
      if (giveUpAfter > 0 && definite >= giveUpAfter) {
        return { ...last, detail: `${last.detail}, ${definite} times in a row: the app is up and says it is not healthy (health.failures: ${giveUpAfter})` };
      }
    } else {
      last = { ok: false, detail: `${target.unit} is ${state}` };
      definite = 0;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  return { ok: false, detail: `not healthy within ${m.health.timeout} s (last: ${last.detail})` };
}
