// Preflight: run a new release as a transient unit on a spare port and health-check it before it goes live.
import net from 'node:net';
import { healthGate, type CheckResult } from './health.ts';
import { preflightCommand, preflightProperties } from '../host/units.ts';
import { serviceControlEnabled, stopTransient } from '../host/systemd.ts';
import { preflightUnitPrefix } from '../host/preflight-units.ts';

export { preflightLeftovers, preflightUnitPrefix } from '../host/preflight-units.ts';
import type { Context } from '../state/context.ts';

/** A loopback port nobody listens on right now (the kernel picks it). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Preflight applies when it is on and systemd is there (with an HTTP path or a health command alike). */
export function preflightApplies(ctx: Context): boolean {
  return ctx.m.preflight && serviceControlEnabled();
}

/**
 * How long a preflight unit may live at most: the health timeout plus the stop timeout and a margin.
 * A kit killed during preflight cannot stop it; systemd does, then (RuntimeMaxSec=).
 */
export function preflightMaxSeconds(ctx: Context): number {
  return Math.ceil(ctx.m.health.timeout + ctx.m.stop_timeout + 30);
}

/** The systemd-run argv that starts the release like the real service (with its own socket when the app takes one). */
export function preflightArgv(ctx: Context, id: string, unit: string, port: number): string[] {
  const socketArgs = ctx.m.socket ? [`--socket-property=ListenStream=127.0.0.1:${port}`, '--socket-property=Accept=no'] : [];
  return [
    'systemd-run', `--unit=${unit}`, '--quiet', '--no-block',
    ...socketArgs,
    `--property=SyslogIdentifier=${ctx.m.app}-preflight`,
    `--property=RuntimeMaxSec=${preflightMaxSeconds(ctx)}`,
    ...preflightProperties(ctx.m, port, ctx.paths.release(id)),
    '--', ...preflightCommand(ctx.m, port),
  ];
}

/** Stops and clears the app's leftover preflight units (as preflightLeftovers listed them); says which. */
export async function clearPreflightLeftovers(ctx: Context, leftovers: string[]): Promise<void> {
  const units = [...new Set(leftovers.map((u) => u.replace(/\.(service|socket)$/, '')))];
  for (const unit of units) {
    if (!ctx.dryRun) ctx.log.info(`Stopping ${unit}: a cutover run that was killed during its preflight left it running.`);
    await ctx.ops.note(`stop ${unit}, left running by a cutover run that was killed during its preflight`, () => stopTransient([`${unit}.service`, `${unit}.socket`]));
  }
}

export interface PreflightVerdict extends CheckResult {
  /** The transient unit, for its journal. */
  unit?: string;
  since: Date;
}

/**
 * Runs the release on a spare port under the service's own user, environment and sandbox, and checks
 * its health (an HTTP path, or the health command against that port). Never throws for an unhealthy
 * release: the activation decides what a failed verdict means.
 */
export async function preflight(ctx: Context, id: string): Promise<PreflightVerdict> {
  const since = new Date();
  if (!preflightApplies(ctx)) return { ok: true, detail: 'preflight is off', since };
  const port = await freeLoopbackPort();
  const unit = `${preflightUnitPrefix(ctx.m.app)}${id}`;
  const argv = preflightArgv(ctx, id, unit, port);
  if (ctx.dryRun) {
    await ctx.ops.run(argv);
    ctx.log.info(`    would health-check it on 127.0.0.1:<spare port>, then stop it`);
    return { ok: true, detail: 'dry run', since };
  }
  const gate = await ctx.log.step(`preflight ${id} on 127.0.0.1:${port}`, async () => {
    await stopTransient([`${unit}.service`, `${unit}.socket`]);
    await ctx.ops.run(argv, { quiet: true });
    try {
      // With a socket the service starts on the first connection, so the unit may be inactive at first.
      return await healthGate(ctx.m, { port, cwd: ctx.paths.release(id), unit: `${unit}.service`, startsOnDemand: Boolean(ctx.m.socket) });
    } finally {
      await stopTransient([`${unit}.service`, `${unit}.socket`]);
    }
  });
  return { ...gate, unit: `${unit}.service`, since };
}
