// `npm run bench:archive`: where `release --archive` of examples/nextjs-app spends its CPU, step by step, on archives built once and cached (fast to rerun; bench:nextjs is the full comparison).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { bootKitHost, isRoot, KIT, kitArgv, type KitHost } from '../helpers/hostkit.ts';
import { kitDir } from '../helpers/kit.ts';

const CACHE = process.env.CUTOVER_BENCH_ARCHIVES ?? '/var/tmp/cutover-bench-archives';
const APP = 'nextarch';
const say = (line: string) => console.log(line);

function manifestFor(url: string): Record<string, unknown> {
  const m = parse(fs.readFileSync(path.join(kitDir, 'config', 'examples', 'nextjs.yaml'), 'utf8'));
  return Object.assign(m, { app: APP, repo: url, port: 4195 });
}

async function trustCa(k: KitHost): Promise<void> {
  const bundle = [process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt'].find((f) => f && fs.existsSync(f));
  if (!bundle) return;
  await k.host.sh('mkdir -p /usr/local/share/ca-extra && cat > /usr/local/share/ca-extra/bundle.pem && echo cafile=/usr/local/share/ca-extra/bundle.pem >> /etc/npmrc', {
    input: fs.readFileSync(bundle, 'utf8'),
  });
}

/** Builds two commits of the example into CACHE/a1.tar.gz and a2.tar.gz (once: later runs reuse them). */
async function ensureArchives(): Promise<string> {
  const src = path.join(CACHE, 'src');
  if (fs.existsSync(path.join(CACHE, 'a3.tar.gz.sha256'))) return src;
  fs.rmSync(CACHE, { recursive: true, force: true });
  fs.mkdirSync(src, { recursive: true });
  const b = await bootKitHost({ srcDir: src });
  try {
    await trustCa(b);
    const { repo, url } = await b.repo(APP, 'nextjs');
    const manifest = b.manifest(manifestFor(url));
    const prov = await b.kit('provision', [], { manifest });
    if (prov.code !== 0) throw new Error(`provision: ${prov.stdout}${prov.stderr}`);
    for (const n of [1, 2, 3]) {
      const sha = await repo.commit({ 'lib/version.js': `export const version = 'a${n}';\n` }, `a${n}`);
      const file = `/var/tmp/a${n}.tar.gz`;
      const built = await b.kit('build', [sha, '--out', file], { manifest, timeoutMs: 900_000 });
      if (built.code !== 0) throw new Error(`build: ${built.stdout}${built.stderr}`);
      for (const f of [file, `${file}.sha256`]) fs.copyFileSync(path.join(b.host.root, f), path.join(CACHE, path.basename(f)));
    }
  } finally {
    await b.stop();
  }
  return src;
}

async function timed(k: KitHost, args: string[], manifest: string, trace = false): Promise<{ out: string; cpu: number; wall: number }> {
  const t0 = performance.now();
  // Traced: every child process the verb runs, with its times (test/bench/trace-children.cjs).
  const env = trace ? { NODE_OPTIONS: `--require ${KIT}/test/bench/trace-children.cjs`, CUTOVER_BENCH_TRACE: '/var/tmp/trace.json' } : undefined;
  const r = await k.host.exec(['bash', '-c', 'TIMEFORMAT="cutover-cpu %U %S"; time "$@"', 'bash', ...kitArgv('release', args, manifest)], { cwd: KIT, timeoutMs: 900_000, env });
  const wall = (performance.now() - t0) / 1000;
  const m = /^cutover-cpu ([0-9.]+) ([0-9.]+)$/m.exec(r.stderr);
  if (r.code !== 0 || !m) throw new Error(`release ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return { out: r.stdout, cpu: Number(m[1]) + Number(m[2]), wall };
}

function steps(stdout: string): string {
  const out: string[] = [];
  let title = '';
  for (const line of stdout.split('\n')) {
    const head = /^==> (.*)$/.exec(line);
    if (head) title = head[1].split(':')[0].slice(0, 40);
    const done = /^ {4}done in ([0-9.]+) (ms|s)$/.exec(line);
    if (done && title) out.push(`${title} ${(Number(done[1]) / (done[2] === 'ms' ? 1000 : 1)).toFixed(2)}`);
  }
  return out.join(' | ');
}

/** CUTOVER_BENCH_COMPRESSION=zstd: the same archives as .tar.zst (the same tar, recompressed with zstd -3), else the .tar.gz `cutover build` wrote. */
const EXT = process.env.CUTOVER_BENCH_COMPRESSION === 'zstd' ? 'tar.zst' : 'tar.gz';

function ensureZstd(): void {
  for (const n of [1, 2, 3]) {
    const zst = path.join(CACHE, `a${n}.tar.zst`);
    if (fs.existsSync(`${zst}.sha256`)) continue;
    const r = spawnSync('sh', ['-c', 'gzip -dc "$1" | zstd -q -3 -f -o "$2" && sha256sum "$2"', 'sh', path.join(CACHE, `a${n}.tar.gz`), zst], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`recompressing a${n}: ${r.stderr}`);
    fs.writeFileSync(`${zst}.sha256`, `${r.stdout.split(' ')[0]}  a${n}.tar.zst\n`);
  }
}

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('needs root (a test host)');
  const src = await ensureArchives();
  if (EXT === 'tar.zst') ensureZstd();
  const k = await bootKitHost({ srcDir: src });
  try {
    const manifest = k.manifest(manifestFor(`/srv/src/${APP}`));
    const prov = await k.kit('provision', [], { manifest });
    if (prov.code !== 0) throw new Error(`provision: ${prov.stdout}${prov.stderr}`);
    for (const n of [1, 2, 3]) {
      const file = `/var/tmp/a${n}.${EXT}`;
      for (const f of [file, `${file}.sha256`]) fs.copyFileSync(path.join(CACHE, path.basename(f)), path.join(k.host.root, f));
      // The third run traced: the verb's own CPU by step, and every child process it ran.
      const r = await timed(k, ['--archive', file], manifest, n === 3);
      if (n === 3) {
        const t = JSON.parse(fs.readFileSync(path.join(k.host.root, '/var/tmp/trace.json'), 'utf8')) as {
          children: { argv: string; startMs: number; endMs: number }[];
          steps: { title: string; startCpuMs: number; endCpuMs: number }[];
          exitCpuMs: number;
        };
        say(`  the verb's own process: ${(t.exitCpuMs / 1000).toFixed(2)} CPU s in all; by step (ms): ${t.steps.map((x) => `${x.title.split(':')[0].slice(0, 30)} ${(x.endCpuMs - x.startCpuMs).toFixed(0)}`).join(' | ')}`);
        const inSteps = t.steps.reduce((a, x) => a + x.endCpuMs - x.startCpuMs, 0);
        say(`  outside steps (start-up, lock, history, plan, records): ${((t.exitCpuMs - inSteps) / 1000).toFixed(2)} CPU s`);
        say(`  ${t.children.length} child processes:`);
        for (const c of t.children) say(`    ${(c.endMs - c.startMs).toFixed(0).padStart(5)} ms  ${c.argv}`);
      }
      say(`a${n}: ${r.wall.toFixed(1)} s wall, ${r.cpu.toFixed(2)} CPU s — ${steps(r.out)}`);
      fs.writeFileSync(path.join(CACHE, `a${n}.${EXT}.out`), r.out);
      if (process.env.VERBOSE) say(r.out);
    }
    // What the kit's children and start-up cost here, one at a time (bash's time: user + system).
    const cost = async (label: string, cmd: string) => {
      const r = await k.host.exec(['bash', '-c', `TIMEFORMAT="cost %U %S"; time { (${cmd}) >/dev/null 2>&1; }`]);
      const [u, s2] = (/cost ([0-9.]+) ([0-9.]+)/.exec(r.stdout + r.stderr) ?? ['', 'NaN', 'NaN']).slice(1).map(Number);
      say(`  ${label}: ${(u + s2).toFixed(3)} CPU s`);
    };
    const rel = (await k.host.exec(['readlink', '-f', `/usr/local/src/${APP}/active`])).stdout.trim();
    await cost('10 x systemctl show (two units)', `for i in 1 2 3 4 5 6 7 8 9 10; do systemctl show --property=Id,ActiveState ${APP}@a.service ${APP}@b.service; done`);
    await cost('10 x systemctl is-active', `for i in 1 2 3 4 5 6 7 8 9 10; do systemctl is-active ${APP}@a.service; done`);
    await cost('10 x ss -tn', 'for i in 1 2 3 4 5 6 7 8 9 10; do ss -tn; done');
    await cost('chown -R root:root + chmod -R go-w of the live release', `chown -R --no-dereference root:root ${rel} && chmod -R go-w ${rel}`);
    await cost('node -e 0', 'node -e 0');
    await cost('cutover status', `${kitArgv('status', [], manifest).join(' ')}`);
    await cost('sha256 of the archive (node crypto)', `node -e "const c=require('crypto'),fs=require('fs');c.createHash('sha256').update(fs.readFileSync('/var/tmp/a3.tar.gz')).digest('hex')"`);
    await cost('sha256sum of the archive', 'sha256sum /var/tmp/a3.tar.gz');
    await cost('gzip -dc of the archive', 'gzip -dc /var/tmp/a3.tar.gz');
    await cost("node's gunzip of the archive (1 MiB chunks)", `node -e "const fs=require('fs'),z=require('zlib');fs.createReadStream('/var/tmp/a3.tar.gz').pipe(z.createGunzip({chunkSize:1<<20})).resume()"`);
    // What zstd would cost instead of gzip (not the archive's format: Node 18 and 20 have no zstd), where the host has it.
    if ((await k.host.exec(['sh', '-c', 'gzip -dc /var/tmp/a3.tar.gz | zstd -q -3 -f -o /var/tmp/a3.tar.zst'])).code === 0) {
      await cost('zstd -dc of the same tar, compressed with zstd -3', 'zstd -dc /var/tmp/a3.tar.zst');
    }
  } finally {
    await k.stop();
  }
}

await main();
