// Operator output: step headers with durations, plain lines, and the dry-run plan (and the crash tests' pause point).
import { throwIfStopped } from './stop.ts';

export interface Logger {
  info(line: string): void;
  warn(line: string): void;
  /** Runs fn under a "==> title" header and prints its duration when it ends; a step boundary is where a stop (SIGTERM…) takes effect. */
  step<T>(title: string, fn: () => Promise<T>): Promise<T>;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Test-only switch, for test/system/crash.test.ts: CUTOVER_TEST_PAUSE="<prefix>:start|end|line"
 * stops the kit for good at one point, so a SIGKILL lands exactly there and not a moment later:
 * `start` after the header of the first step whose title begins with <prefix> (before the step
 * runs), `end` after that step's "done in", `line` right after the first plain line that begins
 * with <prefix>. There the kit prints "[cutover test pause] <the value>" and blocks its one thread
 * until it is SIGKILLed (its SIGTERM handler never runs there). Unset (as always outside the
 * tests) it costs one comparison per step.
 */
export interface PausePoint {
  prefix: string;
  at: 'start' | 'end' | 'line';
}

export const PAUSE_MARK = '[cutover test pause]';

/** The pause point a CUTOVER_TEST_PAUSE value names, or undefined for an empty value; throws on a malformed one. */
export function parsePause(value: string | undefined): PausePoint | undefined {
  if (!value) return undefined;
  const m = /^(.+):(start|end|line)$/s.exec(value);
  if (!m) throw new Error(`CUTOVER_TEST_PAUSE=${JSON.stringify(value)} is not "<step title prefix>:start", ":end" or "<line prefix>:line". Unset it outside the crash tests.`);
  return { prefix: m[1]!, at: m[2] as PausePoint['at'] };
}

/** Prints the pause mark and blocks the process until it is killed (Atomics.wait on a word nobody changes). */
function pauseHere(out: NodeJS.WritableStream, value: string): never {
  out.write(`${PAUSE_MARK} ${value}\n`);
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

/** Writes to stderr when `quiet` output on stdout is reserved for --json. */
export function createLogger(out: NodeJS.WritableStream = process.stdout, env: NodeJS.ProcessEnv = process.env): Logger {
  const pause = parsePause(env.CUTOVER_TEST_PAUSE);
  const pauseAt = (at: PausePoint['at'], text: string) => {
    if (pause && pause.at === at && text.startsWith(pause.prefix)) pauseHere(out, env.CUTOVER_TEST_PAUSE!);
  };
  return {
    info(line) {
      out.write(line + '\n');
      if (pause) pauseAt('line', line);
    },
    warn: (line) => process.stderr.write(`warning: ${line}\n`),
    async step<T>(title: string, fn: () => Promise<T>): Promise<T> {
      throwIfStopped(title);
      out.write(`==> ${title}\n`);
      if (pause) pauseAt('start', title);
      const t0 = performance.now();
      let result: T;
      try {
        result = await fn();
      } catch (e) {
        out.write(`    failed after ${formatDuration(performance.now() - t0)}\n`);
        throw e;
      }
      out.write(`    done in ${formatDuration(performance.now() - t0)}\n`);
      if (pause) pauseAt('end', title);
      return result;
    },
  };
}
