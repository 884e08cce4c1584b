// system tier: a handover on a saturated machine — CPU hogs at the app's own priority on every core plus client load: a good release goes live, a sick one is refused, 0 failed requests.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { getJson } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { describeLoad, loadDuring } from '../helpers/load.ts';
import { inside, loopback, slotsInside } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';
import { nodeApp } from '../helpers/fixtures.ts';

const { it, ready } = systemTier(import.meta.url);

// Ports 5200-5399 belong to this file.
const APP = { app: 'pressure', port: 5201 };
let h: KitHost;
let repo: AppRepo;
let manifest: string;
const numbers: string[] = [];
const t0 = Date.now();

const base = `http://127.0.0.1:${APP.port}`;
const version = async () => String((await getJson(loopback(APP.port, '/'))).version);
const kit = (verb: string, args: string[] = []) => h.kit(verb, args, { manifest });

function report(line: string) {
  numbers.push(line);
  console.log(`\n  ${line}`);
}

/** One busy loop per core inside the host, each a transient unit at the app's own priority (nice 0, the default CPU weight). */
async function startHogs(): Promise<number> {
  const cores = Number(await inside(h, 'nproc'));
  for (let i = 0; i < cores; i++) {
    await inside(h, `systemd-run --quiet --unit=pressure-hog-${i} --property=Nice=0 /bin/sh -c 'while :; do :; done'`);
  }
  return cores;
}

async function stopHogs(): Promise<void> {
  await h.host.sh(`systemctl stop 'pressure-hog-*' 2>/dev/null; true`, { timeoutMs: 30_000 });
}

test.before(async () => {
  if (!ready) return;
  h = await bootKitHost();
  const made = await h.repo(APP.app, 'node');
  repo = made.repo;
  manifest = h.manifest(
    nodeApp(APP.app, made.url, APP.port, {
      env: { STARTUP_DELAY_MS: '300' },
      // The timeout of the Ansible suite's fleet, where a good release was refused on a busy machine.
      health: { path: '/health', timeout: 8 },
      stop_timeout: 10,
    }),
  );
  expectExit(await kit('provision'), 0, 'provision');
  expectExit(await kit('release', ['main']), 0, 'release v1');
});

test.after(async () => {
  if (h) {
    await stopHogs();
    await h.stop();
  }
  await cleanupTempDirs();
  if (numbers.length) console.log(`\n  pressure, measured:\n    ${numbers.join('\n    ')}`);
  console.log(`\n  pressure.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

it('saturated (a busy loop per core at the app priority, 8 clients): a good release goes live, a sick one is refused, 0 failed', async () => {
  const cores = await startHogs();
  try {
    const load = await inside(h, 'cat /proc/loadavg');
    await repo.commit({ VERSION: '2\n' }, 'v2');
    const good = await loadDuring(base, () => kit('release', ['main']), { workers: 8, minMs: 2000, path: '/version' });
    const gate = good.result.stdout.split('\n').filter((l) => /health gate|accepted and answered|drained/.test(l)).map((l) => l.trim()).join(' | ');
    report(describeLoad(`good release, ${cores} hogs (loadavg ${load.split(' ').slice(0, 3).join(' ')})`, good.load, good.samples) + ` · ${gate}`);
    expectExit(good.result, 0, 'the good release v2 on a saturated machine');
    assert.is(good.load.failed, 0, `no failed request: ${JSON.stringify(good.load.errors)}`);
    assert.is(await version(), '2');

    await repo.commit({ VERSION: '3\n', BEHAVIOUR: 'unhealthy\n' }, 'v3 is sick');
    const sick = await loadDuring(base, () => kit('release', ['main']), { workers: 8, minMs: 2000, path: '/version' });
    report(describeLoad(`sick release, ${cores} hogs`, sick.load, sick.samples));
    expectExit(sick.result, 1, 'the sick release v3 is refused');
    assert.match(sick.result.stderr, /health/);
    assert.is(sick.load.failed, 0, `no failed request: ${JSON.stringify(sick.load.errors)}`);
    assert.is(await version(), '2', 'v2 still serves');
    const running = (await slotsInside(h, APP.app)).filter((s) => s.state !== 'inactive');
    assert.is(running.length, 1, `one slot runs: ${JSON.stringify(running)}`);
  } finally {
    await stopHogs();
  }
});

test.run();
