// Escaping for the places cutover writes manifest values into: systemd unit files, systemd-run arguments, cron lines.
//
// Every function here is pure. A value that cannot be made safe for its place (a newline, NUL or any
// other control character, a path that would need quoting somewhere) is refused with a UsageError that
// names the manifest field, so the operator knows what to fix. The rules follow systemd 252's parser
// (src/basic/extract-word.c, src/core/load-fragment.c, src/basic/env-util.c) and Debian cron's
// do_command.c; `systemdUnquote` and `expandExecVariables` implement those rules in reverse so the
// tests can prove that what systemd executes is exactly the manifest's text.
import path from 'node:path';
import { UsageError } from '../run/errors.ts';
import { cronProblems } from './cron.ts';

/** C0 controls (newline, NUL, tab, ESC…), DEL, C1 controls, and UTF-16 halves that do not form a character. */
const UNSAFE_CHAR = /[\u0000-\u001f\u007f-\u009f]|\p{Surrogate}/u;

/** Shows a value with its control characters made visible, for error messages. */
function show(value: string): string {
  return JSON.stringify(value);
}

/**
 * Refuses a value no escaping can carry safely into a unit file or a cron line: a newline would start a
 * new directive (or a new cron entry), NUL truncates, other control characters are refused by systemd or
 * reach a terminal. Returns the value unchanged.
 */
export function assertSafeText(value: string, field: string): string {
  if (typeof value !== 'string') {
    throw new UsageError(`${field} must be a string.`);
  }
  const bad = UNSAFE_CHAR.exec(value);
  if (bad) {
    const what = bad[0] === '\n' || bad[0] === '\r' ? 'a line break' : `the control character ${show(bad[0])}`;
    throw new UsageError(
      `${field} contains ${what}, which cannot be written safely into a systemd unit or a cron line: ${show(value)}.`,
      `Remove it from ${field} in the manifest.`,
    );
  }
  return value;
}

/** systemd specifiers: every `%` is doubled so that systemd's specifier expansion yields the literal text. */
export function escapeSpecifiers(value: string): string {
  return value.replace(/%/g, '%%');
}

/**
 * systemd's environment variable expansion in Exec*= command lines (done when the command runs):
 * `$$` is the only way to write a literal `$`, so every `$` is doubled. Not for Environment= values,
 * where `$` has no special meaning.
 */
export function escapeVariables(value: string): string {
  return value.replace(/\$/g, '$$$$');
}

/**
 * One word for a directive whose value systemd splits with quotes (ExecStart=, Environment=, ReadWritePaths=…):
 * double quotes, with `\` and `"` escaped by a backslash. Inside double quotes systemd takes `'`, spaces and
 * `;` literally, and its C unescaping turns `\\` and `\"` back into `\` and `"` (with or without
 * EXTRACT_CUNESCAPE). No other escape sequence is produced, so nothing else is ever reinterpreted.
 */
export function quoteWord(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

/** An argument of ExecStart= in a unit file: safe, specifiers and variables escaped, then quoted. */
export function execArgument(value: string, field: string): string {
  return quoteWord(escapeVariables(escapeSpecifiers(assertSafeText(value, field))));
}

/**
 * An argument of a command given to `systemd-run` on its command line. systemd-run passes argv as is
 * (no quotes, no specifiers) but the service manager still expands `$VAR`/`${VAR}` in it when it runs
 * the command (systemd < 254 always; later versions by default), so `$` is doubled.
 */
export function runArgument(value: string, field: string): string {
  return escapeVariables(assertSafeText(value, field));
}

/** An environment variable name systemd accepts (env_name_is_valid) and a shell can export. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function assertEnvName(name: string, field: string): string {
  if (!ENV_NAME.test(name)) {
    throw new UsageError(
      `${field}: ${show(name)} is not a valid environment variable name.`,
      'Names are letters, digits and underscores, not starting with a digit.',
    );
  }
  return name;
}

/**
 * One `Environment=` word for a unit file: `"NAME=value"`. systemd unquotes and C-unescapes it, then
 * expands specifiers, so `%` is doubled; `$` is literal in Environment= and stays as is.
 */
export function environmentWord(name: string, value: string, field: string): string {
  assertEnvName(name, field);
  return quoteWord(escapeSpecifiers(`${name}=${assertSafeText(value, field)}`));
}

/**
 * The characters cutover allows in a path it writes into units, systemd-run properties and cron lines.
 * A path reaches directives that take it verbatim (WorkingDirectory=, EnvironmentFile=), directives that
 * split it on spaces and quotes (ReadWritePaths=), on `:` (BindPaths=), and a shell command line in cron;
 * no single escaping is right for all of them, so anything outside this set is refused instead.
 */
const SAFE_PATH = /^\/[A-Za-z0-9._\/+@,=-]*$/;

/** An absolute, normalized path made only of characters that need no escaping anywhere cutover uses it. */
export function assertSafePath(p: string, field: string): string {
  assertSafeText(p, field);
  if (!path.posix.isAbsolute(p)) {
    throw new UsageError(`${field} must be an absolute path, not ${show(p)}.`);
  }
  if (!SAFE_PATH.test(p)) {
    throw new UsageError(
      `${field} ${show(p)} contains a character cutover does not pass to systemd or cron (only letters, digits and . _ / + @ , = - are allowed).`,
      `Choose a path without spaces, quotes, %, $, : or backslashes for ${field}.`,
    );
  }
  if (p !== '/' && (path.posix.normalize(p) !== p || p.endsWith('/'))) {
    throw new UsageError(
      `${field} ${show(p)} is not a normalized path (no //, /./, /../ or trailing slash).`,
      `Write it as ${show(path.posix.normalize(p).replace(/(.)\/+$/, '$1'))}.`,
    );
  }
  return p;
}

/** Whether `child` is `parent` or lies below it (both normalized absolute paths). */
export function isWithin(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent === '/' ? '/' : `${parent}/`);
}

// ---- cron ----

/**
 * A word of the command field of a cron line: single-quoted for /bin/sh, with `%` written `\%` (cron turns
 * an unescaped `%` into a newline and sends the rest as standard input, and removes the backslash of `\%`).
 * A backslash is refused: cron's own escaping would change its meaning next to a `%`.
 */
export function cronWord(value: string, field: string): string {
  assertSafeText(value, field);
  if (value.includes('\\')) {
    throw new UsageError(`${field} ${show(value)} contains a backslash, which cron would reinterpret.`);
  }
  const quoted = /^[A-Za-z0-9._\/+@,=:-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/%/g, '\\%');
}

/**
 * A prune schedule for a cron.d line: one line (a newline would start a second cron entry) that
 * passes the one cron rule (cron.ts, which the manifest checks too), with its blanks normalized.
 */
export function cronSchedule(schedule: string, field: string): string {
  assertSafeText(schedule, field);
  const problems = cronProblems(schedule);
  if (problems.length > 0) {
    throw new UsageError(
      `${field} ${show(schedule)} is not a cron schedule: ${problems[0]!.replace(/\.$/, '')}.`,
      'Use five fields like "17 3 * * *" (03:17 every day).',
    );
  }
  return schedule.trim().replace(/\s+/g, ' ');
}
