// `npm run bench:verbs`: boots the test host, provisions and releases a small app twice, times starting a verb and the kit's own share of an activation (see verbs.ts).
import { bootKitHost, expectExit, isRoot, tsxKitArgv } from '../helpers/hostkit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { historyInside } from '../helpers/system.ts';
import { activateAnatomyLines, activateCostTable, activateCosts, verbCostTable, verbCosts } from './verbs.ts';

if (!isRoot()) {
  console.error('npm run bench:verbs needs root: it boots a systemd-nspawn test host. Run: sudo npm run bench:verbs');
  process.exitCode = 2;
} else {
  const k = await bootKitHost();
  try {
    const made = await k.repo('benchverbs');
    // Ports 4900-4999: this bench's own range.
    const manifest = k.manifest({ app: 'benchverbs', repo: made.url, runtime: 'node', build: 'node build.js', start: 'node server.js', port: 4910, socket: true, health: { path: '/health', timeout: 15 } });
    expectExit(await k.kit('provision', [], { manifest }), 0, 'provision');
    expectExit(await k.kit('release', ['main'], { manifest }), 0, 'release v1');
    await made.repo.commit({ VERSION: '2\n' }, 'v2');
    expectExit(await k.kit('release', ['main'], { manifest }), 0, 'release v2');
    const releases = [...new Set(historyInside(k, '/usr/local/src/benchverbs').filter((e) => e.event === 'build-finished').map((e) => e.release))];
    if (releases.length !== 2) throw new Error(`expected two built releases, found ${releases.join(', ')}`);
    const rounds = Number(process.env.ROUNDS ?? 7);
    console.log(`Timing each command ${rounds} times, interleaved …\n`);
    console.log(verbCostTable(await verbCosts(k, manifest, rounds)));
    console.log(`\nActivating ${releases.join(' and ')} in turn …\n`);
    const exe = await activateCosts(k, '`cutover activate <release>`', releases, Math.ceil(rounds / 2), (id) => ['cutover', 'activate', id, '--manifest', manifest]);
    const tsx = await activateCosts(k, '`node_modules/.bin/tsx scripts/activate.ts <release>`', releases, 1, (id) => tsxKitArgv('activate', [id], manifest), false);
    console.log(activateCostTable([exe, tsx]));
    console.log(`\n${activateAnatomyLines([exe, tsx])}`);
  } finally {
    await k.stop();
    await cleanupTempDirs();
  }
}
