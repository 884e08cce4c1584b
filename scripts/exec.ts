// exec [--release ID] -- CMD…: run one command in the live (or a named ready) release as the service runs — its user, environment, env file and sandbox — and pass on its exit code.
import { dryRunOption, runCommand } from './lib/run/cli.ts';

const spec = {
  name: 'exec',
  summary: "Run a command in the live release (or --release ID, a ready one) as the app's service would: the app's user, environment and env file, the service's sandbox, the release as working directory. Interactive when a terminal is attached. Exits with the command's exit code.",
  positionals: '-- <command> [args…]',
  arity: [1, 1000] as [number, number],
  options: {
    release: { type: 'string' as const, arg: 'ID', help: 'run it in this ready release instead of the live one' },
    'dry-run': dryRunOption,
  },
  details: `Put -- before the command, so that its own options are its own:
  cutover exec -- .venv/bin/python manage.py createsuperuser
  cutover exec -- node -e 'console.log(process.env.DATABASE_URL ? "set" : "unset")'
  ssh -t root@host cutover exec -- .venv/bin/python manage.py shell      # -t: a terminal, for a REPL
It takes no lock (what the command does to the app's data is its own business) and appends to the history
who ran what, in which release, and its exit code (values of the env file masked).`,
};

await runCommand(spec, async (args) => {
  const { createContext } = await import('./lib/state/context.ts');
  const { assertReleaseId } = await import('./lib/manifest/paths.ts');
  const { showArgv } = await import('./lib/run/ops.ts');
  const { execArgv, execRelease, hasTerminal, recordExec, runExec } = await import('./lib/everyday/exec.ts');
  const ctx = await createContext(args.manifestFile, { dryRun: Boolean(args.values['dry-run']), out: process.stderr });
  const named = args.values.release === undefined ? undefined : assertReleaseId(String(args.values.release));
  const id = execRelease(ctx, named);
  const argv = execArgv(ctx, id, args.positionals, hasTerminal());
  if (ctx.dryRun) {
    ctx.log.info(`Dry run: would run in ${id}:\n  ${showArgv(argv)}`);
    return;
  }
  const code = await runExec(argv);
  await recordExec(ctx, id, args.positionals, code);
  return code;
});
