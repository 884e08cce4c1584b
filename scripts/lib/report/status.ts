// Status: the live release, the rollback target, every release with its state, commit, age and size, and the public entrance's site.
import fs from 'node:fs';
import path from 'node:path';
import { history, type Context } from '../state/context.ts';
import { activations, rollbackTarget, type ReleaseRecord, type ReleaseSource, type ReleaseState } from '../state/history.ts';
import { describeHolder, liveHolder } from '../state/lock.ts';
import { describeFreeze, readFreeze, type Freeze } from '../state/freeze.ts';
import { liveRelease } from '../state/switch.ts';
import { isRunning, liveSlot, slotStates, slotToKeep } from '../host/slots.ts';
import { preflightLeftovers } from '../host/preflight-units.ts';
import { isOwnSite, renderSite } from '../setup/proxy-site.ts';

export interface ReleaseStatus {
  id: string;
  commit: string;
  ref?: string;
  state: ReleaseState | 'unknown';
  live: boolean;
  rollbackTarget: boolean;
  onDisk: boolean;
  builtAt?: string;
  ageSeconds?: number;
  sizeBytes?: number;
  reason?: string;
  /** Where its tree came from: git (built here) or an archive built elsewhere (its sha256, tree digest, builder). */
  source: ReleaseSource;
}

export interface StatusReport {
  app: string;
  root: string;
  /** The state of the serving slot (active…), else of the slot that ran last (inactive, failed…). */
  service: string;
  /** Both slots of the service: the serving one, and one that is starting or draining during a cutover. */
  slots: { unit: string; state: string; pid: number | null; release: string | null }[];
  /** Preflight units of this app that systemd still has (a kit killed during preflight leaves one until the next verb). */
  preflights: string[];
  live: string | null;
  /** The release the service's process runs in (its working directory); null when it runs none. */
  serving: string | null;
  /**
   * The release of a second running slot: a handover cut short, both processes answering; the next
   * verb that takes the lock stops that slot. null otherwise.
   */
  alsoServing: string | null;
  /**
   * The live release when its activation did not finish (`active` points at it, but the history's last
   * activation is another: a kill or power loss after the switch); then there is no rollback target.
   */
  unfinished: string | null;
  /** The release of the history's last recorded activation. */
  recordedLive: string | null;
  rollbackTarget: string | null;
  lock: string | null;
  /** The freeze in force (cutover freeze), or null. */
  freeze: Freeze | null;
  releases: ReleaseStatus[];
  /** Interrupted builds already cleaned up (recorded, their directories gone): counted, not listed. */
  interruptedGone: number;
  /** The manifest's public entrance and its site file as it is on disk; null without a proxy key. */
  proxy: ProxyStatus | null;
}

export interface ProxyStatus {
  server: 'caddy' | 'nginx';
  names: string[];
  site: string;
  /** in place: the file is what provision writes; missing; differs: cutover's, from another manifest; foreign: not cutover's. */
  site_state: 'in place' | 'missing' | 'differs from the manifest' | 'not written by cutover';
}

/** The site file of the manifest's proxy, compared with what provision would write (read only: no server is asked). */
export function proxyStatus(ctx: Context): ProxyStatus | null {
  const p = ctx.m.proxy;
  if (!p) return null;
  const want = renderSite(ctx.m);
  let text: string | undefined;
  try {
    text = fs.lstatSync(want.path).isFile() ? fs.readFileSync(want.path, 'utf8') : '';
  } catch {
    text = undefined;
  }
  const site_state = text === undefined ? 'missing' : !isOwnSite(p.server, ctx.m.app, text) ? 'not written by cutover' : text === want.content ? 'in place' : 'differs from the manifest';
  return { server: p.server, names: p.server_names, site: want.path, site_state };
}

/** Bytes used by a directory tree (lstat, not following links; hard links counted once). */
export function diskUsage(dir: string): number {
  const seen = new Set<string>();
  let total = 0;
  const walk = (p: string) => {
    const st = fs.lstatSync(p, { throwIfNoEntry: false, bigint: false });
    if (!st) return;
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    total += st.blocks * 512;
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
  };
  walk(dir);
  return total;
}

/** An interrupted build the kit has already cleaned up after (recorded it; its directory went with it). */
const cleanedUp = (r: ReleaseRecord) => r.state === 'interrupted' && r.interruptionRecorded === true;

export async function gatherStatus(ctx: Context, now = Date.now()): Promise<StatusReport> {
  // systemctl answers in another process: ask it first (both questions at once), and read the history
  // and walk the releases' sizes while it does.
  const service = Promise.all([slotStates(ctx.paths), preflightLeftovers(ctx.m.app)]);
  const { events, records } = history(ctx);
  const onDisk = new Set(fs.existsSync(ctx.paths.releases) ? fs.readdirSync(ctx.paths.releases) : []);
  const live = liveRelease(ctx.paths);
  const recorded = activations(events).at(-1)?.release;
  const unfinished = live !== undefined && live !== recorded ? live : undefined;
  const rollback = unfinished ? undefined : rollbackTarget(events, live, records, (id) => onDisk.has(id));
  const releases: ReleaseStatus[] = [...records.values()]
    .sort((a, b) => b.order - a.order)
    .filter((r) => onDisk.has(r.id) || !(r.state === 'removed' || cleanedUp(r)))
    .map((r) => ({
      id: r.id,
      commit: r.commit,
      ref: r.ref,
      state: r.state,
      live: r.id === live,
      rollbackTarget: r.id === rollback,
      onDisk: onDisk.has(r.id),
      builtAt: r.builtAt,
      ageSeconds: Math.round((now - Date.parse(r.builtAt)) / 1000),
      sizeBytes: onDisk.has(r.id) ? diskUsage(ctx.paths.release(r.id)) : undefined,
      reason: r.reason,
      source: r.source ?? { kind: 'git' },
    }));
  for (const id of onDisk) {
    if (!records.has(id)) releases.push({ id, commit: '', state: 'unknown', live: id === live, rollbackTarget: false, onDisk: true, reason: 'not in the history: cutover did not make it', source: { kind: 'git' } });
  }
  const holder = liveHolder(ctx.paths.lock);
  const [slots, preflights] = await service;
  const running = slots.filter(isRunning);
  const serving = running.length > 1 ? slotToKeep(running, recorded) : liveSlot(slots);
  const other = running.length > 1 ? running.find((x) => x !== serving) : undefined;
  return {
    app: ctx.m.app,
    root: ctx.paths.root,
    service: serving?.state ?? (slots.find((x) => x.state === 'failed')?.state ?? slots[0]?.state ?? 'off'),
    slots: slots.filter((x) => x.state !== 'inactive').map((x) => ({ unit: x.unit, state: x.state, pid: x.pid ?? null, release: x.release ?? null })),
    preflights,
    live: live ?? null,
    serving: serving?.release ?? null,
    alsoServing: other ? (other.release ?? null) : null,
    unfinished: unfinished ?? null,
    recordedLive: recorded ?? null,
    rollbackTarget: rollback ?? null,
    lock: holder ? describeHolder(holder) : null,
    freeze: readFreeze(ctx.paths) ?? null,
    releases,
    interruptedGone: [...records.values()].filter((r) => cleanedUp(r) && !onDisk.has(r.id)).length,
    proxy: proxyStatus(ctx),
  };
}

function age(s?: number): string {
  if (s === undefined) return '';
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function size(b?: number): string {
  if (b === undefined) return '-';
  return b < 1 << 20 ? `${Math.ceil(b / 1024)}K` : `${(b / (1 << 20)).toFixed(1)}M`;
}

export function formatStatus(r: StatusReport): string {
  const lines = [
    `app ${r.app} in ${r.root}`,
    `service: ${r.service}${r.slots.length ? ` (${r.slots.map((x) => `${x.unit} ${x.state}${x.release ? ` in ${x.release}` : ''}`).join(', ')})` : ''}`,
    ...(r.preflights.length ? [`preflight units left running: ${r.preflights.join(', ')} (the next cutover verb stops them)`] : []),
    `live: ${r.live ?? 'none'}`,
    ...(r.alsoServing ? [`also serving: ${r.alsoServing} (a second slot: a cutover was cut short and both answer; the next cutover verb stops it)`] : []),
    ...(r.serving && r.serving !== r.live ? [`serving: ${r.serving} (the service still runs it: the switch to ${r.live ?? 'none'} was not followed by a restart)`] : []),
    ...(r.unfinished
      ? [`unfinished: the activation of ${r.unfinished} did not finish (the last recorded one is of ${r.recordedLive ?? 'none'}); \`cutover activate ${r.unfinished}\` finishes it${r.recordedLive ? `, \`cutover rollback --to ${r.recordedLive}\` goes back` : ''}`]
      : []),
    `rollback target: ${r.rollbackTarget ?? 'none'}`,
  ];
  if (r.lock) lines.push(`lock: held by ${r.lock}`);
  if (r.freeze) lines.push(`FROZEN: ${describeFreeze(r.freeze)} (\`cutover unfreeze\` lifts it)`);
  if (r.proxy) {
    const fix = r.proxy.site_state === 'in place' ? '' : r.proxy.site_state === 'not written by cutover' ? ' (move it away, then provision)' : ' (provision writes it)';
    lines.push(`public entrance: ${r.proxy.server} site ${r.proxy.site} for ${r.proxy.names.join(', ')}: ${r.proxy.site_state}${fix}`);
  }
  lines.push('', `  ${'RELEASE'.padEnd(16)} ${'STATE'.padEnd(12)} ${'COMMIT'.padEnd(12)} ${'AGE'.padStart(5)} ${'SIZE'.padStart(7)}  NOTE`);
  for (const x of r.releases) {
    const mark = x.live ? '*' : x.rollbackTarget ? '<' : ' ';
    const from = x.source.kind === 'archive' ? `archive ${x.source.sha256?.slice(0, 12)} built on ${x.source.builtBy}` : '';
    const note = [x.live ? 'live' : '', x.rollbackTarget ? 'rollback target' : '', x.ref ? `ref ${x.ref}` : '', from, x.reason ?? '', !x.onDisk ? 'removed from disk' : '']
      .filter(Boolean)
      .join('; ');
    lines.push(`${mark} ${x.id.padEnd(16)} ${x.state.padEnd(12)} ${x.commit.slice(0, 12).padEnd(12)} ${age(x.ageSeconds).padStart(5)} ${size(x.sizeBytes).padStart(7)}  ${note}`);
  }
  if (r.releases.length === 0) lines.push('  (no releases yet)');
  if (r.interruptedGone > 0) {
    lines.push(`  (and ${r.interruptedGone} interrupted build${r.interruptedGone === 1 ? '' : 's'} already cleaned up from disk, not listed)`);
  }
  return lines.join('\n') + '\n';
}
