// `npm run bench:nextjs`: cold vs warm releases of examples/nextjs-app (config/examples/nextjs.yaml) in the test host, with and without the build cache carried, and a release from an archive built elsewhere.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { bootKitHost, isRoot, KIT, kitArgv, type KitHost } from '../helpers/hostkit.ts';
import type { ExecResult } from '../host/host.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { kitDir } from '../helpers/kit.ts';

const say = (line: string) => console.log(line);
const PORT = 4190;

interface Run {
  label: string;
  wallMs: number;
  /** CPU seconds of the verb's own process tree (bash's time: the kit, npm, next build; not the app's units). */
  cpuSeconds: number;
  /** Seconds of each step, as the kit printed them ("==> title" … "done in N s"). */
  steps: Record<string, number>;
}

/** The kit's step headers and durations from a release's output. */
function stepTimes(stdout: string): Record<string, number> {
  const steps: Record<string, number> = {};
  let title = '';
  for (const line of stdout.split('\n')) {
    const head = /^==> (.*)$/.exec(line);
    if (head) title = head[1].split(':')[0];
    const done = /^ {4}done in ([0-9.]+) (ms|s)$/.exec(line);
    if (done && title) steps[title] = Number(done[1]) / (done[2] === 'ms' ? 1000 : 1);
  }
  return steps;
}

/**
 * Runs `cutover <verb> args` in the host under bash's `time`, and measures its wall time and CPU seconds:
 * user + system of the verb and every process it started and waited for (install, npm, next build,
 * tar), as getrusage counts children. The app's own units (the slots, the preflight) are systemd's
 * children, not counted: they cost the same either way. (The host's cgroup cpu.stat, used before,
 * read 2.4 s for a cold `next build` on this machine's hybrid cgroup layout: not a measurement.)
 */
async function timedKit(k: KitHost, verb: string, args: string[], manifest: string): Promise<{ value: ExecResult; wallMs: number; cpuSeconds: number }> {
  const t0 = performance.now();
  const r = await k.host.exec(['bash', '-c', 'TIMEFORMAT="cutover-cpu %U %S"; time "$@"', 'bash', ...kitArgv(verb, args, manifest)], { cwd: KIT, timeoutMs: 900_000 });
  const wallMs = performance.now() - t0;
  const m = /^cutover-cpu ([0-9.]+) ([0-9.]+)$/m.exec(r.stderr);
  if (!m) throw new Error(`no CPU time for ${verb}: ${r.stderr.slice(-500)}`);
  return { value: { ...r, stderr: r.stderr.replace(m[0], '') }, wallMs, cpuSeconds: Number(m[1]) + Number(m[2]) };
}

async function trustCa(k: KitHost): Promise<void> {
  const bundle = [process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt'].find((f) => f && fs.existsSync(f));
  if (!bundle) return;
  await k.host.sh('mkdir -p /usr/local/share/ca-extra && cat > /usr/local/share/ca-extra/bundle.pem && echo cafile=/usr/local/share/ca-extra/bundle.pem >> /etc/npmrc', {
    input: fs.readFileSync(bundle, 'utf8'),
  });
}

/** One app of the example: its own name, root and port, with or without `cache:`. */
async function deployer(k: KitHost, app: string, withCache: boolean) {
  const { repo, url } = await k.repo(app, 'nextjs');
  const m = parse(fs.readFileSync(path.join(kitDir, 'config', 'examples', 'nextjs.yaml'), 'utf8'));
  Object.assign(m, { app, repo: url, port: withCache ? PORT : PORT + 1 });
  if (!withCache) delete m.cache;
  const manifest = k.manifest(m);
  const r = await k.kit('provision', [], { manifest });
  if (r.code !== 0) throw new Error(`provision ${app}: ${r.stdout}${r.stderr}`);
  let n = 0;
  const release = async (label: string): Promise<Run> => {
    const sha = await repo.commit({ 'lib/version.js': `export const version = 'v${++n}';\n` }, `v${n}`);
    const { value: rel, wallMs, cpuSeconds } = await timedKit(k, 'release', [sha], manifest);
    if (rel.code !== 0) throw new Error(`release ${label}: ${rel.stdout}${rel.stderr}`);
    const run = { label, wallMs, cpuSeconds, steps: stepTimes(rel.stdout) };
    say(`${label}: ${(wallMs / 1000).toFixed(1)} s, ${cpuSeconds.toFixed(1)} CPU s — ${Object.entries(run.steps).map(([s, t]) => `${s} ${t.toFixed(1)} s`).join(', ')}`);
    return run;
  };
  /**
   * The next commit built by `cutover build` on `builder` (another test host over the same repos: a CI runner or
   * build box), its archive carried over, then `release --archive` on this host: measured here, the build is not.
   */
  const fromArchive = async (label: string, builder: KitHost, ext: 'tar.gz' | 'tar.zst' = 'tar.gz'): Promise<Run> => {
    const sha = await repo.commit({ 'lib/version.js': `export const version = 'v${++n}';\n` }, `v${n}`);
    const file = `/var/tmp/${app}-${sha.slice(0, 12)}.${ext}`;
    builder.manifest(m);
    // A build box is set up like a host (the app's user, its directories), then builds: provision is idempotent.
    const prov = await builder.kit('provision', [], { manifest });
    if (prov.code !== 0) throw new Error(`provision the builder: ${prov.stdout}${prov.stderr}`);
    const built = await builder.kit('build', [sha, '--out', file], { manifest, timeoutMs: 900_000 });
    if (built.code !== 0) throw new Error(`build ${label}: ${built.stdout}${built.stderr}`);
    for (const f of [file, `${file}.sha256`]) fs.copyFileSync(path.join(builder.host.root, f), path.join(k.host.root, f));
    const { value: rel, wallMs, cpuSeconds } = await timedKit(k, 'release', ['--archive', file], manifest);
    if (rel.code !== 0) throw new Error(`release --archive ${label}: ${rel.stdout}${rel.stderr}`);
    const run = { label, wallMs, cpuSeconds, steps: stepTimes(rel.stdout) };
    say(`${label}: ${(wallMs / 1000).toFixed(1)} s, ${cpuSeconds.toFixed(1)} CPU s (archive ${(fs.statSync(path.join(k.host.root, file)).size / 1e6).toFixed(1)} MB) — ${Object.entries(run.steps).map(([s, t]) => `${s} ${t.toFixed(1)} s`).join(', ')}`);
    return run;
  };
  return Object.assign(release, { fromArchive });
}

async function main(): Promise<void> {
  if (!isRoot()) {
    console.error('The Next.js bench needs root: it boots a systemd-nspawn test host. Run: sudo npm run bench:nextjs');
    process.exitCode = 2;
    return;
  }
  const k = await bootKitHost();
  try {
    await trustCa(k);
    const withCache = await deployer(k, 'nextbench', true);
    const noCache = await deployer(k, 'nextbench-nc', false);
    // Cold: an empty npm cache (the app's own, new), no dependencies to reuse, no build cache.
    const cold = await withCache('cold (empty npm cache, nothing to reuse)');
    const warm = [await withCache('warm 1 (code-only commit: deps reused, .next/cache carried)'), await withCache('warm 2')];
    await noCache('cold, app without cache:');
    const warmNc = [await noCache('warm 1 without cache: (deps reused, next build from scratch)'), await noCache('warm 2 without cache:')];
    // Built elsewhere: a second host over the same repositories is the build box; this host only releases the archive.
    const builder = await bootKitHost({ srcDir: k.srcDir });
    let archived: Run[];
    let zstd: Run[];
    try {
      await trustCa(builder);
      archived = [await withCache.fromArchive('release --archive 1 (built on another host)', builder),
        await withCache.fromArchive('release --archive 2', builder)];
      // The same with the archive named .tar.zst: compressed by the zstd program, inflated by it on the host.
      zstd = [await withCache.fromArchive('release --archive 3 (.tar.zst)', builder, 'tar.zst'),
        await withCache.fromArchive('release --archive 4 (.tar.zst)', builder, 'tar.zst')];
    } finally {
      await builder.stop();
    }
    const median = (runs: Run[]) => runs.map((r) => r.wallMs).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    const ratio = median(warm) / cold.wallMs;
    const buildOf = (runs: Run[]) => runs.map((r) => r.steps.build ?? 0).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    say('');
    say(`| release of examples/nextjs-app | wall | next build |`);
    say(`| --- | --- | --- |`);
    say(`| cold (empty npm cache, nothing to reuse) | ${(cold.wallMs / 1000).toFixed(1)} s | ${(cold.steps.build ?? 0).toFixed(1)} s |`);
    say(`| warm, code-only commit, \`cache: [.next/cache]\` (median of ${warm.length}) | ${(median(warm) / 1000).toFixed(1)} s | ${buildOf(warm).toFixed(1)} s |`);
    say(`| warm, code-only commit, no \`cache:\` (median of ${warmNc.length}) | ${(median(warmNc) / 1000).toFixed(1)} s | ${buildOf(warmNc).toFixed(1)} s |`);
    say(`| warm / cold | **${ratio.toFixed(2)}** (goal ≤ 0.5) | |`);
    const cpuOf = (runs: Run[]) => runs.map((r) => r.cpuSeconds).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
    const hostBuild = [...warm, ...warmNc].sort((a, b) => a.cpuSeconds - b.cpuSeconds)[0]!;
    say('');
    say(`| on the host (CPU: the verb and what it ran, bash's time) | wall | CPU s |`);
    say(`| --- | --- | --- |`);
    say(`| \`release <ref>\`, built on the host, warm (${hostBuild.label}; the cheapest host build of this run) | ${(hostBuild.wallMs / 1000).toFixed(1)} s | ${hostBuild.cpuSeconds.toFixed(1)} |`);
    say(`| \`release --archive\`, built elsewhere, .tar.gz (median of ${archived.length}) | ${(median(archived) / 1000).toFixed(1)} s | ${cpuOf(archived).toFixed(1)} |`);
    say(`| archive / host build, CPU, .tar.gz | **${(cpuOf(archived) / hostBuild.cpuSeconds).toFixed(2)}** (goal ≤ 0.1) | |`);
    say(`| \`release --archive\`, built elsewhere, .tar.zst (median of ${zstd.length}) | ${(median(zstd) / 1000).toFixed(1)} s | ${cpuOf(zstd).toFixed(1)} |`);
    say(`| archive / host build, CPU, .tar.zst | **${(cpuOf(zstd) / hostBuild.cpuSeconds).toFixed(2)}** (goal ≤ 0.1) | |`);
  } finally {
    await k.stop();
    await cleanupTempDirs();
  }
}

await main();
