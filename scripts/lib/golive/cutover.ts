// The cut-over: start the new process in the idle slot, confirm it serves, stop the old slot; or stop the new one to undo.
import type { Context } from '../state/context.ts';
import type { CheckResult } from './health.ts';
import { commandCheck, DEFAULT_HEALTH_FAILURES, healthGate } from './health.ts';
import { probeSlot } from './acceptor.ts';
import { untilBooted } from './settle.ts';
import { formatDuration } from '../run/log.ts';
import type { Slot } from '../manifest/paths.ts';
import { idleSlot, isRunning, liveSlot, slotStates, type SlotState } from '../host/slots.ts';
import { resetFailed, serviceControlEnabled, systemctl, unitState } from '../host/systemd.ts';

export interface CutoverResult extends CheckResult {
  /** The slot the new process runs in (or ran in, before an undo). */
  slot?: Slot;
  /** The slot that served before, when one did. */
  oldSlot?: Slot;
  /** When the cut-over started: the journal lines of the new slot are read from here on. */
  since: Date;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How long one probe waits for a slot to accept it. Both slots accept from the queue, so a probe is always
 * taken, but on a busy machine that can take longer than a quick answer would: a probe closed unaccepted
 * is a probe wasted, and giving up after 500 ms each time refused a good release for its whole timeout.
 */
const ACCEPT_WAIT_MS = 3000;

/** Between two health answers from the new slot, as the health gate polls. */
const POLL_MS = 250;

/**
 * After a probe whose connections the old slot took: a pause before the next one. Each probe holds the
 * connections the old slot accepted until /proc says whose they are, and a worker that serves one
 * connection at a time (gunicorn's sync workers) waits on such a connection meanwhile: probing back
 * to back kept the live slot's workers on probes while the new slot booted (a 0.5–1.6 s stall).
 */
const OLD_SLOT_PAUSE_MS = 250;

/** The longest the gate waits for the new slot's processes to wait for work before it probes anyway. */
const BOOT_WAIT_MAX_MS = 5000;

/** Starts a slot; systemd refusing it (a unit that does not load, a socket that cannot bind) is a failed check, not a crash. */
export async function startSlot(ctx: Context, slot: Slot): Promise<CheckResult> {
  const unit = ctx.paths.slotUnit(slot);
  const resets = ctx.m.socket ? [unit, ctx.paths.socketUnitName] : [unit];
  // Clears a failed or start-limited state left by an earlier run, so systemd cannot refuse the start for that.
  await resetFailed(ctx.ops, resets);
  try {
    await systemctl(ctx.ops, ['start', unit]);
    return { ok: true, detail: `${unit} started` };
  } catch (e) {
    return { ok: false, detail: `systemd could not start ${unit}: ${(e as Error).message.split('\n').join(' ')}` };
  }
}

async function slotState(ctx: Context, slot: Slot): Promise<SlotState | undefined> {
  return (await slotStates(ctx.paths)).find((s) => s.slot === slot);
}

/**
 * Waits until the new slot serves: its unit stays active and, through the app's real port, a connection
 * that IT accepted passes the health check (an HTTP path is asked on that very connection; a health
 * command runs once the slot has accepted one). Connections the old slot accepts do not count.
 */
export async function waitUntilSlotServes(ctx: Context, slot: Slot, port = ctx.m.port): Promise<CheckResult> {
  const unit = ctx.paths.slotUnit(slot);
  const deadline = Date.now() + ctx.m.health.timeout * 1000;
  // The same early end as the health gate: N definite 4xx/5xx answers in a row, one per poll interval.
  const giveUpAfter = ctx.m.health.failures ?? DEFAULT_HEALTH_FAILURES;
  let definite = 0;
  // What became of the probes: the old slot took them, none took them in time, the new slot took them.
  const tally = { old: 0, none: 0, mine: 0, slowestMs: 0 };
  // No probe while the new slot boots (it takes none; the old slot takes them, and a sync worker waits on one).
  const boot = await untilBooted(unit, { maxMs: Math.min(BOOT_WAIT_MAX_MS, (deadline - Date.now()) / 2) });
  const counted = () => `boot: ${boot.detail}; probes: ${tally.mine} taken by ${unit}, ${tally.old} by the old slot, ${tally.none} by none in time; slowest accept ${tally.slowestMs} ms`;
  let last: CheckResult = { ok: false, detail: `${unit} has not accepted a connection yet` };
  while (Date.now() < deadline) {
    const s = await slotState(ctx, slot);
    if (!s || s.state === 'failed' || s.state === 'inactive') return { ok: false, detail: `${unit} is ${s?.state ?? 'gone'}: the app exited` };
    if (s.state === 'active') {
      const probe = await probeSlot({ port, units: ctx.paths.servingUnits, wantUnit: unit, path: 'path' in ctx.m.health ? ctx.m.health.path : undefined, acceptMs: Math.max(500, Math.min(ACCEPT_WAIT_MS, deadline - Date.now())) });
      tally.slowestMs = Math.max(tally.slowestMs, probe.acceptedAfterMs ?? 0);
      // Accepted by the old slot: try again shortly; the next connection may go to the new one.
      if (probe.acceptedBy && probe.acceptedBy !== unit) {
        tally.old++;
        await sleep(OLD_SLOT_PAUSE_MS);
        continue;
      }
      if (!probe.acceptedBy && !probe.detail.startsWith('connect')) tally.none++;
      if (probe.acceptedBy === unit) {
        tally.mine++;
        const check = 'path' in ctx.m.health ? probe : await commandCheck(ctx.m, { port, cwd: ctx.paths.active }, 5000);
        if (check.ok) return { ok: true, detail: `${unit} accepted and answered: ${check.detail} (${counted()})` };
        last = check;
        definite = check.status !== undefined && check.status >= 400 ? definite + 1 : 0;
        if (giveUpAfter > 0 && definite >= giveUpAfter) {
          return { ...check, detail: `${check.detail}, ${definite} times in a row: the app is up and says it is not healthy (health.failures: ${giveUpAfter})` };
        }
        await sleep(POLL_MS);
        continue;
      }
      if (probe.detail.startsWith('connect')) last = probe;
    }
    await sleep(50);
  }
  return { ok: false, detail: `not healthy within ${ctx.m.health.timeout} s (last: ${last.detail}; ${counted()})` };
}

/** Without a socket the new process must bind the port itself: the old one stops first (the brief outage `socket: false` accepts). */
async function waitUntilServesAlone(ctx: Context, slot: Slot): Promise<CheckResult> {
  const unit = ctx.paths.slotUnit(slot);
  return healthGate(ctx.m, { port: ctx.m.port, cwd: ctx.paths.active, unit });
}

/** Stops a slot gracefully (SIGTERM, then up to stop_timeout for its requests in flight) and waits until it has exited. */
export async function stopSlot(ctx: Context, slot: Slot): Promise<void> {
  await systemctl(ctx.ops, ['stop', ctx.paths.slotUnit(slot)]);
}

/**
 * Cuts over to the release `active` names now. With a socket (a handover): start the idle slot while the
 * old one serves, wait until the new one serves, then stop the old one; on failure the old slot never
 * stopped. Without a socket: stop the old slot, start the new one, wait until it serves.
 */
export async function cutOver(ctx: Context): Promise<CutoverResult> {
  const since = new Date();
  if (!serviceControlEnabled()) {
    // The fs test tier: no service to start, but the health check itself still gates the release.
    await ctx.ops.note('start the new slot and stop the old one (skipped: CUTOVER_SYSTEMD=off)', () => {});
    if (ctx.dryRun) return { ok: true, detail: 'dry run', since };
    const gate = await ctx.log.step('health gate', () => healthGate(ctx.m, { port: ctx.m.port, cwd: ctx.paths.active }));
    return { ...gate, since };
  }
  // Read at once: the slots, and whether the socket unit is up (a socket provision just added is not yet).
  const [states, socketState] = await Promise.all([slotStates(ctx.paths), ctx.m.socket ? unitState(ctx.paths.socketUnitName) : undefined]);
  const old = liveSlot(states);
  const slot = idleSlot(states);
  const unit = ctx.paths.slotUnit(slot);
  if (ctx.dryRun) {
    await startSlot(ctx, slot);
    ctx.log.info(`    would wait until ${unit} serves (up to ${ctx.m.health.timeout} s)${old ? `, then stop ${old.unit}` : ''}`);
    if (old) await stopSlot(ctx, old.slot);
    return { ok: true, detail: 'dry run', slot, oldSlot: old?.slot, since };
  }
  // A socket just added by provision cannot bind while the old process still holds the port itself:
  // this one cutover stops the old process first, as without a socket.
  const portHeldByOld = Boolean(ctx.m.socket && old && socketState !== 'active');
  if (!ctx.m.socket || portHeldByOld) {
    const why = ctx.m.socket ? 'its socket is new, and the old process holds the port itself' : 'no socket';
    if (old) await ctx.log.step(`stop ${old.unit} (${why}: the port is closed until ${unit} listens)`, () => stopSlot(ctx, old.slot));
    const started = await ctx.log.step(`start ${unit}`, () => startSlot(ctx, slot));
    if (!started.ok) return { ...started, slot, oldSlot: old?.slot, since };
    const gate = await ctx.log.step(`health gate on ${unit}`, () => waitUntilServesAlone(ctx, slot));
    return { ...gate, slot, oldSlot: old?.slot, since };
  }
  const started = await ctx.log.step(`start ${unit}${old ? ` beside ${old.unit}` : ''}`, () => startSlot(ctx, slot));
  if (!started.ok) return { ...started, slot, oldSlot: old?.slot, since };
  const gate = await ctx.log.step(`health gate: ${unit} serves on the app's socket`, () => waitUntilSlotServes(ctx, slot));
  if (!gate.ok) return { ...gate, slot, oldSlot: old?.slot, since };
  ctx.log.info(`    ${gate.detail}`);
  if (old) {
    const t0 = performance.now();
    await ctx.log.step(`stop ${old.unit} (it finishes its requests in flight, up to ${ctx.m.stop_timeout} s)`, () => stopSlot(ctx, old.slot));
    ctx.log.info(`    ${old.unit} drained and stopped in ${formatDuration(performance.now() - t0)}`);
  }
  return { ...gate, slot, oldSlot: old?.slot, since };
}

/**
 * Undoes a failed cut-over: stops the new slot. After a handover the old slot still serves; when it
 * was stopped first (no socket), it starts again, in the release `active` names (the caller has
 * switched it back).
 */
export interface UndoResult extends CheckResult {
  /** The old slot never stopped (a handover): nothing was interrupted. */
  keptServing: boolean;
}

export async function undoCutover(ctx: Context, r: CutoverResult): Promise<UndoResult> {
  if (!serviceControlEnabled() || !r.slot) return { ok: true, detail: 'nothing to undo', keptServing: true };
  await ctx.log.step(`stop ${ctx.paths.slotUnit(r.slot)}`, () => stopSlot(ctx, r.slot!));
  if (!r.oldSlot) return { ok: false, detail: 'no slot serves', keptServing: false };
  const old = await slotState(ctx, r.oldSlot);
  if (old && isRunning(old)) return { ok: true, detail: `${old.unit} kept serving throughout`, keptServing: true };
  const started = await ctx.log.step(`start ${ctx.paths.slotUnit(r.oldSlot)} again`, () => startSlot(ctx, r.oldSlot!));
  if (!started.ok) return { ...started, keptServing: false };
  const gate = await ctx.log.step(`health gate on ${ctx.paths.slotUnit(r.oldSlot)}`, () => waitUntilServesAlone(ctx, r.oldSlot!));
  return { ...gate, keptServing: false };
}
