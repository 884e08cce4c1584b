// system tier: bootstrap.sh on a host without Node (Node installed from the host's own Debian packages, then provision), and on a host whose Node is older than 18.19 (refused, nothing changed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { bootKitHost, expectExit, KIT, type KitHost } from '../helpers/hostkit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { hostPath, inside, out, snapshotDiff, snapshotInside } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';

const { it, ready } = systemTier(import.meta.url);

// Ports 4400-4499 belong to the tests of issue 13; this file uses 4401.
const APP = 'bootnode';
const PORT = 4401;
let k: KitHost;
let manifest: string;

test.before(async () => {
  if (!ready) return;
  k = await bootKitHost();
  const { url } = await k.repo(APP);
  manifest = k.manifest({ app: APP, repo: url, port: PORT, start: 'node server.js', health: { path: '/health', timeout: 10 } });
});
test.after(async () => {
  await k?.stop();
  await cleanupTempDirs();
});

const touched = () => snapshotInside(k, ['/etc/systemd/system', '/etc/cron.d', '/usr/local/src', '/etc/passwd', '/etc/group']);

it('a Node older than 18.19: bootstrap refuses (exit 2, the version and the minimum named) and changes nothing', async () => {
  // The host's real node, told by a preload that it is 18.18.2: what bootstrap's own check reads.
  fs.writeFileSync(hostPath(k, '/root/old-node.cjs'), "Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '18.18.2' } });\n");
  const before = touched();
  const r = await k.host.exec(['env', 'NODE_OPTIONS=--require /root/old-node.cjs', 'unshare', '--net', 'sh', `${KIT}/scripts/bootstrap.sh`, '--manifest', manifest], { timeoutMs: 120_000 });
  expectExit(r, 2, 'bootstrap.sh with an old node');
  assert.match(r.stderr, 'bootstrap: node 18.18.2 is too old: cutover needs 18.19 or later');
  assert.not.match(r.stdout, '==> provision');
  assert.equal(snapshotDiff(before, touched()), [], 'nothing changed');
});

it('no Node on the host: bootstrap installs it from the host\'s own Debian packages, then provisions', async () => {
  // The state of a bare host: the nodejs package gone (npm, which depends on it, is left as it is).
  await inside(k, 'dpkg --remove --force-depends nodejs >/dev/null 2>&1; ! command -v node', 'remove nodejs');
  const t0 = Date.now();
  const r = await k.host.exec(['sh', `${KIT}/scripts/bootstrap.sh`, '--manifest', manifest], { timeoutMs: 600_000 });
  expectExit(r, 0, 'bootstrap.sh on a host without node');
  console.log(`  bootstrap.sh on a host without node (apt-get update and install from Debian's mirror) took ${Date.now() - t0} ms`);
  assert.match(r.stdout, /==> installing nodejs from the host's packages/);
  assert.match(r.stdout, '==> provision');
  assert.match(r.stdout, `wrote /etc/systemd/system/${APP}@.service`);
  const version = await inside(k, 'node --version');
  assert.match(version, /^v(18\.(19|[2-9]\d)|(19|[2-9]\d)\.)/, `Debian's node is 18.19 or later: ${version}`);
  assert.match(await inside(k, "dpkg-query -W -f='${Status}' nodejs"), 'install ok installed');
  assert.is((await k.host.exec(['systemctl', 'is-enabled', `${APP}@a.service`])).stdout.trim(), 'enabled', 'the boot slot is enabled');
  // The kit runs on the node it installed.
  const status = await k.kit('status', ['--json'], { manifest });
  expectExit(status, 0, `status on the installed node:\n${out(status)}`);
  assert.is(JSON.parse(status.stdout).app, APP);
});

test.run();
