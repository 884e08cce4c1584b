// uvu's closing counts of one test file's output: passed, failed (its Total leaves skipped tests out), skipped.

/** uvu's closing counts in a file's stdout (colours stripped), or undefined when it printed none. */
export function uvuCounts(stdout) {
  const text = stdout.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label) => {
    const all = [...text.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)\\s*$`, 'gm'))];
    return all.length ? Number(all.at(-1)[1]) : undefined;
  };
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  if (total === undefined || passed === undefined || skipped === undefined) return undefined;
  return { passed, failed: total - passed, skipped };
}
