// Tests scripts/lib/host/units.ts: rendered units and cron entries, checked by the real systemd-analyze and systemd 252 parser.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CutoverError, ExitCode } from '../../scripts/lib/run/errors.ts';
import { cronSchedule, environmentWord, quoteWord, escapeSpecifiers } from '../../scripts/lib/manifest/escape.ts';
import { expandExecVariables } from '../helpers/systemd-parse.ts';
import type { Manifest } from '../../scripts/lib/manifest/manifest.ts';
import { kitPaths } from '../../scripts/lib/run/kit.ts';
import {
  SOCKET_BACKLOG,
  preflightCommand,
  preflightProperties,
  renderCron,
  renderService,
  renderSocket,
  renderUnits,
  serviceArgv,
} from '../../scripts/lib/host/units.ts';
import { preloadFile, sandboxDirectives, serviceEnvironment } from '../../scripts/lib/host/sandbox.ts';
import { commandMissing, fileMissing, requiring } from '../helpers/prereq.ts';
import { renderTemplate } from '../../scripts/lib/host/template.ts';
import { appPaths } from '../../scripts/lib/manifest/paths.ts';

const KIT = '/opt/cutover';

function manifest(over: Partial<Manifest> = {}): Manifest {
  return {
    file: '/etc/cutover/shop.yaml',
    app: 'shop',
    repo: 'https://git.example.org/acme/shop.git',
    root: '/usr/local/src/shop',
    user: 'shop',
    runtime: 'node',
    env: { NODE_ENV: 'production' },
    env_file: '.env',
    shared: ['.env', 'uploads/'],
    assets: [],
    assets_keep: 2,
    cache: [],
    writable: [],
    install: 'npm ci',
    build: 'npm run build',
    start: 'node build/index.js',
    port: 3000,
    socket: false,
    health: { path: '/health', timeout: 30 },
    timeouts: { install: 1800, build: 1800, migrate: 1800 },
    preflight: true,
    stop_timeout: 25,
    keep: 5,
    prune: { schedule: '17 3 * * *' },
    hooks: {},
    ...over,
  };
}

const python = (over: Partial<Manifest> = {}) =>
  manifest({
    app: 'guestbook',
    root: '/srv/guestbook',
    user: 'guestbook',
    runtime: 'python',
    env: { PYTHONUNBUFFERED: '1', GUNICORN_CMD_ARGS: '--workers 3 --timeout 30' },
    env_file: 'secrets.env',
    shared: ['secrets.env', 'instance/'],
    start: '.venv/bin/gunicorn guestbook.wsgi:app',
    port: 8000,
    socket: true,
    ...over,
  });

/** Values of a directive in a rendered unit, in order. */
function values(unit: string, key: string): string[] {
  return [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
}

function refuses(fn: () => unknown, field: string, what?: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CutoverError, String(e));
    assert.is((e as CutoverError).exitCode, ExitCode.usage);
    assert.ok((e as Error).message.includes(field), `"${(e as Error).message}" names ${field}`);
    if (what) assert.match((e as Error).message, what);
    return;
  }
  assert.unreachable(`expected ${field} to be refused`);
}

// ---- the renderer ----

test('renderTemplate: placeholders, repeated lines, sections, and no silent drift', () => {
  const t = 'A={{a}}\nB={{list}}\n{{#on}}\nON\n{{/on}}\n{{#off}}\nOFF\n{{/off}}\n';
  assert.is(renderTemplate(t, { a: 'x', list: ['1', '2'], on: true, off: false }), 'A=x\nB=1\nB=2\nON\n');
  assert.is(renderTemplate(t, { a: 'x', list: [], on: 'yes', off: [] }), 'A=x\nON\n');
  assert.throws(() => renderTemplate(t, { a: 'x', list: [], on: true }), /off/, 'a missing value');
  assert.throws(() => renderTemplate('A={{a}}\n', { a: 'x', b: 'y' }), /never used: b/, 'an unused value');
  assert.throws(() => renderTemplate('A={{a}}\n', { a: 'x\nEvil=1' }), /spans lines/, 'a value with a newline');
  assert.throws(() => renderTemplate('{{#a}}\nx\n', { a: true }), /not closed/);
});

// ---- the service ----

test('node app: user, working directory, environment, start command, stop timeout', () => {
  const unit = renderService(manifest(), { kitDir: KIT });
  assert.equal(values(unit, 'Description'), ['cutover: shop web app (slot %i)']);
  assert.equal(values(unit, 'User'), ['shop']);
  assert.equal(values(unit, 'Group'), ['shop']);
  assert.equal(values(unit, 'WorkingDirectory'), ['/usr/local/src/shop/active']);
  assert.equal(values(unit, 'Environment'), ['"NODE_ENV=production"', '"PORT=3000"']);
  assert.equal(values(unit, 'EnvironmentFile'), ['-/usr/local/src/shop/shared/.env']);
  assert.equal(values(unit, 'ExecStart'), ['/usr/bin/env "PORT=3000" /bin/sh -c "exec node build/index.js"']);
  assert.equal(values(unit, 'Restart'), ['on-failure']);
  assert.equal(values(unit, 'RestartSec'), ['2s']);
  assert.equal(values(unit, 'KillSignal'), ['SIGTERM']);
  assert.equal(values(unit, 'TimeoutStopSec'), ['25s']);
  assert.equal(values(unit, 'MemoryDenyWriteExecute'), ['no']);
  assert.match(unit, /V8's JIT/);
  assert.equal(values(unit, 'ProtectSystem'), ['strict']);
  assert.equal(values(unit, 'ReadWritePaths'), ['-/usr/local/src/shop/shared/.env', '-/usr/local/src/shop/shared/uploads']);
  assert.equal(values(unit, 'ProtectHome'), ['yes']);
  assert.equal(values(unit, 'CapabilityBoundingSet'), ['']);
  assert.equal(values(unit, 'SystemCallFilter'), ['@system-service', '~@privileged @resources']);
  assert.equal(values(unit, 'Requires'), []);
  assert.is(renderSocket(manifest()), null);
  assert.not.match(unit, /NODE_OPTIONS/);
});

test('NODE_ENV only when the manifest sets it; no env file, no EnvironmentFile=', () => {
  const unit = renderService(manifest({ env: {}, env_file: undefined }), { kitDir: KIT });
  assert.equal(values(unit, 'Environment'), ['"PORT=3000"']);
  assert.equal(values(unit, 'EnvironmentFile'), []);
});

test('python app with a socket: MemoryDenyWriteExecute on, socket unit, Requires/After', () => {
  const m = python();
  const unit = renderService(m, { kitDir: KIT });
  assert.equal(values(unit, 'MemoryDenyWriteExecute'), ['yes']);
  assert.equal(values(unit, 'SystemCallFilter'), ['@system-service', '~@privileged @resources', 'setuid setgid'], "gunicorn's setuid(own uid)");
  assert.equal(values(unit, 'Requires'), ['guestbook.socket']);
  assert.equal(values(unit, 'After'), ['network.target', 'guestbook.socket']);
  assert.not.match(unit, /NODE_OPTIONS/);
  const socket = renderSocket(m)!;
  assert.equal(values(socket, 'ListenStream'), ['127.0.0.1:8000']);
  assert.equal(values(socket, 'Accept'), ['no']);
  assert.equal(values(socket, 'NoDelay'), ['true']);
  assert.equal(values(socket, 'Backlog'), [String(SOCKET_BACKLOG)]);
  assert.equal(values(socket, 'WantedBy'), ['sockets.target']);
  assert.match(socket, /^Description=cutover: guestbook/m);
});

test('preload: NODE_OPTIONS requires the preload first, merged with the manifest\'s own; the warm-up gets the health path and timeout', () => {
  const unit = renderService(manifest({ socket: 'preload', env: { NODE_OPTIONS: '--max-old-space-size=512' } }), { kitDir: KIT });
  assert.equal(values(unit, 'Environment'), [
    `"NODE_OPTIONS=--require ${KIT}/scripts/preload/listen-fd.cjs --max-old-space-size=512"`,
    '"CUTOVER_WARMUP_PATH=/health"',
    '"CUTOVER_WARMUP_TIMEOUT_MS=30000"',
    '"PORT=3000"',
  ]);
  const byCommand = renderService(manifest({ socket: 'preload', health: { command: 'true', timeout: 30 } }), { kitDir: KIT });
  assert.not.match(byCommand, /CUTOVER_WARMUP/, 'with a health command there is no path to warm up on');
  assert.equal(values(unit, 'Requires'), ['shop.socket']);
  const plain = renderService(manifest({ socket: 'preload' }), { kitDir: KIT });
  assert.ok(values(plain, 'Environment').includes(`"NODE_OPTIONS=--require ${KIT}/scripts/preload/listen-fd.cjs"`));
  assert.is(preloadFile(), path.join(kitPaths.dir, 'scripts', 'preload', 'listen-fd.cjs'));
  assert.ok(existsSync(preloadFile()), 'the preload ships with the kit');
  refuses(() => renderService(python({ socket: 'preload' })), 'socket');
});

test('a root under /home: ProtectHome=tmpfs, the root mounted back read-only, the shared paths writable', () => {
  const unit = renderService(manifest({ root: '/home/deploy/apps/shop' }), { kitDir: KIT });
  assert.equal(values(unit, 'ProtectHome'), ['tmpfs']);
  assert.equal(values(unit, 'BindReadOnlyPaths'), ['/home/deploy/apps/shop']);
  assert.equal(values(unit, 'BindPaths'), ['-/home/deploy/apps/shop/shared/.env', '-/home/deploy/apps/shop/shared/uploads']);
  assert.equal(values(unit, 'ReadWritePaths'), []);
  const tmp = renderService(manifest({ root: '/tmp/x/shop' }), { kitDir: KIT });
  assert.equal(values(tmp, 'ProtectHome'), ['yes']);
  assert.equal(values(tmp, 'BindReadOnlyPaths'), ['/tmp/x/shop']);
  const kitInRoot = renderService(manifest({ socket: 'preload' }), { kitDir: '/root/cutover' });
  assert.equal(values(kitInRoot, 'ProtectHome'), ['tmpfs']);
  assert.equal(values(kitInRoot, 'BindReadOnlyPaths'), ['/root/cutover/scripts/preload/listen-fd.cjs']);
});

test('hostile values: escaped for systemd, or refused naming the field', () => {
  const m = manifest({
    env: { WEIRD: `50% $HOME \${HOME} "dq" 'sq' back\\slash  two  spaces`, EMPTY: '' },
    start: `node server.js --title "50% off" '$HOME' \\; ; echo done`,
  });
  const unit = renderService(m, { kitDir: KIT });
  assert.ok(values(unit, 'Environment').includes(environmentWord('WEIRD', m.env.WEIRD!, 'env.WEIRD')));
  assert.match(unit, /50%% off/);
  assert.match(unit, /'\$\$HOME'/);
  refuses(() => renderService(manifest({ env: { A: 'line\nExecStartPre=/bin/evil' } })), 'env.A', /line break/);
  refuses(() => renderService(manifest({ start: 'node x\nExecStartPre=/bin/evil' })), 'start', /line break/);
  refuses(() => renderService(manifest({ start: '  ' })), 'start');
  refuses(() => renderService(manifest({ env: { 'BAD-NAME': 'x' } })), 'env.BAD-NAME');
  refuses(() => renderService(manifest({ env: { PORT: '4000' } })), 'env.PORT');
  assert.equal(values(renderService(manifest({ env: { PORT: '3000' } }), { kitDir: KIT }), 'Environment'), ['"PORT=3000"']);
  refuses(() => renderService(manifest({ root: '/srv/my shop' })), 'root');
  refuses(() => renderService(manifest({ root: '/srv/50%' })), 'root');
  refuses(() => renderService(manifest({ root: 'srv/shop' })), 'root');
  refuses(() => renderService(manifest({ app: 'x\ny' })), 'app');
  refuses(() => renderService(manifest({ user: 'x\ny' })), 'user');
  refuses(() => renderService(manifest({ shared: ['../../etc/passwd'] })), 'shared[0]');
  refuses(() => renderService(manifest({ shared: ['/etc/passwd'] })), 'shared[0]');
  refuses(() => renderService(manifest({ shared: ['up loads/'] })), 'shared[0]');
  refuses(() => renderService(manifest({ env_file: '../x.env' })), 'env_file');
  refuses(() => renderCron(manifest({ prune: { schedule: '17 3 * * *\n* * * * * root evil' } })), 'prune.schedule', /line break/);
  // The rules of the fields themselves (root '/' or under /proc, user root, the app name's pattern, the
  // port's range, stop_timeout) are manifest.ts's and the schema's, one place each: the renderer trusts a
  // manifest that passed them (test/fixtures/manifests/bad/ has each).
});

// ---- cron ----

/** Checks a cron.d file the way Debian's cron reads it (crontab(5)); returns the entries' commands. */
function checkCronFile(file: string, content: string): string[] {
  assert.match(path.basename(file), /^[A-Za-z0-9_-]+$/, 'cron.d ignores names with other characters');
  assert.ok(content.endsWith('\n'), 'a cron file must end with a newline');
  const commands: string[] = [];
  for (const line of content.split('\n').slice(0, -1)) {
    if (/^\s*(#|$)/.test(line)) continue;
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(line)) continue; // SHELL=, PATH=
    const m = /^(@\w+|\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(\S+)\s+(.+)$/.exec(line);
    assert.ok(m, `an entry is "schedule user command": ${line}`);
    assert.ok(cronSchedule(m![1]!, 'schedule'));
    assert.is(m![2], 'root', 'the user field');
    assert.match(m![3]!, /^\//, 'the command starts with an absolute path');
    commands.push(m![3]!);
  }
  return commands;
}

/** What cron hands to /bin/sh: `\%` → `%`, an unescaped `%` ends the command. */
function cronToShell(command: string): string {
  let out = '';
  for (let i = 0; i < command.length; i++) {
    if (command[i] === '\\' && command[i + 1] === '%') {
      out += '%';
      i++;
    } else if (command[i] === '%') break;
    else out += command[i];
  }
  return out;
}

test('cron.d: SHELL and PATH, one root entry with absolute paths, output to the journal', () => {
  const m = manifest();
  const text = renderCron(m, { node: '/usr/bin/node', kitDir: KIT });
  assert.match(text, /^SHELL=\/bin\/sh$/m);
  assert.match(text, /^PATH=\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
  const [command, ...more] = checkCronFile('/etc/cron.d/cutover-shop', text);
  assert.is(more.length, 0);
  assert.is(
    command,
    `/usr/bin/node ${KIT}/bin/cutover prune --cron --manifest /etc/cutover/shop.yaml 2>&1 | /usr/bin/systemd-cat -t cutover-prune`,
  );
  const dflt = renderCron(m);
  assert.ok(dflt.includes(`${process.execPath} ${path.join(kitPaths.dir, 'bin', 'cutover')} prune `), 'node and the cutover executable default to this kit');
});

test('cron.d: a manifest path with %, spaces and quotes reaches prune intact through cron and /bin/sh', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-cron-'));
  try {
    const fakeNode = path.join(dir, 'node');
    writeFileSync(fakeNode, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done\n`, { mode: 0o755 });
    const manifestFile = `/etc/cutover/50% "off" it's.yaml`;
    const text = renderCron(manifest({ file: manifestFile, prune: { schedule: '0 4 * * *' } }), { node: fakeNode, cutover: '/opt/cutover/bin/cutover', kitDir: KIT });
    const [command] = checkCronFile('/etc/cron.d/cutover-shop', text);
    const shell = cronToShell(command!).replace(/ 2>&1 \| \/usr\/bin\/systemd-cat -t cutover-prune$/, '');
    const r = spawnSync('/bin/sh', ['-c', shell], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.equal(r.stdout.split('\n').slice(0, -1), ['/opt/cutover/bin/cutover', 'prune', '--cron', '--manifest', manifestFile]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- renderUnits ----

test('renderUnits: the files provision writes, with paths from appPaths and mode 0644', () => {
  const files = renderUnits(manifest({ socket: true }), { kitDir: KIT, node: '/usr/bin/node', unitDir: '/u', cronDir: '/c' });
  assert.equal(files.map((f) => [f.path, f.mode]), [
    ['/u/shop@.service', 0o644],
    ['/u/shop.socket', 0o644],
    ['/c/cutover-shop', 0o644],
  ]);
  assert.is(renderUnits(manifest(), { unitDir: '/u', cronDir: '/c' }).length, 2, 'no socket unit without a socket');
});

test("writable dirs: the service may write those of the release `active` names at its start, the preflight those of the release it tries", () => {
  const m = manifest({ writable: ['.next/cache/images', 'tmp/'] });
  const unit = renderService(m, { kitDir: KIT });
  assert.match(unit, /^ReadWritePaths=-\/usr\/local\/src\/shop\/active\/\.next\/cache\/images$/m);
  assert.match(unit, /^ReadWritePaths=-\/usr\/local\/src\/shop\/active\/tmp$/m);
  assert.not.match(renderService(manifest(), { kitDir: KIT }), /\/active\//, 'none without writable');
  const release = '/usr/local/src/shop/releases/0123456789ab';
  const props = preflightProperties(m, 41234, release, { kitDir: KIT });
  assert.ok(props.includes(`--property=ReadWritePaths=-${release}/.next/cache/images`), props.join('\n'));
  assert.not.ok(props.some((p) => p.includes('/active/')), "never the live release's dirs");
  const hidden = renderService(manifest({ root: '/home/shop/app', writable: ['.next/cache/images'] }), { kitDir: KIT });
  assert.match(hidden, /^BindPaths=-\/home\/shop\/app\/active\/\.next\/cache\/images$/m, 'mounted back under a hidden root');
  assert.throws(() => renderService(manifest({ writable: ['../x'] }), { kitDir: KIT }), /writable\[0\]/);
});

// ---- preflight ----

test('preflight: same user, environment, env file and sandbox; the release dir and the spare port', () => {
  const m = manifest({ socket: 'preload', env: { NODE_ENV: 'production', Q: `a "b" $c 50%` } });
  const release = '/usr/local/src/shop/releases/0123456789ab';
  const props = preflightProperties(m, 41234, release, { kitDir: KIT });
  assert.ok(props.includes('--property=User=shop'));
  assert.ok(props.includes('--property=Group=shop'));
  assert.ok(props.includes(`--property=WorkingDirectory=${release}`));
  assert.ok(props.includes('--property=EnvironmentFile=-/usr/local/src/shop/shared/.env'));
  assert.ok(props.includes('--setenv=PORT=41234'));
  assert.ok(props.includes(`--setenv=Q=a "b" $c 50%`), 'literal: --setenv takes no quotes or specifiers');
  assert.ok(props.includes(`--setenv=NODE_OPTIONS=--require ${KIT}/scripts/preload/listen-fd.cjs`));
  assert.ok(props.includes('--property=TimeoutStopSec=25s'));
  // The sandbox: exactly the service's sandbox section, in order.
  const unit = renderService(m, { kitDir: KIT });
  const section = unit.slice(unit.indexOf('# ---- sandbox ----'), unit.indexOf('[Install]'));
  const fromUnit = section.split('\n').filter((l) => /^[A-Z]\w*=/.test(l)).map((l) => `--property=${l}`);
  const fromProps = props.filter((p) => sandboxDirectives(m, { kitDir: KIT }).some((d) => p.startsWith(`--property=${d.key}=`)));
  assert.equal(fromProps, fromUnit);
  assert.equal(preflightCommand(m, 41234), ['/usr/bin/env', 'PORT=41234', '/bin/sh', '-c', 'exec node build/index.js']);
  assert.equal(
    preflightCommand(manifest({ start: `node x '$HOME'` }), 41234).at(-1),
    `exec node x '$$HOME'`,
    'the service manager expands $ in systemd-run commands too',
  );
  assert.equal(serviceArgv(m, 41234), ['/usr/bin/env', 'PORT=41234', '/bin/sh', '-c', 'exec node build/index.js']);
  assert.equal(serviceEnvironment(m, { kitDir: KIT }).at(-1), ['PORT', '3000']);
});

test('preflight: the forced port beats a PORT from the environment file (EnvironmentFile= overrides Environment=)', () => {
  const m = manifest({ start: `${process.execPath} -e "console.log(process.env.PORT)"` });
  // systemd puts the env file's PORT=9999 in the environment; the command must still run on the spare port.
  const [cmd, ...args] = expandExecVariables(preflightCommand(m, 41234), {});
  const r = spawnSync(cmd!, args, { env: { ...process.env, PORT: '9999' }, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), '41234');
  const [scmd, ...sargs] = serviceArgv(m);
  assert.is(spawnSync(scmd!, sargs, { env: { ...process.env, PORT: '9999' }, encoding: 'utf8' }).stdout.trim(), '3000');
});

test('start: `exec` in front of one simple command, after its assignments; anything else runs as written', () => {
  const cases: [string, string][] = [
    ['node server.js', 'exec node server.js'],
    ['npx next start --hostname 127.0.0.1', 'exec npx next start --hostname 127.0.0.1'],
    ['FOO=1 BAR="a b" gunicorn app:app', 'FOO=1 BAR="a b" exec gunicorn app:app'],
    ['node x 2>&1', 'exec node x 2>&1'],
    ["node -e 'a; b | c & d'", "exec node -e 'a; b | c & d'"],
    ['node -e "a \\" ; b"', 'exec node -e "a \\" ; b"'],
    ['gunicorn --bind 127.0.0.1:$PORT app:app', 'exec gunicorn --bind 127.0.0.1:$PORT app:app'],
    ['exec node server.js', 'exec node server.js'],
    ['cd sub && node x', 'cd sub && node x'],
    ['node x; echo done', 'node x; echo done'],
    ['node x | tee log', 'node x | tee log'],
    ['node x &>/dev/null', 'node x &>/dev/null'],
    ['(node x)', '(node x)'],
    ['if true; then node x; fi', 'if true; then node x; fi'],
    ['node "unterminated', 'node "unterminated'],
  ];
  for (const [start, script] of cases) assert.is(serviceArgv(manifest({ start })).at(-1), script, start);
  // And the shell really runs them so: the app keeps the shell's pid, assignments reach it.
  const r = spawnSync('/bin/sh', ['-c', `echo $$; ${serviceArgv(manifest({ start: 'FOO="a b" sh -c \'echo $$ "$FOO"\'' })).at(-1)}`], { encoding: 'utf8' });
  const [shellPid, appLine] = r.stdout.trim().split('\n');
  assert.is(appLine, `${shellPid} a b`);
});

// ---- the real systemd ----

const SYSTEMD = '/lib/systemd/systemd';
const withAnalyze = requiring(commandMissing('systemd-analyze'));
const withSystemd = requiring(fileMissing(SYSTEMD, `${SYSTEMD} (the real systemd, to parse units)`));

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-units-'));
chmodSync(dir, 0o755);
const unitDir = path.join(dir, 'system');
mkdirSync(unitDir, { mode: 0o755 });

const VARIANTS: Record<string, Manifest> = {
  'node-plain': manifest({ app: 'node-plain' }),
  'node-socket': manifest({ app: 'node-socket', socket: true, env_file: undefined, shared: [] }),
  'node-preload': manifest({ app: 'node-preload', socket: 'preload', env: { NODE_OPTIONS: '--enable-source-maps', NODE_ENV: 'production' } }),
  'node-home': manifest({ app: 'node-home', root: '/home/deploy/apps/node-home', socket: 'preload' }),
  'node-tmp': manifest({ app: 'node-tmp', root: '/tmp/cutover-fs-test/node-tmp' }),
  'py-socket': python({ app: 'py-socket' }),
  'py-plain': python({ app: 'py-plain', socket: false, env_file: undefined }),
  hostile: manifest({
    app: 'hostile',
    socket: 'preload',
    env: { WEIRD: `50% $HOME \${HOME} "dq" 'sq' back\\slash  sp`, NODE_OPTIONS: '--title="a b"', UNICODE: 'é 🚀' },
    start: `node server.js --title "50% off" '$HOME' \${X} \\; ; echo "a\\"b" %n`,
  }),
};

function write(m: Manifest): { service: string; socket?: string } {
  const files = renderUnits(m, { kitDir: KIT, node: '/usr/bin/node', unitDir, cronDir: dir });
  for (const f of files) writeFileSync(f.path, f.content, { mode: f.mode });
  return { service: path.join(unitDir, `${m.app}@.service`), socket: m.socket ? path.join(unitDir, `${m.app}.socket`) : undefined };
}

withAnalyze('every rendered unit passes the real `systemd-analyze verify`, without a warning', () => {
  for (const [name, m] of Object.entries(VARIANTS)) {
    const { service, socket } = write(m);
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', service, ...(socket ? [socket] : [])], {
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${unitDir}:` },
      encoding: 'utf8',
    });
    assert.is(r.status, 0, `${name}: ${r.stderr}`);
    assert.is(r.stderr.trim(), '', `${name}: no warnings`);
  }
});

withAnalyze('the transient unit preflight describes also passes verify (properties written as a unit file)', () => {
  for (const [name, m] of Object.entries(VARIANTS)) {
    const props = preflightProperties(m, 41234, path.join(m.root, 'releases', '0123456789ab'), { kitDir: KIT });
    const lines = props.map((p) =>
      p.startsWith('--setenv=') ? `Environment=${quoteWord(escapeSpecifiers(p.slice('--setenv='.length)))}` : p.replace(/^--property=/, ''),
    );
    const exec = preflightCommand(m, 41234).map((a) => quoteWord(escapeSpecifiers(a)));
    const file = path.join(unitDir, `preflight-${name}.service`);
    writeFileSync(file, ['[Service]', ...lines, `ExecStart=${exec.join(' ')}`, ''].join('\n'));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
    assert.is(r.status, 0, `${name}: ${r.stderr}`);
    assert.is(r.stderr.trim(), '', `${name}: no warnings`);
  }
});

/** Exposure score of `systemd-analyze security --offline=yes`, and its lines that are not fully OK. */
function security(file: string): { score: number; open: string[] } {
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', file], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout)?.[1]);
  return { score, open: r.stdout.split('\n').filter((l) => l.startsWith('✗')) };
}

withAnalyze('systemd-analyze security (offline): every default unit scores at most 1.5', () => {
  const report: string[] = [];
  for (const [name, m] of Object.entries(VARIANTS)) {
    const { service } = write(m);
    const { score, open } = security(service);
    report.push(`${name}: ${score}`);
    assert.ok(score <= 1.5, `${name} scores ${score}:\n${open.join('\n')}`);
    if (name === 'node-plain' || name === 'py-socket') {
      for (const l of open) report.push(`  ${l.replace(/\s{2,}/g, ' | ')}`);
    }
  }
  console.log(`\n  security exposure (offline): ${report.join('\n  ')}`);
});

/** The real systemd's parse of one unit: `systemd --test --system` (refuses root, so run as nobody). */
function systemdParsed(unit: string): string {
  const cmd = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', SYSTEMD] : [SYSTEMD];
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), '--test', '--system', `--unit=${unit}`, '--log-target=console', '--no-pager'], {
    env: { ...process.env, SYSTEMD_UNIT_PATH: `${unitDir}:`, HOME: '/' },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  assert.is(r.status, 0, `systemd --test: ${r.stderr}`);
  const start = r.stdout.indexOf(`\t-> Unit ${unit}:\n`);
  assert.ok(start >= 0, `${unit} is in the dump`);
  const end = r.stdout.indexOf('\n\t-> Unit ', start + 1);
  return r.stdout.slice(start, end < 0 ? undefined : end);
}

function dumpArgv(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|([^ ]+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!));
}

withSystemd('real systemd reads back exactly the manifest: environment, start command, paths, sandbox', () => {
  for (const name of ['hostile', 'py-socket', 'node-home']) {
    const m = VARIANTS[name]!;
    write(m);
    const dump = systemdParsed(`${m.app}@a.service`);
    assert.match(dump, /Unit Load State: loaded/);
    assert.match(dump, new RegExp(`^\\t+Description: cutover: ${m.app} web app \\(slot a\\)$`, 'm'));
    if (m.socket) {
      // Both slots take the app's socket, and keep its shared file description non-blocking.
      assert.match(dump, new RegExp(`^\\t+TriggeredBy: ${m.app}\\.socket`, 'm'));
      assert.match(dump, /^\t+NonBlocking: yes$/m);
    }
    const cmd = /^\t+Command Line: (.*)$/m.exec(dump)?.[1];
    assert.ok(cmd, 'ExecStart parsed');
    assert.equal(expandExecVariables(dumpArgv(cmd!), {}), serviceArgv(m), `${name}: what runs is the manifest's start`);
    const env = [...dump.matchAll(/^\t+Environment: ([^=]+)=(.*)$/gm)].map((x) => [x[1]!, x[2]!]);
    assert.equal(env, serviceEnvironment(m, { kitDir: KIT }), `${name}: the environment, byte for byte`);
    assert.match(dump, new RegExp(`^\\t+WorkingDirectory: ${m.root}/active$`, 'm'));
    assert.match(dump, new RegExp(`^\\t+User: ${m.user}$`, 'm'));
    assert.match(dump, /^\t+ProtectSystem: strict$/m);
    assert.match(dump, /^\t+PrivateUsers: yes$/m);
    if (m.env_file) assert.match(dump, new RegExp(`^\\t+EnvironmentFile: -${m.root}/shared/${m.env_file}$`, 'm'));
  }
  const socket = systemdParsed('py-socket.socket');
  assert.match(socket, /^\t+ListenStream: 127\.0\.0\.1:8000$/m);
  assert.match(socket, /^\t+Backlog: 4096$/m);
  assert.match(socket, /^\t+Triggers: py-socket@a\.service/m, 'a connection starts the boot slot when no slot runs');
});

test('the cron file written for every variant passes the crontab(5) checks', () => {
  for (const m of Object.values(VARIANTS)) {
    const file = path.join(dir, `cutover-${m.app}`);
    write(m);
    assert.is(checkCronFile(file, readFileSync(file, 'utf8')).length, 1);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test("servingUnits: the gate's probe knows every unit that may accept from the app's socket, the legacy <app>.service of an older cutover among them", () => {
  const p = appPaths({ app: 'shop', root: '/srv/shop' });
  assert.equal(p.servingUnits, ['shop@a.service', 'shop@b.service', 'shop.service']);
  assert.ok(p.servingUnits.includes(p.slotUnit('a')) && p.servingUnits.includes(p.slotUnit('b')) && p.servingUnits.includes(p.legacyUnitName));
});

test.run();
