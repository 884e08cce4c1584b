// Where a restart's time goes on this machine, measured without load: Node's own boot, the app's start, the sandbox's setup, restart → first answer.
import { servingUnit } from '../helpers/system.ts';
import type { KitHost } from '../helpers/hostkit.ts';
import { httpGet } from '../helpers/apps.ts';
import { median } from './speed.ts';

const SPARE_PORT = 3620;
const REPEATS = 3;

export interface Anatomy {
  /** `node -e 0` inside the test host */
  nodeBootMs: number[];
  /** `node server.js` (STARTUP_DELAY_MS=300, as root, no systemd) until GET /health answers */
  appStartMs: number[];
  /** `systemd-run --wait /bin/true` as the app user, without and with the service unit's sandbox settings */
  bareUnitMs: number[];
  sandboxedUnitMs: number[];
  /** `systemctl restart` → first answer to GET /, no load: the plain unit (no socket) and cutover's (socket: true) */
  plainRestartMs: number[];
  cutoverRestartMs: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function bashMs(k: KitHost, script: string): Promise<number> {
  const r = await k.host.exec(['bash', '-c', `s=$(date +%s%N); { ${script}; } >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))`], { timeoutMs: 60_000 });
  const ms = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isFinite(ms)) throw new Error(`timing \`${script}\`: exit ${r.code} ${r.stderr}`);
  return ms;
}

async function restartToAnswer(k: KitHost, unit: string, port: number, units: string[]): Promise<number> {
  await k.host.exec(['systemctl', 'reset-failed', ...units]);
  const t = performance.now();
  await k.host.exec(['systemctl', 'restart', unit]);
  for (;;) {
    try {
      const res = await httpGet(`http://127.0.0.1:${port}/`, { timeoutMs: 10_000 });
      if (res.status === 200) return Math.round(performance.now() - t);
    } catch {
      // refused while the app binds its port (no socket)
    }
    if (performance.now() - t > 30_000) throw new Error(`${unit}: no answer within 30 s of a restart`);
    await sleep(5);
  }
}

/** `node server.js` spawned by a small Node poller that GETs /health every 5 ms: ms from the spawn to the first 200. */
const APP_START_PROBE = `
const { spawn } = require('node:child_process');
const http = require('node:http');
const t = process.hrtime.bigint();
const child = spawn('node', ['server.js'], { env: { ...process.env, PORT: '${SPARE_PORT}', STARTUP_DELAY_MS: '300' }, stdio: 'ignore' });
const give = setTimeout(() => { child.kill(); process.exit(1); }, 30000);
const poll = () => {
  const req = http.get({ host: '127.0.0.1', port: ${SPARE_PORT}, path: '/health', agent: false }, (res) => {
    res.resume();
    if (res.statusCode !== 200) return setTimeout(poll, 5);
    console.log(Math.round(Number(process.hrtime.bigint() - t) / 1e6));
    clearTimeout(give);
    child.kill('SIGTERM');
  });
  req.on('error', () => setTimeout(poll, 5));
};
poll();
`;

async function appStart(k: KitHost, appDir: string): Promise<number> {
  const r = await k.host.exec(['node', '-e', APP_START_PROBE], { cwd: appDir, timeoutMs: 60_000 });
  const ms = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isFinite(ms)) throw new Error(`timing the app's start: exit ${r.code} ${r.stderr}`);
  return ms;
}

/** The sandbox lines of a rendered service unit, as systemd-run -p arguments. */
async function sandboxProps(k: KitHost, unitFile: string): Promise<string[]> {
  const r = await k.host.exec(['cat', unitFile]);
  const body = r.stdout.slice(r.stdout.indexOf('[Service]'), r.stdout.indexOf('[Install]'));
  const keys = /^(Protect|Private|Restrict|NoNewPrivileges|CapabilityBoundingSet|AmbientCapabilities|LockPersonality|MemoryDenyWriteExecute|SystemCall|UMask|DevicePolicy|RemoveIPC|ReadWritePaths|BindPaths|BindReadOnlyPaths)/;
  return body.split('\n').filter((l) => keys.test(l)).flatMap((l) => ['-p', l]);
}

export async function measureAnatomy(
  k: KitHost,
  o: { user: string; appDir: string; plain: { unit: string; port: number }; cutover: { app: string; port: number } },
): Promise<Anatomy> {
  const a: Anatomy = { nodeBootMs: [], appStartMs: [], bareUnitMs: [], sandboxedUnitMs: [], plainRestartMs: [], cutoverRestartMs: [] };
  const props = await sandboxProps(k, `/etc/systemd/system/${o.cutover.app}@.service`);
  const quoted = props.map((p) => `'${p.replace(/'/g, `'\\''`)}'`).join(' ');
  for (let i = 0; i < REPEATS; i++) {
    a.nodeBootMs.push(await bashMs(k, 'node -e 0'));
    a.appStartMs.push(await appStart(k, o.appDir));
    a.bareUnitMs.push(await bashMs(k, `systemd-run --wait --quiet -p User=${o.user} /bin/true`));
    a.sandboxedUnitMs.push(await bashMs(k, `systemd-run --wait --quiet -p User=${o.user} ${quoted} /bin/true`));
  }
  for (let i = 0; i < REPEATS; i++) {
    a.plainRestartMs.push(await restartToAnswer(k, o.plain.unit, o.plain.port, [o.plain.unit]));
    const slot = await servingUnit(k, o.cutover.app);
    a.cutoverRestartMs.push(await restartToAnswer(k, slot, o.cutover.port, [slot, `${o.cutover.app}.socket`]));
    await sleep(200);
  }
  return a;
}

export function anatomySummary(a: Anatomy) {
  return {
    nodeBootMs: median(a.nodeBootMs),
    appStartMs: median(a.appStartMs),
    sandboxSetupMs: median(a.sandboxedUnitMs) - median(a.bareUnitMs),
    plainRestartMs: median(a.plainRestartMs),
    cutoverRestartMs: median(a.cutoverRestartMs),
  };
}
