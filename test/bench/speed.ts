// Release speed (cold, warm, changed lockfile), the kit's own overhead (activate, status) and disk, on examples/node-deps-app.
import { servingUnit } from '../helpers/system.ts';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';
import type { ExecResult } from '../host/host.ts';
import { SRC, type KitHost } from '../helpers/hostkit.ts';
import { examplesDir, removeTempDir, tempDir } from '../helpers/gitrepo.ts';
import { httpGet } from '../helpers/apps.ts';
import { historyInside } from '../helpers/system.ts';
import { kitSteps } from './steps.ts';

const APP = { app: 'benchdeps', port: 3610 };
const ROOT = `/usr/local/src/${APP.app}`;
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
/** Warm releases of code-only commits (after the cold one): 5 kept releases in all for the disk measurement. */
const WARM_RELEASES = 4;
const REPEATS = 3;

export interface Timed {
  label: string;
  release?: string;
  wallMs: number;
  /** build-started → build-finished from the history */
  buildMs?: number;
  steps: Record<string, number>;
  exit: number;
}

export interface SpeedResult {
  app: string;
  /** The app's manifest inside the test host. */
  manifest?: string;
  packages?: number;
  cold?: Timed;
  warm: Timed[];
  lockfile?: Timed;
  /** median warm release / cold release, wall time and build phase */
  warmOverCold?: { wall: number; build: number };
  overhead?: {
    activateMs: number[];
    restartToHealthyMs: number[];
    statusMs: number[];
    /** median activate − median restart-to-healthy */
    kitOverheadMs: number;
    activateSteps: Record<string, number>;
  };
  disk?: {
    releases: number;
    /** files and directories in the cold release */
    files: number;
    dirs: number;
    /** in the test host (its writable layer is tmpfs: directories take no blocks there) */
    inside: DiskUse;
    /** a hard-link-preserving copy (cp -a) of the releases onto this machine's disk (ext4): directories count too */
    onDisk?: DiskUse;
  };
  notes: string[];
  errors: string[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : 0;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A git repo of examples/node-deps-app on the test side, seen inside at SRC/deps. */
async function makeDepsRepo(k: KitHost) {
  const dir = path.join(k.srcDir, 'deps');
  await mkdir(dir, { recursive: true });
  await cp(path.join(examplesDir, 'node-deps-app'), dir, { recursive: true, filter: (src) => !['node_modules', 'dist', 'BEHAVIOUR'].includes(path.basename(src)) });
  const env = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'bench@cutover.invalid', GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'bench@cutover.invalid' };
  const git = $({ cwd: dir, env, quiet: true });
  await git`git init --quiet -b main`;
  const commit = async (files: Record<string, string>, message: string) => {
    for (const [f, content] of Object.entries(files)) await writeFile(path.join(dir, f), content);
    await git`git add --all`;
    await git`git commit --quiet -m ${message}`;
  };
  await commit({ VERSION: '1\n' }, 'v1');
  return { dir, url: `${SRC}/deps`, commit };
}

/**
 * Where this machine reaches the npm registry through a TLS-inspecting proxy (its CA is in
 * NODE_EXTRA_CA_CERTS), npm inside the test host is given the same CA bundle in /etc/npmrc, as an
 * operator on such a network would do on a server. Returns what it did, for the results.
 */
async function trustHostCa(k: KitHost): Promise<string | undefined> {
  const bundle = process.env.NODE_EXTRA_CA_CERTS;
  if (!bundle) return undefined;
  let pem: string;
  try {
    pem = await readFile(bundle, 'utf8');
  } catch {
    return undefined;
  }
  const inside = '/usr/local/share/cutover-bench/ca-bundle.pem';
  const r = await k.host.sh(`set -e; mkdir -p ${path.posix.dirname(inside)}; cat > ${inside}; echo 'cafile=${inside}' >> /etc/npmrc`, { input: pem });
  if (r.code !== 0) throw new Error(`giving npm the CA bundle: ${r.stderr}`);
  return `npm in the test host uses this machine's CA bundle (${bundle}, as NODE_EXTRA_CA_CERTS says): its network inspects TLS`;
}

function lastLines(r: ExecResult, n = 15): string {
  return (r.stdout + r.stderr).trimEnd().split('\n').slice(-n).join('\n');
}

export async function releaseSpeed(k: KitHost, say: (line: string) => void): Promise<SpeedResult> {
  const result: SpeedResult = { app: APP.app, warm: [], notes: [], errors: [] };
  const repo = await makeDepsRepo(k);
  const manifest = k.manifest({
    app: APP.app,
    repo: repo.url,
    runtime: 'node',
    install: 'npm ci --omit=dev --no-audit --no-fund',
    build: 'npm run build',
    start: 'node server.js',
    port: APP.port,
    socket: true,
    env: { NODE_ENV: 'production', STARTUP_DELAY_MS: '300' },
    health: { path: '/health', timeout: 30 },
    stop_timeout: 10,
    keep: 5,
  });
  result.manifest = manifest;
  const lock = JSON.parse(await readFile(path.join(examplesDir, 'node-deps-app', 'package-lock.json'), 'utf8'));
  result.packages = Object.keys(lock.packages).filter((p) => p.startsWith('node_modules/')).length;

  const ca = await trustHostCa(k);
  if (ca) result.notes.push(ca);
  const prov = await k.kit('provision', [], { manifest });
  if (prov.code !== 0) throw new Error(`provision ${APP.app}: ${lastLines(prov)}`);

  const release = async (label: string): Promise<Timed> => {
    const t = performance.now();
    const r = await k.kit('release', ['main'], { manifest, timeoutMs: 600_000 });
    const wallMs = Math.round(performance.now() - t);
    const built = historyInside(k, ROOT).filter((e) => e.event === 'build-finished').at(-1);
    const timed: Timed = { label, release: built?.release, wallMs, buildMs: built?.duration_ms, steps: kitSteps(r.stdout), exit: r.code };
    if (r.code !== 0) result.errors.push(`${label}: release exited ${r.code}\n${lastLines(r)}`);
    say(`  ${label}: ${(wallMs / 1000).toFixed(2)} s (build ${((built?.duration_ms ?? 0) / 1000).toFixed(2)} s) ${JSON.stringify(timed.steps)}`);
    return timed;
  };

  // Cold: a fresh root (no npm cache, no release to copy from).
  await k.host.sh(`rm -rf ${ROOT}/cache`);
  say(`release speed on ${APP.app} (examples/node-deps-app, ${result.packages} packages):`);
  result.cold = await release('cold (empty npm cache, nothing to reuse)');

  // Warm: commits that change code only; the previous release's node_modules is copied.
  for (let i = 2; i < 2 + WARM_RELEASES; i++) {
    const server = await readFile(path.join(repo.dir, 'server.js'), 'utf8');
    await repo.commit({ VERSION: `${i}\n`, 'server.js': `${server}// code change ${i}\n` }, `v${i}: code only`);
    result.warm.push(await release(`warm ${i - 1} (code-only commit, lockfile unchanged)`));
  }

  // Disk: the 5 kept releases vs 5 × one release.
  result.disk = await measureDisk(k, result.cold.release);
  for (const d of [result.disk?.inside, result.disk?.onDisk]) {
    if (d) say(`  disk (${d.fs}): ${result.disk!.releases} releases use ${d.allKiB} KiB; one release alone ${d.oneKiB} KiB (ratio ${d.ratio.toFixed(2)})`);
  }

  // A commit that changes the lockfile: a fresh npm ci (from the warm npm cache), nothing to copy.
  const fixture = path.join(FIXTURES, 'lockfile-change');
  await repo.commit(
    {
      VERSION: `${2 + WARM_RELEASES}\n`,
      'package.json': await readFile(path.join(fixture, 'package.json'), 'utf8'),
      'package-lock.json': await readFile(path.join(fixture, 'package-lock.json'), 'utf8'),
    },
    'add ms: the lockfile changes',
  );
  result.lockfile = await release('lockfile changed (npm ci, warm npm cache)');

  const warmWall = median(result.warm.map((w) => w.wallMs));
  const warmBuild = median(result.warm.map((w) => w.buildMs ?? 0));
  if (result.cold.wallMs && result.cold.buildMs) {
    result.warmOverCold = { wall: warmWall / result.cold.wallMs, build: warmBuild / result.cold.buildMs };
  }

  result.overhead = await kitOverhead(k, manifest, result);
  return result;
}

export interface DiskUse {
  /** the file system type */
  fs: string;
  /** du -sk of the releases directory: a hard-linked inode counted once */
  allKiB: number;
  /** du -sk of one release alone (the cold one) */
  oneKiB: number;
  /** each release alone */
  eachKiB: Record<string, number>;
  ratio: number;
}

async function diskUse(run: (argv: string[]) => Promise<string>, releases: string, ids: string[], coldId: string | undefined): Promise<DiskUse> {
  const du = async (p: string) => Number((await run(['du', '-sk', p])).split('\t')[0]);
  const eachKiB: Record<string, number> = {};
  for (const id of ids) eachKiB[id] = await du(path.posix.join(releases, id));
  const allKiB = await du(releases);
  const oneKiB = (coldId && eachKiB[coldId]) || Object.values(eachKiB)[0] || 0;
  const fs = (await run(['df', '--output=fstype', releases])).trim().split('\n').at(-1) ?? 'unknown';
  return { fs, allKiB, oneKiB, eachKiB, ratio: oneKiB ? allKiB / oneKiB : 0 };
}

async function measureDisk(k: KitHost, coldId: string | undefined): Promise<SpeedResult['disk']> {
  const releases = `${ROOT}/releases`;
  const ids = (await k.host.exec(['ls', releases])).stdout.split('\n').filter(Boolean);
  const count = async (type: string) => Number((await k.host.sh(`find '${releases}/${coldId ?? ids[0]}' -type ${type} | wc -l`)).stdout.trim());
  const inside = await diskUse(async (argv) => (await k.host.exec(argv)).stdout, releases, ids, coldId);
  let onDisk: DiskUse | undefined;
  const copy = await tempDir('cutover-bench-disk');
  try {
    // cp -a keeps hard links between the files it copies in one run.
    await $({ quiet: true })`cp -a ${path.join(k.host.root, releases)} ${copy}`;
    const run = async (argv: string[]) => (await $({ quiet: true })`${argv}`).stdout;
    onDisk = await diskUse(run, path.join(copy, 'releases'), ids, coldId);
  } finally {
    await removeTempDir(copy);
  }
  return { releases: ids.length, files: await count('f'), dirs: await count('d'), inside, onDisk };
}

/** `systemctl restart` then GET /health until it answers 200: the service's own restart-to-healthy time. */
async function restartToHealthy(k: KitHost): Promise<number> {
  const slot = await servingUnit(k, APP.app);
  await k.host.exec(['systemctl', 'reset-failed', slot, `${APP.app}.socket`]);
  const t = performance.now();
  const r = await k.host.exec(['systemctl', 'restart', slot]);
  if (r.code !== 0) throw new Error(`systemctl restart: ${r.stderr}`);
  for (;;) {
    try {
      const res = await httpGet(`http://127.0.0.1:${APP.port}/health`, { timeoutMs: 10_000 });
      if (res.status === 200) return Math.round(performance.now() - t);
    } catch {
      // not up yet
    }
    if (performance.now() - t > 30_000) throw new Error('not healthy within 30 s of a restart');
    await sleep(10);
  }
}

async function kitOverhead(k: KitHost, manifest: string, speed: SpeedResult): Promise<SpeedResult['overhead']> {
  const live = speed.lockfile?.release;
  const previous = speed.warm.at(-1)?.release;
  if (!live || !previous) return undefined;
  const restartToHealthyMs: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    restartToHealthyMs.push(await restartToHealthy(k));
    await sleep(300);
  }
  const activateMs: number[] = [];
  let activateSteps: Record<string, number> = {};
  // Alternate between the last two releases, ending on the newest.
  for (const id of [previous, live, previous, live]) {
    const t = performance.now();
    const r = await k.kit('activate', [id], { manifest });
    activateMs.push(Math.round(performance.now() - t));
    if (r.code !== 0) speed.errors.push(`activate ${id}: exit ${r.code}\n${lastLines(r)}`);
    activateSteps = kitSteps(r.stdout);
  }
  const statusMs: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const t = performance.now();
    const r = await k.kit('status', [], { manifest });
    statusMs.push(Math.round(performance.now() - t));
    if (r.code !== 0) speed.errors.push(`status: exit ${r.code}\n${lastLines(r)}`);
  }
  return { activateMs, restartToHealthyMs, statusMs, kitOverheadMs: Math.round(median(activateMs) - median(restartToHealthyMs)), activateSteps };
}

export { median };
