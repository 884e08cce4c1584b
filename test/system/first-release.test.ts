// system tier: a first release that fails its health gate leaves no release live (no `active`, nothing the socket could start), and the next good release goes live as a first one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { expectExit, type KitHost } from '../helpers/hostkit.ts';
import type { AppRepo } from '../helpers/gitrepo.ts';
import { appFile, nodeApp, setUp } from '../helpers/fixtures.ts';
import { bootKitHost } from '../helpers/hostkit.ts';
import { activeInside, historyInside, inside, loopback, out, releaseIdOf, slotsInside, statusJson } from '../helpers/system.ts';
import { httpGet } from '../helpers/apps.ts';

// Ports 4900-4999 belong to this file; it uses 4901.
const { it, ready: ROOT, app: APP, port: PORT, root: APP_ROOT, closeWith } = appFile(import.meta.url, 'firstapp', 4901);

let h: KitHost;
let repo: AppRepo;
let manifest: string;

test.before(async () => {
  if (!ROOT) return;
  await setUp(async () => {
    h = await bootKitHost();
    const made = await h.repo(APP);
    repo = made.repo;
    // Preflight off, so the sick release is switched to and started, and only the health gate refuses it.
    manifest = h.manifest(nodeApp(APP, made.url, PORT, { preflight: false, health: { path: '/health', timeout: 4 } }));
    expectExit(await h.kit('provision', [], { manifest }), 0, 'provision');
  });
});

closeWith(() => h);

let sick = '';

it('a first release that fails its health gate: exit 1, `active` removed, no slot runs, marked bad, status says nothing is live', async () => {
  const sha = await repo.commit({ VERSION: '1\n', BEHAVIOUR: 'unhealthy\n' }, 'sick first');
  sick = releaseIdOf(sha);
  const r = await h.kit('release', [sha], { manifest });
  expectExit(r, 1, 'the sick first release');
  const text = out(r);
  assert.match(text, `switch active to ${sick}`, 'it was switched to and started');
  assert.match(r.stderr, `Release ${sick} failed its health gate`);
  assert.match(r.stderr, 'There was no earlier release to go back to');
  assert.match(r.stderr, 'no release is live');
  assert.is(activeInside(h, APP_ROOT), undefined, '`active` is gone');
  assert.equal((await slotsInside(h, APP)).map((s) => s.state).filter((s) => s === 'active' || s === 'activating'), [], 'no slot runs');
  const failed = historyInside(h, APP_ROOT).filter((e) => e.event === 'activation-failed');
  assert.equal(failed.map((e) => [e.release, e.previous]), [[sick, null]]);
  const status = await statusJson(h, manifest);
  assert.is(status.live, null, 'status: nothing is live');
  assert.is(status.releases.find((x: { id: string }) => x.id === sick)?.state, 'bad');
  const plain = await h.kit('status', [], { manifest });
  expectExit(plain, 0, 'status');
  assert.match(plain.stdout, /live: none/);
});

it('a request on the port afterwards does not start the sick release', async () => {
  const journalBefore = await inside(h, `journalctl -u '${APP}@*.service' --no-pager -o cat | grep -c 'release ${sick}, pid' || true`);
  // The socket still listens; the slot it would start finds no `active` to run in and fails.
  const res = await httpGet(loopback(PORT, '/'), { timeoutMs: 3_000 }).catch((e) => ({ status: 0, body: String(e.code ?? e) }));
  assert.not.match(res.body, sick, `the sick release did not answer (${res.status} ${res.body.slice(0, 200)})`);
  const journalAfter = await inside(h, `journalctl -u '${APP}@*.service' --no-pager -o cat | grep -c 'release ${sick}, pid' || true`);
  assert.is(journalAfter, journalBefore, 'the sick release was not started again');
  assert.is(activeInside(h, APP_ROOT), undefined);
});

it('the next good release goes live as a first release (nothing to go back to, the socket serves it)', async () => {
  const sha = await repo.commit({ VERSION: '2\n', BEHAVIOUR: null }, 'good');
  const good = releaseIdOf(sha);
  const r = await h.kit('release', [sha], { manifest });
  expectExit(r, 0, 'the good release');
  assert.is(activeInside(h, APP_ROOT), good);
  const res = await httpGet(loopback(PORT, '/'), { timeoutMs: 10_000 });
  assert.is(res.status, 200, res.body);
  assert.is(JSON.parse(res.body).release, good);
  const activated = historyInside(h, APP_ROOT).filter((e) => e.event === 'activated');
  assert.equal(activated.map((e) => [e.release, e.previous]), [[good, null]], 'activated with no previous release (not the sick one)');
  const status = await statusJson(h, manifest);
  assert.is(status.live, good);
});

test.run();
