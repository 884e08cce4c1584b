// Tests scripts/lib/manifest/escape.ts: round trips through systemd's quoting rules, checked against the real systemd 252 parser.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  assertEnvName,
  assertSafePath,
  assertSafeText,
  cronSchedule,
  cronWord,
  environmentWord,
  escapeSpecifiers,
  escapeVariables,
  execArgument,
  quoteWord,
  runArgument,
} from '../../scripts/lib/manifest/escape.ts';
import { expandExecVariables, systemdUnquote } from '../helpers/systemd-parse.ts';
import { CutoverError, ExitCode } from '../../scripts/lib/run/errors.ts';
import { fileMissing, requiring } from '../helpers/prereq.ts';

/** Values an operator (or an attacker) could put in a manifest; none contains a control character. */
const HOSTILE = [
  '', ' ', 'plain', 'two words', '  leading and trailing  ', "it's", 'say "hi"', 'back\\slash', 'trailing\\',
  '\\\\double', '\\"', "\\'", '%', '%%', '%n', '%i %u %h', '100%', '$', '$$', '$HOME', '${HOME}', '$$HOME',
  '${', '$(id)', '`id`', ';', '\\;', ' ; ', 'a;b', '&& rm -rf /', '|', '>', '<', '*', '?', '[a]', '~', '#',
  '# not a comment', '\\x41', '\\n', '\\t', 'é ü 中文 🚀', '"', "'", `"'"`, '=', 'K=V', '-', '@', '+', '!', ':',
  '\\', 'a\\', '"a b" c', "'a b' c", '${HOME:-x}', '$HOME$', '%%%', '\u00a0nbsp', 'x'.repeat(5000),
];

/** A UsageError (exit 2) whose message names the field. */
function refuses(fn: () => unknown, field: string, what?: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CutoverError);
    assert.is((e as CutoverError).exitCode, ExitCode.usage);
    assert.ok((e as Error).message.includes(field), `"${(e as Error).message}" names ${field}`);
    if (what) assert.match((e as Error).message, what);
    return;
  }
  assert.unreachable(`expected ${field} to be refused`);
}

test('control characters are refused, naming the field', () => {
  for (const bad of ['a\nb', 'a\rb', 'a\0b', 'a\tb', '\x1b[31m', 'del\x7f', 'c1\x85', 'lone \ud800 half']) {
    refuses(() => assertSafeText(bad, 'env.FOO'), 'env.FOO');
  }
  refuses(() => execArgument('node\nExecStartPre=/bin/evil', 'start'), 'start', /line break/);
  refuses(() => environmentWord('A', 'x\ny', 'env.A'), 'env.A', /line break/);
  refuses(() => cronWord('/x\n* * * * * root evil', 'the manifest path'), 'the manifest path');
  for (const ok of HOSTILE) assert.is(assertSafeText(ok, 'f'), ok);
});

test('specifiers and variables are doubled', () => {
  assert.is(escapeSpecifiers('50% %n %%'), '50%% %%n %%%%');
  assert.is(escapeVariables('$HOME ${X} $$'), '$$HOME $${X} $$$$');
});

test('quoteWord: systemd unquotes it to the same text (every hostile value)', () => {
  for (const v of HOSTILE.filter((v) => !v.includes('%'))) {
    assert.equal(systemdUnquote(quoteWord(v)), [v], JSON.stringify(v));
  }
});

test('execArgument: after unquoting, specifiers and $-expansion, systemd runs exactly the input', () => {
  const env = { HOME: '/home/x', X: 'expanded' };
  for (const v of HOSTILE) {
    const argv = expandExecVariables(systemdUnquote(`/bin/echo ${execArgument(v, 'start')}`), env);
    assert.equal(argv, ['/bin/echo', v], JSON.stringify(v));
  }
});

test('execArgument: random strings round-trip', () => {
  const alphabet = ['a', ' ', '\\', '"', "'", '%', '$', '{', '}', ';', '`', 'é', '🚀', 'x', '=', 'n'];
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
  for (let i = 0; i < 3000; i++) {
    const v = Array.from({ length: rand() % 24 }, () => alphabet[rand() % alphabet.length]).join('');
    assert.equal(expandExecVariables(systemdUnquote(execArgument(v, 'start')), {}), [v], JSON.stringify(v));
  }
});

test('environmentWord: NAME=value comes back whole; $ stays literal in Environment=', () => {
  for (const v of HOSTILE) {
    assert.equal(systemdUnquote(environmentWord('APP_VALUE', v, 'env.APP_VALUE')), [`APP_VALUE=${v}`], JSON.stringify(v));
  }
  assert.is(environmentWord('A', '$HOME', 'env.A'), '"A=$HOME"');
  refuses(() => environmentWord('1BAD', 'x', 'env.1BAD'), 'env.1BAD');
  refuses(() => environmentWord('A-B', 'x', 'env.A-B'), 'env.A-B');
  refuses(() => assertEnvName('A=B', 'env.A=B'), 'env.A=B');
});

test('runArgument (systemd-run argv): only $ is doubled, no quotes, no specifiers', () => {
  assert.is(runArgument(`exec node "50%" '$HOME'`, 'start'), `exec node "50%" '$$HOME'`);
  for (const v of HOSTILE) assert.equal(expandExecVariables([runArgument(v, 'start')], {}), [v]);
  refuses(() => runArgument('a\nb', 'start'), 'start');
});

test('systemdUnquote follows systemd: C escapes in both quote kinds, words glued across quotes', () => {
  assert.equal(systemdUnquote(`a "b c" 'd e' f\\x41 "\\x41\\"" '\\'' "x"'y'z`), ['a', 'b c', 'd e', 'fA', 'A"', "'", 'xyz']);
  assert.equal(systemdUnquote(`"%%" 100%%`), ['%', '100%']);
  assert.throws(() => systemdUnquote('"open'));
  assert.throws(() => systemdUnquote('bad\\q'));
  assert.throws(() => systemdUnquote('%n'));
});

test('paths: absolute, normalized, only characters that need no escaping anywhere', () => {
  for (const ok of ['/usr/local/src/shop', '/srv/a-b_c.d/@x+y,z=1', '/']) assert.is(assertSafePath(ok, 'root'), ok);
  for (const bad of ['relative/x', '/a b', '/a%b', '/a$b', '/a:b', '/a\\b', '/a"b', "/a'b", '/a\nb', '/a//b', '/a/./b', '/a/../b', '/a/']) {
    refuses(() => assertSafePath(bad, 'root'), 'root');
  }
});

/** What cron (Debian's do_command.c) hands to /bin/sh for a command field: `\%` → `%`, an unescaped `%` ends it. */
function cronCommand(field: string): string {
  let out = '';
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!;
    if (c === '\\' && field[i + 1] === '%') {
      out += '%';
      i++;
    } else if (c === '%') {
      break;
    } else {
      out += c;
    }
  }
  return out;
}

test('cronWord: cron then /bin/sh give back exactly the value', () => {
  const values = HOSTILE.filter((v) => !v.includes('\\') && v.length < 200).concat(['/srv/x/app.yaml', '/srv/50% off/m.yaml']);
  const line = values.map((v) => cronWord(v, 'f')).join(' ');
  assert.not.match(line.replace(/\\%/g, ''), /%/, 'every % is escaped');
  const r = spawnSync('/bin/sh', ['-c', `printf '%s\\n' ${cronCommand(line)}`], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.equal(r.stdout.split('\n').slice(0, -1), values);
  refuses(() => cronWord('a\\%b', 'the manifest path'), 'the manifest path', /backslash/);
});

test('cronSchedule: five valid fields by the one cron rule (cron.ts, as the manifest checks them); everything else refused', () => {
  for (const ok of ['17 3 * * *', '*/15 * * * *', '0 0 1,15 * mon-fri', '0 4 * jan-mar 0', '5 0 * * 7']) {
    assert.ok(cronSchedule(ok, 'prune.schedule'));
  }
  assert.is(cronSchedule('  17   3 * *  * ', 'prune.schedule'), '17 3 * * *');
  for (const bad of ['* * * *', '* * * * * *', '60 * * * *', '* 24 * * *', '* * 0 * *', '* * * 13 *', '* * * * 8',
    '*/0 * * * *', '5-1 * * * *', '@sometimes', '@daily', 'a b c d e', '* * * * * root rm', '%', '1 2 3 4 5%']) {
    refuses(() => cronSchedule(bad, 'prune.schedule'), 'prune.schedule');
  }
  refuses(() => cronSchedule('* * * * *\n* * * * * root evil', 'prune.schedule'), 'prune.schedule', /line break/);
});

// ---- the real systemd: verify, and read back what it parsed ----

const SYSTEMD = '/lib/systemd/systemd';
const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-escape-'));
chmodSync(dir, 0o755);

/**
 * Loads units with the real systemd in test mode (`systemd --test --system`, which refuses to run as root,
 * so as nobody) and returns the dump of one unit: what systemd actually parsed.
 */
function systemdParsed(unit: string): string {
  const cmd = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', SYSTEMD] : [SYSTEMD];
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), '--test', '--system', `--unit=${unit}`, '--log-target=console', '--no-pager'], {
    env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:`, HOME: '/' },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  assert.is(r.status, 0, `systemd --test failed: ${r.stderr}${r.stdout.slice(0, 2000)}`);
  const start = r.stdout.indexOf(`\t-> Unit ${unit}:\n`);
  assert.ok(start >= 0, `${unit} is in the dump`);
  const end = r.stdout.indexOf('\n\t-> Unit ', start + 1);
  return r.stdout.slice(start, end < 0 ? undefined : end);
}

/** Parses a "Command Line:" of systemd's dump (quote_command_line: plain words or "…" with \ before " \ ` $). */
function dumpArgv(line: string): string[] {
  const words: string[] = [];
  // Split on ASCII spaces only: systemd leaves non-ASCII bytes (a no-break space too) unquoted.
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|([^ ]+)/g)) {
    words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  }
  return words;
}

function verify(file: string): void {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], {
    env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` },
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr.trim(), '', 'no warnings');
}

const withSystemd = requiring(fileMissing(SYSTEMD, `${SYSTEMD} (the real systemd, to parse units)`));

withSystemd('real systemd: every hostile value survives ExecStart= and Environment= exactly', () => {
  const values = HOSTILE.filter((v) => v.length < 1000);
  const unit = [
    '[Unit]',
    'Description=escape round trip',
    '[Service]',
    'Type=oneshot',
    ...values.map((v) => `ExecStart=/bin/echo ${execArgument(v, 'start')}`),
    ...values.map((v, i) => `Environment=${environmentWord(`V${i}`, v, `env.V${i}`)}`),
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'escape-round-trip.service'), unit);
  verify(path.join(dir, 'escape-round-trip.service'));
  const dump = systemdParsed('escape-round-trip.service');
  const commands = [...dump.matchAll(/^\t+Command Line: (.*)$/gm)].map((m) => dumpArgv(m[1]!));
  assert.is(commands.length, values.length);
  commands.forEach((argv, i) => {
    // The dump shows argv before $-expansion, which happens when the command runs.
    assert.equal(expandExecVariables(argv, { HOME: '/h' }), ['/bin/echo', values[i]!], JSON.stringify(values[i]));
  });
  const env = new Map([...dump.matchAll(/^\t+Environment: (V\d+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
  values.forEach((v, i) => assert.is(env.get(`V${i}`), v, JSON.stringify(v)));
});

withSystemd('real systemd agrees with systemdUnquote on hand-written quoting', () => {
  const lines = [
    `a "b c" 'd e' f\\x41 "\\x41\\"" '\\'' "x"'y'z`,
    `"%%" 100%% "$$HOME" '$$\${X}'`,
    `"semi;colon" \\\\; "sp\\sace" "\\u00e9\\U0001F680" "\\101"`,
  ];
  writeFileSync(
    path.join(dir, 'escape-unquote.service'),
    ['[Service]', 'Type=oneshot', ...lines.map((l) => `ExecStart=/bin/echo ${l}`), ''].join('\n'),
  );
  const dump = systemdParsed('escape-unquote.service');
  const commands = [...dump.matchAll(/^\t+Command Line: (.*)$/gm)].map((m) => dumpArgv(m[1]!));
  assert.is(commands.length, lines.length);
  lines.forEach((l, i) => assert.equal(commands[i], ['/bin/echo', ...systemdUnquote(l)], l));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
