// System-test fixtures: the hand-written Node app manifest, a set-up that reports why it failed, and a release of a new commit.
import type { ExecResult } from '../host/host.ts';
import type { AppRepo } from './gitrepo.ts';
import { bootKitHost, expectExit, type KitHost } from './hostkit.ts';
import { releaseIdOf } from './system.ts';

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
