// System-test fixtures: the hand-written Node app manifest, a set-up that reports why it failed, and a release of a new commit.
import { test } from 'uvu';
import path from 'node:path';
import type { ExecResult } from '../host/host.ts';
import { cleanupTempDirs, type AppRepo } from './gitrepo.ts';
import { bootKitHost, expectExit, type KitHost } from './hostkit.ts';
import { systemTier, type Register } from './prereq.ts';
import { releaseIdOf } from './system.ts';

/** The frame of a system test file about one app: its `it`, whether to boot anything, where the app lives, and its closing hook. */
export interface AppFile {
  /** The system tier's `it` (skipped, or failing under CI=true, when not root). */
  it: Register;
  /** Whether the tier can run here: hooks boot nothing otherwise. */
  ready: boolean;
  app: string;
  port: number;
  /** The app's root inside the host (the default, /usr/local/src/<app>). */
  root: string;
  /** Registers the file's closing hook: stops the host `host()` returns (when one booted), removes the temp dirs, prints how long the file took. */
  closeWith(host: () => KitHost | undefined): void;
}

/** The frame of a system test file deploying one app (`app` on `port`, a port of the file's own range). */
export function appFile(fileUrl: string, app: string, port: number): AppFile {
  const t0 = Date.now();
  const { it, ready } = systemTier(fileUrl);
  return {
    it,
    ready,
    app,
    port,
    root: `/usr/local/src/${app}`,
    closeWith(host) {
      test.after(async () => {
        await host()?.stop();
        await cleanupTempDirs();
        console.log(`\n  ${path.basename(new URL(fileUrl).pathname)} took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      });
    },
  };
}

/**
 * The node example app as the system tests deploy it: `node server.js` on a socket unit, a 50 ms
 * start, gated on GET /health, 5 s to stop. `over` replaces any key (a test's own build, keep…).
 */
export function nodeApp(app: string, repo: string, port: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    app,
    repo,
    runtime: 'node',
    build: 'node build.js',
    start: 'node server.js',
    port,
    socket: true,
    env: { STARTUP_DELAY_MS: '50' },
    health: { path: '/health', timeout: 15 },
    stop_timeout: 5,
    ...over,
  };
}

/**
 * The python example app as the system tests deploy it: gunicorn (2 workers) on a socket unit, a 50 ms
 * start, gated on GET /health (20 s: gunicorn starts slower), 5 s to stop. `over` replaces any key.
 */
export function pythonApp(app: string, repo: string, port: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    app,
    repo,
    runtime: 'python',
    start: 'gunicorn --workers 2 app:application',
    port,
    socket: true,
    env: { PYTHONUNBUFFERED: '1', STARTUP_DELAY_MS: '50' },
    health: { path: '/health', timeout: 20 },
    stop_timeout: 5,
    ...over,
  };
}

/**
 * The node example app built the way its own package.json says (`npm ci`, `npm run build`), with the
 * shared .env and uploads/ and the env file: the lifecycle and provision tests' app. `over` replaces any key.
 */
export function npmApp(app: string, repo: string, port: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    app,
    repo,
    port,
    install: 'npm ci --no-audit --no-fund',
    build: 'npm run build',
    start: 'node server.js',
    shared: ['.env', 'uploads/'],
    env_file: '.env',
    health: { path: '/health', timeout: 10 },
    ...over,
  };
}

/** Runs a file's set-up (boot, repos, provision, first releases); uvu reports a failing before hook only as tests that did not pass, so this says why. */
export async function setUp<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    console.error(`\n  setting up the test host failed: ${(e as Error).stack ?? e}`);
    throw e;
  }
}

/**
 * Boots a test host with the node example app (nodeApp with `over`) provisioned and its `main`
 * released: the common start of a system test file. Reports why it failed, like setUp.
 */
export async function bootNodeApp(app: string, port: number, over: Record<string, unknown> = {}): Promise<{ h: KitHost; repo: AppRepo; manifest: string }> {
  return setUp(async () => {
    const h = await bootKitHost();
    const made = await h.repo(app);
    const manifest = h.manifest(nodeApp(app, made.url, port, over));
    expectExit(await h.kit('provision', [], { manifest }), 0, 'provision');
    expectExit(await h.kit('release', ['main'], { manifest }), 0, 'release v1');
    return { h, repo: made.repo, manifest };
  });
}

/** Commits `changes` as `name`, releases that commit through `kit`, expects exit `code`, and prints how long it took. */
export async function releaseCommit(
  kit: (verb: string, args: string[]) => Promise<ExecResult>,
  repo: AppRepo,
  name: string,
  changes: Record<string, string | null>,
  code = 0,
): Promise<{ r: ExecResult; id: string }> {
  const sha = await repo.commit(changes, name);
  const id = releaseIdOf(sha);
  const t0 = Date.now();
  const r = await kit('release', [sha]);
  expectExit(r, code, `release ${name}`);
  console.log(`  release ${name} (${id}): exit ${r.code} in ${Date.now() - t0} ms`);
  return { r, id };
}
