// Small helpers for the system tier: root check, commands inside the test host, snapshots of its files, history and status.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecResult } from '../host/host.ts';
import { expectExit, type KitHost } from './hostkit.ts';

/** stdout and stderr of a command, together. */
export const out = (r: ExecResult): string => `${r.stdout}\n${r.stderr}`;

/** Runs a /bin/sh script inside the host and returns its trimmed stdout; throws with the output on a non-zero exit. */
export async function inside(k: KitHost, script: string, what = script): Promise<string> {
  const r = await k.host.sh(script, { timeoutMs: 60_000 });
  expectExit(r, 0, what);
  return r.stdout.trim();
}

/** A path inside the host, seen from the test side. */
export function hostPath(k: KitHost, p: string): string {
  return path.join(k.host.root, p);
}

/** Owner, group, octal mode and type of a path inside the host, as `stat` prints them there. */
export async function statInside(k: KitHost, p: string): Promise<{ owner: string; group: string; mode: string; type: string }> {
  const [owner, group, mode, ...type] = (await inside(k, `stat -c '%U %G %a %F' '${p}'`)).split(' ');
  return { owner: owner!, group: group!, mode: mode!, type: type.join(' ') };
}

/**
 * Every path under the given dirs inside the host: type, owner, mode, mtime and a hash of the
 * content (or the link target). Two equal snapshots mean nothing was created, removed or touched.
 */
export function snapshotInside(k: KitHost, dirs: string[], opts: { exclude?: string[] } = {}): Record<string, string> {
  const snap: Record<string, string> = {};
  const exclude = new Set(opts.exclude ?? []);
  const walk = (rel: string) => {
    if (exclude.has(rel)) return;
    const full = hostPath(k, rel);
    const st = fs.lstatSync(full, { throwIfNoEntry: false });
    if (!st) {
      snap[rel] = 'missing';
      return;
    }
    const meta = `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${st.mtimeMs}`;
    if (st.isSymbolicLink()) snap[rel] = `link ${fs.readlinkSync(full)} ${meta}`;
    else if (st.isDirectory()) {
      snap[rel] = `dir ${meta}`;
      for (const name of fs.readdirSync(full).sort()) walk(path.posix.join(rel, name));
    } else if (st.isFile()) {
      snap[rel] = `file ${meta} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex').slice(0, 16)}`;
    } else snap[rel] = `other ${meta}`;
  };
  for (const d of dirs) walk(d);
  return snap;
}

/** The differences between two snapshots, one line each (empty when equal). */
export function snapshotDiff(before: Record<string, string>, after: Record<string, string>): string[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return keys.filter((key) => before[key] !== after[key]).map((key) => `${key}: ${before[key] ?? 'absent'} -> ${after[key] ?? 'absent'}`);
}

/** The app's release history (history.jsonl under root), parsed. */
export function historyInside(k: KitHost, root: string): any[] {
  const file = hostPath(k, path.posix.join(root, 'history.jsonl'));
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** The release `active` points at (releases/<id> → <id>), or undefined. */
export function activeInside(k: KitHost, root: string): string | undefined {
  try {
    const target = fs.readlinkSync(hostPath(k, path.posix.join(root, 'active')));
    return target.replace(/^releases\//, '');
  } catch {
    return undefined;
  }
}

/** Release directory names under root/releases. */
export function releasesOnDisk(k: KitHost, root: string): string[] {
  const dir = hostPath(k, path.posix.join(root, 'releases'));
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** `status --json`, parsed (fails the test on a non-zero exit). */
export async function statusJson(k: KitHost, manifest: string): Promise<any> {
  const r = await k.kit('status', ['--json'], { manifest });
  expectExit(r, 0, 'status --json');
  return JSON.parse(r.stdout);
}

/** A unit's properties from `systemctl show` inside the host. */
export async function unitProps(k: KitHost, unit: string, props: string[]): Promise<Record<string, string>> {
  const text = await inside(k, `systemctl show ${props.map((p) => `-p ${p}`).join(' ')} '${unit}'`);
  return Object.fromEntries(text.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Polls fn until it returns a truthy value, or throws after timeoutMs with what it last saw. */
export async function eventually<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await fn();
      if (last) return last as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The release id cutover derives from a commit (its first 12 hex digits). */
export const releaseIdOf = (sha: string): string => sha.slice(0, 12);

export const loopback = (port: number, p = '/'): string => `http://127.0.0.1:${port}${p}`;

/** Both slots of an app's service inside the host: unit, ActiveState and main pid. */
export async function slotsInside(k: KitHost, app: string): Promise<{ unit: string; state: string; pid: number }[]> {
  const units = ['a', 'b'].map((s) => `${app}@${s}.service`);
  const r = await k.host.exec(['systemctl', 'show', '--property=Id,ActiveState,MainPID', ...units]);
  return r.stdout.trim().split(/\n\s*\n/).map((block, i) => {
    const p = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { unit: units[i]!, state: p.ActiveState ?? 'unknown', pid: Number(p.MainPID) || 0 };
  });
}

/** The slot unit that serves the app now (the active one; fails when none or both are). */
export async function servingUnit(k: KitHost, app: string): Promise<string> {
  const active = (await slotsInside(k, app)).filter((s) => s.state === 'active');
  if (active.length !== 1) throw new Error(`${app}: expected one active slot, found ${active.map((s) => s.unit).join(', ') || 'none'}`);
  return active[0]!.unit;
}

/** The main pid of the slot that serves the app now. */
export async function servingPid(k: KitHost, app: string): Promise<number> {
  const unit = await servingUnit(k, app);
  return (await slotsInside(k, app)).find((s) => s.unit === unit)!.pid;
}

/**
 * Provision with `changed` in place of the app's manifest: writes it, runs provision (expecting
 * `expect.code`), hands what it printed to `check`, and writes `original` back whatever happened, so a
 * failed check leaves the next test the manifest it expects.
 */
export async function provisionWith(
  k: KitHost,
  manifests: { changed: Record<string, unknown>; original: Record<string, unknown> },
  expect: { code: number; what: string },
  check: (r: ExecResult) => Promise<void> | void,
): Promise<void> {
  const manifest = k.manifest(manifests.changed);
  try {
    const r = await k.kit('provision', [], { manifest });
    expectExit(r, expect.code, expect.what);
    await check(r);
  } finally {
    k.manifest(manifests.original);
  }
}
