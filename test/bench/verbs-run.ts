// `npm run bench:verbs`: boots the test host, provisions and releases a small app, and times starting a verb (see verbs.ts).
import { bootKitHost, expectExit, isRoot } from '../helpers/hostkit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { verbCostTable, verbCosts } from './verbs.ts';

if (!isRoot()) {
  console.error('npm run bench:verbs needs root: it boots a systemd-nspawn test host. Run: sudo npm run bench:verbs');
  process.exitCode = 2;
} else {
  const k = await bootKitHost();
  try {
    const made = await k.repo('benchverbs');
    // Ports 4200-4299: the step and executable work's own range.
    const manifest = k.manifest({ app: 'benchverbs', repo: made.url, runtime: 'node', build: 'node build.js', start: 'node server.js', port: 4210, socket: true, health: { path: '/health', timeout: 15 } });
    expectExit(await k.kit('provision', [], { manifest }), 0, 'provision');
    expectExit(await k.kit('release', ['main'], { manifest }), 0, 'release');
    const rounds = Number(process.env.ROUNDS ?? 7);
    console.log(`Timing each command ${rounds} times, interleaved …\n`);
    console.log(verbCostTable(await verbCosts(k, manifest, rounds)));
  } finally {
    await k.stop();
    await cleanupTempDirs();
  }
}
