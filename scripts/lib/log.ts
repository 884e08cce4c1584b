// Operator output: step headers with durations, plain lines, and the dry-run plan.
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

/** Writes to stderr when `quiet` output on stdout is reserved for --json. */
export function createLogger(out: NodeJS.WritableStream = process.stdout): Logger {
  return {
    info: (line) => out.write(line + '\n'),
    warn: (line) => process.stderr.write(`warning: ${line}\n`),
    async step(title, fn) {
      throwIfStopped(title);
      out.write(`==> ${title}\n`);
      const t0 = performance.now();
      try {
        const result = await fn();
        out.write(`    done in ${formatDuration(performance.now() - t0)}\n`);
        return result;
      } catch (e) {
        out.write(`    failed after ${formatDuration(performance.now() - t0)}\n`);
        throw e;
      }
    },
  };
}
