// logs [-f] [-n N] [--since …] [--release ID] [--grep …] [--json]: the app's journal — both slots, the preflights, exec commands — each line marked with the release it came from.
import { runCommand } from './lib/run/cli.ts';
import { UsageError } from './lib/run/errors.ts';

const spec = {
  name: 'logs',
  summary: "Show the app's journal — both slots, the preflights and exec commands — each line marked with the release it came from; -f follows it across handovers.",
  options: {
    follow: { type: 'boolean' as const, help: 'keep printing new lines (across handovers) until interrupted' },
    lines: { type: 'string' as const, arg: 'N', help: 'how many of the last lines (default 50)' },
    since: { type: 'string' as const, arg: 'TIME', help: 'from this time on, as journalctl reads it ("1 hour ago", "2026-12-04 10:00")' },
    release: { type: 'string' as const, arg: 'ID', help: 'only the lines of this release' },
    grep: { type: 'string' as const, arg: 'PATTERN', help: 'only the lines whose message matches (journalctl --grep)' },
    json: { type: 'boolean' as const, help: 'one JSON object per line: at, release, source, unit, pid, message' },
  },
  details: `-f and -n are --follow and --lines. Values of the env file are masked, as everywhere cutover prints.
Example: ssh root@host 'cutover logs -n 200 --grep error'`,
};

// The short forms operators type (journalctl's own): -f, -n N.
const argv = process.argv.slice(2).flatMap((a) => (a === '-f' ? ['--follow'] : a === '-n' ? ['--lines'] : /^-n\d+$/.test(a) ? ['--lines', a.slice(2)] : [a]));

await runCommand(
  spec,
  async (args) => {
    const { createContext } = await import('./lib/state/context.ts');
    const { readHistory } = await import('./lib/state/history.ts');
    const { appUnits, formatLine, markLines } = await import('./lib/everyday/logs.ts');
    const { followJournal, invocationStart, systemdQuery } = await import('./lib/host/systemd.ts');
    const { maskSecrets } = await import('./lib/assemble/secrets.ts');
    const { assertReleaseId } = await import('./lib/manifest/paths.ts');
    const n = args.values.lines === undefined ? 50 : Number(args.values.lines);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--lines must be a whole number, not "${String(args.values.lines)}".`);
    const only = args.values.release === undefined ? undefined : assertReleaseId(String(args.values.release));
    const ctx = await createContext(args.manifestFile, { out: process.stderr });
    const base = [...appUnits(ctx.m.app).flatMap((u) => ['--unit', u]), '--output=json', '--no-pager', '--quiet'];
    if (args.values.since !== undefined) base.push('--since', String(args.values.since));
    if (args.values.grep !== undefined) base.push('--grep', String(args.values.grep));
    const firstSeen = new Map<string, number>();
    const runRelease = new Map<string, string>();
    const { releaseOfProcess } = await import('./lib/state/procfs.ts');
    const print = async (jsonLines: string[]) => {
      const entries = jsonLines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      // Each slot run's start, so a line is marked by the activation that started its run, however old.
      for (const e of entries) {
        const run = e._SYSTEMD_INVOCATION_ID ?? e.INVOCATION_ID;
        if (run && !firstSeen.has(run)) {
          const t = await invocationStart(run);
          if (t !== undefined) firstSeen.set(run, t);
        }
      }
      for (const l of markLines(entries, readHistory(ctx.paths.history), ctx.m.app, firstSeen, (pid) => releaseOfProcess(ctx.paths.releases, pid), runRelease)) {
        if (only && l.release !== only) continue;
        const line = maskSecrets(args.values.json ? JSON.stringify(l) : formatLine(l), ctx.paths.envFile);
        process.stdout.write(line + '\n');
      }
    };
    await print((await systemdQuery('journalctl', [...base, '--lines', String(n)])).split('\n'));
    if (!args.values.follow) return;
    const child = followJournal([...base, '--lines', '0', '--follow']);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => child.kill());
    let buf = '';
    let chain = Promise.resolve();
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      chain = chain.then(() => print(lines));
    });
    await new Promise((done) => child.on('close', done));
    await chain;
  },
  argv,
);
