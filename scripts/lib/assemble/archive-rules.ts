// What a release archive may hold and who may release it: the record's fields, each entry's path, type, mode and link, the host's match (pure: entries and facts in, problems out).
import path from 'node:path';
import { RELEASE_ID } from '../manifest/paths.ts';

/** The record cutover build puts first in every archive: where, from what and for what the tree was built. */
export interface ArchiveRecord {
  format: 1;
  app: string;
  commit: string;
  ref: string;
  release: string;
  /** node or python, and the exact version the build ran with (process.version, python3 --version). */
  runtime: 'node' | 'python';
  runtimeVersion: string;
  /** process.arch of the build machine (x64, arm64…). */
  arch: string;
  /** /etc/os-release's ID and VERSION_ID. */
  os: string;
  /** glibc's version when the tree holds native code (*.node, *.so), else absent. */
  libc?: string;
  /** The lockfile key of the installed dependencies (as reuse.ts keys them), when there was an install. */
  depsKey?: string;
  builtAt: string;
  builtBy: string;
  /** sha256 over the tree's paths, types, modes, link targets and contents (treeDigest). */
  treeDigest: string;
  /** Whether the tree holds native code (so libc matters). */
  native: boolean;
}

/** The name of the record: the archive's first entry, and a file at the top of the release. */
export const RECORD_NAME = '.cutover-archive.json';
/** The namespace of an archive's ssh signature (ssh-keygen -Y sign -n …). */
export const SIGNATURE_NAMESPACE = 'cutover-archive';

/** Default limits: a release tree larger than this is refused as a decompression bomb unless the manifest raises them. */
export const DEFAULT_LIMITS = { maxBytes: 4 * 1024 ** 3, maxEntries: 400_000 };

/** One archive entry as the reader saw it. */
export interface ArchiveEntry {
  path: string;
  /** File, Directory, SymbolicLink, Link (a hard link), or anything else the tar format has. */
  type: string;
  mode: number;
  size: number;
  linkpath?: string;
}

/** Symlink targets outside the release that are allowed: a program of the host (a Python venv's bin/python → /usr/bin/python3). */
const HOST_PROGRAM = /^\/(usr\/(local\/)?)?bin\/[A-Za-z0-9._+-]+$/;

/** The release-relative path of an entry ("./a/b/" → "a/b"), or undefined when it is absolute or climbs out. */
export function entryPath(raw: string): string | undefined {
  if (raw.startsWith('/') || raw.includes('\0')) return undefined;
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return undefined;
  return parts.join('/');
}

/**
 * Problems with one entry, given the final directory of the release (`releaseDir`, for absolute link
 * targets) and the files seen before it (for hard links). Empty when it is fine.
 */
export function entryProblems(e: ArchiveEntry, releaseDir: string, seenFiles: Set<string>, seenSymlinks: Set<string> = new Set()): string[] {
  const shown = JSON.stringify(e.path.length > 120 ? e.path.slice(0, 117) + '...' : e.path);
  const rel = entryPath(e.path);
  if (rel === undefined) return [`${shown} is an absolute path or climbs out with '..'`];
  const out: string[] = [];
  // Nothing is ever written through a link: an entry below a symlink the archive made is refused.
  const parts = rel.split('/');
  for (let i = 1; i < parts.length; i++) {
    const parent = parts.slice(0, i).join('/');
    if (seenSymlinks.has(parent)) {
      out.push(`${shown} lies below the symlink ${JSON.stringify(parent)} the archive made earlier`);
      break;
    }
  }
  if (!['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link'].includes(e.type)) {
    out.push(`${shown} is a ${describeType(e.type)}; a release holds only files, directories and links`);
  }
  if (e.type !== 'SymbolicLink' && e.mode & 0o6000) out.push(`${shown} is setuid or setgid (mode ${modeText(e.mode)})`);
  if (e.type !== 'SymbolicLink' && e.mode & 0o002) out.push(`${shown} is writable by every user (mode ${modeText(e.mode)})`);
  if (e.type === 'SymbolicLink') {
    const target = e.linkpath ?? '';
    if (!symlinkStaysInside(rel, target, releaseDir)) out.push(`${shown} is a symlink to ${JSON.stringify(target)}, outside the release`);
  }
  if (e.type === 'Link') {
    const target = entryPath(e.linkpath ?? '');
    if (target === undefined || !seenFiles.has(target)) out.push(`${shown} is a hard link to ${JSON.stringify(e.linkpath ?? '')}, which is not a file earlier in the archive`);
  }
  return out;
}

/** Whether a symlink at `rel` pointing at `target` resolves inside the release (or is a program of the host). */
export function symlinkStaysInside(rel: string, target: string, releaseDir: string): boolean {
  if (target === '' || target.includes('\0')) return false;
  if (target.startsWith('/')) {
    if (HOST_PROGRAM.test(target)) return true;
    const inside = path.posix.relative(releaseDir, path.posix.normalize(target));
    return inside !== '' && !inside.startsWith('..') && !path.posix.isAbsolute(inside);
  }
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  return resolved !== '..' && !resolved.startsWith('../') && !path.posix.isAbsolute(resolved);
}

function describeType(type: string): string {
  const names: Record<string, string> = {
    CharacterDevice: 'character device',
    BlockDevice: 'block device',
    FIFO: 'fifo',
    Socket: 'socket',
  };
  return names[type] ?? `"${type}" entry`;
}

function modeText(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Problems with the record itself: its fields and their forms. */
export function recordProblems(r: unknown): string[] {
  if (!r || typeof r !== 'object') return ['its record is not a JSON object'];
  const x = r as Record<string, unknown>;
  const out: string[] = [];
  const str = (k: string, re?: RegExp) => {
    if (typeof x[k] !== 'string' || (re && !re.test(x[k] as string))) out.push(`its record's ${k} is missing or malformed`);
  };
  if (x.format !== 1) out.push(`its record's format is ${JSON.stringify(x.format)}, not 1 (made by another version of cutover?)`);
  str('app', /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/);
  str('commit', /^[0-9a-f]{40}$/);
  str('release', RELEASE_ID);
  str('runtimeVersion');
  str('arch', /^[a-z0-9_]+$/);
  str('treeDigest', /^[0-9a-f]{64}$/);
  if (x.runtime !== 'node' && x.runtime !== 'python') out.push("its record's runtime is neither node nor python");
  if (typeof x.release === 'string' && typeof x.commit === 'string' && !x.release.startsWith(x.commit.slice(0, 12))) {
    out.push(`its record's release ${x.release} is not an id of commit ${x.commit}`);
  }
  return out;
}

/** The facts of the host an archive must match. */
export interface HostFacts {
  app: string;
  runtime: 'node' | 'python';
  runtimeVersion: string;
  arch: string;
  libc?: string;
}

/** The major version of a runtime ("v18.20.4" → "18"; Python's minor counts too: "3.11.2" → "3.11", a venv is tied to it). */
export function runtimeLine(runtime: 'node' | 'python', version: string): string {
  const nums = version.replace(/^[^0-9]*/, '').split('.');
  return runtime === 'python' ? nums.slice(0, 2).join('.') : nums[0];
}

/** Where the archive does not fit this host: another app, another runtime line, CPU or (for native code) an older C library. */
export function hostProblems(r: ArchiveRecord, host: HostFacts): [string, string][] {
  const out: [string, string][] = [];
  if (r.app !== host.app) {
    out.push([`it is an archive of ${r.app}, not of ${host.app}`, `Release it with ${r.app}'s manifest, or build ${host.app} with \`cutover build\`.`]);
  }
  if (r.runtime !== host.runtime || runtimeLine(r.runtime, r.runtimeVersion) !== runtimeLine(host.runtime, host.runtimeVersion)) {
    out.push([
      `it was built with ${r.runtime} ${r.runtimeVersion}, and this host runs ${host.runtime} ${host.runtimeVersion}`,
      `Build it where ${host.runtime} ${runtimeLine(host.runtime, host.runtimeVersion)} runs (the same major version as the hosts), or release the commit from git here.`,
    ]);
  }
  if (r.arch !== host.arch) {
    out.push([`it was built for ${r.arch}, and this host is ${host.arch}`, `Build it on a ${host.arch} machine.`]);
  }
  if (r.native && r.libc && host.libc && compareVersions(host.libc, r.libc) < 0) {
    out.push([
      `it holds native code built against glibc ${r.libc}, newer than this host's ${host.libc}`,
      'Build it on a machine with the same OS release as the hosts (or an older one).',
    ]);
  }
  if (r.native && r.libc && !host.libc) {
    out.push([`it holds native code built against glibc ${r.libc}, and this host has no glibc`, 'Build it on a machine with the same OS release as the hosts.']);
  }
  return out;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
