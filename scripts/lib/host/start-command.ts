// The manifest's start command as the service runs it: `exec` put in front where it is one simple command.
import { assertSafeText } from '../manifest/escape.ts';
import { UsageError } from '../run/errors.ts';
import type { Manifest } from '../manifest/types.ts';

/**
 * Where `exec` goes in a start command so the app replaces the shell, or null when the command is not one
 * simple command (`cd app && node x`, `a; b`, `if …`): that runs as written, the shell staying the main
 * process. Leading assignments stay in front (`PORT_X=1 exec node x` exports them to the app). A small
 * scanner that respects quotes and backslashes; anything it is unsure of counts as "not simple".
 */
export function execInsertionPoint(start: string): number | null {
  let i = 0;
  let firstWord: { at: number; text: string } | null = null;
  let inAssignments = true;
  while (i < start.length) {
    while (i < start.length && /\s/.test(start[i]!)) i++;
    if (i >= start.length) break;
    const at = i;
    let word = '';
    for (; i < start.length && !/\s/.test(start[i]!); i++) {
      const c = start[i]!;
      if (c === '\\') {
        word += start.slice(i, i + 2);
        i++;
      } else if (c === "'" || c === '"') {
        const end = c === "'" ? start.indexOf("'", i + 1) : /"/.exec(start.slice(i + 1).replace(/\\./g, '__'))?.index;
        if (end === undefined || end < 0) return null;
        const close = c === "'" ? end : i + 1 + end;
        word += start.slice(i, close + 1);
        i = close;
      } else if (';|()`{}'.includes(c) || (c === '&' && start[i - 1] !== '>' && start[i - 1] !== '<')) {
        return null; // a list, a pipeline, a subshell, a group or a background job (dash reads `&>` as `&` too)
      } else {
        word += c;
      }
    }
    if (inAssignments && /^[A-Za-z_][A-Za-z0-9_]*=/.test(word)) continue;
    if (inAssignments) {
      inAssignments = false;
      firstWord = { at, text: word };
    }
  }
  if (!firstWord) return null;
  if (['exec', 'if', 'for', 'while', 'until', 'case', '!', 'function', 'select'].includes(firstWord.text)) {
    return firstWord.text === 'exec' ? -1 : null;
  }
  return firstWord.at;
}

/** The shell script ExecStart runs: the manifest's start command, exec'd where it is one simple command. */
export function startScript(m: Manifest): string {
  const start = assertSafeText(m.start, 'start');
  if (!start.trim()) throw new UsageError('start is empty.', 'Give the command that starts the app, e.g. `node server.js`.');
  const at = execInsertionPoint(start);
  return at === null || at < 0 ? start : `${start.slice(0, at)}exec ${start.slice(at)}`;
}

