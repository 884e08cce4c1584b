// `npm run bench`: every scenario of zero-downtime deploys, release speed, kit overhead, starting a verb (verbs.ts) and disk, in one run of the disposable test host.
import { bootKitHost, isRoot } from '../helpers/hostkit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { DeployBench } from './deploys.ts';
import { anatomySummary, measureAnatomy, type Anatomy } from './anatomy.ts';
import { PLAIN } from './plain.ts';
import { releaseSpeed, type SpeedResult } from './speed.ts';
import { verbsBench, type VerbsResult } from './verbs.ts';
import { APP_START_MS, LATENCY_GOAL_MS, LEAD_MS, TAIL_MS, WORKERS, goals, loadAverage, machineInfo, markdown, writeResults, type Results } from './report.ts';

const say = (line: string) => console.log(line);

async function main(): Promise<void> {
  if (!isRoot()) {
    console.error('npm run bench needs root: it boots a systemd-nspawn test host. Run: sudo npm run bench');
    process.exitCode = 2;
    return;
  }
  const t0 = performance.now();
  say('Booting the test host (Debian bookworm, systemd as PID 1, Node 18) …');
  const k = await bootKitHost();
  try {
    const machine = await machineInfo(k);
    say(`${machine.nproc} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.nodeInHost} in the host\n`);
    const deploys = new DeployBench(k, say);
    let anatomy: Anatomy | undefined;
    try {
      await deploys.setUp();
      try {
        anatomy = await measureAnatomy(k, {
          user: 'benchfd',
          appDir: `${PLAIN.dir}/current`,
          plain: { unit: `${PLAIN.app}.service`, port: 3601 },
          cutover: { app: 'benchfd', port: 3603 },
        });
        say(`where a restart's time goes (no load, medians): ${JSON.stringify(anatomySummary(anatomy))}\n`);
      } catch (e) {
        say(`restart anatomy stopped: ${(e as Error).message}`);
      }
      await deploys.runAll();
    } catch (e) {
      say(`deploy scenarios stopped: ${(e as Error).stack ?? e}`);
    }
    let speed: SpeedResult | undefined;
    try {
      speed = await releaseSpeed(k, say);
    } catch (e) {
      say(`release speed stopped: ${(e as Error).stack ?? e}`);
    }
    // Starting a verb and activating through the `cutover` executable, on the app release speed left with two ready releases.
    let verbs: VerbsResult | undefined;
    const pair = [speed?.warm.at(-1)?.release, speed?.lockfile?.release];
    if (speed?.manifest && pair[0] && pair[1]) {
      try {
        verbs = await verbsBench(k, speed.manifest, pair as [string, string], say);
      } catch (e) {
        say(`starting a verb stopped: ${(e as Error).stack ?? e}`);
      }
    }
    machine.loadAverage.end = await loadAverage(k);
    const res: Results = {
      machine,
      load: { workers: WORKERS, newConnectionPerRequest: true, leadMs: LEAD_MS, tailMs: TAIL_MS, path: '/' },
      appStartMs: APP_START_MS,
      latencyGoalMs: LATENCY_GOAL_MS,
      anatomy: anatomy && { ...anatomySummary(anatomy), runs: anatomy },
      scenarios: deploys.results,
      speed,
      verbs,
      goals: goals(deploys.results, speed, verbs),
      totalSeconds: (performance.now() - t0) / 1000,
    };
    const files = writeResults(res);
    console.log('\n' + markdown(res));
    say(`Written: ${files.json}, ${files.md}`);
  } finally {
    await k.stop();
    await cleanupTempDirs();
  }
}

await main();
