// Reads the kit's own step timings ("==> title" … "    done in 812 ms") from its output.

/** Step title (shortTitle: without details after the first colon or " on ") → ms; repeated titles are summed. */
export function kitSteps(stdout: string): Record<string, number> {
  const steps: Record<string, number> = {};
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    const head = /^==> (.+)$/.exec(line);
    if (head) {
      current = shortTitle(head[1]);
      continue;
    }
    const done = /^\s+(?:done|failed) (?:in|after) ([\d.]+) (ms|s)$/.exec(line);
    if (done && current) {
      const ms = Number(done[1]) * (done[2] === 's' ? 1000 : 1);
      steps[current] = Math.round((steps[current] ?? 0) + ms);
      current = undefined;
    }
  }
  return steps;
}

export function shortTitle(title: string): string {
  if (title.startsWith('install: skipped')) return 'install (copied)';
  if (title.startsWith('health gate')) return 'health gate';
  return title.split(/[: ]/)[0];
}
