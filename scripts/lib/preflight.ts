// Preflight: run a new release as a transient unit on a spare port and health-check it before it goes live.
import net from 'node:net';
import { $ } from 'zx';
import { OperationError } from './errors.ts';
import { healthGate } from './health.ts';
import { preflightCommand, preflightProperties } from './units.ts';
import { journalTail, serviceControlEnabled } from './systemd.ts';
import { record, history, type Context } from './context.ts';
import { liveRelease } from './switch.ts';
import { maskSecrets } from './secrets.ts';

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

/** Preflight applies when it is on, systemd is there, and the health check is an HTTP path. */
export function preflightApplies(ctx: Context): boolean {
  return ctx.m.preflight && serviceControlEnabled() && 'path' in ctx.m.health;
}

/** The systemd-run argv that starts the release like the real service (with its own socket when the app takes one). */
export function preflightArgv(ctx: Context, id: string, unit: string, port: number): string[] {
  const socketArgs = ctx.m.socket ? [`--socket-property=ListenStream=127.0.0.1:${port}`, '--socket-property=Accept=no'] : [];
  return [
    'systemd-run', `--unit=${unit}`, '--quiet', '--no-block',
    ...socketArgs,
    `--property=SyslogIdentifier=${ctx.m.app}-preflight`,
    ...preflightProperties(ctx.m, port, ctx.paths.release(id)),
    '--', ...preflightCommand(ctx.m, port),
  ];
}

async function stopTransient(unit: string): Promise<void> {
  await $({ quiet: true, nothrow: true })`systemctl stop ${[`${unit}.service`, `${unit}.socket`]}`;
  await $({ quiet: true, nothrow: true })`systemctl reset-failed ${[`${unit}.service`, `${unit}.socket`]}`;
}

/**
 * Throws when the release is not healthy on its own: it never goes live, it is marked bad, and its
 * journal lines are printed. Does nothing when preflight does not apply.
 */
export async function preflight(ctx: Context, id: string): Promise<void> {
  if (!preflightApplies(ctx)) return;
  const port = await freeLoopbackPort();
  const unit = `cutover-preflight-${ctx.m.app}-${id}`;
  const argv = preflightArgv(ctx, id, unit, port);
  if (ctx.dryRun) {
    await ctx.ops.run(argv);
    ctx.log.info(`    would health-check it on 127.0.0.1:<spare port>, then stop it`);
    return;
  }
  const since = new Date();
  const gate = await ctx.log.step(`preflight ${id} on 127.0.0.1:${port}`, async () => {
    await stopTransient(unit);
    await ctx.ops.run(argv, { quiet: true });
    try {
      // With a socket the service starts on the first connection, so the unit may be inactive at first.
      return await healthGate(ctx.m, { port, cwd: ctx.paths.release(id), unit: `${unit}.service`, startsOnDemand: Boolean(ctx.m.socket) });
    } finally {
      await stopTransient(unit);
    }
  });
  if (gate.ok) return;
  // The app's own lines and check output may hold its secrets (a failed start often prints its database URL).
  const journal = maskSecrets(await journalTail(`${unit}.service`, 20, since), ctx.paths.envFile);
  const detail = maskSecrets(gate.detail, ctx.paths.envFile);
  const live = liveRelease(ctx.paths);
  if (live === id) {
    // The live release itself, about to restart in place (its unit changed, or it was stopped): the
    // release served before, so the unit or the host is the likely cause; it is not marked bad.
    throw new OperationError(
      `The live release ${id} failed preflight under the current unit: ${detail}. It was not restarted.` + (journal ? `\nLast lines of its journal:\n${journal}` : ''),
      'If provision just changed the unit, the change is the likely cause: fix the manifest, provision again, then activate again.',
    );
  }
  const rec = history(ctx).records.get(id);
  await record(ctx, { event: 'activation-failed', release: id, commit: rec?.commit, previous: live ?? null, reason: `preflight: ${detail}` });
  throw new OperationError(
    `Release ${id} failed preflight and never went live: ${detail}.` + (journal ? `\nLast lines of its journal:\n${journal}` : ''),
    `The live release was not touched. ${id} is marked bad and kept for inspection; fix the app and release again.`,
  );
}
